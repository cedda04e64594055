"""Shared plumbing for benchmarks: every script prints a table and writes
``bench/results/<name>.json`` and ``bench/results/<name>.md`` with the command that produced them."""

from __future__ import annotations

import json
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    try:
        import numpy
        np_version = numpy.__version__
    except ImportError:  # pragma: no cover
        np_version = None
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip() or None
    except OSError:  # pragma: no cover
        commit = None
    return {"python": platform.python_version(), "numpy": np_version, "machine": platform.machine(),
            "cpus": os.cpu_count(), "commit": commit, "date": time.strftime("%Y-%m-%d")}


def command_line() -> str:
    return " ".join(shlex.quote(a) for a in [".venv/bin/python", *sys.argv])


def markdown_table(headers: list[str], rows: list[list]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(out)


def write_results(name: str, data: dict, markdown: str) -> None:
    """Write ``<name>.json`` (data + command + machine) and ``<name>.md`` (markdown + command)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    cmd = command_line()
    payload = {"benchmark": name, "command": cmd, "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(f"{markdown}\n\nProduced by: `{cmd}`\n")
    print(markdown)
    print(f"\nwrote {RESULTS / (name + '.json')} and .md")
