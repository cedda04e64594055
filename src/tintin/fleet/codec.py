"""Integer models on the wire: Flower records, top-P% sparse updates and exact byte counts.

A model travels as a :class:`flwr.app.ArrayRecord` of integer arrays only:

``<param>``         the mantissas (int8 / int16 weights, int32 biases), one device: the tensor's
                    shape; several devices: stacked, ``(k, *shape)``;
``<param>.scale``   int32 ``[S, U, D]`` of its scale ``2**S * (5/4)**U * (3/4)**D`` (``(k, 3)``
                    stacked).

A **top-P% sparse update** (TinyMetaFed's communication saving) sends, for each shared parameter
of ``n`` elements, the ``ceil(P/100 * n)`` positions whose trained value moved most from the
model the device received (``|local - received|`` compared exactly in integers; ties: lower
index first) as ``<param>.idx`` (int32 flat indices, every device's concatenated),
``<param>.val`` (the trained mantissas there, the parameter's dtype), ``<param>.count`` (int32,
positions per device) and ``<param>.scale``. The server rebuilds each device's tensor exactly: the
received model everywhere else, the sent values at the sent positions (two exact terms of the
integer sum, :meth:`tintin.fleet.aggregation.ExactSum.add`).

**Bytes** (what a device would transmit, exactly): per tensor, dense ``n * itemsize + 3`` (three
int8 scale exponents); sparse ``4 + k * (index_bytes + itemsize) + 3`` (a uint32 count; indices in
1, 2 or 4 bytes as ``n`` needs); plus 4 bytes per message for the device's sample count. Float
tensors: ``n * 4`` (float32), no scale.
"""

from __future__ import annotations

import math

import numpy as np

from ..numerics import Scale
from .aggregation import ExactSum, _exponents, _factor
from .errors import FleetError

SCALE_BYTES = 3
COUNT_BYTES = 4


def _array(v: np.ndarray):
    from flwr.app import Array

    return Array(np.ascontiguousarray(v))


def to_record(arrays: dict[str, np.ndarray]):
    """A Flower ``ArrayRecord`` of numpy arrays (kept exactly: integers stay integers)."""
    from flwr.app import ArrayRecord

    return ArrayRecord({k: _array(v) for k, v in arrays.items()})


def from_record(record) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in record.items()}


def model_arrays(params: dict[str, tuple[np.ndarray, Scale]]) -> dict[str, np.ndarray]:
    """``{name: m, name.scale: [S, U, D]}`` of integer tensors."""
    out = {}
    for name, (m, s) in params.items():
        out[name] = np.asarray(m)
        out[name + ".scale"] = np.array(s.as_tuple(), dtype=np.int32)
    return out


def arrays_model(arrays: dict[str, np.ndarray], names) -> dict[str, tuple[np.ndarray, Scale]]:
    """The inverse of :func:`model_arrays` for parameters ``names``."""
    try:
        return {n: (arrays[n], Scale.from_tuple(arrays[n + ".scale"])) for n in names}
    except KeyError as exc:
        raise FleetError(f"a model record lacks {exc.args[0]}") from None


def index_bytes(n: int) -> int:
    return 1 if n <= 1 << 8 else 2 if n <= 1 << 16 else 4


def dense_bytes(params: dict[str, tuple[np.ndarray, Scale]] | dict[str, np.ndarray], floating: bool = False) -> int:
    """Bytes of one dense model message (see the module docstring)."""
    if floating:
        return sum(int(np.asarray(v).size) * 4 for v in params.values()) + COUNT_BYTES
    return sum(int(m.size) * m.dtype.itemsize + SCALE_BYTES for m, _ in params.values()) + COUNT_BYTES


def top_count(n: int, top_p: float) -> int:
    """Positions a top-P% update sends of a tensor of ``n`` elements (at least 1)."""
    return max(1, min(n, math.ceil(top_p / 100.0 * n)))


def sparse_bytes(sizes: dict[str, int], itemsizes: dict[str, int], top_p: float) -> int:
    """Bytes of one top-P% message (see the module docstring)."""
    return sum(COUNT_BYTES + top_count(n, top_p) * (index_bytes(n) + itemsizes[k]) + SCALE_BYTES
               for k, n in sizes.items()) + COUNT_BYTES


def _aligned_pair(a: np.ndarray, sa: Scale, b: np.ndarray, sb: Scale) -> tuple[np.ndarray, np.ndarray]:
    """``a * sa`` and ``b * sb`` as integers at one common base (exact; Python integers if large)."""
    ea, eb = _exponents(sa), _exponents(sb)
    base = tuple(min(x, y) for x, y in zip(ea, eb))
    fa = _factor(*(x - y for x, y in zip(ea, base)))
    fb = _factor(*(x - y for x, y in zip(eb, base)))
    big = max(fa, fb) >= 1 << 30
    dt = object if big else np.int64
    return a.astype(dt) * fa, b.astype(dt) * fb


def top_positions(local: np.ndarray, local_scale: Scale, received: np.ndarray, received_scale: Scale,
                  top_p: float) -> np.ndarray:
    """Flat indices (int32, ascending) of the ``top_count`` largest ``|local - received|``."""
    la, ra = _aligned_pair(local.ravel(), local_scale, received.ravel(), received_scale)
    diff = np.abs(la - ra)
    k = top_count(diff.size, top_p)
    order = sorted(range(diff.size), key=lambda i: (-diff[i], i)) if diff.dtype == object else \
        np.lexsort((np.arange(diff.size), -diff))
    return np.sort(np.asarray(order[:k], dtype=np.int64)).astype(np.int32)


def add_sparse(acc: ExactSum, received: np.ndarray, received_scale: Scale, idx: np.ndarray, val: np.ndarray,
               val_scale: Scale, weight: int) -> None:
    """Add a device's rebuilt tensor (received model, sent values at ``idx``) to ``acc``."""
    flat = np.asarray(received).ravel()
    if idx.size and (idx.min() < 0 or idx.max() >= flat.size or len(np.unique(idx)) != idx.size):
        raise FleetError("a sparse update has indices out of range or repeated")
    kept = flat.copy()
    kept[idx] = 0
    sent = np.zeros(flat.size, dtype=val.dtype)
    sent[idx] = val
    acc.add(kept.reshape(acc.shape), received_scale, weight)
    acc.add(sent.reshape(acc.shape), val_scale, weight)
    acc.weight -= weight  # one device, two exact terms: its weight counts once
