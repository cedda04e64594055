"""tintin.targets.run_model: a user's model trained on a target and compared with the simulator;
and the layering it relies on (C emission knows no emulator)."""

from __future__ import annotations

import ast
import copy
from pathlib import Path

import numpy as np
import pytest

import tintin
from tintin.data import load
from tintin.nn import build_model
from tintin.optim import OptimConfig
from tintin.targets import DeviceReport, TargetError, run_model

from .helpers import require_toolchain

SRC = Path(tintin.__file__).resolve().parent


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def _mlp(ds, seed=0):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=seed, input_exponent=ds.input_exponent)


def test_run_model_on_the_host_is_bit_exact_and_trains_like_fit(digits, tmp_path):
    require_toolchain("host")
    model = _mlp(digits)
    before = copy.deepcopy(model)
    optim = OptimConfig(lr=0.05)
    report = run_model(model, digits, target="host", steps=6, batch_size=2, eval_samples=7, optim=optim,
                       seed=3, work_dir=tmp_path)
    assert isinstance(report, DeviceReport)
    assert report.bit_exact, report.mismatches
    assert (report.steps, report.batch_size, report.eval_samples) == (6, 2, 7)
    assert len(report.losses) == 6 and len(report.eval_predictions) == 7
    assert (tmp_path / "project" / "driver" / "tt_driver.c").is_file()
    for a, b in zip(model.parameters(), before.parameters()):  # the caller's model is not changed
        assert np.array_equal(a.value.m, b.value.m) and a.value.scale == b.value.scale
    assert report.simulator_eval_accuracy == report.device_eval_accuracy


def test_run_model_leaves_no_temporary_directory(digits, tmp_path, monkeypatch):
    require_toolchain("host")
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    import tempfile
    monkeypatch.setattr(tempfile, "tempdir", None)
    report = run_model(_mlp(digits), digits, target="host", steps=2, eval_samples=0)
    assert report.bit_exact and report.eval_samples == 0
    assert not [p for p in tmp_path.iterdir() if p.name.startswith("tintin-run-")]


def test_run_model_rejects_a_data_set_the_model_cannot_take(digits):
    model = build_model("mlp", (16,), 3, seed=0, input_exponent=digits.input_exponent)
    with pytest.raises(TargetError, match="shape"):
        run_model(model, digits, target="host", steps=1)
    with pytest.raises(TargetError, match="steps"):
        run_model(_mlp(digits), digits, target="host", steps=0)
    with pytest.raises(TargetError, match="unknown target"):
        run_model(_mlp(digits), digits, target="vax", steps=1)


def _tintin_imports(path: Path) -> set[str]:
    """Absolute names of the tintin modules ``path`` imports (relative imports resolved)."""
    package = ".".join(("tintin", *path.relative_to(SRC).with_suffix("").parts[:-1]))
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.add(mod)
            names.update(f"{mod}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("tintin")}


def test_c_emission_knows_no_emulator():
    """codegen sits below targets: it neither imports tintin.targets nor runs an emulator."""
    for path in sorted((SRC / "codegen").rglob("*.py")):
        imported = _tintin_imports(path)
        assert not [n for n in imported if n == "tintin.targets" or n.startswith("tintin.targets.")], path
        text = path.read_text()
        for word in ("qemu", "simavr"):
            assert word not in text, f"{path.relative_to(SRC)} mentions {word}"


def test_targets_imports_only_what_the_package_map_allows():
    allowed = ("tintin.targets", "tintin.codegen", "tintin.compile", "tintin.train", "tintin.nn",
               "tintin.numerics", "tintin.optim", "tintin.errors")
    for path in sorted((SRC / "targets").rglob("*.py")):
        for name in _tintin_imports(path):
            assert name == "tintin" or name.startswith(allowed), f"{path.relative_to(SRC)} imports {name}"
