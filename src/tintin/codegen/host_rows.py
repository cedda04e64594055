"""The C runtime's per-row weight-scale kernels (``runtime/tt_rows.c``) bound with ctypes.

Each function has the signature of its simulator counterpart (:mod:`tintin.ops.linear` with
``row_exp``, :meth:`tintin.optim.IntegerSGD.update` of a row-scaled weight) and returns
bit-identical results; the tests prove it over random shapes and values.

>>> import numpy as np
>>> from tintin.numerics import QTensor, Scale, ScaleMode
>>> from tintin.codegen import host_rows
>>> x = QTensor(np.array([[1, 2, 3]], np.int8), Scale(-7))
>>> w = QTensor(np.array([[100, 0, 0], [0, 64, 0]], np.int8), Scale(-7))
>>> y = host_rows.linear_forward_rows_s8(x, w, None, ScaleMode.POW2, np.array([0, 3], np.int8))
>>> y.m.tolist(), y.scale  # [1 * 100, round(2 * 64 / 2**3)] at 2**-14
([[100, 16]], Scale(S=-14, U=0, D=0))
"""

from __future__ import annotations

import ctypes

import numpy as np

from ..numerics import QTensor, Scale
from .host import (CConvShape, CDenseShape, CScale, CSgdConfig, CTiledUpdate, SgdConfig, _array, _call, _conv_out,
                   _conv_shape, _four, _mode, _pair, _ptr, _shape2, c_scale, declare, py_scale, tiled_update)

_P = ctypes.c_void_p
_PROTOTYPES = {
    "tt_linear_forward_rows_s8": [_P, CScale, _P, CScale, _P, _P, CScale, ctypes.POINTER(CDenseShape), ctypes.c_int,
                                  _P, _P, ctypes.POINTER(CScale)],
    "tt_linear_backward_input_rows_s8": [_P, CScale, _P, CScale, _P, ctypes.POINTER(CDenseShape), ctypes.c_int, _P,
                                         _P, ctypes.POINTER(CScale)],
    "tt_sgd_update_weight_rows_scaled_s8": [_P, ctypes.POINTER(CScale), _P, ctypes.c_size_t, ctypes.c_size_t, _P,
                                            CScale, ctypes.POINTER(CSgdConfig), ctypes.c_uint8, ctypes.c_uint32],
    "tt_sgd_update_weight_rows_scaled_select_s8": [_P, ctypes.POINTER(CScale), _P, ctypes.c_size_t, ctypes.c_size_t,
                                                   _P, ctypes.c_size_t, _P, CScale, ctypes.POINTER(CSgdConfig),
                                                   ctypes.c_uint8, ctypes.c_uint32],
    "tt_conv2d_forward_rows_s8": [_P, CScale, _P, CScale, _P, _P, CScale, ctypes.POINTER(CConvShape), ctypes.c_int,
                                  _P, _P, ctypes.POINTER(CScale)],
    "tt_conv2d_backward_input_rows_s8": [_P, CScale, _P, CScale, _P, ctypes.POINTER(CConvShape), ctypes.c_int, _P,
                                         _P, ctypes.POINTER(CScale)],
    "tt_sgd_update_tiled_rows_scaled_s8": [ctypes.POINTER(CTiledUpdate), _P, ctypes.c_uint8,
                                           ctypes.POINTER(CSgdConfig), ctypes.c_uint32],
}


def _lib():
    return declare(_PROTOTYPES, "_tt_rows_declared")


def _row_exp(row_exp, rows: int) -> np.ndarray:
    e = _array(row_exp, np.int8, "row_exp")
    if e.shape != (rows,):
        raise ValueError(f"row_exp must hold one exponent per row ({rows}), got shape {e.shape}")
    return e


def _dense(a: QTensor, name: str, weight: QTensor, row_exp, along_rows: bool):
    """``(a, weight, row_exp, batch, in_features, out_features)`` checked for a dense kernel whose
    operand ``a`` is (batch, out_features) when ``along_rows`` (an error), else (batch, in_features)."""
    am, wm = _array(a.m, np.int8, name), _array(weight.m, np.int8, "weight")
    batch, width = _shape2(am, name)
    n, k = _shape2(wm, "weight")
    if width != (n if along_rows else k):
        raise ValueError(f"{name} has {width} features but the weight expects {n if along_rows else k}")
    return am, wm, _row_exp(row_exp, n), batch, k, n


def linear_forward_rows_s8(x: QTensor, weight: QTensor, bias: QTensor | None, mode, row_exp) -> QTensor:
    """:func:`tintin.ops.linear_forward_s8` with ``row_exp`` (``tt_linear_forward_rows_s8``)."""
    _lib()
    xm, wm, e, batch, k, n = _dense(x, "x", weight, row_exp, False)
    bm, bscale = (None, Scale()) if bias is None else (_array(bias.m, np.int32, "bias"), bias.scale)
    acc = np.empty((batch, n), dtype=np.int32)
    y = np.empty((batch, n), dtype=np.int8)
    ys = CScale()
    _call("tt_linear_forward_rows_s8", _ptr(xm), c_scale(x.scale), _ptr(wm), c_scale(weight.scale), _ptr(e), _ptr(bm),
          c_scale(bscale), ctypes.byref(CDenseShape(batch, k, n)), _mode(mode), _ptr(acc), _ptr(y), ctypes.byref(ys))
    return QTensor(y, py_scale(ys))


def linear_backward_input_rows_s8(err: QTensor, weight: QTensor, mode, row_exp) -> QTensor:
    """:func:`tintin.ops.linear_backward_input_s8` with ``row_exp``."""
    _lib()
    em, wm, e, batch, k, n = _dense(err, "err", weight, row_exp, True)
    acc = np.empty((batch, k), dtype=np.int32)
    out = np.empty((batch, k), dtype=np.int8)
    cs = CScale()
    _call("tt_linear_backward_input_rows_s8", _ptr(em), c_scale(err.scale), _ptr(wm), c_scale(weight.scale), _ptr(e),
          ctypes.byref(CDenseShape(batch, k, n)), _mode(mode), _ptr(acc), _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def conv2d_forward_rows_s8(x: QTensor, weight: QTensor, bias: QTensor | None, stride, padding, groups, mode,
                           row_exp, *, scratch: bool = True) -> QTensor:
    """:func:`tintin.ops.conv.conv2d_forward_s8` with ``row_exp`` (``tt_conv2d_forward_rows_s8``;
    ``scratch=False``: no accumulator buffer, every sum computed twice)."""
    _lib()
    xm, wm = _four(x, "x"), _four(weight, "weight")
    shape = _conv_shape(xm.shape, wm.shape, stride, padding, groups)
    oh, ow = _conv_out(shape)
    e = _row_exp(row_exp, wm.shape[0])
    bm, bscale = (None, Scale()) if bias is None else (_array(bias.m, np.int32, "bias"), bias.scale)
    y = np.empty((xm.shape[0], wm.shape[0], oh, ow), np.int8)
    acc = np.empty(y.shape, np.int32) if scratch else None
    ys = CScale()
    _call("tt_conv2d_forward_rows_s8", _ptr(xm), c_scale(x.scale), _ptr(wm), c_scale(weight.scale), _ptr(e),
          _ptr(bm), c_scale(bscale), ctypes.byref(shape), _mode(mode), _ptr(acc), _ptr(y), ctypes.byref(ys))
    return QTensor(y, py_scale(ys))


def conv2d_backward_input_rows_s8(err: QTensor, weight: QTensor, input_hw, stride, padding, groups, mode, row_exp,
                                  *, scratch: bool = True) -> QTensor:
    """:func:`tintin.ops.conv.conv2d_backward_input_s8` with ``row_exp``."""
    _lib()
    em, wm = _four(err, "err"), _four(weight, "weight")
    shape = _conv_shape((em.shape[0], None), wm.shape, stride, padding, groups, _pair(input_hw))
    if _conv_out(shape) != em.shape[2:]:
        raise ValueError(f"err spatial shape {em.shape[2:]} does not match the forward geometry")
    e = _row_exp(row_exp, wm.shape[0])
    out = np.empty((em.shape[0], shape.in_channels, shape.in_h, shape.in_w), np.int8)
    acc = np.empty(out.shape, np.int32) if scratch else None
    cs = CScale()
    _call("tt_conv2d_backward_input_rows_s8", _ptr(em), c_scale(err.scale), _ptr(wm), c_scale(weight.scale), _ptr(e),
          ctypes.byref(shape), _mode(mode), _ptr(acc), _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def sgd_update_rows_scaled(value: QTensor, row_exp, grad: QTensor, config: SgdConfig, key: int,
                           row_limit: int, rows=None) -> tuple[QTensor, np.ndarray]:
    """The update of a row-scaled int8 weight: ``(new value, new row exponents)``, as
    :meth:`tintin.optim.IntegerSGD.update` (aligned rule, no momentum). ``rows``: the trained rows
    (``Parameter.trainable_rows``; ``grad`` then holds the full-size gradient, of which only those
    rows are read), or None: every row."""
    _lib()
    w = _array(value.m, np.int8, "weight").copy()
    count = w.shape[0]
    cols = w.size // count if count else 0
    e = _row_exp(row_exp, count).copy()
    g = _array(grad.m, np.int32, "grad").copy()
    if g.shape != w.shape:
        raise ValueError(f"gradient shape {g.shape} does not match the weight {w.shape}")
    ws = c_scale(value.scale)
    if rows is None:
        _call("tt_sgd_update_weight_rows_scaled_s8", _ptr(w), ctypes.byref(ws), _ptr(e), count, cols, _ptr(g),
              c_scale(grad.scale), ctypes.byref(config.to_c()), int(row_limit), int(key) & 0xFFFFFFFF)
    else:
        sel = np.ascontiguousarray(rows, dtype=np.uint16)
        gsel = np.ascontiguousarray(g.reshape(count, -1)[sel.astype(np.int64)])
        _call("tt_sgd_update_weight_rows_scaled_select_s8", _ptr(w), ctypes.byref(ws), _ptr(e), count, cols, _ptr(sel),
              sel.size, _ptr(gsel), c_scale(grad.scale), ctypes.byref(config.to_c()), int(row_limit),
              int(key) & 0xFFFFFFFF)
    return QTensor(w, py_scale(ws)), e


def sgd_update_tiled_rows_scaled(value: QTensor, row_exp, grad: QTensor, config: SgdConfig, key: int,
                                 row_limit: int, rows=None, tile_rows: int = 1) -> tuple[QTensor, np.ndarray]:
    """:func:`sgd_update_rows_scaled` through ``tt_sgd_update_tiled_rows_scaled_s8``: the kernel asks
    for the (selected) gradient ``tile_rows`` rows at a time."""
    _lib()
    t = tiled_update(value, grad, config, None, rows, tile_rows)
    if t.weights.dtype != np.int8:
        raise TypeError("row-scaled weights are int8")
    e = _row_exp(row_exp, t.weights.shape[0]).copy()
    _call("tt_sgd_update_tiled_rows_scaled_s8", ctypes.byref(t.u), _ptr(e), int(row_limit),
          ctypes.byref(config.to_c()), int(key) & 0xFFFFFFFF)
    return QTensor(t.weights, py_scale(t.w_scale)), e
