"""Layers holding integer parameters, Sequential models, initialisation and the model zoo."""

from .config import BIAS_EXPONENT, QuantConfig
from .layers import Flatten, Linear, ReLU
from .module import Context, Module, Parameter, ShapeError
from .registry import build_layer, layer_example, layer_types, register_layer, register_layer_example
from .sequential import Sequential
from .zoo import (TrainingDefaults, UnknownModelError, build_model, model_names, register_model,
                  training_defaults)
from .conv_layers import Conv1d, Conv2d, fold_batchnorm
from .pool_layers import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d
from .residual import Residual
from .scaling_layers import ChannelScale
from . import cnn_zoo  # noqa: E402,F401  (registers lenet5, cnn1d, dscnn, rescnn)

__all__ = ["BIAS_EXPONENT", "QuantConfig", "Flatten", "Linear", "ReLU", "Context", "Module", "Parameter",
           "ShapeError", "build_layer", "layer_example", "layer_types", "register_layer", "register_layer_example", "Sequential", "UnknownModelError",
           "build_model", "model_names", "register_model", "TrainingDefaults", "training_defaults",
           "Conv1d", "Conv2d", "fold_batchnorm", "AvgPool1d", "AvgPool2d", "GlobalAvgPool", "MaxPool1d",
           "MaxPool2d", "Residual", "ChannelScale"]
