"""The options the commands of ``tintin`` share, each defined once.

A command takes an option from here instead of retyping it, so every command spells it, documents
it and defaults it the same way; a new command gets the same options by naming them::

    from . import options as opt

    def my_command(seed: int = opt.SEED, lr: Optional[float] = opt.LR, as_json: bool = opt.JSON): ...

Target and device help lists come from the registries (:data:`tintin.targets.TARGETS`,
:func:`tintin.targets.list_devices`), zoo names from :func:`tintin.nn.model_names`.

Defaults that depend on the model are resolved by one function, :func:`optimiser`:

* ``--lr`` (unset): 0.05 at batch size 1 (one sample per step, the rate on-device training uses),
  otherwise the zoo model's own learning rate (``mlp`` 0.5, ``lenet5`` 0.1, ...; 0.5 for a model
  file);
* ``--momentum-shift`` (unset): the zoo model's (``cnn1d`` and ``dscnn`` 3, others 0; 0 for a model
  file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..targets import TARGETS, list_devices
from .app import CliError, literal

#: learning rate used when ``--lr`` is not given and a step trains one sample
ONLINE_LR = 0.05

_TARGET_NAMES = ", ".join(TARGETS)

# -- output ---------------------------------------------------------------------------------------
JSON = typer.Option(False, "--json", help="print one JSON object on stdout (progress is silent)")

# -- model ----------------------------------------------------------------------------------------
SEED = typer.Option(0, "--seed", "-s", help="seed of initial weights (zoo models), data order and stochastic "
                    "rounding")
SCALE_MODE = typer.Option("compound", "--scale-mode", help="zoo models: compound (2^S u^U d^D) | pow2")
WEIGHT_BITS = typer.Option(8, "--weight-bits", help="zoo models: 8 or 16 (int16 master weights)")

# -- optimiser (the same in train, run, export and plan) -----------------------------------------
LR = typer.Option(None, "--lr", help=f"learning rate of the aligned rule, stored as an integer scale (default: "
                  f"{ONLINE_LR} at batch size 1, else the zoo model's, e.g. mlp 0.5, lenet5 0.1)")
RULE = typer.Option("aligned", "--rule", help="update rule: aligned | niti")
MU = typer.Option(4, "--mu", help="NITI rule: bits of the largest update")
ROUNDING = typer.Option("stochastic", "--rounding", help="update rounding: stochastic | pseudo_stochastic | nearest")
MOMENTUM_SHIFT = typer.Option(None, "--momentum-shift", help="integer momentum beta = 1 - 2^-k, 0: off; adds "
                              "int64 state per trained weight (default: the zoo model's, else 0)")

# -- compiled training program (run, export, plan) -----------------------------------------------
UPDATE = typer.Option("full", "--update", "-u", help=literal("what trains: full | bias | none | last:K | "
                                                             "sparse:LAYER[a:b],... ('+' unites)"))
GRAD_TILE = typer.Option(1024, "--grad-tile", help="weight-gradient tile budget in bytes (0: whole gradients)")
ACC_BUDGET = typer.Option(None, "--acc-budget", help="recompute int32 accumulators above this many bytes")
PLANNER = typer.Option("greedy", "--planner", help="memory planner: naive | greedy")
DEVICE_BATCH_SIZE = typer.Option(1, "--batch-size", "-b", help="samples per training step on the device")

# -- where it runs --------------------------------------------------------------------------------
DEVICE = typer.Option(None, "--device", help=f"device profile: {', '.join(list_devices())} (see `tintin devices`)")


def target(default: str | None) -> typer.models.OptionInfo:
    """``--target/-t``, required when ``default`` is None; the help lists the registered targets."""
    return typer.Option(... if default is None else default, "--target", "-t",
                        help=f"build-and-run target: {_TARGET_NAMES}")


def dataset(required: bool, help: str = "data set name (see `tintin datasets`)") -> typer.models.OptionInfo:
    """``--dataset/-d``."""
    return typer.Option(... if required else None, "--dataset", "-d", help=help)


def out_dir(help: str, required: bool = False) -> typer.models.OptionInfo:
    """``--out/-o``: a directory the command writes."""
    return typer.Option(... if required else None, "--out", "-o", help=help)


def zoo_model_help() -> str:
    from ..nn import model_names

    return f"zoo model: {', '.join(model_names())}"


class OptionError(CliError):
    """An option value the command or a configuration of the library rejects."""


def check_positive(name: str, value: int | float, minimum: int | float = 1) -> None:
    """Refuse ``value < minimum`` for option ``name`` with one line."""
    if value < minimum:
        raise OptionError(f"{name} must be at least {minimum}, got {value}")


def resolved_lr(lr: float | None, model_name: str | None, batch_size: int) -> float:
    """``--lr`` or its default: :data:`ONLINE_LR` at batch size 1, else the zoo model's."""
    if lr is not None:
        return lr
    if batch_size == 1:
        return ONLINE_LR
    return _training_defaults(model_name).lr


def resolved_momentum_shift(momentum_shift: int | None, model_name: str | None) -> int:
    """``--momentum-shift`` or the zoo model's default (0 for other models)."""
    return _training_defaults(model_name).momentum_shift if momentum_shift is None else momentum_shift


def _training_defaults(model_name: str | None):
    from ..nn import TrainingDefaults, model_names, training_defaults

    return training_defaults(model_name) if model_name in model_names() else TrainingDefaults()


def optimiser(model_name: str | None, batch_size: int, lr: float | None, rule: str, mu: int, rounding: str,
              momentum_shift: int | None, **schedules):
    """The :class:`tintin.optim.OptimConfig` of the shared optimiser options (``schedules``: the
    ``lr_schedule`` / ``mu_schedule`` of ``tintin train``). The library rejects bad values with a
    ``ValueError``; it becomes one :class:`OptionError` line here, the only place that builds it."""
    from ..optim import OptimConfig

    try:
        return OptimConfig(rule=rule, lr=resolved_lr(lr, model_name, batch_size), mu=mu, rounding=rounding,
                           momentum_shift=resolved_momentum_shift(momentum_shift, model_name), **schedules)
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def quantisation(scale_mode: str, weight_bits: int, **extra):
    """The :class:`tintin.nn.QuantConfig` of ``--scale-mode`` / ``--weight-bits`` (one line when rejected)."""
    from ..nn import QuantConfig

    try:
        return QuantConfig(scale_mode=scale_mode, weight_bits=weight_bits, **extra)
    except ValueError as exc:
        raise OptionError(str(exc)) from None


def compile_options(grad_tile: Optional[int], acc_budget: Optional[int]):
    """The :class:`tintin.compile.CompileOptions` of ``--grad-tile`` and ``--acc-budget``."""
    from ..compile import CompileOptions

    if grad_tile is not None and grad_tile < 0:
        raise OptionError(f"--grad-tile must be >= 0, got {grad_tile}")
    return CompileOptions(grad_tile_bytes=grad_tile or None, accumulator_budget=acc_budget)


def resolve_target(name: str):
    """The registered :class:`tintin.targets.Target` called ``name`` (unknown: one line listing them)."""
    from ..targets import get_target

    return get_target(name)


def resolve_device(name: str | None):
    """The device profile called ``name``, or None."""
    if name is None:
        return None
    from ..targets import load_device

    return load_device(name)


def check_writable_dir(path: Path, what: str = "--out") -> None:
    """Refuse, before any work, an output directory that cannot be created or written: its nearest
    existing ancestor must be a directory in which a file can be created (probed, then removed)."""
    import tempfile

    path = Path(path)
    probe = path
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    if not probe.is_dir():
        raise CliError(f"{what} {path}: {probe} is a file, not a directory")
    try:
        fd, name = tempfile.mkstemp(prefix=".tintin-probe-", dir=probe)
    except OSError as exc:
        reason = (exc.strerror or "not writable").lower()
        raise CliError(f"{what} {path}: cannot write in {probe} ({reason})") from None
    import os

    os.close(fd)
    os.unlink(name)
