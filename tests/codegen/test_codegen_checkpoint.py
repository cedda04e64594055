"""Projects generated with checkpoint=True: the API, the saved state, the model hash, and strict
builds for every target; projects without it carry no checkpoint code."""

import re
import subprocess
from pathlib import Path

import pytest

from codegen_helpers import require, tiny_mlp
from tintin.codegen import compile_for_codegen, generate_project
from tintin.codegen.checkpoint import state_regions
from tintin.codegen.model_c import render_model_sources
from tintin.nn import build_model
from tintin.optim import OptimConfig


def test_only_projects_with_checkpoints_carry_the_code(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    plain = generate_project(model, tmp_path / "plain")
    assert "tt_checkpoint.c" not in plain.runtime_files and not plain.checkpoint
    assert "tt_checkpoint" not in (tmp_path / "plain" / "tt_model.h").read_text()
    ck = generate_project(model, tmp_path / "ck", checkpoint=True)
    assert "tt_checkpoint.c" in ck.runtime_files and ck.checkpoint
    header = (tmp_path / "ck" / "tt_model.h").read_text()
    for name in ("tt_checkpoint_save(const tt_flash_ops_t *flash)", "tt_checkpoint_restore(const tt_flash_ops_t",
                 "TT_MODEL_HASH", "TT_CHECKPOINT_PAYLOAD_BYTES", "tt_current_epoch"):
        assert name in header


def test_the_state_is_parameters_momentum_scales_stream_steps_and_epoch(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10, seed=0)
    project = generate_project(model, tmp_path, optim=OptimConfig(momentum_shift=3), update="last:1", checkpoint=True)
    regions = state_regions(project.model.params, str)
    names = [r.name for r in regions]
    assert names == ["fc2.weight", "fc2.weight.momentum", "fc2.bias", "fc2.bias.momentum", "scales", "stream",
                     "steps", "epoch"]
    sizes = {r.name: r.nbytes for r in regions}
    assert sizes["fc2.weight"] == 640 and sizes["fc2.weight.momentum"] == 640 * 8 and sizes["scales"] == 4 * 6
    header = (tmp_path / "tt_model.h").read_text()
    assert f"#define TT_CHECKPOINT_PAYLOAD_BYTES {sum(sizes.values())}UL" in header


def test_the_model_hash_tells_models_and_settings_apart():
    def h(model, **kw):
        program, plan, _ = compile_for_codegen(model, kw.pop("update", "full"), 1, kw.pop("optim", None))
        header = render_model_sources(model, program, plan, checkpoint=True).files["tt_model.h"]
        return re.search(r"#define TT_MODEL_HASH (0x[0-9A-F]{8})UL", header).group(1)

    a = build_model("mlp", (1, 8, 8), 10, seed=0)
    assert h(a) == h(build_model("mlp", (1, 8, 8), 10, seed=1))  # same architecture and plan: same hash
    others = {h(a, update="last:1"), h(a, optim=OptimConfig(lr=0.01)), h(build_model("mlp", (1, 8, 8), 10, hidden=32)),
              h(build_model("mlp", (1, 8, 8), 5))}
    assert h(a) not in others and len(others) == 4


@pytest.mark.parametrize("target", ["host", "cortex-m0", "cortex-m3", "cortex-m4", "atmega328p"])
def test_checkpoint_projects_build_warning_free(tmp_path, target):
    require(target)
    generate_project(tiny_mlp(), tmp_path, checkpoint=True, optim=OptimConfig(momentum_shift=2), target=target)
    proc = subprocess.run(["make", "-C", str(tmp_path), "check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "warning" not in proc.stderr


def test_the_firmware_example_resumes_across_reboots_bit_for_bit(tmp_path):
    """examples/checkpoint/firmware_main.c keeps its flash in a file: a run stopped after step 7
    and booted again ends with the same parameters as one uninterrupted run."""
    require("host")
    root = Path(__file__).resolve().parents[2]
    project = generate_project(build_model("mlp", (1, 8, 8), 10, seed=0), tmp_path / "fw", checkpoint=True)
    exe = tmp_path / "firmware"
    cmd = ["gcc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic", *(f"-I{d}" for d in project.include_dirs),
           str(root / "examples" / "checkpoint" / "firmware_main.c"), *map(str, project.sources), "-o", str(exe)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)

    def boot(steps, where):
        where.mkdir(exist_ok=True)
        return subprocess.run([str(exe), str(steps)], cwd=where, capture_output=True, text=True, check=True,
                              timeout=60).stdout

    first = boot(7, tmp_path / "a")
    assert "training from the start" in first
    resumed = boot(13, tmp_path / "a")
    assert "restored the state of step 6" in resumed  # saved every 3 steps: step 7 was not saved
    straight = boot(13, tmp_path / "b")
    assert resumed.splitlines()[-1] == straight.splitlines()[-1] and "checksum 0x" in straight
