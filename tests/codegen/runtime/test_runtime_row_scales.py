"""The C runtime's per-row weight scales (tt_rows.c through ctypes) equal the simulator bit for bit:
the dense forward and input error over random shapes, values and exponents, the row-scaled update
(every rounding mode, rescales and refinements), and whole training steps of row-scaled MLPs."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin.codegen import host_rows
from tintin.codegen.host import HostRuntimeError, SgdConfig
from tintin.nn import Context, QuantConfig, build_model
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode
from tintin.numerics.scale_rows import apply_multiplier_rows, row_exp_limit
from tintin.ops import linear_backward_input_s8, linear_forward_s8
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step

scales = st.builds(Scale, st.integers(-14, -2), st.integers(0, 2), st.integers(0, 2))


def q8(rng, shape, scale, lo=-127):
    return QTensor(rng.integers(lo, 128, size=shape).astype(np.int8), scale)


@settings(max_examples=150, deadline=None)
@given(b=st.integers(1, 6), k=st.integers(1, 50), n=st.integers(1, 40), seed=st.integers(0, 2**31),
       sx=scales, sw=scales, mode=st.sampled_from(list(ScaleMode)), bias=st.booleans(), small=st.booleans())
def test_dense_forward_and_input_error_match_the_simulator(rt, b, k, n, seed, sx, sw, mode, bias, small):
    rng = np.random.default_rng(seed)
    x, w = q8(rng, (b, k), sx), q8(rng, (n, k), sw)
    if small:  # small accumulators: some outputs need no rescale
        w = QTensor((w.m // 64).astype(np.int8), sw)
    err = q8(rng, (b, n), Scale(-9, 1, 0))
    e = rng.integers(0, row_exp_limit(n) + 1, size=n).astype(np.int8)
    bq = QTensor(rng.integers(-(2**30), 2**30, size=n).astype(np.int32), Scale(-20)) if bias else None
    want, got = linear_forward_s8(x, w, bq, mode, e), host_rows.linear_forward_rows_s8(x, w, bq, mode, e)
    assert got.scale == want.scale and np.array_equal(got.m, want.m)
    want = linear_backward_input_s8(err, w, mode, e)
    got = host_rows.linear_backward_input_rows_s8(err, w, mode, e)
    assert got.scale == want.scale and np.array_equal(got.m, want.m)


def test_input_error_refuses_exponents_beyond_the_bound(rt):
    n = 300  # row_exp_limit(300) = 7
    err, w = QTensor(np.ones((1, n), np.int8), Scale(0)), QTensor(np.ones((n, 2), np.int8), Scale(0))
    e = np.zeros(n, np.int8)
    e[0] = row_exp_limit(n) + 1
    with pytest.raises(HostRuntimeError, match="TT_ERR_RANGE"):
        host_rows.linear_backward_input_rows_s8(err, w, ScaleMode.POW2, e)


def simulator_update(value, row_exp, grad, lr, batch, rounding, mode, key, limit, rescale=True, rows=None):
    p = Parameter("fc.weight", "weight", value.copy(), 8)
    p.row_exp, p.row_limit, p.trainable_rows = row_exp.copy(), limit, rows
    opt = IntegerSGD([p], OptimConfig(lr=lr, rounding=rounding, weight_rescale=rescale), mode)
    opt.batch_size = batch

    class Stream:  # the key the optimiser asks for is the one given
        def key(self, site):
            return key

    p.grad = grad
    opt.update(p, Context(mode=mode, stream=Stream()))
    return p.value, p.row_exp, opt.lr_scale


def outside_bound(w, e, g, lr_scale, batch, rounding, mode, key, rows=None) -> bool:
    """Whether some ``w - delta`` leaves int32 (outside the documented bounds: C reports TT_ERR_OVERFLOW)."""
    probe = IntegerSGD([], OptimConfig(), mode)
    probe.lr_scale, probe.batch_size = lr_scale, batch
    idx = slice(None) if rows is None else rows
    delta = apply_multiplier_rows(g.m[idx], probe.aligned_multiplier(g.scale, w.scale), e[idx], rounding, key)
    return bool(np.abs(w.m[idx] - delta).max() > 2**31 - 1)


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 12), seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1),
       rounding=st.sampled_from(list(Rounding)), mode=st.sampled_from(list(ScaleMode)),
       lr=st.sampled_from([0.001, 0.02, 0.5, 4.0, 64.0]), gbits=st.integers(0, 30), batch=st.integers(1, 64),
       limit=st.integers(0, 15), rescale=st.booleans(), wsmall=st.booleans())
def test_row_scaled_update_matches_the_simulator(rt, n, k, seed, key, rounding, mode, lr, gbits, batch, limit,
                                                 rescale, wsmall):
    rng = np.random.default_rng(seed)
    w = q8(rng, (n, k), Scale(-8, 1, 2))
    if wsmall:  # rows that will want refining
        w = QTensor((w.m >> rng.integers(0, 7, size=(n, 1))).astype(np.int8), w.scale)
    e = rng.integers(0, limit + 1, size=n).astype(np.int8)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=(n, k)).astype(np.int32), Scale(-16, 0, 1))
    value, row_exp, lr_scale = simulator_update(w, e, g, lr, batch, rounding, mode, key, limit, rescale)
    cfg = SgdConfig("aligned", lr_scale, batch, rounding, mode, 4, 0, rescale)
    probe = IntegerSGD([], OptimConfig(lr=lr), mode)
    probe.lr_scale, probe.batch_size = lr_scale, batch
    delta = apply_multiplier_rows(g.m, probe.aligned_multiplier(g.scale, w.scale), e, rounding, key)
    if np.abs(w.m - delta).max() > 2**31 - 1:  # outside the documented bound: C reports it
        with pytest.raises(HostRuntimeError, match="TT_ERR_OVERFLOW"):
            host_rows.sgd_update_rows_scaled(w, e, g, cfg, key, limit)
        return
    got, got_e = host_rows.sgd_update_rows_scaled(w, e, g, cfg, key, limit)
    assert got.scale == value.scale
    assert np.array_equal(got.m, value.m)
    assert np.array_equal(got_e, row_exp)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 12), k=st.integers(1, 40), seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1),
       rounding=st.sampled_from(list(Rounding)), lr=st.sampled_from([0.001, 0.02, 0.5, 4.0, 64.0]),
       gbits=st.integers(0, 30), batch=st.integers(1, 64), rescale=st.booleans(), data=st.data())
def test_row_scaled_update_of_selected_rows_matches_the_simulator(rt, n, k, seed, key, rounding, lr, gbits, batch,
                                                                  rescale, data):
    """Trained rows only (sparse update): they saturate and keep their exponents, frozen rows stay."""
    rng = np.random.default_rng(seed)
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)), np.int64)
    limit = row_exp_limit(n)
    w = q8(rng, (n, k), Scale(-8, 1, 2))
    e = rng.integers(0, limit + 1, size=n).astype(np.int8)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=(n, k)).astype(np.int32), Scale(-16, 0, 1))
    p = Parameter("fc.weight", "weight", w.copy(), 8)
    p.row_exp, p.row_limit, p.trainable_rows = e.copy(), limit, rows
    opt = IntegerSGD([p], OptimConfig(lr=lr, rounding=rounding, weight_rescale=rescale), ScaleMode.COMPOUND)
    opt.batch_size = batch

    class Stream:
        def key(self, site):
            return key

    p.grad = g
    opt.update(p, Context(mode=ScaleMode.COMPOUND, stream=Stream()))
    cfg = SgdConfig("aligned", opt.lr_scale, batch, rounding, ScaleMode.COMPOUND, 4, 0, rescale)
    if outside_bound(w, e, g, opt.lr_scale, batch, rounding, ScaleMode.COMPOUND, key, rows):
        with pytest.raises(HostRuntimeError, match="TT_ERR_OVERFLOW"):
            host_rows.sgd_update_rows_scaled(w, e, g, cfg, key, limit, rows=rows)
        return
    got, got_e = host_rows.sgd_update_rows_scaled(w, e, g, cfg, key, limit, rows=rows)
    assert got.scale == p.value.scale == w.scale
    assert np.array_equal(got.m, p.value.m) and np.array_equal(got_e, p.row_exp) and np.array_equal(got_e, e)


@settings(max_examples=150, deadline=None)
@given(n=st.integers(1, 20), k=st.integers(1, 30), seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1),
       rounding=st.sampled_from(list(Rounding)), mode=st.sampled_from(list(ScaleMode)),
       lr=st.sampled_from([0.001, 0.02, 0.5, 4.0, 64.0]), gbits=st.integers(0, 24), batch=st.integers(1, 64),
       rescale=st.booleans(), sparse=st.booleans(), tile_rows=st.integers(1, 6), data=st.data())
def test_tiled_row_scaled_update_matches_the_simulator(rt, n, k, seed, key, rounding, mode, lr, gbits, batch, rescale,
                                                       sparse, tile_rows, data):
    """The update of a generated program (gradient tiles through a callback) equals IntegerSGD."""
    rng = np.random.default_rng(seed)
    limit = row_exp_limit(n)
    w = QTensor((rng.integers(-127, 128, (n, k)) >> rng.integers(0, 7, (n, 1))).astype(np.int8), Scale(-8, 1, 2))
    e = rng.integers(0, limit + 1, size=n).astype(np.int8)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=(n, k)).astype(np.int32), Scale(-16, 0, 1))
    rows = np.array(data.draw(st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)), np.int64) \
        if sparse else None
    value, row_exp, lr_scale = simulator_update(w, e, g, lr, batch, rounding, mode, key, limit, rescale, rows)
    cfg = SgdConfig("aligned", lr_scale, batch, rounding, mode, 4, 0, rescale)
    if outside_bound(w, e, g, lr_scale, batch, rounding, mode, key, rows):
        with pytest.raises(HostRuntimeError, match="TT_ERR_OVERFLOW"):
            host_rows.sgd_update_tiled_rows_scaled(w, e, g, cfg, key, limit, rows=rows, tile_rows=tile_rows)
        return
    got, got_e = host_rows.sgd_update_tiled_rows_scaled(w, e, g, cfg, key, limit, rows=rows, tile_rows=tile_rows)
    assert got.scale == value.scale and np.array_equal(got.m, value.m) and np.array_equal(got_e, row_exp)


def test_row_scaled_update_refuses_momentum(rt):
    w = QTensor(np.ones((2, 2), np.int8), Scale(-7))
    g = QTensor(np.ones((2, 2), np.int32), Scale(-14))
    with pytest.raises(HostRuntimeError, match="TT_ERR_ARG"):
        host_rows.sgd_update_rows_scaled(w, np.zeros(2, np.int8), g, SgdConfig(momentum_shift=3), 0, 8)


@pytest.mark.parametrize("hidden,lr,batch", [((24,), 0.5, 8), ((32, 16), 2.0, 5), ((16, 12, 8), 0.1, 16)])
def test_row_scaled_training_steps_equal_train_step(rt, hidden, lr, batch):
    from tintin.data import load

    ds = load("digits")
    models = [build_model("mlp", ds.sample_shape, ds.num_classes, QuantConfig(row_scales=True), seed=4,
                          input_exponent=ds.input_exponent, hidden=hidden) for _ in range(2)]
    opts = [IntegerSGD(m.parameters(), OptimConfig(lr=lr), m.config.scale_mode) for m in models]
    ctxs = [Context(mode=m.config.scale_mode, stream=RoundingStream(seed=3)) for m in models]
    order = np.random.default_rng(0).permutation(len(ds.x_train))
    moved = 0
    for step in range(40):
        idx = order[step * batch:(step + 1) * batch]
        xb, yb = ds.x_train[idx], ds.y_train[idx]
        before = [p.row_exp.copy() for p in models[0].parameters() if p.row_exp is not None]
        rp = train_step(models[0], opts[0], xb, yb, ctxs[0])
        rc = rt.train_step(models[1], opts[1], xb, yb, ctxs[1])
        assert (rc.loss, rc.correct) == (rp.loss, rp.correct)
        for p, q in zip(models[0].parameters(), models[1].parameters()):
            assert p.value.scale == q.value.scale and np.array_equal(p.value.m, q.value.m), p.name
            assert (p.row_exp is None) == (q.row_exp is None)
            if p.row_exp is not None:
                assert np.array_equal(p.row_exp, q.row_exp), p.name
        after = [p.row_exp for p in models[0].parameters() if p.row_exp is not None]
        moved += sum(int((a != b).sum()) for a, b in zip(after, before))
    assert moved > 0  # the renormalisation was exercised
    out = rt.forward(models[1], ds.x_test[:50])
    from tintin.numerics import QTensor as Q
    want = models[0].forward(Q(ds.x_test[:50], Scale(models[0].input_exponent)), Context(mode=models[0].config.scale_mode))
    assert out.scale == want.scale and np.array_equal(out.m, want.m)
