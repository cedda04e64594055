"""The ``>>>`` examples in the docstrings of the public functions a user calls run and pass."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "tintin.data.registry",      # load
    "tintin.data.quantize",      # quantize_inputs
    "tintin.train.loop",         # fit
    "tintin.train.step",         # train_step, evaluate
    "tintin.compile.compiler",   # compile_program
    "tintin.codegen.project",    # generate_project
    "tintin.targets.ondevice",   # run_model
    "tintin.targets.stream",     # run_stream_on_target
    "tintin.checks.layers",      # check_layer
    "tintin.data.dataset",       # Dataset.from_arrays
    "tintin.data.files",         # check_model_fits
    "tintin.io.model_file",      # save_model, load_model
    "tintin.online.learner",     # OnlineLearner (learn_one / predict_one)
    "tintin.interop.importer",   # import_model
    "tintin.codegen.checkpoint",  # crc32 of the flash slots
    "tintin.targets.power_cuts",  # run_power_cuts
    "tintin.targets.native.fit",  # fit_native
    "tintin.train.finetune",     # finetune_lr_schedule, finetune_wide_layers, widen_finetuned_layers
    "tintin.nn.widen",           # widen_layers
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if name in ("tintin.targets.ondevice", "tintin.targets.power_cuts", "tintin.targets.stream",
                "tintin.targets.native.fit"):
        from tintin.targets import toolchain_status
        ok, reason = toolchain_status("host")
        if not ok:
            pytest.skip(reason)
    if name == "tintin.interop.importer":
        pytest.importorskip("onnxruntime", reason="the interop extra (make installs it)")
        pytest.importorskip("torch", reason="the torch extra (make installs it)")
    module = importlib.import_module(name)
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    tests = [t for t in finder.find(module) if t.examples]
    assert tests, f"{name} has no >>> examples"
    for test in tests:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"
