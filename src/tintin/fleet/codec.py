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

**Error feedback** (on by default with top-P%, as in top-k sparsified SGD): what a device does not
send is not lost. It keeps a residual ``e`` (int16 mantissas and a grid scale per shared tensor,
2 bytes per parameter on the device) and selects on ``v = (local - received) + e``; it sends the
absolute values ``received + v`` at the selected positions, requantised once to the finest grid
scale where they fit the parameter's range (rounded half away from zero), and keeps ``e' = v -
(sent - received)`` (exact, then stored at the finest int16 grid scale) for the next round
(:func:`sparse_update`).

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


def _exact(terms, shape) -> ExactSum:
    """The exact sum of ``(mantissas, scale)`` terms (weight 1 each; its mean is the sum)."""
    acc = ExactSum(shape)
    for m, sc in terms:
        acc.add(np.asarray(m).astype(np.int64), sc, 1)
    acc.weight = 1
    return acc


def sparse_update(local: np.ndarray, local_scale: Scale, received: np.ndarray, received_scale: Scale,
                  residual: tuple[np.ndarray, Scale] | None, top_p: float, kind: str, bits: int, mode):
    """A top-P% update with error feedback: ``(idx, values, values_scale, new_residual)`` (see the
    module docstring). ``residual=None``: none kept yet (zero)."""
    flat_l, flat_r = local.ravel(), received.ravel()
    terms = [(flat_l, local_scale), (-flat_r.astype(np.int64), received_scale)]
    if residual is not None:
        terms.append((residual[0].ravel(), residual[1]))
    v = _exact(terms, flat_l.shape).total
    mag = np.abs(v)
    k = top_count(mag.size, top_p)
    order = sorted(range(mag.size), key=lambda i: (-mag[i], i)) if mag.dtype == object else \
        np.lexsort((np.arange(mag.size), -mag))
    idx = np.sort(np.asarray(order[:k], dtype=np.int64))
    sent = [(flat_l[idx], local_scale)] + ([] if residual is None else [(residual[0].ravel()[idx], residual[1])])
    values, values_scale = _exact(sent, idx.shape).result(kind, bits, mode)
    # e' = (local + e - received) everywhere, minus (sent - received) where sent
    kept = flat_r.astype(np.int64).copy()
    kept[idx] = 0
    back = np.zeros(flat_l.size, dtype=np.int64)
    back[idx] = values
    new = _exact(terms[:1] + terms[2:] + [(-kept, received_scale), (-back, values_scale)], flat_l.shape)
    res_m, res_s = new.result("weight", 16, mode)
    return idx.astype(np.int32), values, values_scale, (res_m.reshape(local.shape), res_s)


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
