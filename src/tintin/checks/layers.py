"""Checks every registered layer type must pass, run from its registered example.

Each check takes a layer type name (:func:`tintin.nn.layer_types`) and raises
:class:`CheckFailed` with one line saying what is wrong:

* :func:`check_has_example`: the type registered a small example (``register_layer_example``);
* :func:`check_spec_round_trip`: a model holding it survives a model file (spec, parameters, bits
  of the forward pass), and its spec rebuilds the same layer;
* :func:`check_lowering`: the compiler has a lowering for it and compiles a model holding it;
* :func:`check_gradient_rows`: the int32 gradient of any selection of output rows equals those rows
  of the full gradient, for every gradient the compiled program computes;
* :func:`check_program_matches_train_step`: the compiled program trains bit for bit like
  :func:`tintin.train.train_step` (full update, bias only, and a row selection of the layer).

:func:`check_lowerings_have_layers` checks the other direction: every lowering belongs to a
registered layer type. :func:`check_layer` runs them all for one type.
"""

from __future__ import annotations

import copy
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from tintin.compile import CompileError, ProgramExecutor, compile_program, lowered_types, plan_memory
from tintin.compile import registry as compile_registry
from tintin.nn import (Context, Conv1d, Conv2d, Flatten, Linear, QuantConfig, Sequential, build_layer,
                       layer_example, layer_types)
from tintin.numerics import QTensor, RoundingStream, Scale

from .program import CheckFailed, assert_program_matches_train_step, random_batch

UNDER_TEST = "under_test"


def _walk(layer):
    yield layer
    for child in (*getattr(layer, "body", ()), *getattr(layer, "shortcut", ())):
        yield from _walk(child)


def check_has_example(type_name: str) -> tuple[dict, tuple[int, ...]]:
    example = layer_example(type_name)
    if example is None:
        raise CheckFailed(f"layer type {type_name!r} has no example: call "
                          f"tintin.nn.register_layer_example({type_name!r}, spec, input_shape)")
    return example


def example_model(type_name: str, seed: int = 0, config: QuantConfig | None = None) -> Sequential:
    """A classifier around the example of ``type_name``: a parameterised leading layer (so the
    layer's input error is used), the layer (named ``under_test``), then a linear head."""
    spec, shape = check_has_example(type_name)
    config = config or QuantConfig()
    rng = np.random.default_rng(seed)
    layer = build_layer({"type": type_name, "name": UNDER_TEST, **spec}, config, rng)
    if len(shape) == 1:
        lead = Linear(shape[0], shape[0], config=config, rng=rng, name="lead")
    elif len(shape) == 2:
        lead = Conv1d(shape[0], shape[0], 1, config=config, rng=rng, name="lead")
    else:
        lead = Conv2d(shape[0], shape[0], 1, config=config, rng=rng, name="lead")
    out = layer.output_shape(shape)
    tail = [Flatten("flat")] if len(out) > 1 else []
    head = Linear(int(np.prod(out)), 3, config=config, rng=rng, name="head")
    return Sequential([lead, layer, *tail, head], shape, config, name=f"check_{type_name}")


def layer_under_test(model: Sequential):
    return next(layer for layer in model.layers if layer.name == UNDER_TEST)


def _forward(model: Sequential, x: np.ndarray) -> QTensor:
    return model.forward(QTensor(x, Scale(model.input_exponent)), Context(mode=model.config.scale_mode,
                                                                          training=False))


def check_spec_round_trip(type_name: str, directory: str | os.PathLike | None = None) -> None:
    from tintin.io import load_model, save_model

    model = example_model(type_name)
    layer = layer_under_test(model)
    rebuilt = build_layer(layer.spec(), model.config, np.random.default_rng(1))
    if rebuilt.spec() != layer.spec():
        raise CheckFailed(f"{type_name}: building from its spec gives spec {rebuilt.spec()}, not {layer.spec()}")
    with tempfile.TemporaryDirectory() if directory is None else _kept(directory) as tmp:
        path = Path(tmp) / f"{type_name}.safetensors"
        save_model(model, path)
        loaded, _ = load_model(path)
    if loaded.spec() != model.spec():
        raise CheckFailed(f"{type_name}: spec after the model file {loaded.spec()} differs from {model.spec()}")
    for a, b in zip(model.parameters(), loaded.parameters(), strict=True):
        same = (a.name == b.name and a.value.m.dtype == b.value.m.dtype and np.array_equal(a.value.m, b.value.m)
                and a.value.scale == b.value.scale and a.bits == b.bits and a.trainable == b.trainable)
        if not same:
            raise CheckFailed(f"{type_name}: parameter {a.name} differs after the model file")
    x, _ = random_batch(np.random.default_rng(2), model, 3)
    ya, yb = _forward(model, x), _forward(loaded, x)
    if not (np.array_equal(ya.m, yb.m) and ya.scale == yb.scale):
        raise CheckFailed(f"{type_name}: the model read back from its file computes different outputs")


@contextmanager
def _kept(directory):
    Path(directory).mkdir(parents=True, exist_ok=True)
    yield directory


def check_lowering(type_name: str) -> None:
    model = example_model(type_name)
    for layer in _walk(layer_under_test(model)):
        try:
            compile_registry.lowering_for(layer)
        except CompileError as exc:
            raise CheckFailed(f"{type_name}: {exc}") from None
    try:
        compile_program(model, update="full", batch_size=2)
    except CompileError as exc:
        raise CheckFailed(f"{type_name}: a model holding it does not compile: {exc}") from None


@contextmanager
def _recording_gradient_rows(calls: list):
    """Record ``(op, err, x, attrs)`` of every gradient-rows call while executing programs."""
    table = compile_registry._GRADIENT_ROWS
    saved = dict(table)

    def recorder(op, fn):
        def record(err, x, rows, attrs):
            calls.append((op, err, x, attrs))
            return fn(err, x, rows, attrs)
        return record

    table.update({op: recorder(op, fn) for op, fn in saved.items()})
    try:
        yield
    finally:
        table.clear()
        table.update(saved)


def _row_selections(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    picks = [np.arange(n), np.array([0]), np.array([n - 1]), np.arange(0, n, 2)]
    if n > 2:
        picks.append(np.sort(rng.choice(n, size=n // 2, replace=False)))
        picks.append(np.arange(1, n - 1))
    return [p.astype(np.int64) for p in picks if len(p)]


def check_gradient_rows(type_name: str, steps: int = 2, batch_size: int = 2) -> None:
    """Execute the compiled program (weight gradients both materialised and in row tiles) and, at
    every gradient it computes, compare the gradient of row selections with the full gradient."""
    model = example_model(type_name)
    trained = [p.name for layer in _walk(layer_under_test(model)) for p in layer.parameters()]
    rng = np.random.default_rng(3)
    for tile in (None, 16):
        m = copy.deepcopy(model)
        program = compile_program(m, update="full", batch_size=batch_size, grad_tile_bytes=tile)
        ex = ProgramExecutor(program, plan_memory(program))
        ex.load(m)
        calls: list = []
        ctx = Context(mode=m.config.scale_mode, training=True, stream=RoundingStream(0))
        with _recording_gradient_rows(calls):
            for _ in range(steps):
                x, y = random_batch(rng, m, batch_size)
                ex.step(x, y, ctx)
        by_attrs = {id(s.attrs): s for s in program.steps}

        def param_of(attrs) -> str:
            step = by_attrs[id(attrs)]
            return attrs.get("param") or program.buffers[step.outputs[0]].param

        seen = {param_of(attrs) for _, _, _, attrs in calls}
        missing = [name for name in trained if name not in seen]
        if missing:
            raise CheckFailed(f"{type_name}: no gradient-rows function computed the gradient of {', '.join(missing)}")
        fns = {op: compile_registry.gradient_rows_for(op) for op, *_ in calls}
        for op, err, x, attrs in calls:
            full = fns[op](err, x, slice(None), attrs)
            for rows in _row_selections(full.m.shape[0], rng):
                part = fns[op](err, x, rows, attrs)
                if not (np.array_equal(part.m, full.m[rows]) and part.m.dtype == full.m.dtype
                        and part.scale == full.scale):
                    raise CheckFailed(f"{type_name}: {op} of rows {rows.tolist()} of {param_of(attrs)} differs "
                                      "from those rows of the full gradient")


def check_program_matches_train_step(type_name: str, steps: int = 3, batch_size: int = 2) -> None:
    model = example_model(type_name)
    layer = layer_under_test(model)
    updates = ["full", "bias"]
    weights = [p for p in layer.parameters() if p.kind == "weight"]
    if weights:
        n = weights[0].value.m.shape[0]
        owner = weights[0].name.rsplit(".", 1)[0]  # the layer itself, or the first of a block's layers
        updates.append(f"sparse:{owner}[{n // 2}:{n}],head.bias")
    for update in updates:
        for tile in (None, 16):
            assert_program_matches_train_step(model, update, batch_size, steps, grad_tile_bytes=tile)


def check_lowerings_have_layers() -> None:
    """Every lowered layer class is the class of a registered layer type's example."""
    covered = set()
    for type_name in layer_types():
        if layer_example(type_name) is None:
            continue
        for layer in _walk(layer_under_test(example_model(type_name))):
            covered.update(cls.__name__ for cls in type(layer).__mro__)
    orphans = [name for name in lowered_types() if name not in covered]
    if orphans:
        raise CheckFailed(f"lowerings of {', '.join(orphans)} belong to no registered layer type with an example")


CHECKS = (check_has_example, check_spec_round_trip, check_lowering, check_gradient_rows,
          check_program_matches_train_step)


def check_layer(type_name: str) -> None:
    """Run every check on ``type_name`` (raises :class:`CheckFailed` at the first failure).

    >>> from tintin.checks import check_layer
    >>> check_layer("ReLU")
    """
    for check in CHECKS:
        check(type_name)
