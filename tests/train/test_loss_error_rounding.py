"""``QuantConfig.loss_error_rounding="stochastic"``: the softmax cross-entropy error rounds
stochastically (stream key at LOSS_ERROR_SITE), identically in the simulator, the C kernel (host and
an emulated Cortex-M0), compiled programs and the native backend; the default stays nearest."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.data import load
from tintin.nn import Context, QuantConfig, build_model
from tintin.nn.config import LOSS_ERROR_SITE
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode
from tintin.ops import softmax_cross_entropy_error
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import TrainConfig, fit, train_step

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "codegen" / "runtime"))
from test_runtime_emulator import PRINT_HELPERS_C, c_array, c_scale, parse, run_with_runtime  # noqa: E402

STOCHASTIC = QuantConfig(loss_error_rounding="stochastic")


@st.composite
def logits_case(draw):
    b, c = draw(st.integers(1, 8)), draw(st.integers(2, 20))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m = rng.integers(-127, 128, size=(b, c)).astype(np.int8)
    scale = draw(st.builds(Scale, st.integers(-12, 4), st.integers(-2, 2), st.integers(-2, 2)))
    labels = rng.integers(0, c, size=b).astype(np.int64)
    return QTensor(m, scale), labels


def test_config_validates_and_files_keep_their_bytes():
    assert QuantConfig().loss_error_rounding is Rounding.NEAREST
    assert "loss_error_rounding" not in QuantConfig().to_dict()
    d = STOCHASTIC.to_dict()
    assert d["loss_error_rounding"] == "stochastic" and QuantConfig.from_dict(d) == STOCHASTIC
    for bad in ("pseudo_stochastic", "up"):
        with pytest.raises(ValueError, match="loss_error_rounding"):
            QuantConfig(loss_error_rounding=bad)


@given(case=logits_case(), key=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
@settings(max_examples=60, deadline=None)
def test_c_kernel_is_the_simulators(case, key, mode):
    from tintin.codegen import host as rt
    logits, labels = case
    for rounding, k in ((Rounding.STOCHASTIC, key), (Rounding.NEAREST, None)):
        err, loss = rt.softmax_cross_entropy_error(logits, labels, mode, rounding, k)
        werr, wloss = softmax_cross_entropy_error(logits, labels, mode, rounding, k)
        assert np.array_equal(err.m, werr.m) and err.scale == werr.scale and loss == wloss


def test_stochastic_error_keeps_small_errors_in_expectation():
    # one sample far off sets the batch's error scale; the others' small errors are below half a step
    logits = QTensor(np.array([[40, 0, 0, 0]] + [[0, 60, 0, 0]] * 7, np.int8), Scale(-3))
    labels = np.array([3] + [1] * 7)
    near, _ = softmax_cross_entropy_error(logits, labels, ScaleMode.COMPOUND)
    assert not near.m[1:].any()  # nearest: every well-classified sample's error is lost
    p = np.zeros((7, 4))
    for step in range(400):  # the keys of 400 training steps
        key = RoundingStream(7, step).key(LOSS_ERROR_SITE)
        e, _ = softmax_cross_entropy_error(logits, labels, ScaleMode.COMPOUND, Rounding.STOCHASTIC, key)
        assert e.scale == near.scale
        p += e.m[1:] * e.scale.to_float()
    from tintin.ops import softmax_probabilities_q15
    exact = softmax_probabilities_q15(logits)[1:] / 2**15 - np.eye(4)[labels[1:]]
    assert np.allclose(p / 400, exact, atol=0.3 * near.scale.to_float())


def test_training_step_draws_at_the_loss_error_site():
    ds = load("digits")
    x, y = ds.x_train[:16], ds.y_train[:16]
    bits = []
    for seed in (0, 0, 1):
        model = build_model("mlp", ds.sample_shape, ds.num_classes, STOCHASTIC, seed=0,
                            input_exponent=ds.input_exponent)
        sgd = IntegerSGD(model.parameters(), OptimConfig(lr=0.5), model.config.scale_mode)
        train_step(model, sgd, x, y, Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed)))
        bits.append([p.value.m.copy() for p in model.parameters()])
    same = lambda a, b: all(np.array_equal(u, v) for u, v in zip(a, b))
    assert same(bits[0], bits[1]) and not same(bits[0], bits[2])  # same seed, same bits
    # the loss error's key is the stream's key at LOSS_ERROR_SITE
    model = build_model("mlp", ds.sample_shape, ds.num_classes, STOCHASTIC, seed=0, input_exponent=ds.input_exponent)
    from tintin.train.step import loss_error
    ctx = Context(mode=model.config.scale_mode, training=False, stream=RoundingStream(5, 7))
    out = model.forward(QTensor(x, Scale(model.input_exponent)), ctx)
    err, _ = loss_error(model, out, y, ctx=ctx)
    want, _ = softmax_cross_entropy_error(out, y, model.config.scale_mode, Rounding.STOCHASTIC,
                                          RoundingStream(5, 7).key(LOSS_ERROR_SITE))
    assert np.array_equal(err.m, want.m)
    with pytest.raises(ValueError, match="rounding stream"):
        loss_error(model, out, y)


def _params(model):
    return [(p.name, p.value.m.copy(), p.value.scale, None if p.row_exp is None else p.row_exp.copy())
            for p in model.parameters()]


def _same(a, b):
    return all(na == nb and np.array_equal(ma, mb) and sa == sb and
               ((ea is None and eb is None) or np.array_equal(ea, eb))
               for (na, ma, sa, ea), (nb, mb, sb, eb) in zip(a, b))


@pytest.mark.parametrize("name,dataset,n,qconf,batch", [
    ("mlp", "digits", 300, STOCHASTIC, 32),
    ("mlp", "digits", 300, QuantConfig(loss_error_rounding="stochastic", row_scales=True, scale_mode="pow2"), 16),
    ("lenet5", "mnist5k", 48, STOCHASTIC, 16),
])
def test_compiled_program_and_native_backend_are_the_simulators(name, dataset, n, qconf, batch):
    from tintin.compile import ProgramExecutor, compile_program
    from tintin.targets.native import fit_native, native_available

    ds = load(dataset)
    config = TrainConfig(epochs=2, batch_size=batch, seed=3, optim=OptimConfig(lr=0.5))
    build = lambda: build_model(name, ds.sample_shape, ds.num_classes, qconf, seed=1, input_exponent=ds.input_exponent)
    ref = build()
    fit(ref, ds.x_train[:n], ds.y_train[:n], config, progress=False)
    # the compiled program, one batch after another, as the simulator's first epoch would
    model = build()
    sim = build()
    prog = compile_program(model, "full", batch, config.optim)
    ex = ProgramExecutor(prog)
    ex.load(model)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(3))
    ctx_sim = Context(mode=sim.config.scale_mode, training=True, stream=RoundingStream(3))
    sgd = IntegerSGD(sim.parameters(), config.optim, sim.config.scale_mode)
    for i in range(0, 2 * batch, batch):
        ex.step(ds.x_train[i:i + batch], ds.y_train[i:i + batch], ctx)
        train_step(sim, sgd, ds.x_train[i:i + batch], ds.y_train[i:i + batch], ctx_sim)
    ex.store(model)
    assert _same(_params(model), _params(sim))
    ok, why = native_available()
    if not ok:
        pytest.skip(f"no host C compiler: {why}")
    nat = build()
    fit_native(nat, ds.x_train[:n], ds.y_train[:n], config, progress=False)
    assert _same(_params(nat), _params(ref))


@pytest.mark.emulator
@given(case=logits_case(), key=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)))
@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_c_kernel_on_cortex_m0(tmp_path_factory, case, key, mode):
    logits, labels = case
    b, c = logits.m.shape
    m = "TT_SCALE_COMPOUND" if mode is ScaleMode.COMPOUND else "TT_SCALE_POW2"
    src = f"""#include "tt_platform.h"
#include "tt_runtime.h"
{c_array("int8_t", "y", logits.m)}{c_array("uint16_t", "labels", labels)}
static int8_t err[{b * c}];
static int32_t scratch[{b * c}];
{PRINT_HELPERS_C}
int main(void)
{{
    tt_scale_t ys = {c_scale(logits.scale)}, es;
    int64_t loss = 0;
    tt_platform_init();
    ok(tt_softmax_xent_error_round_s8(y, ys, labels, {b}, {c}, {m}, TT_ROUND_STOCHASTIC, {key}UL, scratch, err,
                                      &es, &loss));
    put("err", es, NULL, err, {b * c});
    tt_puts("total="); tt_put_i32((int32_t)loss); tt_putc('\\n');
    return 0;
}}
"""
    out = parse(run_with_runtime("cortex-m0", src, tmp_path_factory.mktemp("lsr")))
    werr, wloss = softmax_cross_entropy_error(logits, labels, mode, Rounding.STOCHASTIC, key)
    assert out["err"] == (werr.scale, [int(v) for v in werr.m.ravel()])
    assert out["total"] == wloss.total
