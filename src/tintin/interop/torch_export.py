"""A PyTorch ``nn.Module`` -> an ONNX ``ModelProto`` in memory (then the ONNX import path).

``torch.onnx.export(..., dynamo=False)`` (the TorchScript exporter, which needs only ``onnx``) with a
dynamic batch dimension, opset 17, the module in ``eval()`` mode (BatchNorm uses its running
statistics, Dropout is off). The module's training mode is restored afterwards.
"""

from __future__ import annotations

import io
import warnings

from .errors import InteropError, require

OPSET = 17


def torch_to_onnx(module, sample_shape: tuple[int, ...]):
    torch = require("torch", "torch", "importing a PyTorch module")
    from .onnx_reader import load_onnx

    was_training = module.training
    module.eval()
    buf = io.BytesIO()
    try:
        example = torch.zeros((1,) + tuple(sample_shape), dtype=torch.float32)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=OPSET,
                              input_names=["input"], output_names=["output"],
                              dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}})
    except Exception as exc:
        raise InteropError(f"torch.onnx.export failed for samples of shape {tuple(sample_shape)}: "
                           f"{str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__}") from None
    finally:
        module.train(was_training)
    return load_onnx(buf.getvalue())
