"""Every registered layer type passes every check of tintin.checks (by being registered), and the
checks catch a layer without a lowering, without an example, with a wrong lowering or with a wrong
gradient-rows function."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import pytest

from tintin.checks import (CHECKS, CheckFailed, check_gradient_rows, check_layer, check_lowering,
                           check_lowerings_have_layers, check_program_matches_train_step, check_spec_round_trip)
from tintin.compile import registry as compile_registry
from tintin.compile.ir import BufferKind, Phase
from tintin.nn import Module, layer_types, register_layer, register_layer_example
from tintin.nn import registry as nn_registry
from tintin.numerics import QTensor


@pytest.mark.parametrize("check", CHECKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("type_name", layer_types())
def test_every_registered_layer_passes(type_name, check):
    check(type_name)


def test_every_lowering_belongs_to_a_registered_layer():
    check_lowerings_have_layers()


class Negate(Module):
    """A layer the compiler has never heard of: ``y = -x`` (exact on [-127, 127])."""

    type_name = "Negate"

    def __init__(self, name: str = "negate"):
        self.name = name

    def forward(self, x, ctx):
        return QTensor((-x.m.astype(np.int16)).astype(np.int8), x.scale)

    def backward(self, err, ctx, need_input_error):
        return QTensor((-err.m.astype(np.int16)).astype(np.int8), err.scale) if need_input_error else None

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def spec(self):
        return {"type": "Negate", "name": self.name}


@contextmanager
def registered(monkeypatch, example=True):
    """Register Negate for the duration of a test (the registries are restored afterwards)."""
    with monkeypatch.context() as m:
        m.setattr(nn_registry, "_BUILDERS", dict(nn_registry._BUILDERS))
        m.setattr(nn_registry, "_EXAMPLES", dict(nn_registry._EXAMPLES))
        m.setattr(compile_registry, "_LOWERINGS", dict(compile_registry._LOWERINGS))
        m.setattr(compile_registry, "_KERNELS", dict(compile_registry._KERNELS))
        register_layer("Negate", lambda s, c, r: Negate(name=s["name"]))
        if example:
            register_layer_example("Negate", {}, (6,))
        yield
    assert "Negate" not in layer_types()


def test_a_layer_registered_without_a_lowering_fails_the_checks(monkeypatch):
    with registered(monkeypatch):
        assert "Negate" in layer_types()   # the parametrised test above would pick it up
        check_spec_round_trip("Negate")    # the model file knows it ...
        with pytest.raises(CheckFailed, match="no lowering for layer 'under_test' of type Negate"):
            check_lowering("Negate")       # ... the compiler does not
        with pytest.raises(CheckFailed):
            check_layer("Negate")


def test_a_layer_registered_without_an_example_fails_the_checks(monkeypatch):
    with registered(monkeypatch, example=False):
        with pytest.raises(CheckFailed, match="register_layer_example"):
            check_layer("Negate")


class NegateLowering:
    """Forward right; backward negates the error or (``wrong``) forgets to."""

    def __init__(self, wrong: bool):
        self.wrong = wrong

    def forward(self, b, layer, x):
        y = b.add_buffer(f"{layer.name}.out", BufferKind.ACTIVATION, "int8", b.shape(x), layer=layer.name)
        b.add_step(Phase.FORWARD, "negate_s8", layer.name, (x,), (y,))
        return y

    def backward(self, b, layer, err, need_input_error):
        if not need_input_error:
            return None
        e_in = b.add_buffer(f"{layer.name}.err_in", BufferKind.ERROR, "int8", b.shape(err), layer=layer.name)
        b.add_step(Phase.BACKWARD, "copy_s8" if self.wrong else "negate_s8", layer.name, (err,), (e_in,))
        return e_in


def _negate(step, io, env):
    x = io.read(step.inputs[0])
    io.write(step.outputs[0], QTensor(-x.m.astype(np.int16), x.scale))


def _copy(step, io, env):
    io.write(step.outputs[0], io.read(step.inputs[0]))


@pytest.mark.parametrize("wrong", [False, True])
def test_the_program_check_catches_a_lowering_that_differs_from_train_step(monkeypatch, wrong):
    with registered(monkeypatch):
        compile_registry.register_lowering(Negate, NegateLowering(wrong))
        compile_registry.register_kernel("negate_s8")(_negate)
        compile_registry.register_kernel("copy_s8")(_copy)
        check_lowering("Negate")
        if wrong:
            with pytest.raises(CheckFailed, match="differ|!="):
                check_program_matches_train_step("Negate")
        else:
            check_layer("Negate")
            check_lowerings_have_layers()
    with pytest.raises(CheckFailed, match="Negate"):  # a lowering left behind with no layer type
        compile_registry.register_lowering(Negate, NegateLowering(False))
        try:
            check_lowerings_have_layers()
        finally:
            del compile_registry._LOWERINGS[Negate]


def test_the_gradient_rows_check_catches_rows_that_differ_from_the_full_gradient(monkeypatch):
    real = compile_registry._GRADIENT_ROWS["linear_backward_bias_s32"]

    def first_rows(err, x, rows, attrs):  # ignores which rows were asked for
        full = real(err, x, slice(None), attrs)
        n = full.m.shape[0] if isinstance(rows, slice) else len(rows)
        return QTensor(full.m[:n], full.scale)

    monkeypatch.setitem(compile_registry._GRADIENT_ROWS, "linear_backward_bias_s32", first_rows)
    with pytest.raises(CheckFailed, match="linear_backward_bias_s32 of rows"):
        check_gradient_rows("Linear")
