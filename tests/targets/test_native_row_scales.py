"""The native backend trains models with per-row weight scales as the simulator does, bit for bit:
weights, scales, row exponents and history, for row-scaled MLPs with wide (int16) later layers,
last-layer and sparse updates and a learning-rate schedule, and LeNet-5 with per-channel scales."""

from __future__ import annotations

import numpy as np
import pytest

from tintin.cli.init_model import select_update
from tintin.data import load
from tintin.nn import QuantConfig, build_model
from tintin.optim import OptimConfig
from tintin.train import TrainConfig, fit
from tintin.targets.native import fit_native, native_available

ok, why = native_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}")


def _state(model):
    return [(p.name, p.value.m.copy(), p.value.scale, None if p.row_exp is None else p.row_exp.copy())
            for p in model.parameters()]


def _same(a, b) -> bool:
    return all(na == nb and sa == sb and np.array_equal(ma, mb) and
               ((ea is None and eb is None) or (ea is not None and eb is not None and np.array_equal(ea, eb)))
               for (na, ma, sa, ea), (nb, mb, sb, eb) in zip(a, b))


def _runs(ds, n, config, qconf, hidden=None, update=None, name="mlp"):
    out = []
    for run in (fit, fit_native):
        m = build_model(name, ds.sample_shape, ds.num_classes, qconf, seed=1, input_exponent=ds.input_exponent,
                        **({"hidden": hidden} if hidden else {}))
        if update:
            select_update(m, update)
        res = run(m, ds.x_train[:n], ds.y_train[:n], config, ds.x_test[:100], ds.y_test[:100], progress=False)
        out.append((_state(m), [(h.train_loss, h.train_accuracy, h.test_accuracy, h.test_loss) for h in res.history]))
    return out


WIDE = ("fc2", "fc3", "fc4")


@pytest.mark.parametrize("dataset,n,hidden,qconf,oconf,update,batch", [
    ("digits", 1437, None, QuantConfig(row_scales=True), OptimConfig(lr=0.5), None, 32),
    ("mnist5k", 300, (200, 100, 50), QuantConfig(row_scales=True), OptimConfig(lr=0.5, lr_schedule=((1, 0.1),)),
     None, 64),
    ("mnist5k", 300, (200, 100, 50), QuantConfig(row_scales=True, wide_layers=WIDE),
     OptimConfig(lr=0.5, lr_schedule=((1, 0.1),)), None, 16),
    ("mnist5k", 200, (200, 100, 50), QuantConfig(row_scales=True, wide_layers=WIDE),
     OptimConfig(lr=0.5, lr_schedule=((1, 0.25),)), "last:1", 8),
    ("mnist5k", 200, (200, 100, 50), QuantConfig(row_scales=True), OptimConfig(lr=0.5), "last:2", 8),
    ("digits", 400, (32, 16), QuantConfig(row_scales=True, scale_mode="pow2"),
     OptimConfig(lr=1.0, rounding="pseudo_stochastic"), "sparse:fc1[0:8],fc3", 7),
])
def test_row_scaled_training_is_the_simulators(dataset, n, hidden, qconf, oconf, update, batch):
    ds = load(dataset)  # sample counts that leave a smaller last batch: it runs in the simulator
    config = TrainConfig(epochs=2, batch_size=batch, seed=3, optim=oconf)
    (sa, ha), (sb, hb) = _runs(ds, n, config, qconf, hidden, update)
    assert _same(sa, sb) and ha == hb
    moved = [not np.array_equal(e0, e1) for (_, _, _, e0), (_, _, _, e1) in zip(sa, _runs_initial(ds, qconf, hidden))
             if e0 is not None]
    assert update is not None or any(moved)  # the exponents changed during training


def _runs_initial(ds, qconf, hidden, name="mlp"):
    m = build_model(name, ds.sample_shape, ds.num_classes, qconf, seed=1, input_exponent=ds.input_exponent,
                    **({"hidden": hidden} if hidden else {}))
    return _state(m)


@pytest.mark.parametrize("batch,update", [(16, None), (5, "sparse:conv2[0:6],fc3")])
def test_row_scaled_lenet5_training_is_the_simulators(batch, update):
    ds = load("mnist5k")
    qconf = QuantConfig(row_scales=True)
    config = TrainConfig(epochs=2, batch_size=batch, seed=0, optim=OptimConfig(lr=2.0))
    (sa, ha), (sb, hb) = _runs(ds, 90, config, qconf, update=update, name="lenet5")
    assert _same(sa, sb) and ha == hb
    before = {name: e for name, _, _, e in _runs_initial(ds, qconf, None, "lenet5")}
    moved = any(e is not None and not np.array_equal(e, before[name]) for name, _, _, e in sa if "conv" in name)
    assert moved == (update is None)  # selected rows saturate and keep their exponents


def test_cli_row_scales_on_the_native_backend(tmp_path, capsys):
    """``tintin train --row-scales --backend native`` trains the simulator's model (row exponents in the file)."""
    import json

    from safetensors.numpy import load_file

    from tintin.cli import main

    common = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--row-scales", "--json", "--quiet"]
    outs = []
    for backend in ("native", "numpy"):
        code = main([*common, "--backend", backend, "--out", str(tmp_path / backend)])
        out, err = capsys.readouterr()
        assert code == 0, err
        outs.append(json.loads(out))
    assert outs[0]["update_backend"] == "native" and outs[0]["test_accuracy"] == outs[1]["test_accuracy"]
    ma, mb = (load_file(tmp_path / b / "model.safetensors") for b in ("native", "numpy"))
    assert sorted(ma) == sorted(mb) and any("row_exp" in k for k in ma)
    assert all(np.array_equal(ma[k], mb[k]) for k in ma)
