"""Exact integer aggregation of integer models: the arithmetic of every integer fleet strategy.

A client tensor is integer mantissas ``m`` (int8 / int16 weights, int32 biases) and one scale
``2**S * (5/4)**U * (3/4)**D`` (:class:`tintin.numerics.Scale`). Its real value is the exact
rational ``m * 2**(S - 2U - 2D) * 5**U * 3**D``. Aggregation never leaves the integers:

1. **Alignment.** Every tensor is written at one common base ``2**e * 5**u * 3**d`` with
   ``e, u, d`` the minima over the tensors added so far: ``a = m * 2**(e_c - e) * 5**(U_c - u) *
   3**(D_c - d)`` is an integer. When a later tensor has a smaller exponent the running sum is
   multiplied up, so the sum does not depend on the order the tensors arrive in.
2. **Weighted sum.** ``N = sum_c w_c * a_c`` with integer weights ``w_c >= 0`` (the clients'
   sample counts), in int64 while a running bound proves it cannot overflow (``|N| < 2**62``),
   else in Python integers (numpy ``object`` arrays): exact either way.
3. **Requantisation.** The average ``N / W * base`` (``W = sum_c w_c``) is rounded to the output
   scale ``T`` with **round half away from zero of the exact rational**: ``q = sign(N) *
   floor((2 |N| r_num + W r_den) / (2 W r_den))`` with ``base / T = r_num / r_den``.
4. **Output scale** (tintin's scale grid, :func:`tintin.numerics.rescale.grid_steps`):
   - weights: the finest (smallest) grid scale ``2**S * u**a * d**b`` (``(a, b)`` on the grid of
     the model's scale mode; any ``S``) at which every rounded mantissa fits the weight range
     (``[-127, 127]`` for int8; :func:`tintin.numerics.limit_for_bits`). The average of tensors
     that each fit never needs saturation at that scale; an all-zero tensor takes the finest of
     the input scales;
   - biases (int32 at a fixed scale): the finest of the input scales, saturated to
     ``[-2**30, 2**30]`` as :class:`tintin.optim.IntegerSGD` does.

Everything is a pure function of the multiset ``{(m_c, scale_c, w_c)}``: deterministic and
independent of client order (``tests/fleet/test_aggregate.py`` proves both with hypothesis).

Reptile's server step ``meta + eps * (avg - meta)`` with ``eps = k / 2**s`` is the same exact
operation with the meta model as one more term: ``((2**s - k) * W * meta + k * N) / (2**s * W)``
(:func:`reptile_step`), rounded once.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from ..numerics import Scale, ScaleMode, limit_for_bits
from ..numerics.rescale import grid_steps
from .errors import AggregationError

#: biases are int32 at a fixed scale and saturate here (as in :mod:`tintin.optim.sgd`)
BIAS_LIMIT = 1 << 30
#: the running bound above which the sum switches from int64 to exact Python integers
INT64_SAFE = 1 << 62
#: Reptile's step size eps is k / 2**EPS_SHIFT
EPS_SHIFT = 8


def _exponents(scale: Scale) -> tuple[int, int, int]:
    """``(e, u, d)`` with ``scale = 2**e * 5**u * 3**d`` exactly."""
    return scale.S - 2 * scale.U - 2 * scale.D, scale.U, scale.D


def _factor(de: int, du: int, dd: int) -> int:
    return (1 << de) * 5 ** du * 3 ** dd


def scale_value(scale: Scale) -> Fraction:
    """The exact rational value of a scale (host-side comparisons only)."""
    e, u, d = _exponents(scale)
    return Fraction(5 ** u * 3 ** d) * (Fraction(2) ** e)


def _max_abs(x: np.ndarray) -> int:
    if x.size == 0:
        return 0
    if x.dtype == object:
        return int(max(abs(v) for v in x.ravel()))
    return int(np.abs(x.astype(np.int64)).max())


def round_half_away(num: np.ndarray, den: int) -> np.ndarray:
    """``num / den`` rounded to the nearest integer, halves away from zero (``den > 0``), exact
    for int64 and Python-integer arrays."""
    if den <= 0:
        raise AggregationError("rounding needs a positive denominator")
    if num.dtype == object:
        return np.array([(1 if v >= 0 else -1) * ((2 * abs(v) + den) // (2 * den)) for v in num.ravel()],
                        dtype=object).reshape(num.shape)
    mag = (2 * np.abs(num) + den) // (2 * den)
    return np.where(num < 0, -mag, mag)


class ExactSum:
    """The running exact weighted sum of tensors of one shape (see the module docstring).

    >>> from tintin.numerics import Scale
    >>> acc = ExactSum((2,))
    >>> acc.add(np.array([3, -5], np.int8), Scale(-7), 1)
    >>> acc.add(np.array([1, 1], np.int8), Scale(-6), 3)      # 2**-6 = 2 * 2**-7
    >>> acc.mean_at(Scale(-7)).tolist()                       # (3 + 6) / 4, (-5 + 6) / 4
    [2, 0]
    """

    def __init__(self, shape: tuple[int, ...]):
        self.shape = tuple(shape)
        self.base: tuple[int, int, int] | None = None
        self.total: np.ndarray | None = None
        self.weight = 0
        self.bound = 0  # >= max |total|
        self.scales: set[Scale] = set()

    def _rebase(self, base: tuple[int, int, int]) -> None:
        if self.base is None:
            self.base = base
            return
        f = _factor(*(old - new for old, new in zip(self.base, base)))
        if f != 1:
            self.bound *= f
            if self.bound >= INT64_SAFE and self.total.dtype != object:
                self.total = self.total.astype(object)
            self.total = self.total * f
        self.base = base

    def add(self, m: np.ndarray, scale: Scale, weight: int, *, input_scale: bool = True) -> None:
        """Add ``weight * m * scale`` (integer weight >= 0). ``input_scale=False``: ``scale`` is
        not one of the inputs' scales (a partial sum's base), so the output-scale rule ignores it."""
        m = np.asarray(m)
        if m.shape != self.shape:
            raise AggregationError(f"tensor shape {m.shape} differs from {self.shape}")
        if m.dtype.kind not in "iu" and m.dtype != object:
            raise AggregationError(f"integer mantissas expected, got {m.dtype}")
        weight = int(weight)
        if weight < 0:
            raise AggregationError(f"weights must be >= 0, got {weight}")
        if input_scale:
            self.scales.add(scale)
        self.weight += weight
        mine = _exponents(scale)
        self._rebase(mine if self.base is None else tuple(min(a, b) for a, b in zip(self.base, mine)))
        f = _factor(*(a - b for a, b in zip(mine, self.base)))
        add_bound = _max_abs(m) * f * weight
        big = self.bound + add_bound >= INT64_SAFE or (self.total is not None and self.total.dtype == object)
        term = (m.astype(object) if big else m.astype(np.int64)) * (f * weight)
        if self.total is None:
            self.total = term
        else:
            if big and self.total.dtype != object:
                self.total = self.total.astype(object)
            self.total = self.total + term
        self.bound += add_bound

    def merge(self, other: "ExactSum") -> None:
        """Add another exact sum (e.g. the partial sum of another node)."""
        if other.total is None:
            self.weight += other.weight
            return
        e, u, d = other.base
        # other.total is at base 2**e 5**u 3**d = Scale(S=e+2u+2d, U=u, D=d)
        self.add(other.total, Scale(e + 2 * u + 2 * d, u, d), 1, input_scale=False)
        self.weight += other.weight - 1
        self.scales |= other.scales

    # -- requantisation ---------------------------------------------------------------------------
    def _ratio(self, target: Scale) -> tuple[int, int]:
        """``base / target`` as ``(num, den)`` integers."""
        te = _exponents(target)
        de, du, dd = (b - t for b, t in zip(self.base, te))
        num = _factor(max(de, 0), max(du, 0), max(dd, 0))
        den = _factor(max(-de, 0), max(-du, 0), max(-dd, 0))
        return num, den

    def mean_at(self, target: Scale) -> np.ndarray:
        """The weighted mean at scale ``target``, rounded half away from zero (int64 or, when
        it does not fit, Python integers)."""
        if self.weight <= 0 or self.total is None:
            raise AggregationError("nothing to average: the total weight is zero")
        num, den = self._ratio(target)
        big = self.total.dtype == object or self.bound * num >= INT64_SAFE or \
            2 * self.weight * den >= INT64_SAFE
        total = self.total.astype(object) if big else self.total
        q = round_half_away(total * num, self.weight * den)
        if q.dtype == object and _max_abs(q) < INT64_SAFE:
            q = q.astype(np.int64)
        return q

    def _rounded_max(self, amax: int, target: Scale) -> int:
        num, den = self._ratio(target)
        d = self.weight * den
        return (2 * amax * num + d) // (2 * d)

    def finest_fitting_scale(self, limit: int, mode: ScaleMode | str) -> Scale:
        """The smallest grid scale at which every rounded mantissa of the mean is within
        ``[-limit, limit]`` (the rule of the module docstring)."""
        amax = _max_abs(self.total)
        if amax == 0:
            return min(self.scales, key=scale_value)
        best = None
        for a, b in grid_steps(mode):
            # start from an estimate, then walk S to the smallest value that fits
            value = Fraction(amax) * Fraction(5 ** self.base[1] * 3 ** self.base[2]) * Fraction(2) ** self.base[0] \
                / (self.weight * limit)
            unit = scale_value(Scale(0, a, b))
            s = max(-200, int(np.floor(np.log2(float(value / unit)))) if value > 0 else 0)
            while self._rounded_max(amax, Scale(s, a, b)) > limit:
                s += 1
            while self._rounded_max(amax, Scale(s - 1, a, b)) <= limit:
                s -= 1
            cand = Scale(s, a, b)
            if best is None or scale_value(cand) < scale_value(best):
                best = cand
        return best

    def result(self, kind: str, bits: int, mode: ScaleMode | str) -> tuple[np.ndarray, Scale]:
        """The aggregated mantissas (``int8``/``int16`` weights, ``int32`` biases) and scale."""
        if kind == "bias":
            scale = min(self.scales, key=scale_value)
            q = self.mean_at(scale)
            q = np.clip(q, -BIAS_LIMIT, BIAS_LIMIT)
            return np.asarray(q, dtype=np.int64).astype(np.int32), scale
        limit = limit_for_bits(bits)
        scale = self.finest_fitting_scale(limit, mode)
        q = self.mean_at(scale)
        if _max_abs(q) > limit:  # cannot happen by construction; a guard for the invariant
            raise AggregationError("aggregated mantissas outside the weight range")
        return np.asarray(q, dtype=np.int64).astype(np.int8 if bits <= 8 else np.int16), scale


@dataclass(frozen=True)
class TensorSpec:
    """What the aggregation needs to know of a parameter: its kind and stored bits."""

    name: str
    kind: str  # "weight" or "bias"
    bits: int
    shape: tuple[int, ...]


#: one client's model: parameter name -> (mantissas, scale)
ClientTensors = dict[str, tuple[np.ndarray, Scale]]


def aggregate(models: list[ClientTensors], weights: list[int], specs: list[TensorSpec],
              mode: ScaleMode | str) -> ClientTensors:
    """The reference integer FedAvg: the exact weighted mean of ``models`` per parameter of
    ``specs``, requantised by the rule of the module docstring. Independent of list order."""
    if len(models) != len(weights) or not models:
        raise AggregationError(f"{len(models)} models but {len(weights)} weights")
    if sum(int(w) for w in weights) <= 0:
        raise AggregationError("the total client weight is zero")
    out = {}
    for spec in specs:
        acc = ExactSum(spec.shape)
        for model, w in zip(models, weights):
            if spec.name not in model:
                raise AggregationError(f"a client model lacks parameter {spec.name}")
            m, s = model[spec.name]
            acc.add(m, s, w)
        out[spec.name] = acc.result(spec.kind, spec.bits, mode)
    return out


def eps_fraction(eps: float) -> int:
    """Reptile's step size as the integer ``k`` of ``eps = k / 2**EPS_SHIFT`` (nearest, >= 1)."""
    if not 0 < eps <= 1:
        raise AggregationError(f"the meta step size must be in (0, 1], got {eps}")
    return max(1, min(1 << EPS_SHIFT, int(round(eps * (1 << EPS_SHIFT)))))


def reptile_sum(meta: tuple[np.ndarray, Scale], acc: ExactSum, k: int) -> ExactSum:
    """The exact sum whose mean is ``meta + (k / 2**EPS_SHIFT) * (mean(acc) - meta)``."""
    out = ExactSum(acc.shape)
    full = 1 << EPS_SHIFT
    W = acc.weight
    if W <= 0:
        raise AggregationError("the total client weight is zero")
    if full - k:
        out.add(meta[0], meta[1], (full - k) * W)
    e, u, d = acc.base
    out.add(acc.total, Scale(e + 2 * u + 2 * d, u, d), k, input_scale=False)
    out.weight = full * W
    out.scales |= acc.scales
    return out


def displaced(base: tuple[np.ndarray, Scale], start: tuple[np.ndarray, Scale], end: tuple[np.ndarray, Scale],
              spec: TensorSpec, mode: ScaleMode | str) -> tuple[np.ndarray, Scale]:
    """``base + (end - start)`` exactly, requantised once by the rule of the module docstring
    (weights: the finest fitting grid scale; biases: the finest of the three scales, saturated):
    a device moves the model it received by the displacement of some of its own steps (first-order
    MAML's query steps, :func:`tintin.fleet.local.train_device`)."""
    acc = ExactSum(spec.shape)
    acc.add(base[0], base[1], 1)
    acc.add(end[0], end[1], 1)
    acc.add(-np.asarray(start[0]).astype(np.int64), start[1], 1)
    acc.weight = 1
    return acc.result(spec.kind, spec.bits, mode)


def reptile_step(meta: ClientTensors, models: list[ClientTensors], weights: list[int], specs: list[TensorSpec],
                 mode: ScaleMode | str, eps: float) -> ClientTensors:
    """The reference federated Reptile server step: ``meta + eps * (avg - meta)`` exactly, with
    ``avg`` the weighted mean of ``models`` and ``eps`` rounded to ``k / 2**EPS_SHIFT``."""
    k = eps_fraction(eps)
    out = {}
    for spec in specs:
        acc = ExactSum(spec.shape)
        for model, w in zip(models, weights):
            acc.add(*model[spec.name], w)
        out[spec.name] = reptile_sum(meta[spec.name], acc, k).result(spec.kind, spec.bits, mode)
    return out
