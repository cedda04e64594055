"""Integer numerics: scales, rounding, rescaling, exact matmul, accumulator bounds, tables."""

from .bounds import (ACC_TERMS_LIMIT, BIAS_ALIGN_LIMIT, FLOAT32_EXACT_TERMS, INT8_DOMAIN_MAX, INT8_DOMAIN_MIN,
                     INT32_SAFE_TERMS, AccumulatorBoundError, InputDomainError, check_int8_domain, check_terms)
from .matmul import get_matmul_backend, int_matmul, set_matmul_backend
from .rescale import (COMPOUND_STEPS, POW2_STEPS, FineStep, apply_multiplier, choose_rescale,
                      fine_steps, limit_for_bits, max_abs, rescale, rescale_known_max, rescaled_scale)
from .rounding import Rounding, RoundingStream, draw_bits, mix32, shift_round, shift_round_scalar
from .scale import Scale, ScaleMode, ratio_multiplier
from .tensor import QTensor

__all__ = [
    "ACC_TERMS_LIMIT", "BIAS_ALIGN_LIMIT", "FLOAT32_EXACT_TERMS", "INT32_SAFE_TERMS",
    "INT8_DOMAIN_MAX", "INT8_DOMAIN_MIN", "AccumulatorBoundError", "InputDomainError", "check_int8_domain",
    "check_terms", "get_matmul_backend", "int_matmul", "set_matmul_backend",
    "COMPOUND_STEPS", "POW2_STEPS", "FineStep", "apply_multiplier", "choose_rescale", "fine_steps",
    "limit_for_bits", "max_abs", "rescale", "rescale_known_max", "rescaled_scale", "Rounding", "RoundingStream",
    "draw_bits", "mix32", "shift_round", "shift_round_scalar", "Scale", "ScaleMode",
    "ratio_multiplier", "QTensor",
]
