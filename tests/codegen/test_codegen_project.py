"""The generated C project: layout, placement, strict C99, no floating point, the Makefile, errors."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from codegen_helpers import small_cnn
from tintin.codegen import CodegenError, RUNTIME_DIR, generate_project
from tintin.codegen.runtime_files import runtime_files_for
from tintin.compile import compile_program, plan_memory
from tintin.nn import build_model

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-Wshadow", "-Wstrict-prototypes",
          "-Wmissing-prototypes", "-Wundef", "-Wpointer-arith", "-Wdouble-promotion", "-fno-strict-aliasing"]
MCU = {"cortex-m0": ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-Os", "-ffreestanding"]),
       "atmega328p": ("avr-gcc", ["-mmcu=atmega328p", "-Os", "-ffreestanding"])}


@pytest.fixture(scope="module")
def mlp_project(tmp_path_factory):
    model = build_model("mlp", (1, 8, 8), 10, seed=3)
    return model, generate_project(model, tmp_path_factory.mktemp("mlp"), update="full")


def strip_comments(text: str) -> str:
    return re.sub(r"//[^\n]*", " ", re.sub(r"/\*.*?\*/", " ", text, flags=re.S))


def test_layout_and_api(mlp_project):
    model, p = mlp_project
    names = {f.name for f in p.out_dir.iterdir()}
    assert {"tt_model.h", "tt_model.c", "tt_model_params.c", "tt_model_internal.h", "Makefile", "README.md",
            "example_main.c", "runtime"} <= names
    header = (p.out_dir / "tt_model.h").read_text()
    for api in ("void tt_init(uint32_t seed);", "tt_status_t tt_train_step(const int8_t *x, const tt_label_t *y);",
                "tt_status_t tt_predict(const int8_t *x, uint16_t *cls);", "tt_status_t tt_param_get(",
                "typedef uint8_t tt_label_t;", f"#define TT_ARENA_BYTES {p.plan.arena_bytes}u"):
        assert api in header
    # exactly the runtime files the program needs, copied unchanged
    rt = sorted(f.name for f in (p.out_dir / "runtime").iterdir())
    assert rt == sorted(runtime_files_for(p.model.files.values()))
    assert "tt_pool.c" not in rt and "tt_residual.c" not in rt
    for f in rt:
        assert (p.out_dir / "runtime" / f).read_bytes() == (RUNTIME_DIR / f).read_bytes()


def test_every_sram_buffer_sits_at_its_planned_offset(mlp_project):
    _, p = mlp_project
    internal = (p.out_dir / "tt_model_internal.h").read_text()
    found = dict(re.findall(r"#define TT_BUF_(\w+) \(\(\w+ \*\)\(void \*\)\(tt_arena \+ (\d+)u\)\)", internal))
    sram = {n: b for n, b in p.program.buffers.items() if b.memory.value == "sram"}
    assert len(found) == len(sram)
    for name in sram:
        ident = re.sub(r"[^0-9A-Za-z_]", "_", name)
        assert int(found[ident]) == p.plan.offsets[name], name
        assert p.plan.offsets[name] + sram[name].nbytes <= p.plan.arena_bytes
    model_c = (p.out_dir / "tt_model.c").read_text()
    assert "uint8_t tt_arena[TT_ARENA_BYTES] TT_ALIGN8;" in model_c
    assert model_c.count("tt_arena[") == 2  # the one definition and the zeroing loop: nothing else owns memory


def test_schedule_follows_the_program(mlp_project):
    _, p = mlp_project
    model_c = (p.out_dir / "tt_model.c").read_text()
    train = model_c[model_c.index("tt_status_t tt_train_step("):model_c.index("void tt_last_loss(")]
    steps = [int(i) for i in re.findall(r"/\* step (\d+):", train)]
    assert steps == list(range(len(p.program.steps)))
    # the fused updates pass the key of site 4 * parameter index, the rank-1 path gets its operands
    assert "tt_sgd_update_tiled(&u, &tt_cfg, tt_stream_key(&tt_stream, 0UL))" in train  # fc1.weight
    assert "tt_sgd_update_tiled(&u, &tt_cfg, tt_stream_key(&tt_stream, 8UL))" in train  # fc2.weight
    assert "u.rank1_x = TT_BUF_flatten_out;" in train


def test_generated_sources_have_no_floating_point_or_libc(tmp_path):
    model = small_cnn()
    p = generate_project(model, tmp_path, update="full", batch_size=2)
    own = {f.name for f in tmp_path.rglob("*.h")}
    for path in list(tmp_path.glob("tt_model*")) + list((tmp_path / "runtime").iterdir()):
        code = strip_comments(path.read_text())
        for word in ("float", "double", "malloc", "free", "printf", "memcpy", "memset"):
            assert not re.search(rf"\b{word}\b", code), f"{path.name} uses {word}"
        for inc in re.findall(r'#\s*include\s*[<"]([^>"]+)[>"]', code):
            assert inc in ("stdint.h", "stddef.h") or inc in own, f"{path.name} includes {inc}"
    assert p.model.eval_layout.mode in ("gap", "separate")  # batch 2: evaluation re-planned at batch 1


@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_strict_c99_on_the_host(tmp_path, kind):
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    model = build_model("mlp", (1, 8, 8), 10) if kind == "mlp" else small_cnn()
    p = generate_project(model, tmp_path, update="full", batch_size=1 if kind == "mlp" else 3)
    for src in p.sources:
        proc = subprocess.run(["gcc", *STRICT, "-O2", f"-I{tmp_path}", f"-I{tmp_path / 'runtime'}", "-c", str(src),
                               "-o", str(tmp_path / (src.stem + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"


@pytest.mark.parametrize("target", sorted(MCU))
def test_strict_c99_for_mcus(tmp_path, target):
    cc, flags = MCU[target]
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed (install with `make toolchains`)")
    model = build_model("mlp", (16,), 10, hidden=8)
    p = generate_project(model, tmp_path, update="full", target=target)
    for src in p.sources:
        proc = subprocess.run([cc, *flags, *STRICT, f"-I{tmp_path}", f"-I{tmp_path / 'runtime'}", "-c", str(src),
                               "-o", str(tmp_path / (src.stem + ".o"))], capture_output=True, text=True)
        assert proc.returncode == 0, f"{src.name}: {proc.stderr}"
        nm = {"cortex-m0": "arm-none-eabi-nm", "atmega328p": "avr-nm"}[target]
        syms = subprocess.run([nm, str(tmp_path / (src.stem + ".o"))], capture_output=True, text=True).stdout
        assert not re.search(r"__aeabi_[fd]|[sd]f3\b|__fp_", syms), f"{src.name} references soft-float helpers"


def test_makefile_builds_and_the_example_trains(mlp_project, tmp_path):
    if shutil.which("make") is None or shutil.which("gcc") is None:
        pytest.skip("make or gcc missing")
    _, p = mlp_project
    proc = subprocess.run(["make", "-s", "-C", str(p.out_dir), "lib", "example"], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (p.out_dir / "build" / "host" / "libtintin_model.a").is_file()
    run = subprocess.run([str(p.out_dir / "build" / "host" / "example")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    losses = [int(v) for v in re.findall(r"loss mantissa (-?\d+)", run.stdout)]
    assert len(losses) == 10 and losses[-1] < losses[0]  # it learns its one sample
    assert "fc2.bias: 10 elements" in run.stdout
    bad = subprocess.run(["make", "-s", "-C", str(p.out_dir), "TARGET=pdp11"], capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown TARGET" in bad.stderr


def test_frozen_parameters_stay_constant(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10)
    p = generate_project(model, tmp_path, update="last:1")
    params = (tmp_path / "tt_model_params.c").read_text()
    assert "const int8_t tt_frozen_fc1_weight[4096]" in params  # flash, read in place
    assert "const int8_t tt_init_fc2_weight[640] TT_ROM" in params  # copied to SRAM by tt_init
    assert "TT_BUF_fc1_weight" not in (tmp_path / "tt_model_internal.h").read_text()
    assert [e.role for e in p.model.params] == [0, 0, 1, 1]


def test_errors(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10)
    with pytest.raises(CodegenError, match="unknown target"):
        generate_project(model, tmp_path, target="z80")
    program = compile_program(model, "full", 1)
    broken = type(program)(**{**program.__dict__, "steps": program.steps[:1] + (
        type(program.steps[1])(**{**program.steps[1].__dict__, "op": "teleport_s8"}),) + program.steps[2:]})
    with pytest.raises(CodegenError, match="teleport_s8"):
        generate_project(model, tmp_path, program=broken, plan=plan_memory(program))


def test_int16_weights_and_momentum_tables(tmp_path):
    from tintin.nn import QuantConfig
    from tintin.optim import OptimConfig

    model = build_model("mlp", (1, 8, 8), 10, config=QuantConfig(weight_bits=16))
    p = generate_project(model, tmp_path, optim=OptimConfig(momentum_shift=3))
    roles = [(e.name, e.dtype, e.role) for e in p.model.params]
    assert ("fc1.weight", "int16", 1) in roles and ("fc1.weight.momentum", "int64", 2) in roles
    assert np.all([e.count > 0 for e in p.model.params])
