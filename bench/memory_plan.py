"""Peak SRAM of compiled training programs: naive vs planned, per update choice.

For LeNet-5 on 28x28 images and two MLPs (digits 64-64-10, MNIST 784-128-10), batch size 1, update
choices full / bias / last:1 / last:2:

* ``naive``: the unoptimised program (whole int32 weight gradients, no in-place steps, int8 ReLU
  outputs kept) with every buffer in its own space;
* ``naive planner``: the optimised program, every buffer in its own space;
* ``planned``: the optimised program with the default options, lifetime-aware greedy planner: sparse
  updates recompute the int32 accumulators the default rule selects (at least 4 KiB and 1 byte per
  16 extra MACs, :mod:`tintin.compile.compiler`), the full update stores them;
* ``acc. stored``: the same program with every accumulator stored (``recompute_bytes_per_mac=None``);
* ``planned, acc. recomputed``: int32 accumulators above 8 KiB recomputed instead of stored
  (``accumulator_budget=8192``: twice the MACs of those steps);
* ``lower bound``: the largest sum of bytes live at one step.

Second table, the patch-based first stage (``CompileOptions(patch_size=P)``, MCUNetV2-style,
:mod:`tintin.compile.patch`): for updates that leave LeNet-5's convolutions frozen (``last:K``), its
first stage (conv1..pool1, or conv1..pool2) computed P x P output positions at a time: the peak SRAM
and the MACs per sample against the default program, each program run for one step through the
arena executor and compared with ``train_step`` bit for bit.

Writes ``bench/results/memory_plan.{json,md,png}``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import RESULTS, markdown_table, write_results  # noqa: E402

from tintin.compile import compile_program, plan_memory  # noqa: E402
from tintin.compile.cost import program_cost  # noqa: E402
from tintin.compile.report import unoptimised_options  # noqa: E402
from tintin.compile.compiler import CompileOptions  # noqa: E402
from tintin.nn import build_model  # noqa: E402

MODELS = [("lenet5", (1, 28, 28), {}), ("mlp", (1, 8, 8), {}), ("mlp", (1, 28, 28), {})]
UPDATES = ["full", "bias", "last:1", "last:2"]
BATCH = 1
RECOMPUTE_BUDGET = 8192


def measure(name: str, shape, update: str) -> dict:
    model = build_model(name, shape, 10, seed=0)
    options = CompileOptions()
    program = compile_program(model, update, BATCH, options=options)
    baseline = compile_program(model, update, BATCH, options=unoptimised_options(options))
    recompute = compile_program(model, update, BATCH, accumulator_budget=RECOMPUTE_BUDGET)
    stored = compile_program(model, update, BATCH, recompute_bytes_per_mac=None)
    planned = plan_memory(program, "greedy")
    return {
        "model": name, "input_shape": list(shape), "update": update, "batch_size": BATCH,
        "naive_bytes": plan_memory(baseline, "naive").arena_bytes,
        "naive_planner_bytes": plan_memory(program, "naive").arena_bytes,
        "planned_bytes": planned.arena_bytes,
        "stored_bytes": plan_memory(stored, "greedy").arena_bytes,
        "macs_per_sample_stored": program_cost(stored).macs_per_sample,
        "planned_recompute_bytes": plan_memory(recompute, "greedy").arena_bytes,
        "lower_bound_bytes": planned.lower_bound_bytes,
        "trained_parameter_bytes": sum(program.buffers[n].nbytes for n in planned.trained_parameters),
        "macs_per_sample": program_cost(program).macs_per_sample,
        "macs_per_sample_recompute": program_cost(recompute).macs_per_sample,
    }


PATCH_MODELS = [("lenet5", (1, 28, 28)), ("lenet5", (1, 64, 64))]
PATCH_UPDATES = ["last:1", "last:3"]
PATCH_CHOICES = [(None, None), (1, None), (2, None), (3, None), (5, None), (1, 3), (2, 3), (4, 3)]


def _bit_exact(name: str, shape, update: str, **options) -> bool:
    """One training step of the compiled program (arena executor) equals ``train_step``."""
    from tintin.checks import assert_program_matches_train_step

    try:
        assert_program_matches_train_step(build_model(name, shape, 10, seed=0), update, BATCH, 1, **options)
    except AssertionError:
        return False
    return True


def measure_patch(name: str, shape, update: str, patch, layers) -> dict:
    from tintin.compile.report import patch_stage_summary

    model = build_model(name, shape, 10, seed=0)
    default = compile_program(model, update, BATCH)
    program = compile_program(model, update, BATCH, patch_size=patch, patch_layers=layers)
    stage = patch_stage_summary(program)
    options = {} if patch is None else {"patch_size": patch, "patch_layers": layers}
    return {
        "model": name, "input_shape": list(shape), "update": update, "patch": patch,
        "stage": stage["layers"] if stage else None,
        "peak_bytes": plan_memory(program, "greedy").arena_bytes,
        "default_peak_bytes": plan_memory(default, "greedy").arena_bytes,
        "macs_per_sample": program_cost(program).macs_per_sample,
        "default_macs_per_sample": program_cost(default).macs_per_sample,
        "stage_macs_per_sample": stage["macs_per_sample"] if stage else None,
        "stage_plain_macs_per_sample": stage["plain_macs_per_sample"] if stage else None,
        "bit_exact": _bit_exact(name, shape, update, **options),
    }


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = [f"{r['model']} {'x'.join(map(str, r['input_shape'][1:]))}\n{r['update']}" for r in rows]
    series = [("naive", "naive_bytes", "#bab0ac"), ("naive planner", "naive_planner_bytes", "#76b7b2"),
              ("planned, acc. stored", "stored_bytes", "#f28e2b"), ("planned (default)", "planned_bytes", "#4e79a7"),
              ("planned, acc. > 8 KiB recomputed", "planned_recompute_bytes", "#59a14f")]
    x = np.arange(len(rows))
    width = 0.16
    fig, ax = plt.subplots(figsize=(14, 5))
    for i, (label, key, colour) in enumerate(series):
        ax.bar(x + (i - 2) * width, [r[key] / 1024 for r in rows], width, label=label, color=colour)
    ax.set_yscale("log")
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("peak SRAM of one training step (KiB, log scale)")
    ax.set_title(f"Training-step SRAM, batch size {BATCH}: naive vs planned")
    ax.grid(axis="y", alpha=0.3)
    fig.legend(loc="lower center", ncol=5, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    rows = [measure(name, shape, update) for name, shape, _ in MODELS for update in UPDATES]
    headers = ["model", "input", "update", "naive B", "naive planner B", "planned B (default)", "planned/naive",
               "acc. stored B", "default extra MACs", "planned, acc. > 8 KiB recomputed B", "lower bound B",
               "trained params B", "MACs/sample (default)", "MACs/sample, acc. > 8 KiB recomputed"]
    table = []
    for r in rows:
        table.append([r["model"], "x".join(map(str, r["input_shape"])), r["update"], f"{r['naive_bytes']:,}",
                      f"{r['naive_planner_bytes']:,}", f"{r['planned_bytes']:,}",
                      f"{r['planned_bytes'] / r['naive_bytes']:.3f}", f"{r['stored_bytes']:,}",
                      f"{r['macs_per_sample'] - r['macs_per_sample_stored']:+,.0f}", f"{r['planned_recompute_bytes']:,}",
                      f"{r['lower_bound_bytes']:,}", f"{r['trained_parameter_bytes']:,}", f"{r['macs_per_sample']:,.0f}",
                      f"{r['macs_per_sample_recompute']:,.0f}"])
    by = {(r["model"], tuple(r["input_shape"]), r["update"]): r for r in rows}
    lenet_full, lenet_bias = by[("lenet5", (1, 28, 28), "full")], by[("lenet5", (1, 28, 28), "bias")]
    checks = {
        "lenet5_full_planned_over_naive": lenet_full["planned_bytes"] / lenet_full["naive_bytes"],
        "lenet5_full_planned_over_naive_planner": lenet_full["planned_bytes"] / lenet_full["naive_planner_bytes"],
        "lenet5_bias_over_full_planned": lenet_bias["planned_bytes"] / lenet_full["planned_bytes"],
        "lenet5_bias_over_full_stored": lenet_bias["stored_bytes"] / lenet_full["stored_bytes"],
        "lenet5_bias_default_extra_macs": lenet_bias["macs_per_sample"] - lenet_bias["macs_per_sample_stored"],
        "lenet5_bias_over_full_planned_recompute": lenet_bias["planned_recompute_bytes"]
        / lenet_full["planned_recompute_bytes"],
    }
    patch_rows = [measure_patch(name, shape, update, p, k) for name, shape in PATCH_MODELS for update in PATCH_UPDATES
                  for p, k in PATCH_CHOICES]
    patch_headers = ["model", "input", "update", "patch stage", "patch P", "peak SRAM B", "peak / default",
                     "MACs/sample", "MACs / default", "stage MACs / one plain pass", "bit-exact"]
    patch_table = [[r["model"], "x".join(map(str, r["input_shape"])), r["update"],
                    f"{r['stage'][0]}..{r['stage'][-1]}" if r["stage"] else "none (default)",
                    str(r["patch"] or "-"), f"{r['peak_bytes']:,}", f"{r['peak_bytes'] / r['default_peak_bytes']:.2f}",
                    f"{r['macs_per_sample']:,.0f}", f"{r['macs_per_sample'] / r['default_macs_per_sample']:.2f}",
                    f"{r['stage_macs_per_sample'] / r['stage_plain_macs_per_sample']:.2f}" if r["stage"] else "-",
                    "yes" if r["bit_exact"] else "NO"] for r in patch_rows]
    png = RESULTS / "memory_plan.png"
    RESULTS.mkdir(parents=True, exist_ok=True)
    chart(rows, png)
    md = "\n".join([
        f"# Peak SRAM of one training step (batch size {BATCH})", "",
        "naive: unoptimised program (whole int32 weight gradients, no in-place steps, int8 ReLU outputs kept), "
        "every buffer its own space. naive planner: the optimised program, every buffer its own space. planned: "
        "optimised program with the default options, lifetime-aware greedy first-fit (sparse updates recompute "
        "int32 accumulators of at least 4 KiB and 1 byte per 16 extra MACs; the full update stores them). "
        "acc. stored: every accumulator stored. default extra MACs: what the default recomputation adds per "
        f"sample. acc. > 8 KiB recomputed: int32 accumulators above {RECOMPUTE_BUDGET} B recomputed instead of "
        "stored. Tensors only (no stack, no runtime state).", "",
        markdown_table(headers, table), "",
        f"- LeNet-5 full update: planned / naive = {checks['lenet5_full_planned_over_naive']:.3f} "
        f"(planned / naive planner on the same program = {checks['lenet5_full_planned_over_naive_planner']:.3f})",
        f"- LeNet-5 bias-only / full, planned by default: {checks['lenet5_bias_over_full_planned']:.3f} "
        f"({checks['lenet5_bias_default_extra_macs']:+,.0f} MACs per sample); every accumulator stored: "
        f"{checks['lenet5_bias_over_full_stored']:.3f}; accumulators above 8 KiB recomputed: "
        f"{checks['lenet5_bias_over_full_planned_recompute']:.3f}",
        "", f"![chart]({png.name})", "",
        f"## Patch-based first stage (batch size {BATCH})", "",
        "The frozen first stage of LeNet-5 (`last:K` leaves the convolutions frozen) computed P x P positions of "
        "the stage output at a time (`tintin plan --patch P [--patch-layers 3]`): the maps inside the stage "
        "never exist in full. One maximum pass per convolution (the per-tensor scales need each whole "
        "accumulator's maximum), then the output pass, each over the halo regions of the patches. "
        "*stage MACs / one plain pass*: the stage step's MACs over one pass of its convolutions (the default "
        "program spends 2x on conv1, whose accumulator it recomputes, and 1x on conv2). *bit-exact*: one step "
        "through the arena executor equals `train_step` (the generated C's runs are tested in "
        "`tests/compile/test_patch_stage.py`).", "",
        markdown_table(patch_headers, patch_table),
    ])
    write_results("memory_plan", {"batch_size": BATCH, "recompute_budget": RECOMPUTE_BUDGET, "rows": rows,
                                  "checks": checks, "chart": png.name, "patch_rows": patch_rows}, md)


if __name__ == "__main__":
    main()
