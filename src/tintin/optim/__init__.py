"""Integer optimisers: NITI's bit-width rule and the gradient-aligned SGD update."""

from .sgd import IntegerSGD, OptimConfig

__all__ = ["IntegerSGD", "OptimConfig"]
