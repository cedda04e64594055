"""Instructions per training sample against the batch size on an emulated core.

The digits MLP 64-64-10 (full update, the learning rate ``tintin train`` uses at that batch size)
trains ``--steps`` steps at batch sizes 1, 2, 4, 8, 16 and 32 on the emulated ``--core`` (default
Cortex-M3, QEMU); every run is checked bit-exact against the simulator. For each batch size:
instructions per step and per sample, the share of the update phase (a mark after every program
step), and whether instructions per sample fell from the previous batch size. ``--baseline`` (an
earlier ``mcu_batch.json``) adds its per-sample figures as "before" columns. Writes
``bench/results/mcu_batch.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import markdown_table, write_results  # noqa: E402

from tintin.cli.options import resolved_lr  # noqa: E402
from tintin.data import load  # noqa: E402
from tintin.nn import build_model  # noqa: E402
from tintin.optim import OptimConfig  # noqa: E402
from tintin.targets import run_on_target, select_samples  # noqa: E402
from tintin.targets.ondevice import training_order  # noqa: E402

BATCHES = [1, 2, 4, 8, 16, 32]


def measure(core: str, batch: int, steps: int, work: Path) -> dict:
    ds = load("digits")
    model = build_model("mlp", ds.sample_shape, 10, input_exponent=ds.input_exponent)
    order, starts = training_order(len(ds.x_train), steps, batch, 0)
    x, y, o = select_samples(ds.x_train, ds.y_train, order, steps, batch)
    lr = resolved_lr(None, "mlp", batch)
    t0 = time.perf_counter()
    r = run_on_target(model, core, x_samples=x, y_samples=y, order=o, steps=steps, work_dir=work / f"b{batch}",
                      batch_size=batch, optim=OptimConfig(lr=lr), epoch_starts=starts, timeout_s=1800, profile=True)
    phases: dict[str, float] = {}
    for s in r.profile["steps"]:
        phases[s["phase"]] = phases.get(s["phase"], 0.0) + s["mean_count"]
    total = sum(phases.values())
    row = {"core": core, "batch_size": batch, "steps": steps, "lr": lr, "machine": r.machine, "unit": r.count_unit,
           "bit_exact": r.bit_exact, "mismatches": r.mismatches[:3], "per_step": r.per_step,
           "per_sample": r.per_step / batch, "macs_per_step": r.macs_per_step,
           "update_share": phases.get("update", 0.0) / total if total else None,
           "phase_per_sample": {k: v / batch for k, v in phases.items()},
           "arena_bytes": r.arena_bytes, "seconds": time.perf_counter() - t0}
    print(f"  {core} batch {batch:2d}: {row['per_step']:>12,.0f} per step, {row['per_sample']:>10,.0f} per sample, "
          f"update {100 * (row['update_share'] or 0):.0f} %, bit-exact={r.bit_exact} ({row['seconds']:.0f} s)",
          flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--core", default="cortex-m3")
    ap.add_argument("--steps", type=int, default=24, help="training steps per batch size")
    ap.add_argument("--batches", default=",".join(map(str, BATCHES)))
    ap.add_argument("--baseline", type=Path, default=None,
                    help="an earlier mcu_batch.json: its per-sample figures are shown as 'before'")
    args = ap.parse_args()
    before = {}
    if args.baseline is not None:
        before = {r["batch_size"]: r for r in json.loads(args.baseline.read_text())["rows"]}
    batches = [int(b) for b in args.batches.split(",")]
    with tempfile.TemporaryDirectory(prefix="tintin-mcu-batch-") as tmp:
        rows = [measure(args.core, b, args.steps, Path(tmp)) for b in batches]
    falls = [None] + [b["per_sample"] < a["per_sample"] for a, b in zip(rows, rows[1:])]
    monotonic = all(falls[1:])
    phase_monotonic = {phase: all(b["phase_per_sample"].get(phase, 0) < a["phase_per_sample"].get(phase, 0)
                                  for a, b in zip(rows, rows[1:])) for phase in ("forward", "backward", "update")}
    unit = rows[0]["unit"]
    table = [[str(r["batch_size"]), f"{r['per_step']:,.0f}", f"{r['per_sample']:,.0f}",
              f"{r['per_sample'] / rows[0]['per_sample']:.2f}",
              f"{r['phase_per_sample'].get('forward', 0):,.0f}", f"{r['phase_per_sample'].get('backward', 0):,.0f}",
              f"{r['phase_per_sample'].get('update', 0):,.0f}", f"{100 * r['update_share']:.0f} %",
              "-" if f is None else ("yes" if f else "NO"), f"{r['arena_bytes']:,}", "yes" if r["bit_exact"] else "NO"]
             for r, f in zip(rows, falls)]
    headers = ["batch", f"{unit} / step", f"{unit} / sample", "vs batch 1", "forward / sample", "backward / sample",
               "update / sample", "update share", "fell from previous", "arena B", "bit-exact"]
    if before:
        for r, line in zip(rows, table):
            b = before.get(r["batch_size"])
            line[3:3] = [f"{b['per_sample']:,.0f}" if b else "-"]
            line[8:8] = [f"{b['phase_per_sample'].get('update', 0):,.0f}" if b else "-"]
        headers[3:3] = [f"before: {unit} / sample"]
        headers[8:8] = ["before: update / sample"]
    md = "\n".join([
        f"# Batch size against {unit} per sample on {args.core} (MLP 64-64-10, digits)", "",
        f"{args.steps} training steps per batch size, full update, the learning rate `tintin train` uses (0.05 at "
        "batch 1, else 0.5), every run compared bit for bit with the simulator. Per-phase figures from a mark "
        "after every program step (the loss phase is the remainder).", "",
        markdown_table(headers, table), "",
        *([f"'before': `{args.baseline.name}` given with `--baseline` (the same bench on the earlier runtime).", ""]
          if before else []),
        f"- {unit} per sample fall monotonically with the batch size: **{'yes' if monotonic else 'no'}**",
        *[f"- {phase} {unit} per sample fall monotonically: {'yes' if mono else 'no'}"
          for phase, mono in phase_monotonic.items()],
        "- the update phase holds the fused weight gradient and update: its gradient MACs are B x N x K per step, "
        "the same per sample at every batch size, and only the update's own work is shared by the batch",
    ])
    write_results("mcu_batch", {"core": args.core, "steps": args.steps, "rows": rows, "monotonic": monotonic,
                               "phase_monotonic": phase_monotonic,
                               "before": list(before.values()) if before else None}, md)


if __name__ == "__main__":
    main()
