"""The AVR weight update (``tt_sgd_update_weight_skip0_s8`` on the ATmega328P) equals
:meth:`tintin.optim.IntegerSGD.update` bit for bit.

On AVR the zero-skipping update of int8 weights runs an assembly loop (``avr_skip0_run`` in
``tt_sgd.c``): the stochastic step is the high word of ``(|g| * M << (32 - n)) + draw``, the product
formed from 8x8->16 MULs and the shift taken by whole bytes. Each example builds one program with
several random updates (weight scales, gradient scales and learning rates that give every shift
``n`` from 1 to 31, so every byte offset of the product; gradients around the 2**15 bound of the
assembly loop; weights at the edge of the range, so that new values leave it and the tensor is
rescaled or saturated), runs it on simavr and compares every new weight and scale with the Python.
"""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse
from test_runtime_sgd import python_step
from tintin.codegen import RUNTIME_DIR
from tintin.codegen.runtime_files import runtime_files_for
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode
from tintin.optim import OptimConfig
from tintin.targets import build, run, toolchain_status

TARGET = "atmega328p"


@st.composite
def skip0_case(draw):
    """(weights, gradient, config, mode, batch, seed): one skip0 update"""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n, k = draw(st.integers(1, 4)), draw(st.integers(1, 8))
    wmax = draw(st.sampled_from([0, 3, 63, 127]))
    w = rng.integers(-wmax, wmax + 1, (n, k)).astype(np.int8)
    if wmax and draw(st.booleans()):
        w.flat[0] = 127 if draw(st.booleans()) else -127
    gmax = draw(st.sampled_from([1, 200, 16129, 32767, 32768, 2**20]))
    g = rng.integers(-gmax, gmax + 1, (n, k)).astype(np.int32)
    g[rng.random((n, k)) < draw(st.sampled_from([0.0, 0.5]))] = 0
    w_scale = Scale(draw(st.integers(-14, -4)), draw(st.integers(0, 2)), draw(st.integers(0, 2)))
    g_scale = Scale(draw(st.integers(-34, -8)), draw(st.integers(-2, 2)), draw(st.integers(-2, 2)))
    cfg = OptimConfig(rule="aligned", lr=draw(st.sampled_from([0.01, 0.05, 0.5, 1.7])), rounding=Rounding.STOCHASTIC,
                      momentum_shift=0, weight_rescale=draw(st.booleans()))
    mode = draw(st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND]))
    return QTensor(w, w_scale), QTensor(g, g_scale), cfg, mode, draw(st.integers(1, 4)), draw(st.integers(0, 2**32 - 1))


def program(updates) -> str:
    """C calling tt_sgd_update_weight_skip0_s8 once per (weights, gradient, SgdConfig, key)"""
    decls, calls = ["static int8_t w[32];\nstatic int32_t g[32];\n"], []
    for i, (value, grad, c, key) in enumerate(updates):
        count = value.m.size
        decls.append(c_array("int8_t", f"w{i}_0", value.m) + c_array("int32_t", f"g{i}_0", grad.m))
        calls.append(f"""    {{
        tt_scale_t ws = {c_scale(value.scale)};
        const tt_sgd_config_t cfg = {{{c.batch_size}UL, {c_scale(c.lr)}, 0, 1, {1 if c.mode is ScaleMode.COMPOUND else 0},
                                      {c.mu}, 0, {1 if c.weight_rescale else 0}}};
        size_t i;
        for (i = 0; i < {count}u; ++i) {{ w[i] = w{i}_0[i]; g[i] = g{i}_0[i]; }}
        ok(tt_sgd_update_weight_skip0_s8(w, &ws, {count}u, g, (tt_scale_t){c_scale(grad.scale)}, &cfg, {key}UL));
        put("w{i}", ws, NULL, w, {count}u);
    }}""")
    return ('#include "tt_platform.h"\n#include "tt_runtime.h"\n' + "".join(decls) + PRINT_HELPERS_C
            + "int main(void)\n{\n    tt_platform_init();\n" + "\n".join(calls) + "\n    return 0;\n}\n")


@pytest.mark.emulator
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cases=st.lists(skip0_case(), min_size=6, max_size=6))
def test_skip0_update_on_atmega328p(tmp_path_factory, cases):
    from tintin.codegen.host import SgdConfig

    ok, reason = toolchain_status(TARGET)
    if not ok:
        pytest.skip(reason)
    updates, want = [], {}
    for i, (value, grad, cfg, mode, batch, seed) in enumerate(cases):
        pv, _, key, opt = python_step("weight", value, 8, grad, cfg, mode, batch, seed)
        updates.append((value, grad, SgdConfig.from_optimizer(opt), key))
        want[f"w{i}"] = (pv.scale, [int(v) for v in pv.m.ravel()])
    out = tmp_path_factory.mktemp("avr_skip0")
    text = program(updates)
    (out / "skip0.c").write_text(text)
    files = [RUNTIME_DIR / f for f in runtime_files_for([text]) if f.endswith(".c")]
    b = build(TARGET, [out / "skip0.c", *files], out, include_dirs=[RUNTIME_DIR], opt="-Os", extra_cflags=("-Werror",))
    got = parse(run(TARGET, b, timeout_s=60).stdout)
    for name, value in want.items():
        assert got[name] == value, name
