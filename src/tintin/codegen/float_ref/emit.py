"""The float32 reference in C: the same network, schedule and SGD update as the integer program,
in ``float`` arithmetic, to measure what integers save on each core.

It is a plain, reasonable float implementation, not a strawman: direct loops of the same shape as
the integer kernels, the weight update fused with the gradient row by row (``w -= (lr/B * e) * x``
for batch 1: one multiply and one subtract per weight), rows with a zero error skipped, the softmax
through a polynomial ``exp`` (no libm). It starts from the dequantised initial parameters and
applies the integer optimiser's effective learning rate (``IntegerSGD.effective_lr``) divided by
the batch size. Its numbers are not compared bit for bit with anything: it serves instruction
counts (soft float on Cortex-M0/M3/M4 and AVR, the FPU on Cortex-M4F). A host test checks that it
trains (its loss falls and its accuracy rises like the integer program's).

Supported layers: Linear, ReLU, Flatten, Conv1d/Conv2d (any groups and padding), MaxPool1d/2d,
AvgPool1d/2d, GlobalAvgPool; softmax cross-entropy and MSE heads; whole-layer update selections
(``full``, ``bias``, ``last:K``, ...; row-sparse updates train the whole rows here).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ...numerics.scale_rows import dequantize_rows
from ..cgen import CodegenError, comment


def _real(p) -> np.ndarray:
    """The real values of parameter ``p`` (per-row weight scales included), float64."""
    return dequantize_rows(np.asarray(p.value.m), p.value.scale, getattr(p, "row_exp", None))


_SUPPORTED = ("Linear", "ReLU", "Flatten", "Conv2d", "Conv1d", "MaxPool2d", "MaxPool1d", "AvgPool2d", "AvgPool1d",
              "GlobalAvgPool")


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


def _f(v: float) -> str:
    """A float literal (single precision, exact repr)."""
    r = repr(float(np.float32(v)))
    if "e" not in r and "." not in r and "inf" not in r and "nan" not in r:
        r += ".0"
    return r + "f"


def _farray(name: str, values, const: bool = False) -> str:
    flat = np.asarray(values, dtype=np.float32).ravel()
    items = [_f(v) for v in flat.tolist()] or ["0.0f"]
    lines = [", ".join(items[i:i + 8]) for i in range(0, len(items), 8)]
    q = "static const float" if const else "static float"
    return f"{q} {name}[{max(flat.size, 1)}] = {{\n    " + ",\n    ".join(lines) + "\n};\n"


_KERNELS = r"""
#if defined(__GNUC__)
#define F_UNUSED __attribute__((unused))
#else
#define F_UNUSED
#endif

/* ---- float kernels (direct loops, as the integer runtime) ---------------------------------- */
typedef struct {
    size_t batch, cin, in_h, in_w, cout, kh, kw, sh, sw, ph, pw, groups, out_h, out_w;
} f_conv_t;

typedef struct {
    size_t batch, ch, in_h, in_w, kh, kw, sh, sw, out_h, out_w;
} f_pool_t;

F_UNUSED static float f_exp(float x) /* x <= 0: 2**(x log2 e) from a polynomial and the exponent bits */
{
    union { float f; uint32_t u; } v;
    float t, fr, p;
    int32_t i;
    if (x < -87.0f) {
        return 0.0f;
    }
    t = x * 1.44269504f;
    i = (int32_t)t;
    if ((float)i > t) {
        i -= 1;
    }
    fr = t - (float)i;
    p = 1.0f + fr * (0.693147182f + fr * (0.240226507f + fr * (0.0555041087f + fr * (0.00961812911f +
        fr * 0.00133335581f))));
    v.u = (uint32_t)(i + 127) << 23;
    return p * v.f;
}

F_UNUSED static float f_log(float x) /* x > 0 */
{
    union { float f; uint32_t u; } v;
    float m, s, s2;
    int32_t e;
    v.f = x;
    e = (int32_t)((v.u >> 23) & 255u) - 127;
    v.u = (v.u & 0x7FFFFFu) | 0x3F800000u;
    m = v.f;
    s = (m - 1.0f) / (m + 1.0f);
    s2 = s * s;
    return 0.693147182f * (float)e + 2.0f * s * (1.0f + s2 * (0.333333343f + s2 * (0.2f + s2 * 0.142857149f)));
}

F_UNUSED static void f_linear_fwd(const float *x, const float *w, const float *b, float *y, size_t B, size_t K, size_t N)
{
    size_t i, n, k;
    for (i = 0; i < B; ++i) {
        for (n = 0; n < N; ++n) {
            const float *wn = w + n * K, *xi = x + i * K;
            float s = b != NULL ? b[n] : 0.0f;
            for (k = 0; k < K; ++k) {
                s += wn[k] * xi[k];
            }
            y[i * N + n] = s;
        }
    }
}

F_UNUSED static void f_linear_bwd_input(const float *e, const float *w, float *e_in, size_t B, size_t K, size_t N)
{
    size_t i, n, k;
    for (i = 0; i < B; ++i) {
        float *row = e_in + i * K;
        for (k = 0; k < K; ++k) {
            row[k] = 0.0f;
        }
        for (n = 0; n < N; ++n) {
            float en = e[i * N + n];
            const float *wn = w + n * K;
            if (en == 0.0f) {
                continue;
            }
            for (k = 0; k < K; ++k) {
                row[k] += en * wn[k];
            }
        }
    }
}

/* w -= lr_b * e^T x (row by row, the gradient never stored), b -= lr_b * sum e */
F_UNUSED static void f_linear_update(const float *e, const float *x, float *w, float *b, size_t B, size_t K, size_t N,
                            float lr_b)
{
    size_t i, n, k;
    for (n = 0; n < N; ++n) {
        if (w != NULL) {
            float *wn = w + n * K;
            if (B == 1) {
                float s = lr_b * e[n];
                if (s != 0.0f) {
                    const uint32_t *xb = (const uint32_t *)(const void *)x;
                    for (k = 0; k < K; ++k) {
                        if (xb[k] << 1) { /* as the integer update: skip zero inputs (a bit test, no float compare) */
                            wn[k] -= s * x[k];
                        }
                    }
                }
            } else {
                for (k = 0; k < K; ++k) {
                    float g = 0.0f;
                    for (i = 0; i < B; ++i) {
                        g += e[i * N + n] * x[i * K + k];
                    }
                    wn[k] -= lr_b * g;
                }
            }
        }
        if (b != NULL) {
            float g = 0.0f;
            for (i = 0; i < B; ++i) {
                g += e[i * N + n];
            }
            b[n] -= lr_b * g;
        }
    }
}

F_UNUSED static void f_relu(const float *x, float *y, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        y[i] = x[i] > 0.0f ? x[i] : 0.0f;
    }
}

F_UNUSED static void f_relu_bwd(const float *e, const float *y, float *e_in, size_t n)
{
    size_t i;
    for (i = 0; i < n; ++i) {
        e_in[i] = y[i] > 0.0f ? e[i] : 0.0f;
    }
}

F_UNUSED static void f_conv_fwd(const float *x, const float *w, const float *b, float *y, const f_conv_t *s)
{
    size_t i, o, p, q, ci, a, c, cin_g = s->cin / s->groups, cout_g = s->cout / s->groups;
    for (i = 0; i < s->batch; ++i) {
        for (o = 0; o < s->cout; ++o) {
            size_t g = o / cout_g;
            for (p = 0; p < s->out_h; ++p) {
                for (q = 0; q < s->out_w; ++q) {
                    float acc = b != NULL ? b[o] : 0.0f;
                    for (ci = 0; ci < cin_g; ++ci) {
                        const float *xc = x + (i * s->cin + g * cin_g + ci) * s->in_h * s->in_w;
                        const float *wc = w + (o * cin_g + ci) * s->kh * s->kw;
                        for (a = 0; a < s->kh; ++a) {
                            ptrdiff_t yy = (ptrdiff_t)(p * s->sh + a) - (ptrdiff_t)s->ph;
                            if (yy < 0 || yy >= (ptrdiff_t)s->in_h) {
                                continue;
                            }
                            for (c = 0; c < s->kw; ++c) {
                                ptrdiff_t xx = (ptrdiff_t)(q * s->sw + c) - (ptrdiff_t)s->pw;
                                if (xx < 0 || xx >= (ptrdiff_t)s->in_w) {
                                    continue;
                                }
                                acc += wc[a * s->kw + c] * xc[(size_t)yy * s->in_w + (size_t)xx];
                            }
                        }
                    }
                    y[((i * s->cout + o) * s->out_h + p) * s->out_w + q] = acc;
                }
            }
        }
    }
}

/* transposed convolution: scatter every error through the kernel */
F_UNUSED static void f_conv_bwd_input(const float *e, const float *w, float *e_in, const f_conv_t *s)
{
    size_t i, o, p, q, ci, a, c, n = s->batch * s->cin * s->in_h * s->in_w;
    size_t cin_g = s->cin / s->groups, cout_g = s->cout / s->groups;
    for (i = 0; i < n; ++i) {
        e_in[i] = 0.0f;
    }
    for (i = 0; i < s->batch; ++i) {
        for (o = 0; o < s->cout; ++o) {
            size_t g = o / cout_g;
            for (p = 0; p < s->out_h; ++p) {
                for (q = 0; q < s->out_w; ++q) {
                    float ev = e[((i * s->cout + o) * s->out_h + p) * s->out_w + q];
                    if (ev == 0.0f) {
                        continue;
                    }
                    for (ci = 0; ci < cin_g; ++ci) {
                        float *ec = e_in + (i * s->cin + g * cin_g + ci) * s->in_h * s->in_w;
                        const float *wc = w + (o * cin_g + ci) * s->kh * s->kw;
                        for (a = 0; a < s->kh; ++a) {
                            ptrdiff_t yy = (ptrdiff_t)(p * s->sh + a) - (ptrdiff_t)s->ph;
                            if (yy < 0 || yy >= (ptrdiff_t)s->in_h) {
                                continue;
                            }
                            for (c = 0; c < s->kw; ++c) {
                                ptrdiff_t xx = (ptrdiff_t)(q * s->sw + c) - (ptrdiff_t)s->pw;
                                if (xx < 0 || xx >= (ptrdiff_t)s->in_w) {
                                    continue;
                                }
                                ec[(size_t)yy * s->in_w + (size_t)xx] += ev * wc[a * s->kw + c];
                            }
                        }
                    }
                }
            }
        }
    }
}

/* per output channel: each weight's gradient summed over positions, applied at once */
F_UNUSED static void f_conv_update(const float *e, const float *x, float *w, float *b, const f_conv_t *s, float lr_b)
{
    size_t i, o, p, q, ci, a, c, cin_g = s->cin / s->groups, cout_g = s->cout / s->groups;
    for (o = 0; o < s->cout; ++o) {
        size_t g = o / cout_g;
        if (w != NULL) {
            for (ci = 0; ci < cin_g; ++ci) {
                for (a = 0; a < s->kh; ++a) {
                    for (c = 0; c < s->kw; ++c) {
                        float acc = 0.0f;
                        for (i = 0; i < s->batch; ++i) {
                            const float *eo = e + (i * s->cout + o) * s->out_h * s->out_w;
                            const float *xc = x + (i * s->cin + g * cin_g + ci) * s->in_h * s->in_w;
                            for (p = 0; p < s->out_h; ++p) {
                                ptrdiff_t yy = (ptrdiff_t)(p * s->sh + a) - (ptrdiff_t)s->ph;
                                if (yy < 0 || yy >= (ptrdiff_t)s->in_h) {
                                    continue;
                                }
                                for (q = 0; q < s->out_w; ++q) {
                                    ptrdiff_t xx = (ptrdiff_t)(q * s->sw + c) - (ptrdiff_t)s->pw;
                                    if (xx < 0 || xx >= (ptrdiff_t)s->in_w) {
                                        continue;
                                    }
                                    acc += eo[p * s->out_w + q] * xc[(size_t)yy * s->in_w + (size_t)xx];
                                }
                            }
                        }
                        w[((o * cin_g + ci) * s->kh + a) * s->kw + c] -= lr_b * acc;
                    }
                }
            }
        }
        if (b != NULL) {
            float acc = 0.0f;
            for (i = 0; i < s->batch; ++i) {
                const float *eo = e + (i * s->cout + o) * s->out_h * s->out_w;
                for (p = 0; p < s->out_h * s->out_w; ++p) {
                    acc += eo[p];
                }
            }
            b[o] -= lr_b * acc;
        }
    }
}

F_UNUSED static void f_maxpool_fwd(const float *x, float *y, uint16_t *arg, const f_pool_t *s)
{
    size_t bc, p, q, a, c, n = 0;
    for (bc = 0; bc < s->batch * s->ch; ++bc) {
        const float *xc = x + bc * s->in_h * s->in_w;
        for (p = 0; p < s->out_h; ++p) {
            for (q = 0; q < s->out_w; ++q, ++n) {
                const float *win = xc + p * s->sh * s->in_w + q * s->sw;
                float best = win[0];
                uint16_t best_at = 0;
                for (a = 0; a < s->kh; ++a) {
                    for (c = 0; c < s->kw; ++c) {
                        if (win[a * s->in_w + c] > best) {
                            best = win[a * s->in_w + c];
                            best_at = (uint16_t)(a * s->in_w + c);
                        }
                    }
                }
                y[n] = best;
                arg[n] = best_at;
            }
        }
    }
}

F_UNUSED static void f_maxpool_bwd(const float *e, const uint16_t *arg, float *e_in, const f_pool_t *s)
{
    size_t bc, p, q, i, n = 0, plane = s->in_h * s->in_w;
    for (i = 0; i < s->batch * s->ch * plane; ++i) {
        e_in[i] = 0.0f;
    }
    for (bc = 0; bc < s->batch * s->ch; ++bc) {
        float *ec = e_in + bc * plane;
        for (p = 0; p < s->out_h; ++p) {
            for (q = 0; q < s->out_w; ++q, ++n) {
                ec[p * s->sh * s->in_w + q * s->sw + arg[n]] += e[n];
            }
        }
    }
}

F_UNUSED static void f_avgpool_fwd(const float *x, float *y, const f_pool_t *s)
{
    size_t bc, p, q, a, c, n = 0;
    float inv = 1.0f / (float)(s->kh * s->kw);
    for (bc = 0; bc < s->batch * s->ch; ++bc) {
        const float *xc = x + bc * s->in_h * s->in_w;
        for (p = 0; p < s->out_h; ++p) {
            for (q = 0; q < s->out_w; ++q, ++n) {
                const float *win = xc + p * s->sh * s->in_w + q * s->sw;
                float acc = 0.0f;
                for (a = 0; a < s->kh; ++a) {
                    for (c = 0; c < s->kw; ++c) {
                        acc += win[a * s->in_w + c];
                    }
                }
                y[n] = acc * inv;
            }
        }
    }
}

F_UNUSED static void f_avgpool_bwd(const float *e, float *e_in, const f_pool_t *s)
{
    size_t bc, p, q, a, c, i, n = 0, plane = s->in_h * s->in_w;
    float inv = 1.0f / (float)(s->kh * s->kw);
    for (i = 0; i < s->batch * s->ch * plane; ++i) {
        e_in[i] = 0.0f;
    }
    for (bc = 0; bc < s->batch * s->ch; ++bc) {
        float *ec = e_in + bc * plane;
        for (p = 0; p < s->out_h; ++p) {
            for (q = 0; q < s->out_w; ++q, ++n) {
                float v = e[n] * inv;
                for (a = 0; a < s->kh; ++a) {
                    for (c = 0; c < s->kw; ++c) {
                        ec[(p * s->sh + a) * s->in_w + q * s->sw + c] += v;
                    }
                }
            }
        }
    }
}

F_UNUSED static void f_gap_fwd(const float *x, float *y, size_t bc_count, size_t positions)
{
    size_t bc, k;
    float inv = 1.0f / (float)positions;
    for (bc = 0; bc < bc_count; ++bc) {
        float acc = 0.0f;
        for (k = 0; k < positions; ++k) {
            acc += x[bc * positions + k];
        }
        y[bc] = acc * inv;
    }
}

F_UNUSED static void f_gap_bwd(const float *e, float *e_in, size_t bc_count, size_t positions)
{
    size_t bc, k;
    float inv = 1.0f / (float)positions;
    for (bc = 0; bc < bc_count; ++bc) {
        float v = e[bc] * inv;
        for (k = 0; k < positions; ++k) {
            e_in[bc * positions + k] = v;
        }
    }
}

/* softmax cross-entropy: err = p - onehot; returns the summed loss (nats) */
F_UNUSED static float f_softmax_xent(const float *z, const uint16_t *labels, float *err, size_t B, size_t C)
{
    size_t i, j;
    float loss = 0.0f;
    for (i = 0; i < B; ++i) {
        const float *zi = z + i * C;
        float *ei = err + i * C;
        float zmax = zi[0], total = 0.0f, inv;
        for (j = 1; j < C; ++j) {
            if (zi[j] > zmax) {
                zmax = zi[j];
            }
        }
        for (j = 0; j < C; ++j) {
            ei[j] = f_exp(zi[j] - zmax);
            total += ei[j];
        }
        inv = 1.0f / total;
        for (j = 0; j < C; ++j) {
            ei[j] *= inv;
        }
        loss -= f_log(ei[labels[i]] > 1e-30f ? ei[labels[i]] : 1e-30f);
        ei[labels[i]] -= 1.0f;
    }
    return loss;
}

/* MSE: err = y - t; returns half the summed square */
F_UNUSED static float f_mse(const float *y, const float *t, float *err, size_t n)
{
    size_t i;
    float loss = 0.0f;
    for (i = 0; i < n; ++i) {
        err[i] = y[i] - t[i];
        loss += 0.5f * err[i] * err[i];
    }
    return loss;
}

F_UNUSED static uint16_t f_argmax(const float *z, size_t C)
{
    size_t j, best = 0;
    for (j = 1; j < C; ++j) {
        if (z[j] > z[best]) {
            best = j;
        }
    }
    return (uint16_t)best;
}
"""


@dataclass(frozen=True)
class ReferenceSources:
    """The rendered reference project: ``files`` (name -> text) and its sizes."""

    files: dict
    input_size: int
    batch_size: int
    classes: int | None
    macs_per_step: int


def _trained_layers(model, trained: dict) -> tuple[dict, int]:
    """layer index -> (weight trained, bias trained); and the first trained layer."""
    flags = {}
    for i, layer in enumerate(model.layers):
        w = getattr(layer, "weight", None)
        b = getattr(layer, "bias", None)
        flags[i] = (w is not None and w.name in trained, b is not None and b.name in trained)
    first = next((i for i, (w, b) in flags.items() if w or b), len(model.layers))
    return flags, first


def render_reference(model, *, batch_size: int, trained: dict, lr: float, label_ctype: str = "uint16_t",
                     target_exponent: int = 0) -> ReferenceSources:
    """C of the float reference training step of ``model`` (``tt_ref_model.c``) and its API
    header. ``trained``: parameter name -> rows (as ``TrainingProgram.trained``); ``lr``: the
    learning rate (already the integer optimiser's effective value)."""
    kinds = [type(layer).__name__ for layer in model.layers]
    bad = sorted({k for k in kinds if k not in _SUPPORTED})
    if bad:
        raise CodegenError(f"the reference C supports {', '.join(_SUPPORTED)} layers, not {', '.join(bad)}")
    B = int(batch_size)
    shapes = [tuple(s) for s in model.shapes]
    flags, first = _trained_layers(model, trained)
    decl, fwd, bwd, init = [], [], [], []
    acts = ["tt_x"]  # activation array of each layer's input
    decl.append(f"float tt_x[{B * _size(shapes[0])}];")
    macs = 0
    consts = []
    for i, layer in enumerate(model.layers):
        k = kinds[i]
        out_n = B * _size(shapes[i + 1])
        in_n = B * _size(shapes[i])
        y = f"tt_a{i}"
        if k == "Flatten":
            acts.append(acts[-1])
            continue
        decl.append(f"static float {y}[{out_n}];")
        x = acts[-1]
        if k == "Linear":
            K, N = layer.in_features, layer.out_features
            for p in layer.parameters():
                consts.append(_farray(f"tt_p{i}_{p.kind}", _real(p),
                                      const=not (flags[i][0] if p.kind == "weight" else flags[i][1])))
            bias = f"tt_p{i}_bias" if layer.bias is not None else "NULL"
            fwd.append(f"f_linear_fwd({x}, tt_p{i}_weight, {bias}, {y}, {B}u, {K}u, {N}u);")
            macs += B * K * N
        elif k == "ReLU":
            fwd.append(f"f_relu({x}, {y}, {out_n}u);")
        elif k in ("Conv2d", "Conv1d"):
            d = 2 if k == "Conv2d" else 1
            cin = shapes[i][0]
            ih, iw = (shapes[i][1], shapes[i][2]) if d == 2 else (1, shapes[i][1])
            oh, ow = (shapes[i + 1][1], shapes[i + 1][2]) if d == 2 else (1, shapes[i + 1][1])
            kh, kw = tuple(layer.kernel_size) if d == 2 else (1, layer.kernel_size[0])
            sh, sw = tuple(layer.stride) if d == 2 else (1, layer.stride[0])
            ph, pw = tuple(layer.padding) if d == 2 else (0, layer.padding[0])
            vals = (B, cin, ih, iw, layer.out_channels, kh, kw, sh, sw, ph, pw, layer.groups, oh, ow)
            consts.append(f"static const f_conv_t tt_s{i} = {{{', '.join(f'{v}u' for v in vals)}}};\n")
            for p in layer.parameters():
                consts.append(_farray(f"tt_p{i}_{p.kind}", _real(p),
                                      const=not (flags[i][0] if p.kind == "weight" else flags[i][1])))
            bias = f"tt_p{i}_bias" if layer.bias is not None else "NULL"
            fwd.append(f"f_conv_fwd({x}, tt_p{i}_weight, {bias}, {y}, &tt_s{i});")
            macs += B * layer.out_channels * oh * ow * layer.fan_in
        elif k in ("MaxPool2d", "MaxPool1d", "AvgPool2d", "AvgPool1d"):
            d = 2 if k.endswith("2d") else 1
            c = shapes[i][0]
            ih, iw = (shapes[i][1], shapes[i][2]) if d == 2 else (1, shapes[i][1])
            oh, ow = (shapes[i + 1][1], shapes[i + 1][2]) if d == 2 else (1, shapes[i + 1][1])
            kh, kw = tuple(layer.kernel_size) if d == 2 else (1, layer.kernel_size[0])
            sh, sw = tuple(layer.stride) if d == 2 else (1, layer.stride[0])
            vals = (B, c, ih, iw, kh, kw, sh, sw, oh, ow)
            consts.append(f"static const f_pool_t tt_s{i} = {{{', '.join(f'{v}u' for v in vals)}}};\n")
            if k.startswith("Max"):
                decl.append(f"static uint16_t tt_arg{i}[{out_n}];")
                fwd.append(f"f_maxpool_fwd({x}, {y}, tt_arg{i}, &tt_s{i});")
            else:
                fwd.append(f"f_avgpool_fwd({x}, {y}, &tt_s{i});")
        elif k == "GlobalAvgPool":
            c = shapes[i][0]
            fwd.append(f"f_gap_fwd({x}, {y}, {B * c}u, {_size(shapes[i][1:])}u);")
        acts.append(y)
    logits = acts[-1]
    n_out = _size(shapes[-1])
    ce = model.loss == "cross_entropy"
    decl.append(f"static float tt_err_out[{B * n_out}];")
    # backward, from the last layer down to the first trained one (as Sequential.backward)
    err = "tt_err_out"
    for i in range(len(model.layers) - 1, first - 1, -1):
        layer, k = model.layers[i], kinds[i]
        need_in = i > first
        x, y = acts[i], acts[i + 1]
        e_in = f"tt_e{i}"
        in_n = B * _size(shapes[i])
        if k == "Flatten":
            continue  # the error is the same array
        if need_in:
            decl.append(f"static float {e_in}[{in_n}];")
        wt, bt = flags[i]
        if k == "Linear":
            K, N = layer.in_features, layer.out_features
            if need_in:
                bwd.append(f"f_linear_bwd_input({err}, tt_p{i}_weight, {e_in}, {B}u, {K}u, {N}u);")
                macs += B * K * N
            if wt or bt:
                w = f"tt_p{i}_weight" if wt else "NULL"
                b = f"tt_p{i}_bias" if bt and layer.bias is not None else "NULL"
                bwd.append(f"f_linear_update({err}, {x}, {w}, {b}, {B}u, {K}u, {N}u, tt_lr_b);")
                macs += B * K * N if wt else 0
        elif k == "ReLU":
            if need_in:
                bwd.append(f"f_relu_bwd({err}, {y}, {e_in}, {in_n}u);")
        elif k in ("Conv2d", "Conv1d"):
            if need_in:
                bwd.append(f"f_conv_bwd_input({err}, tt_p{i}_weight, {e_in}, &tt_s{i});")
            if wt or bt:
                w = f"tt_p{i}_weight" if wt else "NULL"
                b = f"tt_p{i}_bias" if bt and layer.bias is not None else "NULL"
                bwd.append(f"f_conv_update({err}, {x}, {w}, {b}, &tt_s{i}, tt_lr_b);")
        elif k in ("MaxPool2d", "MaxPool1d"):
            if need_in:
                bwd.append(f"f_maxpool_bwd({err}, tt_arg{i}, {e_in}, &tt_s{i});")
        elif k in ("AvgPool2d", "AvgPool1d"):
            if need_in:
                bwd.append(f"f_avgpool_bwd({err}, {e_in}, &tt_s{i});")
        elif k == "GlobalAvgPool":
            if need_in:
                bwd.append(f"f_gap_bwd({err}, {e_in}, {B * shapes[i][0]}u, {_size(shapes[i][1:])}u);")
        err = e_in
    lab_n = B if ce else B * n_out
    head = "\n".join([
        "/* tt_ref_model.h - float reference training step (generated by tintin, for measurements). */",
        "#ifndef TT_REF_MODEL_H", "#define TT_REF_MODEL_H", "#include <stdint.h>", "#include <stddef.h>",
        f"#define TT_REF_BATCH {B}u", f"#define TT_REF_INPUT {_size(shapes[0])}u", f"#define TT_REF_OUTPUT {n_out}u",
        f"#define TT_REF_LABELS {1 if ce else n_out}u",
        f"#define TT_REF_CLASSIFIER {1 if ce else 0}",
        f"extern float tt_x[{B * _size(shapes[0])}];",
        f"extern {'uint16_t' if ce else 'float'} tt_y[{lab_n}];",
        "/* one training step on tt_x / tt_y; returns the summed loss and writes predictions */",
        "float tt_ref_train_step(uint16_t *predictions);",
        "/* FNV-1a over the bits of every parameter */",
        "uint32_t tt_ref_checksum(void);",
        "#endif", ""])
    pred = (f"    for (i = 0; i < {B}u; ++i) {{\n        predictions[i] = f_argmax({logits} + i * {n_out}u, {n_out}u);\n    }}\n"
            if ce else "    (void)predictions;\n    (void)i;\n")
    loss = (f"f_softmax_xent({logits}, tt_y, tt_err_out, {B}u, {n_out}u)" if ce
            else f"f_mse({logits}, tt_y, tt_err_out, {B * n_out}u)")
    params = [f"tt_p{i}_{p.kind}" for i, layer in enumerate(model.layers) for p in layer.parameters()]
    sizes = [p.value.m.size for layer in model.layers for p in layer.parameters()]
    cks = "".join(f"    h = fnv(h, (const uint8_t *)(const void *){n}, {4 * s}u);\n" for n, s in zip(params, sizes))
    body = "\n".join([
        "/* tt_ref_model.c - float reference of `%s` (generated by tintin, for measurements only). */" % model.name,
        '#include "tt_ref_model.h"',
        _KERNELS,
        comment(f"learning rate / batch: {lr} / {B}"),
        f"static const float tt_lr_b = {_f(lr / B)};",
        "",
        *consts,
        *decl,
        f"{'uint16_t' if ce else 'float'} tt_y[{lab_n}];",
        "",
        "float tt_ref_train_step(uint16_t *predictions)",
        "{",
        "    float loss;",
        "    size_t i;",
        *("    " + s for s in fwd),
        pred.rstrip("\n"),
        f"    loss = {loss};",
        *("    " + s for s in bwd),
        "    return loss;",
        "}",
        "",
        "static uint32_t fnv(uint32_t h, const uint8_t *p, size_t n)",
        "{",
        "    size_t i;",
        "    for (i = 0; i < n; ++i) {",
        "        h = (h ^ p[i]) * 16777619UL;",
        "    }",
        "    return h;",
        "}",
        "",
        "uint32_t tt_ref_checksum(void)",
        "{",
        "    uint32_t h = 0x811C9DC5UL;",
        cks.rstrip("\n"),
        "    return h;",
        "}",
        ""])
    _ = target_exponent, label_ctype, init
    return ReferenceSources({"tt_ref_model.h": head, "tt_ref_model.c": body}, _size(shapes[0]), B,
                            n_out if ce else None, macs)


def render_reference_driver(*, x_samples, y_samples, order, steps: int, batch_size: int, input_exponent: int,
                            classifier: bool, target_exponent: int = 0) -> dict:
    """``main()`` for the reference: the same embedded samples and order as the integer driver;
    each sample is converted to float (outside the measured region), then one marked step."""
    from ..cgen import c_array as _ca

    x = np.ascontiguousarray(x_samples, dtype=np.int8).reshape(len(x_samples), -1)
    order = np.asarray(order, dtype=np.int64).ravel()[:steps * batch_size]
    y = np.asarray(y_samples).reshape(len(x), -1)
    n_in = x.shape[1]
    ny = y.shape[1]
    data = "\n".join([
        "/* tt_ref_data.c - samples of the measured run (generated by tintin). */",
        '#include <stdint.h>', '#include "tt_rom.h"', "",
        _ca("int8_t", "tt_ref_data_x", x, static=False, rom=True, per_line=32),
        _ca("int16_t", "tt_ref_data_y", y, static=False, rom=True, per_line=32),
        _ca("uint16_t", "tt_ref_order", order if order.size else np.zeros(1), static=False, rom=True), ""])
    in_scale = _f(2.0 ** input_exponent)
    t_scale = _f(2.0 ** target_exponent)
    label = ("tt_y[b] = (uint16_t)rom16s(tt_ref_data_y, idx);" if classifier else
             f"for (i = 0; i < {ny}u; ++i) {{ tt_y[b * {ny}u + i] = (float)rom16s(tt_ref_data_y, idx * {ny}u + i) * {t_scale}; }}")
    main = f"""/* tt_ref_driver.c - measured float reference run (generated by tintin). */
#include "tt_platform.h"
#include "tt_rom.h"
#include "tt_ref_model.h"

extern const int8_t tt_ref_data_x[{max(x.size, 1)}];
extern const int16_t tt_ref_data_y[{max(y.size, 1)}];
extern const uint16_t tt_ref_order[{max(order.size, 1)}];

static int16_t rom16s(const int16_t *t, uint32_t i)
{{
    const uint8_t *p = (const uint8_t *)(const void *)t;
    return (int16_t)(uint16_t)(tt_rom_u8(p + 2u * i) | ((uint16_t)tt_rom_u8(p + 2u * i + 1u) << 8));
}}

int main(void)
{{
    static uint16_t pred[TT_REF_BATCH];
    uint32_t step, i, b;
    tt_platform_init();
    for (step = 0; step < {steps}UL; ++step) {{
        float loss;
        for (b = 0; b < TT_REF_BATCH; ++b) {{
            const uint8_t *o = (const uint8_t *)(const void *)tt_ref_order;
            uint32_t k = step * TT_REF_BATCH + b;
            uint32_t idx = (uint32_t)tt_rom_u8(o + 2u * k) | ((uint32_t)tt_rom_u8(o + 2u * k + 1u) << 8);
            for (i = 0; i < {n_in}u; ++i) {{
                tt_x[b * {n_in}u + i] = (float)(int8_t)tt_rom_u8((const uint8_t *)(const void *)tt_ref_data_x + idx * {n_in}u + i) * {in_scale};
            }}
            {label}
        }}
        tt_bench_mark();
        loss = tt_ref_train_step(pred);
        tt_bench_mark();
        tt_putc('F'); tt_putc(' '); tt_put_u32(step); tt_putc(' ');
        tt_put_i32((int32_t)(loss * 65536.0f));
        for (b = 0; b < TT_REF_BATCH; ++b) {{
            tt_putc(' ');
            tt_put_u32(pred[b]);
        }}
        tt_putc('\\n');
    }}
    tt_putc('W'); tt_putc(' '); tt_put_hex32(tt_ref_checksum()); tt_putc('\\n');
    tt_putc('E'); tt_putc('N'); tt_putc('D'); tt_putc('\\n');
    return 0;
}}
"""
    return {"tt_ref_driver.c": main, "tt_ref_data.c": data}
