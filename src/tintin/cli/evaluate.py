"""``tintin eval``: accuracy of a saved model on a data set's test split."""

from __future__ import annotations

import typer

from .common import (InputExponentOption, LabelColumnOption, SeriesLengthOption, SplitSeedOption,
                     TestFractionOption, check_dataset_fits_model, load_dataset, load_model_file, out_console,
                     print_json)


def eval_command(
    model_path: str = typer.Argument(..., metavar="MODEL", help="a model file written by `tintin train`"),
    dataset: str = typer.Option(..., "--dataset", "-d", help="data set name or a .csv, .npz or .ts file"),
    split: str = typer.Option("test", "--split", help="test | train"),
    batch_size: int = typer.Option(256, "--batch-size", "-b", help="evaluation batch (1 = as on a device)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
    label_column: LabelColumnOption = None,
    input_exponent: InputExponentOption = None,
    test_fraction: TestFractionOption = None,
    split_seed: SplitSeedOption = None,
    series_length: SeriesLengthOption = None,
):
    """Evaluate a saved integer model on DATASET."""
    from ..train import evaluate
    from .app import CliError

    if split not in ("test", "train"):
        raise CliError(f"--split must be test or train, got {split!r}")
    if batch_size < 1:
        raise CliError("--batch-size must be at least 1")
    model, info = load_model_file(model_path)
    ds = load_dataset(dataset, label_column, input_exponent, test_fraction, split_seed, series_length)
    check_dataset_fits_model(model, ds)
    x, y = (ds.x_test, ds.y_test) if split == "test" else (ds.x_train, ds.y_train)
    acc, loss = evaluate(model, x, y, batch_size=batch_size)
    result = {"model_path": model_path, "dataset": dataset, "split": split, "samples": int(len(x)),
              "accuracy": acc, "loss": loss}
    if as_json:
        print_json(result)
    else:
        out_console.print(f"{dataset} {split}: accuracy {100 * acc:.2f}%  loss {loss:.4f}  ({len(x)} samples)")


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
