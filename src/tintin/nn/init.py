"""Weight initialisation: standard float initialisers quantised once on the host.

Initial weights are drawn in float64 from a seeded numpy generator (a host-side edge, like data
quantisation) and turned into integer mantissas and an exact scale; the float baseline starts from
exactly these values dequantised.

Passing :data:`PLACEHOLDER` instead of a generator to a layer builds it with placeholder
parameters: read-only zero-strided zeros of the right shape and dtype that cost no memory and draw
nothing. A model file loader builds the model that way, compares the shapes with the stored tensors
and only then assigns the stored values (:mod:`tintin.io.model_file`).
"""

from __future__ import annotations

import math

import numpy as np

from ..numerics import QTensor, Scale, ScaleMode, limit_for_bits
from ..numerics.scale_rows import quantize_rows
from .config import BIAS_EXPONENT, QuantConfig


class Placeholder:
    """Type of :data:`PLACEHOLDER`: "no initial values, the caller assigns them"."""

    def __repr__(self) -> str:
        return "PLACEHOLDER"


#: pass as ``rng`` to build a layer without initial values (see the module docstring)
PLACEHOLDER = Placeholder()


def placeholder_tensor(shape: tuple[int, ...], dtype, scale: Scale) -> QTensor:
    """Zeros of ``shape`` that take no memory (one element broadcast, read-only)."""
    return QTensor(np.broadcast_to(np.zeros((), dtype=dtype), tuple(shape)), scale)


def weight_dtype(config: QuantConfig):
    return np.int8 if config.weight_bits == 8 else np.int16


def initial_weight(rng, shape: tuple[int, ...], fan_in: int, config: QuantConfig, gain: float = 1.0) -> QTensor:
    """Quantised ``U(+-gain/sqrt(fan_in))`` weights drawn from ``rng`` (PyTorch's default for
    ``gain=1``); a :data:`PLACEHOLDER` rng gives placeholder zeros."""
    if isinstance(rng, Placeholder):
        return placeholder_tensor(shape, weight_dtype(config), Scale(0))
    w = kaiming_uniform(rng, shape, fan_in)
    if gain != 1.0:
        w *= gain
    return quantize_weight(w, config)


def initial_weight_rows(rng, shape: tuple[int, ...], fan_in: int, config: QuantConfig, row_limit: int | None,
                        gain: float = 1.0) -> tuple[QTensor, np.ndarray | None]:
    """:func:`initial_weight` with per-row exponents when ``row_limit`` is not ``None`` (the same
    draws; each row quantised at the finest power-of-two step below the tensor scale that holds it,
    see :func:`tintin.numerics.scale_rows.quantize_rows`): ``(weights, row exponents or None)``."""
    if row_limit is None:
        return initial_weight(rng, shape, fan_in, config, gain), None
    if isinstance(rng, Placeholder):
        return placeholder_tensor(shape, weight_dtype(config), Scale(0)), np.zeros(shape[0], dtype=np.int8)
    w = kaiming_uniform(rng, shape, fan_in)
    if gain != 1.0:
        w *= gain
    tensor = quantize_weight(w, config)
    m, scale, row_exp = quantize_rows(w, tensor.scale, row_limit, config.weight_bits)
    return QTensor(m, scale), row_exp


def initial_bias(rng, shape: tuple[int, ...], fan_in: int) -> QTensor:
    """Quantised ``U(+-1/sqrt(fan_in))`` biases drawn from ``rng`` (placeholder zeros for
    :data:`PLACEHOLDER`)."""
    if isinstance(rng, Placeholder):
        return placeholder_tensor(shape, np.int32, Scale(BIAS_EXPONENT))
    return quantize_bias(kaiming_uniform(rng, shape, fan_in))


def smallest_scale_at_least(value: float, mode: ScaleMode, max_steps: int = 2) -> Scale:
    """The smallest representable scale ``>= value`` (pow2: ``2**ceil(log2 value)``)."""
    if not value > 0:
        return Scale(0)
    steps = range(max_steps + 1) if mode is ScaleMode.COMPOUND else range(1)
    best = None
    for u in steps:
        for d in steps:
            base = 1.25**u * 0.75**d
            s = math.ceil(math.log2(value / base) - 1e-12)
            cand = Scale(s, u, d)
            if cand.to_float() < value * (1 - 1e-12):
                cand = Scale(s + 1, u, d)
            if best is None or cand.to_float() < best.to_float():
                best = cand
    return best


def _round_half_away(x: np.ndarray) -> np.ndarray:
    return np.sign(x) * np.floor(np.abs(x) + 0.5)


def quantize_weight(w: np.ndarray, config: QuantConfig) -> QTensor:
    """Float weights -> mantissas of ``config.weight_bits`` bits and a scale (host, once)."""
    bits = config.weight_bits
    limit = limit_for_bits(bits)
    amax = float(np.abs(w).max()) if w.size else 0.0
    if amax == 0.0:
        return QTensor(np.zeros(w.shape, dtype=np.int8 if bits == 8 else np.int16), Scale(-7))
    if config.upscale_init:
        scale = smallest_scale_at_least(amax / limit, config.scale_mode)
    else:
        scale = smallest_scale_at_least(amax / limit * 2**config.init_headroom_bits, ScaleMode.POW2)
    m = np.clip(_round_half_away(w / scale.to_float()), -limit, limit)
    return QTensor(m.astype(np.int8 if bits == 8 else np.int16), scale)


def quantize_bias(b: np.ndarray) -> QTensor:
    """Float bias -> int32 mantissas at the fixed bias scale ``2**BIAS_EXPONENT``."""
    m = np.clip(_round_half_away(b * 2.0**-BIAS_EXPONENT), -(2**30), 2**30)
    return QTensor(m.astype(np.int32), Scale(BIAS_EXPONENT))


def kaiming_uniform(rng: np.random.Generator, shape: tuple[int, ...], fan_in: int) -> np.ndarray:
    """PyTorch's default layer initialisation: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape)
