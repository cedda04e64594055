import os
import signal

import numpy as np
import pytest

from tintin.data import load
from tintin.nn import build_model
from tintin.optim import OptimConfig
from tintin.train import TrainConfig, fit
from tintin.train.checkpoint import (CheckpointError, FitCheckpointer, TrainingInterrupted, load_training_state,
                                     save_training_state)


@pytest.fixture(scope="module")
def digits():
    return load("digits")


def bits(model):
    return [(p.name, p.value.m.dtype, p.value.m.tobytes(), p.value.scale.as_tuple(),
             None if p.momentum is None else p.momentum.tobytes()) for p in model.parameters()]


def new_model(ds, seed=2):
    return build_model("mlp", ds.sample_shape, ds.num_classes, seed=seed, input_exponent=ds.input_exponent)


class SigintAt:
    """Progress that sends a real SIGINT to this process at global step ``at``."""

    def __init__(self, at):
        self.at, self.n = at, 0

    def start(self, *a): pass
    def epoch_end(self, *a): pass
    def close(self): pass

    def step(self, *a):
        self.n += 1
        if self.n == self.at:
            os.kill(os.getpid(), signal.SIGINT)


CONFIGS = [
    TrainConfig(epochs=3, batch_size=16, seed=5, eval_each_epoch=True,
                optim=OptimConfig(lr=0.5, lr_schedule=((1, 0.25), (2, 0.1)), momentum_shift=3)),
    TrainConfig(epochs=2, batch_size=7, seed=1, eval_each_epoch=False,
                optim=OptimConfig(rule="niti", mu_schedule=((1, 3),))),
    # error feedback: the int8 remainders are training state too
    TrainConfig(epochs=2, batch_size=16, seed=2, eval_each_epoch=False,
                optim=OptimConfig(lr=0.5, lr_schedule=((1, 0.02),), error_feedback=("fc1",))),
]


@pytest.mark.parametrize("config", CONFIGS)
@pytest.mark.parametrize("stop_at", [1, 17, 25])
def test_interrupted_and_resumed_fit_equals_uninterrupted(digits, tmp_path, config, stop_at):
    x, y = digits.x_train[:400], digits.y_train[:400]
    ref = new_model(digits)
    ref_result = fit(ref, x, y, config, digits.x_test, digits.y_test)

    path = tmp_path / "state.safetensors"
    first = new_model(digits)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(TrainingInterrupted) as info:
        fit(first, x, y, config, digits.x_test, digits.y_test, progress=SigintAt(stop_at),
            checkpointer=FitCheckpointer(path, every=10))
    assert info.value.exit_code == 130 and str(path) in str(info.value)
    assert signal.getsignal(signal.SIGINT) is handler  # the previous handler is back
    assert path.is_file() and not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]

    resumed = new_model(digits, seed=9)  # other initial weights: all of them come from the file
    result = fit(resumed, x, y, config, digits.x_test, digits.y_test, checkpointer=FitCheckpointer(path, resume=True))
    assert bits(resumed) == bits(ref)
    strip = lambda h: [(r.epoch, r.train_loss, r.train_accuracy, r.test_accuracy, r.test_loss) for r in h]
    assert strip(result.history) == strip(ref_result.history)


def test_periodic_checkpoints_do_not_change_the_bits(digits, tmp_path):
    x, y = digits.x_train[:300], digits.y_train[:300]
    config = CONFIGS[0]
    a, b = new_model(digits), new_model(digits)
    fit(a, x, y, config)
    ckpt = FitCheckpointer(tmp_path / "s.safetensors", every=4)
    fit(b, x, y, config, checkpointer=ckpt)
    assert bits(a) == bits(b)
    assert ckpt.saves == (3 * 19) // 4


def test_resume_checks_model_and_settings(digits, tmp_path):
    x, y = digits.x_train[:100], digits.y_train[:100]
    path = tmp_path / "s.safetensors"
    fit(new_model(digits), x, y, CONFIGS[0], checkpointer=FitCheckpointer(path, every=1))
    with pytest.raises(CheckpointError, match="other training settings"):
        fit(new_model(digits), x, y, CONFIGS[1], checkpointer=FitCheckpointer(path, resume=True))
    other = build_model("mlp", digits.sample_shape, digits.num_classes, seed=0, hidden=32,
                        input_exponent=digits.input_exponent)
    with pytest.raises(CheckpointError, match="another model"):
        load_training_state(path, other)


@pytest.mark.parametrize("damage", ["truncate", "garbage", "missing", "model_file"])
def test_bad_state_files_give_one_line_errors(digits, tmp_path, damage):
    model = new_model(digits)
    path = tmp_path / "s.safetensors"
    save_training_state(path, model, {"kind": "fit"})
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "garbage":
        path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}")
    elif damage == "missing":
        path.unlink()
    else:
        from tintin.io import save_model
        save_model(model, path)
    with pytest.raises(CheckpointError) as info:
        load_training_state(path, model)
    assert "\n" not in str(info.value)


def test_state_round_trip_keeps_scales_momentum_and_rows(digits, tmp_path):
    model = new_model(digits)
    fit(model, digits.x_train[:64], digits.y_train[:64],
        TrainConfig(epochs=1, batch_size=8, optim=OptimConfig(momentum_shift=2)))
    model.parameters()[-1].trainable_rows = np.array([1, 3])
    save_training_state(tmp_path / "s.safetensors", model, {"kind": "x", "n": 3}, {"buf": np.arange(5, dtype=np.int8)})
    other = new_model(digits, seed=7)
    state, arrays = load_training_state(tmp_path / "s.safetensors", other)
    assert state == {"kind": "x", "n": 3} and arrays["buf"].tolist() == [0, 1, 2, 3, 4]
    assert bits(other) == bits(model)
    assert other.parameters()[-1].trainable_rows.tolist() == [1, 3]


def test_the_same_state_gives_the_same_bytes(digits, tmp_path):
    """Metadata key order must not depend on the process (safetensors writes it in hash order)."""
    model = new_model(digits)
    state = {"kind": "x", "b": 1, "a": {"z": 2, "y": 3}}
    first = save_training_state(tmp_path / "a.safetensors", model, state).read_bytes()
    second = save_training_state(tmp_path / "b.safetensors", model, dict(reversed(list(state.items())))).read_bytes()
    assert first == second


def test_weights_outside_the_int8_domain_are_refused(digits, tmp_path):
    """A state file is checked like a model file: -128 weights never reach training."""
    model = new_model(digits)
    weight = next(p for p in model.parameters() if p.kind != "bias")
    assert weight.value.m.dtype == np.int8
    weight.value.m.flat[0] = -128
    path = save_training_state(tmp_path / "s.safetensors", model, {"kind": "x"})
    with pytest.raises(CheckpointError, match="outside"):
        load_training_state(path, new_model(digits))
