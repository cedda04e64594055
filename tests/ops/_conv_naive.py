"""Direct-loop integer references (Python ints through int64 numpy sums; no im2col, no float).

Written from the definitions in the module docstrings of ``tintin.ops.conv`` / ``tintin.ops.pool``,
one output element at a time, to check the fast paths bit for bit."""

from __future__ import annotations

import numpy as np


def pad(x, ph, pw):
    b, c, h, w = x.shape
    out = np.zeros((b, c, h + 2 * ph, w + 2 * pw), dtype=np.int64)
    out[:, :, ph:ph + h, pw:pw + w] = x
    return out


def conv_acc(x, w, stride, padding, groups):
    """acc[b,o,p,q] = sum_{c,i,j} W[o,c,i,j] * xpad[b, g*cg + c, p*sh + i, q*sw + j]."""
    (sh, sw), (ph, pw) = stride, padding
    b, cin, h, wd = x.shape
    cout, cg, kh, kw = w.shape
    xp = pad(x, ph, pw)
    ho, wo = (h + 2 * ph - kh) // sh + 1, (wd + 2 * pw - kw) // sw + 1
    cog = cout // groups
    w64 = w.astype(np.int64)
    out = np.zeros((b, cout, ho, wo), dtype=np.int64)
    for n in range(b):
        for o in range(cout):
            g = o // cog
            for p in range(ho):
                for q in range(wo):
                    win = xp[n, g * cg:(g + 1) * cg, p * sh:p * sh + kh, q * sw:q * sw + kw]
                    out[n, o, p, q] = int((win * w64[o]).sum())
    return out


def conv_input_error_acc(err, w, input_hw, stride, padding, groups):
    """e[b,c,y,x] = sum over (o, i, j, p, q) with p*sh + i - ph = y, q*sw + j - pw = x."""
    (sh, sw), (ph, pw) = stride, padding
    h, wd = input_hw
    b, cout, ho, wo = err.shape
    _, cg, kh, kw = w.shape
    cog = cout // groups
    epad = np.zeros((b, cg * groups, h + 2 * ph, wd + 2 * pw), dtype=np.int64)
    for n in range(b):
        for o in range(cout):
            g = o // cog
            for p in range(ho):
                for q in range(wo):
                    e = int(err[n, o, p, q])
                    epad[n, g * cg:(g + 1) * cg, p * sh:p * sh + kh, q * sw:q * sw + kw] += e * w[o].astype(np.int64)
    return epad[:, :, ph:ph + h, pw:pw + wd]


def conv_weight_grad(err, x, kernel, stride, padding, groups):
    """g[o,c,i,j] = sum_{b,p,q} err[b,o,p,q] * xpad[b, g*cg + c, p*sh + i, q*sw + j]."""
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    b, cout, ho, wo = err.shape
    cin = x.shape[1]
    cg = cin // groups
    cog = cout // groups
    xp = pad(x, ph, pw)
    g = np.zeros((cout, cg, kh, kw), dtype=np.int64)
    for o in range(cout):
        grp = o // cog
        for c in range(cg):
            for i in range(kh):
                for j in range(kw):
                    xs = xp[:, grp * cg + c, i:i + (ho - 1) * sh + 1:sh, j:j + (wo - 1) * sw + 1:sw]
                    g[o, c, i, j] = int((err[:, o].astype(np.int64) * xs).sum())
    return g


def maxpool(x, kernel, stride):
    """(y, argmax) with the first maximum in row-major window order."""
    (kh, kw), (sh, sw) = kernel, stride
    b, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    y = np.zeros((b, c, ho, wo), dtype=np.int64)
    arg = np.zeros((b, c, ho, wo), dtype=np.int64)
    for n in range(b):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    win = [int(v) for v in x[n, ch, p * sh:p * sh + kh, q * sw:q * sw + kw].reshape(-1)]
                    best = max(win)
                    y[n, ch, p, q] = best
                    arg[n, ch, p, q] = win.index(best)
    return y, arg


def maxpool_backward_acc(err, arg, input_hw, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    b, c, ho, wo = err.shape
    acc = np.zeros((b, c) + tuple(input_hw), dtype=np.int64)
    for n in range(b):
        for ch in range(c):
            for p in range(ho):
                for q in range(wo):
                    a = int(arg[n, ch, p, q])
                    acc[n, ch, p * sh + a // kw, q * sw + a % kw] += int(err[n, ch, p, q])
    return acc


def window_sums(x, kernel, stride):
    (kh, kw), (sh, sw) = kernel, stride
    b, c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.zeros((b, c, ho, wo), dtype=np.int64)
    for p in range(ho):
        for q in range(wo):
            out[:, :, p, q] = x[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw].astype(np.int64).sum(axis=(2, 3))
    return out


def window_spread(err, input_hw, kernel, stride):
    """Each input position: the sum of the errors of the windows that contain it."""
    (kh, kw), (sh, sw) = kernel, stride
    b, c, ho, wo = err.shape
    acc = np.zeros((b, c) + tuple(input_hw), dtype=np.int64)
    for p in range(ho):
        for q in range(wo):
            acc[:, :, p * sh:p * sh + kh, q * sw:q * sw + kw] += err[:, :, p, q, None, None].astype(np.int64)
    return acc
