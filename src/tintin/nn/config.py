"""Numerics choices of a model (the Tin-Tin techniques that live in the model, not the optimiser)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ..numerics import ScaleMode

#: exponent of the fixed power-of-two scale of every int32 bias (2**-20: range +-1024, fine steps)
BIAS_EXPONENT = -20


@dataclass(frozen=True)
class QuantConfig:
    """How a model represents and rescales its tensors.

    * ``scale_mode``: ``pow2`` (NITI) or ``compound`` (Tin-Tin 2**S*u**U*d**D) for every rescale.
    * ``weight_bits``: 8 (int8 weights) or 16 (int16 master weights; forward and backward use an
      int8 view rescaled from them after every update).
    * ``upscale_init``: True (Tin-Tin initial weight upscaling): the initial weights use the full
      mantissa range at the finest scale the mode can express. False: a power-of-two scale leaving
      ``init_headroom_bits`` unused bits (max mantissa in (2**(b-1-h-1), 2**(b-1-h)]).
    """

    scale_mode: ScaleMode = ScaleMode.COMPOUND
    weight_bits: int = 8
    upscale_init: bool = True
    init_headroom_bits: int = 2

    def __post_init__(self):
        object.__setattr__(self, "scale_mode", ScaleMode(self.scale_mode))
        if self.weight_bits not in (8, 16):
            raise ValueError(f"weight_bits must be 8 or 16, got {self.weight_bits}")
        if not 0 <= self.init_headroom_bits <= 5:
            raise ValueError("init_headroom_bits must be in 0..5")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scale_mode"] = self.scale_mode.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        return cls(**d)
