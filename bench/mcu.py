"""Training on emulated microcontrollers: integer vs float32 C, per core.

For every core (Cortex-M0, M3, M4 with soft float, M4F with its FPU, M33, ATmega328P) this builds the
generated integer training program and the float32 reference C (same network, schedule, data and
order), runs both in the emulator and reports:

* instructions (AVR: cycles) per training step, integer and float, and their ratio, for the digits
  MLP 64-64-10 and LeNet-5 on MNIST-5k (every Cortex-M; the ATmega328P trains MLPs on digits
  averaged to 4x4: 16-8-10, the largest float model its 2 KB of SRAM hold, and 16-12-10, the
  largest integer one its SRAM and flash hold), at batch 1;
* text / data / bss of both programs and the arena (the ELF symbol, equal to the planner's size);
* instructions per MAC of the forward, backward and update kernels (a mark after every program
  step; the marks add a few instructions per step, well below 0.1 %);
* the accuracy reached by training on the emulated Cortex-M0: digits MLP, two epochs at batch 1,
  then the whole test set evaluated on the device, compared with the simulator.

Every integer run is checked bit-exact against the simulator (all losses, predictions and final
weights). Writes ``bench/results/mcu.json`` and ``.md``. ``--quick`` runs fewer steps. ``--cores``
measures some cores only; with ``--baseline`` (an earlier ``mcu.json``) the rows of the other cores
are carried over from it (marked so), and the per-kernel table shows the baseline's figure next to
the new one ("before" / "after").
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import markdown_table, write_results  # noqa: E402

import tintin.targets as targets  # noqa: E402
from tintin.targets import run_on_target, select_samples  # noqa: E402
from tintin.targets.float_reference import run_reference_on_target  # noqa: E402
from tintin.data import load  # noqa: E402
from tintin.nn import build_model  # noqa: E402
from tintin.optim import OptimConfig  # noqa: E402
from tintin.train.loop import epoch_order  # noqa: E402

CORES = ["cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m33", "atmega328p"]
LR = 0.05  # batch 1 (online) learning rate
#: float / integer goals per (core, model)
GOALS = {("cortex-m4f", "mlp"): 2.0, ("cortex-m4f", "lenet5"): 4.0, ("atmega328p", "tiny"): 3.0, ("atmega328p", "mid"): 3.0,
         ("cortex-m3", "mlp"): 10.0, ("cortex-m0", "mlp"): 12.0}
PHASE = {"forward": "forward", "loss": "loss", "backward": "backward", "update": "update"}


def order(n: int, steps: int, seed: int = 0) -> np.ndarray:
    need = steps
    return np.concatenate(list(epoch_order(n, -(-need // n), seed)))[:need]


def pooled(x: np.ndarray) -> np.ndarray:
    s = x.reshape(len(x), 4, 2, 4, 2).astype(np.int32).sum(axis=(2, 4))
    return np.clip(np.sign(s) * ((np.abs(s) + 2) // 4), -127, 127).astype(np.int8).reshape(len(x), 16)


def workload(name: str):
    """(model, x_train, y_train, x_test, y_test, optimisation flag)"""
    if name == "mlp":
        ds = load("digits")
        m = build_model("mlp", ds.sample_shape, 10, input_exponent=ds.input_exponent)
        return m, ds.x_train, ds.y_train, ds.x_test, ds.y_test, "-O2"
    if name == "lenet5":
        ds = load("mnist5k")
        m = build_model("lenet5", ds.sample_shape, 10, input_exponent=ds.input_exponent)
        return m, ds.x_train, ds.y_train, ds.x_test, ds.y_test, "-O2"
    ds = load("digits")  # tiny: 16-8-10, mid: 16-12-10, on digits averaged over 2x2 blocks
    m = build_model("mlp", (16,), 10, hidden=12 if name == "mid" else 8, input_exponent=ds.input_exponent)
    return m, pooled(ds.x_train)[:50], ds.y_train[:50], pooled(ds.x_test), ds.y_test, "-Os"


def measure(core: str, name: str, steps: int, work: Path, profile: bool) -> dict:
    model, xtr, ytr, xte, yte, opt = workload(name)
    o = order(len(xtr), steps)
    x, y, oo = select_samples(xtr, ytr, o, steps, 1)
    optim = OptimConfig(lr=LR)
    t0 = time.perf_counter()
    r = run_on_target(model, core, x_samples=x, y_samples=y, order=oo, steps=steps, work_dir=work / "int",
                      optim=optim, eval_x=xte[:10], opt=opt, timeout_s=1800, profile=profile)
    f = run_reference_on_target(model, core, x_samples=x, y_samples=y, order=oo, steps=steps,
                                work_dir=work / "ref", optim=optim, opt=opt, timeout_s=3600)
    row = {"core": core, "model": name, "steps": steps, "machine": r.machine, "unit": r.count_unit,
           "bit_exact": r.bit_exact, "mismatches": r.mismatches[:3],
           "int_per_step": r.per_step, "int_median_step": float(np.median(r.step_counts)),
           "int_first_step": r.step_counts[0], "float_per_step": f.per_step,
           "float_over_int": f.per_step / r.per_step, "macs_per_step": r.macs_per_step,
           "int_text": r.text_bytes, "int_data": r.data_bytes, "int_bss": r.bss_bytes,
           "arena_bytes": r.arena_bytes, "planned_arena_bytes": r.planned_arena_bytes,
           "float_text": f.text_bytes, "float_data": f.data_bytes, "float_bss": f.bss_bytes,
           "float_fits_target_ram": f.fits_target_ram, "int_softfloat_symbols": r.softfloat_symbols,
           "float_softfloat_symbols": len(f.softfloat_symbols), "stack_used_bytes": r.stack_used_bytes,
           "seconds": time.perf_counter() - t0}
    if r.profile is not None:
        row["profile"] = r.profile
    print(f"  {core:10s} {name:6s} int {r.per_step:>13,.0f}  float {f.per_step:>14,.0f}  "
          f"x{row['float_over_int']:.2f}  bit-exact={r.bit_exact}  ({row['seconds']:.0f} s)", flush=True)
    return row


def per_mac(profile: dict) -> dict:
    """Instructions per MAC by kernel class (mean over the run's steps)."""
    groups = {"forward (linear)": ("linear_forward_s8",), "forward (conv)": ("conv_forward_s8",),
              "backward input error (linear)": ("linear_backward_input_s8",),
              "backward input error (conv)": ("conv_backward_input_s8",),
              "weight gradient + update, fused (linear)": ("fused_weight_update:linear",),
              "weight gradient + update, fused (conv)": ("fused_weight_update:conv",),
              "weight gradient, materialised": ("linear_backward_weight_s32", "conv_backward_weight_s32")}
    out = {}
    for label, ops in groups.items():
        count = macs = 0
        for s in profile["steps"]:
            key = s["op"]
            if key == "fused_weight_update":
                key += ":conv" if (s["layer"] or "").startswith("conv") else ":linear"
            if key in ops and s["macs"]:
                count += s["mean_count"]
                macs += s["macs"]
        if macs:
            out[label] = {"per_mac": count / macs, "macs": macs}
    phases = {}
    for s in profile["steps"]:
        p = phases.setdefault(s["phase"], {"count": 0.0, "macs": 0})
        p["count"] += s["mean_count"]
        p["macs"] += s["macs"]
    return {"kernels": out, "phases": phases}


def accuracy_on_m0(epochs: int, work: Path) -> dict:
    ds = load("digits")
    model = build_model("mlp", ds.sample_shape, 10, input_exponent=ds.input_exponent)
    n = len(ds.x_train)
    steps = epochs * n
    o = np.concatenate(list(epoch_order(n, epochs, 0)))
    starts = {e * n: e for e in range(1, epochs)}
    t0 = time.perf_counter()
    r = run_on_target(model, "cortex-m0", x_samples=ds.x_train, y_samples=ds.y_train, order=o, steps=steps,
                      work_dir=work / "acc", optim=OptimConfig(lr=LR), eval_x=ds.x_test, eval_y=ds.y_test,
                      epoch_starts=starts, timeout_s=1800)
    row = {"model": "mlp 64-64-10", "dataset": "digits", "epochs": epochs, "steps": steps, "batch_size": 1,
           "lr": LR, "machine": r.machine, "bit_exact": r.bit_exact, "mismatches": r.mismatches[:3],
           "test_samples": len(ds.x_test), "device_test_accuracy": r.device_eval_accuracy,
           "simulator_test_accuracy": r.simulator_eval_accuracy, "instructions_per_step": r.per_step,
           "instructions_per_prediction": float(np.mean(r.eval_counts)) if r.eval_counts else None,
           "text_bytes": r.text_bytes, "bss_bytes": r.bss_bytes, "seconds": time.perf_counter() - t0}
    print(f"  accuracy on cortex-m0 ({r.machine}): {r.device_eval_accuracy:.4f} on the device, "
          f"{r.simulator_eval_accuracy:.4f} in the simulator, bit-exact={r.bit_exact}", flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps (a smoke run)")
    ap.add_argument("--cores", default=",".join(CORES))
    ap.add_argument("--baseline", type=Path, default=None,
                    help="an earlier mcu.json: rows of cores not measured now are carried over, and its "
                         "per-kernel figures are shown as 'before'")
    ap.add_argument("--no-carry-over", action="store_true",
                    help="with --baseline: keep only the cores measured now (the baseline gives 'before' only)")
    ap.add_argument("--name", default="mcu",
                    help="results name: bench/results/<name>.json and .md (e.g. mcu_avr for --cores atmega328p)")
    args = ap.parse_args()
    baseline = json.loads(args.baseline.read_text()) if args.baseline else None
    cores = [c for c in args.cores.split(",") if c]
    missing = [c for c in cores if not targets.toolchain_status(c)[0]]
    if missing:
        sys.exit("missing toolchains: " + "; ".join(targets.toolchain_status(c)[1] for c in missing))
    steps = {"mlp": 60 if args.quick else 300, "lenet5": 10 if args.quick else 100, "tiny": 30 if args.quick else 100,
             "mid": 30 if args.quick else 100}
    rows, profiles = [], {}
    with tempfile.TemporaryDirectory(prefix="tintin-bench-mcu-") as tmp:
        work = Path(tmp)
        print("integer vs float32 training steps:")
        for core in cores:
            names = ["tiny", "mid"] if core == "atmega328p" else ["mlp", "lenet5"]
            for name in names:
                row = measure(core, name, steps[name], work / core / name, profile=True)
                if "profile" in row:
                    profiles[f"{core}/{name}"] = per_mac(row.pop("profile"))
                rows.append(row)
        acc = accuracy_on_m0(1 if args.quick else 2, work) if "cortex-m0" in cores else None
    before = {}
    if baseline is not None:
        before = baseline.get("per_mac", {})
        for r in baseline.get("rows", []) if not args.no_carry_over else []:
            if r["core"] not in cores:
                rows.append({**r, "carried_over": True})
                if f"{r['core']}/{r['model']}" in before:
                    profiles.setdefault(f"{r['core']}/{r['model']}", before[f"{r['core']}/{r['model']}"])
        if acc is None and not args.no_carry_over:
            acc = baseline.get("accuracy_cortex_m0")
        rows.sort(key=lambda r: (CORES.index(r["core"]) if r["core"] in CORES else len(CORES), r["model"]))
    if baseline is not None:
        steps_before = {f"{r['core']}/{r['model']}": r["int_per_step"] for r in baseline.get("rows", [])}
        for r in rows:
            old = steps_before.get(f"{r['core']}/{r['model']}")
            if old is not None and not r.get("carried_over"):
                r["int_per_step_before"] = old
    data = {"lr": LR, "batch_size": 1, "rows": rows, "per_mac": profiles, "per_mac_before": before,
            "accuracy_cortex_m0": acc,
            "notes": ["instructions from QEMU's counting plugin (Cortex-M), cycles from simavr (ATmega328P)",
                      "float32 reference: the same network and SGD in float C, from the dequantised initial "
                      "weights, the integer optimiser's effective learning rate; soft float except cortex-m4f",
                      "integer program on cortex-m4f: the same integer code built with the hard-float ABI",
                      "cortex-m4/m4f/m33 product loops (tt_dot.c): dense layers 49 instructions per 32 MACs "
                      "for four rows against one input (1.53 per MAC), convolutions 43 per 32 MACs for two "
                      "channels against two windows (1.34 per MAC); cortex-m0 and cortex-m3 run the same "
                      "blocking with their dense loop in assembly (two inputs per iteration: cortex-m3 20 "
                      "instructions per 8 MACs, cortex-m0 29, its sums in high registers), the rest of their "
                      "loops in portable C; the rest of a kernel's figure is per-output work (bias "
                      "alignment, range, rescale, stores), the loops' tails and, for convolutions, building "
                      "the windows (im2col)",
                      "batch-1 dense update on cortex-m3/m4/m4f/m33: each changed weight's rounded step and new "
                      "value in one SMLAL; when a row's |e| * M < 2**(n-1) (the common case) its factor is "
                      "pre-shifted and the runs are in assembly: two rows whose errors share a sign take each "
                      "input's column and value once, 31 instructions per four changed weights, a row alone 9 per "
                      "weight (the compiler's loop: 11-12; other shifts: the 32-bit loop, 13 on the M3); "
                      "cortex-m0 (no long multiply): the 32-bit loop in assembly, 20 "
                      "instructions per changed weight (39 in the compiler's code); its per-MAC figure counts every weight of the layer, "
                      "changed or not (zero inputs and zero errors skip theirs, as in the float32 reference)",
                      "cortex-m4/m4f/m33 input error: the rows with a nonzero error in pairs, four column sums in "
                      "registers, PKHBT/PKHTB + SMLAD (19 instructions per 8 products); ReLU forward and backward "
                      "four int8 lanes per word (SSUB8 + SEL)",
                      "ATmega328P: the batch-1 dense weight gradient is formed inside the update "
                      "(tt_sgd_update_weight_outer_s8, docs/c-runtime.md#avr-paths): its 'weight gradient, "
                      "materialised' step is empty and the update phase includes the gradient; "
                      "16-12-10 is the largest benchmark MLP that trains on the part (measured on the runtime "
                      "before the outer update: 16-16-10 links (flash) but its stack overflows the 2 KB SRAM "
                      "at run time, and 16-20-10 exceeds the 32 KB flash by 17,608 bytes); "
                      "float reference programs that do not fit 2 KB run on simavr's ATmega1284P (the same core)",
                      "ATmega328P alone, with each phase before and after a baseline: `bench/mcu.py --cores "
                      "atmega328p --baseline bench/results/mcu.json --no-carry-over --name mcu_avr` "
                      "(bench/results/mcu_avr.md)"]}
    write_results(args.name, data, render(data))


def render(d: dict) -> str:
    def fmt(v, unit=""):
        return f"{v:,.0f}{unit}" if isinstance(v, (int, float)) else str(v)

    lines = ["# Training on emulated microcontrollers: integer vs float32 C", "",
             f"Batch 1, learning rate {d['lr']}, every integer run bit-exact against the simulator "
             "(losses, predictions, final weights). Counts: instructions (QEMU plugin), ATmega328P: cycles (simavr).",
             ""]
    head = ["core", "model", "steps", "machine", "integer / step", "float32 / step", "float / int",
            "bit-exact", "int text/data/bss B", "arena B (ELF = plan)", "float text/data/bss B"]
    rows = []
    for r in d["rows"]:
        label = {"mlp": "MLP 64-64-10 digits", "lenet5": "LeNet-5 MNIST-5k", "tiny": "MLP 16-8-10 digits 4x4",
                 "mid": "MLP 16-12-10 digits 4x4"}[r["model"]]
        unit = " cyc" if r["unit"] == "cycles" else ""
        rows.append([r["core"] + (" (earlier run)" if r.get("carried_over") else ""), label, r["steps"],
                     r["machine"], fmt(r["int_per_step"], unit),
                     fmt(r["float_per_step"], unit), f"{r['float_over_int']:.2f}x", r["bit_exact"],
                     f"{r['int_text']:,}/{r['int_data']:,}/{r['int_bss']:,}",
                     f"{r['arena_bytes']:,} = {r['planned_arena_bytes']:,}" if r["arena_bytes"] == r["planned_arena_bytes"]
                     else f"{r['arena_bytes']} != {r['planned_arena_bytes']}",
                     f"{r['float_text']:,}/{r['float_data']:,}/{r['float_bss']:,}"
                     + ("" if r["float_fits_target_ram"] else " (exceeds the core's SRAM; run on a bigger "
                                                               "board of the same core)")])
    lines += [markdown_table(head, rows), ""]
    lines += ["Integer step: mean over the run (weight rescales included); median and first step in the JSON.", ""]
    moved = [r for r in d["rows"] if r.get("int_per_step_before")]
    if moved:
        lines += ["Integer step before (the `--baseline` run) and now: "
                  + "; ".join(f"{r['core']} {r['model']} {r['int_per_step_before']:,.0f} -> {r['int_per_step']:,.0f} "
                              f"({r['int_per_step_before'] / r['int_per_step']:.2f}x faster)" for r in moved) + ".", ""]
    carried = sorted({r["core"] for r in d["rows"] if r.get("carried_over")})
    if carried:
        lines += ["Rows marked (earlier run) are carried over from the `--baseline` run, not measured in this "
                  "one, and are left out of the goals below. " + (
                      "ATmega328P's current figures, each phase before and after: [mcu_avr.md](mcu_avr.md)."
                      if "atmega328p" in carried else ""), ""]
    goals = [(r, GOALS[(r["core"], r["model"])]) for r in d["rows"]
             if (r["core"], r["model"]) in GOALS and not r.get("carried_over")]
    if goals:
        lines += ["Goals (float / integer per step): "
                  + "; ".join(f"{r['core']} {r['model']} >= {g:g}x: {r['float_over_int']:.2f}x "
                              f"({'reached' if r['float_over_int'] >= g else 'not reached'})" for r, g in goals)
                  + ". The weight update (its own kernels) is most of a small model's step: see the phase "
                  "table below.", ""]
    if d["per_mac"]:
        before = d.get("per_mac_before") or {}
        lines += ["## Instructions (cycles) per MAC, by kernel (mean over every step of the run)", ""]
        if before:
            lines += ["'before': the baseline run given with `--baseline` (the same table of the earlier "
                      "results); a core without a 'before' figure was not in it.", ""]
        head = ["core / model", "kernel", "per MAC"] + (["before"] if before else []) + ["MACs / step"]
        rows = []
        for key, p in d["per_mac"].items():
            for label, v in p["kernels"].items():
                old = before.get(key, {}).get("kernels", {}).get(label)
                rows.append([key, label, f"{v['per_mac']:.2f}"] + ([f"{old['per_mac']:.2f}" if old else ""]
                                                                    if before else []) + [f"{v['macs']:,}"])
        lines += [markdown_table(head, rows), ""]
        head = ["core / model", "phase", "count / step"] + (["before"] if before else []) + ["MACs / step", "per MAC"]
        rows = []
        for key, p in d["per_mac"].items():
            for phase, v in p["phases"].items():
                old = before.get(key, {}).get("phases", {}).get(phase)
                rows.append([key, phase, f"{v['count']:,.0f}"]
                            + ([f"{old['count']:,.0f}" if old else ""] if before else [])
                            + [f"{v['macs']:,}", f"{v['count'] / v['macs']:.2f}" if v["macs"] else ""])
        lines += [markdown_table(head, rows), ""]
    a = d.get("accuracy_cortex_m0")
    if a:
        lines += ["## Accuracy reached on the emulated Cortex-M0", "",
                  f"{a['model']} on {a['dataset']}: {a['epochs']} epochs at batch 1 ({a['steps']:,} steps) on "
                  f"{a['machine']}, then all {a['test_samples']} test samples predicted on the device: "
                  f"**{a['device_test_accuracy']:.4f}** (simulator: {a['simulator_test_accuracy']:.4f}; "
                  f"bit-exact: {a['bit_exact']}). {a['instructions_per_step']:,.0f} instructions per training step, "
                  f"{a['instructions_per_prediction']:,.0f} per prediction.", ""]
    lines += ["Notes: " + " ".join(d["notes"])]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
