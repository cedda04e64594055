"""Meta-learning on the bearing fleet in float32: which meta-learner beats FedAvg-init, and why.

A float32 PyTorch study of the workload's own network (the ``bearing-fleet`` MLP 64-64-4 on the
int8 envelope spectra read as reals), to separate what meta-learning can gain on this fleet from
what the integer fleet's server rule gets of it. Every method trains on the same 50 training
devices of ``get_workload("bearing-fleet", devices=50, seed=0)``; the unseen test devices are
bench/fleet_adapt.py's (``unseen(N)``, the first ``--unseen`` of them), the validation devices
bench/fleet_adapt_tune.py's (``validation(40)``). Initial models:

- ``pooled``: SGD on every training sample at once (batch 8, lr 0.05, 60 epochs): the centralised
  bound of FedAvg (FedAvg with many local steps approaches it);
- ``reptile``: Reptile (20 steps at batch 1, lr 0.1, on a fresh draw of 10 samples of one device per
  iteration; meta step 1 annealed linearly; 6,000 iterations): the rule of the integer fleet's
  ``reptile`` strategy;
- ``fomaml-sgd``: federated first-order MAML with the integer fleet's server rule: 4 devices per
  round each take 5 steps at batch 10 (lr 0.5) on a draw of K = 10 support samples, then 5 steps
  at batch 10 (lr 0.5) on their other 54 samples (the query draw), and the server adds ``eps``
  times the mean query-step displacement (eps 1 annealed linearly; 4,000 rounds): what
  ``tintin fleet --strategy fomaml --shots 10 --query-shots 54 -b 10 --local-steps 5
  --query-steps 5 --meta-lr 1 --meta-anneal`` does in integers;
- ``fomaml-adam``: the same device step; the server treats the mean displacement as a gradient and
  steps with Adam (lr 1e-3; 6,000 rounds), FedAdam's server optimiser;
- ``maml``: second-order MAML (5 full-batch inner steps at lr 0.5 on the 10 support samples,
  the loss on the other 54 samples, Adam lr 1e-3 over 4 devices per iteration; 6,000
  iterations): the ceiling of this family;
- ``reptile-device``: federated Reptile on ``fomaml-sgd``'s schedule with whole-device inner loops:
  the same rounds, 4 devices per round, 10 steps at batch 10 (lr 0.5) and meta step eps annealed,
  each device's steps on all of its samples and the server adding eps times the mean whole
  displacement (rule 11 of bench/fleet_adapt_tune.py in integers). What FOMAML gains over it is
  its support/query split's, not the schedule's.

Adaptation is the integer protocol: K = 10 samples, 8 passes at batch 1, plain SGD; its learning
rate is chosen per initial model on the validation devices from {0.05, 0.1, 0.2}, then every
unseen device adapts on 5 seeded draws of K samples. Seeds vary the initialisation, the device
order and the draws; the fleet itself is fixed. The paired interval is bench/fleet_adapt.py's
(bootstrap over devices and seeds).

    .venv/bin/python bench/fleet_meta_float.py --seeds 0,1,2,3,4 --processes 2
    .venv/bin/python bench/fleet_meta_float.py --seeds 0,1,2,3,4,5,6,7,8,9 --processes 1 --unseen 100 \
        --methods pooled,reptile,fomaml-sgd,maml,reptile-device --name fleet_meta_float_control
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

#: new methods go last: a method's random stream is seeded by its index here
METHODS = ("pooled", "reptile", "fomaml-sgd", "fomaml-adam", "maml", "reptile-device")
#: what runs without --methods: the methods of the first study (its committed command reproduces it)
DEFAULT_METHODS = METHODS[:5]
K = 10
PASSES = 8
ADAPT_LRS = (0.05, 0.1, 0.2)
DRAWS = 5
TRAIN_DEVICES, VALIDATION = 50, 40
SUPPORT_STEPS, QUERY_STEPS, DEVICE_BATCH, DEVICE_LR = 5, 5, 10, 0.5


def _data(unseen: int):
    import numpy as np
    import torch

    from tintin.fleet.workloads import get_workload

    fleet = get_workload("bearing-fleet", devices=TRAIN_DEVICES, seed=0)
    scale = 2.0 ** fleet.input_exponent

    def real(x):
        return torch.tensor(np.asarray(x, dtype=np.float32) * scale)

    def devices(source, test: bool):
        out = []
        for i in range(source.num_devices):
            x, y = source.device_train(i)
            item = [real(x), torch.tensor(np.asarray(y))]
            if test:
                xt, yt = source.device_test(i)
                item += [real(xt), torch.tensor(np.asarray(yt))]
            out.append(tuple(item))
        return out

    return devices(fleet, False), devices(fleet.validation(VALIDATION), True), devices(fleet.unseen(unseen), True)


def _forward(p, x):
    import torch.nn.functional as F

    return F.linear(F.relu(F.linear(x, p["w1"], p["b1"])), p["w2"], p["b2"])


def _init(seed: int) -> dict:
    import torch

    torch.manual_seed(seed)
    l1, l2 = torch.nn.Linear(64, 64), torch.nn.Linear(64, 4)
    return {"w1": l1.weight.detach().clone(), "b1": l1.bias.detach().clone(),
            "w2": l2.weight.detach().clone(), "b2": l2.bias.detach().clone()}


def _leaf(p: dict) -> dict:
    return {k: v.detach().clone().requires_grad_() for k, v in p.items()}


def _sgd_steps(q: dict, x, y, idx, steps: int, lr: float, rng) -> None:
    """``steps`` SGD steps on batches of ``DEVICE_BATCH`` drawn without replacement from ``idx``."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.SGD(q.values(), lr=lr)
    for _ in range(steps):
        b = idx[torch.as_tensor(rng.permutation(len(idx))[:DEVICE_BATCH])]
        opt.zero_grad()
        F.cross_entropy(_forward(q, x[b]), y[b]).backward()
        opt.step()


def train(method: str, seed: int, train_devices, scale: float = 1.0) -> dict:
    import numpy as np
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng([seed, METHODS.index(method)])
    p = _init(seed)
    if method == "pooled":
        q = _leaf(p)
        x = torch.cat([d[0] for d in train_devices])
        y = torch.cat([d[1] for d in train_devices])
        opt = torch.optim.SGD(q.values(), lr=0.05)
        for _ in range(max(1, int(60 * scale))):
            perm = torch.as_tensor(rng.permutation(len(x)))
            for i in range(0, len(x), 8):
                b = perm[i:i + 8]
                opt.zero_grad()
                F.cross_entropy(_forward(q, x[b]), y[b]).backward()
                opt.step()
        return {k: v.detach() for k, v in q.items()}
    if method == "reptile":
        iters = max(1, int(6000 * scale))
        for it in range(iters):
            x, y = train_devices[rng.integers(len(train_devices))]
            s = torch.as_tensor(rng.permutation(len(x))[:K])
            q = _leaf(p)
            opt = torch.optim.SGD(q.values(), lr=0.1)
            for _ in range(20):
                j = s[rng.integers(K)].reshape(1)
                opt.zero_grad()
                F.cross_entropy(_forward(q, x[j]), y[j]).backward()
                opt.step()
            eps = 1.0 - it / iters
            p = {k: p[k] + eps * (q[k].detach() - p[k]) for k in p}
        return p
    if method in ("fomaml-sgd", "fomaml-adam", "reptile-device"):
        rounds = max(1, int((6000 if method == "fomaml-adam" else 4000) * scale))
        server = None
        if method == "fomaml-adam":
            p = _leaf(p)
            server = torch.optim.Adam(p.values(), lr=1e-3)
        for r in range(rounds):
            mean = {k: torch.zeros_like(v) for k, v in p.items()}
            for d in rng.permutation(len(train_devices))[:4]:
                x, y = train_devices[d]
                perm = torch.as_tensor(rng.permutation(len(x)))
                q = _leaf(p)
                if method == "reptile-device":
                    _sgd_steps(q, x, y, perm, SUPPORT_STEPS + QUERY_STEPS, DEVICE_LR, rng)
                    for k in mean:
                        mean[k] += (q[k].detach() - p[k].detach()) / 4
                    continue
                _sgd_steps(q, x, y, perm[:K], SUPPORT_STEPS, DEVICE_LR, rng)
                adapted = {k: v.detach().clone() for k, v in q.items()}
                _sgd_steps(q, x, y, perm[K:], QUERY_STEPS, DEVICE_LR, rng)
                for k in mean:
                    mean[k] += (q[k].detach() - adapted[k]) / 4
            if server is None:
                eps = 1.0 - r / rounds
                p = {k: p[k] + eps * mean[k] for k in p}
            else:
                server.zero_grad()
                for k in p:
                    p[k].grad = -mean[k]
                server.step()
        return {k: v.detach() for k, v in p.items()}
    if method == "maml":
        p = _leaf(p)
        opt = torch.optim.Adam(p.values(), lr=1e-3)
        for _ in range(max(1, int(6000 * scale))):
            opt.zero_grad()
            for d in rng.integers(0, len(train_devices), 4):
                x, y = train_devices[d]
                perm = torch.as_tensor(rng.permutation(len(x)))
                s, qi = perm[:K], perm[K:]
                q = dict(p)
                for _ in range(SUPPORT_STEPS):
                    grads = torch.autograd.grad(F.cross_entropy(_forward(q, x[s]), y[s]), list(q.values()),
                                                create_graph=True)
                    q = {k: v - DEVICE_LR * g for (k, v), g in zip(q.items(), grads)}
                (F.cross_entropy(_forward(q, x[qi]), y[qi]) / 4).backward()
            opt.step()
        return {k: v.detach() for k, v in p.items()}
    raise ValueError(method)


def adapt_scores(p: dict, devices, lr: float, seed: int, draws: int):
    """Accuracy (%) per device after adapting on K samples (mean over ``draws`` seeded draws)."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    out = []
    for i, (x, y, xt, yt) in enumerate(devices):
        accs = []
        for draw in range(draws):
            g = np.random.default_rng([seed, i, draw, 7])
            idx = torch.as_tensor(g.permutation(len(x))[:K])
            q = _leaf(p)
            opt = torch.optim.SGD(q.values(), lr=lr)
            for _ in range(PASSES):
                for j in idx[torch.as_tensor(g.permutation(K))]:
                    opt.zero_grad()
                    F.cross_entropy(_forward(q, x[j:j + 1]), y[j:j + 1]).backward()
                    opt.step()
            with torch.no_grad():
                accs.append(float((_forward(q, xt).argmax(1) == yt).float().mean()))
        out.append(100.0 * float(np.mean(accs)))
    return out


def run_seed(job: tuple) -> dict:
    seed, scale, unseen_count, methods = job
    import numpy as np
    import torch

    torch.set_num_threads(1)
    train_devices, val, unseen = _data(unseen_count)
    result = {}
    for method in methods:
        t0 = time.time()
        p = train(method, seed, train_devices, scale)
        seconds = time.time() - t0
        val_scores = {lr: float(np.mean(adapt_scores(p, val, lr, seed, 1))) for lr in ADAPT_LRS}
        lr = max(ADAPT_LRS, key=lambda v: (val_scores[v], -v))
        test = adapt_scores(p, unseen, lr, seed, DRAWS)
        result[method] = {"train_seconds": round(seconds, 1), "validation": val_scores, "adapt_lr": lr,
                          "test_per_device": test}
        print(f"seed {seed} {method}: validation {val_scores[lr]:.2f} at lr {lr:g}, test {np.mean(test):.2f} "
              f"({seconds:.0f} s)", flush=True)
    return result


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--name", default="fleet_meta_float")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every iteration count (smoke runs: 0.01)")
    ap.add_argument("--unseen", type=int, default=30, help="unseen test devices (bench/fleet_adapt.py's first N)")
    ap.add_argument("--methods", default=",".join(DEFAULT_METHODS), help="comma-separated, pooled first (the reference)")
    args = ap.parse_args(argv)
    import numpy as np

    from _common import markdown_table, write_results
    from fleet_adapt import paired_difference

    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    if methods[0] != "pooled" or any(m not in METHODS for m in methods):
        raise SystemExit(f"error: --methods: pooled first, then any of {', '.join(METHODS[1:])}")
    with multiprocessing.get_context("spawn").Pool(min(args.processes, len(seeds))) as pool:
        runs = pool.map(run_seed, [(s, args.scale, args.unseen, methods) for s in seeds])
    per = {m: np.array([r[m]["test_per_device"] for r in runs]) for m in methods}
    control = "reptile-device" if "reptile-device" in methods else None
    rows = []
    for m in methods:
        means = per[m].mean(axis=1)
        diff = paired_difference(per[m], per["pooled"]) if m != "pooled" else None
        vs = (paired_difference(per[m], per[control]) if control and m not in ("pooled", control) else None)
        rows.append([m, f"{means.mean():.2f} ± {means.std():.2f}", ", ".join(f"{v:.2f}" for v in means),
                     ", ".join(f"{r[m]['adapt_lr']:g}" for r in runs),
                     "-" if diff is None else f"{diff['mean']:+.2f} [{diff['low']:+.2f}, {diff['high']:+.2f}]",
                     "-" if diff is None else f"{diff['above']} / {diff['level']} / {diff['below']}",
                     *([] if control is None else
                       ["-" if vs is None else f"{vs['mean']:+.2f} [{vs['low']:+.2f}, {vs['high']:+.2f}]"]),
                     f"{np.mean([r[m]['train_seconds'] for r in runs]):.0f}"])
    table = markdown_table(["initial model", f"test accuracy (%) at K = {K}, mean ± std over seeds", "per seed",
                            "adapt lr per seed (validation)", "minus pooled: mean [95% interval]",
                            "devices better / level / worse",
                            *([] if control is None else [f"minus {control}: mean [95% interval]"]),
                            "train s (one thread)"], rows)
    markdown = (f"## Meta-learning on the bearing fleet in float32 (SYNTHETIC): K = {K} on {args.unseen} unseen devices\n\n"
                f"The workload's MLP 64-64-4 in float32 PyTorch; {TRAIN_DEVICES} training devices; adaptation: "
                f"{PASSES} passes at batch 1 over K = {K} samples, lr chosen on {VALIDATION} validation devices, "
                f"{DRAWS} draws per unseen device; seeds {args.seeds}. The methods are the docstring of "
                f"bench/fleet_meta_float.py.\n\n{table}")
    write_results(args.name, {"args": vars(args), "runs": {str(s): r for s, r in zip(seeds, runs)}}, markdown)


if __name__ == "__main__":
    main()
