"""A broken lowering module fails the import of ``tintin.compile`` at once, not later as
"no lowering for layer"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"

SCRIPT = """
import importlib.abc, sys

class Broken(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "tintin.compile.lower_conv":
            raise ImportError("simulated bug in lower_conv")
        return None

sys.meta_path.insert(0, Broken())
try:
    import tintin.compile
except ImportError as exc:
    print("raised:", exc)
else:
    print("imported silently")
"""


def test_import_error_in_lower_conv_is_not_swallowed():
    env = {**os.environ, "PYTHONPATH": str(SRC) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "raised: simulated bug in lower_conv"
