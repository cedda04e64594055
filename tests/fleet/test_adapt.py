"""Adaptation on unseen devices: K shots at batch 1, held-out score, the comparison table."""

import copy
import doctest

import numpy as np
import pytest

from tintin.compile.selection import UpdateSelectionError
from tintin.errors import TintinError
from tintin.fleet import adapt as adapt_module
from tintin.fleet.adapt import (AdaptConfig, AdaptError, adapt, adapt_and_score, adaptation_table, score,
                                shot_indices)
from tintin.fleet.workloads import get_workload
from tintin.numerics import QTensor


def _same_params(a, b) -> bool:
    return all(p.value.m.tobytes() == q.value.m.tobytes() and p.value.scale == q.value.scale
               for p, q in zip(a.parameters(), b.parameters()))


@pytest.fixture(scope="module")
def sine():
    return get_workload("sine", devices=12, seed=0, samples_per_device=30, test_per_device=40)


@pytest.fixture(scope="module")
def bearing():
    return get_workload("bearing-fleet", devices=2, seed=0, samples_per_device=24, test_per_device=20)


def test_module_docstring_names_the_defaults():
    assert "8 passes at ``lr = 0.05``" in adapt_module.__doc__
    assert adapt_module.DEFAULT_CONFIG["classification"] == AdaptConfig(passes=8, lr=0.05)
    assert adapt_module.DEFAULT_CONFIG["regression"] == AdaptConfig(passes=8, lr=0.02)


def test_shots_are_nested_and_seeded():
    a10 = shot_indices(30, 10, device=2, seed=1)
    assert np.array_equal(shot_indices(30, 5, device=2, seed=1), a10[:5])
    assert len(set(a10.tolist())) == 10
    assert not np.array_equal(a10, shot_indices(30, 10, device=3, seed=1))
    assert not np.array_equal(a10, shot_indices(30, 10, device=2, seed=2))


@pytest.mark.parametrize("which", ["sine", "bearing"])
def test_same_seed_same_bits_and_input_untouched(which, request):
    devices = request.getfixturevalue(which)
    model = devices.build_model(seed=0)
    before = copy.deepcopy(model)
    x, y = devices.device_train(1)
    cfg = AdaptConfig(passes=2, lr=0.05)
    a = adapt(model, x[:6], y[:6], cfg, seed=4, target_exponent=devices.target_exponent)
    b = adapt(model, x[:6], y[:6], cfg, seed=4, target_exponent=devices.target_exponent)
    c = adapt(model, x[:6], y[:6], cfg, seed=5, target_exponent=devices.target_exponent)
    assert _same_params(a, b)
    assert not _same_params(a, model)
    assert not _same_params(a, c)  # the seed orders the passes and the rounding stream
    assert _same_params(model, before)
    assert adapt_and_score(model, devices, 1, 5, cfg, seed=3) == adapt_and_score(model, devices, 1, 5, cfg, seed=3)


def test_zero_shots_scores_the_initial_model(sine):
    model = sine.build_model(seed=1)
    xt, yt = sine.device_test(0)
    assert adapt_and_score(model, sine, 0, 0) == score(model, xt, yt, target_exponent=sine.target_exponent)


def test_score_is_batch_one_mse_of_real_values(sine):
    from tintin.nn import Context
    from tintin.numerics import Scale

    model = sine.build_model(seed=0)
    xt, yt = sine.device_test(2)
    want = []
    for j in range(len(xt)):
        out = model.forward(QTensor(xt[j:j + 1], Scale(model.input_exponent)), Context(mode=model.config.scale_mode))
        want.append((out.m[0, 0] * out.scale.to_float() - yt[j, 0] * 2.0 ** sine.target_exponent) ** 2)
    assert score(model, xt, yt, target_exponent=sine.target_exponent) == pytest.approx(np.mean(want))


def test_last_layer_mode_changes_the_output_layer_only(bearing):
    model = bearing.build_model(seed=0)
    x, y = bearing.device_train(0)
    adapted = adapt(model, x[:8], y[:8], AdaptConfig(passes=2, lr=0.1, update="last:1"), seed=0)
    changed = [p.name for p, q in zip(model.parameters(), adapted.parameters())
               if p.value.m.tobytes() != q.value.m.tobytes() or p.value.scale != q.value.scale]
    assert changed and all(name.startswith("fc2") for name in changed)


def test_adaptation_fits_the_shots(sine):
    model = sine.build_model(seed=0)
    x, y = sine.device_train(3)
    idx = shot_indices(len(x), 20, 3, 0)
    before = score(model, x[idx], y[idx], target_exponent=sine.target_exponent)
    after = score(adapt(model, x[idx], y[idx], AdaptConfig(passes=16, lr=0.02), seed=0,
                        target_exponent=sine.target_exponent), x[idx], y[idx], target_exponent=sine.target_exponent)
    assert after < 0.5 * before


def _reptile(fleet, iterations: int, epsilon: float, inner: AdaptConfig, seed: int = 0):
    """A few serial Reptile steps (meta += eps * (device - meta)), interpolated on the host."""
    meta = fleet.build_model(seed)
    rng = np.random.default_rng(seed)
    for it in range(iterations):
        i = int(rng.integers(fleet.num_devices))
        x, y = fleet.device_train(i)
        idx = rng.choice(len(x), 10, replace=False)
        dev = adapt(meta, x[idx], y[idx], inner, seed=it, target_exponent=fleet.target_exponent)
        for pm, pd in zip(meta.parameters(), dev.parameters()):
            a = pm.value.m.astype(np.float64)
            b = pd.value.m.astype(np.float64) * (pd.value.scale.to_float() / pm.value.scale.to_float())
            lim = np.iinfo(pm.value.m.dtype).max
            pm.assign(QTensor(np.clip(np.round(a + epsilon * (b - a)), -lim, lim).astype(pm.value.m.dtype),
                              pm.value.scale))
    return meta


def test_a_meta_model_adapts_better_than_scratch_on_unseen_sines(sine):
    meta = _reptile(sine, 60, 0.3, AdaptConfig(passes=4, lr=0.02))
    table = adaptation_table({"meta": meta, "scratch": sine.build_model}, sine.unseen(4), shots=(10,), seeds=(0,))
    assert table.metric == "mse"
    assert table.mean("meta", 10) < table.mean("scratch", 10)
    assert table.best(10) == "meta"


def test_table_uses_callables_per_seed_and_renders(bearing):
    seen = []

    def scratch(seed):
        seen.append(seed)
        return bearing.build_model(seed)

    fixed = bearing.build_model(seed=7)
    lines = []
    table = adaptation_table({"fixed": fixed, "scratch": scratch}, bearing, shots=(0, 5), seeds=(0, 1),
                             config=AdaptConfig(passes=1, lr=0.05), progress=lines.append)
    assert seen == [0, 1] and len(lines) == 4
    assert table.metric == "accuracy" and table.devices == 2
    for init in ("fixed", "scratch"):
        for k in (0, 5):
            assert len(table.scores[init][k]) == 2 and all(0 <= v <= 1 for v in table.scores[init][k])
    md = table.to_markdown()
    assert md.splitlines()[0] == "| initial model | K = 0 | K = 5 |" and "| fixed |" in md and "**" in md
    d = table.to_dict()
    assert d["scores"]["scratch"]["5"]["per_seed"] == table.scores["scratch"][5]
    assert d["adapt"] == {"passes": 1, "lr": 0.05, "update": "full"}


@pytest.mark.parametrize("call, message", [
    (lambda s, b: AdaptConfig(passes=0), "passes must be an integer >= 1"),
    (lambda s, b: AdaptConfig(lr=-1.0), "lr must be a positive number"),
    (lambda s, b: AdaptConfig(lr=float("nan")), "lr must be a positive number"),
    (lambda s, b: shot_indices(10, 11, 0, 0), "K = 11 shots but the device has only 10"),
    (lambda s, b: shot_indices(10, -1, 0, 0), "non-negative integer"),
    (lambda s, b: adapt_and_score(s.build_model(0), b, 0, 5), "the model takes samples of shape (1,)"),
    (lambda s, b: adaptation_table({}, s), "no initial models"),
    (lambda s, b: adaptation_table({"x": "model"}, s, shots=(5,), seeds=(0,)), "is not a tintin Sequential"),
    (lambda s, b: adapt(s.build_model(0), *s.device_train(0), AdaptConfig()), "give target_exponent"),
])
def test_one_line_errors(sine, bearing, call, message):
    with pytest.raises(AdaptError) as info:
        call(sine, bearing)
    assert isinstance(info.value, TintinError)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_update_mode_is_a_one_line_error():
    with pytest.raises(UpdateSelectionError) as info:
        AdaptConfig(update="everything")
    assert isinstance(info.value, TintinError) and "\n" not in str(info.value)


def test_wrong_head_for_the_task(bearing):
    from tintin.nn.config import QuantConfig
    from tintin.nn.layers import Linear
    from tintin.nn import Sequential

    reg = Sequential([Linear(64, 4, config=QuantConfig(), name="fc")], (64,), QuantConfig(), loss="mse",
                     input_exponent=-7)
    with pytest.raises(AdaptError, match="needs a cross_entropy head"):
        adapt_and_score(reg, bearing, 0, 5)


def test_docstring_examples():
    from tintin.fleet import workloads

    for module in (workloads, adapt_module):
        failed, _ = doctest.testmod(module)
        assert failed == 0


def test_each_initial_model_can_adapt_with_its_own_settings(sine):
    new = sine.unseen(2)
    model = sine.build_model(5)
    own = AdaptConfig(passes=1, lr=0.04)
    table = adaptation_table({"a": model, "b": model}, new, shots=(4,), seeds=(0,), config=AdaptConfig(passes=2),
                             configs={"b": own})
    assert table.config_of("a") == AdaptConfig(passes=2) and table.config_of("b") == own
    assert table.scores["b"][4][0] == pytest.approx(np.mean([adapt_and_score(model, new, i, 4, own, seed=0)
                                                             for i in range(2)]))
    assert table.to_dict()["adapt_per_model"]["b"] == {"passes": 1, "lr": 0.04, "update": "full"}
    with pytest.raises(AdaptError, match="unknown initial models: c"):
        adaptation_table({"a": model}, new, shots=(4,), seeds=(0,), configs={"c": own})


def test_validation_devices_are_neither_fleet_nor_unseen_devices(sine):
    val, new = sine.validation(3), sine.unseen(3)
    assert val.domain == 2 and new.domain == 1
    for i in range(3):
        assert not np.array_equal(val.device_train(i)[0], new.device_train(i)[0])
        assert not np.array_equal(val.device_train(i)[0], sine.device_train(i)[0])
    assert val.device_params != new.device_params[:3]


@pytest.mark.parametrize("which", ["sine", "bearing"])
def test_layer_shifts_scale_each_layers_rate(which, request):
    """Every layer at shift 1 is the doubled rate, bit for bit; one layer's shift changes the
    result; no shift is the plain adaptation."""
    devices = request.getfixturevalue(which)
    model = devices.build_model(seed=0)
    x, y = devices.device_train(0)
    layers = sorted({p.name.rsplit(".", 1)[0] for p in model.parameters()})
    te = devices.target_exponent

    def run(cfg):
        return adapt(model, x[:8], y[:8], cfg, seed=2, target_exponent=te)

    assert _same_params(run(AdaptConfig(passes=2, lr=0.1)),
                        run(AdaptConfig(passes=2, lr=0.05, layer_shifts={n: 1 for n in layers})))
    assert _same_params(run(AdaptConfig(passes=2, lr=0.05)),
                        run(AdaptConfig(passes=2, lr=0.05, layer_shifts={layers[0]: 0})))
    assert not _same_params(run(AdaptConfig(passes=2, lr=0.05)),
                            run(AdaptConfig(passes=2, lr=0.05, layer_shifts={layers[-1]: 2})))


def test_layer_shifts_config_and_errors(bearing):
    assert AdaptConfig(layer_shifts={"fc2": 1, "fc1": 0}).layer_shifts == (("fc2", 1),)
    assert AdaptConfig(layer_shifts=[["fc1", -1]]) == AdaptConfig(layer_shifts={"fc1": -1})
    with pytest.raises(AdaptError, match="layer_shifts: the rate shift of layer fc1"):
        AdaptConfig(layer_shifts={"fc1": 9})
    with pytest.raises(AdaptError, match="layer_shifts"):
        AdaptConfig(layer_shifts=[("fc1",)])
    x, y = bearing.device_train(0)
    with pytest.raises(AdaptError, match="no layer conv1 to give a learning rate"):
        adapt(bearing.build_model(0), x[:4], y[:4], AdaptConfig(layer_shifts={"conv1": 1}))
    table = adaptation_table({"scratch": bearing.build_model}, bearing.unseen(1), shots=(2,), seeds=(0,),
                             config=AdaptConfig(passes=1, layer_shifts={"fc1": 1}))
    assert table.to_dict()["adapt"] == {"passes": 1, "lr": 0.05, "update": "full", "layer_shifts": {"fc1": 1}}
