"""The C runtime's error-feedback update (``runtime/tt_sgd_feedback.c``) bound with ctypes.

:func:`sgd_update_feedback` has the signature of :meth:`tintin.optim.IntegerSGD.update` for a weight
the optimiser feeds back (``OptimConfig.error_feedback``, ``feedback_bits``) and returns bit-identical
results; the remainder travels as the packed plane of :mod:`tintin.numerics.bitplane`, as on a device.

>>> import numpy as np
>>> from tintin.numerics import QTensor, Rounding, Scale
>>> from tintin.codegen.host import SgdConfig
>>> from tintin.codegen.host_feedback import sgd_update_feedback
>>> w = QTensor(np.zeros(4, np.int8), Scale(-7))
>>> g = QTensor(np.full(4, -2**7, np.int32), Scale(-16))  # lr 1: a quarter of a weight step each
>>> cfg = SgdConfig(lr=Scale(0), rounding=Rounding.NEAREST)
>>> r = np.zeros(4, np.int8)
>>> for _ in range(4):
...     w, r = sgd_update_feedback(w, r, g, cfg, key=0, bits=2)
...     print(w.m.tolist(), r.tolist())
[0, 0, 0, 0] [1, 1, 1, 1]
[1, 1, 1, 1] [-2, -2, -2, -2]
[1, 1, 1, 1] [-1, -1, -1, -1]
[1, 1, 1, 1] [0, 0, 0, 0]
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..numerics import QTensor
from ..numerics.bitplane import pack_plane, unpack_plane
from .host import (CScale, CSgdConfig, CTiledUpdate, SgdConfig, _array, _call, _ptr, c_scale, declare, py_scale,
                   tiled_update)

_P, _SZ, _U8, _U32 = ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint8, ctypes.c_uint32
_PROTOTYPES = {
    "tt_sgd_update_weight_feedback_s8": [_P, ctypes.POINTER(CScale), _P, _U8, _SZ, _P, CScale,
                                         ctypes.POINTER(CSgdConfig), _U32],
    "tt_sgd_update_weight_feedback_rows_s8": [_P, CScale, _P, _U8, _SZ, _SZ, _P, _SZ, _P, CScale,
                                              ctypes.POINTER(CSgdConfig), _U32],
    "tt_sgd_update_tiled_feedback_s8": [ctypes.POINTER(CTiledUpdate), _P, _U8, ctypes.POINTER(CSgdConfig), _U32],
}


def _lib():
    return declare(_PROTOTYPES, "_tt_feedback_declared")


def sgd_update_feedback(value: QTensor, remainder, grad: QTensor, config: SgdConfig, key: int, bits: int,
                        rows=None) -> tuple[QTensor, np.ndarray]:
    """One update of an int8 weight with its ``bits``-bit remainder: ``(new value, new remainder)``
    (int8 array of the weight's shape). ``key``: the stream key of site ``4 * i + 1``. ``rows``: the
    trained rows (``grad`` holds the full-size gradient, only those rows are read), or None."""
    _lib()
    w = _array(value.m, np.int8, "weight").copy()
    r = _array(remainder, np.int8, "remainder")
    if r.shape != w.shape:
        raise ValueError(f"remainder shape {r.shape} does not match the weight {w.shape}")
    plane = pack_plane(r, bits)
    g = _array(grad.m, np.int32, "grad").copy()
    if g.shape != w.shape:
        raise ValueError(f"gradient shape {g.shape} does not match the weight {w.shape}")
    ws = c_scale(value.scale)
    cfg = config.to_c()
    key = int(key) & 0xFFFFFFFF
    if rows is None:
        _call("tt_sgd_update_weight_feedback_s8", _ptr(w), ctypes.byref(ws), _ptr(plane), int(bits), w.size, _ptr(g),
              c_scale(grad.scale), ctypes.byref(cfg), key)
    else:
        count = w.shape[0]
        sel = np.ascontiguousarray(rows, dtype=np.uint16).ravel()
        if np.unique(sel).size != sel.size:
            raise ValueError("sparse-update rows must be distinct")
        gsel = np.ascontiguousarray(g.reshape(count, -1)[sel.astype(np.int64)])
        _call("tt_sgd_update_weight_feedback_rows_s8", _ptr(w), ws, _ptr(plane), int(bits), count,
              w.size // count if count else 0, _ptr(sel), sel.size, _ptr(gsel), c_scale(grad.scale),
              ctypes.byref(cfg), key)
    return QTensor(w, py_scale(ws)), unpack_plane(plane, bits, w.size).reshape(w.shape)


def sgd_update_tiled_feedback(value: QTensor, remainder, grad: QTensor, config: SgdConfig, key: int, bits: int,
                              rows=None, tile_rows: int = 1) -> tuple[QTensor, np.ndarray]:
    """:func:`sgd_update_feedback` through ``tt_sgd_update_tiled_feedback_s8``: the kernel asks for
    the (selected) gradient ``tile_rows`` rows at a time."""
    _lib()
    t = tiled_update(value, grad, config, None, rows, tile_rows)
    if t.weights.dtype != np.int8:
        raise TypeError("error feedback is kept beside int8 weights")
    r = _array(remainder, np.int8, "remainder")
    if r.shape != value.m.shape:
        raise ValueError(f"remainder shape {r.shape} does not match the weight {value.m.shape}")
    plane = pack_plane(r, bits)
    _call("tt_sgd_update_tiled_feedback_s8", ctypes.byref(t.u), _ptr(plane), int(bits), ctypes.byref(config.to_c()),
          int(key) & 0xFFFFFFFF)
    return QTensor(t.weights, py_scale(t.w_scale)), unpack_plane(plane, bits, value.m.size).reshape(value.m.shape)
