"""Named, deterministic rounding of integer right shifts.

Every rounding in tintin divides an integer ``x`` by ``2**n`` (``n >= 0``) and rounds the quotient
to an integer. All modes work on the *magnitude* and restore the sign afterwards, so that
``round(-x) == -round(x)`` and no mode drifts on negative values (floor-division shifts round toward
minus infinity; NITI's rule written for them is biased on negative values).

``nearest``
    Round half away from zero: ``sign(x) * ((|x| + 2**(n-1)) >> n)``. Used for activations and
    errors (forward and backward passes).

``stochastic``
    Unbiased stochastic rounding with a counter-based draw that the C runtime reproduces:
    ``sign(x) * ((|x| + r) >> n)`` with ``r`` uniform in ``[0, 2**n)``. The draw is ``weyl32``:
    ``r`` is the top ``n`` bits of ``u_i = (key + i * 0x9E3779B9) mod 2**32``, where ``i`` is the
    element's flat index and ``key`` a 32-bit stream key (:class:`RoundingStream`, a ``mix32`` hash of
    seed, step and site) drawn once per rounding call. For ``n > 32`` the 32 draw bits are shifted
    left by ``n - 32``. The draw depends only on ``(key, i)``, so it does not depend on the order in
    which elements are rounded, and a device walks it with one addition per element.

    *Why it is exact.* For a fixed ``i``, ``key -> u_i`` is a bijection of the 32-bit integers, so a
    uniform key gives a uniform ``u_i`` and a uniform ``r`` in ``[0, 2**n)`` for every ``n <= 32``;
    then ``E[(|x| + r) >> n] = |x| / 2**n`` exactly (Hermite's identity:
    ``sum_{r < 2**n} (a + r) >> n == a``), for each element separately. (For ``n > 32`` the draw has
    ``2**-32`` resolution, as before.) Across steps each element sees a fresh hashed key, so its
    rounding errors are independent from step to step. Within one call the draws of different
    elements are not independent: ``u_j - u_i = (j - i) * 0x9E3779B9`` is fixed, and the points
    ``u_i / 2**32`` are the golden-ratio Kronecker sequence, the best-distributed (lowest-discrepancy)
    sequence of its kind. Each weight's update is unbiased with the variance of an independent
    draw, and the summed rounding error of many weights with similar fractional parts is *smaller*
    than with independent draws (the sequence covers ``[0, 1)`` evenly instead of clumping).
    The previous draw, ``mix32(u_i)``, spent two multiplications and three xor-shifts per element on
    scrambling that exactness does not need.
``pseudo_stochastic``
    NITI's generator-free idea: the ``n`` discarded bits ``r`` are split into a high part
    ``p = r >> l`` (``h = ceil(n/2)`` bits, the rounding probability) and a low part
    ``t = r & (2**l - 1)`` (``l = n - h`` bits, the "random" draw); for odd ``n`` the draw gets one more
    bit, ``t = (t << 1) | (p & 1)``, so both have ``h`` bits. The magnitude rounds up when ``p > t``,
    or ``p == t`` and ``p`` is odd. For uniformly distributed discarded bits the mean error is
    ``+2**-(n+1)`` of a unit (away from zero), the same as ``nearest``; for ``n = 1`` it *is*
    ``nearest``. Only as random as the low bits of the data; needs no generator and no state.

``n == 0`` returns ``x`` unchanged in every mode.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

MASK32 = 0xFFFFFFFF
GOLDEN32 = 0x9E3779B9
MIX_MUL1 = 0x7FEB352D
MIX_MUL2 = 0x846CA68B


class Rounding(str, Enum):
    NEAREST = "nearest"
    STOCHASTIC = "stochastic"
    PSEUDO_STOCHASTIC = "pseudo_stochastic"


def mix32(x: int) -> int:
    """32-bit integer hash (xorshift-multiply, 'lowbias32' constants). Scalar version."""
    x &= MASK32
    x ^= x >> 16
    x = (x * MIX_MUL1) & MASK32
    x ^= x >> 15
    x = (x * MIX_MUL2) & MASK32
    x ^= x >> 16
    return x


_index_cache: dict[int, np.ndarray] = {}


def _golden_index(size: int) -> np.ndarray:
    """``(i * GOLDEN32) mod 2**32`` for i in range(size), as uint32 (cached)."""
    arr = _index_cache.get(size)
    if arr is None:
        arr = np.arange(size, dtype=np.uint32) * np.uint32(GOLDEN32)
        if len(_index_cache) > 64:
            _index_cache.clear()
        _index_cache[size] = arr
    return arr


def draw_bits(key: int, size: int) -> np.ndarray:
    """The ``weyl32`` draws ``(key + i * GOLDEN32) mod 2**32`` for ``i < size``, as uint32."""
    return _golden_index(size) + np.uint32(key & MASK32)


class RoundingStream:
    """Source of stream keys for stochastic rounding, independent of call order.

    The key of rounding *site* ``site`` (a small integer naming one rounding call in the training
    step, e.g. ``4 * parameter_index + purpose``) at training step ``step`` is
    ``mix32(mix32(mix32(seed) ^ step) ^ site)``. The C runtime holds the same ``(seed, step)`` pair and
    the same site numbers, so the same step gives the same bits in any execution order.
    """

    __slots__ = ("seed", "step", "_seed_hash")

    def __init__(self, seed: int = 0, step: int = 0):
        self.seed = int(seed) & MASK32
        self.step = int(step) & MASK32
        self._seed_hash = mix32(self.seed)

    def key(self, site: int) -> int:
        return mix32(mix32(self._seed_hash ^ self.step) ^ (int(site) & MASK32))

    def advance(self) -> None:
        """Move to the next training step."""
        self.step = (self.step + 1) & MASK32

    def __repr__(self) -> str:
        return f"RoundingStream(seed={self.seed}, step={self.step})"


def shift_round(x: np.ndarray, n: int, mode: Rounding = Rounding.NEAREST,
                key: int | None = None) -> np.ndarray:
    """``x / 2**n`` rounded by ``mode`` (see the module docstring). ``x`` is a signed integer array.

    The result has ``x``'s dtype when it is int32 or int64 (int8 and int16 inputs are widened to int32). ``n`` must be in [0, 62]; for int32 input ``n``
    may be at most 31 and ``|x| < 2**31 - 2**(n-1)`` (true for every accumulator bound we document).
    """
    n = int(n)
    if n == 0:
        return x
    if n < 0 or n > 62:
        raise ValueError(f"shift must be in [0, 62], got {n}")
    if x.dtype.itemsize < 4:  # int8 / int16 mantissas: widen so adding the rounding half cannot wrap
        x = x.astype(np.int32)
    if mode is Rounding.NEAREST or mode == "nearest":
        # sign-symmetric: (x + 2**(n-1) - [x < 0]) >> n equals sign(x) * ((|x| + 2**(n-1)) >> n)
        out = x + x.dtype.type(1 << (n - 1))
        out -= x < 0
        out >>= n
        return out
    mode = Rounding(mode)
    wide = x.astype(np.int64, copy=False)
    if mode is Rounding.STOCHASTIC:
        if key is None:
            raise ValueError("stochastic rounding needs a stream key (RoundingStream.key)")
        bits = draw_bits(key, wide.size).reshape(wide.shape)
        r = (bits >> np.uint32(32 - n)).astype(np.int64) if n <= 32 else bits.astype(np.int64) << (n - 32)
        # sign-magnitude in one pass: for x < 0, (x + (2**n - 1 - r)) >> n == -((|x| + r) >> n),
        # and 2**n - 1 - r == r ^ (2**n - 1)
        r ^= (wide >> 63) & ((1 << n) - 1)
        r += wide
        r >>= n
        return r.astype(x.dtype, copy=False)
    # pseudo-stochastic
    neg = wide < 0
    mag = np.abs(wide)
    h = (n + 1) // 2
    low = n - h
    rem = mag & ((1 << n) - 1)
    p = rem >> low
    t = rem & ((1 << low) - 1)
    if h > low:
        t = (t << 1) | (p & 1)
    q = (mag >> n) + ((p > t) | ((p == t) & (p & 1).astype(bool)))
    q = np.where(neg, -q, q)
    return q.astype(x.dtype, copy=False)


def shift_round_scalar(x: int, n: int) -> int:
    """Round half away from zero of ``x / 2**n`` for Python ints (``n >= 0``)."""
    if n <= 0:
        return x << -n
    half = 1 << (n - 1)
    return (abs(x) + half) >> n if x >= 0 else -((-x + half) >> n)
