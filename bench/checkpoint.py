"""What power-loss-safe training state costs on a microcontroller.

For the digits MLP (64-64-10) with several update selections, this builds the generated training
program with checkpoints (``generate_project(checkpoint=True)``) and the power-cut sweep program
(:func:`tintin.targets.power_cuts.run_power_cuts`) for the emulated Cortex-M0 and reports:

* bytes of state, bytes of flash per slot (whole 1 KB pages) and for the two-slot region;
* page erases (wear) and bytes programmed per save, flash operations per save;
* instructions per save and per restore on Cortex-M0 (QEMU's exact counts, the ARMv6-M binary;
  the sweep program needs more RAM than the 16 KB micro:bit for the larger states, which then run
  on the mps2-an385 board: the same binary, so the same instruction counts);
* the sweep itself: cut points (every ``--stride``-th flash operation of every save, before,
  after and torn), corrupt restores, lost commits, and whether training resumed from restored
  states ends bit-exact with the simulator;

and, on the host, the full sweep (every operation) of the first configuration.
Writes ``bench/results/checkpoint.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from _common import markdown_table, write_results  # noqa: E402

from tintin.data import load  # noqa: E402
from tintin.nn import build_model  # noqa: E402
from tintin.optim import OptimConfig  # noqa: E402
from tintin.targets import toolchain_status  # noqa: E402
from tintin.targets.power_cuts import run_power_cuts  # noqa: E402

CONFIGS = [  # (label, update, momentum shift)
    ("full", "full", 0),
    ("full + momentum", "full", 3),
    ("last:1", "last:1", 0),
    ("bias", "bias", 0),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", default="cortex-m0")
    ap.add_argument("--saves", type=int, default=3)
    ap.add_argument("--stride", type=int, default=8, help="cut every K-th flash operation on the emulator")
    ap.add_argument("--page-size", type=int, default=1024)
    args = ap.parse_args()
    ok, reason = toolchain_status(args.target)
    if not ok:
        sys.exit(f"error: {reason}")
    ds = load("digits")
    rows, runs = [], []
    plan = [(label, update, shift, args.target, args.stride) for label, update, shift in CONFIGS]
    plan.append((CONFIGS[0][0], CONFIGS[0][1], CONFIGS[0][2], "host", 1))
    for label, update, shift, target, stride in plan:
        model = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        print(f"{label} on {target} ...", flush=True)
        r = run_power_cuts(model, ds, target=target, saves=args.saves, every=2, stride=stride, update=update,
                           optim=OptimConfig(lr=0.05, momentum_shift=shift), page_size=args.page_size)
        runs.append({"label": label, **r.to_dict()})
        per_byte = f"{r.instructions_per_save / r.payload_bytes:.0f}" if r.instructions_per_save else "-"
        rows.append([label, target, r.machine, f"{r.payload_bytes:,}", f"{r.slot_bytes:,}", f"{r.region_bytes:,}",
                     f"{r.page_erases_per_save:.0f}", f"{r.bytes_programmed_per_save:,.0f}",
                     f"{r.operations_per_save:.0f}",
                     f"{r.instructions_per_save:,.0f}" if r.instructions_per_save else "-",
                     f"{r.instructions_per_restore:,.0f}" if r.instructions_per_restore else "-", per_byte,
                     f"{r.cut_points:,}", r.corrupt_restores, r.lost_commits, r.resume_bit_exact])
    headers = ["update", "target", "machine", "state B", "flash per slot B", "region B (2 slots)",
               "page erases / save", "bytes programmed / save", "flash ops / save", "instructions / save",
               "instructions / restore", "instructions / state byte", "cut points", "corrupt restores",
               "lost commits", "resume bit-exact"]
    md = "\n".join([
        "# Power-loss-safe checkpoints: cost and power-cut sweep",
        "",
        f"Digits MLP 64-64-10, batch 1, lr 0.05, {args.saves} saves 2 steps apart, simulated NOR flash with "
        f"{args.page_size}-byte pages, 4-byte writes, two slots. Instructions are QEMU's exact counts of the "
        "clean save and the clean restore (CRC-32 of the newest slot's payload to choose the slot, then the "
        "CRC of the new state while writing it; a restore checks the payload, then loads it). A save erases one "
        "slot: the wear per save is the slot's pages, spread over the two slots in turn.",
        "",
        markdown_table(headers, rows),
        "",
        f"Cut points: every {args.stride}th flash operation (and the last) of every save on {args.target}, every "
        "operation on the host; each cut is tried before the operation, after it and torn (a seeded mix of "
        "old, new and garbage bits), then 16 single-bit flips per save. A restore must give the state "
        "being saved or the last committed one byte for byte; training resumed from restored states must "
        "end equal to the simulator's uninterrupted run.",
    ])
    write_results("checkpoint", {"target": args.target, "saves": args.saves, "stride": args.stride,
                                 "page_size": args.page_size, "runs": runs}, md)


if __name__ == "__main__":
    main()
