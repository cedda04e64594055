"""The C update kernel used as the simulator's fast path is bit-identical to the numpy update."""

import numpy as np
import pytest
from hypothesis import assume, given, strategies as st

from tintin.codegen.fast_update import available, c_update_kernel
from tintin.data import load
from tintin.nn import Context, QuantConfig, build_model
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, RoundingStream, Scale, ScaleMode
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import TrainConfig, fit

ok, why = available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}")


@pytest.fixture(scope="module")
def kernel():
    return c_update_kernel()


@given(bits=st.sampled_from([8, 16]), rounding=st.sampled_from(["stochastic", "pseudo_stochastic", "nearest"]),
       gbits=st.integers(0, 30), lr=st.sampled_from([0.5, 0.05, 1.7, 0.001]), batch=st.integers(1, 200),
       gs=st.integers(-30, -5), ws=st.integers(-16, -4), mode=st.sampled_from(list(ScaleMode)),
       momentum=st.sampled_from([0, 0, 3]), rule=st.sampled_from(["aligned", "aligned", "niti"]),
       seed=st.integers(0, 2**31))
def test_update_kernel_matches_numpy(kernel, bits, rounding, gbits, lr, batch, gs, ws, mode, momentum, rule, seed):
    # documented domain: updates below 2**30 weight units (beyond 2**31 the C saturates, docs/c-runtime.md)
    assume(rule == "niti" or 2**gbits * lr * 2.0 ** (gs - ws) * 2 / batch < 2**30)
    rng = np.random.default_rng(seed)
    lim = 2 ** (bits - 1) - 1
    w0 = rng.integers(-lim, lim + 1, size=(7, 33)).astype(np.int8 if bits == 8 else np.int16)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=w0.shape).astype(np.int32), Scale(gs, 1, 0))
    cfg = OptimConfig(rule=rule, lr=lr, rounding=rounding, momentum_shift=momentum)
    results = []
    for kern in (None, kernel):
        p = Parameter("w", "weight", QTensor(w0.copy(), Scale(ws, 1, 1)), bits)
        opt = IntegerSGD([p], cfg, mode, kern)
        opt.batch_size = batch
        for step in range(2):
            p.grad = g
            opt.update(p, Context(mode=mode, stream=RoundingStream(seed, step)))
        results.append((p.value.m.copy(), p.value.scale, None if p.momentum is None else p.momentum.copy()))
    (a, sa, ma), (b, sb, mb) = results
    assert sa == sb and a.dtype == b.dtype and (a == b).all()
    assert (ma is None) == (mb is None) and (ma is None or (ma == mb).all())


@pytest.mark.parametrize("qconf,oconf", [
    (QuantConfig(), OptimConfig()),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(rounding="pseudo_stochastic", momentum_shift=3)),
    (QuantConfig(), OptimConfig(rule="niti", rounding="nearest")),
])
def test_training_with_the_c_update_is_the_same_training(kernel, qconf, oconf):
    ds = load("mnist5k")
    runs = []
    for kern in (None, kernel):
        m = build_model("mlp", ds.sample_shape, ds.num_classes, qconf, seed=0, input_exponent=ds.input_exponent)
        fit(m, ds.x_train[:640], ds.y_train[:640], TrainConfig(epochs=2, batch_size=32, seed=0, optim=oconf,
                                                                eval_each_epoch=False), update_kernel=kern)
        runs.append([(p.value.m.copy(), p.value.scale) for p in m.parameters()])
    assert all(x[1] == y[1] and (x[0] == y[0]).all() for x, y in zip(*runs))
