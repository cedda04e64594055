"""Pooling (max, average, global average; 2-D and 1-D): forward and backward side by side.

Layout NCHW (1-D: NCL; the 1-D functions are the 2-D ones on (B, C, 1, L) with a (1, k) window).
Windows have no padding: ``Ho = (H - kH) // sH + 1`` (same for W); trailing rows and columns that
no window covers get a zero error. ``stride=None`` means ``stride = kernel``.

Max pool (integer definition)
    Forward: ``y[b,c,p,q] = max`` of the int8 window, scale unchanged (no arithmetic). The window's
    *argmax* is the **first** maximum in row-major window order (offset ``i*kW + j``, smallest
    first): ties go to the top-left element. Backward: every output error goes to its window's
    argmax; when windows overlap (stride < kernel) one input position can receive several errors,
    which are **added in int32** and the sum is rescaled to int8 (nearest rounding, scale adjusted
    exactly) only if it leaves [-127, 127]. Without overlap each input gets at most one error and
    the error keeps its mantissas and scale.

Average pool (integer definition)
    The window sum ``s`` (int32, ``|s| <= 127 * W`` for a window of ``W = kH * kW`` elements) is
    multiplied by a fixed-point reciprocal ``M ~= 2**n / W`` (:func:`avgpool_multiplier`) and the
    product is kept at scale ``s_x * 2**-n``, then rescaled to int8 like every accumulator (nearest
    rounding). ``M`` has at most 15 bits and fewer for large windows, so that ``|s * M| <= 2**30``;
    for ``W = 2**k``, ``M = 1`` and ``n = k``: the division is an exact change of scale. Otherwise
    ``M / 2**n`` differs from ``1/W`` by a relative error of at most ``2**-b`` (``b`` the multiplier
    bits: 15 for windows up to 64 elements, 8 for 8192). Backward: input position ``(y, x)`` receives
    ``sum err[b,c,p,q] * M`` over the windows that contain it (int32, at most
    ``ceil(kH/sH)*ceil(kW/sW)`` terms), at scale ``s_err * 2**-n``, rescaled to int8 (nearest).
    Global average pooling is the same with one window covering all positions; its output is
    (B, C).
"""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, ScaleMode, rescale

Pair = tuple[int, int]


def _pair(v) -> Pair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _geometry(in_hw: Pair, kernel_size, stride) -> tuple[Pair, Pair, Pair]:
    kernel = _pair(kernel_size)
    stride = kernel if stride is None else _pair(stride)
    ho = (in_hw[0] - kernel[0]) // stride[0] + 1
    wo = (in_hw[1] - kernel[1]) // stride[1] + 1
    if ho < 1 or wo < 1 or min(kernel) < 1 or min(stride) < 1:
        raise ValueError(f"pooling window {kernel} (stride {stride}) does not fit the input {in_hw}")
    return kernel, stride, (ho, wo)


def _offset_view(x: np.ndarray, i: int, j: int, stride: Pair, out_hw: Pair) -> np.ndarray:
    """``x[:, :, i + p*sH, j + q*sW]`` for all output positions (p, q), as a strided view."""
    sh, sw = stride
    ho, wo = out_hw
    return x[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]


def _require_s8(what: str, a: np.ndarray) -> None:
    """The average-pool accumulator bound assumes int8 mantissas (|m| <= 127)."""
    if a.dtype != np.int8:
        raise TypeError(f"{what} must hold int8 mantissas, got {a.dtype}")


def _index_dtype(area: int):
    return np.uint8 if area <= 256 else np.int32


# -- max pool ------------------------------------------------------------------------------------
def maxpool2d_forward_s8(x: QTensor, kernel_size, stride=None) -> tuple[QTensor, np.ndarray]:
    """Max pool of (B, C, H, W) int8. Returns ``(y, argmax)``: ``y`` (B, C, Ho, Wo) int8 at ``x``'s
    scale and the window offset ``i*kW + j`` of the first maximum (uint8 for windows up to 256
    elements, else int32), kept for the backward pass."""
    kernel, stride, out_hw = _geometry(x.m.shape[2:], kernel_size, stride)
    kh, kw = kernel
    y = _offset_view(x.m, 0, 0, stride, out_hw).copy()
    arg = np.zeros(y.shape, dtype=_index_dtype(kh * kw))
    for i in range(kh):
        for j in range(kw):
            if i == 0 and j == 0:
                continue
            v = _offset_view(x.m, i, j, stride, out_hw)
            np.copyto(arg, i * kw + j, where=v > y)  # strictly greater: the first maximum wins
            np.maximum(y, v, out=y)
    return QTensor(y, x.scale), arg


def maxpool2d_backward_s8(err: QTensor, argmax: np.ndarray, input_hw, kernel_size, stride=None,
                          mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Input error (B, C, H, W) int8: each output error added (int32) at its window's argmax, then
    rescaled to int8 (nearest) only where overlapping windows pushed a sum out of range."""
    in_hw = _pair(input_hw)
    kernel, stride, out_hw = _geometry(in_hw, kernel_size, stride)
    kh, kw = kernel
    b, c = err.m.shape[:2]
    overlap = stride[0] < kh or stride[1] < kw
    acc = np.zeros((b, c) + in_hw, dtype=np.int32 if overlap else np.int8)
    zero = err.m.dtype.type(0)
    for i in range(kh):
        for j in range(kw):
            routed = np.where(argmax == i * kw + j, err.m, zero)
            view = _offset_view(acc, i, j, stride, out_hw)
            if overlap:
                view += routed
            else:  # every input position belongs to at most one window
                view[...] = routed
    if not overlap:
        return QTensor(acc, err.scale)
    q, s = rescale(acc, err.scale, 8, mode)
    return QTensor(q, s)


# -- average pool --------------------------------------------------------------------------------
def avgpool_multiplier(window: int) -> tuple[int, int]:
    """Fixed-point reciprocal ``(M, n)`` of a window of ``window`` elements: ``M / 2**n ~= 1/window``.

    ``b = min(15, 30 - bitlen(127 * window))`` multiplier bits (so ``127 * window * M <= 2**30``);
    ``n = b + bitlen(window) - 1``; ``M = floor((2**n + window // 2) / window)`` (nearest, half up);
    then common factors of two are removed (``window = 2**k`` gives ``(1, k)``: exact)."""
    if window < 1:
        raise ValueError(f"an averaging window needs at least one element, got {window}")
    bits = min(15, 30 - (127 * window).bit_length())
    if bits < 1:
        raise ValueError(f"averaging window of {window} elements is too large for an int32 accumulator")
    n = bits + window.bit_length() - 1
    m = ((1 << n) + window // 2) // window
    while m % 2 == 0 and n > 0:
        m >>= 1
        n -= 1
    return m, n


def avgpool2d_forward_s8(x: QTensor, kernel_size, stride=None, mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Average pool of (B, C, H, W) int8: window sums (int32) times the fixed-point reciprocal,
    at scale ``s_x * 2**-n``, rescaled to int8 (nearest)."""
    _require_s8("average pool input", x.m)
    kernel, stride, out_hw = _geometry(x.m.shape[2:], kernel_size, stride)
    kh, kw = kernel
    acc = _offset_view(x.m, 0, 0, stride, out_hw).astype(np.int32)
    for i in range(kh):
        for j in range(kw):
            if i or j:
                acc += _offset_view(x.m, i, j, stride, out_hw)
    m, n = avgpool_multiplier(kh * kw)
    if m != 1:
        acc *= m
    q, s = rescale(acc, x.scale.shifted(-n), 8, mode)
    return QTensor(q, s)


def avgpool2d_backward_s8(err: QTensor, input_hw, kernel_size, stride=None,
                          mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Input error (B, C, H, W) int8: every input position sums ``err * M`` over the windows that
    contain it (int32) at scale ``s_err * 2**-n``, rescaled to int8 (nearest)."""
    _require_s8("average pool error", err.m)
    in_hw = _pair(input_hw)
    kernel, stride, out_hw = _geometry(in_hw, kernel_size, stride)
    kh, kw = kernel
    m, n = avgpool_multiplier(kh * kw)
    e = err.m.astype(np.int32)
    if m != 1:
        e *= m
    acc = np.zeros(err.m.shape[:2] + in_hw, dtype=np.int32)
    for i in range(kh):
        for j in range(kw):
            _offset_view(acc, i, j, stride, out_hw)[...] += e
    q, s = rescale(acc, err.scale.shifted(-n), 8, mode)
    return QTensor(q, s)


def global_avgpool_forward_s8(x: QTensor, mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Mean over all positions of a (B, C, ...) int8 tensor -> (B, C) int8 (one window of all
    positions: sum in int32, fixed-point reciprocal, rescale)."""
    _require_s8("global average pool input", x.m)
    b, c = x.m.shape[:2]
    area = int(np.prod(x.m.shape[2:], dtype=np.int64))
    m, n = avgpool_multiplier(area)
    acc = x.m.reshape(b, c, area).sum(axis=2, dtype=np.int32)
    if m != 1:
        acc *= m
    q, s = rescale(acc, x.scale.shifted(-n), 8, mode)
    return QTensor(q, s)


def global_avgpool_backward_s8(err: QTensor, input_shape: tuple[int, ...],
                               mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    """Input error (B, C, *input_shape[1:]) int8: ``err * M`` at scale ``s_err * 2**-n`` rescaled to
    int8 (nearest), the same value at every position of a channel. ``input_shape`` is the
    per-sample shape (C, ...)."""
    _require_s8("global average pool error", err.m)
    spatial = tuple(int(v) for v in input_shape[1:])
    area = int(np.prod(spatial, dtype=np.int64))
    m, n = avgpool_multiplier(area)
    acc = err.m.astype(np.int32)
    if m != 1:
        acc *= m
    q, s = rescale(acc, err.scale.shifted(-n), 8, mode)
    b, c = err.m.shape
    full = np.broadcast_to(q.reshape((b, c) + (1,) * len(spatial)), (b, c) + spatial)
    return QTensor(np.ascontiguousarray(full), s)


# -- 1-D: the 2-D kernels on (B, C, 1, L) ---------------------------------------------------------
def _as_2d(t: QTensor) -> QTensor:
    return QTensor(t.m[:, :, None, :], t.scale)


def _k1(kernel_size: int, stride) -> tuple[Pair, Pair | None]:
    return (1, int(kernel_size)), (None if stride is None else (1, int(stride)))


def maxpool1d_forward_s8(x: QTensor, kernel_size: int, stride: int | None = None) -> tuple[QTensor, np.ndarray]:
    """Max pool of (B, C, L) int8 -> ``(y (B, C, Lo), argmax (B, C, Lo))`` (first maximum wins)."""
    k, s = _k1(kernel_size, stride)
    y, arg = maxpool2d_forward_s8(_as_2d(x), k, s)
    return QTensor(y.m[:, :, 0, :], y.scale), arg[:, :, 0, :]


def maxpool1d_backward_s8(err: QTensor, argmax: np.ndarray, input_length: int, kernel_size: int,
                          stride: int | None = None, mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    k, s = _k1(kernel_size, stride)
    e = maxpool2d_backward_s8(_as_2d(err), argmax[:, :, None, :], (1, input_length), k, s, mode)
    return QTensor(e.m[:, :, 0, :], e.scale)


def avgpool1d_forward_s8(x: QTensor, kernel_size: int, stride: int | None = None,
                         mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    k, s = _k1(kernel_size, stride)
    y = avgpool2d_forward_s8(_as_2d(x), k, s, mode)
    return QTensor(y.m[:, :, 0, :], y.scale)


def avgpool1d_backward_s8(err: QTensor, input_length: int, kernel_size: int, stride: int | None = None,
                          mode: ScaleMode = ScaleMode.POW2) -> QTensor:
    k, s = _k1(kernel_size, stride)
    e = avgpool2d_backward_s8(_as_2d(err), (1, input_length), k, s, mode)
    return QTensor(e.m[:, :, 0, :], e.scale)


__all__ = ["avgpool_multiplier", "maxpool2d_forward_s8", "maxpool2d_backward_s8", "avgpool2d_forward_s8",
           "avgpool2d_backward_s8", "global_avgpool_forward_s8", "global_avgpool_backward_s8",
           "maxpool1d_forward_s8", "maxpool1d_backward_s8", "avgpool1d_forward_s8", "avgpool1d_backward_s8"]
