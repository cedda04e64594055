import numpy as np
import pytest
from hypothesis import given, strategies as st

from tintin.numerics import FLOAT32_EXACT_TERMS, int_matmul, set_matmul_backend
from tintin.numerics.matmul import product_bound


def reference(a, b):
    return (a.astype(object) @ b.astype(object)).astype(np.int64)


@given(st.integers(1, 8), st.integers(1, 3000), st.integers(1, 8), st.integers(0, 2**32 - 1))
def test_blas_path_is_exact(m, k, n, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-127, 128, size=(m, k)).astype(np.int8)
    b = rng.integers(-127, 128, size=(k, n)).astype(np.int8)
    assert (int_matmul(a, b).astype(np.int64) == reference(a, b)).all()


@pytest.mark.parametrize("k", [1, FLOAT32_EXACT_TERMS - 16, FLOAT32_EXACT_TERMS + 100, 20_000])
def test_worst_case_magnitudes_are_exact(k):
    # every product +-127*127 with the same sign: the largest sums any K can produce
    a = np.full((3, k), 127, dtype=np.int8)
    a[1] = -127
    a[2, ::2] = -127
    b = np.full((k, 2), 127, dtype=np.int8)
    b[:, 1] = -127
    want = reference(a, b)
    assert (int_matmul(a, b).astype(np.int64) == want).all()
    assert abs(int(want[0, 0])) == k * 127 * 127


def test_float32_chosen_only_below_2_pow_24():
    a = np.zeros((1, 1024), np.int8)
    assert product_bound(a, np.zeros((1024, 1), np.int8)) <= 2**24
    assert product_bound(np.zeros((1, 1025), np.int8), np.zeros((1025, 1), np.int8)) > 2**24


def test_int_backend_equals_blas():
    rng = np.random.default_rng(1)
    a = rng.integers(-127, 128, size=(17, 300)).astype(np.int8)
    b = rng.integers(-127, 128, size=(300, 9)).astype(np.int8)
    fast = int_matmul(a, b)
    prev = set_matmul_backend("int")
    try:
        slow = int_matmul(a, b)
    finally:
        set_matmul_backend(prev)
    assert (fast == slow).all() and fast.dtype == slow.dtype == np.int32


def test_rejects_float_operands_and_unknown_backend():
    with pytest.raises(TypeError):
        int_matmul(np.zeros((2, 2)), np.zeros((2, 2), np.int8))
    with pytest.raises(ValueError):
        set_matmul_backend("gpu")
