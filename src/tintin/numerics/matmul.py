"""Exact integer matrix products on the host.

``int_matmul(a, b)`` returns the exact integer product of two integer matrices as int32 (or int64
with ``wide=True``). Two interchangeable backends compute it:

``blas`` (default)
    Multiplies integer-valued float32 (or float64) copies with BLAS and converts back. This is
    exact, not approximate: every product and every partial sum is an integer, and float32
    represents every integer below 2**24 exactly (float64: 2**53), so no rounding can happen
    whatever the summation order, blocking or FMA use of the BLAS. The backend picks float32 when
    ``K * max|a| * max|b| < 2**24`` (bound from the dtypes, not the data) and float64 otherwise;
    it refuses products that could reach 2**53.
``int``
    numpy integer matmul in int64: slow, float-free, the reference the tests compare against.

The float copies exist only inside this function; inputs and outputs are integer arrays.
"""

from __future__ import annotations

import numpy as np

_backend = "blas"
FLOAT32_EXACT = 2**24
FLOAT64_EXACT = 2**53


def set_matmul_backend(name: str) -> str:
    """Select ``"blas"`` or ``"int"``; returns the previous backend."""
    global _backend
    if name not in ("blas", "int"):
        raise ValueError(f"unknown matmul backend {name!r} (blas, int)")
    prev, _backend = _backend, name
    return prev


def get_matmul_backend() -> str:
    return _backend


def _dtype_max(dt: np.dtype) -> int:
    info = np.iinfo(dt)
    return max(int(info.max), -int(info.min))


def product_bound(a: np.ndarray, b: np.ndarray) -> int:
    """Worst-case ``|sum|`` of one output element from the operand dtypes and the inner size."""
    k = a.shape[-1]
    return k * _dtype_max(a.dtype) * _dtype_max(b.dtype)


def int_matmul(a: np.ndarray, b: np.ndarray, wide: bool = False) -> np.ndarray:
    """Exact ``a @ b`` for integer arrays (2-D, or batched with matching leading dims)."""
    if a.dtype.kind not in "iu" or b.dtype.kind not in "iu":
        raise TypeError(f"int_matmul needs integer operands, got {a.dtype} and {b.dtype}")
    out_dtype = np.int64 if wide else np.int32
    if _backend == "int":
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(out_dtype, copy=False)
    bound = product_bound(a, b)
    if bound < FLOAT32_EXACT:
        ft = np.float32
    elif bound < FLOAT64_EXACT:
        ft = np.float64
    else:  # pragma: no cover - excluded by the layer bounds
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(out_dtype, copy=False)
    prod = np.matmul(a.astype(ft), b.astype(ft))
    return prod.astype(out_dtype)
