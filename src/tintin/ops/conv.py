"""Convolution (2-D and 1-D): forward and backward side by side, pure integer.

Layout NCHW (1-D: NCL). Shapes and dtypes:

* input ``x`` (B, Cin, H, W) int8, weight ``W`` (Cout, Cin/G, kH, kW) int8, bias (Cout,) int32 at
  its own scale, output ``y`` (B, Cout, Ho, Wo) int8 with ``Ho = (H + 2*pH - kH) // sH + 1`` (same
  for W): stride ``(sH, sW)``, symmetric zero padding ``(pH, pW)``, ``G`` groups (``G = Cin = Cout``
  is depthwise). Output channel ``o`` of group ``g = o // (Cout/G)`` reads input channels
  ``g*Cin/G .. (g+1)*Cin/G - 1``.

Integer definition (the specification the C kernels follow):

``conv2d_forward_s8``
    ``acc[b,o,p,q] = sum_{c,i,j} W[o,c,i,j] * xpad[b, g*Cin/G + c, p*sH + i, q*sW + j]`` in int32
    (``xpad`` is ``x`` with zero padding), at scale ``s_x * s_W``; plus the bias aligned to that
    scale (:func:`tintin.ops.linear.align_bias`: nearest rounding, clipped to ``+-2**30``); then
    :func:`tintin.numerics.rescale` to int8 with nearest rounding.
    ``|acc| <= F * 127 * 127`` with fan-in ``F = Cin/G * kH * kW <= ACC_TERMS_LIMIT`` (checked by
    the layer), so ``acc + bias`` stays in int32.
``conv2d_backward_input_s8``
    ``e_in[b,c,y,x] = sum W[o,c',i,j] * err[b,o,p,q]`` over all ``(o, i, j, p, q)`` with
    ``p*sH + i - pH = y`` and ``q*sW + j - pW = x`` (the transposed convolution), int32 at scale
    ``s_err * s_W``, rescaled to int8 (nearest). At most ``Cout/G * ceil(kH/sH) * ceil(kW/sW)``
    terms per element (checked by the layer). Input positions no window reads get 0.
``conv2d_backward_weight_s32``
    ``g[o,c,i,j] = sum_{b,p,q} err[b,o,p,q] * xpad[b, g*Cin/G + c, p*sH + i, q*sW + j]``: int32 at
    scale ``s_err * s_x``, not rescaled. ``B * Ho * Wo`` terms (checked by the trainer through the
    layer's ``gradient_positions``).
``conv2d_backward_bias_s32``
    ``sum_{b,p,q} err[b,o,p,q]``: int32 at the error's scale.

The 1-D functions are the 2-D ones on ``(B, C, 1, L)`` with a ``(1, k)`` kernel.

Host fast path (bit-identical to the definition, checked against direct loops): im2col (a strided
window view) written once into integer-valued float32, grouped products as batched matmuls.
Exactness: an int8 x int8 product is at most 16,129, so a sum of up to ``FLOAT32_TERMS = 1040``
of them has every partial sum an integer below 2**24, exact in float32 in any order;
:func:`tintin.numerics.matmul.int_matmul_float32_result` is used within that bound and
:func:`~tintin.numerics.matmul.int_matmul_float_operands` (exact float32 chunks added as integers)
beyond it. The input error is a col2im: one add per kernel offset into a batch-last (C, H, W, B)
buffer, in float32 while every input position sums at most 1040 products, else int32.
Depthwise convolutions (``Cin = Cout = G``) skip im2col: one broadcast multiply-add per kernel
offset in float32 (at most ``kH * kW`` terms per sum), the input error as a gather.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from ..numerics import QTensor, ScaleMode, rescale
from ..numerics.matmul import FLOAT32_EXACT, int_matmul_float32_result, int_matmul_float_operands
from ..numerics.scale_rows import align_rows
from .linear import align_bias

#: largest mantissa magnitude of an int8 operand (symmetric range)
S8_MAX = 127
#: most int8 x int8 products whose sum float32 holds exactly (every partial sum below 2**24)
FLOAT32_TERMS = (FLOAT32_EXACT - 1) // (S8_MAX * S8_MAX)

Pair = tuple[int, int]


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window along one axis (0 or less: does not fit)."""
    return (size + 2 * padding - kernel) // stride + 1


def _require_s8(**arrays: np.ndarray) -> None:
    """The exactness bounds assume int8 mantissas (|m| <= 127): refuse anything else."""
    for name, a in arrays.items():
        if a.dtype != np.int8:
            raise TypeError(f"convolution operand {name} must hold int8 mantissas, got {a.dtype}")


def _pair(v) -> Pair:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _pad(x: np.ndarray, padding: Pair, dtype) -> np.ndarray:
    """Zero-padded copy of a (B, C, H, W) array in ``dtype``."""
    ph, pw = padding
    if ph == 0 and pw == 0:
        return x.astype(dtype, copy=False)
    b, c, h, w = x.shape
    out = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=dtype)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def _windows(xp: np.ndarray, kernel: Pair, stride: Pair, out_hw: Pair) -> np.ndarray:
    """Read-only strided view (B, C, Ho, Wo, kH, kW) of the windows of a padded (B, C, Hp, Wp) array
    (what ``sliding_window_view(...)[:, :, ::sH, ::sW]`` gives, without its per-call overhead)."""
    kh, kw = kernel
    sh, sw = stride
    ho, wo = out_hw
    b, c, hp, wp = xp.shape
    if (ho - 1) * sh + kh > hp or (wo - 1) * sw + kw > wp:  # pragma: no cover - callers check
        raise ValueError("window view outside the padded input")
    s0, s1, s2, s3 = xp.strides
    return as_strided(xp, shape=(b, c, ho, wo, kh, kw), strides=(s0, s1, s2 * sh, s3 * sw, s2, s3), writeable=False)


def _out_hw(in_hw: Pair, kernel: Pair, stride: Pair, padding: Pair) -> Pair:
    ho = conv_output_size(in_hw[0], kernel[0], stride[0], padding[0])
    wo = conv_output_size(in_hw[1], kernel[1], stride[1], padding[1])
    if ho < 1 or wo < 1:
        raise ValueError(f"kernel {kernel} does not fit the padded input {in_hw} (padding {padding})")
    return ho, wo


def conv2d_im2col(x: np.ndarray, kernel_size, stride=1, padding=0, groups: int = 1,
                  dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """Integer-valued im2col matrix of an int8 (B, C, H, W) array.

    Returns ``cols`` of shape (G, C/G * kH * kW, B * Ho * Wo) in ``dtype`` (float32 by default; the
    values are the int8 mantissas, exactly): ``cols[g, (c, i, j), (b, p, q)] =
    xpad[b, g*C/G + c, p*sH + i, q*sW + j]``. Used by the forward pass and, cached, by the weight
    gradient. ``out`` (optional) is a buffer of that shape and dtype to fill (a layer reuses one
    buffer across steps instead of allocating fresh pages every step)."""
    kernel, stride, padding = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x.shape
    ho, wo = _out_hw((h, w), kernel, stride, padding)
    cg = c // groups
    win = _windows(_pad(x, padding, dtype), kernel, stride, (ho, wo))  # (B, C, Ho, Wo, kH, kW)
    win = win.reshape(b, groups, cg, ho, wo, kernel[0], kernel[1]).transpose(1, 2, 5, 6, 0, 3, 4)
    shape = (groups, cg * kernel[0] * kernel[1], b * ho * wo)
    if out is None:
        return np.ascontiguousarray(win).reshape(shape)
    if out.shape != shape or out.dtype != np.dtype(dtype) or not out.flags.c_contiguous:
        raise ValueError(f"im2col buffer must be a contiguous {np.dtype(dtype)} array of shape {shape}, "
                         f"got {out.dtype} {out.shape}")
    np.copyto(out.reshape(win.shape), win)
    return out


def im2col_shape(x_shape: tuple[int, ...], kernel_size, stride=1, padding=0, groups: int = 1) -> tuple[int, int, int]:
    """Shape of :func:`conv2d_im2col` for a (B, C, H, W) input."""
    kernel, stride, padding = _pair(kernel_size), _pair(stride), _pair(padding)
    b, c, h, w = x_shape
    ho, wo = _out_hw((h, w), kernel, stride, padding)
    return groups, c // groups * kernel[0] * kernel[1], b * ho * wo


def _is_depthwise(cout: int, cin_per_group: int, groups: int) -> bool:
    """One input and one output channel per group: per-offset multiply-adds beat im2col."""
    return cin_per_group == 1 and cout == groups


def _batch_last_padded(x: np.ndarray, padding: Pair, dtype) -> np.ndarray:
    """(B, C, H, W) -> zero-padded (C, Hp, Wp, B) copy in ``dtype``: kernel offsets then slice
    runs of ``Wo * B`` contiguous values."""
    ph, pw = padding
    b, c, h, w = x.shape
    out = np.zeros((c, h + 2 * ph, w + 2 * pw, b), dtype=dtype)
    out[:, ph:ph + h, pw:pw + w, :] = x.transpose(1, 2, 3, 0)
    return out


def _bl_view(a: np.ndarray, i: int, j: int, stride: Pair, out_hw: Pair) -> np.ndarray:
    """``a[:, i + p*sH, j + q*sW, :]`` (p < Ho, q < Wo) of a batch-last (C, H, W, B) array. With
    ``sW == 1`` each (q, b) block is contiguous and the view is returned as (C, Ho, Wo*B): numpy
    iterates the merged runs several times faster than the 4-D view."""
    c, hh, ww, b = a.shape
    (sh, sw), (ho, wo) = stride, out_hw
    if sw == 1 and a.flags.c_contiguous:
        return a.reshape(c, hh, ww * b)[:, i:i + (ho - 1) * sh + 1:sh, j * b:(j + wo) * b]
    return a[:, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]


def _bl_like(a: np.ndarray, view: np.ndarray) -> np.ndarray:
    """A contiguous batch-last (C, Ho, Wo, B) array shaped like a :func:`_bl_view` result."""
    return a.reshape(view.shape)


def _depthwise_dtype(kh: int, kw: int):
    """float32 holds every partial sum of a depthwise window exactly when ``kh*kw <= FLOAT32_TERMS``."""
    return np.float32 if kh * kw <= FLOAT32_TERMS else np.int32


def _depthwise_accumulate(x: np.ndarray, weight: np.ndarray, stride: Pair, padding: Pair, out_hw: Pair) -> np.ndarray:
    """Depthwise ``acc`` (B, C, Ho, Wo) int32: one broadcast multiply-add per kernel offset."""
    c, _, kh, kw = weight.shape
    ho, wo = out_hw
    dt = _depthwise_dtype(kh, kw)
    xp = _batch_last_padded(x, padding, dt)
    wk = weight.reshape(c, kh, kw).astype(dt)
    acc = np.zeros((c, ho, wo, x.shape[0]), dtype=dt)
    tmp = np.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            v = _bl_view(xp, i, j, stride, out_hw)
            np.multiply(v, wk[:, i, j].reshape((c,) + (1,) * (v.ndim - 1)), out=_bl_like(tmp, v))
            acc += tmp
    out = np.empty((x.shape[0], c, ho, wo), dtype=np.int32)
    np.copyto(out, acc.transpose(3, 0, 1, 2), casting="unsafe")
    return out


def _depthwise_input_error(err: np.ndarray, weight: np.ndarray, input_hw: Pair, stride: Pair,
                           padding: Pair) -> np.ndarray:
    """Depthwise input-error accumulator (B, C, H, W) int32, gathered rather than scattered:
    ``e_in[t] = sum_i W[i] * D[t + k - 1 - i]`` (per axis) where ``D`` holds ``err[p]`` at position
    ``p*s + k - 1 - pad`` and zeros elsewhere; the same sums as the definition, one contiguous
    multiply-add per kernel offset."""
    b, c, ho, wo = err.shape
    _, _, kh, kw = weight.shape
    h, w = input_hw
    dt = _depthwise_dtype(kh, kw)
    d = np.zeros((c, h + kh - 1, w + kw - 1, b), dtype=dt)
    src, dst = [], []
    for n_out, n_in, k, s, p in ((ho, h, kh, stride[0], padding[0]), (wo, w, kw, stride[1], padding[1])):
        lead = k - 1 - p  # where output 0's error lands (may be negative: a window of padding only)
        first = max(0, -(lead // s) if lead < 0 else 0)
        last = min(n_out - 1, (n_in + k - 2 - lead) // s)
        if last < first:
            break
        src.append(slice(first, last + 1))
        dst.append(slice(first * s + lead, last * s + lead + 1, s))
    else:
        d[:, dst[0], dst[1], :] = err[:, :, src[0], src[1]].transpose(1, 2, 3, 0)
    wk = weight.reshape(c, kh, kw).astype(dt)
    acc = np.zeros((c, h, w, b), dtype=dt)
    tmp = np.empty_like(acc)
    for i in range(kh):
        for j in range(kw):
            v = _bl_view(d, kh - 1 - i, kw - 1 - j, (1, 1), (h, w))
            np.multiply(v, wk[:, i, j].reshape((c,) + (1,) * (v.ndim - 1)), out=_bl_like(tmp, v))
            acc += tmp
    out = np.empty((b, c, h, w), dtype=np.int32)
    np.copyto(out, acc.transpose(3, 0, 1, 2), casting="unsafe")
    return out


def conv2d_accumulate(x: np.ndarray, weight: np.ndarray, stride=1, padding=0, groups: int = 1,
                      cols: np.ndarray | None = None) -> np.ndarray:
    """The int32 accumulator ``acc[b,o,p,q]`` of :func:`conv2d_forward_s8` (no bias, no rescale)."""
    _require_s8(x=x, weight=weight)
    stride, padding = _pair(stride), _pair(padding)
    b, c, h, w = x.shape
    cout, cg, kh, kw = weight.shape
    ho, wo = _out_hw((h, w), (kh, kw), stride, padding)
    if _is_depthwise(cout, cg, groups) and cols is None:
        return _depthwise_accumulate(x, weight, stride, padding, (ho, wo))
    if cols is None:
        cols = conv2d_im2col(x, (kh, kw), stride, padding, groups)
    wmat = weight.reshape(groups, cout // groups, cg * kh * kw).astype(cols.dtype)
    if cols.dtype == np.float32 and cg * kh * kw <= FLOAT32_TERMS:
        prod = int_matmul_float32_result(wmat, cols, S8_MAX, S8_MAX)  # exact integers in float32
    else:
        prod = int_matmul_float_operands(wmat, cols, S8_MAX, S8_MAX)  # (G, Cout/G, B*Ho*Wo) int32
    out = np.empty((b, cout, ho, wo), dtype=np.int32)
    np.copyto(out, prod.reshape(cout, b, ho, wo).transpose(1, 0, 2, 3), casting="unsafe")
    return out


def conv2d_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None, stride=1, padding=0,
                      groups: int = 1, mode: ScaleMode = ScaleMode.POW2,
                      cols: np.ndarray | None = None, row_exp: np.ndarray | None = None) -> QTensor:
    """int8 convolution (+ aligned bias) accumulated in int32, rescaled to int8 (nearest).

    ``cols`` (optional) is :func:`conv2d_im2col` of ``x.m`` with the same geometry, to share it with
    the weight gradient. ``row_exp``: per-output-channel exponents of ``W`` (``None``: one scale);
    channel ``o``'s accumulator is shifted right by ``row_exp[o]`` (nearest) before the bias."""
    acc = conv2d_accumulate(x.m, weight.m, stride, padding, groups, cols)
    if row_exp is not None:
        acc = align_rows(acc, row_exp, axis=1)
    acc_scale = x.scale * weight.scale
    if bias is not None:
        acc += align_bias(bias, acc_scale).astype(np.int32)[None, :, None, None]
    q, s = rescale(acc, acc_scale, 8, mode)
    return QTensor(q, s)


def conv2d_input_error_acc(err: np.ndarray, weight: np.ndarray, input_hw: Pair, stride=1,
                           padding=0, groups: int = 1) -> np.ndarray:
    """The int32 accumulator of :func:`conv2d_backward_input_s8` (B, Cin, H, W), before rescaling."""
    _require_s8(err=err, weight=weight)
    stride, padding = _pair(stride), _pair(padding)
    h, w = _pair(input_hw)
    b, cout, ho, wo = err.shape
    _, cg, kh, kw = weight.shape
    cin = cg * groups
    sh, sw = stride
    ph, pw = padding
    if _is_depthwise(cout, cg, groups):
        return _depthwise_input_error(err, weight, (h, w), stride, padding)
    # scatter the column errors batch-last, (Cin, Hp, Wp, B): runs of Wo*B contiguous values
    hp, wp = h + 2 * ph, w + 2 * pw
    wmat = weight.reshape(groups, cout // groups, cg * kh * kw).astype(np.float32).transpose(0, 2, 1)
    emat = err.transpose(1, 2, 3, 0).astype(np.float32).reshape(groups, cout // groups, ho * wo * b)
    overlap = -(-kh // sh) * -(-kw // sw)
    if cout // groups * overlap <= FLOAT32_TERMS:
        # an input-error element sums at most this many products: float32 adds stay exact
        dcols = int_matmul_float32_result(wmat, emat, S8_MAX, S8_MAX)
        epad = np.zeros((cin, hp, wp, b), dtype=np.float32)
    else:
        dcols = int_matmul_float_operands(wmat, emat, S8_MAX, S8_MAX)
        epad = np.zeros((cin, hp, wp, b), dtype=np.int32)
    dcols = dcols.reshape(cin, kh, kw, ho, wo, b)
    for i in range(kh):
        for j in range(kw):
            v = _bl_view(epad, i, j, stride, (ho, wo))
            v += dcols[:, i, j].reshape(v.shape)
    return epad[:, ph:ph + h, pw:pw + w].transpose(3, 0, 1, 2).astype(np.int32, copy=False)


def conv2d_input_error_acc_rows(err: np.ndarray, weight: np.ndarray, row_exp: np.ndarray, input_hw,
                                stride=1, padding=0, groups: int = 1) -> tuple[np.ndarray, int]:
    """Input-error accumulator with per-output-channel exponents: ``(acc, E)`` where channel ``o``'s
    error enters shifted left by ``E - row_exp[o]`` (``E = max row_exp``), int32 at
    ``s_err * s_W * 2**-E``. Computed as one exact int8 transposed convolution per distinct shift
    (the other channels' errors zeroed), each shifted and summed: the same integers as the
    definition; ``|acc| <= T * 127 * 127 * 2**E <= 2**30`` for ``row_exp <= row_exp_limit(T)``."""
    top = int(row_exp.max()) if row_exp.size else 0
    if top == 0:
        return conv2d_input_error_acc(err, weight, input_hw, stride, padding, groups), 0
    total = None
    for d in np.unique(top - row_exp.astype(np.int64)):
        part = np.where((top - row_exp.astype(np.int64) == d)[None, :, None, None], err, 0).astype(np.int8)
        acc = conv2d_input_error_acc(part, weight, input_hw, stride, padding, groups).astype(np.int64) << int(d)
        total = acc if total is None else total + acc
    return total.astype(np.int32), top


def conv2d_backward_input_s8(err: QTensor, weight: QTensor, input_hw, stride=1, padding=0,
                             groups: int = 1, mode: ScaleMode = ScaleMode.POW2,
                             row_exp: np.ndarray | None = None) -> QTensor:
    """Input error (B, Cin, H, W) int8: the transposed convolution of ``err`` with ``W`` in int32,
    rescaled to int8 (nearest). ``input_hw`` is the forward input's (H, W). ``row_exp``: see
    :func:`conv2d_input_error_acc_rows`."""
    if row_exp is None:
        acc, top = conv2d_input_error_acc(err.m, weight.m, input_hw, stride, padding, groups), 0
    else:
        acc, top = conv2d_input_error_acc_rows(err.m, weight.m, row_exp, input_hw, stride, padding, groups)
    q, s = rescale(acc, (err.scale * weight.scale).shifted(-top), 8, mode)
    return QTensor(np.ascontiguousarray(q), s)


def conv2d_backward_weight_s32(err: QTensor, x: QTensor, kernel_size, stride=1, padding=0,
                               groups: int = 1, cols: np.ndarray | None = None) -> QTensor:
    """Weight gradient (Cout, Cin/G, kH, kW), int32 at scale ``s_err * s_x`` (kept until the update).

    ``|g| <= B * Ho * Wo * 127 * 127``. ``cols`` (optional) is the forward pass's im2col of ``x``."""
    kh, kw = _pair(kernel_size)
    _require_s8(err=err.m, x=x.m)
    stride, padding = _pair(stride), _pair(padding)
    b, cout, ho, wo = err.m.shape
    cin = x.m.shape[1]
    cg = cin // groups
    if _is_depthwise(cout, cg, groups) and cols is None:
        # per offset: a product per position, summed in int32 (B*Ho*Wo terms: beyond float32's reach)
        xp = _pad(x.m, padding, x.m.dtype)
        e32 = err.m.astype(np.int32)
        tmp = np.empty_like(e32)
        g = np.empty((cout, 1, kh, kw), dtype=np.int32)
        sh, sw = stride
        for i in range(kh):
            for j in range(kw):
                np.multiply(e32, xp[:, :, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw], out=tmp)
                g[:, 0, i, j] = tmp.sum(axis=(0, 2, 3), dtype=np.int32)
        return QTensor(g, err.scale * x.scale)
    if cols is None:
        cols = conv2d_im2col(x.m, (kh, kw), stride, padding, groups)
    emat = err.m.transpose(1, 0, 2, 3).astype(cols.dtype).reshape(groups, cout // groups, b * ho * wo)
    g = int_matmul_float_operands(emat, cols.transpose(0, 2, 1), S8_MAX, S8_MAX)
    return QTensor(g.reshape(cout, cg, kh, kw), err.scale * x.scale)


def conv2d_backward_bias_s32(err: QTensor) -> QTensor:
    """Bias gradient (Cout,): the error summed over batch and positions, int32 at the error's scale."""
    return QTensor(err.m.sum(axis=(0, 2, 3), dtype=np.int32), err.scale)


# -- 1-D: the 2-D kernels on (B, C, 1, L) ------------------------------------------------------
def _as_2d(t: QTensor) -> QTensor:
    return QTensor(t.m[:, :, None, :], t.scale)


def _weight_2d(weight: QTensor) -> QTensor:
    return QTensor(weight.m[:, :, None, :], weight.scale)


def conv1d_im2col(x: np.ndarray, kernel_size: int, stride: int = 1, padding: int = 0,
                  groups: int = 1, dtype=np.float32, out: np.ndarray | None = None) -> np.ndarray:
    """:func:`conv2d_im2col` of a (B, C, L) array with a (1, k) kernel."""
    return conv2d_im2col(x[:, :, None, :], (1, kernel_size), (1, stride), (0, padding), groups, dtype, out)


def conv1d_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None, stride: int = 1,
                      padding: int = 0, groups: int = 1, mode: ScaleMode = ScaleMode.POW2,
                      cols: np.ndarray | None = None, row_exp: np.ndarray | None = None) -> QTensor:
    """1-D convolution: ``x`` (B, Cin, L) int8, ``W`` (Cout, Cin/G, k) -> (B, Cout, Lo) int8."""
    y = conv2d_forward_s8(_as_2d(x), _weight_2d(weight), bias, (1, stride), (0, padding), groups, mode, cols,
                          row_exp)
    return QTensor(y.m[:, :, 0, :], y.scale)


def conv1d_backward_input_s8(err: QTensor, weight: QTensor, input_length: int, stride: int = 1,
                             padding: int = 0, groups: int = 1, mode: ScaleMode = ScaleMode.POW2,
                             row_exp: np.ndarray | None = None) -> QTensor:
    """Input error (B, Cin, L) int8 of :func:`conv1d_forward_s8`."""
    e = conv2d_backward_input_s8(_as_2d(err), _weight_2d(weight), (1, input_length), (1, stride),
                                 (0, padding), groups, mode, row_exp)
    return QTensor(e.m[:, :, 0, :], e.scale)


def conv1d_backward_weight_s32(err: QTensor, x: QTensor, kernel_size: int, stride: int = 1,
                               padding: int = 0, groups: int = 1, cols: np.ndarray | None = None) -> QTensor:
    """Weight gradient (Cout, Cin/G, k) int32 at scale ``s_err * s_x``."""
    g = conv2d_backward_weight_s32(_as_2d(err), _as_2d(x), (1, kernel_size), (1, stride), (0, padding),
                                   groups, cols)
    return QTensor(g.m[:, :, 0, :], g.scale)


def conv1d_backward_bias_s32(err: QTensor) -> QTensor:
    """Bias gradient (Cout,): the error summed over batch and positions, int32."""
    return QTensor(err.m.sum(axis=(0, 2), dtype=np.int32), err.scale)
