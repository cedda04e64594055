"""Whole training runs on the native backend equal the simulator's: weights, scales, momentum,
history (losses and accuracies) and the rounding stream, for MLP and LeNet-5."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tintin.cli.init_model import select_update
from tintin.data import load
from tintin.nn import QuantConfig, build_model
from tintin.optim import OptimConfig
from tintin.train import TrainConfig, fit, widen_finetuned_layers
from tintin.targets.native import NativeUnsupportedError, backend_fit, fit_native, native_available
from tintin.train.checkpoint import FitCheckpointer, read_training_state

ok, why = native_available()
pytestmark = pytest.mark.skipif(not ok, reason=f"no host C compiler: {why}")


def _state(model):
    return [(p.name, p.value.m.copy(), p.value.scale, None if p.momentum is None else p.momentum.copy())
            for p in model.parameters()]


def _same(a, b) -> bool:
    return all(na == nb and sa == sb and np.array_equal(ma, mb) and
               ((va is None and (vb is None or not vb.any())) or (vb is None and not va.any()) or
                (va is not None and vb is not None and np.array_equal(va, vb)))
               for (na, ma, sa, va), (nb, mb, sb, vb) in zip(a, b))


def _runs(name, ds, n, config, qconf=QuantConfig(), update=None, test=True, wide_rule=False):
    x, y = ds.x_train[:n], ds.y_train[:n]
    xt, yt = (ds.x_test[:200], ds.y_test[:200]) if test else (None, None)
    out = []
    for run in (fit, fit_native):
        m = build_model(name, ds.sample_shape, ds.num_classes, qconf, seed=1, input_exponent=ds.input_exponent)
        if update:
            select_update(m, update)
        if wide_rule:
            assert widen_finetuned_layers(m)
        res = run(m, x, y, config, xt, yt, progress=False)
        out.append((_state(m), [(h.train_loss, h.train_accuracy, h.test_accuracy, h.test_loss) for h in res.history],
                    res.samples))
    return out


@pytest.mark.parametrize("qconf,oconf,update", [
    (QuantConfig(), OptimConfig(lr=0.5), None),
    (QuantConfig(scale_mode="pow2", weight_bits=16), OptimConfig(rounding="pseudo_stochastic", momentum_shift=3), None),
    (QuantConfig(), OptimConfig(rule="niti", rounding="nearest"), None),
    (QuantConfig(), OptimConfig(lr=0.5, lr_schedule=((1, 0.25),)), "last:1"),
])
def test_mlp_training_is_the_simulators(qconf, oconf, update):
    ds = load("digits")  # 1437 samples: every epoch ends with a smaller batch
    config = TrainConfig(epochs=2, batch_size=32, seed=3, optim=oconf)
    (sa, ha, na), (sb, hb, nb) = _runs("mlp", ds, len(ds.x_train), config, qconf, update)
    assert _same(sa, sb) and ha == hb and na == nb


@pytest.mark.parametrize("batch", [32, 5])
def test_lenet5_training_is_the_simulators(batch):
    ds = load("mnist5k")
    config = TrainConfig(epochs=2, batch_size=batch, seed=0, optim=OptimConfig())
    (sa, ha, _), (sb, hb, _) = _runs("lenet5", ds, 133, config, test=False)
    assert _same(sa, sb) and ha == hb


@pytest.mark.parametrize("name,dataset", [("cnn1d", "basicmotions"), ("dscnn", "mnist5k"), ("rescnn", "mnist5k")])
def test_other_zoo_models_train_as_in_the_simulator(name, dataset):
    ds = load(dataset)
    config = TrainConfig(epochs=1, batch_size=16, seed=0, optim=OptimConfig())
    (sa, ha, _), (sb, hb, _) = _runs(name, ds, min(72, len(ds.x_train)), config, test=False)
    assert _same(sa, sb) and ha == hb


@pytest.mark.parametrize("name,update", [("dscnn", "last:1"), ("lenet5", "last:2")])
def test_fine_tuning_width_rule_trains_as_in_the_simulator(name, update):
    # the layers a partial update trains hold int16 masters (tintin.train.widen_finetuned_layers)
    ds = load("mnist5k")
    config = TrainConfig(epochs=2, batch_size=1, seed=4, optim=OptimConfig(lr=0.05, lr_schedule=((1, 0.01),)))
    (sa, ha, _), (sb, hb, _) = _runs(name, ds, 40, config, update=update, test=False, wide_rule=True)
    assert _same(sa, sb) and ha == hb
    assert any(m.dtype == np.int16 for _, m, _, _ in sa)


def test_checkpointed_native_run_saves_the_simulators_state(tmp_path):
    ds = load("digits")
    config = TrainConfig(epochs=2, batch_size=32, seed=0, optim=OptimConfig(lr=0.5), eval_each_epoch=False)
    saved = {}
    for name, run in (("numpy", fit), ("native", fit_native)):
        m = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        path = tmp_path / f"{name}.safetensors"
        run(m, ds.x_train[:400], ds.y_train[:400], config, progress=False,
            checkpointer=FitCheckpointer(path, every=7, catch_sigint=False))
        doc, arrays = read_training_state(path)
        position = doc["state"]["position"]
        for timing in ("epoch_seconds", "train_seconds"):
            position.pop(timing)
        for h in position["history"]:
            h.pop("seconds")
        saved[name] = (doc["state"], arrays)
    (sa, aa), (sb, ab) = saved["numpy"], saved["native"]
    assert sa == sb and sa["stream"]["step"] == 21  # the last multiple of 7 of 2 x 13 steps and sorted(aa) == sorted(ab)
    assert all(np.array_equal(aa[k], ab[k]) for k in aa)


def test_error_feedback_with_momentum_is_refused_or_left_to_the_simulator():
    ds = load("digits")
    m = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
    config = TrainConfig(epochs=1, batch_size=32, optim=OptimConfig(error_feedback=("*",), momentum_shift=2))
    with pytest.raises(NativeUnsupportedError, match="error feedback"):
        fit_native(m, ds.x_train[:64], ds.y_train[:64], config, progress=False)
    run, name = backend_fit(m, config, required=False)
    assert run is fit and name == "numpy"


@pytest.mark.parametrize("bits, batch, layers", [(2, 1, ("*",)), (2, 7, ("*",)), (4, 16, ("fc1",)), (8, 5, ("fc2",))])
def test_error_feedback_trains_natively_bit_for_bit(bits, batch, layers):
    """The C update with the packed plane; a last short batch of each epoch runs in the simulator
    between state transfers (the remainders go out and come back)."""
    ds = load("digits")
    config = TrainConfig(epochs=2, batch_size=batch, seed=1,
                         optim=OptimConfig(lr=0.25, error_feedback=layers, feedback_bits=bits))
    a, b = (build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
            for _ in range(2))
    n = 300 + (batch > 1)  # a short last batch
    ra = fit_native(a, ds.x_train[:n], ds.y_train[:n], config, ds.x_test[:100], ds.y_test[:100], progress=False)
    rb = fit(b, ds.x_train[:n], ds.y_train[:n], config, ds.x_test[:100], ds.y_test[:100], progress=False)
    assert [vars(h) | {"seconds": 0} for h in ra.history] == [vars(h) | {"seconds": 0} for h in rb.history]
    for p, q in zip(a.parameters(), b.parameters()):
        assert p.value.scale == q.value.scale and np.array_equal(p.value.m, q.value.m)
        assert (p.remainder is None) == (q.remainder is None)
        if q.remainder is not None:
            assert np.array_equal(p.remainder, q.remainder) and p.feedback_bits == q.feedback_bits == bits
    assert any(q.remainder is not None and q.remainder.any() for q in b.parameters())
    assert backend_fit(a, config, required=True)[1] == "native"


def test_portable_build_gives_the_same_bits(monkeypatch):
    ds = load("mnist5k")
    config = TrainConfig(epochs=1, batch_size=16, seed=2, optim=OptimConfig())
    runs = []
    for simd in ("1", "0"):
        monkeypatch.setenv("TINTIN_NATIVE_SIMD", simd)
        m = build_model("mlp", ds.sample_shape, ds.num_classes, seed=0, input_exponent=ds.input_exponent)
        fit_native(m, ds.x_train[:96], ds.y_train[:96], config, progress=False)
        runs.append(_state(m))
    assert _same(*runs)


def _cli(args, env=None, cwd=None):
    src = os.path.join(os.path.dirname(__file__), "..", "..", "src")
    e = dict(os.environ, PYTHONPATH=os.path.abspath(src), **(env or {}))
    code = "import sys; from tintin.cli.app import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=e,
                          cwd=cwd, timeout=600)


def test_cli_native_backend_trains_the_same_model(tmp_path):
    common = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--json", "--quiet"]
    a = _cli([*common, "--backend", "native", "--out", str(tmp_path / "a")])
    b = _cli([*common, "--backend", "numpy", "--out", str(tmp_path / "b")])
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    ja, jb = json.loads(a.stdout), json.loads(b.stdout)
    assert ja["update_backend"] == "native" and jb["update_backend"] == "numpy"
    assert ja["test_accuracy"] == jb["test_accuracy"] and ja["samples_per_second"] > 0
    from safetensors.numpy import load_file

    ma, mb = load_file(tmp_path / "a" / "model.safetensors"), load_file(tmp_path / "b" / "model.safetensors")
    assert sorted(ma) == sorted(mb) and all(np.array_equal(ma[k], mb[k]) for k in ma)


def test_cli_native_without_a_compiler_is_one_error_line(tmp_path):
    r = _cli(["train", "--dataset", "digits", "--epochs", "1", "--backend", "native", "--out", str(tmp_path / "o")],
             env={"CC": "no-such-compiler-tintin"})
    assert r.returncode != 0 and "Traceback" not in r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "C compiler" in lines[0]
    assert not (tmp_path / "o" / "model.safetensors").exists()


def test_cli_default_backend_is_auto_and_says_which(tmp_path):
    common = ["train", "--dataset", "digits", "--model", "mlp", "--epochs", "1"]
    r = _cli([*common, "--json", "--quiet", "--out", str(tmp_path / "j")])
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["update_backend"] == "native" and d["backend_note"].startswith("native: ")
    r = _cli([*common, "--out", str(tmp_path / "p")])
    assert r.returncode == 0, r.stderr
    first = r.stderr.splitlines()[0]
    assert first.startswith("backend: native: ") and "program ready in" in first


@pytest.mark.parametrize("cc,why", [("no-such-compiler-tintin", "C compiler"), ("false", "")])
def test_cli_auto_trains_in_the_simulator_where_native_does_not_build(tmp_path, cc, why):
    r = _cli(["train", "--dataset", "digits", "--epochs", "1", "--json", "--quiet", "--out", str(tmp_path / "o")],
             env={"CC": cc})
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["update_backend"] == "numpy" and d["backend_note"].startswith("numpy: ") and why in d["backend_note"]
    assert (tmp_path / "o" / "model.safetensors").exists()
    r = _cli(["train", "--dataset", "digits", "--epochs", "1", "--backend", "native", "--out", str(tmp_path / "n")],
             env={"CC": cc})
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert r.returncode != 0 and len(lines) == 1 and lines[0].startswith("error:")
