"""Exact integer matrix products on the host.

``int_matmul(a, b)`` returns the exact integer product of two integer matrices as int32 (or int64
with ``wide=True``). Two interchangeable backends compute it:

``blas`` (default)
    Multiplies integer-valued float32 (or float64) copies with BLAS and converts back. This is
    exact, not approximate: every product and every partial sum is an integer, and float32
    represents every integer below 2**24 exactly (float64: 2**53), so no rounding can happen
    whatever the summation order, blocking or FMA use of the BLAS. The backend picks float32 when
    ``K * max|a| * max|b| <= 2**24`` (bound from the dtypes, not the data) and float64 otherwise;
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


_DTYPE_MAX: dict = {}


def _dtype_max(dt: np.dtype) -> int:
    value = _DTYPE_MAX.get(dt)
    if value is None:
        info = np.iinfo(dt)
        value = _DTYPE_MAX[dt] = max(int(info.max), -int(info.min))
    return value


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
    if bound <= FLOAT32_EXACT:  # every integer of magnitude <= 2**24 is a float32
        ft = np.float32
    elif bound <= FLOAT64_EXACT:
        ft = np.float64
    else:  # pragma: no cover - excluded by the layer bounds
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(out_dtype, copy=False)
    prod = np.matmul(a.astype(ft), b.astype(ft))
    return prod.astype(out_dtype)


def exact_float_dtype(terms: int, a_max: int, b_max: int):
    """The narrowest float type in which ``terms`` products of integers bounded by ``a_max`` and
    ``b_max`` sum exactly: ``np.float32`` when ``terms * a_max * b_max < 2**24``, ``np.float64``
    below ``2**53``. Raises ``OverflowError`` beyond (no layer allowed by the bounds gets there)."""
    bound = int(terms) * int(a_max) * int(b_max)
    if bound <= FLOAT32_EXACT:  # every integer of magnitude <= 2**24 is a float32
        return np.float32
    if bound < FLOAT64_EXACT:
        return np.float64
    raise OverflowError(f"{terms} products of |a| <= {a_max} and |b| <= {b_max} cannot be summed exactly "
                        "in float64")


def int_matmul_float_operands(a: np.ndarray, b: np.ndarray, a_max: int, b_max: int,
                              wide: bool = False) -> np.ndarray:
    """Exact ``a @ b`` of *integer-valued* float operands that the caller already converted.

    For kernels that build their operands directly in float (an im2col copy made in float32 costs
    one pass instead of two). The caller promises that every element of ``a`` is an integer with
    ``|a| <= a_max`` and likewise for ``b`` (int8 mantissas: 127). Shapes as :func:`numpy.matmul`
    (2-D or batched). The result equals the integer product bit for bit, returned as int32 (int64
    with ``wide=True``; as for :func:`int_matmul` the caller guarantees that the sum fits).

    * ``K * a_max * b_max < 2**24``: one float32 product (every partial sum is an exact integer).
    * otherwise, when ``a_max * b_max < 2**24``: the inner dimension is cut into chunks of
      ``c = (2**24 - 1) // (a_max * b_max)`` terms (1040 for int8 x int8); each chunk is an exact
      float32 product, converted to integers and summed in integers. This is faster than one
      float64 product for long, thin sums (weight gradients over batch x positions).
    * otherwise one float64 product (exact below 2**53, checked).

    With the ``int`` backend the operands are converted to int64 and multiplied with numpy integer
    matmul (the float-free reference)."""
    if a.dtype.kind != "f" or b.dtype.kind != "f":
        raise TypeError(f"int_matmul_float_operands needs float operands, got {a.dtype} and {b.dtype}")
    out_dtype = np.int64 if wide else np.int32
    if _backend == "int":
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(out_dtype, copy=False)
    k = a.shape[-1]
    per_term = int(a_max) * int(b_max)
    chunk = (FLOAT32_EXACT - 1) // per_term if per_term > 0 else k
    if chunk >= k or chunk == 0:
        ft = exact_float_dtype(k, a_max, b_max)
        return np.matmul(a.astype(ft, copy=False), b.astype(ft, copy=False)).astype(out_dtype)
    a = a.astype(np.float32, copy=False)
    b = b.astype(np.float32, copy=False)
    acc = np.matmul(a[..., :chunk], b[..., :chunk, :]).astype(out_dtype)
    for k0 in range(chunk, k, chunk):
        acc += np.matmul(a[..., k0:k0 + chunk], b[..., k0:k0 + chunk, :]).astype(out_dtype)
    return acc


def int_matmul_float32_result(a: np.ndarray, b: np.ndarray, a_max: int, b_max: int) -> np.ndarray:
    """Exact ``a @ b`` of integer-valued float32 operands, returned as float32 holding the exact
    integer results (no conversion pass; for kernels that keep adding the values in float32).

    Requires ``K * a_max * b_max < 2**24`` (raises ``OverflowError`` otherwise): then every
    partial sum is an integer below 2**24 and float32 represents it exactly. The ``int`` backend
    computes the product in int64 and converts it (exactly) to float32."""
    if a.dtype != np.float32 or b.dtype != np.float32:
        raise TypeError(f"int_matmul_float32_result needs float32 operands, got {a.dtype} and {b.dtype}")
    if exact_float_dtype(a.shape[-1], a_max, b_max) is not np.float32:
        raise OverflowError(f"{a.shape[-1]} products of |a| <= {a_max} and |b| <= {b_max} may reach 2**24")
    if _backend == "int":
        return np.matmul(a.astype(np.int64), b.astype(np.int64)).astype(np.float32)
    return np.matmul(a, b)
