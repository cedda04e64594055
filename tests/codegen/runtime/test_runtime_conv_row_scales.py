"""The C runtime's convolutions with per-output-channel weight exponents (tt_conv2d_forward_rows_s8,
tt_conv2d_backward_input_rows_s8 through ctypes) equal the simulator (tintin.ops.conv with
``row_exp``) bit for bit over random geometries (strides, padding, groups, depthwise), values and
exponents, with and without an accumulator buffer; the update of a convolution weight is the row
update of its (out_channels, Cin/G * kH * kW) rows (test_runtime_row_scales.py)."""

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin.codegen import host_rows
from tintin.codegen.host import HostRuntimeError
from tintin.numerics import QTensor, Scale, ScaleMode
from tintin.numerics.scale_rows import row_exp_limit
from tintin.ops.conv import conv2d_backward_input_s8, conv2d_forward_s8


@st.composite
def geometries(draw):
    groups = draw(st.sampled_from([1, 1, 2, 3]))
    cin = groups * draw(st.integers(1, 3))
    depthwise = draw(st.booleans()) and groups > 1
    cout = groups if depthwise else groups * draw(st.integers(1, 4))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph, pw = draw(st.integers(0, kh - 1)), draw(st.integers(0, kw - 1))
    h, w = draw(st.integers(kh, kh + 7)), draw(st.integers(kw, kw + 7))
    return dict(batch=draw(st.integers(1, 3)), cin=cin, cout=cout, groups=groups, k=(kh, kw), stride=(sh, sw),
                pad=(ph, pw), hw=(h, w))


@settings(max_examples=150, deadline=None)
@given(g=geometries(), seed=st.integers(0, 2**32 - 1), mode=st.sampled_from(list(ScaleMode)), bias=st.booleans(),
       scratch=st.booleans(), spread=st.integers(0, 15))
def test_conv_row_kernels_match_the_simulator(rt, g, seed, mode, bias, scratch, spread):
    rng = np.random.default_rng(seed)
    kh, kw = g["k"]
    x = QTensor(rng.integers(-127, 128, (g["batch"], g["cin"], *g["hw"])).astype(np.int8), Scale(-7))
    w = QTensor(rng.integers(-127, 128, (g["cout"], g["cin"] // g["groups"], kh, kw)).astype(np.int8), Scale(-9, 1, 0))
    overlap = -(-kh // g["stride"][0]) * -(-kw // g["stride"][1])
    e = rng.integers(0, min(spread, row_exp_limit(g["cout"] // g["groups"] * overlap)) + 1, g["cout"]).astype(np.int8)
    b = QTensor(rng.integers(-(2**30), 2**30, g["cout"]).astype(np.int32), Scale(-20)) if bias else None
    want = conv2d_forward_s8(x, w, b, g["stride"], g["pad"], g["groups"], mode, row_exp=e)
    got = host_rows.conv2d_forward_rows_s8(x, w, b, g["stride"], g["pad"], g["groups"], mode, e, scratch=scratch)
    assert got.scale == want.scale and np.array_equal(got.m, want.m)
    err = QTensor(rng.integers(-127, 128, want.m.shape).astype(np.int8), Scale(-10, 0, 1))
    want = conv2d_backward_input_s8(err, w, g["hw"], g["stride"], g["pad"], g["groups"], mode, row_exp=e)
    got = host_rows.conv2d_backward_input_rows_s8(err, w, g["hw"], g["stride"], g["pad"], g["groups"], mode, e,
                                                  scratch=scratch)
    assert got.scale == want.scale and np.array_equal(got.m, want.m)


def test_conv_input_error_refuses_exponents_beyond_the_bound(rt):
    w = QTensor(np.ones((64, 1, 3, 3), np.int8), Scale(0))  # 64 * 9 terms: row_exp_limit(576) = 6
    err = QTensor(np.ones((1, 64, 2, 2), np.int8), Scale(0))
    e = np.zeros(64, np.int8)
    e[3] = row_exp_limit(64 * 9) + 1
    with pytest.raises(HostRuntimeError, match="TT_ERR_RANGE"):
        host_rows.conv2d_backward_input_rows_s8(err, w, (4, 4), 1, 0, 1, ScaleMode.POW2, e)
