"""The native backend's vectorised host kernels (targets/files/tt_host_kernels_x86.c) give the
simulator's bits: every kernel over random shapes and values, against tintin.ops / IntegerSGD.

The kernels are loaded as a library of their own (:func:`kernel_library`) and called through the
ctypes wrappers of :mod:`tintin.codegen.host`, which the portable runtime's tests use too."""

from __future__ import annotations

import ctypes
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from tintin.codegen import host
from tintin.nn import Context
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, RoundingStream, Scale, ScaleMode
from tintin.ops import conv as conv_ops
from tintin.ops import linear as linear_ops
from tintin.optim import IntegerSGD, OptimConfig
from tintin.targets.native import native_available
from tintin.targets.native.build import kernel_library

ok, why = native_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}")
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _load(simd: bool) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(kernel_library(simd=simd)))
    for name, (restype, argtypes) in host._PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    lib.tt_host_simd_level.restype = ctypes.c_int
    return lib


@pytest.fixture(scope="module")
def kernels():
    return _load(simd=True)


@contextmanager
def calling(lib):
    """The wrappers of tintin.codegen.host call ``lib`` inside the block."""
    with host._lock:
        saved, host._lib = host._lib, lib
    try:
        yield
    finally:
        with host._lock:
            host._lib = saved


def _q(rng, shape, dtype=np.int8, lo=-128, hi=127):
    return rng.integers(lo, hi + 1, size=shape).astype(dtype)


MODES = st.sampled_from([ScaleMode.POW2, ScaleMode.COMPOUND])


def test_the_vector_kernels_are_compiled_in_where_the_cpu_has_avx2(kernels):
    import re
    from pathlib import Path

    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if not re.search(r"\bavx2\b", flags):
        pytest.skip("this CPU has no AVX2: the portable kernels run")
    assert kernels.tt_host_simd_level() == 2
    assert _load(simd=False).tt_host_simd_level() == 0


@SETTINGS
@given(batch=st.integers(1, 37), k=st.integers(1, 300), n=st.integers(1, 41), bias=st.booleans(), mode=MODES,
       xs=st.integers(-12, 0), ws=st.integers(-12, 0), seed=st.integers(0, 2**32 - 1))
def test_linear_forward_matches_the_simulator(kernels, batch, k, n, bias, mode, xs, ws, seed):
    rng = np.random.default_rng(seed)
    x = QTensor(_q(rng, (batch, k), lo=-127), Scale(xs))
    w = QTensor(_q(rng, (n, k), lo=-127), Scale(ws, 1, 1))
    b = QTensor(_q(rng, n, np.int32, -2**20, 2**20), Scale(xs + ws - 3)) if bias else None
    want = linear_ops.linear_forward_s8(x, w, b, mode)
    with calling(kernels):
        got = host.linear_forward_s8(x, w, b, mode, variant="x4")
    assert got.scale == want.scale and np.array_equal(got.m, want.m)


@SETTINGS
@given(batch=st.integers(1, 37), k=st.integers(1, 200), n=st.integers(1, 70), mode=MODES,
       seed=st.integers(0, 2**32 - 1))
def test_linear_backward_input_matches_the_simulator(kernels, batch, k, n, mode, seed):
    rng = np.random.default_rng(seed)
    err, w = QTensor(_q(rng, (batch, n)), Scale(-9)), QTensor(_q(rng, (n, k), lo=-127), Scale(-7, 0, 1))
    want = linear_ops.linear_backward_input_s8(err, w, mode)
    with calling(kernels):
        got = host.linear_backward_input_s8(err, w, mode, variant="x4")
    assert got.scale == want.scale and np.array_equal(got.m, want.m)


@SETTINGS
@given(batch=st.integers(1, 45), k=st.integers(1, 300), n=st.integers(1, 30), sparse=st.booleans(),
       data=st.data(), seed=st.integers(0, 2**32 - 1))
def test_linear_weight_gradient_rows_match_the_simulator(kernels, batch, k, n, sparse, data, seed):
    rng = np.random.default_rng(seed)
    err, x = QTensor(_q(rng, (batch, n)), Scale(-9)), QTensor(_q(rng, (batch, k)), Scale(-5))
    want = linear_ops.linear_backward_weight_s32(err, x)
    rows = rng.permutation(n)[:data.draw(st.integers(1, n))].astype(np.uint16) if sparse else None
    first = data.draw(st.integers(0, (n if rows is None else rows.size) - 1))
    count = data.draw(st.integers(1, (n if rows is None else rows.size) - first))
    with calling(kernels):
        got = host.linear_backward_weight_s32(err, x, rows=rows, row_range=(first, count))
    picked = (np.arange(n) if rows is None else rows.astype(np.int64))[first:first + count]
    assert got.scale == want.scale and np.array_equal(got.m, want.m[picked])


CONV = dict(batch=st.integers(1, 4), cin=st.integers(1, 5), cout=st.integers(1, 11), h=st.integers(1, 13),
            w=st.integers(1, 13), kh=st.integers(1, 5), kw=st.integers(1, 5), stride=st.integers(1, 3),
            pad=st.integers(0, 2), seed=st.integers(0, 2**32 - 1))


@SETTINGS
@given(bias=st.booleans(), mode=MODES, **CONV)
def test_conv_forward_matches_the_simulator(kernels, batch, cin, cout, h, w, kh, kw, stride, pad, bias, mode, seed):
    assume(h + 2 * pad >= kh and w + 2 * pad >= kw)
    rng = np.random.default_rng(seed)
    x = QTensor(_q(rng, (batch, cin, h, w), lo=-127), Scale(-6))
    wt = QTensor(_q(rng, (cout, cin, kh, kw), lo=-127), Scale(-8, 1, 0))
    b = QTensor(_q(rng, cout, np.int32, -2**18, 2**18), Scale(-16)) if bias else None
    want = conv_ops.conv2d_forward_s8(x, wt, b, stride, pad, 1, mode)
    with calling(kernels):
        got = host.conv2d_forward_s8(x, wt, b, stride, pad, 1, mode, variant="im2col")
    assert got.scale == want.scale and np.array_equal(got.m, want.m)


@SETTINGS
@given(sparse=st.booleans(), data=st.data(), **CONV)
def test_conv_weight_gradient_rows_match_the_simulator(kernels, batch, cin, cout, h, w, kh, kw, stride, pad, sparse,
                                                       data, seed):
    assume(h + 2 * pad >= kh and w + 2 * pad >= kw)
    rng = np.random.default_rng(seed)
    oh, ow = (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1
    x = QTensor(_q(rng, (batch, cin, h, w)), Scale(-6))
    err = QTensor(_q(rng, (batch, cout, oh, ow)), Scale(-10))
    want = conv_ops.conv2d_backward_weight_s32(err, x, (kh, kw), stride, pad, 1)
    rows = rng.permutation(cout)[:data.draw(st.integers(1, cout))].astype(np.uint16) if sparse else None
    total = cout if rows is None else rows.size
    first = data.draw(st.integers(0, total - 1))
    count = data.draw(st.integers(1, total - first))
    with calling(kernels):
        got = host.conv2d_backward_weight_s32(err, x, (kh, kw), stride, pad, 1, rows=rows, row_range=(first, count))
    picked = (np.arange(cout) if rows is None else rows.astype(np.int64))[first:first + count]
    assert got.scale == want.scale and np.array_equal(got.m, want.m[picked])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows_n=st.integers(1, 40), cols=st.integers(1, 200), gbits=st.integers(0, 22), batch=st.integers(1, 64),
       lr=st.sampled_from([0.5, 0.05, 1.7, 0.001, 2.0**-20]), gs=st.integers(-30, -5), ws=st.integers(-16, -4),
       mode=MODES, rescale=st.booleans(), sparse=st.booleans(), tile_rows=st.integers(1, 5),
       seed=st.integers(0, 2**31))
def test_tiled_update_matches_the_simulator(kernels, rows_n, cols, gbits, batch, lr, gs, ws, mode, rescale, sparse,
                                            tile_rows, seed):
    # documented domain: updates below 2**30 weight units
    assume(2**gbits * lr * 2.0 ** (gs - ws) * 2 / batch < 2**30)
    rng = np.random.default_rng(seed)
    w0 = _q(rng, (rows_n, cols), lo=-127)
    g = QTensor(rng.integers(-(2**gbits), 2**gbits + 1, size=w0.shape).astype(np.int32), Scale(gs, 1, 0))
    rows = np.sort(rng.permutation(rows_n)[:rng.integers(1, rows_n + 1)]).astype(np.int64) if sparse else None
    cfg = OptimConfig(lr=lr, weight_rescale=rescale)
    p = Parameter("w", "weight", QTensor(w0.copy(), Scale(ws, 1, 1)), 8)
    p.trainable_rows = rows
    opt = IntegerSGD([p], cfg, mode)
    opt.batch_size = batch
    ctx = Context(mode=mode, stream=RoundingStream(seed, 3))
    p.grad = g
    opt.update(p, ctx)
    sgd = host.SgdConfig.from_optimizer(opt)
    with calling(kernels):
        got, _ = host.sgd_update_tiled(QTensor(w0.copy(), Scale(ws, 1, 1)), g, sgd, ctx.stream.key(0), rows=rows,
                                       tile_rows=tile_rows)
    assert got.scale == p.value.scale and np.array_equal(got.m, p.value.m)
