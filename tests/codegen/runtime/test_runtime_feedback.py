"""The C runtime's error-feedback update (tt_sgd_feedback.c through ctypes) equals the simulator's
(IntegerSGD with error_feedback / feedback_bits) bit for bit: random shapes, values, remainders,
learning rates, batch sizes, every rounding mode and scale mode, grid rescales and sparse rows; the
remainder travels as the packed plane a device keeps."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.codegen.host import HostRuntimeError, SgdConfig
from tintin.codegen.host_feedback import sgd_update_feedback, sgd_update_tiled_feedback
from tintin.nn import Context
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode
from tintin.optim import IntegerSGD, OptimConfig
from tintin.optim.sgd import FeedbackOverflowError


class Stream:
    """Hands the optimiser the given key, whatever site it asks for."""

    def __init__(self, key):
        self._key = key

    def key(self, site):
        return self._key


def simulator(value, remainder, grad, lr, batch, rounding, mode, key, bits, rescale, rows):
    p = Parameter("fc.weight", "weight", value, 8)
    p.remainder, p.feedback_bits, p.trainable_rows = remainder.copy(), bits, rows
    opt = IntegerSGD([p], OptimConfig(lr=lr, rounding=rounding, weight_rescale=rescale, error_feedback=("*",),
                                      feedback_bits=bits), mode)
    opt.batch_size = batch
    p.grad = grad
    opt.update(p, Context(mode=mode, stream=Stream(key)))
    return p.value, p.remainder, opt.lr_scale


CASES = dict(n=st.integers(1, 12), k=st.integers(1, 12), seed=st.integers(0, 2**31), key=st.integers(0, 2**32 - 1),
             bits=st.sampled_from([2, 4, 8]), rounding=st.sampled_from(list(Rounding)),
             mode=st.sampled_from(list(ScaleMode)), lr=st.sampled_from([0.001, 0.02, 0.5, 4.0, 64.0, 4096.0]),
             gbits=st.integers(0, 31), batch=st.integers(1, 64), rescale=st.booleans(), sparse=st.booleans(),
             gexp=st.integers(-40, -4), wmax=st.sampled_from([3, 120, 127]))


def assert_kernel_matches(kernel, n, k, seed, key, bits, rounding, mode, lr, gbits, batch, rescale, sparse, gexp,
                          wmax):
    """A random weight, remainder, gradient and row selection: ``kernel(w, r, g, cfg, key, bits, rows)``
    equals the simulator, or refuses with TT_ERR_OVERFLOW (weights unchanged) where it raises."""
    rng = np.random.default_rng(seed)
    w = QTensor(rng.integers(-wmax, wmax + 1, size=(n, k)).astype(np.int8), Scale(-7, int(rng.integers(0, 3)), 0))
    r = rng.integers(-(1 << (bits - 1)), 1 << (bits - 1), size=(n, k)).astype(np.int8)
    top = (1 << gbits) - 1
    g = QTensor(rng.integers(-top, top + 1, size=(n, k)).astype(np.int32), Scale(gexp))
    rows = np.sort(rng.choice(n, size=int(rng.integers(1, n + 1)), replace=False)) if sparse else None
    try:
        want_w, want_r, lr_scale = simulator(w, r, g, lr, batch, rounding, mode, key, bits, rescale, rows)
    except FeedbackOverflowError:
        cfg = SgdConfig(lr=Scale.nearest(lr, ScaleMode.COMPOUND), batch_size=batch, rounding=rounding, mode=mode,
                        weight_rescale=rescale)
        before = w.m.copy()
        with pytest.raises(HostRuntimeError, match="TT_ERR_OVERFLOW"):
            kernel(w, r, g, cfg, key, bits, rows)
        assert np.array_equal(w.m, before)
        return
    cfg = SgdConfig(lr=lr_scale, batch_size=batch, rounding=rounding, mode=mode, weight_rescale=rescale)
    got_w, got_r = kernel(w, r, g, cfg, key, bits, rows)
    assert got_w.scale == want_w.scale
    assert np.array_equal(got_w.m, want_w.m) and np.array_equal(got_r, want_r)


@settings(max_examples=300, deadline=None)
@given(**CASES)
def test_update_matches_the_simulator(rt, **case):
    assert_kernel_matches(sgd_update_feedback, **case)


def test_a_rescale_is_bit_exact(rt):
    w = QTensor(np.full((3, 4), 126, np.int8), Scale(-7))
    r = np.ones((3, 4), np.int8)
    g = QTensor(np.full((3, 4), -40 * 2**9, np.int32), Scale(-16))
    want_w, want_r, lr_scale = simulator(w, r, g, 1.0, 1, Rounding.NEAREST, ScaleMode.COMPOUND, 5, 2, True, None)
    assert want_w.scale != w.scale
    got_w, got_r = sgd_update_feedback(w, r, g, SgdConfig(lr=lr_scale, rounding=Rounding.NEAREST), 5, 2)
    assert got_w.scale == want_w.scale and np.array_equal(got_w.m, want_w.m) and np.array_equal(got_r, want_r)


@pytest.mark.parametrize("cfg, bits", [(SgdConfig(momentum_shift=3), 2), (SgdConfig(rule="niti"), 2), (SgdConfig(), 3)])
def test_settings_it_does_not_keep_are_refused(rt, cfg, bits):
    w = QTensor(np.zeros(4, np.int8), Scale(-7))
    with pytest.raises((HostRuntimeError, ValueError)):
        sgd_update_feedback(w, np.zeros(4, np.int8), QTensor(np.ones(4, np.int32), Scale(-20)), cfg, 0, bits)


@settings(max_examples=300, deadline=None)
@given(tile_rows=st.integers(1, 13), **CASES)
def test_tiled_update_matches_the_simulator(rt, tile_rows, **case):
    """tt_sgd_update_tiled_feedback_s8: gradient tiles of tile_rows rows, tiles written as they fit,
    the rescale pass (rebuilt and recomputed tiles), sparse rows."""
    assert_kernel_matches(lambda w, r, g, cfg, key, bits, rows: sgd_update_tiled_feedback(w, r, g, cfg, key, bits,
                                                                                        rows, tile_rows), **case)


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("tile_rows", [1, 2, 3])
def test_tiled_saturates_the_value_below_the_bound(rt, bits, tile_rows):
    """W = -(127 << L) - 2**(L-1) fits (w = -127) and saturates to r = 1 - 2**(L-1) without a rescale,
    but is rounded unsaturated when another tile outgrows the range."""
    half = 1 << (bits - 1)
    for grow in (False, True):
        w = QTensor(np.full((3, 2), -127, np.int8), Scale(-7))
        w.m[2, 0] = 127 if grow else 0
        r = np.full((3, 2), -half + 1, np.int8)
        g = QTensor(np.zeros((3, 2), np.int32), Scale(-7))
        g.m[0, 0] = 1  # one fine step down: W = -wide - 1
        g.m[2, 0] = -4 * (1 << bits) if grow else 0
        want_w, want_r, lr_scale = simulator(w, r, g, 2.0 ** -bits, 1, Rounding.NEAREST, ScaleMode.COMPOUND, 0, bits,
                                             True, None)
        got_w, got_r = sgd_update_tiled_feedback(w, r, g, SgdConfig(lr=lr_scale, rounding=Rounding.NEAREST), 0,
                                                 bits, None, tile_rows)
        assert (want_w.scale != w.scale) == grow
        assert got_w.scale == want_w.scale
        assert np.array_equal(got_w.m, want_w.m) and np.array_equal(got_r, want_r)
        if not grow:
            assert want_r[0, 0] == 1 - half and want_w.m[0, 0] == -127
