"""The optional packages the interop tests need: every test module here calls :func:`require` first,
so a missing package skips the module with the reason instead of failing it."""

import pytest

NEEDED = ("onnx", "onnxruntime", "torch")


def require(*more: str) -> None:
    for module in NEEDED + more:
        pytest.importorskip(module, reason=f"the interop tests need {module} (pip install 'tintin[interop,torch]')")
