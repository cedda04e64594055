import copy

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from tintin.compile import apply_update_selection
from tintin.nn import Context, Linear, QuantConfig, ReLU, Sequential
from tintin.numerics import RoundingStream, mix32
from tintin.online import OnlineLearner, StreamError
from tintin.online.learner import DRAW_SALT, REPLAY_SALT, selection_of
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import train_step
from tintin.train.checkpoint import CheckpointError


def tiny_model(seed=0, classes=4):
    rng = np.random.default_rng(seed)
    cfg = QuantConfig()
    return Sequential([Linear(12, 10, config=cfg, rng=rng, name="fc1"), ReLU("relu1"),
                       Linear(10, classes, config=cfg, rng=rng, name="fc2")], (12,), cfg, name="tiny")


def bits(model):
    return [(p.name, p.value.m.tobytes(), p.value.m.dtype, p.value.scale.as_tuple(),
             None if p.momentum is None else p.momentum.tobytes()) for p in model.parameters()]


def data(seed, n, classes=4):
    rng = np.random.default_rng(seed)
    return rng.integers(-127, 128, (n, 12)).astype(np.int8), rng.integers(0, classes, n).astype(np.int64)


def batch_one_reference(model, update, optim, seed, xs, ys):
    """train_step at batch 1 over the same samples, with its own optimiser and rounding stream."""
    apply_update_selection(model, selection_of(update))
    opt = IntegerSGD(model.parameters(), optim, model.config.scale_mode)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
    for x, y in zip(xs, ys):
        train_step(model, opt, x[None], np.array([y]), ctx)
    return model


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40),
       update=st.sampled_from(["full", "bias", "last:1", "last:2", "tinyol", "sparse:fc2[1:3]"]),
       lr=st.sampled_from([0.01, 0.05, 0.5]), momentum=st.sampled_from([0, 3]),
       rounding=st.sampled_from(["stochastic", "nearest", "pseudo_stochastic"]))
def test_learn_one_equals_train_step_at_batch_one(seed, n, update, lr, momentum, rounding):
    xs, ys = data(seed, n)
    optim = OptimConfig(lr=lr, momentum_shift=momentum, rounding=rounding)
    learner = OnlineLearner(tiny_model(seed % 7), update, optim, seed=seed)
    for x, y in zip(xs, ys):
        learner.learn_one(x, int(y))
    ref = batch_one_reference(tiny_model(seed % 7), update, optim, seed, xs, ys)
    assert bits(learner.model) == bits(ref)
    assert learner.ctx.stream.step == n


def test_learning_changes_only_the_selected_parameters():
    xs, ys = data(1, 30)
    before = tiny_model()
    learner = OnlineLearner(copy.deepcopy(before), "bias", OptimConfig(lr=0.5))
    for x, y in zip(xs, ys):
        learner.learn_one(x, y)
    for p, q in zip(before.parameters(), learner.model.parameters()):
        assert (p.value.m.tobytes() == q.value.m.tobytes()) == (p.kind == "weight"), p.name


def test_unlabelled_samples_learn_nothing():
    xs, _ = data(2, 10)
    learner = OnlineLearner(tiny_model(), "full", OptimConfig(lr=0.5))
    ref = bits(learner.model)
    for x in xs:
        learner.learn_one(x, None)
    assert bits(learner.model) == ref and learner.ctx.stream.step == 0


def reservoir_reference(model, optim, seed, capacity, xs, ys):
    """The documented replay rule, written out independently."""
    h = mix32((seed ^ REPLAY_SALT) & 0xFFFFFFFF)
    opt = IntegerSGD(model.parameters(), optim, model.config.scale_mode)
    ctx = Context(mode=model.config.scale_mode, training=True, stream=RoundingStream(seed))
    bx, by = [None] * capacity, [None] * capacity
    for n, (x, y) in enumerate(zip(xs, ys)):
        train_step(model, opt, x[None], np.array([y]), ctx)
        size = min(n, capacity)
        if size:
            s = mix32(h ^ n ^ DRAW_SALT) % size
            train_step(model, opt, bx[s][None], np.array([by[s]]), ctx)
        slot = n if n < capacity else mix32(h ^ n) % (n + 1)
        if slot < capacity:
            bx[slot], by[slot] = x, y
    return model


@pytest.mark.parametrize("capacity", [1, 5])
def test_replay_follows_the_documented_reservoir(capacity):
    xs, ys = data(3, 40)
    optim = OptimConfig(lr=0.05)
    learner = OnlineLearner(tiny_model(), "full", optim, seed=9, replay=capacity)
    for x, y in zip(xs, ys):
        learner.learn_one(x, y)
    assert learner.ctx.stream.step == 2 * 40 - 1
    assert bits(learner.model) == bits(reservoir_reference(tiny_model(), optim, 9, capacity, xs, ys))
    assert learner.replay.nbytes == capacity * 13


@pytest.mark.parametrize("replay", [0, 4])
def test_saved_and_restored_learner_continues_bit_for_bit(tmp_path, replay):
    xs, ys = data(4, 50)
    optim = OptimConfig(lr=0.05, momentum_shift=3)
    whole = OnlineLearner(tiny_model(), "last:1", optim, seed=3, replay=replay)
    for x, y in zip(xs, ys):
        whole.learn_one(x, y)

    first = OnlineLearner(tiny_model(), "last:1", optim, seed=3, replay=replay)
    for x, y in zip(xs[:23], ys[:23]):
        first.learn_one(x, y)
    first.save(tmp_path / "learner.safetensors")
    resumed = OnlineLearner.restore(tmp_path / "learner.safetensors", tiny_model(seed=5))
    for x, y in zip(xs[23:], ys[23:]):
        resumed.learn_one(x, y)
    assert bits(resumed.model) == bits(whole.model)
    assert resumed.samples_learnt == 50 and resumed.update == "last:1"
    assert [p.trainable for p in resumed.model.parameters()] == [False, False, True, True]


def test_restore_rejects_other_state_and_other_models(tmp_path):
    from tintin.train.checkpoint import save_training_state

    save_training_state(tmp_path / "fit.safetensors", tiny_model(), {"kind": "fit"})
    with pytest.raises(CheckpointError, match="not the state of an online learner"):
        OnlineLearner.restore(tmp_path / "fit.safetensors", tiny_model())
    OnlineLearner(tiny_model(), "full").save(tmp_path / "l.safetensors")
    with pytest.raises(CheckpointError, match="another model"):
        OnlineLearner.restore(tmp_path / "l.safetensors", tiny_model(classes=5))


def test_bad_samples_and_labels_are_one_line_errors():
    learner = OnlineLearner(tiny_model(), "full")
    with pytest.raises(StreamError, match="int8 of shape"):
        learner.predict_one(np.zeros(12, dtype=np.float32))
    with pytest.raises(StreamError, match="int8 of shape"):
        learner.learn_one(np.zeros(13, dtype=np.int8), 1)
    with pytest.raises(StreamError, match="outside"):
        learner.learn_one(np.zeros(12, dtype=np.int8), 4)


def test_tinyol_predicts_only_seen_classes_and_learns_only_the_output_layer():
    learner = OnlineLearner(tiny_model(), "tinyol", OptimConfig(lr=0.05), known_classes=(0,))
    xs, _ = data(5, 20)
    assert all(learner.predict_one(x) == 0 for x in xs)
    assert [p.trainable for p in learner.model.parameters()] == [False, False, True, True]
    learner.learn_one(xs[0], 2)
    assert {learner.predict_one(x) for x in xs} <= {0, 2}
    proba = learner.predict_proba_one(xs[0])
    assert abs(sum(proba.values()) - 1) < 1e-9 and proba[1] == 0.0 and proba[3] == 0.0


def test_float_twin_learns_the_same_parameters():
    torch = pytest.importorskip("torch")
    from tintin.online.float_learner import FloatOnlineLearner

    xs, ys = data(6, 20)
    for update, changed in (("full", [True] * 4), ("last:1", [False, False, True, True]), ("bias", [False, True] * 2)):
        model = tiny_model()
        apply_update_selection(model, selection_of(update))
        learner = FloatOnlineLearner(model, OptimConfig(lr=0.05))
        before = [p.detach().clone() for p in learner.net.parameters()]
        for x, y in zip(xs, ys):
            learner.learn_one(x, int(y))
        after = list(learner.net.parameters())
        assert [not torch.equal(a, b) for a, b in zip(before, after)] == changed, update
