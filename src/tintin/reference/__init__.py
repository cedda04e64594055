"""Float32 PyTorch twins of tintin models, for side-by-side baselines (host only).

PyTorch is an optional extra (``pip install 'tintin[torch]'``); importing this package without it
raises :class:`MissingExtraError` with the install command.
"""

from .twin import FloatResult, MissingExtraError, float_twin, register_torch_layer, train_float
from . import conv_twins  # noqa: E402,F401  (float twins of the convolutional layers)

__all__ = ["FloatResult", "MissingExtraError", "float_twin", "register_torch_layer", "train_float"]
