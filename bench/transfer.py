"""Transfer to new classes: a float model pre-trained on 5 of the 10 digit classes is imported with
one calibration batch and fine-tuned in integers on all 10 classes with a partial update (bias
only, last layer), beside float PyTorch fine-tuning of the same parameters, with the SRAM the
compiled training step plans for each update mode against a 64 KB device, instructions per
training step on emulated Cortex-M0 and Cortex-M4 and the RAM of the linked ELF.

    .venv/bin/python bench/transfer.py

Choices: the output layer has 10 rows from the start; pre-training sees only classes 0-4 and the
rows of classes 5-9 are then set to zero (weights and bias), so every new class starts at logit 0.
Integer fine-tuning: batch 1 (as on a device), the aligned rule, stochastic rounding, lr 0.05 with
the fine-tuning rule's decay (``tintin.train.finetune_lr_schedule``: 2 epochs, the second at 0.01)
and its width rule (``tintin.train.widen_finetuned_layers``: a partial update such as ``last:1``
trains its layers' weights as int16 masters; ``--no-wide-rule`` keeps them int8).
Float fine-tuning: the pre-trained float model, the same parameters frozen, plain SGD at batch 1,
the same rates, epochs and sample order. SRAM: the greedy arena of one training step at batch 1
(``tintin.compile.analyze``, what ``tintin plan`` reports).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

OLD = 5            # pre-training sees classes 0 .. OLD-1
DEVICE_SRAM = 64 * 1024


def torch_models(torch):
    nn = torch.nn
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    dscnn = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(),      # depthwise
                          nn.Conv2d(8, 16, 1), nn.ReLU(),                          # pointwise
                          nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 16, 10))
    return {"MLP 64-32-10": mlp, "DS-CNN (depthwise-separable)": dscnn}


def pretrain(torch, net, x, y, epochs, seed):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(epochs):
        for idx in torch.randperm(len(x)).split(64):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
            opt.step()
    last = [m for m in net if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():  # the new classes start at logit 0
        last.weight[OLD:] = 0
        last.bias[OLD:] = 0
    net.eval()
    return net


def float_finetune(torch, net, mode, x, y, orders, lr, schedule=()):
    """Plain SGD at batch 1 on the parameters ``mode`` trains (``bias`` / ``last:1`` / ``full``), at
    ``lr`` changed by ``schedule`` (``((from_epoch, lr), ...)``, as ``OptimConfig.lr_schedule``)."""
    from tintin.optim import OptimConfig

    net = copy.deepcopy(net)
    last = [m for m in net if isinstance(m, torch.nn.Linear)][-1]
    for name, p in net.named_parameters():
        p.requires_grad_(mode == "full" or (mode == "bias" and name.endswith("bias")))
    if mode == "last:1":
        for p in last.parameters():
            p.requires_grad_(True)
    opt = torch.optim.SGD([p for p in net.parameters() if p.requires_grad], lr=lr)
    net.train()
    for epoch, order in enumerate(orders):
        for group in opt.param_groups:
            group["lr"] = OptimConfig(lr=lr, lr_schedule=schedule).lr_at(epoch)
        for i in order:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(x[i:i + 1]), y[i:i + 1]).backward()
            opt.step()
    net.eval()
    return net


def float_accuracy(torch, net, x, y):
    with torch.no_grad():
        return float((net(x).argmax(1) == y).float().mean())


def finetuned(imported, mode, wide_rule):
    """``(model, selection, widened layers)``: a copy of ``imported`` with update ``mode`` selected
    and, with ``wide_rule``, the fine-tuning width rule applied."""
    from tintin.compile import apply_update_selection
    from tintin.train import widen_finetuned_layers

    model = copy.deepcopy(imported)
    chosen = apply_update_selection(model, mode)
    return model, chosen, (widen_finetuned_layers(model) if wide_rule else ())


def on_mcu(model, mode, ds, core, steps, seed, work):
    """Instructions per training step (batch 1) of update ``mode`` on an emulated core, bit-exact
    against the simulator, and the RAM the linked ELF holds (.data + .bss, the arena included);
    ``model`` is prepared by :func:`finetuned`."""
    from tintin.optim import OptimConfig
    from tintin.targets import run_on_target, select_samples
    from tintin.train.loop import epoch_order

    import numpy as np

    order = np.concatenate(list(epoch_order(len(ds.x_train), 1, seed)))[:steps]
    x, y, o = select_samples(ds.x_train, ds.y_train, order, steps, 1)
    r = run_on_target(copy.deepcopy(model), core, x_samples=x, y_samples=y, order=o, steps=steps, work_dir=work,
                      update=mode, optim=OptimConfig(lr=0.05), seed=seed, timeout_s=1800)
    return {"core": core, "instructions_per_step": float(r.per_step), "bit_exact": bool(r.bit_exact),
            "elf_data_bytes": int(r.data_bytes), "elf_bss_bytes": int(r.bss_bytes),
            "elf_ram_bytes": int(r.data_bytes + r.bss_bytes), "arena_bytes": r.arena_bytes,
            "elf_fits_64k": bool(r.data_bytes + r.bss_bytes <= DEVICE_SRAM)}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs")
    ap.add_argument("--pretrain-epochs", type=int, default=15)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (pre-training, calibration draw, order)")
    ap.add_argument("--cores", default="cortex-m0,cortex-m4", help="emulated cores for instructions per step "
                                                                    "(empty: none)")
    ap.add_argument("--mcu-steps", type=int, default=4, help="training steps run on each emulated core")
    ap.add_argument("--wide-rule", action=argparse.BooleanOptionalAction, default=True,
                    help="the fine-tuning width rule: int16 masters for the layers a partial update trains")
    ap.add_argument("--name", default="transfer")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from _common import markdown_table, write_results

    from tintin import data, interop
    from tintin.compile.report import analyze
    from tintin.optim import OptimConfig
    from tintin.train import TrainConfig, evaluate, finetune_lr_schedule, fit
    from tintin.train.loop import epoch_order

    t_start = time.perf_counter()
    seeds = [int(v) for v in args.seeds.split(",") if v.strip()]
    schedule = finetune_lr_schedule(args.epochs, args.lr)
    cores = [c for c in args.cores.split(",") if c.strip()]
    ds = data.load("digits")
    xf = torch.tensor(ds.real(ds.x_train), dtype=torch.float32)
    yf = torch.tensor(ds.y_train)
    xtf = torch.tensor(ds.real(ds.x_test), dtype=torch.float32)
    ytf = torch.tensor(ds.y_test)
    old_tr = ds.y_train < OLD
    old_te, new_te = ds.y_test < OLD, ds.y_test >= OLD

    def int_acc(model):
        acc = lambda m: evaluate(model, ds.x_test[m], ds.y_test[m]).accuracy  # noqa: E731
        return acc(np.ones(len(ds.y_test), bool)), acc(old_te), acc(new_te)

    def flt_acc(net):
        return (float_accuracy(torch, net, xtf, ytf), float_accuracy(torch, net, xtf[old_te], ytf[old_te]),
                float_accuracy(torch, net, xtf[new_te], ytf[new_te]))

    import tempfile

    records, mcu = [], []
    for seed in seeds:
        orders = list(epoch_order(len(ds.x_train), args.epochs, seed))
        for name, net in torch_models(torch).items():
            torch.manual_seed(seed)
            for m in net.modules():
                if hasattr(m, "reset_parameters"):
                    m.reset_parameters()
            net = pretrain(torch, net, xf[old_tr], yf[old_tr], args.pretrain_epochs, seed)
            imported = interop.import_model(net, "digits", calib_samples=32, seed=seed).model
            if seed == seeds[0]:
                for mode in ("bias", "last:1", "full"):
                    for core in cores:
                        with tempfile.TemporaryDirectory() as tmp:
                            row = {"model": name, "update": mode,
                                   **on_mcu(finetuned(imported, mode, args.wide_rule)[0], mode, ds, core,
                                            args.mcu_steps, seed, Path(tmp))}
                        mcu.append(row)
                        print(f"  {core} {mode}: {row['instructions_per_step']:,.0f} instructions/step, ELF RAM "
                              f"{row['elf_ram_bytes']:,} B, bit-exact {row['bit_exact']}", flush=True)
            before_int, before_flt = int_acc(imported), flt_acc(net)
            print(f"seed {seed} {name}: imported, before fine-tuning integer {100 * before_int[0]:.1f}% "
                  f"(old {100 * before_int[1]:.1f}%), float {100 * before_flt[0]:.1f}%", flush=True)
            for mode in ("bias", "last:1", "full"):
                model, chosen, widened = finetuned(imported, mode, args.wide_rule)
                trained = sum(p.value.m.size for p in model.parameters() if p.name in chosen)
                arena = analyze(copy.deepcopy(model), mode, 1, suggest=False).plan.arena_bytes
                fit(model, ds.x_train, ds.y_train,
                    TrainConfig(epochs=args.epochs, batch_size=1, seed=seed, eval_each_epoch=False,
                                optim=OptimConfig(lr=args.lr, lr_schedule=schedule)), progress=False)
                after_int = int_acc(model)
                after_flt = flt_acc(float_finetune(torch, net, mode, xf, yf, orders, args.lr, schedule))
                records.append({"seed": seed, "model": name, "update": mode, "trained_parameters": sorted(chosen),
                                "int16_master_layers": list(widened),
                                "trained_values": int(trained),
                                "total_values": int(sum(p.value.m.size for p in model.parameters())),
                                "integer_before": before_int, "float_before": before_flt,
                                "integer_after": after_int, "float_after": after_flt,
                                "sram_arena_bytes": int(arena), "fits_64k": bool(arena <= DEVICE_SRAM)})
                print(f"  {mode:7s} integer {100 * after_int[0]:.1f}% (old {100 * after_int[1]:.1f}, "
                      f"new {100 * after_int[2]:.1f})  float {100 * after_flt[0]:.1f}%  arena {arena:,} B", flush=True)
    def cell(values, fmt="{:.1f}"):
        v = 100 * np.asarray(values)
        return fmt.format(v.mean()) + (f" ± {v.std(ddof=1):.1f}" if len(v) > 1 else "")

    rows, claim = [], []
    for name in torch_models(torch):
        for mode in ("bias", "last:1", "full"):
            rs = [r for r in records if r["model"] == name and r["update"] == mode]
            diff = [r["integer_after"][0] - r["float_after"][0] for r in rs]
            mean_diff = 100 * float(np.mean(diff))
            claim.append(abs(mean_diff) <= 1.0)
            rows.append([name, mode, f"{rs[0]['trained_values']:,} / {rs[0]['total_values']:,}",
                         ", ".join(rs[0].get("int16_master_layers", [])) or "-",
                         cell([r["integer_before"][0] for r in rs]), cell([r["integer_after"][0] for r in rs]),
                         cell([r["integer_after"][1] for r in rs]) + " / " + cell([r["integer_after"][2] for r in rs]),
                         cell([r["float_after"][0] for r in rs]),
                         cell([r["float_after"][1] for r in rs]) + " / " + cell([r["float_after"][2] for r in rs]),
                         f"{mean_diff:+.1f} ({', '.join(f'{100 * d:+.1f}' for d in diff)})",
                         f"{rs[0]['sram_arena_bytes']:,}"])
    mcu_rows = []
    for name in torch_models(torch):
        for mode in ("bias", "last:1", "full"):
            rs = {r["core"]: r for r in mcu if r["model"] == name and r["update"] == mode}
            if not rs:
                continue
            first = next(iter(rs.values()))
            mcu_rows.append([name, mode] + [f"{rs[c]['instructions_per_step']:,.0f}" if c in rs else "-" for c in cores]
                            + [f"{first['elf_data_bytes']:,} + {first['elf_bss_bytes']:,} = {first['elf_ram_bytes']:,}",
                               "yes" if all(r["elf_fits_64k"] for r in rs.values()) else "no",
                               "yes" if all(r["bit_exact"] for r in rs.values()) else "NO"])
    headers = ["model", "update", "trained values", "int16 masters", "int before %", "int after %", "int old / new %",
               "float after %", "float old / new %", "int - float, points (per seed)", "SRAM arena B (batch 1)"]
    held = sum(claim)
    schedule_text = ", ".join(f"{v:g} from epoch {e + 1}" for e, v in schedule) or "nothing (one epoch)"
    md = "\n".join([
        "# Transfer to new classes: import, then fine-tune in integers with a partial update",
        "",
        f"Pre-trained in float (PyTorch, Adam, {args.pretrain_epochs} epochs) on digit classes 0-{OLD - 1} of "
        f"sklearn digits (the output layer has 10 rows; rows {OLD}-9 set to zero after pre-training), imported "
        "with one calibration batch of 32 samples (`tintin.interop.import_model`), then fine-tuned on all 10 "
        f"classes for {args.epochs} epochs at batch 1 (integer: aligned rule, stochastic rounding, lr {args.lr} "
        f"changed by the fine-tuning rule `tintin.train.finetune_lr_schedule` to {schedule_text}; "
        + ("the width rule `tintin.train.widen_finetuned_layers` trains the weights of a partial update's layers "
           "as int16 masters (column int16 masters; one byte more per trained weight, in the arena and the ELF); "
           if args.wide_rule else "every weight stays int8 (`--no-wide-rule`); ")
        + 
        f"float: plain SGD at the same rates, the same parameters frozen, the same sample order). Test accuracy on "
        f"the {len(ds.y_test)} test samples; old = classes 0-{OLD - 1}, new = classes {OLD}-9. "
        f"Seeds {', '.join(map(str, seeds))} (pre-training, calibration draw and sample order): mean ± standard "
        "deviation over seeds. SRAM arena: the greedy arena of one compiled training step at batch 1 "
        "(`tintin plan`).",
        "",
        markdown_table(headers, rows),
        "",
        f"Claim: the integer fine-tuned model is within 1.0 point of float fine-tuning with the same update mode "
        f"(mean over seeds): holds for {held} of {len(claim)} rows.",
        "",
        "## On emulated microcontrollers",
        "",
        f"The imported model of seed {seeds[0]}, {args.mcu_steps} training steps at batch 1 with each update mode, "
        "built by `tintin run` and run in QEMU; every run bit-exact against the simulator (losses, predictions, "
        "final weights). Instructions per training step (mean over the steps). RAM: `.data` + `.bss` of the "
        "linked Cortex-M0 ELF (the arena and every mutable buffer; the trained samples stay in flash), "
        "against 64 KB.",
        "",
        markdown_table(["model", "update"] + [f"{c} instructions / step" for c in cores]
                       + ["ELF RAM B (.data + .bss)", "fits 64 KB", "bit-exact"], mcu_rows) if mcu_rows
        else "(no cores requested)",
        "",
        f"Total run time {time.perf_counter() - t_start:.0f} s.",
    ])
    write_results(args.name, {"epochs": args.epochs, "pretrain_epochs": args.pretrain_epochs, "lr": args.lr,
                              "lr_schedule": [list(e) for e in schedule], "wide_rule": args.wide_rule,
                              "seeds": seeds, "old_classes": list(range(OLD)), "device_sram_bytes": DEVICE_SRAM,
                              "claim_rows_held": held, "claim_rows": len(claim),
                              "records": records, "mcu": mcu}, md)


if __name__ == "__main__":
    main()
