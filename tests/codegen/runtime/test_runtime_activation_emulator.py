"""Differential property test of the ReLU kernels on the Arm cores.

On cores with the DSP extension (Cortex-M4, M33) ``tt_relu_forward_s8`` and ``tt_relu_backward_s8``
take four int8 lanes per word (SSUB8 + SEL) and the last ``count % 4`` values one by one; the
Cortex-M3 keeps the byte loop. Each example runs both kernels on random values (the full int8 range,
zeros included) at every length and buffer offset, into separate buffers and in place, and compares
them with ``tintin.ops``.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.numerics import QTensor, Scale
from tintin.ops import relu_backward_s8, relu_forward_s8
from tintin.targets import build, run, toolchain_status

from test_runtime_emulator import PRINT_HELPERS_C, c_array, parse


def program(x: np.ndarray, e: np.ndarray, offset: int) -> str:
    """Forward into a separate buffer and in place, backward into a separate buffer and in place
    over the errors; the buffers start ``offset`` bytes into a word."""
    n = len(x)
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
{c_array("int8_t", "x0", x)}{c_array("int8_t", "e0", e)}
static int8_t buf[4 * ({n} + 8)];
{PRINT_HELPERS_C}
int main(void)
{{
    tt_scale_t s = {{0, 0, 0}};
    int8_t *x = buf + {offset}, *y = x + {n} + 3, *e = y + {n} + 1, *ein = e + {n} + 2;
    size_t i;
    tt_platform_init();
    for (i = 0; i < {n}u; ++i) {{ x[i] = x0[i]; e[i] = e0[i]; }}
    ok(tt_relu_forward_s8(x, {n}u, y));
    put("y", s, NULL, y, {n}u);
    ok(tt_relu_backward_s8(e, y, {n}u, ein));
    put("ein", s, NULL, ein, {n}u);
    ok(tt_relu_backward_s8(e, y, {n}u, e));
    put("ein_in_place", s, NULL, e, {n}u);
    ok(tt_relu_forward_s8(x, {n}u, x));
    put("y_in_place", s, NULL, x, {n}u);
    return 0;
}}
"""


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m33", "cortex-m3"])
@settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(1, 37), offset=st.integers(0, 3), seed=st.integers(0, 2**32 - 1))
def test_relu_on_cortex_m(tmp_path_factory, target, n, offset, seed):
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    rng = np.random.default_rng(seed)
    x = rng.integers(-128, 128, n).astype(np.int8)
    x[rng.random(n) < 0.3] = 0
    e = rng.integers(-128, 128, n).astype(np.int8)
    out = tmp_path_factory.mktemp(target)
    src = out / "relu.c"
    src.write_text(program(x, e, offset))
    b = build(target, [src, *sorted(RUNTIME_DIR.glob("*.c"))], out, include_dirs=[RUNTIME_DIR], opt="-O2",
              extra_cflags=("-Werror",))
    got = parse(run(target, b, timeout_s=60).stdout)
    y = relu_forward_s8(QTensor(x, Scale(0)))
    ein = relu_backward_s8(QTensor(e, Scale(0)), y)
    want_y = [int(v) for v in y.m]
    want_e = [int(v) for v in ein.m]
    assert got["y"][1] == want_y
    assert got["y_in_place"][1] == want_y
    assert got["ein"][1] == want_e
    assert got["ein_in_place"][1] == want_e
