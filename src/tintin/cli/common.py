"""Helpers shared by the command modules."""

from __future__ import annotations

import json
import sys

from rich.console import Console

from .app import CliError

# 80 columns is rich's guess when output is piped; our tables need more
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
out_console = Console(width=None if sys.stdout.isatty() else 140)


def load_dataset(name: str, **options):
    from ..data import DataError, load

    try:
        return load(name, **options)
    except DataError as exc:
        raise CliError(str(exc)) from None


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
    if tuple(ds.sample_shape) != tuple(model.input_shape):
        raise CliError(f"data set {ds.name} has samples of shape {tuple(ds.sample_shape)} but the model expects "
                       f"{tuple(model.input_shape)}")
    if model.loss == "cross_entropy" and model.output_shape_[0] != ds.num_classes:
        raise CliError(f"data set {ds.name} has {ds.num_classes} classes but the model predicts {model.output_shape_[0]}")
    if model.input_exponent != ds.input_exponent:
        raise CliError(f"data set {ds.name} is quantised with scale 2^{ds.input_exponent} but the model was trained "
                       f"on inputs at 2^{model.input_exponent}")
