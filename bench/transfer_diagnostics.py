"""Why an integer last-layer fine-tune trails float: the trained layer's updates, its weights' bits,
the accuracy during the run, and whether the frozen integer features or the integer update cost
the points. One row of the transfer bench (``bench/transfer.py``), by default the DS-CNN with
``last:1``, with the weights int8 and with the fine-tuning width rule (int16 masters).

    .venv/bin/python bench/transfer_diagnostics.py

Per seed (the transfer bench's pre-training, import and sample order):

* float: PyTorch plain SGD of the last layer on the float model's features (as the bench);
* integer features + float head: the same float SGD of the last layer on the features the imported
  integer model computes (batch 1, dequantised): what the forward quantisation of the frozen layers
  costs;
* integer int8 / integer int16 masters: ``fit`` of the imported model with ``last:1``, weights int8
  or widened by ``tintin.train.widen_finetuned_layers``. Update sizes are ``|g * M / 2**n|`` of the
  trained weight in units of its int8 step (the master's step times 256 for the int16 masters), over
  the elements whose gradient is non-zero; "rounded to zero" counts those whose update was 0.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

CHECK_EVERY = 240  # steps between test-accuracy checkpoints


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="DS-CNN (depthwise-separable)")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--name", default="transfer_diagnostics")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from _common import markdown_table, write_results
    from transfer import OLD, pretrain, torch_models

    from tintin import data, interop
    from tintin.compile import apply_update_selection
    from tintin.nn import Context
    from tintin.numerics import QTensor, RoundingStream, Scale
    from tintin.optim import IntegerSGD, OptimConfig
    from tintin.train import evaluate, finetune_lr_schedule, widen_finetuned_layers
    from tintin.train.loop import epoch_order
    from tintin.train.step import train_step

    t_start = time.perf_counter()
    ds = data.load("digits")
    xf = torch.tensor(ds.real(ds.x_train), dtype=torch.float32)
    yf = torch.tensor(ds.y_train)
    xtf = torch.tensor(ds.real(ds.x_test), dtype=torch.float32)
    ytf = torch.tensor(ds.y_test)
    schedule = finetune_lr_schedule(args.epochs, args.lr)
    lr_at = OptimConfig(lr=args.lr, lr_schedule=schedule).lr_at

    def int_features(model, x):
        ctx = Context(mode=model.config.scale_mode, training=False)
        out = []
        for i in range(len(x)):  # batch 1: the activation scales a device picks
            h = QTensor(x[i:i + 1], Scale(model.input_exponent))
            for layer in model.layers[:-1]:
                h = layer.forward(h, ctx)
            out.append(h.m.astype(np.float64) * h.scale.to_float())
        return torch.tensor(np.concatenate(out).reshape(len(x), -1), dtype=torch.float32)

    def float_head(net, orders, f_train, f_test):
        head = copy.deepcopy([m for m in net if isinstance(m, torch.nn.Linear)][-1])
        opt = torch.optim.SGD(head.parameters(), lr=args.lr)
        per_epoch, curve, step = [], [], 0
        acc = lambda: float((head(f_test).argmax(1) == ytf).float().mean())  # noqa: E731
        for epoch, order in enumerate(orders):
            for group in opt.param_groups:
                group["lr"] = lr_at(epoch)
            for i in order:
                opt.zero_grad()
                torch.nn.functional.cross_entropy(head(f_train[i:i + 1]), yf[i:i + 1]).backward()
                opt.step()
                step += 1
                if step % CHECK_EVERY == 0:
                    with torch.no_grad():
                        curve.append(acc())
            with torch.no_grad():
                per_epoch.append(acc())
        return {"per_epoch": per_epoch, "curve": curve}

    def int_run(imported, orders, seed, wide):
        model = copy.deepcopy(imported)
        apply_update_selection(model, "last:1")
        widened = widen_finetuned_layers(model) if wide else ()
        w = model.layers[-1].weight
        unit = 2.0 ** -8 if w.bits == 16 else 1.0  # sizes in int8 steps
        opt = IntegerSGD(model.parameters(), OptimConfig(lr=args.lr, lr_schedule=schedule), model.config.scale_mode)
        ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
        seen = {}
        exact_delta = opt.aligned_delta

        def recording(g, mult, key, momentum=None):
            delta, v = exact_delta(g, mult, key, momentum)
            if g.shape == w.value.m.shape:
                m, n = mult
                seen.setdefault("size", []).append(np.abs(g.astype(np.float64) * m / 2.0 ** n).ravel() * unit)
                seen.setdefault("delta", []).append(np.asarray(delta).ravel())
            return delta, v

        opt.aligned_delta = recording
        epochs, curve, step = [], [], 0
        for epoch, order in enumerate(orders):
            opt.set_epoch(epoch)
            seen.clear()
            for i in order:
                train_step(model, opt, ds.x_train[i:i + 1], ds.y_train[i:i + 1], ctx)
                step += 1
                if step % CHECK_EVERY == 0:
                    curve.append(evaluate(model, ds.x_test, ds.y_test).accuracy)
            size, delta = np.concatenate(seen["size"]), np.concatenate(seen["delta"])
            live = size > 0
            epochs.append({"accuracy": evaluate(model, ds.x_test, ds.y_test).accuracy,
                           "median_update_int8_steps": float(np.median(size[live])),
                           "p90_update_int8_steps": float(np.percentile(size[live], 90)),
                           "rounded_to_zero": float((delta[live] == 0).mean())})
        view = w.forward_view(model.config.scale_mode)
        return {"int16_master_layers": list(widened), "epochs": epochs, "curve": curve,
                "row_bits_end": [int(v).bit_length() for v in np.abs(view.m.astype(np.int64)).max(1)],
                "int8_scale_end": str(view.scale), "accuracy_batch1": evaluate(model, ds.x_test, ds.y_test,
                                                                               batch_size=1).accuracy}

    records = []
    for seed in [int(v) for v in args.seeds.split(",") if v.strip()]:
        net = torch_models(torch)[args.model]
        torch.manual_seed(seed)
        for m in net.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
        net = pretrain(torch, net, xf[ds.y_train < OLD], yf[ds.y_train < OLD], 15, seed)
        imported = interop.import_model(net, "digits", calib_samples=32, seed=seed).model
        orders = list(epoch_order(len(ds.x_train), args.epochs, seed))
        body = torch.nn.Sequential(*list(net)[:-1]).eval()
        with torch.no_grad():
            f_train, f_test = body(xf), body(xtf)
        flt = float_head(net, orders, f_train, f_test)
        mixed = float_head(net, orders, int_features(imported, ds.x_train), int_features(imported, ds.x_test))
        w0 = imported.layers[-1].weight.value
        rec = {"seed": seed, "int8_scale_start": str(w0.scale),
               "row_bits_start": [int(v).bit_length() for v in np.abs(w0.m.astype(np.int64)).max(1)],
               "float": flt, "int_features_float_head": mixed,
               "int8": int_run(imported, orders, seed, False), "int16_masters": int_run(imported, orders, seed, True)}
        records.append(rec)
        print(f"seed {seed}: float {100 * flt['per_epoch'][-1]:.1f}%, integer features + float head "
              f"{100 * mixed['per_epoch'][-1]:.1f}%, integer int8 {100 * rec['int8']['epochs'][-1]['accuracy']:.1f}%, "
              f"int16 masters {100 * rec['int16_masters']['epochs'][-1]['accuracy']:.1f}%", flush=True)

    def mean(values):
        return f"{100 * float(np.mean(values)):.1f}"

    def final(r, key):
        return r[key]["per_epoch"][-1] if "per_epoch" in r[key] else r[key]["epochs"][-1]["accuracy"]

    def gap(key):
        return f"{100 * float(np.mean([final(r, key) - final(r, 'float') for r in records])):+.1f}"

    rows = []
    for e in range(args.epochs):
        for label, get in (("float", lambda r: r["float"]["per_epoch"][e]),
                           ("integer features + float head", lambda r: r["int_features_float_head"]["per_epoch"][e]),
                           ("integer, int8 weights", lambda r: r["int8"]["epochs"][e]["accuracy"]),
                           ("integer, int16 masters (width rule)", lambda r: r["int16_masters"]["epochs"][e]["accuracy"])):
            per = [get(r) for r in records]
            rows.append([e + 1, f"{lr_at(e):g}", label, mean(per), ", ".join(f"{100 * v:.1f}" for v in per)])
    upd = []
    for key, label in (("int8", "int8 weights"), ("int16_masters", "int16 masters")):
        for e in range(args.epochs):
            ep = [r[key]["epochs"][e] for r in records]
            upd.append([label, e + 1, f"{lr_at(e):g}",
                        ", ".join(f"{v['median_update_int8_steps']:.3f}" for v in ep),
                        ", ".join(f"{v['p90_update_int8_steps']:.2f}" for v in ep),
                        ", ".join(f"{100 * v['rounded_to_zero']:.0f}" for v in ep)])
    bits = [[r["seed"], r["int8_scale_start"], " ".join(map(str, r["row_bits_start"])), r["int8"]["int8_scale_end"],
             " ".join(map(str, r["int8"]["row_bits_end"]))] for r in records]
    md = "\n".join([
        f"# Transfer diagnostics: {args.model}, update last:1",
        "",
        f"The transfer bench's row (`bench/transfer.py`: pre-trained on digit classes 0-{OLD - 1}, imported with one "
        f"batch, the last layer fine-tuned on all 10 classes, {args.epochs} epochs at batch 1, lr {args.lr} with the "
        f"fine-tuning rule's decay). Seeds {args.seeds}; per seed in the order given. Test accuracy on "
        f"{len(ds.y_test)} samples at the bench's evaluation batch (256).",
        "",
        "## Accuracy at the end of each epoch",
        "",
        markdown_table(["epoch", "lr", "run", "test % (mean)", "per seed"], rows),
        "",
        "Integer features + float head: the float SGD of the last layer on the integer model's frozen features "
        f"(batch 1, dequantised); after the last epoch, mean over seeds minus float: {gap('int_features_float_head')} "
        f"points (the forward quantisation of the frozen layers); integer int8 weights minus float: {gap('int8')}; "
        f"int16 masters minus float: {gap('int16_masters')}.",
        "",
        "## The trained layer's updates (elements with a non-zero gradient)",
        "",
        markdown_table(["weights", "epoch", "lr", "median |update|, int8 steps (per seed)",
                        "90th percentile, int8 steps", "rounded to zero %"], upd),
        "",
        "## Bits of the trained layer's rows (`bitlen(max |w_row|)`, classes 0-9) and its int8 scale",
        "",
        markdown_table(["seed", "scale at import", "row bits at import", "scale after (int8 run)",
                        "row bits after (int8 run)"], bits),
        "",
        "Test accuracy every 240 steps (the curves) and the batch-1 accuracies are in the .json.",
        "",
        f"Total run time {time.perf_counter() - t_start:.0f} s.",
    ])
    write_results(args.name, {"model": args.model, "epochs": args.epochs, "lr": args.lr,
                              "lr_schedule": [list(e) for e in schedule], "records": records}, md)


if __name__ == "__main__":
    main()
