import numpy as np
import pytest
import torch

from tintin.nn import Context, QuantConfig, ShapeError, build_layer, build_model, model_names
from tintin.numerics import QTensor, Scale
from tintin.reference import float_twin

# (model, input shape, classes) -> (parameters, MACs per sample): the table in docs/cnn.md
ZOO_TABLE = {
    ("lenet5", (1, 28, 28), 10): (61_706, 416_520),
    ("cnn1d", (6, 100), 4): (6_516, 272_128),
    ("cnn1d", (1, 1024), 4): (5_956, 581_760),
    ("cnn1d", (2, 128), 2): (6_002, 290_880),
    ("dscnn", (1, 28, 28), 10): (9_578, 657_632),
    ("dscnn", (1, 40, 32), 12): (9_708, 1_073_408),
    ("rescnn", (1, 28, 28), 10): (19_562, 1_718_848),
    ("rescnn", (6, 100), 4): (7_220, 233_728),
}


def macs(model):
    return sum(layer.macs(shape) for layer, shape in zip(model.layers, model.shapes) if hasattr(layer, "macs"))


def test_cnn_models_are_registered():
    assert {"lenet5", "cnn1d", "dscnn", "rescnn"} <= set(model_names())


@pytest.mark.parametrize("name, shape, classes", sorted(ZOO_TABLE))
def test_zoo_models_build_and_match_their_float_twin(name, shape, classes):
    model = build_model(name, shape, classes, QuantConfig(), seed=3)
    assert model.output_shape_ == (classes,)
    params, n_macs = ZOO_TABLE[(name, shape, classes)]
    assert model.num_parameters() == params and macs(model) == n_macs
    twin = float_twin(model)
    assert sum(p.numel() for p in twin.parameters()) == model.num_parameters()
    x = QTensor(np.random.default_rng(0).integers(-127, 128, (8,) + shape).astype(np.int8), Scale(-7))
    got = model.forward(x, Context(mode=model.config.scale_mode)).dequantize()
    want = twin(torch.tensor(x.dequantize(), dtype=torch.float32)).detach().numpy()
    # int8 activations all the way: a few per cent of the logit range
    assert np.abs(got - want).max() <= 0.1 * np.abs(want).max() + 1e-6
    # the model rebuilds from its spec (model files)
    rebuilt = [build_layer(s, model.config, np.random.default_rng(0)).spec() for s in model.spec()["layers"]]
    assert rebuilt == model.spec()["layers"]


@pytest.mark.parametrize("name, shape, message", [
    ("lenet5", (1, 100), r"lenet5: expects samples of shape \(C, H, W\)"),
    ("lenet5", (1, 8, 8), r"lenet5: input shape \(1, 8, 8\) is too small"),
    ("cnn1d", (1, 28, 28), r"cnn1d: expects samples of shape \(C, L\)"),
    ("cnn1d", (100,), r"cnn1d: expects samples of shape \(C, L\)"),
    ("dscnn", (6, 100), "dscnn: expects samples"),
    ("rescnn", (784,), "rescnn: expects samples"),
])
def test_wrong_input_rank_or_size_raises_shape_error(name, shape, message):
    with pytest.raises(ShapeError, match=message):
        build_model(name, shape, 10)


def test_same_seed_same_initial_weights():
    a = build_model("rescnn", (1, 16, 16), 3, seed=5)
    b = build_model("rescnn", (1, 16, 16), 3, seed=5)
    c = build_model("rescnn", (1, 16, 16), 3, seed=6)
    assert all(np.array_equal(p.value.m, q.value.m) and p.value.scale == q.value.scale
               for p, q in zip(a.parameters(), b.parameters()))
    assert not all(np.array_equal(p.value.m, q.value.m) for p, q in zip(a.parameters(), c.parameters()))
