"""A tintin model -> an *exact* ONNX graph: onnxruntime computes the simulator's integers.

The graph carries every activation as integer-valued float64 mantissas (exact below ``2**53``) and
every tensor scale as three exponents ``S, U, D`` (``2**S * 1.25**U * 0.75**D``, see
``docs/numerics.md``), one set per sample. Each layer does what the simulator does with one sample:

* accumulation: ``MatMul`` in float64 (linear), ``Conv`` in float32 on integer values (exact while a
  sum has at most ``FLOAT32_EXACT_TERMS`` int8 x int8 terms, so every partial sum is an integer
  below ``2**24``; larger fan-ins are split into float32 convolutions over channel blocks summed in
  float64), window sums of average pools as depthwise ``Conv`` with a kernel of ones;
* bias alignment: the bias mantissas times the fixed-point multiplier ``(M, n)`` of
  ``bias scale / accumulator scale``, looked up (``Gather``) in a table of
  ``tintin.numerics.ratio_multiplier`` over the ``(U, D)`` exponents that scale can have, rounded
  half away from zero and clipped to ``+-2**30``;
* rescale: ``A = max|acc|`` per sample, ``k = bitlen(A) - 7`` by comparisons with powers of two,
  the first fine step (in tintin's order) whose rounded ``A * m / 2**(p + k)`` fits 127
  (``ArgMax`` of the fits), applied to every element with ``Floor(|x| * m * 2**-s + 1/2)`` and the
  sign restored, then ``Clip`` to ``[-127, 127]``; ``A <= 127`` leaves the tensor unchanged;
* residual add: tintin's working scale (coarse/fine operand from the multipliers' exponents) and
  both operands brought to it with their multipliers, as :mod:`tintin.ops.residual` defines.

Every product is an integer below ``2**53`` and every power of two comes from a table, so no
float rounding ever happens: the output mantissas are the simulator's, bit for bit, sample by
sample (the scales are chosen per sample, as on a device running one sample at a time). Input:
real values ``x * 2**input_exponent`` (rounded half away from zero to the int8 grid and clipped, as
:func:`tintin.data.quantize_inputs` does), shape ``(batch, *input_shape)``; output: logits
``mantissa * scale`` in float32, ``(batch, classes)``. Opset 17.
"""

from __future__ import annotations

import numpy as np

from ..nn import (AvgPool1d, AvgPool2d, ChannelScale, Conv1d, Conv2d, Flatten, GlobalAvgPool, Linear, MaxPool1d,
                  MaxPool2d, ReLU, Residual, Sequential)
from ..numerics import BIAS_ALIGN_LIMIT, FLOAT32_EXACT_TERMS, Scale, ratio_multiplier
from ..numerics.rescale import COMPOUND_STEPS, POW2_STEPS, limit_for_bits
from ..numerics.scale import D_SHIFT, MAX_FACTOR_STEPS, U_SHIFT, ScaleMode
from ..ops.pool import avgpool_multiplier
from ..ops.residual import RESIDUAL_MAX_SHIFT
from ..numerics.scale import MULT_BITS
from .errors import InteropError, require

OPSET = 17
#: powers of two the graph can look up: 2**e for e in [-POW2_RANGE, POW2_RANGE]
POW2_RANGE = 1000
#: bit lengths are counted against 2**0 .. 2**BITLEN_MAX (accumulators stay below 2**31)
BITLEN_MAX = 40
LIMIT = limit_for_bits(8)


class _State:
    """A tensor in the graph: its mantissa tensor name, its scale exponent tensors (shape (B|1, 1))
    and the static range of its U and D exponents (for table sizes)."""

    __slots__ = ("x", "S", "U", "D", "u", "d")

    def __init__(self, x, S, U, D, u, d):
        self.x, self.S, self.U, self.D, self.u, self.d = x, S, U, D, u, d


class _ExactBuilder:
    def __init__(self, model: Sequential):
        self.onnx = require("onnx", "onnx", "writing ONNX models")
        self.model = model
        self.steps = COMPOUND_STEPS if ScaleMode(model.config.scale_mode) is ScaleMode.COMPOUND else POW2_STEPS
        self.nodes, self.inits = [], []
        self.n = 0
        self.consts: dict = {}

    # -- graph plumbing --------------------------------------------------------------------------
    def fresh(self, stem: str) -> str:
        self.n += 1
        return f"{stem}_{self.n}"

    def const(self, arr, dtype=np.float64, stem: str = "c") -> str:
        arr = np.ascontiguousarray(np.asarray(arr, dtype=dtype))
        key = (arr.dtype.str, arr.shape, arr.tobytes())
        if key not in self.consts:
            name = self.fresh(stem)
            self.inits.append(self.onnx.numpy_helper.from_array(arr, name))
            self.consts[key] = name
        return self.consts[key]

    def op(self, op: str, *inputs: str, **attrs) -> str:
        out = self.fresh(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out, **attrs))
        return out

    def add(self, a, b):
        return self.op("Add", a, b)

    def sub(self, a, b):
        return self.op("Sub", a, b)

    def mul(self, a, b):
        return self.op("Mul", a, b)

    def scalar(self, v) -> str:
        return self.const(np.full((1, 1), v))

    def index(self, x: str, offset: int) -> str:
        """``x + offset`` (integer-valued float64) as an int64 index."""
        return self.op("Cast", self.add(x, self.scalar(offset)), to=self.onnx.TensorProto.INT64)

    def pow2(self, e: str) -> str:
        """``2**e`` exactly, from a table (``e`` integer-valued float64)."""
        table = self.const(np.ldexp(1.0, np.arange(-POW2_RANGE, POW2_RANGE + 1)), stem="pow2")
        return self.op("Gather", table, self.index(e, POW2_RANGE), axis=0)

    def per_sample(self, v: str, rank: int) -> str:
        """A (B|1, 1) per-sample value reshaped to broadcast against a rank-``rank`` tensor."""
        if rank == 2:
            return v
        return self.op("Reshape", v, self.const([-1] + [1] * (rank - 1), np.int64))

    def round_half_away(self, v: str) -> str:
        """``sign(v) * floor(|v| + 1/2)``: tintin's nearest rounding (exact for the values here)."""
        mag = self.op("Floor", self.add(self.op("Abs", v), self.scalar(0.5)))
        return self.mul(self.op("Sign", v), mag)

    def clip(self, v: str, limit: float) -> str:
        return self.op("Clip", v, self.const(-float(limit)), self.const(float(limit)))

    # -- tintin arithmetic -----------------------------------------------------------------------
    def multiplier_table(self, ulo: int, uhi: int, dlo: int, dhi: int, stem: str):
        """Tables of ``ratio_multiplier(Scale(0, U, D))`` over a range of (U, D): ``M`` and ``n0``
        (flat, index ``(U - ulo) * nd + (D - dlo)``)."""
        ulo, dlo = max(ulo, -MAX_FACTOR_STEPS), max(dlo, -MAX_FACTOR_STEPS)
        uhi, dhi = min(uhi, MAX_FACTOR_STEPS), min(dhi, MAX_FACTOR_STEPS)
        ms, ns = [], []
        for u in range(ulo, uhi + 1):
            for d in range(dlo, dhi + 1):
                m, n = ratio_multiplier(Scale(0, u, d))
                ms.append(m)
                ns.append(n)
        return (self.const(ms, stem=f"{stem}_M"), self.const(ns, stem=f"{stem}_n"), ulo, dlo, dhi - dlo + 1)

    def multiplier(self, dS: str, dU: str, dD: str, u_range, d_range, stem: str):
        """The fixed-point multiplier ``(M, n)`` of the ratio ``2**dS * u**dU * d**dD`` (per sample)."""
        m_tab, n_tab, ulo, dlo, nd = self.multiplier_table(*u_range, *d_range, stem)
        flat = self.add(self.mul(self.sub(dU, self.scalar(ulo)), self.scalar(nd)), self.sub(dD, self.scalar(dlo)))
        idx = self.index(flat, 0)
        m = self.op("Gather", m_tab, idx, axis=0)
        n = self.sub(self.op("Gather", n_tab, idx, axis=0), dS)   # n = -(e + S)
        return m, n

    def apply_multiplier(self, x: str, m: str, n: str, rank: int, limit: float | None) -> str:
        """``round(x * M / 2**n)`` (nearest; exact product), clipped to ``limit`` if given."""
        v = self.mul(self.mul(x, self.per_sample(m, rank)), self.per_sample(self.pow2(self.op("Neg", n)), rank))
        v = self.round_half_away(v)
        return self.clip(v, limit) if limit is not None else v

    def rescale(self, acc: str, st: _State, rank: int) -> _State:
        """:func:`tintin.numerics.rescale` (nearest, 8 bits) per sample."""
        amax = self.op("ReduceMax", self.op("Abs", acc), axes=list(range(1, rank)), keepdims=0)
        amax = self.op("Reshape", amax, self.const([-1, 1], np.int64))                  # (B, 1)
        powers = self.const(np.ldexp(1.0, np.arange(BITLEN_MAX + 1))[None, :], stem="powers")
        ge = self.op("Cast", self.op("GreaterOrEqual", amax, powers), to=self.onnx.TensorProto.DOUBLE)
        bitlen = self.op("ReduceSum", ge, self.const([1], np.int64), keepdims=1)        # (B, 1)
        k = self.sub(bitlen, self.scalar(LIMIT.bit_length()))
        cands = [(st_, extra) for extra in (0, 1) for st_ in self.steps]
        cm = self.const([[c.m for c, _ in cands]])
        cshift = self.const([[c.p + e for c, e in cands]])
        ca = self.const([[c.a for c, _ in cands]])
        cb = self.const([[c.b for c, _ in cands]])
        shift = self.add(cshift, k)                                                      # (B, C)
        fitted = self.op("Floor", self.add(self.mul(self.mul(amax, cm), self.pow2(self.op("Neg", shift))),
                                           self.scalar(0.5)))
        fits = self.op("Cast", self.op("LessOrEqual", fitted, self.scalar(LIMIT)), to=self.onnx.TensorProto.DOUBLE)
        first = self.op("ArgMax", fits, axis=1, keepdims=1)                               # (B, 1) int64

        def pick(table):
            return self.op("GatherElements", self.op("Expand", table, self.op("Shape", fits)), first, axis=1)

        keep = self.op("LessOrEqual", amax, self.scalar(LIMIT))
        m = self.op("Where", keep, self.scalar(1), pick(cm))
        s = self.op("Where", keep, self.scalar(0), pick(shift))
        a = self.op("Where", keep, self.scalar(0), pick(ca))
        b = self.op("Where", keep, self.scalar(0), pick(cb))
        q = self.clip(self.apply_multiplier(acc, m, s, rank, None), LIMIT)
        S = self.add(st.S, self.sub(s, self.add(self.mul(a, self.scalar(U_SHIFT)), self.mul(b, self.scalar(D_SHIFT)))))
        grow = 2 if self.steps is COMPOUND_STEPS else 0
        return _State(q, S, self.sub(st.U, a), self.sub(st.D, b), (st.u[0] - grow, st.u[1]), (st.d[0] - grow, st.d[1]))

    def aligned_bias(self, bias, acc: _State, shape: tuple[int, ...], stem: str) -> str:
        """The bias at the accumulator scale (align_bias), shaped to broadcast against ``shape``."""
        v = bias.value
        b = self.const(v.m.astype(np.float64).reshape(1, -1), stem=f"{stem}_bias")
        dS = self.sub(self.scalar(v.scale.S), acc.S)
        dU = self.sub(self.scalar(v.scale.U), acc.U)
        dD = self.sub(self.scalar(v.scale.D), acc.D)
        m, n = self.multiplier(dS, dU, dD, (v.scale.U - acc.u[1], v.scale.U - acc.u[0]),
                               (v.scale.D - acc.d[1], v.scale.D - acc.d[0]), stem)
        out = self.apply_multiplier(b, m, n, 2, BIAS_ALIGN_LIMIT)                        # (B, C)
        if len(shape) > 2:
            out = self.op("Reshape", out, self.const([-1, shape[1]] + [1] * (len(shape) - 2), np.int64))
        return out

    def times_scale(self, st: _State, w) -> _State:
        s = w.scale
        return _State(None, self.add(st.S, self.scalar(s.S)), self.add(st.U, self.scalar(s.U)),
                      self.add(st.D, self.scalar(s.D)), (st.u[0] + s.U, st.u[1] + s.U), (st.d[0] + s.D, st.d[1] + s.D))

    def conv_f32(self, x: str, w: np.ndarray, layer, shape) -> str:
        """An exact convolution of integer values: float32 Conv over channel blocks of at most
        FLOAT32_EXACT_TERMS terms each, summed in float64."""
        kernel = list(layer.kernel_size)
        attrs = dict(kernel_shape=kernel, strides=list(layer.stride), pads=list(layer.padding) * 2, group=layer.groups)
        cin_g = w.shape[1]
        per_channel = int(np.prod(kernel))
        block = max(1, FLOAT32_EXACT_TERMS // per_channel)
        if cin_g <= block:
            y = self.op("Conv", self.op("Cast", x, to=self.onnx.TensorProto.FLOAT), self.const(w, np.float32), **attrs)
            return self.op("Cast", y, to=self.onnx.TensorProto.DOUBLE)
        if layer.groups != 1:
            raise InteropError(f"layer {layer.name}: a grouped convolution with {cin_g * per_channel} terms per "
                               f"output has no exact ONNX form")
        total = None
        for c0 in range(0, cin_g, block):
            c1 = min(cin_g, c0 + block)
            xs = self.op("Slice", x, self.const([c0], np.int64), self.const([c1], np.int64), self.const([1], np.int64))
            y = self.op("Conv", self.op("Cast", xs, to=self.onnx.TensorProto.FLOAT), self.const(w[:, c0:c1], np.float32),
                        **attrs)
            y = self.op("Cast", y, to=self.onnx.TensorProto.DOUBLE)
            total = y if total is None else self.add(total, y)
        return total

    # -- layers ----------------------------------------------------------------------------------
    def layers(self, layers, st: _State, shape: tuple[int, ...]) -> tuple[_State, tuple[int, ...]]:
        for layer in layers:
            st = self.layer(layer, st, shape)
            shape = (shape[0],) + tuple(layer.output_shape(shape[1:]))
        return st, shape

    def layer(self, layer, st: _State, shape) -> _State:
        rank = len(shape)
        if isinstance(layer, Linear):
            w = layer.weight.forward_view(self.model.config.scale_mode)
            return self.accumulated(layer, self.op("MatMul", st.x, self.const(w.m.astype(np.float64).T)), st, w, 2)
        if isinstance(layer, (Conv1d, Conv2d)):
            w = layer.weight.forward_view(self.model.config.scale_mode)
            return self.accumulated(layer, self.conv_f32(st.x, w.m.astype(np.float32), layer, shape), st, w, rank)
        if isinstance(layer, ChannelScale):
            g = layer.weight.forward_view(self.model.config.scale_mode)
            gamma = self.const(g.m.astype(np.float64).reshape((1, -1) + (1,) * (rank - 2)))
            return self.accumulated(layer, self.mul(st.x, gamma), st, g, rank)
        if isinstance(layer, ReLU):
            return _State(self.op("Relu", st.x), st.S, st.U, st.D, st.u, st.d)
        if isinstance(layer, (MaxPool1d, MaxPool2d)):
            y = self.op("MaxPool", st.x, kernel_shape=list(layer.kernel_size), strides=list(layer.stride))
            return _State(y, st.S, st.U, st.D, st.u, st.d)
        if isinstance(layer, (AvgPool1d, AvgPool2d)):
            kernel = list(layer.kernel_size)
            window = int(np.prod(kernel))
            channels = shape[1]
            ones = np.ones((channels, 1, *kernel), dtype=np.float32)
            y = self.op("Conv", self.op("Cast", st.x, to=self.onnx.TensorProto.FLOAT), self.const(ones, np.float32),
                        kernel_shape=kernel, strides=list(layer.stride), group=channels)
            return self.averaged(self.op("Cast", y, to=self.onnx.TensorProto.DOUBLE), st, window, rank)
        if isinstance(layer, GlobalAvgPool):
            area = int(np.prod(shape[2:]))
            y = self.op("ReduceSum", st.x, self.const(list(range(2, rank)), np.int64), keepdims=0)
            return self.averaged(y, st, area, 2)
        if isinstance(layer, Flatten):
            return _State(self.op("Flatten", st.x, axis=1), st.S, st.U, st.D, st.u, st.d)
        if isinstance(layer, Residual):
            body, _ = self.layers(layer.body, st, shape)
            short, _ = self.layers(layer.shortcut, st, shape) if layer.shortcut else (st, shape)
            return self.residual_add(body, short, rank)
        raise InteropError(f"layer {layer.name} ({layer.spec()['type']}) has no exact ONNX form")

    def accumulated(self, layer, acc: str, st: _State, w, rank: int) -> _State:
        """An accumulator at ``s_x * s_w`` plus the layer's aligned bias, rescaled."""
        acc_st = self.times_scale(st, w)
        if layer.bias is not None:
            shape = (1, w.m.shape[0]) + (1,) * (rank - 2)
            acc = self.add(acc, self.aligned_bias(layer.bias, acc_st, shape, layer.name))
        return self.rescale(acc, acc_st, rank)

    def averaged(self, sums: str, st: _State, window: int, rank: int) -> _State:
        m, n = avgpool_multiplier(window)
        acc = self.mul(sums, self.scalar(m)) if m != 1 else sums
        return self.rescale(acc, _State(None, self.sub(st.S, self.scalar(n)), st.U, st.D, st.u, st.d), rank)

    def residual_add(self, a: _State, b: _State, rank: int) -> _State:
        """:func:`tintin.ops.residual.residual_add_s8` per sample."""
        u_rng = (min(a.u[0], b.u[0]), max(a.u[1], b.u[1]))
        d_rng = (min(a.d[0], b.d[0]), max(a.d[1], b.d[1]))
        span_u = (u_rng[0] - u_rng[1], u_rng[1] - u_rng[0])
        span_d = (d_rng[0] - d_rng[1], d_rng[1] - d_rng[0])

        def floor_log2(p: _State, q: _State) -> str:
            _, n = self.multiplier(self.sub(p.S, q.S), self.sub(p.U, q.U), self.sub(p.D, q.D), span_u, span_d, "res")
            return self.sub(self.scalar(MULT_BITS - 1), n)

        e_ab, e_ba = floor_log2(a, b), floor_log2(b, a)
        zero = self.scalar(0)
        ab_ok, ba_ok = self.op("GreaterOrEqual", e_ab, zero), self.op("GreaterOrEqual", e_ba, zero)
        # (Sa, Ua, Da) >= (Sb, Ub, Db) lexicographically
        gt = lambda x, y: self.op("Greater", x, y)  # noqa: E731
        eq = lambda x, y: self.op("Equal", x, y)  # noqa: E731
        tuple_ge = self.op("Or", gt(a.S, b.S), self.op("And", eq(a.S, b.S), self.op(
            "Or", gt(a.U, b.U), self.op("And", eq(a.U, b.U), self.op("GreaterOrEqual", a.D, b.D)))))
        differ = self.op("Xor", ab_ok, ba_ok)
        a_coarse = self.op("Or", self.op("And", differ, ab_ok), self.op("And", self.op("Not", differ), tuple_ge))
        e = self.op("Where", a_coarse, e_ab, e_ba)
        pick = lambda x, y: self.op("Where", a_coarse, x, y)  # noqa: E731
        coarse_S, coarse_U, coarse_D = pick(a.S, b.S), pick(a.U, b.U), pick(a.D, b.D)
        fine_S, fine_U, fine_D = pick(b.S, a.S), pick(b.U, a.U), pick(b.D, a.D)
        near = self.op("Less", e, self.scalar(RESIDUAL_MAX_SHIFT))
        work = _State(None, self.op("Where", near, fine_S, self.sub(coarse_S, self.scalar(RESIDUAL_MAX_SHIFT))),
                      self.op("Where", near, fine_U, coarse_U), self.op("Where", near, fine_D, coarse_D), u_rng, d_rng)

        def to_work(p: _State) -> str:
            m, n = self.multiplier(self.sub(p.S, work.S), self.sub(p.U, work.U), self.sub(p.D, work.D),
                                   span_u, span_d, "res")
            return self.apply_multiplier(p.x, m, n, rank, None)

        acc = self.add(to_work(a), to_work(b))
        return self.rescale(acc, work, rank)

    # -- the whole graph -------------------------------------------------------------------------
    def build(self):
        onnx = self.onnx
        model = self.model
        e = model.input_exponent
        x = self.op("Cast", "input", to=onnx.TensorProto.DOUBLE)
        x = self.clip(self.round_half_away(self.mul(x, self.scalar(2.0**-e))), LIMIT)
        st = _State(x, self.scalar(e), self.scalar(0), self.scalar(0), (0, 0), (0, 0))
        st, _ = self.layers(model.layers, st, (1,) + tuple(model.input_shape))
        u_tab = self.const(1.25 ** np.arange(-MAX_FACTOR_STEPS, MAX_FACTOR_STEPS + 1, dtype=np.float64), stem="u_pow")
        d_tab = self.const(0.75 ** np.arange(-MAX_FACTOR_STEPS, MAX_FACTOR_STEPS + 1, dtype=np.float64), stem="d_pow")
        factor = self.mul(self.op("Gather", u_tab, self.index(st.U, MAX_FACTOR_STEPS), axis=0),
                          self.op("Gather", d_tab, self.index(st.D, MAX_FACTOR_STEPS), axis=0))
        scale = self.mul(factor, self.pow2(st.S))
        logits = self.mul(st.x, scale)
        self.nodes.append(onnx.helper.make_node("Cast", [logits], ["logits"], name="logits", to=onnx.TensorProto.FLOAT))
        inp = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", *model.input_shape])
        out = onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, ["batch", *model.output_shape_])
        graph = onnx.helper.make_graph(self.nodes, model.name, [inp], [out], self.inits)
        proto = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", OPSET)],
                                       producer_name="tintin")
        proto.ir_version = min(proto.ir_version, 9)
        onnx.checker.check_model(proto)
        return proto


def to_exact_onnx(model: Sequential):
    """The exact ONNX ``ModelProto`` of ``model`` (see the module docstring)."""
    return _ExactBuilder(model).build()
