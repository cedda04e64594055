"""``tintin datasets``: which data sets are available here, and why not."""

from __future__ import annotations

import typer

from . import options as opt
from .common import out_console, print_json


def datasets_command(as_json: bool = opt.JSON):
    """List the built-in data sets and whether their source is installed."""
    from ..data import availability

    rows = availability()
    if as_json:
        print_json({"datasets": [{"name": n, "available": ok, "reason": r} for n, ok, r in rows]})
        return
    from rich.table import Table

    table = Table(title="data sets")
    table.add_column("name")
    table.add_column("available")
    table.add_column("notes")
    for name, ok, reason in rows:
        table.add_row(name, "yes" if ok else "[red]no[/red]", reason)
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command("datasets")(datasets_command)
