"""Integer ops: pure functions, one module per op, forward and backward side by side.

Naming follows ``<op>_<direction>_<dtype>`` (``s8``: int8 mantissas in and out; ``s32``: an int32
result kept at the accumulator scale). Every op takes and returns :class:`tintin.numerics.QTensor`.
"""

from .activation import relu_backward_s8, relu_forward_s8
from .linear import (align_bias, linear_backward_bias_s32, linear_backward_input_s8,
                     linear_backward_weight_s32, linear_forward_s8)
from .loss import LossValue, mse_error, predict_argmax, softmax_cross_entropy_error, softmax_probabilities_q15

__all__ = [
    "relu_backward_s8", "relu_forward_s8", "align_bias", "linear_backward_bias_s32",
    "linear_backward_input_s8", "linear_backward_weight_s32", "linear_forward_s8", "LossValue",
    "mse_error", "softmax_cross_entropy_error", "softmax_probabilities_q15",
]
