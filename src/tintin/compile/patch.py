"""Patch-based inference of a frozen first stage (MCUNetV2-style): the stage's large activation maps
never exist in full.

When the first layers of a model are frozen and no backward step reaches them (``last:K``, a row
update of a late layer), their only job in a training step is to produce the input of the trained
part. A *patch stage* (``CompileOptions(patch_size=P)``) replaces those layers (2-D convolutions,
ReLUs and max pools, from the first layer on) by one step, ``patch_stage_forward_s8``, that builds
the stage's output P x P positions at a time: each output patch is traced back through the layers
to the input region it needs (its halo), and only those regions are computed, into int8 workspaces
the size of one patch's region. The maps between the layers exist only patch by patch, and no
int32 accumulator map exists at all: each accumulator is quantised (or only compared with the
running maximum) as soon as it is summed, like a recomputed accumulator (the numpy executor forms
a patch's int32 sums as a host temporary, as it forms im2col blocks).

Bit-exactness. Every convolution is rescaled with the maximum of its *whole* int32 accumulator (per
tensor, over the batch), which a patch cannot know. So the step makes one pass per convolution
first: pass ``k`` tiles convolution ``k``'s output, computes every tile (through the earlier
convolutions, whose maxima are known by then) and keeps only the running maximum. The last pass
tiles the stage output and writes it. With the maxima known, nearest rounding is element-wise
(:func:`tintin.numerics.rescale_known_max`), and ReLU and max pooling are local, so each patch
holds exactly the values of the whole-tensor computation.

Cost: a stage with convolutions ``c_1 .. c_n`` computes ``c_k`` in passes ``k .. n+1`` (``n + 2 - k``
times), each time over the halo regions of the tiles; the step's ``macs`` counts them exactly
(:func:`stage_macs`), ``attrs["plain_macs"]`` holds the MACs of one plain pass.

The C runtime's ``tt_patch_stage_forward_s8`` (``runtime/tt_patch.c``) runs the same schedule over
the same regions in the same workspaces (direct convolution loops: no im2col block).
"""

from __future__ import annotations

import math

import numpy as np

from ..numerics import QTensor, max_abs, rescale_known_max
from ..ops.activation import relu_forward_s8
from ..ops.conv import conv2d_accumulate
from ..ops.linear import align_bias
from ..ops.pool import maxpool2d_forward_s8
from .ir import BufferKind, Phase
from .registry import CompileError, register_kernel

Region = tuple[int, int, int, int]  # rows [r0, r1), columns [c0, c1) of a layer's output

OP = "patch_stage_forward_s8"


def stage_layers(model, stop: int, limit: int | None = None) -> list:
    """The layers a patch stage may cover: from the first layer on, 2-D convolutions (without
    per-row scales), ReLUs and max pools below ``stop`` (the first layer a backward step reaches),
    ending at the last convolution or max pool; at most ``limit`` layers. Empty if the first
    layer cannot start one."""
    from ..nn.conv_layers import Conv2d
    from ..nn.layers import ReLU
    from ..nn.pool_layers import MaxPool2d

    layers = []
    for i, layer in enumerate(model.layers[:stop]):
        if limit is not None and i >= limit:
            break
        if isinstance(layer, Conv2d) and getattr(layer.weight, "row_exp", None) is None:
            layers.append(layer)
        elif isinstance(layer, (ReLU, MaxPool2d)) and getattr(layer, "dims", 2) == 2:
            layers.append(layer)
        else:
            break
    while layers and isinstance(layers[-1], ReLU):  # a trailing ReLU is cheaper outside the stage
        layers.pop()
    if not any(isinstance(layer, Conv2d) for layer in layers):
        return []
    return layers


def _spec(layer, in_shape: tuple[int, ...]) -> dict:
    from ..nn.conv_layers import Conv2d
    from ..nn.pool_layers import MaxPool2d

    out_shape = tuple(int(v) for v in layer.output_shape(in_shape))
    spec = {"layer": layer.name, "in_shape": list(in_shape), "out_shape": list(out_shape)}
    if isinstance(layer, Conv2d):
        spec.update(kind="conv", kernel=list(layer.kernel_size), stride=list(layer.stride),
                    padding=list(layer.padding), groups=int(layer.groups), fan_in=int(layer.fan_in))
    elif isinstance(layer, MaxPool2d):
        spec.update(kind="maxpool", kernel=list(layer.kernel_size), stride=list(layer.stride), padding=[0, 0])
    else:
        spec.update(kind="relu")
    return spec


def input_range(spec: dict, axis: int, lo: int, hi: int) -> tuple[int, int]:
    """The input positions ``[a, b)`` (before clipping: may reach into the padding) that output
    positions ``[lo, hi)`` of a layer read along ``axis`` (0: rows, 1: columns)."""
    if spec["kind"] == "relu":
        return lo, hi
    k, s, p = spec["kernel"][axis], spec["stride"][axis], spec["padding"][axis]
    return lo * s - p, (hi - 1) * s - p + k


def regions(specs: list[dict], target: int, region: Region) -> list[Region]:
    """The region of every layer ``0 .. target`` computed for ``region`` of layer ``target``'s
    output: each layer's region is its successor's input range, clipped to the map."""
    out = [region]
    for j in range(target, 0, -1):
        r0, r1, c0, c1 = out[-1]
        if r1 <= r0 or c1 <= c0:  # an output region inside the padding reads nothing
            out.append((0, 0, 0, 0))
            continue
        h, w = specs[j]["in_shape"][1:]
        a0, a1 = input_range(specs[j], 0, r0, r1)
        b0, b1 = input_range(specs[j], 1, c0, c1)
        out.append((max(a0, 0), min(a1, h), max(b0, 0), min(b1, w)))
    return out[::-1]


def _tiles(hw, size) -> list[Region]:
    h, w = hw
    return [(r, min(r + size[0], h), c, min(c + size[1], w)) for r in range(0, h, size[0]) for c in range(0, w, size[1])]


def _tile_size(specs: list[dict], target: int, patch: int) -> tuple[int, int]:
    """Tile of layer ``target``'s output that a P x P patch of the stage output needs (unclipped):
    the passes that find a convolution's maximum tile its output in this size."""
    lo_r, hi_r, lo_c, hi_c = 0, patch, 0, patch
    for j in range(len(specs) - 1, target, -1):
        lo_r, hi_r = input_range(specs[j], 0, lo_r, hi_r)
        lo_c, hi_c = input_range(specs[j], 1, lo_c, hi_c)
    return hi_r - lo_r, hi_c - lo_c


def schedule(specs: list[dict], patch: int) -> list[tuple[int, bool, Region]]:
    """``(layer, find_max, region)`` in execution order: one pass per convolution (``find_max``:
    its accumulator's maximum over tiles of its output), then the stage output tile by tile."""
    out = []
    for j, spec in enumerate(specs):
        if spec["kind"] == "conv":  # the first layer reads the stored input: one tile, no halo
            size = tuple(spec["out_shape"][1:]) if j == 0 else _tile_size(specs, j, patch)
            out += [(j, True, t) for t in _tiles(spec["out_shape"][1:], size)]
    last = len(specs) - 1
    out += [(last, False, t) for t in _tiles(specs[last]["out_shape"][1:], (patch, patch))]
    return out


def _conv_macs(spec: dict, region: Region, batch: int) -> int:
    r0, r1, c0, c1 = region
    return batch * spec["out_shape"][0] * (r1 - r0) * (c1 - c0) * spec["fan_in"]


def stage_macs(specs: list[dict], patch: int, batch: int) -> int:
    """MACs of the whole patch step (every pass, every halo)."""
    total = 0
    for target, _, region in schedule(specs, patch):
        for spec, reg in zip(specs, regions(specs, target, region)):
            if spec["kind"] == "conv":
                total += _conv_macs(spec, reg, batch)
    return total


def _workspace_shapes(specs: list[dict], patch: int, batch: int) -> list[tuple[int, int]]:
    """Largest region (rows, columns) each layer computes over the whole schedule."""
    big = [(0, 0)] * len(specs)
    for target, find_max, region in schedule(specs, patch):
        for j, (r0, r1, c0, c1) in enumerate(regions(specs, target, region)):
            if not (find_max and j == target):  # a maximum pass keeps only the running maximum
                big[j] = (max(big[j][0], r1 - r0), max(big[j][1], c1 - c0))
    return big


def lower_patch_stage(b, layers: list, x: str, patch: int) -> str:
    """Add the ``patch_stage_forward_s8`` step of ``layers`` (see :func:`stage_layers`) reading
    buffer ``x``; returns the stage output buffer (``<last layer>.out``, int8, whole)."""
    if patch < 1:
        raise CompileError(f"patch size must be at least 1, got {patch}")
    B = b.batch_size
    shape = tuple(b.shape(x)[1:])
    specs = []
    for layer in layers:
        spec = _spec(layer, shape)
        shape = tuple(spec["out_shape"])
        specs.append(spec)
    inputs = [x]
    workspace = []
    big = _workspace_shapes(specs, patch, B)
    for j, (layer, spec) in enumerate(zip(layers, specs)):
        c = spec["out_shape"][0]
        if spec["kind"] == "conv":
            spec["weight"] = b.param(layer.weight)
            inputs.append(spec["weight"])
            spec["bias"] = b.param(layer.bias) if layer.bias is not None else None
            if spec["bias"]:
                inputs.append(spec["bias"])
        if spec["kind"] == "relu":  # in place over its input's patch
            spec["out"] = specs[j - 1]["out"] if j else None
            if spec["out"] is None:
                raise CompileError("a patch stage cannot start with a ReLU")
        else:
            spec["out"] = b.add_buffer(f"{layer.name}.patch", BufferKind.WORKSPACE, "int8", (B, c, *big[j]),
                                       layer=layer.name)
            workspace.append(spec["out"])
    out = b.add_buffer(f"{layers[-1].name}.out", BufferKind.ACTIVATION, "int8", (B, *specs[-1]["out_shape"]),
                       layer=layers[-1].name)
    plain = sum(B * math.prod(s["out_shape"]) * s["fan_in"] for s in specs if s["kind"] == "conv")
    macs = stage_macs(specs, patch, B)
    elementwise = sum(B * math.prod(s["out_shape"]) * 4 for s in specs) * (1 + sum(s["kind"] == "conv" for s in specs))
    b.add_step(Phase.FORWARD, OP, f"{layers[0].name}..{layers[-1].name}", tuple(inputs), (out,),
               workspace=tuple(workspace),
               attrs={"layers": specs, "patch": patch, "plain_macs": plain, "passes": 1 + sum(s["kind"] == "conv" for s in specs)},
               macs=macs, elementwise=elementwise)
    return out


class _Stage:
    """Runs the schedule of one patch step on the executor's arena views."""

    def __init__(self, step, io, env):
        self.specs = step.attrs["layers"]
        self.io, self.mode = io, env.mode
        self.x = io.read(step.inputs[0])
        self.params = {name: io.read(name) for s in self.specs if s["kind"] == "conv"
                       for name in (s["weight"], s["bias"]) if name}
        self.amax: dict[int, int] = {}  # convolution index -> max |acc| over its whole output

    def _store(self, name: str, values: np.ndarray) -> np.ndarray:
        """Write a patch into the start of its workspace and read it back from there."""
        flat = self.io.array(name).reshape(-1)
        flat[:values.size] = values.reshape(-1)
        return flat[:values.size].reshape(values.shape)

    def run(self, target: int, find_max: bool, region: Region) -> QTensor | None:
        regs = regions(self.specs, target, region)
        cur = None  # QTensor of the previous layer's region
        for j in range(target + 1):
            spec, reg = self.specs[j], regs[j]
            if reg[1] <= reg[0] or reg[3] <= reg[2]:  # a region inside the next layer's padding
                if find_max and j == target:
                    return None
                scale = self.x.scale if j == 0 else cur.scale
                if spec["kind"] == "conv":  # the scale its values would have
                    acc_scale = scale * self.params[spec["weight"]].scale
                    scale = rescale_known_max(np.zeros(0, np.int32), self.amax[j], acc_scale, 8, self.mode)[1]
                shape = (self.x.m.shape[0], spec["out_shape"][0], max(reg[1] - reg[0], 0), max(reg[3] - reg[2], 0))
                cur = QTensor(np.zeros(shape, dtype=np.int8), scale)
                continue
            if spec["kind"] == "relu":
                cur = QTensor(self._store(spec["out"], relu_forward_s8(cur).m), cur.scale)
                continue
            h, w = spec["in_shape"][1:]
            a0, a1 = input_range(spec, 0, reg[0], reg[1])
            b0, b1 = input_range(spec, 1, reg[2], reg[3])
            src = self.x.m[:, :, max(a0, 0):min(a1, h), max(b0, 0):min(b1, w)] if j == 0 else cur.m
            scale = self.x.scale if j == 0 else cur.scale
            if spec["kind"] == "maxpool":
                y, _ = maxpool2d_forward_s8(QTensor(src, scale), spec["kernel"], spec["stride"])
                cur = QTensor(self._store(spec["out"], y.m), y.scale)
                continue
            padded = np.zeros(src.shape[:2] + (a1 - a0, b1 - b0), dtype=np.int8)  # zero padding at the map's edge
            padded[:, :, max(a0, 0) - a0:min(a1, h) - a0, max(b0, 0) - b0:min(b1, w) - b0] = src
            weight = self.params[spec["weight"]]
            acc_scale = scale * weight.scale
            acc = conv2d_accumulate(padded, weight.m, spec["stride"], 0, spec["groups"])
            if spec["bias"]:
                acc += align_bias(self.params[spec["bias"]], acc_scale).astype(np.int32)[None, :, None, None]
            if find_max and j == target:
                self.amax[j] = max(self.amax.get(j, 0), max_abs(acc))
                return None
            q, s = rescale_known_max(acc, self.amax[j], acc_scale, 8, self.mode)
            cur = QTensor(self._store(spec["out"], q), s)
        return cur


@register_kernel(OP)
def _patch_stage_forward(step, io, env):
    stage = _Stage(step, io, env)
    out = io.array(step.outputs[0])
    scale = None
    for target, find_max, region in schedule(stage.specs, step.attrs["patch"]):
        y = stage.run(target, find_max, region)
        if y is not None:
            r0, r1, c0, c1 = region
            out[:, :, r0:r1, c0:c1] = y.m
            scale = y.scale
    io.set_scale(step.outputs[0], scale)
