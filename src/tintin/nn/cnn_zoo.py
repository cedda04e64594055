"""Convolutional and sensor models of the zoo: ``lenet5``, ``cnn1d``, ``dscnn``, ``rescnn``.

Every builder takes ``(input_shape, num_classes, config, rng, **options)`` like
:func:`tintin.nn.zoo.mlp` and returns a :class:`Sequential`; ``input_shape`` is the per-sample shape
(C, H, W) for images and spectrograms, (C, L) for time series. A wrong rank raises
:class:`ShapeError` naming the model. Parameter counts and MACs: ``docs/cnn.md``.

Initialisation (option ``init``): ``lenet5`` keeps PyTorch's default (it trains to float32 parity
with it); ``cnn1d``, ``dscnn`` and ``rescnn`` default to He-uniform (``init="he"``): without
normalisation layers, these deeper networks with global average pooling stay at chance level for
epochs with the default initialisation, in float32 and in integers alike.
"""

from __future__ import annotations

import numpy as np

from .config import QuantConfig
from .conv_layers import Conv1d, Conv2d
from .layers import Flatten, Linear, ReLU
from .module import Module, ShapeError
from .pool_layers import GlobalAvgPool, MaxPool1d, MaxPool2d
from .residual import Residual
from .sequential import Sequential
from .zoo import TrainingDefaults, register_model


def _require_rank(model: str, input_shape: tuple[int, ...], ranks: tuple[int, ...], what: str) -> None:
    if len(input_shape) not in ranks:
        raise ShapeError(f"{model}: expects samples of shape {what}, got {tuple(input_shape)} "
                         f"({len(input_shape)}-D)")


def lenet5(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
           channels: tuple[int, int] = (6, 16), hidden: tuple[int, int] = (120, 84),
           init: str = "pytorch") -> Sequential:
    """LeNet-5, the common modern variant (ReLU, max pooling, zero padding 2 in the first conv so a
    28x28 input keeps the classic 32x32 geometry):

    conv 5x5 x6 (pad 2) -> ReLU -> maxpool 2 -> conv 5x5 x16 -> ReLU -> maxpool 2 -> flatten
    -> fc 120 -> ReLU -> fc 84 -> ReLU -> fc classes.

    Input (C, H, W); on (1, 28, 28) with 10 classes: 61,706 parameters, 416,520 MACs per sample."""
    _require_rank("lenet5", input_shape, (3,), "(C, H, W) (an image; use cnn1d for time series)")
    c = input_shape[0]
    c1, c2 = channels
    layers: list[Module] = [
        Conv2d(c, c1, 5, padding=2, config=config, rng=rng, name="conv1", init=init), ReLU("relu1"),
        MaxPool2d(2, name="pool1"),
        Conv2d(c1, c2, 5, config=config, rng=rng, name="conv2", init=init), ReLU("relu2"), MaxPool2d(2, name="pool2"),
        Flatten("flatten")]
    features = _features(layers, input_shape, "lenet5")
    h1, h2 = hidden
    layers += [Linear(features, h1, config=config, rng=rng, name="fc1"), ReLU("relu3"),
               Linear(h1, h2, config=config, rng=rng, name="fc2"), ReLU("relu4"),
               Linear(h2, num_classes, config=config, rng=rng, name="fc3")]
    return Sequential(layers, input_shape, config, name="lenet5")


def _features(layers: list[Module], input_shape: tuple[int, ...], model: str) -> int:
    shape = tuple(input_shape)
    for layer in layers:
        try:
            shape = layer.output_shape(shape)
        except ShapeError as exc:
            raise ShapeError(f"{model}: input shape {tuple(input_shape)} is too small ({exc})") from None
    return int(np.prod(shape))


def cnn1d(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
          channels: tuple[int, ...] = (16, 32, 32), kernel_size: int = 5, first_kernel: int = 7,
          first_stride: int | None = None, pool: int | None = None, init: str = "he") -> Sequential:
    """1-D CNN for multichannel time series (C, L): blocks of Conv1d + ReLU + max pool, global
    average pooling and a linear head.

    block 1: conv k=``first_kernel`` (pad k//2, stride ``first_stride``) -> ReLU -> maxpool ``pool``;
    middle blocks: conv k=``kernel_size`` (pad k//2) -> ReLU -> maxpool 2;
    last block: conv k=3 (pad 1) -> ReLU; then global average pool -> fc classes.

    Long signals are thinned early: ``first_stride`` defaults to 2 and ``pool`` to 4 when
    ``L > 256`` (1 and 2 otherwise). A pool is skipped when the sequence is already shorter than
    its window. BasicMotions (6, 100), 4 classes: 6,516 parameters, 272,128 MACs per sample;
    bearing (1, 1024), 4 classes: 5,956 and 581,760; spectrum (2, 128), 2 classes: 6,002 and 290,880.
    """
    _require_rank("cnn1d", input_shape, (2,), "(C, L) (a multichannel time series)")
    if len(channels) < 2:
        raise ShapeError(f"cnn1d: needs at least two conv blocks, got channels={channels}")
    c, length = input_shape
    long_signal = length > 256
    first_stride = first_stride or (2 if long_signal else 1)
    pool = pool or (4 if long_signal else 2)
    layers: list[Module] = []
    cin, cur = c, (c, length)
    for i, cout in enumerate(channels):
        last = i == len(channels) - 1
        k = first_kernel if i == 0 else (3 if last else kernel_size)
        stride = first_stride if i == 0 else 1
        conv = Conv1d(cin, cout, k, stride=stride, padding=k // 2, config=config, rng=rng, name=f"conv{i + 1}",
                      init=init)
        layers += [conv, ReLU(f"relu{i + 1}")]
        cur = _advance(layers[-2:], cur, input_shape, "cnn1d")
        p = pool if i == 0 else 2
        if not last and cur[1] >= p:
            layers.append(MaxPool1d(p, name=f"pool{i + 1}"))
            cur = layers[-1].output_shape(cur)
        cin = cout
    layers += [GlobalAvgPool("gap"), Linear(cin, num_classes, config=config, rng=rng, name="fc")]
    return Sequential(layers, input_shape, config, name="cnn1d")


def _advance(layers: list[Module], shape: tuple[int, ...], input_shape, model: str) -> tuple[int, ...]:
    for layer in layers:
        try:
            shape = layer.output_shape(shape)
        except ShapeError as exc:
            raise ShapeError(f"{model}: input shape {tuple(input_shape)} is too small ({exc})") from None
    return tuple(shape)


def dscnn(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
          channels: int = 32, blocks: tuple[tuple[int, int], ...] = ((32, 1), (64, 2), (64, 1)),
          init: str = "he") -> Sequential:
    """Depthwise-separable CNN in the keyword-spotting style (DS-CNN) for (C, H, W) inputs (an image
    or a spectrogram, frequency x time):

    conv 3x3 x``channels`` stride 2 (pad 1) -> ReLU, then per ``(out, stride)`` in ``blocks``:
    depthwise 3x3 (stride, pad 1) -> ReLU -> pointwise 1x1 x``out`` -> ReLU; then global average
    pool -> fc classes.

    On (1, 28, 28) with 10 classes: 9,578 parameters, 657,632 MACs per sample."""
    _require_rank("dscnn", input_shape, (3,), "(C, H, W) (an image or spectrogram)")
    c = input_shape[0]
    layers: list[Module] = [Conv2d(c, channels, 3, stride=2, padding=1, config=config, rng=rng, name="conv1",
                                   init=init), ReLU("relu1")]
    cur = _advance(layers, input_shape, input_shape, "dscnn")
    cin = channels
    for i, (cout, stride) in enumerate(blocks, start=1):
        block = [Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, config=config, rng=rng, name=f"dw{i}",
                        init=init), ReLU(f"dw{i}_relu"),
                 Conv2d(cin, cout, 1, config=config, rng=rng, name=f"pw{i}", init=init), ReLU(f"pw{i}_relu")]
        cur = _advance(block, cur, input_shape, "dscnn")
        layers += block
        cin = cout
    layers += [GlobalAvgPool("gap"), Linear(cin, num_classes, config=config, rng=rng, name="fc")]
    return Sequential(layers, input_shape, config, name="dscnn")


def rescnn(input_shape: tuple[int, ...], num_classes: int, config: QuantConfig, rng: np.random.Generator,
           channels: tuple[int, int] = (16, 32), init: str = "he") -> Sequential:
    """A small residual CNN for (C, H, W) images (Conv2d) or (C, L) series (Conv1d):

    stem: conv 3 x``c1`` (pad 1) -> ReLU -> maxpool 2;
    res1: [conv 3 x``c1`` -> ReLU -> conv 3 x``c1``] + identity -> ReLU;
    res2: [conv 3 x``c2`` stride 2 -> ReLU -> conv 3 x``c2``] + [conv 1x1 x``c2`` stride 2] -> ReLU;
    global average pool -> fc classes (all 3-wide convs padded by 1).

    On (1, 28, 28) with 10 classes: 19,562 parameters, 1,718,848 MACs per sample."""
    _require_rank("rescnn", input_shape, (2, 3), "(C, H, W) or (C, L)")
    conv, pool = (Conv2d, MaxPool2d) if len(input_shape) == 3 else (Conv1d, MaxPool1d)
    c = input_shape[0]
    c1, c2 = channels

    def cv(cin, cout, k, name, stride=1):
        return conv(cin, cout, k, stride=stride, padding=k // 2, config=config, rng=rng, name=name, init=init)

    layers: list[Module] = [cv(c, c1, 3, "stem"), ReLU("stem_relu"), pool(2, name="stem_pool"),
                            Residual([cv(c1, c1, 3, "res1.conv1"), ReLU("res1.relu1"), cv(c1, c1, 3, "res1.conv2")],
                                     None, name="res1"),
                            ReLU("res1_relu"),
                            Residual([cv(c1, c2, 3, "res2.conv1", stride=2), ReLU("res2.relu1"),
                                      cv(c2, c2, 3, "res2.conv2")],
                                     [cv(c1, c2, 1, "res2.proj", stride=2)], name="res2"),
                            ReLU("res2_relu"), GlobalAvgPool("gap"), Linear(c2, num_classes, config=config, rng=rng,
                                                                           name="fc")]
    _advance(layers[:-2], input_shape, input_shape, "rescnn")
    return Sequential(layers, input_shape, config, name="rescnn")


# settings measured with plain SGD (docs/cnn.md, bench/results/): lr 0.5 (the MLP's) diverges here;
# every model decays by the zoo's one rule (tintin.nn.zoo.DECAY_AT)
_TRAINING = {
    "lenet5": TrainingDefaults(lr=0.1, epochs=20),
    "cnn1d": TrainingDefaults(lr=0.05, momentum_shift=3, epochs=30),
    "dscnn": TrainingDefaults(lr=0.05, momentum_shift=3, epochs=20),
    "rescnn": TrainingDefaults(lr=0.05, epochs=20),
}
for _name, _builder in (("lenet5", lenet5), ("cnn1d", cnn1d), ("dscnn", dscnn), ("rescnn", rescnn)):
    register_model(_name, _builder, _TRAINING[_name])
