"""What several command modules use: consoles, JSON output, data sets and models from the command line.

Library errors (:class:`tintin.errors.TintinError`) pass through untouched: :func:`tintin.cli.app.main`
turns them into one ``error:`` line.
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

from rich.console import Console

from .app import CliError

# 80 columns is rich's guess when output is piped; our tables need more
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else 140)
out_console = Console(width=None if sys.stdout.isatty() else 140)

#: data set whose sample shape a zoo model is built for when neither --dataset nor --input-shape
DEFAULT_DATASET = {"mlp": "digits", "lenet5": "mnist5k", "dscnn": "mnist5k", "rescnn": "mnist5k",
                   "cnn1d": "basicmotions"}


def load_dataset(name_or_path: str, data_files=None):
    """The data set of ``--dataset``: a built-in name or a data file read as ``data_files``
    (:class:`tintin.cli.options.DataFiles`) says."""
    if data_files is None:
        from .options import DataFiles

        data_files = DataFiles(None, None, None, None, None)
    return data_files.load(name_or_path)


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
    """``(model, info)`` of a model file (:func:`tintin.io.load_model`)."""
    from ..io import load_model

    return load_model(path)


def parse_shape(text: str) -> tuple[int, ...]:
    """``"1,28,28"`` or ``"1x28x28"`` -> (1, 28, 28)."""
    text = text.strip()
    shape = tuple(int(p) for p in re.split(r"\s*[,x]\s*|\s+", text)) if re.fullmatch(r"\d+(\s*[,x]\s*\d+|\s+\d+)*", text) else ()
    if not shape or min(shape) < 1:
        raise CliError(f"bad --input-shape {text!r}: use positive integers like 1,28,28")
    return shape


def is_model_file(spec: str) -> bool:
    """True when MODEL names a file rather than a zoo model."""
    return os.path.sep in spec or spec.endswith(".safetensors") or Path(spec).is_file()


def model_from_spec(spec: str, dataset, input_shape: str | None, classes: int | None, quant, seed: int,
                    data_files=None, hidden: tuple[int, ...] | None = None):
    """``(model, source)`` for a MODEL argument: a model file, or a zoo model built for a data set's
    (or ``input_shape``'s) samples with the :class:`tintin.nn.QuantConfig` ``quant``. ``dataset``: a
    loaded :class:`tintin.data.Dataset`, a built-in name or data file (read as ``data_files`` says),
    or None (the zoo model's default data set). ``hidden``: the zoo mlp's hidden widths (None: its
    default). ``source`` says where the shape came from, for reports."""
    from ..nn import build_model, model_names

    if is_model_file(spec):
        if not Path(spec).is_file():
            raise CliError(f"model file {spec} does not exist")
        if hidden is not None:
            raise CliError("--hidden sets the widths of a new zoo mlp; a model file keeps its own")
        model, _ = load_model_file(spec)
        return model, f"model file {spec}"
    if spec not in model_names():
        raise CliError(f"unknown model {spec!r}: not a file and not a zoo model ({', '.join(model_names())})")
    if input_shape is not None:
        shape, num_classes, exponent, source = parse_shape(input_shape), classes or 10, -7, "--input-shape"
    else:
        from ..data import Dataset

        ds = dataset if isinstance(dataset, Dataset) else \
            load_dataset(dataset or DEFAULT_DATASET.get(spec, "digits"), data_files)
        shape, num_classes, exponent = tuple(ds.sample_shape), classes or ds.num_classes, ds.input_exponent
        source = f"data set {ds.name}"
    model = build_model(spec, shape, num_classes, config=quant, seed=seed, input_exponent=exponent,
                        **({"hidden": hidden} if hidden is not None else {}))
    return model, f"{source}, input {shape}, {num_classes} classes"


def zoo_name(spec: str) -> str | None:
    """The zoo model MODEL names, or None for a model file."""
    return None if is_model_file(spec) else spec


def check_dataset_fits_model(model, ds) -> None:
    from ..data import check_model_fits

    check_model_fits(ds, model)
