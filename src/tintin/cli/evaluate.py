"""``tintin eval``: accuracy of a saved model on a data set's test split."""

from __future__ import annotations

import typer

from . import options as opt
from .common import check_dataset_fits_model, load_dataset, load_model_file, out_console, print_json


@opt.with_groups(opt.DATA_FILES)
def eval_command(
    data_files: opt.DataFiles,
    model_path: str = typer.Argument(..., metavar="MODEL", help="a model file written by `tintin train`"),
    dataset: str = opt.dataset(required=True),
    split: str = typer.Option("test", "--split", help="test | train"),
    batch_size: int = typer.Option(256, "--batch-size", "-b", help="evaluation batch (1 = as on a device)"),
    as_json: bool = opt.JSON,
):
    """Evaluate a saved integer model on DATASET."""
    from ..train import evaluate
    if split not in ("test", "train"):
        raise opt.OptionError(f"--split must be test or train, got {split!r}")
    opt.check_positive("--batch-size", batch_size)
    model, info = load_model_file(model_path)
    ds = load_dataset(dataset, data_files)
    check_dataset_fits_model(model, ds)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    ev = evaluate(model, x, y, batch_size=batch_size)
    acc, loss = ev.accuracy, ev.loss
    result = {"model_path": model_path, "dataset": dataset, "split": split, "samples": int(len(x)),
              "accuracy": acc, "loss": loss}
    if as_json:
        print_json(result)
    else:
        out_console.print(f"{dataset} {split}: accuracy {100 * acc:.2f}%  loss {loss:.4f}  ({len(x)} samples)")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
