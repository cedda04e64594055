"""The model loader against hostile and corrupt files: only ModelFileError escapes, nothing is
allocated before the file proves it holds the data, and every file that loads can train."""

import time
import tracemalloc

import numpy as np
import pytest

from tintin.errors import TintinError
from tintin.io import ModelFileError, load_model, load_model_bytes, model_file_bytes
from tintin.nn import (ChannelScale, Context, Conv1d, Flatten, Linear, MaxPool1d, QuantConfig, ReLU, Sequential,
                       build_model)
from tintin.numerics import RoundingStream
from tintin.optim import IntegerSGD, OptimConfig
from tintin.train import evaluate, predict, train_step

from model_file_mutations import assemble, mutate, raw_value, split

#: interpreter noise (small Python objects, caches) on top of the 10x budget
SLACK_BYTES = 256 * 1024


def trained_a_step(model, momentum_shift=2):
    opt = IntegerSGD(model.parameters(), OptimConfig(momentum_shift=momentum_shift), model.config.scale_mode)
    rng = np.random.default_rng(0)
    x = rng.integers(-127, 128, (3,) + model.input_shape).astype(np.int8)
    if model.loss == "cross_entropy":
        y = rng.integers(0, model.output_shape_[0], 3)
    else:
        y = rng.integers(-127, 128, (3,) + model.output_shape_).astype(np.int8)
    train_step(model, opt, x, y, Context(training=True, stream=RoundingStream(1)))
    return opt, x, y


def base_files() -> dict[str, bytes]:
    """Three models covering the layer types, both scale modes, int8 / int16 weights, momentum,
    trainable rows and both losses."""
    mlp = Sequential([Flatten(name="flat"), Linear(256, 96, name="fc1"), ReLU(name="relu"), Linear(96, 5, name="fc2")],
                     (1, 16, 16), QuantConfig(), name="mlp")
    mlp.parameters()[2].trainable_rows = np.array([0, 3, 4])
    trained_a_step(mlp)
    res = build_model("rescnn", (1, 8, 8), 4, QuantConfig(scale_mode="pow2", weight_bits=16), seed=2)
    trained_a_step(res)
    cfg = QuantConfig(upscale_init=False)
    seq = Sequential([Conv1d(3, 32, 3, config=cfg, name="c1"), ChannelScale(32, config=cfg, name="cs"),
                      ReLU(name="r"), MaxPool1d(2, name="p"), Flatten(name="f"), Linear(224, 64, config=cfg, name="fc")],
                     (3, 16), cfg, loss="mse", name="reg", input_exponent=-5)
    trained_a_step(seq)
    return {name: model_file_bytes(m, {"dataset": "synthetic", "n": i}, include_optimizer_state=True)
            for i, (name, m) in enumerate([("mlp", mlp), ("rescnn", res), ("mse", seq)])}


@pytest.fixture(scope="module")
def bases():
    return base_files()


def tensor_bytes(blob: bytes) -> int:
    header = split(blob).header
    return sum(e["data_offsets"][1] - e["data_offsets"][0] for k, e in header.items() if k != "__metadata__")


def write(tmp_path, blob, name="m.safetensors"):
    path = tmp_path / name
    path.write_bytes(blob)
    return path


def changed(blob, change):
    parts = split(blob)
    change(parts)
    return assemble(parts)


def expect_error(tmp_path, blob, pattern):
    with pytest.raises(ModelFileError, match=pattern) as info:
        load_model(write(tmp_path, blob))
    assert "\n" not in str(info.value)


# -- the defects found by the audit, one by one ------------------------------------------------------
def test_valid_files_load_bit_exact_and_train(tmp_path, bases):
    for name, blob in bases.items():
        model, info = load_model(write(tmp_path, blob, name))
        assert info["dataset"] == "synthetic"
        assert model_file_bytes(model, info, include_optimizer_state=True) == blob
        trained_a_step(model)


def test_nested_json_is_a_model_file_error(tmp_path, bases):
    blob = changed(bases["mlp"], lambda p: p.doc["spec"].__setitem__("layers", raw_value(p, "[" * 100000 + "]" * 100000)))
    expect_error(tmp_path, blob, "nested too deeply")


def test_bf16_tensor_is_a_model_file_error(tmp_path, bases):
    blob = changed(bases["rescnn"], lambda p: p.header["stem.weight"].__setitem__("dtype", "BF16"))
    expect_error(tmp_path, blob, "dtype 'BF16'.*I8, I16, I32, I64")


@pytest.mark.parametrize("text", ["9" * 5000, "1" + "0" * 40, "1e999", "-" + "9" * 30])
def test_huge_numbers_are_model_file_errors(tmp_path, bases, text):
    def in_layer(p):
        p.doc["spec"]["layers"][1]["in_features"] = raw_value(p, text)

    def in_scale(p):
        p.doc["parameters"]["fc1.weight"]["scale"][0] = raw_value(p, text)

    for change in (in_layer, in_scale):
        expect_error(tmp_path, changed(bases["mlp"], change), "not valid JSON|must be an integer")


def test_a_huge_layer_description_allocates_nothing(tmp_path, bases):
    def huge(p):
        p.doc["spec"]["layers"][1]["out_features"] = 20000
        p.doc["spec"]["layers"][1]["in_features"] = 20000
    path = write(tmp_path, changed(bases["mlp"], huge))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="description is invalid|fc1"):
            load_model(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * path.stat().st_size + SLACK_BYTES


def test_a_huge_layer_matching_its_description_is_still_refused_before_reading(tmp_path, bases):
    def huge(p):  # the description and the header agree on a 400 MB tensor the file does not hold
        p.doc["spec"]["layers"][1]["out_features"] = 20000
        p.doc["spec"]["layers"][1]["in_features"] = 20000
        p.header["fc1.weight"]["shape"] = [20000, 20000]
    expect_error(tmp_path, changed(bases["mlp"], huge), "bytes stored for shape|outside the file")


def test_momentum_dtype_and_shape(tmp_path, bases):
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.header["fc1.weight.momentum"].__setitem__("dtype", "I32")),
                 "fc1.weight.momentum")
    # fc2.weight trains rows [0, 3, 4]: its momentum has 3 rows, the full shape is refused
    def full(p):
        p.doc["parameters"]["fc2.weight"]["trainable_rows"] = None
    expect_error(tmp_path, changed(bases["mlp"], full), r"fc2.weight.momentum has shape \(3, 96\).*needs \(5, 96\)")


@pytest.mark.parametrize("rows,pattern", [([0, 0, 1], "repeats"), ([5], r"in \[0, 4\]"), ([-1], r"in \[0, 4\]"),
                                          (["1"], "integer"), ([1.0, 2.0, 3.0], "integer"), ([True, 1, 2], "integer"),
                                          (3, "null or a list")])
def test_trainable_rows(tmp_path, bases, rows, pattern):
    blob = changed(bases["mlp"], lambda p: p.doc["parameters"]["fc2.weight"].__setitem__("trainable_rows", rows))
    expect_error(tmp_path, blob, pattern)


@pytest.mark.parametrize("index,value", [(0, 40000), (0, -129), (0, 128), (1, 3), (2, -1), (1, 64)])
def test_scale_exponents_stay_in_range(tmp_path, bases, index, value):
    def change(p):
        p.doc["parameters"]["fc1.weight"]["scale"][index] = value
    expect_error(tmp_path, changed(bases["mlp"], change), "scale exponent")


def test_bias_scale_has_no_u_d_steps_and_input_exponent_is_bounded(tmp_path, bases):
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.doc["parameters"]["fc1.bias"]["scale"].__setitem__(1, 1)),
                 "scale exponent U")
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.doc["spec"].__setitem__("input_exponent", 40000)),
                 "input_exponent")


@pytest.mark.parametrize("base,tensor,limit", [("mlp", "fc1.weight", -128), ("rescnn", "stem.weight", -32768),
                                               ("mlp", "fc1.bias", 2**31 - 1)])
def test_weights_outside_the_symmetric_range_are_refused(tmp_path, bases, base, tensor, limit):
    def change(p):
        data = bytearray(p.data)
        start, _ = p.header[tensor]["data_offsets"]
        size = {"I8": 1, "I16": 2, "I32": 4}[p.header[tensor]["dtype"]]
        data[start:start + size] = limit.to_bytes(size, "little", signed=True)
        p.data = bytes(data)
    expect_error(tmp_path, changed(bases[base], change), f"{tensor} holds values in .*{limit}")


@pytest.mark.parametrize("version", [" 1", "\u0661", "01", "1 ", "\uff11", "1.0", "+1"])
def test_format_version_must_be_exactly_one(tmp_path, bases, version):
    blob = changed(bases["mlp"], lambda p: p.header["__metadata__"].__setitem__("format_version", version))
    expect_error(tmp_path, blob, "unreadable format version")


def test_unknown_tensors_and_bad_types(tmp_path, bases):
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.header.__setitem__("extra", p.header.pop("fc1.bias"))),
                 "tensor fc1.bias is missing")
    def extra(p):
        p.header["extra"] = dict(p.header["fc1.bias"])
        p.header["fc1.bias"]["data_offsets"] = list(p.header["fc1.bias"]["data_offsets"])
    expect_error(tmp_path, changed(bases["mlp"], extra), "overlaps")
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.doc["spec"]["layers"][1].__setitem__("in_features", 256.0)),
                 "integer")
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.doc["spec"]["config"].__setitem__("weight_bits", "8")),
                 "config")
    for value, what in (("up", "loss_error_rounding"), (1, "config")):
        expect_error(tmp_path, changed(bases["mlp"],
                                       lambda p: p.doc["spec"]["config"].__setitem__("loss_error_rounding", value)),
                     what)
    expect_error(tmp_path, changed(bases["mlp"], lambda p: p.doc["spec"]["layers"][1].__setitem__("type", "Lin")),
                 "unknown layer type")


# -- the fuzz test -------------------------------------------------------------------------------
MUTATIONS = 2400


def test_fuzzed_model_files(tmp_path, bases):
    """Seeded mutations of three model files (bytes, truncations, header and JSON document): only
    ModelFileError escapes, no load allocates more than 10x the file's tensor bytes (or its size,
    when a mutation made it larger) plus a fixed allowance for interpreter objects, and every file
    that loads trains a step, evaluates and predicts. It prints its duration (about 20 s on an idle
    machine); speed is not asserted here."""
    rng = np.random.default_rng(20261206)
    names = sorted(bases)
    escaped, over_budget, failed_after_load = [], [], []
    loaded = 0
    t0 = time.perf_counter()
    declared = {name: tensor_bytes(blob) for name, blob in bases.items()}
    for i in range(MUTATIONS):
        base = names[i % len(names)]
        blob, what = mutate(bases[base], rng)
        on_disk = i % 8 == 0  # one in eight through a real file, the rest from memory (same checks)
        if on_disk:
            path = tmp_path / f"fuzz{i}.safetensors"  # a new file: rewriting one in place is slow on ext4
            path.write_bytes(blob)
        budget = 10 * max(declared[base], len(blob)) + SLACK_BYTES
        tracemalloc.start()  # traces the load alone: every byte it allocates counts
        try:
            model, _ = load_model(path) if on_disk else load_model_bytes(blob, what)
        except ModelFileError as exc:
            assert "\n" not in str(exc)
            model = None
        except BaseException as exc:  # noqa: BLE001 - the test reports every other escape
            escaped.append(f"{what}: {type(exc).__name__}: {str(exc)[:100]}")
            model = None
        finally:
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            if on_disk:
                path.unlink()
        if peak > budget:
            over_budget.append(f"{what}: {peak} bytes > {budget}")
        if model is None:
            continue
        loaded += 1
        try:
            _, x, y = trained_a_step(model)
            predict(model, x)
            if model.loss == "cross_entropy":
                evaluate(model, x, y)
        except TintinError:
            pass  # a clean one-line refusal (e.g. an accumulator bound) is acceptable
        except Exception as exc:  # noqa: BLE001
            failed_after_load.append(f"{what}: {type(exc).__name__}: {str(exc)[:100]}")
    seconds = time.perf_counter() - t0
    print(f"{MUTATIONS} mutations, {loaded} loaded and trained, {seconds:.1f} s")
    assert not escaped, escaped[:10]
    assert not over_budget, over_budget[:10]
    assert not failed_after_load, failed_after_load[:10]
    assert loaded >= MUTATIONS // 20  # the train-after-load path is exercised
