"""The options the commands of ``tintin`` share, each defined once.

A command takes an option from here instead of retyping it, so every command spells it, documents
it and defaults it the same way. Single options are named as defaults; groups of options that
always travel together (:data:`OPTIMISER`, :data:`QUANTISATION`, :data:`COMPILATION`) are added by
:func:`with_groups` and reach the command as one object::

    from . import options as opt

    @opt.with_groups(opt.OPTIMISER, opt.COMPILATION)
    def my_command(optimiser: opt.Optimiser, compilation: opt.Compilation, seed: int = opt.SEED,
                   as_json: bool = opt.JSON):
        config = optimiser.config("mlp", batch_size=1)       # tintin.optim.OptimConfig

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

import contextlib
import functools
import inspect
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Optional

import typer

from ..errors import TintinError
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
WIDE_RULE = typer.Option(True, "--wide-rule/--no-wide-rule", help="fine-tuning a model file: a partial update "
                         "(e.g. last:K) trains its layers' weights as int16 masters, one byte more per trained weight "
                         "(docs/interop.md)")
GRAD_TILE = typer.Option(1024, "--grad-tile", help="weight-gradient tile budget in bytes (0: whole gradients)")
ACC_BUDGET = typer.Option(None, "--acc-budget", help="recompute int32 accumulators above this many bytes")
PLANNER = typer.Option("greedy", "--planner", help="memory planner: naive | greedy")
DEVICE_BATCH_SIZE = typer.Option(1, "--batch-size", "-b", help="samples per training step on the device")

# -- the user's data files (--dataset FILE: .csv, .npz, .ts; docs/own-data.md) ----------------
LABEL_COLUMN = typer.Option(None, "--label-column", help="CSV files: label column, by name or index (default: the last)")
INPUT_EXPONENT = typer.Option(None, "--input-exponent", help="data files holding int8 mantissas already: their scale "
                              "2^E, taken as they are (default: real values, standardised per channel and quantised)")
TEST_FRACTION = typer.Option(None, "--test-fraction", help="data files without a test split: share of each class held "
                             "out (default 0.2)")
SPLIT_SEED = typer.Option(None, "--split-seed", help="data files without a test split: seed of the stratified split "
                          "(default 0)")
SERIES_LENGTH = typer.Option(None, "--series-length", help=".ts files with series of unequal length: max | min | N "
                             "(truncate, or pad by repeating the last value)")

# -- where it runs --------------------------------------------------------------------------------
HIDDEN = typer.Option(None, "--hidden", help="zoo mlp: hidden layer widths, WIDTH,... e.g. 200,100,50 (default: "
                     "one layer of 64 for inputs of up to 256 features, else 128)")


def hidden_widths(text: str | None, model_name: str | None) -> tuple[int, ...] | None:
    """``--hidden 200,100,50`` -> ``(200, 100, 50)`` (None: the zoo model's default widths).
    Only the zoo ``mlp`` takes widths; each is an integer >= 1."""
    if text is None:
        return None
    if model_name is None:
        raise OptionError("--hidden sets the widths of a new zoo mlp; a model file keeps its own")
    if model_name != "mlp":
        raise OptionError(f"--hidden sets the widths of the zoo mlp, not of {model_name!r}")
    widths = []
    for part in text.split(","):
        part = part.strip()
        if not part.isdigit() or int(part) < 1:
            raise OptionError(f"--hidden takes positive integer widths separated by commas, e.g. 200,100,50; got {text!r}")
        widths.append(int(part))
    return tuple(widths)


ERROR_FEEDBACK = typer.Option(None, "--error-feedback", help="LAYER,... or '*': keep a remainder of sub-step "
                             "updates per int8 weight of these layers (docs/learning-quality.md)")
FEEDBACK_BITS = typer.Option(None, "--feedback-bits", help="with --error-feedback: bits of the remainder per "
                             "weight, 2, 4 or 8 (default 8)")


def layer_names(text: str | None) -> tuple[str, ...]:
    """``"fc1, fc2"`` -> ``("fc1", "fc2")`` (None or empty: no layer)."""
    return tuple(n.strip() for n in (text or "").split(",") if n.strip())


def feedback_settings(error_feedback: str | None, feedback_bits: int | None) -> dict:
    """The ``OptimConfig`` fields of ``--error-feedback`` / ``--feedback-bits`` (``{}``: neither);
    ``--feedback-bits`` alone is an :class:`OptionError`."""
    if feedback_bits is not None and not error_feedback:
        raise OptionError("--feedback-bits sets the remainder width of --error-feedback: name the layers too")
    out = {"error_feedback": layer_names(error_feedback)} if error_feedback else {}
    if out and feedback_bits is not None:
        out["feedback_bits"] = feedback_bits
    return out


def check_weight_layers(model, **named: tuple[str, ...]) -> None:
    """Refuse, with one line, an option (``wide_layers=("fc9",)`` for ``--wide-layers``) naming a
    layer that has no weight in ``model``; ``*`` (every layer) passes for ``--error-feedback``."""
    layers = {p.name.rsplit(".", 1)[0] for p in model.parameters() if p.kind == "weight"}
    for key, names in named.items():
        option = "--" + key.replace("_", "-")
        unknown = sorted(set(names) - layers - ({"*"} if key == "error_feedback" else set()))
        if unknown:
            raise OptionError(f"{option}: the model has no weight layer {unknown[0]!r} "
                              f"(its weight layers: {', '.join(sorted(layers))})")


DEVICE = typer.Option(None, "--device", help=f"device profile: {', '.join(list_devices())} (see `tintin devices`)")


def target(default: str | None) -> typer.models.OptionInfo:
    """``--target/-t``, required when ``default`` is None; the help lists the registered targets."""
    return typer.Option(... if default is None else default, "--target", "-t",
                        help=f"build-and-run target: {_TARGET_NAMES}")


def dataset(required: bool, help: str = "data set name (see `tintin datasets`) or a .csv, .npz or .ts file "
                                        "(docs/own-data.md)") -> typer.models.OptionInfo:
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


@contextlib.contextmanager
def config_values():
    """Within it, the plain ``ValueError`` with which the library's configuration classes
    (``OptimConfig``, ``QuantConfig``, ``TrainConfig``, device fields) reject a value becomes one
    :class:`OptionError` line; tintin's own errors pass through to :func:`tintin.cli.app.main`."""
    try:
        yield
    except TintinError:
        raise
    except ValueError as exc:
        raise OptionError(str(exc)) from None


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

    with config_values():
        return OptimConfig(rule=rule, lr=resolved_lr(lr, model_name, batch_size), mu=mu, rounding=rounding,
                           momentum_shift=resolved_momentum_shift(momentum_shift, model_name), **schedules)


def default_optimiser(model_name: str | None, batch_size: int = 1):
    """The :class:`tintin.optim.OptimConfig` a command uses when no optimiser option is given (what
    ``tintin plan MODEL`` compiles with)."""
    return optimiser(model_name, batch_size, None, "aligned", 4, "stochastic", None)


@dataclass(frozen=True)
class Optimiser:
    """The optimiser options ``--lr --rule --mu --rounding --momentum-shift`` as given."""

    lr: Optional[float] = LR
    rule: str = RULE
    mu: int = MU
    rounding: str = ROUNDING
    momentum_shift: Optional[int] = MOMENTUM_SHIFT

    def config(self, model_name: str | None, batch_size: int, **schedules):
        """The :class:`tintin.optim.OptimConfig`, unset values resolved for this model and batch size."""
        return optimiser(model_name, batch_size, self.lr, self.rule, self.mu, self.rounding, self.momentum_shift,
                         **schedules)


@dataclass(frozen=True)
class Quantisation:
    """The zoo-model options ``--scale-mode --weight-bits``."""

    scale_mode: str = SCALE_MODE
    weight_bits: int = WEIGHT_BITS

    def config(self, **extra):
        """The :class:`tintin.nn.QuantConfig`."""
        return quantisation(self.scale_mode, self.weight_bits, **extra)


@dataclass(frozen=True)
class Compilation:
    """The training-program options ``--update --grad-tile --acc-budget``."""

    update: str = UPDATE
    grad_tile: Optional[int] = GRAD_TILE
    acc_budget: Optional[int] = ACC_BUDGET

    def options(self):
        """The :class:`tintin.compile.CompileOptions`."""
        return compile_options(self.grad_tile, self.acc_budget)


@dataclass(frozen=True)
class DataFiles:
    """How ``--dataset FILE`` is read: ``--label-column --input-exponent --test-fraction --split-seed
    --series-length`` (ignored for built-in data sets)."""

    label_column: Optional[str] = LABEL_COLUMN
    input_exponent: Optional[int] = INPUT_EXPONENT
    test_fraction: Optional[float] = TEST_FRACTION
    split_seed: Optional[int] = SPLIT_SEED
    series_length: Optional[str] = SERIES_LENGTH

    def load(self, name_or_path: str):
        """The :class:`tintin.data.Dataset` of ``--dataset`` (:func:`tintin.data.resolve_dataset`)."""
        from ..data import resolve_dataset

        return resolve_dataset(name_or_path, label_column=self.label_column, input_exponent=self.input_exponent,
                               test_fraction=self.test_fraction, split_seed=self.split_seed,
                               series_length=self.series_length)


@dataclass(frozen=True)
class Group:
    """A group of options: the command parameter that receives it, and its dataclass."""

    parameter: str
    cls: type


OPTIMISER = Group("optimiser", Optimiser)
QUANTISATION = Group("quantisation", Quantisation)
COMPILATION = Group("compilation", Compilation)
DATA_FILES = Group("data_files", DataFiles)

_TYPES = {"Optional[float]": Optional[float], "Optional[int]": Optional[int], "Optional[str]": Optional[str],
          "str": str, "int": int}


def with_groups(*groups: Group):
    """Add the options of ``groups`` to a command (after its own options, in the order given) and
    pass each group to the command's parameter of the same name as one object."""

    def decorate(command):
        hints = typing.get_type_hints(command)
        own = [p.replace(annotation=hints.get(p.name, p.annotation))
               for p in inspect.signature(command).parameters.values() if p.name not in {g.parameter for g in groups}]
        added = [inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default,
                                   annotation=_TYPES[f.type]) for g in groups for f in fields(g.cls)]
        keyword_own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own]

        @functools.wraps(command)
        def run(**kwargs):
            for g in groups:
                kwargs[g.parameter] = g.cls(**{f.name: kwargs.pop(f.name) for f in fields(g.cls)})
            return command(**kwargs)

        del run.__wrapped__  # typer must read the signature below, not the command's
        run.__signature__ = inspect.Signature(keyword_own + added)
        run.__annotations__ = {p.name: p.annotation for p in keyword_own + added}
        return run

    return decorate


def quantisation(scale_mode: str, weight_bits: int, **extra):
    """The :class:`tintin.nn.QuantConfig` of ``--scale-mode`` / ``--weight-bits`` (one line when rejected)."""
    from ..nn import QuantConfig

    with config_values():
        return QuantConfig(scale_mode=scale_mode, weight_bits=weight_bits, **extra)


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
    from ..io.atomic import OutputWriteError, check_writable_dir as probe

    try:
        probe(path, create=False)
    except OutputWriteError as exc:
        raise CliError(f"{what}: {exc}") from None
