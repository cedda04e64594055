"""The generated Makefile and README agree with the target registry and with each other."""

from __future__ import annotations

import re

import pytest

from tintin.codegen import generate_project
from tintin.nn import build_model
from tintin.targets import TARGETS


@pytest.fixture(scope="module")
def model():
    return build_model("mlp", (16,), 4, hidden=8)


def _makefile_rules(text: str) -> dict[str, dict[str, str]]:
    rules, current = {}, None
    for line in text.splitlines():
        m = re.match(r"(?:else )?ifeq \(\$\(TARGET\),([\w-]+)\)", line)
        if m:
            current = rules.setdefault(m.group(1), {})
            continue
        m = re.match(r"\s+(CC|AR|ARCH) := ?(.*)", line)
        if m and current is not None:
            current[m.group(1)] = m.group(2).strip()
        if line.startswith(("else", "endif")) and not line.startswith("else ifeq"):
            current = None
    return rules


def test_makefile_compiles_every_target_with_the_registry_flags(model, tmp_path):
    p = generate_project(model, tmp_path, example=False)
    rules = _makefile_rules((p.out_dir / "Makefile").read_text())
    assert set(rules) == set(TARGETS)
    for name, target in TARGETS.items():
        arch = rules[name]["ARCH"].split()
        assert rules[name]["CC"] == target.cc
        assert arch[:len(target.arch_flags)] == list(target.arch_flags), name  # e.g. -ffp-contract=off on m4f


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_readme_names_the_default_target_of_the_makefile(model, tmp_path, target):
    p = generate_project(model, tmp_path, target=target, example=False)
    makefile = (p.out_dir / "Makefile").read_text()
    readme = (p.out_dir / "README.md").read_text()
    assert f"TARGET ?= {target}\n" in makefile
    make_line = next(line for line in readme.splitlines() if line.startswith("make ") and "(the default)" in line)
    assert f"TARGET={target} (the default): build/{target}/libtintin_model.a" in make_line
    if target != "host":
        assert "# host: build/host" not in readme
