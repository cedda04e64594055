"""The native backend's vectorised kernels of per-row weight scales (tt_host_kernels_x86.c) give the
simulator's bits: the dense forward and input error with row exponents and the tiled row-scaled
update, over random shapes, values and exponents, in the AVX2 build and the portable one; the
cases the vector code does not cover (nearest rounding, exponents that need left shifts) fall back
to the portable kernel."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from tintin.codegen import host_rows
from tintin.codegen.host import SgdConfig
from tintin.nn import Context
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, Rounding, Scale, ScaleMode
from tintin.numerics.scale_rows import row_exp_limit
from tintin.ops import linear_backward_input_s8, linear_forward_s8
from tintin.optim import IntegerSGD, OptimConfig
from tintin.targets.native import native_available

from .test_native_kernels import _load, calling

ok, why = native_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}")
SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                             HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module", params=[True, False], ids=["avx2", "portable"])
def kernels(request):
    return _load(simd=request.param)


@SETTINGS
@given(batch=st.integers(1, 37), k=st.integers(1, 300), n=st.integers(1, 60), bias=st.booleans(),
       mode=st.sampled_from(list(ScaleMode)), spread=st.integers(0, 15), seed=st.integers(0, 2**32 - 1))
def test_dense_row_kernels_match_the_simulator(kernels, batch, k, n, bias, mode, spread, seed):
    rng = np.random.default_rng(seed)
    x = QTensor(rng.integers(-127, 128, (batch, k)).astype(np.int8), Scale(-7))
    w = QTensor(rng.integers(-127, 128, (n, k)).astype(np.int8), Scale(-9, 1, 0))
    err = QTensor(rng.integers(-127, 128, (batch, n)).astype(np.int8), Scale(-11, 0, 1))
    e = rng.integers(0, min(spread, row_exp_limit(n)) + 1, size=n).astype(np.int8)
    b = QTensor(rng.integers(-(2**30), 2**30, n).astype(np.int32), Scale(-20)) if bias else None
    with calling(kernels):
        got_y = host_rows.linear_forward_rows_s8(x, w, b, mode, e)
        got_e = host_rows.linear_backward_input_rows_s8(err, w, mode, e)
    want_y, want_e = linear_forward_s8(x, w, b, mode, e), linear_backward_input_s8(err, w, mode, e)
    assert got_y.scale == want_y.scale and np.array_equal(got_y.m, want_y.m)
    assert got_e.scale == want_e.scale and np.array_equal(got_e.m, want_e.m)


@SETTINGS
@given(n=st.integers(1, 40), k=st.integers(1, 200), gbits=st.integers(0, 26), batch=st.integers(1, 64),
       lr=st.sampled_from([0.5, 0.05, 2.0, 0.001, 2.0**-20, 64.0]), mode=st.sampled_from(list(ScaleMode)),
       rounding=st.sampled_from([Rounding.STOCHASTIC, Rounding.STOCHASTIC, Rounding.NEAREST]),
       rescale=st.booleans(), sparse=st.booleans(), tile_rows=st.integers(1, 5), seed=st.integers(0, 2**31),
       key=st.integers(0, 2**32 - 1))
def test_tiled_row_scaled_update_matches_the_simulator(kernels, n, k, gbits, batch, lr, mode, rounding, rescale,
                                                       sparse, tile_rows, seed, key):
    rng = np.random.default_rng(seed)
    limit = row_exp_limit(n)
    w = QTensor((rng.integers(-127, 128, (n, k)) >> rng.integers(0, 7, (n, 1))).astype(np.int8), Scale(-8, 1, 2))
    e = rng.integers(0, limit + 1, size=n).astype(np.int8)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=(n, k)).astype(np.int32), Scale(-16, 0, 1))
    rows = np.sort(rng.permutation(n)[:rng.integers(1, n + 1)]).astype(np.int64) if sparse else None
    p = Parameter("w", "weight", w.copy(), 8)
    p.row_exp, p.row_limit, p.trainable_rows = e.copy(), limit, rows
    opt = IntegerSGD([p], OptimConfig(lr=lr, rounding=rounding, weight_rescale=rescale), mode)
    opt.batch_size = batch

    class Stream:
        def key(self, site):
            return key

    p.grad = g
    opt.update(p, Context(mode=mode, stream=Stream()))
    delta_max = np.abs(g.m).max() * opt.lr_scale.to_float() * 2.0 ** (-16 + 8 + limit) / batch * 4
    if delta_max > 2**30:  # outside the documented bounds (|w - delta| < 2**31)
        return
    cfg = SgdConfig("aligned", opt.lr_scale, batch, rounding, mode, 4, 0, rescale)
    with calling(kernels):
        got, got_e = host_rows.sgd_update_tiled_rows_scaled(w, e, g, cfg, key, limit, rows=rows, tile_rows=tile_rows)
    assert got.scale == p.value.scale and np.array_equal(got.m, p.value.m) and np.array_equal(got_e, p.row_exp)
