"""Every generated project links on its own, without ``--gc-sections``: each runtime file it contains
finds every function it calls (a firmware build or ``make example`` links every object).

Random models (seeded): fully connected and convolutional stacks with max/average/global pooling
and channel scales, every kind of update selection (full, bias, last layers, sparse rows), batch
sizes 1-4, tiled or materialised weight gradients, momentum or the NITI rule. On the host the
project's own ``make example`` builds; for Cortex-M0 every object is compiled by the project's
Makefile and linked into one ELF with a minimal ``main``."""

from __future__ import annotations

import re
import shutil
import subprocess

import numpy as np
import pytest

from codegen_helpers import require
from tintin.codegen import RUNTIME_DIR, generate_project
from tintin.codegen.runtime_files import runtime_files_for
from tintin.compile import CompileOptions
from tintin.nn import QuantConfig, Sequential
from tintin.nn.conv_layers import Conv2d
from tintin.nn.layers import Flatten, Linear, ReLU
from tintin.nn.pool_layers import AvgPool2d, GlobalAvgPool, MaxPool2d
from tintin.nn.scaling_layers import ChannelScale
from tintin.optim import OptimConfig

SEEDS = range(24)

#: a main for a freestanding link: the API's entry points, and the two libc functions GCC may call
M0_MAIN = r"""#include "tt_model.h"
void *memcpy(void *d, const void *s, size_t n);
void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n)
{
    unsigned char *o = (unsigned char *)d;
    const unsigned char *i = (const unsigned char *)s;
    while (n--) {
        *o++ = *i++;
    }
    return d;
}
void *memset(void *d, int c, size_t n)
{
    unsigned char *o = (unsigned char *)d;
    while (n--) {
        *o++ = (unsigned char)c;
    }
    return d;
}
int main(void)
{
    int8_t out[TT_OUTPUT_SIZE];
    tt_scale_t s;
    tt_init(1u);
    (void)tt_train_step(tt_input_buffer(), tt_label_buffer());
    (void)tt_forward(tt_input_buffer(), out, &s);
    return (int)(tt_params_checksum() & 1u);
}
void _start(void);
void _start(void)
{
    (void)main();
    for (;;) {
    }
}
"""


def random_model(seed: int):
    """``(model, update, batch_size, options, optim)`` of a seeded random project."""
    rng = np.random.default_rng(seed)
    cfg = QuantConfig()
    layers, params = [], []
    if rng.random() < 0.6:  # convolutional front
        c, h = int(rng.integers(1, 3)), int(rng.integers(6, 10))
        shape = (c, h, h)
        for i in range(int(rng.integers(0, 3))):
            kind = rng.choice(["conv", "maxpool", "avgpool", "scale"])
            if kind == "conv":
                out, k = int(rng.integers(1, 4)), int(rng.integers(1, 4))
                pad = int(rng.integers(0, 2))
                if h + 2 * pad < k:
                    continue
                layers += [Conv2d(c, out, k, padding=pad, bias=bool(rng.random() < 0.8), config=cfg, rng=rng,
                                  name=f"conv{i}"), ReLU(f"relu{i}")]
                params.append(f"conv{i}")
                c, h = out, h + 2 * pad - k + 1
            elif kind in ("maxpool", "avgpool") and h >= 2:
                layers.append((MaxPool2d if kind == "maxpool" else AvgPool2d)(2, name=f"pool{i}"))
                h //= 2
            elif kind == "scale":
                layers.append(ChannelScale(c, bias=bool(rng.random() < 0.5), config=cfg, name=f"scale{i}"))
                params.append(f"scale{i}")
        if rng.random() < 0.3:
            layers.append(GlobalAvgPool("gap"))
            features = c
        else:
            layers.append(Flatten("flat"))
            features = c * h * h
    else:
        features = int(rng.integers(4, 24))
        shape = (features,)
    for i in range(int(rng.integers(0, 2))):
        hidden = int(rng.integers(2, 12))
        layers += [Linear(features, hidden, config=cfg, rng=rng, name=f"fc{i}"), ReLU(f"fcrelu{i}")]
        params.append(f"fc{i}")
        features = hidden
    classes = int(rng.integers(2, 12))
    layers.append(Linear(features, classes, bias=bool(rng.random() < 0.8), config=cfg, rng=rng, name="head"))
    params.append("head")
    model = Sequential(layers, shape, cfg, name=f"random{seed}")
    choice = rng.choice(["full", "bias", "last", "sparse", "sparse-weight"])
    if choice == "last":
        update = f"last:{int(rng.integers(1, len(params) + 1))}"
    elif choice.startswith("sparse"):
        a = int(rng.integers(0, classes))
        b = int(rng.integers(a + 1, classes + 1))
        update = f"sparse:head[{a}:{b}]" + (".weight" if choice == "sparse-weight" else "")
    else:
        update = str(choice)
    if update == "bias" and not any(getattr(layer, "bias", None) is not None for layer in model.layers):
        update = "full"
    options = CompileOptions(grad_tile_bytes=[None, 64, 1024][int(rng.integers(0, 3))])
    optim = OptimConfig(rule="niti" if rng.random() < 0.2 else "aligned", momentum_shift=int(rng.choice([0, 0, 3])))
    return model, update, int(rng.integers(1, 5)), options, optim


def project_for(seed: int, out):
    model, update, batch, options, optim = random_model(seed)
    return generate_project(model, out, update=update, batch_size=batch, options=options, optim=optim)


def _make(project, *args):
    return subprocess.run(["make", "-s", "-C", str(project.out_dir), *args], capture_output=True, text=True,
                          timeout=600)


def test_issue_repro_links_without_gc_sections(tmp_path):
    """All updates tiled and no bias trained: the fast bias update must not pull in a file that is
    not there (the project used to reference tt_sgd_update_bias_s32 without tt_sgd.c)."""
    require("host")
    cfg = QuantConfig()
    model = Sequential([MaxPool2d(2), Flatten(), Linear(18, 11, config=cfg, rng=np.random.default_rng(0), name="head")],
                       (2, 7, 7), cfg)
    p = generate_project(model, tmp_path / "p", update="sparse:head[2:10].weight", batch_size=4,
                         options=CompileOptions(grad_tile_bytes=64))
    r = _make(p, "example", "OPT=-O0")
    assert r.returncode == 0, r.stderr
    run = subprocess.run([str(p.out_dir / "build" / "host" / "example")], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and "parameter checksum" in run.stdout


@pytest.mark.parametrize("seed", SEEDS)
def test_random_project_links_on_host(tmp_path, seed):
    require("host")
    p = project_for(seed, tmp_path / "p")
    r = _make(p, "example", "OPT=-O0")
    assert r.returncode == 0, f"{p.program.update}: {r.stderr[-2000:]}"


@pytest.mark.emulator
@pytest.mark.parametrize("seed", SEEDS)
def test_random_project_links_on_cortex_m0(tmp_path, seed):
    require("cortex-m0")
    p = project_for(seed, tmp_path / "p")
    r = _make(p, "TARGET=cortex-m0", "OPT=-O0", "check")
    assert r.returncode == 0, r.stderr[-2000:]
    (p.out_dir / "m0_main.c").write_text(M0_MAIN)
    objects = sorted(str(o) for o in (p.out_dir / "build" / "cortex-m0").rglob("*.o"))
    cmd = ["arm-none-eabi-gcc", "-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-std=c99", "-O0",
           "-ffreestanding", "-nostdlib", "-nostartfiles", f"-I{p.out_dir}", f"-I{p.out_dir / 'runtime'}",
           str(p.out_dir / "m0_main.c"), *objects, "-lgcc", "-o", str(tmp_path / "linked.elf")]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, f"{p.program.update}: {r.stderr[-2000:]}"


def test_selection_covers_every_undefined_symbol(tmp_path):
    """The symbol index agrees with the compiler: for every runtime file, the closure the project
    would copy defines every function its object file leaves undefined (libc's memcpy/memset aside)."""
    require("host")
    if shutil.which("nm") is None:
        pytest.skip("nm is not installed")
    for src in sorted(RUNTIME_DIR.glob("*.c")):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run(["gcc", "-std=c99", "-O0", "-c", str(src), f"-I{RUNTIME_DIR}", "-o", str(obj)], check=True)
        undefined = set(re.findall(r"^\s+U (\S+)$", subprocess.run(["nm", str(obj)], capture_output=True,
                                                                   text=True).stdout, re.M))
        files = sorted({f for f in runtime_files_for([src.read_text()]) if f.endswith(".c")} | {src.name})
        defined = set()
        for f in files:
            o = tmp_path / ("d_" + f + ".o")
            subprocess.run(["gcc", "-std=c99", "-O0", "-c", str(RUNTIME_DIR / f), f"-I{RUNTIME_DIR}", "-o", str(o)],
                           check=True)
            defined |= set(re.findall(r"^\S+ [TRDB] (\S+)$", subprocess.run(["nm", str(o)], capture_output=True,
                                                                            text=True).stdout, re.M))
        missing = {u for u in undefined if u.startswith("tt_")} - defined
        assert not missing, f"{src.name} needs {sorted(missing)} outside {files}"


def test_runtime_files_find_a_function_defined_as_an_alias():
    """tt_sgd_update_weight_outer_s8 is another name of a function of tt_sgd.c (alias attribute)"""
    from tintin.codegen.runtime_files import runtime_files_for

    assert "tt_sgd.c" in runtime_files_for(["x = tt_sgd_update_weight_outer_s8(w, &s, n, g, gs, &c, k, e, x, m);"])
