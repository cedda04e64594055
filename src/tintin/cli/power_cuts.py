"""``tintin run MODEL --power-cuts N``: the power-cut sweep of the C checkpoints on a target
(:func:`tintin.targets.power_cuts.run_power_cuts`), reported as a table or JSON."""

from __future__ import annotations

from .app import CliError
from .common import err_console, out_console, print_json

#: cut every operation on the host; every DEFAULT_MCU_STRIDE-th (and the last) on an emulator
DEFAULT_MCU_STRIDE = 4


def run_power_cut_sweep(model, ds, tgt, *, saves: int, every: int, stride: int | None, update, batch_size: int,
                        optim, options, seed: int, work, timeout: float, opt_flag: str, as_json: bool,
                        source: str) -> None:
    """Run the sweep, print it, exit 2 when a restore was corrupt, a commit lost or a resume inexact."""
    from ..targets.power_cuts import run_power_cuts

    stride = stride if stride is not None else (1 if tgt.family == "host" else DEFAULT_MCU_STRIDE)
    if not as_json and err_console.is_terminal:
        err_console.print(f"power-cut sweep of {model.name} on {tgt.name}: {saves} saves, every {stride} "
                          "operation(s) cut before, after and torn ...")
    r = run_power_cuts(model, ds, target=tgt.name, saves=saves, every=every, stride=stride, update=update,
                       batch_size=batch_size, optim=optim, options=options, seed=seed, work_dir=work,
                       timeout_s=timeout, opt=opt_flag)
    result = {"target": r.target, "machine": r.machine, "model": r.model, "source": source, "dataset": ds.name,
              "update": r.update, "saves": r.saves, "steps": r.steps, "cut_stride": r.stride,
              "cut_points": r.cut_points, "corrupt_restores": r.corrupt_restores, "lost_commits": r.lost_commits,
              "resume_bit_exact": r.resume_bit_exact, "final_bit_exact": r.final_bit_exact,
              "restores_new": r.restores_new, "restores_previous": r.restores_previous,
              "restores_none": r.restores_none, "resumes": r.resumes, "bit_flips": r.bit_flips,
              "bit_flip_corrupt": r.bit_flip_corrupt, "bit_flip_lost": r.bit_flip_lost,
              "state_bytes": r.payload_bytes, "slot_bytes": r.slot_bytes, "slots": r.slots,
              "flash_bytes": r.region_bytes, "page_size": r.page_size, "write_align": r.write_align,
              "flash_operations_per_save": r.operations_per_save, "page_erases_per_save": r.page_erases_per_save,
              "bytes_programmed_per_save": r.bytes_programmed_per_save,
              "instructions_per_save": r.instructions_per_save,
              "instructions_per_restore": r.instructions_per_restore, "mismatches": r.mismatches,
              "seconds": r.seconds}
    if as_json:
        print_json(result)
    else:
        from rich.table import Table

        t = Table(title=f"{r.model} on {r.machine}: power cuts over {r.saves} checkpoint saves", show_header=False)
        t.add_column("what")
        t.add_column("value", justify="right")
        for key in ("cut_points", "corrupt_restores", "lost_commits", "resume_bit_exact", "restores_new",
                    "restores_previous", "restores_none", "bit_flips", "bit_flip_corrupt", "state_bytes",
                    "slot_bytes", "flash_bytes", "page_erases_per_save", "bytes_programmed_per_save",
                    "instructions_per_save", "instructions_per_restore"):
            v = result[key]
            t.add_row(key.replace("_", " "), "-" if v is None else f"{v:,.0f}" if isinstance(v, float) else str(v))
        out_console.print(t)
    bad = r.corrupt_restores + r.lost_commits + r.bit_flip_corrupt + r.bit_flip_lost
    if bad or not r.resume_bit_exact:
        why = r.mismatches[0] if r.mismatches else f"{bad} corrupt or lost restores"
        raise CliError(f"{tgt.name}: the power-cut sweep failed: {why}", code=2)
