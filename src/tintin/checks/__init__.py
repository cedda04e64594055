"""Checks that run over every registered component: each layer type of :mod:`tintin.nn` and each
lowering of :mod:`tintin.compile` (as river's ``estimator_checks`` run over every estimator).

A new layer type gets them by being registered (``register_layer`` and
``register_layer_example``); ``tests/checks/`` runs them for every type, so a layer registered
without an example or without a lowering fails the suite.

    from tintin.checks import check_layer
    check_layer("Conv1d")   # raises CheckFailed with one line when a check fails

This package sits above ``nn``, ``io``, ``compile`` and ``train``: it needs all four.
"""

from .layers import (CHECKS, check_gradient_rows, check_has_example, check_layer, check_lowering,
                     check_lowerings_have_layers, check_program_matches_train_step, check_spec_round_trip,
                     example_model)
from .program import CheckFailed, assert_program_matches_train_step, random_batch

__all__ = ["CHECKS", "CheckFailed", "assert_program_matches_train_step", "check_gradient_rows", "check_has_example",
           "check_layer", "check_lowering", "check_lowerings_have_layers", "check_program_matches_train_step",
           "check_spec_round_trip", "example_model", "random_batch"]
