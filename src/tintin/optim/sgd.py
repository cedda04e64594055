"""Integer SGD.

Two update rules, both integer-only:

``aligned`` (Tin-Tin's gradient-aligned update)
    Honours the real update ``w <- w - lr/B * g``. The learning rate is a scale ``2**S*u**U*d**D``
    (chosen on the host from a float setting, once); ``lr * s_g / s_w`` becomes a fixed-point
    multiplier ``(M, n)`` (:func:`ratio_multiplier`), divided by the batch size B in integers
    (:func:`divide_multiplier`), and the int32 gradient mantissas are multiplied and rounded
    (stochastic by default, so updates smaller than one weight step still move weights in
    expectation): ``delta = round(g * M / 2**n)``.
``niti`` (NITI's bit-width rule, weights only)
    ``delta = round(g / 2**k)`` with ``k = bitlen(max|g|) - mu``: the largest step has ``mu`` bits; the
    real gradient scale is ignored. ``mu`` plays the learning rate. Biases have no NITI rule and
    always use the aligned rule.

Then ``w_new = w - delta``. Where ``|w_new|`` leaves the weight range: with ``weight_rescale`` the
whole tensor is rescaled to the next coarser scale (nearest rounding; a fine u/d step in compound
mode, a halving in pow2 mode); without, weights saturate. The new weight scale stays on the scale grid (``u**a*d**b``, ``0 <= a, b <= 2``, see
:func:`tintin.numerics.rescale.choose_grid_rescale`) so its exponents never drift. Biases are int32 at a fixed scale and saturate at +-2**30.

Optional integer momentum (aligned rule): ``v <- v - round(v / 2**k) + delta_fine`` with
``beta = 1 - 2**-k``, where ``v`` holds the step in 1/256 weight units; ``delta = round(v / 256)``.

Optional error feedback (``error_feedback``, aligned rule, weights of the named layers): the weight
keeps an ``L``-bit *remainder* ``r`` next to its int8 (or int16) mantissa ``w`` (``L = feedback_bits``
in {2, 4, 8}, default 8), in units of 2**-L of a weight step, so the master value is
``W = 2**L * w + r`` (an ``8 + L``-bit master whose high part the forward pass reads directly). The
update in those units, ``fine = round(g * M / 2**(n - L))`` (the configured rounding, site
``4 * i + 1``; with momentum, ``L = 8`` only, ``fine = v``), is subtracted from ``W``; then
``w = (W + 2**(L-1)) >> L`` and ``r = W - 2**L * w`` in ``[-2**(L-1), 2**(L-1) - 1]``. Updates
smaller than one weight step are delayed until they add up, not lost or left to chance. A weight
rescale rounds ``W`` to the new scale (nearest) and splits it again; sparse rows saturate ``W`` at
``+-((limit << L) + 2**(L-1) - 1)``. The remainder is held in an int8 array (``L`` bits of it used;
compiled programs pack it, see :mod:`tintin.compile.planner`), no int8 view.

Stochastic rounding keys: site ``4 * i`` (update) of parameter ``i`` in ``model.parameters()`` order;
site ``4 * i + 1``: the error-feedback update (used instead of site ``4 * i`` for those weights).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from functools import partial
from typing import Callable

import numpy as np

from ..numerics import (Rounding, Scale, ScaleMode, apply_multiplier, limit_for_bits, max_abs,
                        ratio_multiplier, shift_round)
from ..numerics.rescale import choose_grid_rescale, clip_inplace
from ..numerics.scale import divide_multiplier
from ..numerics.scale_rows import RowScaleError, apply_multiplier_rows, renormalise_rows
from ..errors import TintinError
from ..nn.module import FEEDBACK_BITS_CHOICES, Context, Parameter

MOMENTUM_FRAC_BITS = 8
#: fraction bits of the error-feedback remainder by default (one int8 byte per weight)
FEEDBACK_FRAC_BITS = 8
MOMENTUM_LIMIT = 1 << 40
BIAS_LIMIT = 1 << 30


class FeedbackBitsError(TintinError, ValueError):
    """A weight's stored error-feedback remainder has another width than the optimiser's."""


class FeedbackOverflowError(TintinError, OverflowError):
    """An error-feedback step beyond its int64 bound: ``n < L`` and ``max|g| * M * 2**(L - n) >= 2**46``."""


#: |fine| < 2**FEEDBACK_FINE_BITS keeps the master W (< 2**47) and its rescale product inside int64
FEEDBACK_FINE_BITS = 46


def _scheduled(value, schedule, epoch: int):
    """The value in force at ``epoch``: the last ``(from_epoch, value)`` entry that has started."""
    for start, v in schedule:
        if epoch >= start:
            value = v
    return value


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser settings. Learning rates are floats here (host configuration) and become integer
    scales once, in :class:`IntegerSGD`; schedules are ``((from_epoch, value), ...)``."""

    rule: str = "aligned"
    lr: float = 0.5
    lr_schedule: tuple[tuple[int, float], ...] = ()
    mu: int = 4
    mu_schedule: tuple[tuple[int, int], ...] = ()
    rounding: Rounding = Rounding.STOCHASTIC
    momentum_shift: int = 0
    weight_rescale: bool = True
    error_feedback: tuple[str, ...] = ()
    feedback_bits: int = FEEDBACK_FRAC_BITS

    def __post_init__(self):
        if isinstance(self.error_feedback, str) or not all(isinstance(n, str) for n in self.error_feedback):
            raise ValueError(f"error_feedback must be a list of layer names ('*': every layer), "
                             f"got {self.error_feedback!r}")
        object.__setattr__(self, "error_feedback", tuple(self.error_feedback))
        object.__setattr__(self, "rounding", Rounding(self.rounding))
        object.__setattr__(self, "lr_schedule", tuple((int(e), float(v)) for e, v in self.lr_schedule))
        object.__setattr__(self, "mu_schedule", tuple((int(e), int(v)) for e, v in self.mu_schedule))
        if self.rule not in ("aligned", "niti"):
            raise ValueError(f"unknown update rule {self.rule!r} (aligned, niti)")
        if not self.lr > 0:
            raise ValueError(f"learning rate must be positive, got {self.lr}")
        if not 1 <= self.mu <= 8:
            raise ValueError(f"mu must be in 1..8, got {self.mu}")
        if not 0 <= self.momentum_shift <= 8:
            raise ValueError("momentum_shift must be in 0..8 (0 = no momentum)")
        if self.error_feedback and self.rule != "aligned":
            raise ValueError("error feedback works with the aligned rule only")
        if isinstance(self.feedback_bits, bool) or self.feedback_bits not in FEEDBACK_BITS_CHOICES:
            raise ValueError(f"feedback_bits must be one of {', '.join(map(str, FEEDBACK_BITS_CHOICES))}, "
                             f"got {self.feedback_bits!r}")
        object.__setattr__(self, "feedback_bits", int(self.feedback_bits))
        if self.feedback_bits != FEEDBACK_FRAC_BITS and not self.error_feedback:
            raise ValueError("feedback_bits sets the remainder width of error feedback: name the layers "
                             "(error_feedback) too")
        if self.feedback_bits != FEEDBACK_FRAC_BITS and self.momentum_shift:
            raise ValueError(f"feedback_bits={self.feedback_bits} does not combine with momentum (its v is in "
                             "2**-8 weight steps): use feedback_bits=8")

    def __repr__(self) -> str:
        """The dataclass repr, without ``feedback_bits`` at its default (so the text that names a
        configuration, e.g. in a device checkpoint's model hash, is what it was before the field)."""
        shown = [f for f in fields(self) if not (f.name == "feedback_bits" and self.feedback_bits == FEEDBACK_FRAC_BITS)]
        return f"OptimConfig({', '.join(f'{f.name}={getattr(self, f.name)!r}' for f in shown)})"

    def feeds_back(self, param_name: str, kind: str) -> bool:
        """Whether the weight ``param_name`` keeps an error-feedback remainder."""
        return kind == "weight" and bool(self.error_feedback) and (
            "*" in self.error_feedback or param_name.rsplit(".", 1)[0] in self.error_feedback)

    def lr_at(self, epoch: int) -> float:
        return _scheduled(self.lr, self.lr_schedule, epoch)

    def mu_at(self, epoch: int) -> int:
        return _scheduled(self.mu, self.mu_schedule, epoch)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rounding"] = self.rounding.value
        if not self.error_feedback:  # settings without it are written as before
            del d["error_feedback"]
        else:
            d["error_feedback"] = list(self.error_feedback)
        if self.feedback_bits == FEEDBACK_FRAC_BITS:  # the default is written as before too
            del d["feedback_bits"]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "OptimConfig":
        return cls(**d)


class IntegerSGD:
    """Applies :class:`OptimConfig` updates to a model's parameters, one parameter at a time."""

    def __init__(self, params: list[Parameter], config: OptimConfig, mode: ScaleMode,
                 update_kernel: Callable[["IntegerSGD", Parameter, int], None] | None = None):
        """``update_kernel(optimizer, param, key)``: an optional native implementation of
        :meth:`update` that must be bit-identical to it (e.g. the C runtime's update through
        ``tintin.codegen.fast_update``); it sets the parameter's value and momentum."""
        self.config = config
        self.mode = ScaleMode(mode)
        self.update_kernel = update_kernel
        self.params = list(params)
        self.site = {id(p): 4 * i for i, p in enumerate(self.params)}
        self.batch_size = 1
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        self.lr_scale = Scale.nearest(self.config.lr_at(epoch), ScaleMode.COMPOUND)
        self.mu = self.config.mu_at(epoch)

    def effective_lr(self) -> float:
        """The learning rate the integer update really applies (host reporting / float twin)."""
        return self.lr_scale.to_float()

    # -- the update --------------------------------------------------------------------------
    def update(self, p: Parameter, ctx: Context) -> None:
        """Update one parameter from ``p.grad`` (then drop the gradient).

        With ``p.trainable_rows`` (sparse update) only those rows change: the gradient rows are
        selected first (stochastic draws index the selected sub-array), and the tensor saturates
        instead of rescaling, so frozen rows stay bit-identical."""
        g = p.grad
        if g is None:
            return
        if p.row_exp is not None:
            self._update_row_scaled(p, ctx.stream.key(self.site[id(p)]))
            p.grad = None
            return
        feedback = self.config.feeds_back(p.name, p.kind)
        if self.update_kernel is not None and not feedback:
            self.update_kernel(self, p, ctx.stream.key(self.site[id(p)]))
            p.grad = None
            return
        rows = p.trainable_rows
        if rows is not None and len(np.unique(rows)) != len(rows):
            raise ValueError(f"{p.name}: trainable_rows must not repeat a row")
        gm = g.m if rows is None else g.m[rows]
        if feedback:
            self._update_with_feedback(p, gm, g.scale, rows, ctx.stream.key(self.site[id(p)] + 1))
            p.grad = None
            return
        key = ctx.stream.key(self.site[id(p)])
        if self.config.rule == "niti" and p.kind == "weight":
            shift = self.niti_shift(max_abs(gm))
            delta = None if shift is None else self.niti_delta(gm, shift, key)
        else:
            delta, p.momentum = self.aligned_delta(gm, self.aligned_multiplier(g.scale, p.value.scale), key,
                                                   p.momentum)
        if delta is not None:
            if rows is None:
                self._apply(p, delta)
            else:
                self._apply_rows(p, rows, delta)
        p.grad = None

    # -- per-row weight scales (tintin.numerics.scale_rows) -----------------------------------
    def _update_row_scaled(self, p: Parameter, key: int) -> None:
        """Aligned update of a weight with per-row exponents: row ``r`` rounds at ``n - e[r]``, then
        the rows are renormalised (:func:`renormalise_rows`); sparse rows saturate instead."""
        c = self.config
        if c.rule != "aligned" or c.momentum_shift or self.config.feeds_back(p.name, p.kind):
            raise RowScaleError(f"{p.name}: per-row weight scales train with the aligned rule without momentum "
                                "or error feedback")
        value, rows = p.value, p.trainable_rows
        if rows is not None and len(np.unique(rows)) != len(rows):
            raise ValueError(f"{p.name}: trainable_rows must not repeat a row")
        gm = p.grad.m if rows is None else p.grad.m[rows]
        row_exp = p.row_exp if rows is None else p.row_exp[rows]
        delta = apply_multiplier_rows(gm, self.aligned_multiplier(p.grad.scale, value.scale), row_exp,
                                      c.rounding, key)
        limit = limit_for_bits(p.bits)
        if rows is not None or not c.weight_rescale:
            m = value.m.copy()
            idx = slice(None) if rows is None else rows
            m[idx] = clip_inplace(m[idx].astype(np.int64) - delta, limit).astype(m.dtype)
            p.assign(type(value)(m, value.scale))
            return
        m, scale, p.row_exp = renormalise_rows(np.subtract(value.m, delta, dtype=np.int64), value.scale,
                                               p.row_exp, p.row_limit, p.bits)
        p.assign(type(value)(m, scale))

    # -- error feedback ------------------------------------------------------------------------
    def feedback_fine(self, g: np.ndarray, mult: tuple[int, int], key: int,
                      momentum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """``(fine, new momentum)``: the update in 2**-L weight steps (int64, ``L = feedback_bits``).
        Without momentum ``round(g * M / 2**(n - L))`` (the configured rounding, ``key``); with
        momentum (``L = 8``) the momentum ``v`` itself (it already holds the step in 2**-8 units)."""
        m, n = mult
        if not self.config.momentum_shift:
            self.check_feedback_step(max_abs(g), mult)
            return apply_multiplier(g, (m, n - self.config.feedback_bits), self.config.rounding, key), None
        fine = apply_multiplier(g, (m, n - MOMENTUM_FRAC_BITS), Rounding.NEAREST)
        v = momentum if momentum is not None else np.zeros(g.shape, dtype=np.int64)
        v = v - shift_round(v, self.config.momentum_shift, Rounding.NEAREST) + fine
        clip_inplace(v, MOMENTUM_LIMIT)
        return v.copy(), v

    def check_feedback_step(self, amax: int, mult: tuple[int, int]) -> None:
        """Raise :class:`FeedbackOverflowError` when the fine step of a gradient with ``max|g| = amax``
        leaves its bound: ``n < L`` (a left shift) and ``amax * M * 2**(L - n) >= 2**46`` (the C
        kernels check the same, before any weight changes)."""
        m, n = mult
        shift = n - self.config.feedback_bits
        top = int(amax) * m
        if shift < 0 and top and (-shift >= FEEDBACK_FINE_BITS or top >> (FEEDBACK_FINE_BITS + shift)):
            raise FeedbackOverflowError(f"error-feedback step too large: max|g| * M * 2**{-shift} >= "
                                        f"2**{FEEDBACK_FINE_BITS} (learning rate far too high for this "
                                        "gradient scale)")

    @staticmethod
    def split_master(master: np.ndarray, bits: int = FEEDBACK_FRAC_BITS) -> tuple[np.ndarray, np.ndarray]:
        """``W -> (w, r)`` with ``W = 2**bits * w + r``, ``r`` in ``[-2**(bits-1), 2**(bits-1) - 1]``
        (int64, int8)."""
        w = (master + (1 << (bits - 1))) >> bits
        return w, (master - (w << bits)).astype(np.int8)

    def _update_with_feedback(self, p: Parameter, gm: np.ndarray, grad_scale: Scale, rows: np.ndarray | None,
                              key: int) -> None:
        value = p.value
        bits = self.config.feedback_bits
        if p.remainder is None:
            p.remainder = np.zeros(value.m.shape, dtype=np.int8)
            p.feedback_bits = bits
        elif p.feedback_bits != bits:
            raise FeedbackBitsError(f"{p.name} holds a {p.feedback_bits}-bit error-feedback remainder; the "
                                    f"optimiser keeps {bits} bits (feedback_bits)")
        mom = p.momentum
        fine, p.momentum = self.feedback_fine(gm, self.aligned_multiplier(grad_scale, value.scale), key, mom)
        limit = limit_for_bits(p.bits)
        wide_limit = (limit << bits) + (1 << (bits - 1)) - 1
        split = partial(self.split_master, bits=bits)
        if rows is not None:  # sparse: saturate, frozen rows stay bit-identical
            sub = (value.m[rows].astype(np.int64) << bits) + p.remainder[rows] - fine
            clip_inplace(sub, wide_limit)
            w, r = split(sub)
            m = value.m.copy()
            m[rows] = w.astype(m.dtype)
            rem = p.remainder.copy()
            rem[rows] = r
            p.remainder = rem
            p.assign(type(value)(m, value.scale))
            return
        master = (value.m.astype(np.int64) << bits) + p.remainder - fine
        w, r = split(master)
        choice = (choose_grid_rescale(max_abs(w), value.scale, p.bits, self.mode)
                  if self.config.weight_rescale else None)
        if choice is None:
            clip_inplace(master, wide_limit)
            w, r = split(master)
            p.remainder = r
            p.assign(type(value)(w.astype(value.m.dtype), value.scale))
            return
        new_scale, mult = choice
        w, r = split(apply_multiplier(master, mult, Rounding.NEAREST, limit=wide_limit))
        if p.momentum is not None:
            p.momentum = apply_multiplier(p.momentum, mult, Rounding.NEAREST)
        p.remainder = r
        p.assign(type(value)(w.astype(value.m.dtype), new_scale))

    def _apply_rows(self, p: Parameter, rows: np.ndarray, delta: np.ndarray) -> None:
        value = p.value
        limit = BIAS_LIMIT if p.kind == "bias" else limit_for_bits(p.bits)
        sub = value.m[rows].astype(np.int64) - delta
        clip_inplace(sub, limit)
        m = value.m.copy()
        m[rows] = sub.astype(m.dtype)
        p.assign(type(value)(m, value.scale))

    # -- the integer step, element-wise (also used by compiled programs on gradient tiles) ------
    def niti_shift(self, amax: int) -> int | None:
        """NITI: the right shift ``bitlen(max|g|) - mu`` (``None``: an all-zero gradient, no update)."""
        return None if amax == 0 else amax.bit_length() - self.mu

    def niti_delta(self, g: np.ndarray, shift: int, key: int) -> np.ndarray:
        """NITI: ``round(g / 2**shift)`` (a left shift when ``shift <= 0``)."""
        if shift <= 0:
            return g.astype(np.int64) << -shift
        return shift_round(g.astype(np.int64), shift, self.config.rounding, key)

    def aligned_multiplier(self, grad_scale: Scale, weight_scale: Scale) -> tuple[int, int]:
        """``lr * s_g / s_w / batch`` as a fixed-point multiplier."""
        return divide_multiplier(ratio_multiplier(self.lr_scale * grad_scale / weight_scale), self.batch_size)

    def aligned_delta(self, g: np.ndarray, mult: tuple[int, int], key: int,
                      momentum: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Aligned rule: ``(delta, new momentum)`` for gradient mantissas ``g``.

        Without momentum ``delta = round(g * M / 2**n)``. With momentum (``momentum_shift = k``)
        ``v = v - round(v / 2**k) + round(g * M / 2**(n - 8))`` (``v`` clipped to ``+-2**40``,
        zeros before the first step) and ``delta = round(v / 2**8)``."""
        if not self.config.momentum_shift:
            return apply_multiplier(g, mult, self.config.rounding, key), None
        m, n = mult
        fine = apply_multiplier(g, (m, n - MOMENTUM_FRAC_BITS), Rounding.NEAREST)
        v = momentum if momentum is not None else np.zeros(g.shape, dtype=np.int64)
        v = v - shift_round(v, self.config.momentum_shift, Rounding.NEAREST) + fine
        clip_inplace(v, MOMENTUM_LIMIT)
        return shift_round(v, MOMENTUM_FRAC_BITS, self.config.rounding, key), v

    def _apply(self, p: Parameter, delta: np.ndarray) -> None:
        value = p.value
        new = np.subtract(value.m, delta, dtype=np.int64)
        if p.kind == "bias":
            clip_inplace(new, BIAS_LIMIT)
            p.assign(type(value)(new.astype(np.int32), value.scale))
            return
        limit = limit_for_bits(p.bits)
        dtype = value.m.dtype
        if not self.config.weight_rescale:
            p.assign(type(value)(clip_inplace(new, limit).astype(dtype), value.scale))
            return
        choice = choose_grid_rescale(max_abs(new), value.scale, p.bits, self.mode)
        if choice is None:  # max |new| <= limit: nothing to clip
            p.assign(type(value)(new.astype(dtype), value.scale))
            return
        new_scale, mult = choice
        q = apply_multiplier(new, mult, Rounding.NEAREST, limit=limit)
        if p.momentum is not None:
            p.momentum = apply_multiplier(p.momentum, mult, Rounding.NEAREST)
        p.assign(type(value)(q.astype(dtype), new_scale))
