"""Compiled programs of convolutional, pooling, residual and channel-scale models are bit-identical
to train_step (skipped if those layers are not in the tree)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("tintin.nn.conv_layers")

from compile_helpers import compare_runs  # noqa: E402

from tintin.compile import compile_program, plan_memory  # noqa: E402
from tintin.nn import QuantConfig, Sequential, build_model  # noqa: E402
from tintin.nn.conv_layers import Conv1d, Conv2d  # noqa: E402
from tintin.nn.layers import Flatten, Linear, ReLU  # noqa: E402
from tintin.nn.pool_layers import AvgPool1d, AvgPool2d, GlobalAvgPool, MaxPool1d, MaxPool2d  # noqa: E402
from tintin.nn.residual import Residual  # noqa: E402
from tintin.nn.scaling_layers import ChannelScale  # noqa: E402
from tintin.optim import OptimConfig  # noqa: E402

ZOO = [("lenet5", (1, 16, 16)), ("cnn1d", (2, 40)), ("dscnn", (1, 12, 12)), ("rescnn", (1, 12, 12)),
       ("rescnn", (2, 24))]


@pytest.mark.parametrize("update", ["full", "bias", "last:2"])
@pytest.mark.parametrize("name,shape", ZOO)
def test_zoo_models_bit_identical(name, shape, update):
    model = build_model(name, shape, 3, seed=1)
    compare_runs(model, update, 2, steps=3, grad_tile_bytes=256)


def test_sparse_channels_of_residual_and_depthwise_layers():
    compare_runs(build_model("rescnn", (1, 12, 12), 3, seed=2), "sparse:res1.conv2[0:5],res2.proj[3:9],fc", 2, steps=3,
                 grad_tile_bytes=64)
    compare_runs(build_model("dscnn", (1, 12, 12), 3, seed=2), "sparse:dw2[1:30],pw3.bias", 1, steps=3,
                 grad_tile_bytes=128)


def _odd_model(config=None) -> Sequential:
    """Grouped 1-D convolution, overlapping max pool, average pools, channel scale, a residual with
    a projection and a strided body."""
    config = config or QuantConfig()
    rng = np.random.default_rng(3)
    layers = [Conv1d(4, 6, 3, padding=1, groups=2, config=config, rng=rng, name="gconv"), ReLU("r1"),
              MaxPool1d(3, stride=2, name="omax"),
              ChannelScale(6, config=config, name="cs"),
              Residual([Conv1d(6, 6, 3, padding=1, groups=3, config=config, rng=rng, name="body1"), ReLU("rb"),
                        Conv1d(6, 8, 3, stride=2, padding=1, config=config, rng=rng, name="body2")],
                       [Conv1d(6, 8, 1, stride=2, config=config, rng=rng, name="proj")], name="blk"),
              AvgPool1d(2, name="apool"), Flatten("flat"), Linear(8 * 2, 3, config=config, rng=rng, name="head")]
    return Sequential(layers, (4, 19), config, name="odd")


@pytest.mark.parametrize("update", ["full", "bias", "sparse:gconv[1:5],body1[2:4].weight", "last:3", "sparse:cs"])
def test_grouped_overlapping_and_scaling_layers(update):
    compare_runs(_odd_model(), update, 3, steps=4, grad_tile_bytes=32, optim=OptimConfig(lr=1.0, momentum_shift=2))


def test_int16_weights_and_niti_on_a_cnn():
    model = _odd_model(QuantConfig(weight_bits=16))
    compare_runs(model, "full", 2, steps=3, grad_tile_bytes=32, optim=OptimConfig(rule="niti"))


def test_2d_pools_and_global_average():
    config = QuantConfig(scale_mode="pow2")
    rng = np.random.default_rng(4)
    layers = [Conv2d(2, 4, 3, padding=1, config=config, rng=rng, name="c1"), ReLU("r1"),
              MaxPool2d(3, stride=2, name="mp"), Conv2d(4, 4, 3, padding=1, groups=4, config=config, rng=rng,
                                                          name="dw"),
              AvgPool2d(2, stride=1, name="ap"), GlobalAvgPool("gap"), Linear(4, 3, config=config, rng=rng, name="fc")]
    model = Sequential(layers, (2, 9, 9), config, name="pools")
    compare_runs(model, "full", 2, steps=3, grad_tile_bytes=16)
    compare_runs(model, "sparse:dw[0:2],c1.bias", 1, steps=3)


def test_accumulator_recompute_changes_memory_not_bits():
    model = build_model("lenet5", (1, 16, 16), 3, seed=0)
    compare_runs(model, "bias", 1, steps=2, accumulator_budget=0)
    stored = compile_program(model, "bias", 1)
    recomputed = compile_program(model, "bias", 1, accumulator_budget=0)
    assert plan_memory(recomputed).arena_bytes < plan_memory(stored).arena_bytes
    assert recomputed.macs > stored.macs
    assert not any(b.name.endswith(".acc") for b in recomputed.buffers.values())


def test_maxpool_argmax_only_when_needed():
    model = build_model("lenet5", (1, 16, 16), 3, seed=0)
    frozen_features = compile_program(model, "last:1", 1)
    assert "pool1.argmax" not in frozen_features.buffers
    full = compile_program(model, "full", 1)
    assert full.buffers["pool1.argmax"].kind.value == "saved"
