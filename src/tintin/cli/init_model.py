"""``tintin train --init MODEL_FILE --update MODE``: the model a training run starts from.

A model file (from ``tintin import`` or ``tintin train``) is read once; its bytes give the parent
record (sha256 and path) that the saved model keeps in ``info["parent"]``. The data set must fit it
(:func:`tintin.cli.common.check_dataset_fits_model`), and ``--update`` selects what trains through
:func:`tintin.compile.apply_update_selection`, the selection ``tintin run --update`` compiles, so
host fine-tuning and the device train exactly the same parameters and rows.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from .app import CliError
from .common import check_dataset_fits_model


def load_init_model(path: Path, ds):
    """``(model, info, parent)`` of the model file ``path`` checked against data set ``ds``;
    ``parent = {"sha256": ..., "path": ...}`` of the bytes read."""
    from ..io import load_model_bytes

    path = Path(path)
    if not path.is_file():
        raise CliError(f"--init model file {path} does not exist")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CliError(f"cannot read --init model file {path}: {exc.strerror or exc}") from None
    model, info = load_model_bytes(data, str(path))
    check_dataset_fits_model(model, ds)
    return model, info, {"sha256": hashlib.sha256(data).hexdigest(), "path": str(path)}


def select_update(model, update: str) -> dict:
    """Set ``trainable`` / ``trainable_rows`` of ``model`` from ``update``; returns the selection as
    JSON-ready ``{parameter name: None (all rows) or [rows]}``."""
    from ..compile import apply_update_selection

    chosen = apply_update_selection(model, update)
    return {name: None if rows is None else [int(r) for r in rows] for name, rows in chosen.items()}


def apply_width_rule(model, update: str, enabled: bool) -> tuple[str, ...]:
    """The fine-tuning width rule on a model file about to train with ``update`` (``tintin train
    --init``, ``tintin run`` / ``export`` of a model file): selects the update and gives the layers a
    partial update trains int16 master weights (:func:`tintin.train.widen_finetuned_layers`);
    returns them (``()`` when ``enabled`` is False)."""
    if not enabled:
        return ()
    from ..compile import apply_update_selection
    from ..train import widen_finetuned_layers

    apply_update_selection(model, update)
    return widen_finetuned_layers(model)
