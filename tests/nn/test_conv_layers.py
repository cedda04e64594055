import numpy as np
import pytest
import torch

from tintin.nn import (AvgPool1d, AvgPool2d, ChannelScale, Context, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear,
                       MaxPool1d, MaxPool2d, QuantConfig, ReLU, Residual, Sequential, ShapeError, build_layer,
                       fold_batchnorm)
from tintin.numerics import AccumulatorBoundError, QTensor, Scale
from tintin.reference import float_twin
from tintin.train.step import check_batch_bounds

CFG = QuantConfig()


def rng():
    return np.random.default_rng(0)


@pytest.mark.parametrize("make, shape, message", [
    (lambda: Conv2d(3, 4, 5, config=CFG, rng=rng(), name="c1"), (3, 4, 4), r"c1: Conv2d kernel \(5, 5\) is larger"),
    (lambda: Conv2d(3, 4, 5, padding=1, config=CFG, rng=rng(), name="c1"), (3, 2, 9), "padded input"),
    (lambda: Conv2d(3, 4, 3, config=CFG, rng=rng(), name="c1"), (3, 9), r"c1: Conv2d expects samples of shape \(C, H, W\)"),
    (lambda: Conv2d(3, 4, 3, config=CFG, rng=rng(), name="c1"), (2, 9, 9), "c1: Conv2d expects 3 input channels"),
    (lambda: Conv1d(2, 4, 3, config=CFG, rng=rng(), name="t1"), (2, 8, 8), r"t1: Conv1d expects samples of shape \(C, L\)"),
    (lambda: Conv1d(2, 4, 9, config=CFG, rng=rng(), name="t1"), (2, 8), "t1: Conv1d kernel"),
    (lambda: MaxPool2d(3, name="p"), (2, 2, 5), r"p: MaxPool2d window \(3, 3\) is larger"),
    (lambda: MaxPool2d(2, name="p"), (2, 5), "p: MaxPool2d expects samples"),
    (lambda: AvgPool1d(4, name="a"), (2, 3), "a: AvgPool1d window"),
    (lambda: GlobalAvgPool("gap"), (5,), "gap: GlobalAvgPool expects samples"),
    (lambda: ChannelScale(4, name="s"), (3, 5), "s: ChannelScale expects"),
])
def test_shapes_that_do_not_fit_raise_shape_error(make, shape, message):
    layer = make()
    with pytest.raises(ShapeError, match=message):
        layer.output_shape(shape)


def test_construction_errors_name_the_layer():
    with pytest.raises(ShapeError, match="conv9: Conv2d channels 6->4 are not divisible by groups=4"):
        Conv2d(6, 4, 3, groups=4, name="conv9")
    with pytest.raises(ShapeError, match="conv9: kernel_size needs 2"):
        Conv2d(2, 4, (3, 3, 3), name="conv9")
    with pytest.raises(ShapeError, match="stride >= 1"):
        Conv1d(2, 4, 3, stride=0, name="c")
    with pytest.raises(ShapeError, match="p: MaxPool1d kernel and stride"):
        MaxPool1d(0, name="p")
    with pytest.raises(ShapeError, match="r: Residual body output"):
        Sequential([Residual([Conv2d(2, 3, 1, name="r.c")], name="r")], (2, 4, 4), CFG)
    with pytest.raises(AccumulatorBoundError, match="big: Conv2d fan-in"):
        Conv2d(3000, 2, 5, name="big")  # 3000 * 25 > 66,572 products


@pytest.mark.parametrize("layer, torch_layer, shape", [
    (Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=3, name="c"),
     torch.nn.Conv2d(3, 6, (3, 2), stride=(2, 1), padding=(1, 0), groups=3), (3, 9, 7)),
    (Conv1d(4, 4, 5, stride=3, padding=2, groups=4, name="c"), torch.nn.Conv1d(4, 4, 5, 3, 2, groups=4), (4, 17)),
    (MaxPool2d((2, 3), (1, 2), name="p"), torch.nn.MaxPool2d((2, 3), (1, 2)), (2, 7, 8)),
    (AvgPool2d(3, name="p"), torch.nn.AvgPool2d(3), (2, 7, 8)),
    (MaxPool1d(3, 2, name="p"), torch.nn.MaxPool1d(3, 2), (2, 10)),
    (AvgPool1d(2, name="p"), torch.nn.AvgPool1d(2), (2, 9)),
])
def test_output_shapes_match_pytorch(layer, torch_layer, shape):
    want = tuple(torch_layer(torch.zeros((1,) + shape)).shape[1:])
    assert layer.output_shape(shape) == want


def test_specs_rebuild_through_the_registry():
    res = Residual([Conv2d(4, 8, 3, stride=2, padding=1, name="r.c1"), ReLU("r.relu"),
                    Conv2d(8, 8, 3, padding=1, groups=8, bias=False, name="r.c2")],
                   [Conv2d(4, 8, 1, stride=2, name="r.proj")], name="r")
    layers = [res, ChannelScale(8, name="s"), MaxPool2d(2, name="p"), AvgPool2d((1, 2), 1, name="a"),
              GlobalAvgPool("g"), Linear(8, 3, name="fc")]
    model = Sequential(layers, (4, 8, 8), CFG)
    for layer in layers + [Conv1d(2, 4, 3, 2, 1, 2, name="t"), MaxPool1d(3, 1, name="m"), AvgPool1d(2, name="a1")]:
        rebuilt = build_layer(layer.spec(), CFG, np.random.default_rng(1))
        assert type(rebuilt) is type(layer) and rebuilt.spec() == layer.spec()
        assert [p.name for p in rebuilt.parameters()] == [p.name for p in layer.parameters()]
        assert [p.value.shape for p in rebuilt.parameters()] == [p.value.shape for p in layer.parameters()]
    assert [p.name for p in model.parameters()][:6] == ["r.c1.weight", "r.c1.bias", "r.c2.weight", "r.proj.weight",
                                                         "r.proj.bias", "s.weight"]


def test_gradient_positions_and_batch_bound():
    model = Sequential([Conv2d(1, 4, 3, padding=1, name="c1"), MaxPool2d(2, name="p"),
                        Residual([Conv2d(4, 4, 3, padding=1, name="r.c")], name="r"), ChannelScale(4, name="s"),
                        Flatten("f"), Linear(4 * 16 * 16, 2, name="fc")], (1, 32, 32), CFG)
    assert model.layers[0].gradient_positions((1, 32, 32)) == 1024
    assert model.layers[2].gradient_positions((4, 16, 16)) == 256
    assert model.layers[3].gradient_positions((4, 16, 16)) == 256
    check_batch_bounds(model, 65)  # 65 * 1024 <= 66,572
    with pytest.raises(AccumulatorBoundError, match="c1: weight gradient"):
        check_batch_bounds(model, 66)


def test_layer_macs():
    conv = Conv2d(6, 16, 5, name="c")
    assert conv.macs((6, 14, 14)) == 16 * 10 * 10 * 150
    dw = Conv1d(8, 8, 3, padding=1, groups=8, name="d")
    assert dw.macs((8, 20)) == 8 * 20 * 3


def test_training_forward_caches_and_clear_cache():
    conv = Conv2d(2, 3, 3, name="c")
    ctx = Context(training=True)
    x = QTensor(np.ones((2, 2, 5, 5), dtype=np.int8), Scale(-7))
    conv.forward(x, ctx)
    assert conv._cache_x is x and conv._cache_cols is not None
    buf = conv._work_cols
    conv.clear_cache()
    assert conv._cache_x is None and conv._cache_cols is None and conv._work_cols is buf
    conv.forward(x, ctx)
    assert conv._cache_cols is buf  # the im2col buffer is reused from step to step
    conv.forward(x, Context(training=False))
    assert conv._cache_cols is buf


def _conv_bn(seed):
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(3, 5, 3, padding=1).double()
    bn = torch.nn.BatchNorm2d(5).double()
    with torch.no_grad():
        bn.running_mean.uniform_(-0.3, 0.3)
        bn.running_var.uniform_(0.2, 2.0)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.2, 0.2)
    bn.eval()
    return conv, bn


def test_fold_batchnorm_into_conv():
    conv_t, bn = _conv_bn(0)
    layer = Conv2d(3, 5, 3, padding=1, config=CFG, rng=rng(), name="c")
    with torch.no_grad():  # start the torch conv from the layer's dequantised weights
        conv_t.weight.copy_(torch.tensor(layer.weight.value.dequantize()))
        conv_t.bias.copy_(torch.tensor(layer.bias.value.dequantize()))
    fold_batchnorm(layer, bn.weight.detach().numpy(), bn.bias.detach().numpy(), bn.running_mean.numpy(),
                   bn.running_var.numpy(), bn.eps, CFG)
    x = QTensor(np.random.default_rng(1).integers(-127, 128, (4, 3, 6, 6)).astype(np.int8), Scale(-7))
    want = bn(conv_t(torch.tensor(x.dequantize()))).detach().numpy()
    got = layer.forward(x, Context()).dequantize()
    # weight requantisation (half a step of ~1/127 of the largest weight, over a fan-in of 27)
    assert np.abs(got - want).max() <= 0.03 * np.abs(want).max()
    with pytest.raises(ShapeError, match="c: BatchNorm parameters must have 5 entries"):
        fold_batchnorm(layer, np.ones(4), np.ones(4), np.ones(4), np.ones(4))
    nobias = Conv2d(3, 5, 3, bias=False, name="nb")
    fold_batchnorm(nobias, np.ones(5), np.full(5, 0.5), np.zeros(5), np.ones(5), 0.0)
    assert nobias.bias is not None and nobias.parameters()[1] is nobias.bias
    np.testing.assert_allclose(nobias.bias.value.dequantize(), 0.5)


def test_channel_scale_from_batchnorm_and_its_float_twin():
    _, bn = _conv_bn(1)
    layer = ChannelScale.from_batchnorm(bn.weight.detach().numpy(), bn.bias.detach().numpy(), bn.running_mean.numpy(),
                                        bn.running_var.numpy(), bn.eps, config=CFG, name="s")
    x = QTensor(np.random.default_rng(2).integers(-127, 128, (3, 5, 4, 4)).astype(np.int8), Scale(-6))
    xt = torch.tensor(x.dequantize())
    want = bn(xt).detach().numpy()
    got = layer.forward(x, Context()).dequantize()
    assert np.abs(got - want).max() <= 0.02 * np.abs(want).max()
    twin = float_twin(Sequential([layer], (5, 4, 4), CFG))
    np.testing.assert_allclose(twin(xt.float()).detach().numpy(), want, atol=0.02 * np.abs(want).max())
    fresh = ChannelScale(5, name="s2")
    np.testing.assert_allclose(fresh.weight.value.dequantize(), 1.0)
    np.testing.assert_allclose(fresh.bias.value.dequantize(), 0.0)


def test_he_initialisation_option():
    fan_in = 8 * 9
    default = Conv2d(8, 16, 3, rng=np.random.default_rng(4), name="c")
    he = Conv2d(8, 16, 3, rng=np.random.default_rng(4), name="c", init="he")
    wd, wh = default.weight.value.dequantize(), he.weight.value.dequantize()
    half_step = 0.5 * max(default.weight.value.scale.to_float(), he.weight.value.scale.to_float())
    assert np.abs(wd).max() <= 1 / np.sqrt(fan_in) + half_step and np.abs(wh).max() <= np.sqrt(6 / fan_in) + half_step
    assert np.abs(wh).max() > 2 * np.abs(wd).max()
    np.testing.assert_allclose(wh, wd * np.sqrt(6), atol=he.weight.value.scale.to_float())  # same draws
    assert he.spec()["init"] == "he" and "init" not in default.spec()
    assert build_layer(he.spec(), CFG, np.random.default_rng(0)).init == "he"
    with pytest.raises(ValueError, match="unknown init"):
        Conv1d(2, 2, 3, init="xavier", name="c")
