"""The float layer graph every importer produces and the builder turns into a tintin model.

A :class:`FloatGraph` is a chain of :class:`FloatLayer` (a :class:`FloatLayer` of kind
``"Residual"`` holds a body and a shortcut chain) with float64 parameters, already in tintin's
conventions: channels first, ``Linear`` weights ``(out, in)``, conv weights ``(Cout, Cin/groups,
*kernel)``, BatchNorm folded. Every layer remembers the source node it came from (``node``) and
the source tensor its output corresponds to (``tensor``, used to compare activations with the
float oracle).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: layer kinds a FloatGraph may hold
KINDS = ("Linear", "Conv", "ReLU", "MaxPool", "AvgPool", "GlobalAvgPool", "Flatten", "ChannelScale",
         "Residual")


@dataclass
class FloatLayer:
    kind: str
    node: str
    tensor: str
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    attrs: dict = field(default_factory=dict)
    body: list["FloatLayer"] = field(default_factory=list)
    shortcut: list["FloatLayer"] = field(default_factory=list)
    op: str = ""  #: the source operator type(s), e.g. "Conv+BatchNormalization"


@dataclass
class FloatGraph:
    layers: list[FloatLayer]
    input_name: str
    input_shape: tuple[int, ...] | None  #: per sample; None when the source leaves it symbolic
    output_name: str
    format: str  #: "onnx" or "pytorch"
    dropped: list[str] = field(default_factory=list)  #: source nodes left out (final Softmax, Dropout)
    #: a layer tensor -> the source tensor to compare it with (QDQ graphs: the int8 activation)
    reference_tensors: dict[str, str] = field(default_factory=dict)
    quantized: bool = False  #: the source is an int8 QDQ graph (its QDQ pairs folded)
