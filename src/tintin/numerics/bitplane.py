"""Packed low-bit planes: signed ``bits``-bit fields (``bits`` in 2, 4, 8), several per byte.

Compiled programs and the C runtime keep the error-feedback remainder of a weight
(:mod:`tintin.optim.sgd`, ``OptimConfig.feedback_bits``) in such a plane: element ``i`` of the
flattened tensor is the two's-complement field at bits ``[(i * bits) % 8, (i * bits) % 8 + bits)``
of byte ``(i * bits) // 8``, the first element in the least significant bits (little-endian within
the byte). A plane of ``count`` elements takes ``ceil(count * bits / 8)`` bytes; the unused high
bits of the last byte are zero. With ``bits = 8`` the plane is the int8 array itself.

>>> import numpy as np
>>> plane = pack_plane(np.array([1, -2, 0, -1, 1], dtype=np.int8), 2)
>>> [f"{b:08b}" for b in plane]
['11001001', '00000001']
>>> unpack_plane(plane, 2, 5).tolist()
[1, -2, 0, -1, 1]
"""

from __future__ import annotations

import numpy as np

from ..errors import TintinError

#: field widths a plane may have (each divides 8: no field straddles two bytes)
PLANE_BITS = (2, 4, 8)


class PlaneError(TintinError, ValueError):
    """A plane of an unsupported width, or values that do not fit its fields."""


def plane_bytes(count: int, bits: int) -> int:
    """Bytes of a plane of ``count`` fields of ``bits`` bits: ``ceil(count * bits / 8)``.

    >>> plane_bytes(784 * 200, 2), plane_bytes(5, 4), plane_bytes(3, 8)
    (39200, 3, 3)
    """
    _check_bits(bits)
    return -(-int(count) * bits // 8)


def field_range(bits: int) -> tuple[int, int]:
    """``(lowest, highest)`` value of a signed ``bits``-bit field.

    >>> field_range(8), field_range(2)
    ((-128, 127), (-2, 1))
    """
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def pack_plane(values: np.ndarray, bits: int) -> np.ndarray:
    """The uint8 plane of the flattened ``values`` (each in :func:`field_range`)."""
    _check_bits(bits)
    v = np.asarray(values).reshape(-1).astype(np.int64)
    lo, hi = field_range(bits)
    if v.size and (int(v.min()) < lo or int(v.max()) > hi):
        raise PlaneError(f"values in [{int(v.min())}, {int(v.max())}] do not fit {bits}-bit fields [{lo}, {hi}]")
    per = 8 // bits
    fields = np.zeros(plane_bytes(v.size, bits) * per, dtype=np.int64)
    fields[:v.size] = v & ((1 << bits) - 1)
    shifts = np.arange(per, dtype=np.int64) * bits
    return (fields.reshape(-1, per) << shifts).sum(axis=1).astype(np.uint8)


def unpack_plane(plane: np.ndarray, bits: int, count: int) -> np.ndarray:
    """The first ``count`` fields of ``plane`` as int8 values (sign-extended)."""
    _check_bits(bits)
    p = np.asarray(plane, dtype=np.uint8).reshape(-1)
    if p.size < plane_bytes(count, bits):
        raise PlaneError(f"a plane of {p.size} bytes holds fewer than {count} fields of {bits} bits")
    per = 8 // bits
    shifts = np.arange(per, dtype=np.int64) * bits
    fields = ((p.astype(np.int64)[:, None] >> shifts) & ((1 << bits) - 1)).reshape(-1)[:count]
    return np.where(fields >= 1 << (bits - 1), fields - (1 << bits), fields).astype(np.int8)


def _check_bits(bits: int) -> None:
    if bits not in PLANE_BITS:
        raise PlaneError(f"plane fields have 2, 4 or 8 bits, got {bits!r}")
