/* domain_worst_case.c - the forward kernels on the accumulator's worst case (issue: signed int32
 * overflow in acc + bias). Fan-in TT_ACC_TERMS_LIMIT (66,572), the aligned bias at +-2**30 and
 * every product at +-(128 * 127), one step outside the documented domain: the sum exceeds 2**31.
 * Built under AddressSanitizer + UBSan (undefined behaviour aborts), every kernel variant must
 * saturate instead. Prints one line per case: kernel, status, y mantissa and scale. */
#include "tt_platform.h"
#include "tt_runtime.h"
#include "tt_tables.h"

#define FAN ((size_t)TT_ACC_TERMS_LIMIT)

static int8_t xs[FAN], ws[FAN];
static int32_t acc[1];
static int8_t cols[FAN];

static void report(const char *name, tt_status_t st, const int8_t *y, tt_scale_t ys)
{
    tt_puts(name);
    tt_puts(" status=");
    tt_put_i32((int32_t)st);
    tt_puts(" y=");
    tt_put_i32((int32_t)y[0]);
    tt_puts(" S=");
    tt_put_i32((int32_t)ys.S);
    tt_puts("\n");
}

static void one_case(int8_t xv, int8_t wv, int32_t bias_value, const char *tag)
{
    tt_scale_t one = {0, 0, 0}, ys;
    int32_t bias[1];
    int8_t y[1];
    tt_conv2d_shape_t shape = {1, FAN, 1, 1, 1, 1, 1, 1, 1, 0, 0, 1};
    tt_dense_shape_t dense = {1, FAN, 1};
    size_t i;
    tt_status_t st;
    for (i = 0; i < FAN; ++i) {
        xs[i] = xv;
        ws[i] = wv;
    }
    bias[0] = bias_value;
    tt_puts(tag);
    tt_puts(":\n");
    st = tt_linear_forward_s8(xs, one, ws, one, bias, one, &dense, TT_SCALE_POW2, acc, y, &ys);
    report("linear", st, y, ys);
    st = tt_linear_forward_s8(xs, one, ws, one, bias, one, &dense, TT_SCALE_POW2, NULL, y, &ys);
    report("linear-noacc", st, y, ys);
    st = tt_linear_forward_x4_s8(xs, one, ws, one, bias, one, &dense, TT_SCALE_POW2, acc, y, &ys);
    report("linear-x4", st, y, ys);
    st = tt_linear_forward_x4_s8(xs, one, ws, one, bias, one, &dense, TT_SCALE_POW2, NULL, y, &ys);
    report("linear-x4-noacc", st, y, ys);
    st = tt_conv2d_forward_s8(xs, one, ws, one, bias, one, &shape, TT_SCALE_POW2, acc, y, &ys);
    report("conv", st, y, ys);
    st = tt_conv2d_forward_im2col_s8(xs, one, ws, one, bias, one, &shape, TT_SCALE_POW2, acc, cols, y, &ys);
    report("conv-im2col", st, y, ys);
    st = tt_conv2d_forward_im2col_s8(xs, one, ws, one, bias, one, &shape, TT_SCALE_POW2, NULL, cols, y, &ys);
    report("conv-im2col-noacc", st, y, ys);
}

int main(void)
{
    tt_platform_init();
    one_case(-128, -127, 1073741824L, "positive");  /* 66,572 * 16,256 + 2**30 > 2**31 - 1 */
    one_case(-127, -128, 1073741824L, "positive-swapped");
    one_case(-128, 127, -1073741824L, "negative");  /* below -2**31 */
    one_case(-128, -128, 1073741824L, "both-minus-128");
    one_case(127, 127, 1073741824L, "domain-edge");   /* 66,572 * 16,129 + 2**30 < 2**31: exact */
    tt_exit(0);
}
