"""Numerics choices of a model (the Tin-Tin techniques that live in the model, not the optimiser)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from ..numerics import Rounding, ScaleMode

#: exponent of the fixed power-of-two scale of every int32 bias (2**-20: range +-1024, fine steps)
BIAS_EXPONENT = -20

#: stochastic-rounding site of the loss error's rescale (``loss_error_rounding="stochastic"``): ``k = 2``
#: of the optimiser's ``4 * i + k`` numbering with ``i = 0`` (the update uses ``k = 0``, error feedback
#: ``k = 1``), so its draws are independent of every update's
LOSS_ERROR_SITE = 2


@dataclass(frozen=True)
class QuantConfig:
    """How a model represents and rescales its tensors.

    * ``scale_mode``: ``pow2`` (NITI) or ``compound`` (Tin-Tin 2**S*u**U*d**D) for every rescale.
    * ``weight_bits``: 8 (int8 weights) or 16 (int16 master weights; forward and backward use an
      int8 view rescaled from them after every update).
    * ``wide_layers``: names of layers whose weights keep int16 master copies while the others keep
      ``weight_bits`` (mixed per-layer widths: the extra byte per weight only where small updates
      matter, e.g. ``("fc3", "fc4")``). Ignored when ``weight_bits`` is 16.
    * ``row_scales``: int8 weights of ``Linear`` and convolution layers keep one power-of-two
      exponent per output row (channel) besides the tensor scale (per-channel scales, see
      :mod:`tintin.numerics.scale_rows`); int16 (wide) weights keep one scale per tensor.
    * ``loss_error_rounding``: how the softmax cross-entropy error (``p - onehot`` in Q15) is
      rescaled to int8: ``nearest`` (the default) or ``stochastic`` (keys of the step's rounding
      stream at site :data:`LOSS_ERROR_SITE`). With one scale for the whole batch, nearest rounding
      sets the small errors of the samples the model already gets right to zero; stochastic rounding
      keeps them in expectation (no extra memory). Ignored by MSE heads.
    * ``upscale_init``: True (Tin-Tin initial weight upscaling): the initial weights use the full
      mantissa range at the finest scale the mode can express. False: a power-of-two scale leaving
      ``init_headroom_bits`` unused bits (max mantissa in (2**(b-1-h-1), 2**(b-1-h)]).
    """

    scale_mode: ScaleMode = ScaleMode.COMPOUND
    weight_bits: int = 8
    upscale_init: bool = True
    init_headroom_bits: int = 2
    wide_layers: tuple[str, ...] = ()
    row_scales: bool = False
    loss_error_rounding: Rounding = Rounding.NEAREST

    def __post_init__(self):
        object.__setattr__(self, "scale_mode", ScaleMode(self.scale_mode))
        if self.loss_error_rounding not in (Rounding.NEAREST, Rounding.STOCHASTIC):
            raise ValueError(f"loss_error_rounding must be 'nearest' or 'stochastic', got {self.loss_error_rounding!r}")
        object.__setattr__(self, "loss_error_rounding", Rounding(self.loss_error_rounding))
        if isinstance(self.wide_layers, str) or not all(isinstance(n, str) for n in self.wide_layers):
            raise ValueError(f"wide_layers must be a list of layer names, got {self.wide_layers!r}")
        object.__setattr__(self, "wide_layers", tuple(self.wide_layers))
        if not isinstance(self.row_scales, bool):
            raise ValueError(f"row_scales must be True or False, got {self.row_scales!r}")
        if self.weight_bits not in (8, 16):
            raise ValueError(f"weight_bits must be 8 or 16, got {self.weight_bits}")
        if not 0 <= self.init_headroom_bits <= 5:
            raise ValueError("init_headroom_bits must be in 0..5")

    def bits_of(self, layer_name: str) -> int:
        """The master width of the weights of layer ``layer_name`` (8 or 16)."""
        return 16 if layer_name in self.wide_layers else self.weight_bits

    def rows_of(self, layer_name: str) -> bool:
        """Whether the weights of layer ``layer_name`` keep per-row exponents (int8 weights only)."""
        return self.row_scales and self.bits_of(layer_name) == 8

    def for_layer(self, layer_name: str) -> "QuantConfig":
        """This configuration with ``weight_bits`` set to the width of layer ``layer_name``."""
        bits = self.bits_of(layer_name)
        return self if bits == self.weight_bits else replace(self, weight_bits=bits, wide_layers=())

    def to_dict(self) -> dict:
        d = asdict(self)
        d["scale_mode"] = self.scale_mode.value
        if not self.wide_layers:  # files of models without mixed widths keep their exact bytes
            del d["wide_layers"]
        else:
            d["wide_layers"] = list(self.wide_layers)
        if not self.row_scales:  # nor do files of models without row scales
            del d["row_scales"]
        if self.loss_error_rounding is Rounding.NEAREST:  # nor with the default loss-error rounding
            del d["loss_error_rounding"]
        else:
            d["loss_error_rounding"] = self.loss_error_rounding.value
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "QuantConfig":
        return cls(**d)
