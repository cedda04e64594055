"""The comparison of device output with the simulator finds every kind of difference."""

import numpy as np

from codegen_helpers import order_for, random_data
from tintin.codegen import generate_project
from tintin.codegen.model_c import DTYPE_CODE
from tintin.targets.compare import DeviceOutput, compare, fnv1a, parse_output, simulate
from tintin.nn import build_model


def _device_from(ref, project, dump=True):
    """What a correct device would print, as parsed records."""
    out = DeviceOutput(complete=True)
    out.steps = [(0, loss, tuple(scale), list(preds)) for loss, scale, preds in ref.steps]
    out.evals = [(0, c) for c in ref.evals]
    for e in project.model.params:
        scale, data = ref.entries[e.index]
        out.params[e.index] = {"role": e.role, "dtype": DTYPE_CODE[e.dtype],
                               "count": e.count, "scale": tuple(scale) if scale else (0, 0, 0), "fnv": fnv1a(data)}
        if dump:
            out.dumps[e.index] = data
    return out


def test_compare_finds_each_difference(tmp_path):
    model = build_model("mlp", (1, 8, 8), 10, seed=1)
    project = generate_project(model, tmp_path, example=False)
    x, y = random_data(model, 10)
    o = order_for(10, 4)
    ref = simulate(model, project, x_samples=x, y_samples=y, order=o, steps=4, seed=0, epoch_starts=None,
                   eval_x=x[:3])
    good = _device_from(ref, project)
    assert compare(good, ref, project, steps=4, n_eval=3, classifier=True) == []

    bad = _device_from(ref, project)
    data = bytearray(bad.dumps[0])
    data[17] ^= 1
    bad.dumps[0] = bytes(data)
    assert any("fc1.weight: 1 of 4096 values differ (first at 17" in m
               for m in compare(bad, ref, project, steps=4, n_eval=3, classifier=True))

    bad = _device_from(ref, project, dump=False)
    bad.params[2]["fnv"] ^= 1
    assert any(m.startswith("fc2.weight: checksum") for m in compare(bad, ref, project, steps=4, n_eval=3,
                                                                      classifier=True))
    bad = _device_from(ref, project)
    bad.params[1]["scale"] = (0, 0, 0)
    assert any(m.startswith("fc1.bias: scale") for m in compare(bad, ref, project, steps=4, n_eval=3, classifier=True))

    bad = _device_from(ref, project)
    bad.steps[2] = (0, bad.steps[2][1] + 1, bad.steps[2][2], bad.steps[2][3])
    bad.evals[1] = (0, (bad.evals[1][1] + 1) % 10)
    bad.complete = False
    found = compare(bad, ref, project, steps=4, n_eval=3, classifier=True)
    assert any(m.startswith("step 2: loss") for m in found)
    assert any(m.startswith("evaluation 1:") for m in found)
    assert any("ends before END" in m for m in found)


def test_compare_names_the_first_differing_byte_of_an_error_feedback_plane(tmp_path):
    """A plane entry (uint8 bytes) that differs is reported like any tensor, not a lookup failure."""
    from tintin.optim import OptimConfig

    model = build_model("mlp", (1, 8, 8), 10, seed=1)
    project = generate_project(model, tmp_path, example=False,
                               optim=OptimConfig(lr=0.05, error_feedback=("*",), feedback_bits=4))
    x, y = random_data(model, 10)
    ref = simulate(model, project, x_samples=x, y_samples=y, order=order_for(10, 3), steps=3, seed=0,
                   epoch_starts=None, eval_x=x[:2])
    plane = next(e for e in project.model.params if e.name == "fc1.weight.remainder")
    assert plane.dtype == "uint8"
    bad = _device_from(ref, project)
    assert compare(bad, ref, project, steps=3, n_eval=2, classifier=True) == []
    data = bytearray(bad.dumps[plane.index])
    data[5] ^= 0x10
    bad.dumps[plane.index] = bytes(data)
    assert any(m.startswith(f"fc1.weight.remainder: 1 of {len(data)} values differ (first at 5")
               for m in compare(bad, ref, project, steps=3, n_eval=2, classifier=True))


def test_parse_output_records():
    text = "\n".join(["S 0 0 0xffffffff 0xfffffffe -16,0,0 3 4", "E 0 0 7", "P 0 1 1 4 -9,0,2 0x0000abcd",
                      "H 0 0102", "H 0 ff80", "C 0x12345678", "END"])
    out = parse_output(text, classifier=True)
    assert out.steps == [(0, -2, (-16, 0, 0), [3, 4])]
    assert out.evals == [(0, 7)] and out.checksum == 0x12345678 and out.complete
    assert out.params[0]["scale"] == (-9, 0, 2) and out.dumps[0] == bytes([1, 2, 255, 128])
    assert np.frombuffer(out.dumps[0], dtype=np.int8).tolist() == [1, 2, -1, -128]
