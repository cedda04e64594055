"""The float-operand matmul helpers the convolution kernels use are exact integer products."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from tintin.numerics import set_matmul_backend
from tintin.numerics.matmul import exact_float_dtype, int_matmul_float32_result, int_matmul_float_operands


def reference(a, b):
    return np.matmul(a.astype(object), b.astype(object)).astype(np.int64)


def worst_case(m, k, n, seed, lim=127):
    """+-lim everywhere with mostly equal signs: sums close to k * lim * lim."""
    rng = np.random.default_rng(seed)
    a = np.where(rng.random((m, k)) < 0.95, lim, -lim)
    b = np.where(rng.random((k, n)) < 0.95, lim, -lim)
    return a, b


def test_exact_float_dtype_thresholds():
    assert exact_float_dtype(1040, 127, 127) is np.float32  # 1040 * 16129 < 2**24
    assert exact_float_dtype(1041, 127, 127) is np.float64
    with pytest.raises(OverflowError):
        exact_float_dtype(2**40, 2**10, 2**10)


@pytest.mark.parametrize("k", [1, 1039, 1040, 1041, 2080, 2081, 5000, 40_000])
def test_float_operands_worst_case_int8(k):
    a, b = worst_case(3, k, 2, k)
    got = int_matmul_float_operands(a.astype(np.float32), b.astype(np.float32), 127, 127, wide=True)
    assert got.dtype == np.int64 and np.array_equal(got, reference(a, b))
    # a transposed (non-contiguous) right operand, as the weight gradient passes it
    bt = np.ascontiguousarray(b.T.astype(np.float32)).T
    assert np.array_equal(int_matmul_float_operands(a.astype(np.float32), bt, 127, 127, wide=True), reference(a, b))


def test_float_operands_wide_values_use_float64():
    a, b = worst_case(2, 3000, 2, 7, lim=32767)  # int16-sized values: 32767**2 > 2**24, no chunking
    got = int_matmul_float_operands(a.astype(np.float64), b.astype(np.float64), 32767, 32767, wide=True)
    assert np.array_equal(got, reference(a, b))


@given(batch=st.integers(1, 3), m=st.integers(1, 5), k=st.integers(1, 2500), n=st.integers(1, 5),
       seed=st.integers(0, 2**32 - 1))
def test_float_operands_batched_random(batch, m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-127, 128, size=(batch, m, k))
    b = rng.integers(-127, 128, size=(batch, k, n))
    got = int_matmul_float_operands(a.astype(np.float32), b.astype(np.float32), 127, 127)
    assert got.dtype == np.int32 and np.array_equal(got, reference(a, b))
    prev = set_matmul_backend("int")
    try:
        assert np.array_equal(int_matmul_float_operands(a.astype(np.float32), b.astype(np.float32), 127, 127), got)
    finally:
        set_matmul_backend(prev)


@pytest.mark.parametrize("k", [1, 500, 1040])
def test_float32_result_is_exact_up_to_its_bound(k):
    a, b = worst_case(4, k, 3, k)
    got = int_matmul_float32_result(a.astype(np.float32), b.astype(np.float32), 127, 127)
    assert got.dtype == np.float32 and np.array_equal(got.astype(np.int64), reference(a, b))


def test_float32_result_refuses_what_it_cannot_do():
    a = np.zeros((2, 1041), dtype=np.float32)
    b = np.zeros((1041, 2), dtype=np.float32)
    with pytest.raises(OverflowError):
        int_matmul_float32_result(a, b, 127, 127)
    with pytest.raises(TypeError):
        int_matmul_float32_result(a.astype(np.float64), b, 1, 1)
    with pytest.raises(TypeError):
        int_matmul_float_operands(a.astype(np.int32), b, 1, 1)
