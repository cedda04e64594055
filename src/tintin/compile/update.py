"""Update steps: the optimiser arithmetic of :class:`tintin.optim.IntegerSGD`, materialised or in
row tiles.

``sgd_update`` (materialised gradient)
    Calls :meth:`IntegerSGD.update` itself on a parameter object whose value, gradient and momentum
    are read from the arena, and writes the results back. A row-sparse gradient buffer holds only
    the trained rows; it is scattered into a full-size host array for the call (host-side only: the
    arena holds just the rows).

``fused_weight_update`` (row-tiled gradient)
    The int32 weight gradient is never whole: tiles of ``tile_rows`` output rows are computed into a
    small workspace and applied at once. The arithmetic is IntegerSGD's, element by element, with
    three points that make tiling exact:

    * *Stochastic rounding by offset.* The draw of flat element ``i`` is
      ``key + i * GOLDEN32`` (mod 2**32, the ``weyl32`` draw); a tile starting at flat element ``o`` uses the key
      ``key + o * GOLDEN32`` (mod 2**32) and gets exactly the draws of the whole-tensor call.
    * *Global decisions in passes.* NITI's shift needs ``max|g|`` over the whole (selected)
      gradient: a first pass computes every tile only for its maximum (twice the gradient MACs,
      when there is more than one tile). The weight rescale (``weight_rescale``) needs
      ``max|w - delta|`` over the whole tensor: each tile is written as soon as its new values fit
      the weight range; if some did not, the tensor is rescaled in a second pass that reads the
      written tiles back and recomputes only the tiles that were not written.
    * *Momentum* is updated with its tile and written together with the weights.
    * *Error feedback* (a packed ``L``-bit plane beside an int8 weight, ``remainder``): each tile's
      master ``W = 2**L * w + r - fine`` (``fine = round(g * M / 2**(n - L))``, draws of site
      ``4 * i + 1`` by offset) is split and written, with its plane fields, as soon as its new ``w``
      fit; on a rescale the second pass rebuilds ``W`` of the written tiles from ``(w, r)``, recomputes
      the others, and rounds every ``W`` to the coarser scale (:func:`_fused_feedback`).
"""

from __future__ import annotations

import numpy as np

from ..numerics import QTensor, Rounding, apply_multiplier, limit_for_bits, max_abs
from ..numerics.rescale import choose_grid_rescale
from ..numerics.rounding import GOLDEN32, MASK32
from ..numerics.scale_rows import apply_multiplier_rows, renormalise_rows_stage1, renormalise_rows_stage2
from .registry import gradient_rows_for, register_kernel


def offset_key(key: int, offset: int) -> int:
    """Stream key whose draws start at flat element ``offset`` of a call keyed ``key``."""
    return (key + offset * GOLDEN32) & MASK32


@register_kernel("sgd_update")
def sgd_update(step, io, env) -> None:
    from ..numerics.bitplane import pack_plane, unpack_plane

    pname = step.attrs["param"]
    rows = step.attrs.get("rows")
    pbuf = step.mutates[0]
    rexp = step.attrs.get("row_exp")
    plane = step.attrs.get("remainder")
    mom = step.mutates[1] if len(step.mutates) > 1 and step.mutates[1] not in (rexp, plane) else None
    p = env.shim(pname)
    p.assign(QTensor(io.array(pbuf).copy(), io.scale(pbuf)))
    if rexp is not None:
        p.row_exp, p.row_limit = io.array(rexp).copy(), int(step.attrs["row_limit"])
    g = io.read(step.inputs[0])
    if rows is not None:
        full = np.zeros(p.value.m.shape, dtype=g.m.dtype)
        full[rows] = g.m
        g = QTensor(full, g.scale)
    p.grad = g
    p.trainable_rows = rows
    p.momentum = io.array(mom).copy() if mom is not None else None
    if plane is not None:  # error feedback: the packed plane unpacked for the call, packed again after it
        bits = int(step.attrs["feedback_bits"])
        p.remainder = unpack_plane(io.array(plane), bits, p.value.m.size).reshape(p.value.m.shape)
        p.feedback_bits = bits
    env.optimizer.update(p, env.ctx)
    io.write(pbuf, p.value)
    if plane is not None:
        io.array(plane)[...] = pack_plane(p.remainder, bits)
    if rexp is not None:
        io.array(rexp)[...] = p.row_exp
    if mom is not None:
        io.array(mom)[...] = p.momentum


@register_kernel("fused_weight_update")
def fused_weight_update(step, io, env) -> None:
    a = step.attrs
    p = env.shim(a["param"])
    opt = env.optimizer
    cfg = opt.config
    pbuf = step.mutates[0]
    w = io.array(pbuf)
    w_scale = io.scale(pbuf)
    rexp = a.get("row_exp")
    v = io.array(step.mutates[1]) if len(step.mutates) > 1 and step.mutates[1] not in (rexp, a.get("remainder")) \
        else None
    rows = a.get("rows")
    n_sel = w.shape[0] if rows is None else len(rows)
    row_len = int(np.prod(w.shape[1:], dtype=np.int64))
    tile_rows = int(a["tile_rows"])
    n_tiles = -(-n_sel // tile_rows)
    grad_fn = gradient_rows_for(a["grad_op"])
    err = io.read(step.inputs[0])
    x = io.read(step.inputs[1]) if len(step.inputs) > 1 else None
    tile_buf = io.array(step.workspace[0])
    key = env.ctx.stream.key(env.site(a["param"]))
    limit = limit_for_bits(p.bits)

    def span(t: int):
        r0, r1 = t * tile_rows, min(n_sel, (t + 1) * tile_rows)
        return r0, r1, (slice(r0, r1) if rows is None else rows[r0:r1])

    def gradient(t: int):
        """Gradient tile ``t`` computed into the arena workspace; returns (int32 rows, scale)."""
        r0, r1, idx = span(t)
        g = grad_fn(err, x, idx, a)
        tile_buf[: r1 - r0] = g.m
        return tile_buf[: r1 - r0].copy(), g.scale

    if rexp is not None:
        _fused_row_scaled(step, io, opt, w, w_scale, io.array(rexp), rows, n_tiles, span, gradient, key, row_len)
        return
    if a.get("remainder") is not None:  # error feedback: the draws of site 4 * i + 1
        _fused_feedback(step, io, opt, w, w_scale, rows, n_tiles, span, gradient,
                        env.ctx.stream.key(env.site(a["param"]) + 1), row_len, limit)
        return
    cached = {}
    if cfg.rule == "niti":
        amax = 0
        for t in range(n_tiles):
            gm, gs = gradient(t)
            amax = max(amax, max_abs(gm))
            if n_tiles == 1:
                cached[0] = (gm, gs)
        k = opt.niti_shift(amax)
        if k is None:
            return

        def delta_of(gm, gs, r0, v_old):
            return opt.niti_delta(gm, k, offset_key(key, r0 * row_len)), None
    else:
        mult_cache = {}

        def delta_of(gm, gs, r0, v_old):
            if "m" not in mult_cache:
                mult_cache["m"] = opt.aligned_multiplier(gs, w_scale)
            return opt.aligned_delta(gm, mult_cache["m"], offset_key(key, r0 * row_len), v_old)

    def new_values(t: int):
        r0, r1, idx = span(t)
        gm, gs = cached.pop(t) if t in cached else gradient(t)
        v_old = v[r0:r1].copy() if v is not None else None
        delta, vn = delta_of(gm, gs, r0, v_old)
        return idx, r0, r1, w[idx].astype(np.int64) - delta, vn

    if rows is not None or not cfg.weight_rescale:
        # row updates (and updates without rescaling) saturate: every tile is final at once
        for t in range(n_tiles):
            idx, r0, r1, new, vn = new_values(t)
            np.clip(new, -limit, limit, out=new)
            w[idx] = new.astype(w.dtype)
            if v is not None:
                v[r0:r1] = vn
        return
    committed = [False] * n_tiles
    amax_new = 0
    for t in range(n_tiles):
        idx, r0, r1, new, vn = new_values(t)
        tmax = max_abs(new)
        amax_new = max(amax_new, tmax)
        if tmax <= limit:
            w[idx] = new.astype(w.dtype)
            if v is not None:
                v[r0:r1] = vn
            committed[t] = True
    choice = choose_grid_rescale(amax_new, w_scale, p.bits, opt.mode)
    if choice is None:
        return
    new_scale, mult = choice
    for t in range(n_tiles):
        if committed[t]:
            r0, r1, idx = span(t)
            new = w[idx].astype(np.int64)
            vn = v[r0:r1].copy() if v is not None else None
        else:
            idx, r0, r1, new, vn = new_values(t)
        w[idx] = apply_multiplier(new, mult, Rounding.NEAREST, limit=limit).astype(w.dtype)
        if v is not None:
            v[r0:r1] = apply_multiplier(vn, mult, Rounding.NEAREST)
    io.set_scale(pbuf, new_scale)


def _fused_row_scaled(step, io, opt, w, w_scale, row_exp, rows, n_tiles, span, gradient, key, row_len) -> None:
    """The tiled update of a weight with per-row exponents: every tile is renormalised row by row
    as it is applied (stage 1), then the tensor scale and the rows beyond the limit (stage 2);
    sparse rows and updates without rescaling saturate, as :meth:`IntegerSGD.update`."""
    cfg = opt.config
    old_exp = row_exp.copy()
    targets = np.zeros(len(old_exp) if rows is None else len(rows), dtype=np.int64)
    mult = None
    for t in range(n_tiles):
        r0, r1, idx = span(t)
        gm, gs = gradient(t)
        if mult is None:
            mult = opt.aligned_multiplier(gs, w_scale)
        e = old_exp[idx]
        delta = apply_multiplier_rows(gm, mult, e, cfg.rounding, offset_key(key, r0 * row_len))
        new = w[idx].astype(np.int64) - delta
        if rows is not None or not cfg.weight_rescale:
            w[idx] = np.clip(new, -127, 127).astype(w.dtype)
            continue
        w[idx], targets[r0:r1] = renormalise_rows_stage1(new, e)
    if rows is not None or not cfg.weight_rescale:
        return
    m, scale, e = renormalise_rows_stage2(w, w_scale, targets, int(step.attrs["row_limit"]))
    w[...] = m
    row_exp[...] = e
    io.set_scale(step.mutates[0], scale)


def _fused_feedback(step, io, opt, w, w_scale, rows, n_tiles, span, gradient, key, row_len, limit) -> None:
    """The tiled update of an int8 weight with a packed ``L``-bit error-feedback plane, equal to
    :meth:`IntegerSGD.update` (``_update_with_feedback``) bit for bit, as ``tt_sgd_update_tiled_feedback_s8``.

    A tile's master values ``W = 2**L * w + r - fine`` are split (``w = (W + 2**(L-1)) >> L``,
    ``r = W - 2**L * w``). Sparse rows and updates without rescaling saturate ``W`` at
    ``+-((limit << L) + 2**(L-1) - 1)``: every tile is final at once. Otherwise a tile whose new ``w``
    all fit is written unsaturated (its ``W`` can be rebuilt exactly); when no tile outgrew the range,
    the one value below the saturation bound that fits (``w = -limit``, ``r = -2**(L-1)``) is then
    saturated as the simulator does (``r = 1 - 2**(L-1)``); when one did, a second pass rounds every
    ``W`` (rebuilt or recomputed) to the coarser grid scale. With ``n < L`` a first pass bounds the
    fine step over the whole gradient before anything changes."""
    from ..numerics.bitplane import pack_plane, unpack_plane

    a = step.attrs
    bits = int(a["feedback_bits"])
    plane = io.array(a["remainder"])
    rem = unpack_plane(plane, bits, w.size).reshape(w.shape)  # the C kernel reads and writes fields in place
    half = 1 << (bits - 1)
    wide = (limit << bits) + half - 1
    _, gs0 = gradient(0) if n_tiles else (None, None)
    mult = opt.aligned_multiplier(gs0, w_scale) if n_tiles else None
    if n_tiles and mult[1] < bits:  # a left shift: bound max|g| of the whole gradient first
        opt.check_feedback_step(max(max_abs(gradient(t)[0]) for t in range(n_tiles)), mult)

    def master(t: int):
        r0, _, idx = span(t)
        gm, _ = gradient(t)
        fine, _ = opt.feedback_fine(gm, mult, offset_key(key, r0 * row_len))
        return idx, (w[idx].astype(np.int64) << bits) + rem[idx] - fine

    def store(idx, m) -> None:
        hi, r = opt.split_master(m, bits)
        w[idx] = hi.astype(w.dtype)
        rem[idx] = r

    if rows is not None or not opt.config.weight_rescale:
        for t in range(n_tiles):
            idx, m = master(t)
            store(idx, np.clip(m, -wide, wide))
        plane[...] = pack_plane(rem, bits)
        return
    committed = [False] * n_tiles
    amax_new = 0
    for t in range(n_tiles):
        idx, m = master(t)
        tmax = max_abs((m + half) >> bits)
        amax_new = max(amax_new, tmax)
        if tmax <= limit:
            store(idx, m)
            committed[t] = True
    choice = choose_grid_rescale(amax_new, w_scale, 8, opt.mode)
    if choice is None:
        rem[(w == -limit) & (rem == -half)] = 1 - half  # W = -wide - 1 saturates to -wide
        plane[...] = pack_plane(rem, bits)
        return
    new_scale, mult_rescale = choice
    for t in range(n_tiles):
        if committed[t]:
            idx = span(t)[2]
            m = (w[idx].astype(np.int64) << bits) + rem[idx]
        else:
            idx, m = master(t)
        store(idx, apply_multiplier(m, mult_rescale, Rounding.NEAREST, limit=wide))
    plane[...] = pack_plane(rem, bits)
    io.set_scale(step.mutates[0], new_scale)
