"""C for the steps of a :class:`~tintin.compile.TrainingProgram`: one runtime call per step.

:class:`StepEmitter` turns each :class:`~tintin.compile.Step` into C statements that call the
runtime kernel mirroring the step's executor kernel (``tintin.compile.lower_dense``,
``lower_conv``, ``kernels`` and ``update``), with the buffers at their planned places and the
step's static attributes as constants. Where a buffer lives (arena offset, flash array) and where
its scale is kept are decided by the caller through two callbacks, so the same emitter writes the
training step and the batch-1 evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..compile.lower_conv import geom2d, pad2d
from .cgen import CTYPE, CodegenError, c_size, comment

_MODE = {"pow2": "TT_SCALE_POW2", "compound": "TT_SCALE_COMPOUND"}
#: the largest batch whose fully connected update forms its gradient itself (TT_RANK_BATCH_MAX; 8 on
#: AVR, where the runtime falls back to gradient tiles above it)
RANK_BATCH_MAX = 32


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if len(shape) else 1


@dataclass
class EmitContext:
    """What the emitter needs to know about buffer placement.

    Attributes:
        program: the program whose steps are emitted (shapes, dtypes, attributes).
        ptr: buffer name -> C expression of a pointer to its first element (typed by dtype).
        scale: buffer name -> C lvalue of its ``tt_scale_t``.
        mode: ``pow2`` or ``compound``.
        site: parameter name -> stochastic-rounding site (``4 * index``).
        scales_type: the C struct type of the step scales (grad callbacks receive it as context).
        prefix: name prefix of generated helper functions and constants (``train``, ``eval``).
    """

    program: object
    ptr: Callable[[str], str]
    scale: Callable[[str], str]
    mode: str
    site: Callable[[str], int]
    scales_type: str
    prefix: str
    constants: list[str] = field(default_factory=list)
    helpers: list[str] = field(default_factory=list)
    _const_names: dict[str, str] = field(default_factory=dict)

    def constant(self, kind: str, ctype: str, body: str) -> str:
        """A file-scope ``static const`` object (deduplicated by content); returns its name."""
        key = f"{ctype}|{body}"
        name = self._const_names.get(key)
        if name is None:
            name = f"tt_{self.prefix}_{kind}_{len(self._const_names)}"
            self._const_names[key] = name
            self.constants.append(f"static const {ctype} {name}{body};\n")
        return name


class StepEmitter:
    """Writes the C statements of one step (see :meth:`emit`)."""

    def __init__(self, ctx: EmitContext):
        self.ctx = ctx
        self.p = ctx.program
        self.mode_c = _MODE[getattr(ctx.mode, "value", str(ctx.mode))]

    # -- helpers ---------------------------------------------------------------------------------
    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.p.buffers[name].shape)

    def buf(self, name: str) -> str:
        return self.ctx.ptr(name)

    def sc(self, name: str) -> str:
        return self.ctx.scale(name)

    def rows_const(self, rows) -> str:
        """``const uint16_t`` array of trained rows, or NULL."""
        if rows is None:
            return "NULL"
        rows = np.asarray(rows, dtype=np.int64).ravel()
        if rows.size and (rows.min() < 0 or rows.max() > 65535):
            raise CodegenError("trained rows must be in [0, 65535]")
        body = "[" + str(max(rows.size, 1)) + "] = {" + ", ".join(str(int(r)) for r in rows) + "}"
        return self.ctx.constant("rows", "uint16_t", body)

    def conv_shape(self, attrs: dict, x_shape, out_channels: int) -> str:
        d = int(attrs["dims"])
        kh, kw = geom2d(attrs["kernel_size"], d)
        sh, sw = geom2d(attrs["stride"], d)
        ph, pw = pad2d(attrs["padding"], d)
        in_h, in_w = (x_shape[2], x_shape[3]) if d == 2 else (1, x_shape[2])
        vals = (x_shape[0], x_shape[1], in_h, in_w, out_channels, kh, kw, sh, sw, ph, pw, int(attrs["groups"]))
        return "&" + self.ctx.constant("conv", "tt_conv2d_shape_t", " = {" + ", ".join(c_size(v) for v in vals) + "}")

    def dense_shape(self, batch: int, in_features: int, out_features: int) -> str:
        """``&`` a ``static const tt_dense_shape_t``."""
        vals = (batch, in_features, out_features)
        return "&" + self.ctx.constant("dense", "tt_dense_shape_t", " = {" + ", ".join(c_size(v) for v in vals) + "}")

    def channel_shape(self, batch: int, channels: int, positions: int) -> str:
        """``&`` a ``static const tt_channel_shape_t``."""
        vals = (batch, channels, positions)
        return "&" + self.ctx.constant("chan", "tt_channel_shape_t", " = {" + ", ".join(c_size(v) for v in vals) + "}")

    def row_select(self, rows, count: int) -> str:
        """``&`` a ``static const tt_row_select_t`` of all ``count`` selected rows (``rows`` None: rows 0 .. count - 1)."""
        body = " = {" + self.rows_const(rows) + ", 0u, " + c_size(count) + "}"
        return "&" + self.ctx.constant("sel", "tt_row_select_t", body)

    def pool_shape(self, attrs: dict, x_shape) -> str:
        d = int(attrs["dims"])
        kh, kw = geom2d(attrs["kernel_size"], d)
        sh, sw = geom2d(attrs["stride"], d)
        in_h, in_w = (x_shape[2], x_shape[3]) if d == 2 else (1, x_shape[2])
        vals = (x_shape[0], x_shape[1], in_h, in_w, kh, kw, sh, sw)
        return "&" + self.ctx.constant("pool", "tt_pool2d_shape_t", " = {" + ", ".join(c_size(v) for v in vals) + "}")

    def ws(self, step, index: int = 0) -> str:
        return self.buf(step.workspace[index]) if len(step.workspace) > index else "NULL"

    def call(self, expr: str) -> list[str]:
        return [f"TT_CALL({expr});"]

    # -- dispatch --------------------------------------------------------------------------------
    def emit(self, step) -> list[str]:
        """C statements of ``step`` (a comment line first)."""
        fn = getattr(self, "op_" + step.op, None)
        if fn is None:
            raise CodegenError(f"no C code generation for op {step.op!r} (step {step.index}, layer {step.layer})")
        head = comment(f"step {step.index}: {step.phase.value} {step.op}" + (f" ({step.layer})" if step.layer else ""))
        return [head, *fn(step)]

    # -- views and elementwise ------------------------------------------------------------------
    def op_reshape(self, s):
        return [f"{self.sc(s.outputs[0])} = {self.sc(s.inputs[0])};"]

    def op_relu_forward_s8(self, s):
        x, y = s.inputs[0], s.outputs[0]
        return [*self.call(f"tt_relu_forward_s8({self.buf(x)}, {c_size(_size(self.shape(x)))}, {self.buf(y)})"),
                f"{self.sc(y)} = {self.sc(x)};"]

    def op_relu_mask_u1(self, s):
        y, mask = s.inputs[0], s.outputs[0]
        return [*self.call(f"tt_relu_mask_pack_u1({self.buf(y)}, {c_size(_size(self.shape(y)))}, {self.buf(mask)})"),
                f"{self.sc(mask)} = {self.sc(y)};"]

    def op_relu_backward_s8(self, s):
        err, src = s.inputs
        out = s.outputs[0]
        n = c_size(_size(self.shape(err)))
        fn = "tt_relu_backward_mask_s8" if s.attrs.get("mask") else "tt_relu_backward_s8"
        return [*self.call(f"{fn}({self.buf(err)}, {self.buf(src)}, {n}, {self.buf(out)})"),
                f"{self.sc(out)} = {self.sc(err)};"]

    def op_weight_view_s8(self, s):
        w, view = s.inputs[0], s.outputs[0]
        return self.call(f"tt_weight_view_s16_to_s8({self.buf(w)}, {self.sc(w)}, {c_size(_size(self.shape(w)))}, "
                         f"{self.mode_c}, {self.buf(view)}, &{self.sc(view)})")

    # -- fully connected ------------------------------------------------------------------------
    def op_linear_forward_s8(self, s):
        x, w = s.inputs[0], s.inputs[1]
        y = s.outputs[0]
        B, K = self.shape(x)
        N = self.shape(y)[1]
        rexp = s.attrs.get("row_exp")
        if len(s.inputs) > 2 + (rexp is not None):
            b, bs = self.buf(s.inputs[2]), self.sc(s.inputs[2])
        else:
            b, bs = "NULL", self.sc(x)
        if rexp is not None:  # per-row weight scales (tt_rows.h)
            return self.call(f"tt_linear_forward_rows_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, "
                             f"{self.buf(rexp)}, {b}, {bs}, {self.dense_shape(B, K, N)}, {self.mode_c}, {self.ws(s)}, "
                             f"{self.buf(y)}, &{self.sc(y)})")
        return self.call(f"tt_linear_forward_x4_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, {b}, {bs}, "
                         f"{self.dense_shape(B, K, N)}, {self.mode_c}, {self.ws(s)}, {self.buf(y)}, &{self.sc(y)})")

    def op_linear_backward_input_s8(self, s):
        err, w = s.inputs[:2]
        e_in = s.outputs[0]
        B, N = self.shape(err)
        K = self.shape(e_in)[1]
        rexp = s.attrs.get("row_exp")
        if rexp is not None:
            return self.call(f"tt_linear_backward_input_rows_s8({self.buf(err)}, {self.sc(err)}, {self.buf(w)}, "
                             f"{self.sc(w)}, {self.buf(rexp)}, {self.dense_shape(B, K, N)}, {self.mode_c}, "
                             f"{self.ws(s)}, {self.buf(e_in)}, &{self.sc(e_in)})")
        fn = "tt_linear_backward_input_x4_s8" if s.workspace else "tt_linear_backward_input_s8"
        return self.call(f"{fn}({self.buf(err)}, {self.sc(err)}, {self.buf(w)}, {self.sc(w)}, "
                         f"{self.dense_shape(B, K, N)}, {self.mode_c}, {self.ws(s)}, {self.buf(e_in)}, "
                         f"&{self.sc(e_in)})")

    def _rows(self, s):
        rows = s.attrs.get("rows")
        return None if rows is None else np.asarray(rows, dtype=np.int64).ravel()

    def _outer_update_of(self, grad_step):
        """The ``sgd_update`` step that may form the gradient of ``grad_step`` itself
        (``tt_sgd_update_weight_outer_s8`` where the runtime sets ``TT_OUTER_UPDATE``), or None:
        a batch-1 dense weight gradient of every row, used only by the skip0 update of int8 weights
        right after it (so its error and input are unchanged when the update runs)."""
        steps = self.p.steps
        k = next((i for i, t in enumerate(steps) if t is grad_step), None)
        if (k is None or k + 1 >= len(steps) or grad_step.op != "linear_backward_weight_s32"
                or self._rows(grad_step) is not None or self.shape(grad_step.inputs[0])[0] != 1):
            return None
        upd, g = steps[k + 1], grad_step.outputs[0]
        if (upd.op != "sgd_update" or list(upd.inputs[:1]) != [g] or len(upd.mutates) != 1
                or upd.attrs.get("row_exp") is not None or self._rows(upd) is not None
                or self._param(upd.mutates[0]).dtype != "int8" or not self._skip0_ok()):
            return None
        if sum(g in t.inputs for t in steps) != 1:
            return None
        return upd

    def op_linear_backward_weight_s32(self, s):
        err, x = s.inputs
        g = s.outputs[0]
        B, N = self.shape(err)
        K = self.shape(x)[1]
        rows = self._rows(s)
        count = N if rows is None else rows.size
        call = self.call(f"tt_linear_backward_weight_rows_s32({self.buf(err)}, {self.sc(err)}, {self.buf(x)}, "
                         f"{self.sc(x)}, {self.dense_shape(B, K, N)}, {self.row_select(rows, count)}, {self.buf(g)}, "
                         f"&{self.sc(g)})")
        if self._outer_update_of(s) is None:
            return call
        return ["#if !TT_OUTER_UPDATE /* else the update step forms the gradient */", *call, "#endif"]

    def _bias_grad(self, s, positions: int):
        err = s.inputs[0]
        g = s.outputs[0]
        shape = self.shape(err)
        B, C = shape[0], shape[1]
        rows = self._rows(s)
        count = C if rows is None else rows.size
        return self.call(f"tt_bias_backward_rows_s32({self.buf(err)}, {self.sc(err)}, "
                         f"{self.channel_shape(B, C, positions)}, {self.row_select(rows, count)}, {self.buf(g)}, "
                         f"&{self.sc(g)})")

    def op_linear_backward_bias_s32(self, s):
        return self._bias_grad(s, 1)

    # -- losses and prediction ------------------------------------------------------------------
    def op_predict_argmax(self, s):
        logits, preds = s.inputs[0], s.outputs[0]
        B, C = self.shape(logits)
        return self.call(f"tt_argmax_rows_s8({self.buf(logits)}, {c_size(B)}, {c_size(C)}, "
                         f"(uint16_t *)(void *){self.buf(preds)})")

    def op_softmax_cross_entropy_error(self, s):
        logits, labels = s.inputs
        err, total = s.outputs
        ws = s.workspace[0]
        B, C = self.shape(logits)
        lab = self.p.buffers[labels]
        # the error's rounding (QuantConfig.loss_error_rounding): nearest, or stochastic with the
        # step's stream key at the loss-error site
        rounding = ("TT_ROUND_NEAREST, 0UL" if s.attrs.get("rounding", "nearest") == "nearest" else
                    f"TT_ROUND_STOCHASTIC, tt_stream_key(&tt_stream, {int(s.attrs['site'])}UL)")
        lines = []
        if lab.dtype == "uint8":
            # the kernel takes uint16 labels: widen them into the workspace behind the B x C scratch
            lines += ["{",
                      f"    uint16_t *labels16 = (uint16_t *)(void *)({self.buf(ws)} + {c_size(B * C)});",
                      "    size_t i_;",
                      f"    for (i_ = 0; i_ < {c_size(B)}; ++i_) {{",
                      f"        labels16[i_] = {self.buf(labels)}[i_];",
                      "    }",
                      f"    TT_CALL(tt_softmax_xent_error_round_s8({self.buf(logits)}, {self.sc(logits)}, labels16, "
                      f"{c_size(B)}, {c_size(C)}, {self.mode_c}, {rounding}, {self.buf(ws)}, {self.buf(err)}, "
                      f"&{self.sc(err)}, {self.buf(total)}));",
                      "}"]
        else:
            lines += self.call(f"tt_softmax_xent_error_round_s8({self.buf(logits)}, {self.sc(logits)}, "
                               f"(const uint16_t *)(const void *){self.buf(labels)}, {c_size(B)}, {c_size(C)}, "
                               f"{self.mode_c}, {rounding}, {self.buf(ws)}, {self.buf(err)}, &{self.sc(err)}, "
                               f"{self.buf(total)})")
        lines.append(f"{self.sc(total)}.S = -16; {self.sc(total)}.U = 0; {self.sc(total)}.D = 0;")
        return lines

    def op_mse_error(self, s):
        pred, target = s.inputs
        err, total = s.outputs
        e = int(s.attrs.get("target_exponent", 0))
        n = _size(self.shape(pred))
        return ["{",
                f"    tt_scale_t target_scale = {{{e}, 0, 0}};",
                f"    TT_CALL(tt_mse_error_s8({self.buf(pred)}, {self.sc(pred)}, {self.buf(target)}, target_scale, "
                f"{c_size(n)}, {self.mode_c}, {self.buf(err)}, &{self.sc(err)}, {self.buf(total)}, &{self.sc(total)}));",
                "}"]

    # -- convolution ----------------------------------------------------------------------------
    def op_conv_forward_s8(self, s):
        x, w = s.inputs[0], s.inputs[1]
        y = s.outputs[0]
        shape = self.conv_shape(s.attrs, self.shape(x), self.shape(y)[1])
        rexp = s.attrs.get("row_exp")
        if len(s.inputs) > 2 + (rexp is not None):
            b, bs = self.buf(s.inputs[2]), self.sc(s.inputs[2])
        else:
            b, bs = "NULL", self.sc(x)
        acc = next((self.buf(n) for n in s.workspace if self.p.buffers[n].dtype == "int32"), "NULL")
        cols = next((self.buf(n) for n in s.workspace if self.p.buffers[n].dtype == "int8"), "NULL")
        if rexp is not None:  # per-channel weight scales (tt_rows.h): the direct kernel
            return self.call(f"tt_conv2d_forward_rows_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, "
                             f"{self.buf(rexp)}, {b}, {bs}, {shape}, {self.mode_c}, {acc}, {self.buf(y)}, "
                             f"&{self.sc(y)})")
        if cols == "NULL":  # depthwise: no window block, the direct kernel
            return self.call(f"tt_conv2d_forward_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, {b}, {bs}, "
                             f"{shape}, {self.mode_c}, {acc}, {self.buf(y)}, &{self.sc(y)})")
        return self.call(f"tt_conv2d_forward_im2col_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, {b}, "
                         f"{bs}, {shape}, {self.mode_c}, {acc}, {cols}, {self.buf(y)}, &{self.sc(y)})")

    def op_conv_backward_input_s8(self, s):
        err, w = s.inputs[:2]
        e_in = s.outputs[0]
        shape = self.conv_shape(s.attrs, self.shape(e_in), self.shape(err)[1])
        rexp = s.attrs.get("row_exp")
        if rexp is not None:
            acc = next((self.buf(n) for n in s.workspace if self.p.buffers[n].dtype == "int32"), "NULL")
            return self.call(f"tt_conv2d_backward_input_rows_s8({self.buf(err)}, {self.sc(err)}, {self.buf(w)}, "
                             f"{self.sc(w)}, {self.buf(rexp)}, {shape}, {self.mode_c}, {acc}, {self.buf(e_in)}, "
                             f"&{self.sc(e_in)})")
        fn = "tt_conv2d_backward_input_scatter_s8" if s.workspace else "tt_conv2d_backward_input_s8"
        return self.call(f"{fn}({self.buf(err)}, {self.sc(err)}, {self.buf(w)}, {self.sc(w)}, "
                         f"{shape}, {self.mode_c}, {self.ws(s)}, {self.buf(e_in)}, &{self.sc(e_in)})")

    def op_conv_backward_weight_s32(self, s):
        err, x = s.inputs
        g = s.outputs[0]
        cout = self.shape(err)[1]
        shape = self.conv_shape(s.attrs, self.shape(x), cout)
        rows = self._rows(s)
        count = cout if rows is None else rows.size
        return self.call(f"tt_conv2d_backward_weight_rows_s32({self.buf(err)}, {self.sc(err)}, {self.buf(x)}, "
                         f"{self.sc(x)}, {shape}, {self.row_select(rows, count)}, {self.buf(g)}, &{self.sc(g)})")

    def op_conv_backward_bias_s32(self, s):
        return self._bias_grad(s, _size(self.shape(s.inputs[0])[2:]))

    def op_patch_stage_forward_s8(self, s):
        """The patch-based first stage (:mod:`tintin.compile.patch`): a local table of its layers
        (pointers and scales are the program's), then ``tt_patch_stage_forward_s8``."""
        kinds = {"conv": "TT_PATCH_CONV", "relu": "TT_PATCH_RELU", "maxpool": "TT_PATCH_MAXPOOL"}
        specs = s.attrs["layers"]
        x, y = s.inputs[0], s.outputs[0]
        rows = []
        for spec in specs:
            conv = spec["kind"] == "conv"
            kh, kw = spec.get("kernel", (1, 1))
            sh, sw = spec.get("stride", (1, 1))
            ph, pw = spec.get("padding", (0, 0))
            w = self.buf(spec["weight"]) if conv else "NULL"
            ws = self.sc(spec["weight"]) if conv else self.sc(x)
            bias = self.buf(spec["bias"]) if conv and spec["bias"] else "NULL"
            bs = self.sc(spec["bias"]) if conv and spec["bias"] else self.sc(x)
            patch = self.buf(spec["out"]) if spec["kind"] != "relu" else "NULL"
            geometry = (*spec["in_shape"], *spec["out_shape"], kh, kw, sh, sw, ph, pw, spec.get("groups", 1))
            rows.append("        {" + ", ".join([kinds[spec["kind"]], *(c_size(v) for v in geometry), w, ws, bias, bs,
                                                     patch]) + "},")
        return ["{",
                f"    tt_patch_layer_t layers_[{len(rows)}] = {{",
                *rows,
                "    };",
                *("    " + line for line in self.call(
                    f"tt_patch_stage_forward_s8({self.buf(x)}, {self.sc(x)}, {c_size(self.shape(x)[0])}, layers_, "
                    f"{c_size(len(rows))}, {c_size(s.attrs['patch'])}, {self.mode_c}, {self.buf(y)}, &{self.sc(y)})")),
                "}"]

    # -- pooling --------------------------------------------------------------------------------
    def _argmax_ok(self, name: str) -> None:
        if self.p.buffers[name].dtype != "uint8":
            raise CodegenError(f"{name}: max-pool windows of more than 256 elements are not supported in C")

    def op_maxpool_forward_s8(self, s):
        x = s.inputs[0]
        y = s.outputs[0]
        arg = "NULL"
        if len(s.outputs) > 1:
            self._argmax_ok(s.outputs[1])
            arg = self.buf(s.outputs[1])
        shape = self.pool_shape(s.attrs, self.shape(x))
        return [*self.call(f"tt_maxpool2d_forward_idx8_s8({self.buf(x)}, {shape}, {self.buf(y)}, {arg})"),
                f"{self.sc(y)} = {self.sc(x)};"]

    def op_maxpool_backward_s8(self, s):
        err, arg = s.inputs
        e_in = s.outputs[0]
        self._argmax_ok(arg)
        shape = self.pool_shape(s.attrs, self.shape(e_in))
        return self.call(f"tt_maxpool2d_backward_idx8_s8({self.buf(err)}, {self.sc(err)}, {self.buf(arg)}, {shape}, "
                         f"{self.mode_c}, {self.ws(s)}, {self.buf(e_in)}, &{self.sc(e_in)})")

    def op_avgpool_forward_s8(self, s):
        x, y = s.inputs[0], s.outputs[0]
        shape = self.pool_shape(s.attrs, self.shape(x))
        return self.call(f"tt_avgpool2d_forward_s8({self.buf(x)}, {self.sc(x)}, {shape}, {self.mode_c}, {self.ws(s)}, "
                         f"{self.buf(y)}, &{self.sc(y)})")

    def op_avgpool_backward_s8(self, s):
        err, e_in = s.inputs[0], s.outputs[0]
        shape = self.pool_shape(s.attrs, self.shape(e_in))
        return self.call(f"tt_avgpool2d_backward_s8({self.buf(err)}, {self.sc(err)}, {shape}, {self.mode_c}, "
                         f"{self.ws(s)}, {self.buf(e_in)}, &{self.sc(e_in)})")

    def op_global_avgpool_forward_s8(self, s):
        x, y = s.inputs[0], s.outputs[0]
        shape = self.shape(x)
        return self.call(f"tt_global_avgpool_forward_s8({self.buf(x)}, {self.sc(x)}, {c_size(shape[0])}, "
                         f"{c_size(shape[1])}, {c_size(_size(shape[2:]))}, {self.mode_c}, {self.buf(y)}, &{self.sc(y)})")

    def op_global_avgpool_backward_s8(self, s):
        err, e_in = s.inputs[0], s.outputs[0]
        shape = self.shape(e_in)
        return self.call(f"tt_global_avgpool_backward_s8({self.buf(err)}, {self.sc(err)}, {c_size(shape[0])}, "
                         f"{c_size(shape[1])}, {c_size(_size(shape[2:]))}, {self.mode_c}, {self.buf(e_in)}, "
                         f"&{self.sc(e_in)})")

    # -- residual and channel scale -------------------------------------------------------------
    def op_residual_add_s8(self, s):
        a, b = s.inputs
        y = s.outputs[0]
        return self.call(f"tt_residual_add_s8({self.buf(a)}, {self.sc(a)}, {self.buf(b)}, {self.sc(b)}, "
                         f"{c_size(_size(self.shape(a)))}, {self.mode_c}, {self.ws(s)}, {self.buf(y)}, &{self.sc(y)})")

    def _bcp(self, name: str) -> tuple[int, int, int]:
        shape = self.shape(name)
        return shape[0], shape[1], _size(shape[2:])

    def op_channel_scale_forward_s8(self, s):
        x, w = s.inputs[0], s.inputs[1]
        y = s.outputs[0]
        B, C, P = self._bcp(x)
        if len(s.inputs) > 2:
            b, bs = self.buf(s.inputs[2]), self.sc(s.inputs[2])
        else:
            b, bs = "NULL", self.sc(x)
        return self.call(f"tt_channel_scale_forward_s8({self.buf(x)}, {self.sc(x)}, {self.buf(w)}, {self.sc(w)}, {b}, "
                         f"{bs}, {self.channel_shape(B, C, P)}, {self.mode_c}, {self.ws(s)}, {self.buf(y)}, "
                         f"&{self.sc(y)})")

    def op_channel_scale_backward_input_s8(self, s):
        err, w = s.inputs
        e_in = s.outputs[0]
        B, C, P = self._bcp(err)
        return self.call(f"tt_channel_scale_backward_input_s8({self.buf(err)}, {self.sc(err)}, {self.buf(w)}, "
                         f"{self.sc(w)}, {self.channel_shape(B, C, P)}, {self.mode_c}, {self.ws(s)}, "
                         f"{self.buf(e_in)}, &{self.sc(e_in)})")

    def op_channel_scale_backward_weight_s32(self, s):
        err, x = s.inputs
        g = s.outputs[0]
        B, C, P = self._bcp(err)
        rows = self._rows(s)
        count = C if rows is None else rows.size
        return self.call(f"tt_channel_scale_backward_weight_rows_s32({self.buf(err)}, {self.sc(err)}, {self.buf(x)}, "
                         f"{self.sc(x)}, {self.channel_shape(B, C, P)}, {self.row_select(rows, count)}, "
                         f"{self.buf(g)}, &{self.sc(g)})")

    def op_channel_scale_backward_bias_s32(self, s):
        return self._bias_grad(s, self._bcp(s.inputs[0])[2])

    # -- updates --------------------------------------------------------------------------------
    def _param(self, name: str):
        return self.p.buffers[name]

    def _key(self, pname: str, offset: int = 0) -> str:
        """The stream key of parameter ``pname``'s update site plus ``offset`` (1: the error-feedback draw)."""
        return f"tt_stream_key(&tt_stream, {int(self.ctx.site(pname)) + offset}UL)"

    def _skip0_ok(self) -> bool:
        """The program's optimiser settings allow ``tt_sgd_update_weight_skip0_s8`` (fixed at build)."""
        o = self.p.optim
        return (o.rule == "aligned" and int(o.momentum_shift) == 0
                and getattr(o.rounding, "value", str(o.rounding)) == "stochastic")

    def _row_scaled_update(self, s):
        """``(row exponents pointer, row limit)`` of a row-scaled weight's update; the settings it
        needs (aligned rule, no momentum) are checked when the program is compiled."""
        a = s.attrs
        b = self._param(s.mutates[0])
        if b.dtype != "int8":
            raise CodegenError(f"{a['param']}: per-row scales are kept for int8 weights only")
        return self.buf(a["row_exp"]), int(a["row_limit"])

    def _feedback_update(self, s):
        """An int8 weight with its packed error-feedback plane and a materialised gradient (small
        tensors; larger ones take the tiled update, :meth:`op_fused_weight_update`), key of site
        4 * i + 1 (tt_sgd_feedback.c); the compiler checked the settings."""
        a = s.attrs
        pbuf, g = s.mutates[0], s.inputs[0]
        b = self._param(pbuf)
        if b.dtype != "int8":
            raise CodegenError(f"{a['param']}: error feedback is kept for int8 weights only")
        plane, bits = self.buf(a["remainder"]), int(a["feedback_bits"])
        key = self._key(a["param"], 1)
        rows = self._rows(s)
        if rows is None:
            return self.call(f"tt_sgd_update_weight_feedback_s8({self.buf(pbuf)}, &{self.sc(pbuf)}, {plane}, {bits}u, "
                             f"{c_size(_size(b.shape))}, {self.buf(g)}, {self.sc(g)}, &tt_cfg, {key})")
        return self.call(f"tt_sgd_update_weight_feedback_rows_s8({self.buf(pbuf)}, {self.sc(pbuf)}, {plane}, {bits}u, "
                         f"{c_size(b.shape[0])}, {c_size(_size(b.shape[1:]))}, {self.rows_const(rows)}, "
                         f"{c_size(rows.size)}, {self.buf(g)}, {self.sc(g)}, &tt_cfg, {key})")

    def op_sgd_update(self, s):
        pname = s.attrs["param"]
        pbuf = s.mutates[0]
        if s.attrs.get("remainder") is not None:
            return self._feedback_update(s)
        if s.attrs.get("row_exp") is not None:
            rexp, limit = self._row_scaled_update(s)
            shape = self._param(pbuf).shape
            rows = self._rows(s)
            nrows = shape[0] if rows is None else rows.size
            g = s.inputs[0]
            return self.call(f"tt_sgd_update_weight_rows_scaled_select_s8({self.buf(pbuf)}, &{self.sc(pbuf)}, {rexp}, "
                             f"{c_size(shape[0])}, {c_size(_size(shape[1:]))}, {self.rows_const(rows)}, "
                             f"{c_size(nrows)}, {self.buf(g)}, {self.sc(g)}, &tt_cfg, {limit}u, {self._key(pname)})")
        mom = self.buf(s.mutates[1]) if len(s.mutates) > 1 else "NULL"
        g = s.inputs[0]
        b = self._param(pbuf)
        rows = self._rows(s)
        key = self._key(pname)
        shape = b.shape
        count = _size(shape)
        if b.dtype == "int32":  # a bias (IntegerSGD always uses the aligned rule for biases)
            if rows is None:
                return self.call(f"tt_sgd_update_bias_fast_s32({self.buf(pbuf)}, {self.sc(pbuf)}, {c_size(count)}, "
                                 f"{self.buf(g)}, {self.sc(g)}, {mom}, &tt_cfg, {key})")
            return self.call(f"tt_sgd_update_bias_rows_s32({self.buf(pbuf)}, {self.sc(pbuf)}, {c_size(shape[0])}, "
                             f"{self.rows_const(rows)}, {c_size(rows.size)}, {self.buf(g)}, {self.sc(g)}, {mom}, "
                             f"&tt_cfg, {key})")
        suffix = {"int8": "s8", "int16": "s16"}.get(b.dtype)
        if suffix is None:
            raise CodegenError(f"{pname}: weights of type {b.dtype} cannot be updated in C")
        if rows is None:
            if suffix == "s8" and self._skip0_ok():
                k = next(i for i, t in enumerate(self.p.steps) if t is s)
                if k and self._outer_update_of(self.p.steps[k - 1]) is s:
                    err, x = self.p.steps[k - 1].inputs
                    outer = self.call(f"tt_sgd_update_weight_outer_s8({self.buf(pbuf)}, &{self.sc(pbuf)}, "
                                      f"{c_size(count)}, {self.buf(g)}, tt_scale_mul({self.sc(err)}, {self.sc(x)}), "
                                      f"&tt_cfg, {key}, {self.buf(err)}, {self.buf(x)}, {c_size(_size(shape[1:]))})")
                    skip0 = self.call(f"tt_sgd_update_weight_skip0_s8({self.buf(pbuf)}, &{self.sc(pbuf)}, "
                                      f"{c_size(count)}, {self.buf(g)}, {self.sc(g)}, &tt_cfg, {key})")
                    return ["#if TT_OUTER_UPDATE", *outer, "#else", *skip0, "#endif"]
                return self.call(f"tt_sgd_update_weight_skip0_s8({self.buf(pbuf)}, &{self.sc(pbuf)}, {c_size(count)}, "
                                 f"{self.buf(g)}, {self.sc(g)}, &tt_cfg, {key})")
            return self.call(f"tt_sgd_update_weight_{suffix}({self.buf(pbuf)}, &{self.sc(pbuf)}, {c_size(count)}, "
                             f"{self.buf(g)}, {self.sc(g)}, {mom}, &tt_cfg, {key})")
        cols = _size(shape[1:])
        return self.call(f"tt_sgd_update_weight_rows_{suffix}({self.buf(pbuf)}, {self.sc(pbuf)}, {c_size(shape[0])}, "
                         f"{c_size(cols)}, {self.rows_const(rows)}, {c_size(rows.size)}, {self.buf(g)}, {self.sc(g)}, "
                         f"{mom}, &tt_cfg, {key})")

    def _grad_callback(self, s) -> str:
        """A static function computing gradient tiles of a fused update step; returns its name."""
        a = s.attrs
        op = a["grad_op"]
        err, x = s.inputs[0], s.inputs[1]
        rows = self._rows(s)
        rows_c = self.rows_const(rows)
        name = f"tt_{self.ctx.prefix}_grad_step{s.index}"
        ctx_t = self.ctx.scales_type
        # inside the callback the scales are read through the context pointer
        esc = self.sc(err).replace("sc->", "scs->")
        xsc = self.sc(x).replace("sc->", "scs->")
        if op == "linear_backward_weight_s32":
            B, N = self.shape(err)
            K = self.shape(x)[1]
            call = (f"tt_linear_backward_weight_rows_s32({self.buf(err)}, {esc}, {self.buf(x)}, {xsc}, "
                    f"{self.dense_shape(B, K, N)}, &select, grad, grad_scale)")
        elif op == "conv_backward_weight_s32":
            shape = self.conv_shape(a, self.shape(x), self.shape(err)[1])
            call = (f"tt_conv2d_backward_weight_rows_s32({self.buf(err)}, {esc}, {self.buf(x)}, {xsc}, {shape}, "
                    f"&select, grad, grad_scale)")
        elif op == "channel_scale_backward_weight_s32":
            B, C, P = self._bcp(err)
            call = (f"tt_channel_scale_backward_weight_rows_s32({self.buf(err)}, {esc}, {self.buf(x)}, {xsc}, "
                    f"{self.channel_shape(B, C, P)}, &select, grad, grad_scale)")
        else:
            raise CodegenError(f"no C gradient tiles for op {op!r}")
        self.ctx.helpers.append(
            f"static tt_status_t {name}(const void *ctx, size_t first, size_t count, int32_t *grad, "
            f"tt_scale_t *grad_scale)\n{{\n    const {ctx_t} *scs = (const {ctx_t} *)ctx;\n"
            f"    tt_row_select_t select;\n"
            f"    select.rows = {rows_c};\n    select.first = first;\n    select.count = count;\n"
            f"    return {call};\n}}\n")
        return name

    def op_fused_weight_update(self, s):
        a = s.attrs
        pname = a["param"]
        pbuf = s.mutates[0]
        b = self._param(pbuf)
        if b.dtype not in ("int8", "int16"):
            raise CodegenError(f"{pname}: weights of type {b.dtype} cannot be updated in C")
        rows = self._rows(s)
        row_count = b.shape[0]
        cols = _size(b.shape[1:])
        nrows = row_count if rows is None else rows.size
        tile_rows = int(a["tile_rows"])
        fn = self._grad_callback(s)
        # a fully connected layer at a small batch: the update forms the gradient itself
        batch = self.shape(s.inputs[0])[0]
        rexp = a.get("row_exp")
        plane = a.get("remainder")
        rank1 = (a["grad_op"] == "linear_backward_weight_s32" and batch <= RANK_BATCH_MAX and rexp is None
                 and plane is None)
        w8 = self.buf(pbuf) if b.dtype == "int8" else "NULL"
        w16 = self.buf(pbuf) if b.dtype == "int16" else "NULL"
        mom = self.buf(s.mutates[1]) if len(s.mutates) > 1 and rexp is None and plane is None else "NULL"
        if plane is not None:  # error feedback: the general tiled loop, key of site 4 * i + 1
            if b.dtype != "int8":
                raise CodegenError(f"{pname}: error feedback is kept for int8 weights only")
            call = (f"tt_sgd_update_tiled_feedback_s8(&u, {self.buf(plane)}, {int(a['feedback_bits'])}u, &tt_cfg, "
                    f"{self._key(pname, 1)})")
        elif rexp is not None:
            rexp_c, limit = self._row_scaled_update(s)
            call = f"tt_sgd_update_tiled_rows_scaled_s8(&u, {rexp_c}, {limit}u, &tt_cfg, {self._key(pname)})"
        else:
            call = f"tt_sgd_update_tiled(&u, &tt_cfg, {self._key(pname)})"
        return ["{",
                f"    uint8_t tile_flags[{(nrows + 7) // 8}];",
                "    tt_tiled_update_t u;",
                f"    u.w8 = {w8};",
                f"    u.w16 = {w16};",
                f"    u.w_scale = &{self.sc(pbuf)};",
                f"    u.row_count = {c_size(row_count)};",
                f"    u.cols = {c_size(cols)};",
                f"    u.rows = {self.rows_const(rows)};",
                f"    u.nrows = {c_size(nrows)};",
                f"    u.momentum = {mom};",
                f"    u.tile = {self.buf(s.workspace[0])};",
                f"    u.tile_rows = {c_size(tile_rows)};",
                "    u.tile_flags = tile_flags;",
                f"    u.grad = {fn};",
                "    u.grad_ctx = sc;",
                f"    u.rank1_err = {self.buf(s.inputs[0]) if rank1 else 'NULL'};",
                f"    u.rank1_x = {self.buf(s.inputs[1]) if rank1 else 'NULL'};",
                f"    u.rank_batch = {c_size(batch if rank1 else 0)};",
                f"    TT_CALL({call});",
                "}"]


#: ops the emitter writes C for
SUPPORTED_OPS = tuple(sorted(name[3:] for name in dir(StepEmitter) if name.startswith("op_")))

__all__ = ["CTYPE", "EmitContext", "StepEmitter", "SUPPORTED_OPS"]
