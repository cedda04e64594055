"""``tintin devices``: the device profiles (memory, clock, FPU, the emulator that runs their code)."""

from __future__ import annotations

import typer

from . import options as opt
from .common import out_console, print_json


def devices_command(as_json: bool = opt.JSON):
    """List the device profiles used by `tintin plan` and `tintin run`."""
    from ..targets import list_devices, load_device

    rows = []
    for name in list_devices():
        d = load_device(name)
        rows.append({"name": d.name, "title": d.title, "core": d.core, "sram_bytes": d.sram_bytes,
                     "flash_bytes": d.flash_bytes, "clock_hz": d.clock_hz, "fpu": d.fpu,
                     "emulator_target": d.emulator_target, "verified": d.verified,
                     "datasheet": d.datasheet_title})
    if as_json:
        print_json({"devices": rows})
        return
    from rich.table import Table

    table = Table(title="device profiles (src/tintin/targets/devices/*.toml; numbers cite their datasheets)")
    for col in ("name", "device", "core", "SRAM", "flash", "clock", "FPU", "emulated as"):
        table.add_column(col, justify="right" if col in ("SRAM", "flash", "clock") else "left")
    for r in rows:
        table.add_row(r["name"], r["title"], r["core"], f"{r['sram_bytes'] / 1024:,.0f} KiB",
                      f"{r['flash_bytes'] / 1024:,.0f} KiB", f"{r['clock_hz'] / 1e6:g} MHz", "yes" if r["fpu"] else "no",
                      r["emulator_target"] or "-")
    out_console.print(table)


def register(app: typer.Typer) -> None:
    app.command("devices")(devices_command)
