import numpy as np
import pytest

from tintin.nn import Context, QuantConfig, build_model
from tintin.nn.module import Parameter
from tintin.numerics import QTensor, Rounding, RoundingStream, Scale, ScaleMode
from tintin.numerics.rescale import grid_steps
from tintin.optim import IntegerSGD, OptimConfig


def make_param(m, scale=Scale(-7), bits=8, kind="weight"):
    dtype = {8: np.int8, 16: np.int16, 32: np.int32}[bits]
    return Parameter("p", kind, QTensor(np.asarray(m, dtype=dtype), scale), bits)


def run_update(p, grad, cfg, batch=1, mode=ScaleMode.COMPOUND, seed=0):
    opt = IntegerSGD([p], cfg, mode)
    opt.batch_size = batch
    p.grad = grad
    opt.update(p, Context(mode=mode, stream=RoundingStream(seed)))
    return p


def test_aligned_update_is_float_sgd_in_expectation():
    """Many stochastic updates of one weight average to the real SGD step, even below one unit."""
    lr = 0.5
    grad_real = 0.0037  # -> lr * g = 0.00185 = 0.237 weight units at 2**-7
    g = QTensor(np.full(20000, round(grad_real / 2**-16), np.int32), Scale(-16))
    p = make_param(np.zeros(20000), Scale(-7))
    run_update(p, g, OptimConfig(lr=lr, rounding="stochastic"))
    moved = -p.value.dequantize().mean()
    want = Scale.nearest(lr).to_float() * g.dequantize()[0]
    assert abs(moved - want) < 0.02 * want + 1e-4
    # nearest rounding loses it completely
    p2 = make_param(np.zeros(20000), Scale(-7))
    run_update(p2, g, OptimConfig(lr=lr, rounding="nearest"))
    assert (p2.value.m == 0).all()


def test_batch_division_and_scale_alignment():
    g = QTensor(np.array([640, -640, 6400], np.int32), Scale(-10))  # 0.625, -0.625, 6.25
    p = make_param([0, 0, 0], Scale(-6))
    run_update(p, g, OptimConfig(lr=0.25, rounding="nearest"), batch=5)
    # delta = 0.25 / 5 * g = 0.03125, -0.03125, 0.3125 -> units of 2**-6: 2, -2, 20
    assert p.value.m.tolist() == [-2, 2, -20]


def test_niti_rule_sets_update_bit_width():
    g = QTensor(np.array([1000, -300, 7, 0], np.int32), Scale(-3))
    p = make_param([0, 0, 0, 0])
    run_update(p, g, OptimConfig(rule="niti", mu=3, rounding="nearest"))
    # max |g| = 1000 has 10 bits -> shift by 10 - 3 = 7: 1000/128 = 7.8 -> 8, -300/128 -> -2, 7/128 -> 0
    assert p.value.m.tolist() == [-8, 2, 0, 0]
    # scale of the gradient does not matter under NITI
    p2 = make_param([0, 0, 0, 0])
    run_update(p2, QTensor(g.m, Scale(20)), OptimConfig(rule="niti", mu=3, rounding="nearest"))
    assert p2.value.m.tolist() == p.value.m.tolist()


@pytest.mark.parametrize("mode", list(ScaleMode))
def test_overflow_rescales_weights_onto_the_grid(mode):
    p = make_param([120, -100, 5, 0], Scale(-7))
    g = QTensor(np.array([-30, 0, 0, 0], np.int32), Scale(-7))  # would push 120 -> 150
    before = p.value.dequantize().copy()
    for _ in range(20):  # repeated overflows never let the exponents drift
        run_update(p, g, OptimConfig(lr=1.0, rounding="nearest"), mode=mode)
        assert np.abs(p.value.m.astype(int)).max() <= 127
        assert (p.value.scale.U, p.value.scale.D) in grid_steps(mode)
    # the other weights keep their real values (up to the coarser grid)
    assert abs(p.value.dequantize()[1] - before[1]) <= p.value.scale.to_float()
    assert abs(p.value.dequantize()[0] - (120 + 20 * 30) / 128) < 0.5  # 20 steps of 30/128 from 120/128


def test_saturation_when_rescale_disabled():
    p = make_param([120, -100], Scale(-7))
    run_update(p, QTensor(np.array([-30, 200], np.int32), Scale(-7)),
               OptimConfig(lr=1.0, rounding="nearest", weight_rescale=False))
    assert p.value.m.tolist() == [127, -127] and p.value.scale == Scale(-7)


def test_int16_weights_resolve_small_updates_with_nearest_rounding():
    p = make_param(np.zeros(4), Scale(-15), bits=16)
    g = QTensor(np.array([3, -3, 30, 0], np.int32), Scale(-14))
    run_update(p, g, OptimConfig(lr=0.5, rounding="nearest"))
    assert p.value.m.tolist() == [-3, 3, -30, 0]
    view = p.forward_view(ScaleMode.COMPOUND)
    assert view.m.dtype == np.int8


def test_trainable_rows_leave_other_rows_bit_identical():
    rng = np.random.default_rng(0)
    w = rng.integers(-120, 121, size=(6, 5))
    p = make_param(w)
    p.trainable_rows = np.array([1, 4])
    g = QTensor(rng.integers(-(2**12), 2**12, size=(6, 5)).astype(np.int32), Scale(-10))
    run_update(p, g, OptimConfig(lr=1.0))
    frozen = [0, 2, 3, 5]
    assert (p.value.m[frozen] == w[frozen]).all()
    assert (p.value.m[[1, 4]] != w[[1, 4]]).any()
    assert p.value.scale == Scale(-7)


def test_momentum_accumulates_steps():
    g = QTensor(np.array([64], np.int32), Scale(-10))  # 1/16 real; lr 0.5 -> 1/32 = 4 units at 2**-7
    p = make_param([0])
    opt = IntegerSGD([p], OptimConfig(lr=0.5, momentum_shift=1, rounding="nearest"), ScaleMode.POW2)
    steps = []
    for _ in range(6):
        p.grad = g
        opt.update(p, Context(mode=ScaleMode.POW2, stream=RoundingStream(0)))
        steps.append(int(p.value.m[0]))
    deltas = -np.diff([0] + steps)
    # beta = 1/2: steps 4, 6, 7, 7.5, ... -> approach 8 = 4 / (1 - beta)
    assert deltas.tolist()[:3] == [4, 6, 7] and deltas[-1] >= 7


def test_config_validation():
    for bad in (dict(rule="adam"), dict(lr=0.0), dict(mu=0), dict(momentum_shift=9), dict(rounding="up")):
        with pytest.raises(ValueError):
            OptimConfig(**bad)
    cfg = OptimConfig(lr=0.5, lr_schedule=((10, 0.25), (20, 0.125)), mu_schedule=((5, 3),))
    assert [cfg.lr_at(e) for e in (0, 9, 10, 25)] == [0.5, 0.5, 0.25, 0.125]
    assert cfg.mu_at(4) == 4 and cfg.mu_at(5) == 3
    assert OptimConfig.from_dict(cfg.to_dict()) == cfg


def test_every_parameter_gets_its_own_stochastic_stream():
    model = build_model("mlp", (8,), 3, QuantConfig(), seed=0)
    opt = IntegerSGD(model.parameters(), OptimConfig(), ScaleMode.COMPOUND)
    sites = sorted(opt.site.values())
    assert sites == [0, 4, 8, 12]
