"""Layers holding integer parameters, Sequential models, initialisation and the model zoo."""

from .config import BIAS_EXPONENT, QuantConfig
from .layers import Flatten, Linear, ReLU
from .module import Context, Module, Parameter, ShapeError
from .registry import build_layer, layer_types, register_layer
from .sequential import Sequential
from .zoo import UnknownModelError, build_model, model_names, register_model

__all__ = ["BIAS_EXPONENT", "QuantConfig", "Flatten", "Linear", "ReLU", "Context", "Module", "Parameter",
           "ShapeError", "build_layer", "layer_types", "register_layer", "Sequential", "UnknownModelError",
           "build_model", "model_names", "register_model"]
