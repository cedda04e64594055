"""Helpers shared by the command modules."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Optional

import typer
from rich.console import Console

from .app import CliError

# 80 columns is rich's guess when output is piped; our tables need more
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
out_console = Console(width=None if sys.stdout.isatty() else 140)


# options of every command that takes --dataset (a built-in name or a .csv / .npz / .ts file)
LabelColumnOption = Annotated[Optional[str], typer.Option(
    "--label-column", help="CSV files: label column, by name or index (default: the last)")]
InputExponentOption = Annotated[Optional[int], typer.Option(
    "--input-exponent", help="data files holding int8 mantissas already: their scale 2^E, taken as they are "
    "(default: real values, standardised per channel and quantised)")]
TestFractionOption = Annotated[Optional[float], typer.Option(
    "--test-fraction", help="data files without a test split: share of each class held out (default 0.2)")]
SplitSeedOption = Annotated[Optional[int], typer.Option(
    "--split-seed", help="data files without a test split: seed of the stratified split (default 0)")]
SeriesLengthOption = Annotated[Optional[str], typer.Option(
    "--series-length", help=".ts files with series of unequal length: max | min | N (truncate, or pad by "
    "repeating the last value)")]


def load_dataset(name_or_path: str, label_column: Optional[str] = None, input_exponent: Optional[int] = None,
                 test_fraction: Optional[float] = None, split_seed: Optional[int] = None,
                 series_length: Optional[str] = None):
    """The data set of ``--dataset`` (see :func:`tintin.data.resolve_dataset`)."""
    from ..data import resolve_dataset

    return resolve_dataset(name_or_path, label_column=label_column, input_exponent=input_exponent,
                           test_fraction=test_fraction, split_seed=split_seed, series_length=series_length)


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, default=_jsonable) + "\n")
    sys.stdout.flush()


def _jsonable(o):
    try:
        import numpy as np
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
    except ImportError:  # pragma: no cover
        pass
    return str(o)


def load_model_file(path: str):
    from ..io import ModelFileError, load_model

    try:
        return load_model(path)
    except ModelFileError as exc:
        raise CliError(str(exc)) from None


def check_dataset_fits_model(model, ds) -> None:
    from ..data import check_sample_shape

    check_sample_shape(ds, tuple(model.input_shape), "the model")
    if model.loss == "cross_entropy" and model.output_shape_[0] != ds.num_classes:
        raise CliError(f"data set {ds.name} has {ds.num_classes} classes but the model predicts {model.output_shape_[0]}")
    if model.input_exponent != ds.input_exponent:
        raise CliError(f"data set {ds.name} is quantised with scale 2^{ds.input_exponent} but the model was trained "
                       f"on inputs at 2^{model.input_exponent}")
