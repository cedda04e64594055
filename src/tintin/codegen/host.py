"""The C runtime compiled for the host and bound with ctypes.

:func:`load` compiles ``runtime/*.c`` with the system C compiler (``$CC`` or ``gcc``) into a shared
library in a cache directory (``$TINTIN_CACHE/codegen-host`` or ``~/.cache/tintin/codegen-host``,
never the source tree), keyed by a hash of the sources, the flags and the compiler version, so a
changed source rebuilds and an unchanged one loads at once. The functions below wrap the C kernels
with the signatures of their Python counterparts (:mod:`tintin.numerics`, :mod:`tintin.ops`,
:class:`tintin.optim.IntegerSGD`): they take and return numpy arrays and
:class:`~tintin.numerics.QTensor` values and must return bit-identical results. :func:`train_step`
runs a whole training step of a fully connected :class:`~tintin.nn.Sequential` model on the C
kernels (a fast host backend, and the end-to-end check of the runtime).

Errors: bad Python input raises ``ValueError`` / ``TypeError`` with a one-line message; a C status
other than ``TT_OK`` raises :class:`HostRuntimeError` (``.status`` holds the code).
"""

from __future__ import annotations

from tintin.errors import TintinError

import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..numerics import QTensor, Rounding, Scale, ScaleMode
from ..numerics.rescale import FineStep
from ..ops.loss import LossValue
from . import RUNTIME_DIR

#: flags of the host build: the portability flags of every target plus a shared library
CFLAGS = ("-std=c99", "-O3", "-Wall", "-Wextra", "-Werror", "-pedantic", "-fPIC", "-shared")
LIBRARY_NAME = "libtintin_runtime.so"

STATUS_NAMES = {0: "TT_OK", 1: "TT_ERR_SHAPE", 2: "TT_ERR_OVERFLOW", 3: "TT_ERR_ARG", 4: "TT_ERR_RANGE", 5: "TT_ERR_IO",
                6: "TT_ERR_NO_STATE"}
TT_OK, TT_ERR_SHAPE, TT_ERR_OVERFLOW, TT_ERR_ARG, TT_ERR_RANGE = range(5)

_ROUNDING = {Rounding.NEAREST: 0, Rounding.STOCHASTIC: 1, Rounding.PSEUDO_STOCHASTIC: 2}
_MODE = {ScaleMode.POW2: 0, ScaleMode.COMPOUND: 1}
_EXPONENT_LIMIT = 16000


class HostBuildError(TintinError, RuntimeError):
    """The host C compiler is missing or the runtime does not compile."""


class HostRuntimeError(TintinError, RuntimeError):
    """A runtime kernel returned a status other than TT_OK."""

    def __init__(self, function: str, status: int):
        self.function = function
        self.status = status
        super().__init__(f"{function} returned {STATUS_NAMES.get(status, status)}")


# -- C types -----------------------------------------------------------------------------------------

class CScale(ctypes.Structure):
    _fields_ = [("S", ctypes.c_int16), ("U", ctypes.c_int16), ("D", ctypes.c_int16)]


class CMultiplier(ctypes.Structure):
    _fields_ = [("m", ctypes.c_int32), ("n", ctypes.c_int32)]


class CRescale(ctypes.Structure):
    _fields_ = [("m", ctypes.c_uint8), ("p", ctypes.c_uint8), ("a", ctypes.c_uint8), ("b", ctypes.c_uint8),
                ("shift", ctypes.c_uint8)]


class CStream(ctypes.Structure):
    _fields_ = [("seed", ctypes.c_uint32), ("step", ctypes.c_uint32)]


class CSgdConfig(ctypes.Structure):
    _fields_ = [("batch_size", ctypes.c_uint32), ("lr", CScale), ("rule", ctypes.c_uint8),
                ("rounding", ctypes.c_uint8), ("mode", ctypes.c_uint8), ("mu", ctypes.c_uint8),
                ("momentum_shift", ctypes.c_uint8), ("weight_rescale", ctypes.c_uint8)]


class CConvShape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "batch", "in_channels", "in_h", "in_w", "out_channels", "kernel_h", "kernel_w", "stride_h", "stride_w",
        "pad_h", "pad_w", "groups")]


class CDenseShape(ctypes.Structure):
    """tt_dense_shape_t: a fully connected layer's (batch, in_features, out_features)."""
    _fields_ = [(name, ctypes.c_size_t) for name in ("batch", "in_features", "out_features")]


class CChannelShape(ctypes.Structure):
    """tt_channel_shape_t: a per-channel tensor's (batch, channels, positions)."""
    _fields_ = [(name, ctypes.c_size_t) for name in ("batch", "channels", "positions")]


class CRowSelect(ctypes.Structure):
    """tt_row_select_t: rows[first + j] for j < count (first + j when rows is NULL)."""
    _fields_ = [("rows", ctypes.c_void_p), ("first", ctypes.c_size_t), ("count", ctypes.c_size_t)]


class CPoolShape(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "batch", "channels", "in_h", "in_w", "kernel_h", "kernel_w", "stride_h", "stride_w")]


#: tt_grad_rows_fn: (ctx, first, count, grad, grad_scale) -> status
GRAD_ROWS_FN = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t,
                                ctypes.POINTER(ctypes.c_int32), ctypes.POINTER(CScale))


class CTiledUpdate(ctypes.Structure):
    _fields_ = [("w8", ctypes.c_void_p), ("w16", ctypes.c_void_p), ("w_scale", ctypes.POINTER(CScale)),
                ("row_count", ctypes.c_size_t), ("cols", ctypes.c_size_t), ("rows", ctypes.c_void_p),
                ("nrows", ctypes.c_size_t), ("momentum", ctypes.c_void_p), ("tile", ctypes.c_void_p),
                ("tile_rows", ctypes.c_size_t), ("tile_flags", ctypes.c_void_p), ("grad", GRAD_ROWS_FN),
                ("grad_ctx", ctypes.c_void_p), ("rank1_err", ctypes.c_void_p), ("rank1_x", ctypes.c_void_p),
                ("rank_batch", ctypes.c_size_t)]


_P = ctypes.c_void_p
_SZ = ctypes.c_size_t
_I = ctypes.c_int
_U8, _U16, _U32 = ctypes.c_uint8, ctypes.c_uint16, ctypes.c_uint32
_I32, _I64, _U64 = ctypes.c_int32, ctypes.c_int64, ctypes.c_uint64
_PS = ctypes.POINTER(CScale)
_PD = ctypes.POINTER(CDenseShape)
_PC = ctypes.POINTER(CChannelShape)
_PR = ctypes.POINTER(CRowSelect)

#: name -> (restype, argtypes)
_PROTOTYPES = {
    "tt_scale_mul": (CScale, [CScale, CScale]),
    "tt_scale_div": (CScale, [CScale, CScale]),
    "tt_mix32": (_U32, [_U32]),
    "tt_draw_bits": (_U32, [_U32, _U32]),
    "tt_stream_init": (None, [ctypes.POINTER(CStream), _U32, _U32]),
    "tt_stream_key": (_U32, [ctypes.POINTER(CStream), _U32]),
    "tt_stream_advance": (None, [ctypes.POINTER(CStream)]),
    "tt_shift_round_nearest_s32": (_I32, [_I32, _U8]),
    "tt_shift_round_nearest_s64": (_I64, [_I64, _U8]),
    "tt_shift_round_stochastic_s32": (_I32, [_I32, _U8, _U32, _U32]),
    "tt_shift_round_stochastic_s64": (_I64, [_I64, _U8, _U32, _U32]),
    "tt_shift_round_pseudo_s32": (_I32, [_I32, _U8]),
    "tt_shift_round_pseudo_s64": (_I64, [_I64, _U8]),
    "tt_shift_round_buffer_s32": (_I, [_P, _P, _SZ, _U8, _I, _U32]),
    "tt_shift_round_buffer_s64": (_I, [_P, _P, _SZ, _U8, _I, _U32]),
    "tt_ratio_multiplier": (_I, [CScale, ctypes.POINTER(CMultiplier)]),
    "tt_divide_multiplier": (_I, [CMultiplier, _U32, ctypes.POINTER(CMultiplier)]),
    "tt_apply_multiplier_scalar": (_I64, [_I64, CMultiplier, _I, _U32, _U32, _I64]),
    "tt_apply_multiplier_s32": (_I, [_P, _P, _SZ, CMultiplier, _I, _U32, _I32]),
    "tt_apply_multiplier_s64": (_I, [_P, _P, _SZ, CMultiplier, _I, _U32, _I64]),
    "tt_max_abs_s8": (_U32, [_P, _SZ]),
    "tt_max_abs_s16": (_U32, [_P, _SZ]),
    "tt_max_abs_s32": (_U32, [_P, _SZ]),
    "tt_bit_length_u32": (_U8, [_U32]),
    "tt_bit_length_u64": (_U8, [_U64]),
    "tt_choose_rescale": (_U8, [_U32, _U8, _I, ctypes.POINTER(CRescale)]),
    "tt_rescaled_scale": (CScale, [CScale, ctypes.POINTER(CRescale)]),
    "tt_rescale_s32_to_s8": (_I, [_P, _SZ, _PS, _I, _I, _U32, _P]),
    "tt_rescale_s16_to_s8": (_I, [_P, _SZ, _PS, _I, _P]),
    "tt_choose_grid_rescale": (_I, [_U64, CScale, _U8, _I, ctypes.POINTER(_U8), _PS, ctypes.POINTER(CMultiplier)]),
    "tt_exp2_frac_q15": (_U32, [_U16]),
    "tt_log2_q16": (_I32, [_U32]),
    "tt_linear_forward_s8": (_I, [_P, CScale, _P, CScale, _P, CScale, _PD, _I, _P, _P, _PS]),
    "tt_align_bias_s32": (_I, [_P, CScale, CScale, _SZ, _P]),
    "tt_linear_backward_input_s8": (_I, [_P, CScale, _P, CScale, _PD, _I, _P, _P, _PS]),
    "tt_linear_backward_weight_s32": (_I, [_P, CScale, _P, CScale, _PD, _P, _PS]),
    "tt_linear_backward_weight_rows_s32": (_I, [_P, CScale, _P, CScale, _PD, _PR, _P, _PS]),
    "tt_linear_forward_x4_s8": (_I, [_P, CScale, _P, CScale, _P, CScale, _PD, _I, _P, _P, _PS]),
    "tt_linear_backward_input_x4_s8": (_I, [_P, CScale, _P, CScale, _PD, _I, _P, _P, _PS]),
    "tt_bias_backward_rows_s32": (_I, [_P, CScale, _PC, _PR, _P, _PS]),
    "tt_relu_mask_pack_u1": (_I, [_P, _SZ, _P]),
    "tt_relu_backward_mask_s8": (_I, [_P, _P, _SZ, _P]),
    "tt_fnv1a_u32": (_U32, [_U32, _P, _SZ]),
    "tt_check_domain_s8": (_I, [_P, _SZ]),
    "tt_linear_backward_bias_s32": (_I, [_P, CScale, _SZ, _SZ, _P, _PS]),
    "tt_relu_forward_s8": (_I, [_P, _SZ, _P]),
    "tt_relu_backward_s8": (_I, [_P, _P, _SZ, _P]),
    "tt_softmax_q15": (_I, [_P, CScale, _SZ, _SZ, _P]),
    "tt_softmax_xent_error_s8": (_I, [_P, CScale, _P, _SZ, _SZ, _I, _P, _P, _PS, ctypes.POINTER(_I64)]),
    "tt_softmax_xent_error_round_s8": (_I, [_P, CScale, _P, _SZ, _SZ, _I, _I, _U32, _P, _P, _PS,
                                           ctypes.POINTER(_I64)]),
    "tt_mse_error_s8": (_I, [_P, CScale, _P, CScale, _SZ, _I, _P, _PS, ctypes.POINTER(_I64), _PS]),
    "tt_argmax_s8": (_SZ, [_P, _SZ]),
    "tt_argmax_rows_s8": (_I, [_P, _SZ, _SZ, _P]),
    "tt_weight_view_s16_to_s8": (_I, [_P, CScale, _SZ, _I, _P, _PS]),
    "tt_conv2d_output_hw": (_I, [ctypes.POINTER(CConvShape), ctypes.POINTER(_SZ), ctypes.POINTER(_SZ)]),
    "tt_conv2d_forward_s8": (_I, [_P, CScale, _P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _I, _P, _P, _PS]),
    "tt_conv2d_backward_input_s8": (_I, [_P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _I, _P, _P, _PS]),
    "tt_conv2d_backward_weight_s32": (_I, [_P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _P, _PS]),
    "tt_conv2d_backward_bias_s32": (_I, [_P, CScale, ctypes.POINTER(CConvShape), _P, _PS]),
    "tt_conv2d_backward_weight_rows_s32": (_I, [_P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _PR, _P, _PS]),
    "tt_conv2d_forward_im2col_s8": (_I, [_P, CScale, _P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _I, _P, _P, _P, _PS]),
    "tt_conv2d_backward_input_scatter_s8": (_I, [_P, CScale, _P, CScale, ctypes.POINTER(CConvShape), _I, _P, _P, _PS]),
    "tt_pool2d_output_hw": (_I, [ctypes.POINTER(CPoolShape), ctypes.POINTER(_SZ), ctypes.POINTER(_SZ)]),
    "tt_maxpool2d_forward_s8": (_I, [_P, ctypes.POINTER(CPoolShape), _P, _P]),
    "tt_maxpool2d_backward_s8": (_I, [_P, CScale, _P, ctypes.POINTER(CPoolShape), _I, _P, _P, _PS]),
    "tt_maxpool2d_forward_idx8_s8": (_I, [_P, ctypes.POINTER(CPoolShape), _P, _P]),
    "tt_maxpool2d_backward_idx8_s8": (_I, [_P, CScale, _P, ctypes.POINTER(CPoolShape), _I, _P, _P, _PS]),
    "tt_avgpool_multiplier": (_I, [_SZ, ctypes.POINTER(CMultiplier)]),
    "tt_avgpool2d_forward_s8": (_I, [_P, CScale, ctypes.POINTER(CPoolShape), _I, _P, _P, _PS]),
    "tt_avgpool2d_backward_s8": (_I, [_P, CScale, ctypes.POINTER(CPoolShape), _I, _P, _P, _PS]),
    "tt_global_avgpool_forward_s8": (_I, [_P, CScale, _SZ, _SZ, _SZ, _I, _P, _PS]),
    "tt_global_avgpool_backward_s8": (_I, [_P, CScale, _SZ, _SZ, _SZ, _I, _P, _PS]),
    "tt_residual_working_scale": (_I, [CScale, CScale, _PS]),
    "tt_residual_add_s8": (_I, [_P, CScale, _P, CScale, _SZ, _I, _P, _P, _PS]),
    "tt_channel_scale_forward_s8": (_I, [_P, CScale, _P, CScale, _P, CScale, _PC, _I, _P, _P, _PS]),
    "tt_channel_scale_backward_input_s8": (_I, [_P, CScale, _P, CScale, _PC, _I, _P, _P, _PS]),
    "tt_channel_scale_backward_weight_s32": (_I, [_P, CScale, _P, CScale, _PC, _P, _PS]),
    "tt_channel_scale_backward_bias_s32": (_I, [_P, CScale, _PC, _P, _PS]),
    "tt_channel_scale_backward_weight_rows_s32": (_I, [_P, CScale, _P, CScale, _PC, _PR, _P, _PS]),
    "tt_sgd_update_weight_s8": (_I, [_P, _PS, _SZ, _P, CScale, _P, ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_weight_s16": (_I, [_P, _PS, _SZ, _P, CScale, _P, ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_bias_s32": (_I, [_P, CScale, _SZ, _P, CScale, _P, ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_weight_rows_s8": (_I, [_P, CScale, _SZ, _SZ, _P, _SZ, _P, CScale, _P,
                                          ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_weight_rows_s16": (_I, [_P, CScale, _SZ, _SZ, _P, _SZ, _P, CScale, _P,
                                           ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_bias_rows_s32": (_I, [_P, CScale, _SZ, _P, _SZ, _P, CScale, _P,
                                         ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_bias_fast_s32": (_I, [_P, CScale, _SZ, _P, CScale, _P, ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_weight_skip0_s8": (_I, [_P, _PS, _SZ, _P, CScale, ctypes.POINTER(CSgdConfig), _U32]),
    "tt_sgd_update_tiled": (_I, [ctypes.POINTER(CTiledUpdate), ctypes.POINTER(CSgdConfig), _U32]),
}


# -- building and loading ------------------------------------------------------------------------

def runtime_sources() -> list[Path]:
    """The runtime's C sources (every ``runtime/*.c``)."""
    return sorted(RUNTIME_DIR.glob("*.c"))


def cache_dir() -> Path:
    """``$TINTIN_CACHE/codegen-host``, else ``~/.cache/tintin/codegen-host``."""
    root = os.environ.get("TINTIN_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "tintin"
    return base / "codegen-host"


def _compiler() -> str:
    cc = os.environ.get("CC") or "gcc"
    path = shutil.which(cc)
    if path is None:
        raise HostBuildError(f"no host C compiler: {cc!r} is not on PATH (install gcc or set CC)")
    return path


def _fingerprint(compiler: str, flags: tuple[str, ...]) -> str:
    h = hashlib.sha256()
    for f in sorted(RUNTIME_DIR.glob("*.[ch]")):
        h.update(f.name.encode())
        h.update(f.read_bytes())
    h.update(" ".join(flags).encode())
    try:
        version = subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as exc:
        raise HostBuildError(f"cannot run the host C compiler {compiler}: {exc}") from None
    h.update(compiler.encode())
    h.update(version.encode())
    return h.hexdigest()[:20]


def build_library(extra_flags: tuple[str, ...] = (), force: bool = False) -> Path:
    """Compile the runtime into the cache (if not already there) and return the library path."""
    compiler = _compiler()
    flags = CFLAGS + tuple(extra_flags)
    out_dir = cache_dir() / _fingerprint(compiler, flags)
    lib = out_dir / LIBRARY_NAME
    if lib.exists() and not force:
        return lib
    out_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".build-", suffix=".so", dir=out_dir)
    os.close(fd)
    cmd = [compiler, *flags, "-o", tmp, *(str(s) for s in runtime_sources())]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            first = (proc.stderr.strip().splitlines() or ["(no output)"])[0]
            raise HostBuildError(f"the C runtime does not compile on the host: {first}")
        os.replace(tmp, lib)  # atomic: concurrent builders never see a partial library
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return lib


_lock = threading.Lock()
_lib: ctypes.CDLL | None = None


def load() -> ctypes.CDLL:
    """The host runtime library (built on first use), with every prototype declared."""
    global _lib
    with _lock:
        if _lib is None:
            lib = ctypes.CDLL(str(build_library()))
            for name, (restype, argtypes) in _PROTOTYPES.items():
                fn = getattr(lib, name)
                fn.restype = restype
                fn.argtypes = argtypes
            _lib = lib
        return _lib


def declare(prototypes: dict, flag: str) -> ctypes.CDLL:
    """The host library with ``prototypes`` (name -> argtypes, int status) declared once (``flag``:
    the attribute that marks them declared); the kernels bound by other modules use it."""
    lib = load()  # the library the host wrappers call (the runtime, or the native kernels in their tests)
    if not getattr(lib, flag, False):
        for name, args in prototypes.items():
            fn = getattr(lib, name)
            fn.restype, fn.argtypes = ctypes.c_int, args
        setattr(lib, flag, True)
    return lib


def _call(name: str, *args) -> int:
    status = getattr(load(), name)(*args)
    if status != TT_OK:
        raise HostRuntimeError(name, status)
    return status


# -- conversions ---------------------------------------------------------------------------------

def c_scale(scale: Scale) -> CScale:
    s = Scale.from_tuple(scale.as_tuple()) if not isinstance(scale, Scale) else scale
    if max(abs(s.S), abs(s.U), abs(s.D)) > _EXPONENT_LIMIT:
        raise ValueError(f"scale {s} is outside the runtime's exponent range (+-{_EXPONENT_LIMIT})")
    return CScale(s.S, s.U, s.D)


def py_scale(c: CScale) -> Scale:
    return Scale(int(c.S), int(c.U), int(c.D))


def _mult(mult: tuple[int, int]) -> CMultiplier:
    m, n = (int(v) for v in mult)
    if not (-2**31 <= n < 2**31 and 0 <= m < 2**31):
        raise ValueError(f"multiplier {mult} is outside the runtime's range")
    return CMultiplier(m, n)


def _rounding(r) -> int:
    return _ROUNDING[Rounding(r)]


def _mode(mode) -> int:
    return _MODE[ScaleMode(mode)]


def _key(key: int | None, rounding) -> int:
    if key is None:
        if Rounding(rounding) is Rounding.STOCHASTIC:
            raise ValueError("stochastic rounding needs a stream key (RoundingStream.key)")
        return 0
    return int(key) & 0xFFFFFFFF


def _array(x, dtype, name: str) -> np.ndarray:
    """A C-contiguous copy-or-view of ``x`` as ``dtype``; values that do not fit raise ValueError."""
    a = np.asarray(x)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{name} must be an integer array, got {a.dtype}")
    dt = np.dtype(dtype)
    if a.dtype != dt and a.size:
        info = np.iinfo(dt)
        lo, hi = int(a.min()), int(a.max())
        if lo < info.min or hi > info.max:
            raise ValueError(f"{name} has values in [{lo}, {hi}], outside {dt}")
    return np.ascontiguousarray(a, dtype=dt)


def _ptr(a: np.ndarray | None):
    return None if a is None else a.ctypes.data


def _shape2(a: np.ndarray, name: str) -> tuple[int, int]:
    if a.ndim != 2:
        raise ValueError(f"{name} must be 2-D (batch, features), got shape {a.shape}")
    return a.shape


# -- numerics ----------------------------------------------------------------------------------------

def mix32(x: int) -> int:
    return int(load().tt_mix32(int(x) & 0xFFFFFFFF))


def draw_bits(key: int, size: int) -> np.ndarray:
    fn = load().tt_draw_bits
    return np.array([fn(int(key) & 0xFFFFFFFF, i) for i in range(size)], dtype=np.uint32)


def stream_key(seed: int, step: int, site: int) -> int:
    s = CStream()
    lib = load()
    lib.tt_stream_init(ctypes.byref(s), int(seed) & 0xFFFFFFFF, int(step) & 0xFFFFFFFF)
    return int(lib.tt_stream_key(ctypes.byref(s), int(site) & 0xFFFFFFFF))


def shift_round(x: np.ndarray, n: int, mode=Rounding.NEAREST, key: int | None = None) -> np.ndarray:
    """:func:`tintin.numerics.shift_round` for int32 (32-bit C path) or int64 arrays."""
    a = np.asarray(x)
    if not 0 <= int(n) <= 62:
        raise ValueError(f"shift must be in [0, 62], got {n}")
    if a.dtype == np.int32:
        fn, dt = "tt_shift_round_buffer_s32", np.int32
    elif a.dtype == np.int64:
        fn, dt = "tt_shift_round_buffer_s64", np.int64
    else:
        raise TypeError(f"shift_round takes int32 or int64 arrays, got {a.dtype}")
    src = np.ascontiguousarray(a, dtype=dt)
    out = np.empty_like(src)
    _call(fn, _ptr(src), _ptr(out), src.size, int(n), _rounding(mode), _key(key, mode))
    return out


def ratio_multiplier(ratio: Scale) -> tuple[int, int]:
    out = CMultiplier()
    status = load().tt_ratio_multiplier(c_scale(ratio), ctypes.byref(out))
    if status == TT_ERR_RANGE:
        raise OverflowError(f"scale ratio {ratio} has too many u/d steps")
    if status != TT_OK:
        raise HostRuntimeError("tt_ratio_multiplier", status)
    return int(out.m), int(out.n)


def divide_multiplier(multiplier: tuple[int, int], divisor: int) -> tuple[int, int]:
    if int(divisor) <= 0:
        raise ValueError("divisor must be positive")
    out = CMultiplier()
    _call("tt_divide_multiplier", _mult(multiplier), int(divisor), ctypes.byref(out))
    return int(out.m), int(out.n)


def apply_multiplier(x: np.ndarray, multiplier: tuple[int, int], rounding=Rounding.NEAREST,
                     key: int | None = None, limit: int | None = None) -> np.ndarray:
    """:func:`tintin.numerics.apply_multiplier` (int64 result; requires ``|x| < 2**47``)."""
    src = _array(x, np.int64, "x")
    out = np.empty_like(src)
    _call("tt_apply_multiplier_s64", _ptr(src), _ptr(out), src.size, _mult(multiplier), _rounding(rounding),
          _key(key, rounding), -1 if limit is None else int(limit))
    return out


def max_abs(x: np.ndarray) -> int:
    a = np.asarray(x)
    names = {np.dtype(np.int8): "tt_max_abs_s8", np.dtype(np.int16): "tt_max_abs_s16",
             np.dtype(np.int32): "tt_max_abs_s32"}
    if a.dtype not in names:
        raise TypeError(f"max_abs takes int8, int16 or int32 arrays, got {a.dtype}")
    a = np.ascontiguousarray(a)
    return int(getattr(load(), names[a.dtype])(_ptr(a), a.size))


def choose_rescale(amax: int, bits: int, mode) -> tuple[FineStep, int] | None:
    if not 0 <= int(amax) < 2**32 or not 2 <= int(bits) <= 31:
        raise ValueError(f"choose_rescale needs 0 <= amax < 2**32 and 2 <= bits <= 31, got {amax}, {bits}")
    c = CRescale()
    if not load().tt_choose_rescale(int(amax), int(bits), _mode(mode), ctypes.byref(c)):
        return None
    return FineStep(int(c.m), int(c.p), int(c.a), int(c.b)), int(c.shift)


def rescale(acc: np.ndarray, scale: Scale, mode=ScaleMode.POW2, rounding=Rounding.NEAREST,
            key: int | None = None) -> tuple[np.ndarray, Scale]:
    """:func:`tintin.numerics.rescale` to int8 of an int32 (any rounding) or int16 (nearest) tensor."""
    a = np.asarray(acc)
    cs = c_scale(scale)
    out = np.empty(a.shape, dtype=np.int8)
    if a.dtype == np.int16:
        if Rounding(rounding) is not Rounding.NEAREST:
            raise ValueError("the int16 rescale rounds to nearest only")
        src = np.ascontiguousarray(a)
        _call("tt_rescale_s16_to_s8", _ptr(src), src.size, ctypes.byref(cs), _mode(mode), _ptr(out))
    else:
        src = _array(a, np.int32, "acc")
        _call("tt_rescale_s32_to_s8", _ptr(src), src.size, ctypes.byref(cs), _mode(mode), _rounding(rounding),
              _key(key, rounding), _ptr(out))
    return out, py_scale(cs)


def choose_grid_rescale(amax: int, scale: Scale, bits: int, mode) -> tuple[Scale, tuple[int, int]] | None:
    changed, new, mult = _U8(), CScale(), CMultiplier()
    status = load().tt_choose_grid_rescale(int(amax), c_scale(scale), int(bits), _mode(mode), ctypes.byref(changed),
                                           ctypes.byref(new), ctypes.byref(mult))
    if status == TT_ERR_RANGE:
        raise OverflowError(f"scale {scale} is too far from the grid")
    if status != TT_OK:
        raise HostRuntimeError("tt_choose_grid_rescale", status)
    if not changed.value:
        return None
    return py_scale(new), (int(mult.m), int(mult.n))


def exp2_frac_q15(frac: np.ndarray) -> np.ndarray:
    fn = load().tt_exp2_frac_q15
    return np.array([fn(int(f)) for f in np.asarray(frac).ravel()], dtype=np.int64).reshape(np.shape(frac))


def log2_q16(x: int) -> int:
    if int(x) <= 0 or int(x) >= 2**32:
        raise ValueError("log2_q16 needs 0 < x < 2**32")
    return int(load().tt_log2_q16(int(x)))


# -- ops ---------------------------------------------------------------------------------------------

#: kernel variants: the same result by another loop (``x4``: unrolled dot products)
LINEAR_VARIANTS = {"plain": "", "x4": "_x4"}


def _variant(variants: dict, variant: str) -> str:
    if variant not in variants:
        raise ValueError(f"unknown kernel variant {variant!r} (known: {', '.join(variants)})")
    return variants[variant]


def linear_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None, mode=ScaleMode.POW2, *,
                      scratch: bool = True, variant: str = "plain") -> QTensor:
    """:func:`tintin.ops.linear_forward_s8`; ``scratch=False`` uses the two-pass (no buffer) path,
    ``variant`` one of :data:`LINEAR_VARIANTS`."""
    name = f"tt_linear_forward{_variant(LINEAR_VARIANTS, variant)}_s8"
    xm = _array(x.m, np.int8, "x")
    wm = _array(weight.m, np.int8, "weight")
    batch, k = _shape2(xm, "x")
    n, kw = _shape2(wm, "weight")
    if kw != k:
        raise ValueError(f"x has {k} features but the weight expects {kw}")
    bm, bscale = (None, Scale()) if bias is None else (_array(bias.m, np.int32, "bias"), bias.scale)
    if bm is not None and bm.shape != (n,):
        raise ValueError(f"bias shape {bm.shape} does not match {n} outputs")
    acc = np.empty((batch, n), dtype=np.int32) if scratch else None
    y = np.empty((batch, n), dtype=np.int8)
    ys = CScale()
    _call(name, _ptr(xm), c_scale(x.scale), _ptr(wm), c_scale(weight.scale), _ptr(bm),
          c_scale(bscale), ctypes.byref(CDenseShape(batch, k, n)), _mode(mode), _ptr(acc), _ptr(y), ctypes.byref(ys))
    return QTensor(y, py_scale(ys))


def align_bias(bias: QTensor, acc_scale: Scale) -> np.ndarray:
    bm = _array(bias.m, np.int32, "bias")
    out = np.empty_like(bm)
    _call("tt_align_bias_s32", _ptr(bm), c_scale(bias.scale), c_scale(acc_scale), bm.size, _ptr(out))
    return out.astype(np.int64)


def linear_backward_input_s8(err: QTensor, weight: QTensor, mode=ScaleMode.POW2, *, scratch: bool = True,
                             variant: str = "plain") -> QTensor:
    """:func:`tintin.ops.linear_backward_input_s8` (``x4`` needs ``scratch``)."""
    name = f"tt_linear_backward_input{_variant(LINEAR_VARIANTS, variant)}_s8"
    em = _array(err.m, np.int8, "err")
    wm = _array(weight.m, np.int8, "weight")
    batch, n = _shape2(em, "err")
    nw, k = _shape2(wm, "weight")
    if nw != n:
        raise ValueError(f"err has {n} outputs but the weight has {nw}")
    acc = np.empty((batch, k), dtype=np.int32) if scratch else None
    out = np.empty((batch, k), dtype=np.int8)
    cs = CScale()
    _call(name, _ptr(em), c_scale(err.scale), _ptr(wm), c_scale(weight.scale), ctypes.byref(CDenseShape(batch, k, n)),
          _mode(mode), _ptr(acc), _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def _selection(rows, row_range, row_count: int) -> tuple[CRowSelect, np.ndarray | None, int]:
    """``(select, rows, count)`` of a rows kernel: rows ``rows[first:first + count]`` (``rows`` may be
    None: rows ``first .. first + count - 1``); ``select`` points into ``rows``, keep it alive."""
    r = None if rows is None else _array(rows, np.uint16, "rows").ravel()
    total = row_count if r is None else r.size
    first, count = (0, total) if row_range is None else (int(row_range[0]), int(row_range[1]))
    return CRowSelect(_ptr(r), first, count), r, count


def linear_backward_weight_s32(err: QTensor, x: QTensor, rows: np.ndarray | None = None,
                               row_range: tuple[int, int] | None = None) -> QTensor:
    """:func:`tintin.ops.linear_backward_weight_s32`; with ``rows`` and/or ``row_range`` (first,
    count) only the selected gradient rows (``tt_linear_backward_weight_rows_s32``)."""
    em = _array(err.m, np.int8, "err")
    xm = _array(x.m, np.int8, "x")
    batch, n = _shape2(em, "err")
    bx, k = _shape2(xm, "x")
    if bx != batch:
        raise ValueError(f"err has batch {batch} but x has {bx}")
    cs = CScale()
    if rows is None and row_range is None:
        g = np.empty((n, k), dtype=np.int32)
        _call("tt_linear_backward_weight_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(CDenseShape(batch, k, n)), _ptr(g), ctypes.byref(cs))
    else:
        select, r, count = _selection(rows, row_range, n)
        g = np.empty((count, k), dtype=np.int32)
        _call("tt_linear_backward_weight_rows_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(CDenseShape(batch, k, n)), ctypes.byref(select), _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def bias_backward_rows_s32(err: QTensor, rows: np.ndarray | None = None,
                           row_range: tuple[int, int] | None = None) -> QTensor:
    """The bias gradient of selected channels of ``err`` (batch, channels, ...): the error summed
    over the batch and the positions (``tt_bias_backward_rows_s32``)."""
    em = _array(err.m, np.int8, "err")
    b, c, p = _bcp(em)
    select, r, count = _selection(rows, row_range, c)
    g = np.empty(count, np.int32)
    cs = CScale()
    _call("tt_bias_backward_rows_s32", _ptr(em), c_scale(err.scale), ctypes.byref(CChannelShape(b, c, p)),
          ctypes.byref(select), _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def linear_backward_bias_s32(err: QTensor) -> QTensor:
    em = _array(err.m, np.int8, "err")
    batch, n = _shape2(em, "err")
    g = np.empty(n, dtype=np.int32)
    cs = CScale()
    _call("tt_linear_backward_bias_s32", _ptr(em), c_scale(err.scale), batch, n, _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def relu_forward_s8(x: QTensor) -> QTensor:
    xm = _array(x.m, np.int8, "x")
    y = np.empty_like(xm)
    _call("tt_relu_forward_s8", _ptr(xm), xm.size, _ptr(y))
    return QTensor(y, x.scale)


def relu_mask_pack_u1(y: QTensor) -> np.ndarray:
    """The 1-bit ReLU mask of ``y`` (bit i = y[i] > 0, np.packbits order)."""
    ym = _array(y.m, np.int8, "y")
    mask = np.empty((ym.size + 7) // 8, np.uint8)
    _call("tt_relu_mask_pack_u1", _ptr(ym), ym.size, _ptr(mask))
    return mask


def relu_backward_mask_s8(err: QTensor, mask: np.ndarray) -> QTensor:
    """:func:`tintin.ops.relu_backward_s8` from the 1-bit mask of the output."""
    em = _array(err.m, np.int8, "err")
    mm = _array(mask, np.uint8, "mask")
    if mm.size < (em.size + 7) // 8:
        raise ValueError(f"mask has {mm.size} bytes, {(em.size + 7) // 8} needed")
    out = np.empty_like(em)
    _call("tt_relu_backward_mask_s8", _ptr(em), _ptr(mm), em.size, _ptr(out))
    return QTensor(out, err.scale)


def relu_backward_s8(err: QTensor, y: QTensor) -> QTensor:
    em = _array(err.m, np.int8, "err")
    ym = _array(y.m, np.int8, "y")
    if em.shape != ym.shape:
        raise ValueError(f"err shape {em.shape} does not match the forward output {ym.shape}")
    out = np.empty_like(em)
    _call("tt_relu_backward_s8", _ptr(em), _ptr(ym), em.size, _ptr(out))
    return QTensor(out, err.scale)


def softmax_probabilities_q15(logits: QTensor) -> np.ndarray:
    lm = _array(logits.m, np.int8, "logits")
    batch, classes = _shape2(lm, "logits")
    p = np.empty((batch, classes), dtype=np.int32)
    _call("tt_softmax_q15", _ptr(lm), c_scale(logits.scale), batch, classes, _ptr(p))
    return p.astype(np.int64)


def softmax_cross_entropy_error(logits: QTensor, labels: np.ndarray, mode=ScaleMode.POW2,
                                rounding=Rounding.NEAREST, key: int | None = None) -> tuple[QTensor, LossValue]:
    lm = _array(logits.m, np.int8, "logits")
    batch, classes = _shape2(lm, "logits")
    lab = _array(labels, np.uint16, "labels").ravel()
    if lab.size != batch:
        raise ValueError(f"{lab.size} labels for a batch of {batch}")
    scratch = np.empty((batch, classes), dtype=np.int32)
    err = np.empty((batch, classes), dtype=np.int8)
    es, loss = CScale(), _I64()
    _call("tt_softmax_xent_error_round_s8", _ptr(lm), c_scale(logits.scale), _ptr(lab), batch, classes, _mode(mode),
          _rounding(rounding), _key(key, rounding), _ptr(scratch), _ptr(err), ctypes.byref(es), ctypes.byref(loss))
    return QTensor(err, py_scale(es)), LossValue(int(loss.value), Scale(-16))


def mse_error(pred: QTensor, target: QTensor, mode=ScaleMode.POW2) -> tuple[QTensor, LossValue]:
    if pred.shape != target.shape:
        raise ValueError(f"MSE target shape {target.shape} does not match prediction {pred.shape}")
    pm = _array(pred.m, np.int8, "pred")
    tm = _array(target.m, np.int8, "target")
    err = np.empty_like(pm)
    es, ls, loss = CScale(), CScale(), _I64()
    _call("tt_mse_error_s8", _ptr(pm), c_scale(pred.scale), _ptr(tm), c_scale(target.scale), pm.size, _mode(mode),
          _ptr(err), ctypes.byref(es), ctypes.byref(loss), ctypes.byref(ls))
    return QTensor(err, py_scale(es)), LossValue(int(loss.value), py_scale(ls))


def predict_argmax(logits: np.ndarray) -> np.ndarray:
    lm = _array(logits, np.int8, "logits")
    rows, cols = _shape2(lm, "logits")
    out = np.empty(rows, dtype=np.uint16)
    _call("tt_argmax_rows_s8", _ptr(lm), rows, cols, _ptr(out))
    return out.astype(np.int64)


def weight_view_s8(weight: QTensor, mode) -> QTensor:
    """``Parameter.forward_view`` of int16 master weights: the int8 view and its scale."""
    wm = _array(weight.m, np.int16, "weight")
    view = np.empty(wm.shape, dtype=np.int8)
    cs = CScale()
    _call("tt_weight_view_s16_to_s8", _ptr(wm), c_scale(weight.scale), wm.size, _mode(mode), _ptr(view),
          ctypes.byref(cs))
    return QTensor(view, py_scale(cs))


# -- convolution -------------------------------------------------------------------------------------

def _pair(v) -> tuple[int, int]:
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    a, b = v
    return int(a), int(b)


def _conv_shape(x_shape, w_shape, stride, padding, groups, input_hw=None) -> CConvShape:
    (sh, sw), (ph, pw) = _pair(stride), _pair(padding)
    cout, cg, kh, kw = w_shape
    b, cin = x_shape[0], cg * int(groups)
    h, w = input_hw if input_hw is not None else x_shape[2:]
    if input_hw is None and x_shape[1] != cin:
        raise ValueError(f"input has {x_shape[1]} channels, the weight expects {cin}")
    if min(sh, sw, kh, kw, groups) < 1 or min(ph, pw) < 0:
        raise ValueError("kernel, stride and groups must be positive and padding non-negative")
    return CConvShape(b, cin, int(h), int(w), cout, kh, kw, sh, sw, ph, pw, int(groups))


def _conv_out(shape: CConvShape) -> tuple[int, int]:
    oh, ow = _SZ(), _SZ()
    _call("tt_conv2d_output_hw", ctypes.byref(shape), ctypes.byref(oh), ctypes.byref(ow))
    return oh.value, ow.value


def _four(t: QTensor, name: str, dtype=np.int8) -> np.ndarray:
    a = _array(t.m, dtype, name)
    if a.ndim != 4:
        raise ValueError(f"{name} must be 4-D (B, C, H, W), got shape {a.shape}")
    return a


CONV_FORWARD_VARIANTS = {"plain": "", "im2col": "_im2col"}
CONV_INPUT_VARIANTS = {"plain": "", "scatter": "_scatter"}


def conv2d_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None, stride=1, padding=0, groups: int = 1,
                      mode=ScaleMode.POW2, *, scratch: bool = True, variant: str = "plain") -> QTensor:
    """:func:`tintin.ops.conv.conv2d_forward_s8` (NCHW); ``variant`` one of
    :data:`CONV_FORWARD_VARIANTS` (``im2col`` copies one output row of windows at a time)."""
    suffix = _variant(CONV_FORWARD_VARIANTS, variant)
    xm, wm = _four(x, "x"), _four(weight, "weight")
    shape = _conv_shape(xm.shape, wm.shape, stride, padding, groups)
    oh, ow = _conv_out(shape)
    bm = None if bias is None else _array(bias.m, np.int32, "bias")
    y = np.empty((xm.shape[0], wm.shape[0], oh, ow), np.int8)
    acc = np.empty(y.shape, np.int32) if scratch else None
    ys = CScale()
    args = [_ptr(xm), c_scale(x.scale), _ptr(wm), c_scale(weight.scale), _ptr(bm),
            c_scale(Scale() if bias is None else bias.scale), ctypes.byref(shape), _mode(mode), _ptr(acc)]
    if suffix:
        args.append(_ptr(np.empty(ow * int(np.prod(wm.shape[1:])), np.int8)))  # one row of windows
    _call(f"tt_conv2d_forward{suffix}_s8", *args, _ptr(y), ctypes.byref(ys))
    return QTensor(y, py_scale(ys))


def conv2d_backward_input_s8(err: QTensor, weight: QTensor, input_hw, stride=1, padding=0, groups: int = 1,
                             mode=ScaleMode.POW2, *, scratch: bool = True, variant: str = "plain") -> QTensor:
    """:func:`tintin.ops.conv.conv2d_backward_input_s8`; ``variant`` one of
    :data:`CONV_INPUT_VARIANTS` (``scatter`` needs ``scratch``)."""
    name = f"tt_conv2d_backward_input{_variant(CONV_INPUT_VARIANTS, variant)}_s8"
    em, wm = _four(err, "err"), _four(weight, "weight")
    shape = _conv_shape((em.shape[0], None), wm.shape, stride, padding, groups, _pair(input_hw))
    if _conv_out(shape) != em.shape[2:]:
        raise ValueError(f"err spatial shape {em.shape[2:]} does not match the forward geometry")
    out = np.empty((em.shape[0], shape.in_channels, shape.in_h, shape.in_w), np.int8)
    acc = np.empty(out.shape, np.int32) if scratch else None
    cs = CScale()
    _call(name, _ptr(em), c_scale(err.scale), _ptr(wm), c_scale(weight.scale),
          ctypes.byref(shape), _mode(mode), _ptr(acc), _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def conv2d_backward_weight_s32(err: QTensor, x: QTensor, kernel_size, stride=1, padding=0, groups: int = 1, *,
                               rows: np.ndarray | None = None, row_range: tuple[int, int] | None = None) -> QTensor:
    """:func:`tintin.ops.conv.conv2d_backward_weight_s32`; with ``rows`` and/or ``row_range`` only the
    selected output channels (``tt_conv2d_backward_weight_rows_s32``)."""
    em, xm = _four(err, "err"), _four(x, "x")
    kh, kw = _pair(kernel_size)
    cout, cin = em.shape[1], xm.shape[1]
    shape = _conv_shape(xm.shape, (cout, cin // int(groups), kh, kw), stride, padding, groups)
    if _conv_out(shape) != em.shape[2:]:
        raise ValueError(f"err spatial shape {em.shape[2:]} does not match the forward geometry")
    cs = CScale()
    if rows is None and row_range is None:
        g = np.empty((cout, cin // int(groups), kh, kw), np.int32)
        _call("tt_conv2d_backward_weight_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(shape), _ptr(g), ctypes.byref(cs))
    else:
        select, r, count = _selection(rows, row_range, cout)
        g = np.empty((count, cin // int(groups), kh, kw), np.int32)
        _call("tt_conv2d_backward_weight_rows_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(shape), ctypes.byref(select), _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def conv2d_backward_bias_s32(err: QTensor) -> QTensor:
    em = _four(err, "err")
    b, c, h, w = em.shape
    shape = CConvShape(b, c, h, w, c, 1, 1, 1, 1, 0, 0, 1)  # the bias sum needs only err's geometry
    g = np.empty(c, np.int32)
    cs = CScale()
    _call("tt_conv2d_backward_bias_s32", _ptr(em), c_scale(err.scale), ctypes.byref(shape), _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def _as_2d(t: QTensor) -> QTensor:
    return QTensor(np.asarray(t.m)[:, :, None, :], t.scale)


def _flat(t: QTensor) -> QTensor:
    return QTensor(t.m[:, :, 0, :], t.scale)


def conv1d_forward_s8(x: QTensor, weight: QTensor, bias: QTensor | None, stride: int = 1, padding: int = 0,
                      groups: int = 1, mode=ScaleMode.POW2, *, scratch: bool = True) -> QTensor:
    return _flat(conv2d_forward_s8(_as_2d(x), _as_2d(weight), bias, (1, stride), (0, padding), groups, mode,
                                   scratch=scratch))


def conv1d_backward_input_s8(err: QTensor, weight: QTensor, input_length: int, stride: int = 1, padding: int = 0,
                             groups: int = 1, mode=ScaleMode.POW2, *, scratch: bool = True) -> QTensor:
    return _flat(conv2d_backward_input_s8(_as_2d(err), _as_2d(weight), (1, input_length), (1, stride), (0, padding),
                                          groups, mode, scratch=scratch))


def conv1d_backward_weight_s32(err: QTensor, x: QTensor, kernel_size: int, stride: int = 1, padding: int = 0,
                               groups: int = 1) -> QTensor:
    return _flat(conv2d_backward_weight_s32(_as_2d(err), _as_2d(x), (1, kernel_size), (1, stride), (0, padding),
                                            groups))


def conv1d_backward_bias_s32(err: QTensor) -> QTensor:
    return conv2d_backward_bias_s32(_as_2d(err))


# -- pooling ---------------------------------------------------------------------------------------

def _pool_shape(x_shape, kernel_size, stride) -> CPoolShape:
    kh, kw = _pair(kernel_size)
    sh, sw = (kh, kw) if stride is None else _pair(stride)
    if min(kh, kw, sh, sw) < 1:
        raise ValueError(f"pooling window {kernel_size} and stride {stride} must be positive")
    b, c, h, w = x_shape
    return CPoolShape(b, c, h, w, kh, kw, sh, sw)


def _pool_out(shape: CPoolShape) -> tuple[int, int]:
    oh, ow = _SZ(), _SZ()
    _call("tt_pool2d_output_hw", ctypes.byref(shape), ctypes.byref(oh), ctypes.byref(ow))
    return oh.value, ow.value


#: ``idx8``: one-byte window offsets (windows of at most 256 elements)
MAXPOOL_VARIANTS = {"plain": "", "idx8": "_idx8"}


def maxpool2d_forward_s8(x: QTensor, kernel_size, stride=None, *, variant: str = "plain"
                         ) -> tuple[QTensor, np.ndarray]:
    """:func:`tintin.ops.pool.maxpool2d_forward_s8`; the argmax has the Python's dtype."""
    suffix = _variant(MAXPOOL_VARIANTS, variant)
    xm = _four(x, "x")
    shape = _pool_shape(xm.shape, kernel_size, stride)
    oh, ow = _pool_out(shape)
    y = np.empty(xm.shape[:2] + (oh, ow), np.int8)
    arg = np.empty(y.shape, np.uint8 if suffix else np.uint16)
    _call(f"tt_maxpool2d_forward{suffix}_s8", _ptr(xm), ctypes.byref(shape), _ptr(y), _ptr(arg))
    return QTensor(y, x.scale), arg.astype(np.uint8 if shape.kernel_h * shape.kernel_w <= 256 else np.int32)


def maxpool2d_backward_s8(err: QTensor, argmax: np.ndarray, input_hw, kernel_size, stride=None, mode=ScaleMode.POW2,
                          *, scratch: bool = True, variant: str = "plain") -> QTensor:
    suffix = _variant(MAXPOOL_VARIANTS, variant)
    em = _four(err, "err")
    h, w = _pair(input_hw)
    shape = _pool_shape(em.shape[:2] + (h, w), kernel_size, stride)
    if _pool_out(shape) != em.shape[2:]:
        raise ValueError(f"err spatial shape {em.shape[2:]} does not match the pooling geometry")
    arg = _array(argmax, np.uint8 if suffix else np.uint16, "argmax")
    out = np.empty(em.shape[:2] + (h, w), np.int8)
    acc = np.empty(out.shape, np.int32) if scratch else None
    cs = CScale()
    _call(f"tt_maxpool2d_backward{suffix}_s8", _ptr(em), c_scale(err.scale), _ptr(arg), ctypes.byref(shape), _mode(mode),
          _ptr(acc), _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def avgpool_multiplier(window: int) -> tuple[int, int]:
    out = CMultiplier()
    status = load().tt_avgpool_multiplier(int(window), ctypes.byref(out))
    if status != TT_OK:
        raise ValueError(f"averaging window of {window} elements is not supported")
    return int(out.m), int(out.n)


def avgpool2d_forward_s8(x: QTensor, kernel_size, stride=None, mode=ScaleMode.POW2, *, scratch: bool = True) -> QTensor:
    xm = _four(x, "x")
    shape = _pool_shape(xm.shape, kernel_size, stride)
    oh, ow = _pool_out(shape)
    y = np.empty(xm.shape[:2] + (oh, ow), np.int8)
    acc = np.empty(y.shape, np.int32) if scratch else None
    cs = CScale()
    _call("tt_avgpool2d_forward_s8", _ptr(xm), c_scale(x.scale), ctypes.byref(shape), _mode(mode), _ptr(acc), _ptr(y),
          ctypes.byref(cs))
    return QTensor(y, py_scale(cs))


def avgpool2d_backward_s8(err: QTensor, input_hw, kernel_size, stride=None, mode=ScaleMode.POW2, *,
                          scratch: bool = True) -> QTensor:
    em = _four(err, "err")
    h, w = _pair(input_hw)
    shape = _pool_shape(em.shape[:2] + (h, w), kernel_size, stride)
    if _pool_out(shape) != em.shape[2:]:
        raise ValueError(f"err spatial shape {em.shape[2:]} does not match the pooling geometry")
    out = np.empty(em.shape[:2] + (h, w), np.int8)
    acc = np.empty(out.shape, np.int32) if scratch else None
    cs = CScale()
    _call("tt_avgpool2d_backward_s8", _ptr(em), c_scale(err.scale), ctypes.byref(shape), _mode(mode), _ptr(acc),
          _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def global_avgpool_forward_s8(x: QTensor, mode=ScaleMode.POW2) -> QTensor:
    xm = _array(x.m, np.int8, "x")
    b, c = xm.shape[:2]
    y = np.empty((b, c), np.int8)
    cs = CScale()
    _call("tt_global_avgpool_forward_s8", _ptr(xm), c_scale(x.scale), b, c, xm.size // max(b * c, 1), _mode(mode),
          _ptr(y), ctypes.byref(cs))
    return QTensor(y, py_scale(cs))


def global_avgpool_backward_s8(err: QTensor, input_shape: tuple[int, ...], mode=ScaleMode.POW2) -> QTensor:
    em = _array(err.m, np.int8, "err")
    b, c = em.shape
    spatial = tuple(int(v) for v in input_shape[1:])
    positions = int(np.prod(spatial, dtype=np.int64))
    out = np.empty((b, c) + spatial, np.int8)
    cs = CScale()
    _call("tt_global_avgpool_backward_s8", _ptr(em), c_scale(err.scale), b, c, positions, _mode(mode), _ptr(out),
          ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def maxpool1d_forward_s8(x: QTensor, kernel_size: int, stride: int | None = None) -> tuple[QTensor, np.ndarray]:
    y, arg = maxpool2d_forward_s8(_as_2d(x), (1, kernel_size), None if stride is None else (1, stride))
    return _flat(y), arg[:, :, 0, :]


def maxpool1d_backward_s8(err: QTensor, argmax: np.ndarray, input_length: int, kernel_size: int,
                          stride: int | None = None, mode=ScaleMode.POW2) -> QTensor:
    return _flat(maxpool2d_backward_s8(_as_2d(err), np.asarray(argmax)[:, :, None, :], (1, input_length),
                                       (1, kernel_size), None if stride is None else (1, stride), mode))


def avgpool1d_forward_s8(x: QTensor, kernel_size: int, stride: int | None = None, mode=ScaleMode.POW2) -> QTensor:
    return _flat(avgpool2d_forward_s8(_as_2d(x), (1, kernel_size), None if stride is None else (1, stride), mode))


def avgpool1d_backward_s8(err: QTensor, input_length: int, kernel_size: int, stride: int | None = None,
                          mode=ScaleMode.POW2) -> QTensor:
    return _flat(avgpool2d_backward_s8(_as_2d(err), (1, input_length), (1, kernel_size),
                                       None if stride is None else (1, stride), mode))


# -- residual add and channel scale ----------------------------------------------------------------

def residual_working_scale(a: Scale, b: Scale) -> Scale:
    out = CScale()
    _call("tt_residual_working_scale", c_scale(a), c_scale(b), ctypes.byref(out))
    return py_scale(out)


def residual_add_s8(a: QTensor, b: QTensor, mode=ScaleMode.POW2, *, scratch: bool = True) -> QTensor:
    if a.m.shape != b.m.shape:
        raise ValueError(f"residual add needs equal shapes, got {a.m.shape} and {b.m.shape}")
    am, bm = _array(a.m, np.int8, "a"), _array(b.m, np.int8, "b")
    y = np.empty_like(am)
    acc = np.empty(am.shape, np.int32) if scratch else None
    cs = CScale()
    _call("tt_residual_add_s8", _ptr(am), c_scale(a.scale), _ptr(bm), c_scale(b.scale), am.size, _mode(mode),
          _ptr(acc), _ptr(y), ctypes.byref(cs))
    return QTensor(y, py_scale(cs))


def _bcp(t: np.ndarray) -> tuple[int, int, int]:
    b, c = t.shape[:2]
    return b, c, int(np.prod(t.shape[2:], dtype=np.int64))


def channel_scale_forward_s8(x: QTensor, gamma: QTensor, beta: QTensor | None, mode=ScaleMode.POW2, *,
                             scratch: bool = True) -> QTensor:
    xm, gm = _array(x.m, np.int8, "x"), _array(gamma.m, np.int8, "gamma")
    bm = None if beta is None else _array(beta.m, np.int32, "beta")
    b, c, p = _bcp(xm)
    y = np.empty_like(xm)
    acc = np.empty(xm.shape, np.int32) if scratch else None
    cs = CScale()
    _call("tt_channel_scale_forward_s8", _ptr(xm), c_scale(x.scale), _ptr(gm), c_scale(gamma.scale), _ptr(bm),
          c_scale(Scale() if beta is None else beta.scale), ctypes.byref(CChannelShape(b, c, p)), _mode(mode), _ptr(acc),
          _ptr(y), ctypes.byref(cs))
    return QTensor(y, py_scale(cs))


def channel_scale_backward_input_s8(err: QTensor, gamma: QTensor, mode=ScaleMode.POW2) -> QTensor:
    em, gm = _array(err.m, np.int8, "err"), _array(gamma.m, np.int8, "gamma")
    b, c, p = _bcp(em)
    out = np.empty_like(em)
    cs = CScale()
    _call("tt_channel_scale_backward_input_s8", _ptr(em), c_scale(err.scale), _ptr(gm), c_scale(gamma.scale),
          ctypes.byref(CChannelShape(b, c, p)), _mode(mode), None, _ptr(out), ctypes.byref(cs))
    return QTensor(out, py_scale(cs))


def channel_scale_backward_weight_s32(err: QTensor, x: QTensor, rows: np.ndarray | None = None,
                                      row_range: tuple[int, int] | None = None) -> QTensor:
    """:func:`tintin.ops.scaling.channel_scale_backward_weight_s32`; with ``rows`` and/or
    ``row_range`` only the selected channels."""
    em, xm = _array(err.m, np.int8, "err"), _array(x.m, np.int8, "x")
    b, c, p = _bcp(em)
    cs = CScale()
    if rows is None and row_range is None:
        g = np.empty(c, np.int32)
        _call("tt_channel_scale_backward_weight_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(CChannelShape(b, c, p)), _ptr(g), ctypes.byref(cs))
    else:
        select, r, count = _selection(rows, row_range, c)
        g = np.empty(count, np.int32)
        _call("tt_channel_scale_backward_weight_rows_s32", _ptr(em), c_scale(err.scale), _ptr(xm), c_scale(x.scale),
              ctypes.byref(CChannelShape(b, c, p)), ctypes.byref(select), _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


def channel_scale_backward_bias_s32(err: QTensor) -> QTensor:
    em = _array(err.m, np.int8, "err")
    b, c, p = _bcp(em)
    g = np.empty(c, np.int32)
    cs = CScale()
    _call("tt_channel_scale_backward_bias_s32", _ptr(em), c_scale(err.scale), ctypes.byref(CChannelShape(b, c, p)),
          _ptr(g), ctypes.byref(cs))
    return QTensor(g, py_scale(cs))


# -- optimiser ---------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SgdConfig:
    """The integer settings of one update (``tt_sgd_config_t``)."""

    rule: str = "aligned"
    lr: Scale = Scale(-1)
    batch_size: int = 1
    rounding: Rounding = Rounding.STOCHASTIC
    mode: ScaleMode = ScaleMode.COMPOUND
    mu: int = 4
    momentum_shift: int = 0
    weight_rescale: bool = True

    @classmethod
    def from_optimizer(cls, optimizer) -> "SgdConfig":
        """The settings an :class:`tintin.optim.IntegerSGD` applies now (after ``set_epoch``)."""
        c = optimizer.config
        return cls(c.rule, optimizer.lr_scale, int(optimizer.batch_size), Rounding(c.rounding),
                   ScaleMode(optimizer.mode), int(optimizer.mu), int(c.momentum_shift), bool(c.weight_rescale))

    def to_c(self) -> CSgdConfig:
        if self.rule not in ("aligned", "niti"):
            raise ValueError(f"unknown update rule {self.rule!r} (aligned, niti)")
        if not 1 <= int(self.batch_size) < 2**32:
            raise ValueError(f"batch size must be positive, got {self.batch_size}")
        return CSgdConfig(int(self.batch_size), c_scale(self.lr), 0 if self.rule == "aligned" else 1,
                          _rounding(self.rounding), _mode(self.mode), int(self.mu), int(self.momentum_shift),
                          1 if self.weight_rescale else 0)


#: update variants of a whole tensor: ``fast`` (biases: a 32-bit path for the common case) and
#: ``skip0`` (int8 weights, aligned rule, stochastic rounding, no momentum: zero gradients skipped)
SGD_VARIANTS = {"plain": "", "fast": "_fast", "skip0": "_skip0"}


def sgd_update(kind: str, value: QTensor, grad: QTensor, config: SgdConfig, key: int,
               momentum: np.ndarray | None = None, rows: np.ndarray | None = None, *, variant: str = "plain",
               ) -> tuple[QTensor, np.ndarray | None]:
    """One :meth:`IntegerSGD.update` of a parameter: returns the new value and momentum.

    ``kind`` is ``"weight"`` (int8 or int16 mantissas, by ``value.m.dtype``) or ``"bias"`` (int32).
    ``grad`` is the full int32 gradient; with ``rows`` (sparse update) only those rows are applied
    (the C kernel receives the selected gradient rows). ``momentum`` is the parameter's momentum
    (``None`` before the first step); it is returned updated (``None`` when the rule keeps none).
    ``variant`` (:data:`SGD_VARIANTS`, whole tensors only): ``fast`` for biases, ``skip0`` for int8
    weights (other settings: :class:`HostRuntimeError` TT_ERR_ARG).
    """
    suffix = _variant(SGD_VARIANTS, variant)
    if suffix and rows is not None:
        raise ValueError(f"the {variant} update has no row-subset form")
    if (variant == "fast" and kind != "bias") or (variant == "skip0" and kind != "weight"):
        raise ValueError(f"the {variant} update is for {'biases' if variant == 'fast' else 'int8 weights'}")
    cfg = config.to_c()
    uses_momentum = config.momentum_shift > 0 and not (config.rule == "niti" and kind == "weight")
    if kind == "bias":
        vm = _array(value.m, np.int32, "bias").copy()
    elif kind == "weight":
        if value.m.dtype not in (np.int8, np.int16):
            raise TypeError(f"weights are int8 or int16, got {value.m.dtype}")
        vm = np.ascontiguousarray(value.m).copy()
    else:
        raise ValueError(f"kind must be 'weight' or 'bias', got {kind!r}")
    gm = _array(grad.m, np.int32, "grad")
    if gm.shape != vm.shape:
        raise ValueError(f"gradient shape {gm.shape} does not match the parameter {vm.shape}")
    if rows is not None:
        r = _array(rows, np.uint16, "rows").ravel()
        if np.unique(r).size != r.size:
            raise ValueError("sparse-update rows must be distinct")
        gsel = np.ascontiguousarray(gm[r])
    else:
        r, gsel = None, gm.copy()  # the full-tensor weight kernel uses the gradient as scratch
    mom = None
    if uses_momentum:
        mom = np.zeros(gsel.shape, dtype=np.int64) if momentum is None else _array(momentum, np.int64, "momentum").copy()
        if mom.shape != gsel.shape:
            raise ValueError(f"momentum shape {mom.shape} does not match the gradient {gsel.shape}")
    cs = c_scale(value.scale)
    key = int(key) & 0xFFFFFFFF
    if r is not None:
        cols = 1 if vm.ndim == 1 else int(np.prod(vm.shape[1:]))
        name = {np.dtype(np.int8): "tt_sgd_update_weight_rows_s8", np.dtype(np.int16): "tt_sgd_update_weight_rows_s16",
                np.dtype(np.int32): "tt_sgd_update_bias_rows_s32"}[vm.dtype]
        if name == "tt_sgd_update_bias_rows_s32":
            _call(name, _ptr(vm), cs, vm.shape[0], _ptr(r), r.size, _ptr(gsel), c_scale(grad.scale), _ptr(mom),
                  ctypes.byref(cfg), key)
        else:
            _call(name, _ptr(vm), cs, vm.shape[0], cols, _ptr(r), r.size, _ptr(gsel), c_scale(grad.scale), _ptr(mom),
                  ctypes.byref(cfg), key)
        new_scale = value.scale
    elif kind == "bias":
        _call(f"tt_sgd_update_bias{suffix}_s32", _ptr(vm), cs, vm.size, _ptr(gsel), c_scale(grad.scale), _ptr(mom),
              ctypes.byref(cfg), key)
        new_scale = value.scale
    elif suffix:
        if vm.dtype != np.int8:
            raise TypeError(f"the skip0 update is for int8 weights, got {vm.dtype}")
        _call("tt_sgd_update_weight_skip0_s8", _ptr(vm), ctypes.byref(cs), vm.size,
              _ptr(gsel), c_scale(grad.scale), ctypes.byref(cfg), key)
        new_scale = py_scale(cs)
    else:
        name = "tt_sgd_update_weight_s8" if vm.dtype == np.int8 else "tt_sgd_update_weight_s16"
        _call(name, _ptr(vm), ctypes.byref(cs), vm.size, _ptr(gsel), c_scale(grad.scale), _ptr(mom),
              ctypes.byref(cfg), key)
        new_scale = py_scale(cs)
    return QTensor(vm, new_scale), mom


def sgd_update_tiled(value: QTensor, grad: QTensor, config: SgdConfig, key: int,
                     momentum: np.ndarray | None = None, rows: np.ndarray | None = None, *, tile_rows: int = 1,
                     rank1: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[QTensor, np.ndarray | None]:
    """:func:`sgd_update` of a weight through ``tt_sgd_update_tiled``: the kernel asks for the
    (selected) gradient ``tile_rows`` rows at a time. ``rank1 = (err, x)`` (int8 arrays of shapes
    ``(B, rows)`` and ``(B, cols)``, or vectors for ``B = 1``, with ``grad == err.T @ x``: a fully
    connected layer at batch ``B``) lets it skip the tiles."""
    t = tiled_update(value, grad, config, momentum, rows, tile_rows, rank1)
    cfg = config.to_c()
    _call("tt_sgd_update_tiled", ctypes.byref(t.u), ctypes.byref(cfg), int(key) & 0xFFFFFFFF)
    return QTensor(t.weights, py_scale(t.w_scale)), t.momentum


@dataclass
class TiledUpdate:
    """A ``tt_tiled_update_t`` whose gradient callback serves the rows of a host array, with the
    arrays it points to (kept alive with it)."""

    u: object
    weights: np.ndarray  #: updated in place by the kernel
    w_scale: object  #: CScale, updated in place
    momentum: np.ndarray | None
    keep: tuple


def tiled_update(value: QTensor, grad: QTensor, config: SgdConfig, momentum: np.ndarray | None = None,
                 rows: np.ndarray | None = None, tile_rows: int = 1,
                 rank1: tuple[np.ndarray, np.ndarray] | None = None) -> TiledUpdate:
    """The ``tt_tiled_update_t`` of :func:`sgd_update_tiled` (copies of the weights and momentum)."""
    if value.m.dtype not in (np.int8, np.int16):
        raise TypeError(f"weights are int8 or int16, got {value.m.dtype}")
    vm = np.ascontiguousarray(value.m).copy()
    row_count = vm.shape[0]
    cols = int(np.prod(vm.shape[1:], dtype=np.int64)) if vm.ndim > 1 else 1
    gm = _array(grad.m, np.int32, "grad").reshape(row_count, cols)
    r = None if rows is None else _array(rows, np.uint16, "rows").ravel()
    gsel = np.ascontiguousarray(gm if r is None else gm[r])
    nrows = gsel.shape[0]
    uses_momentum = config.momentum_shift > 0 and config.rule != "niti"
    mom = None
    if uses_momentum:
        mom = np.zeros(gsel.shape, np.int64) if momentum is None else \
            _array(momentum, np.int64, "momentum").reshape(gsel.shape).copy()
    tile = np.zeros(max(1, int(tile_rows)) * cols, np.int32)
    flags = np.zeros(max(1, (nrows + 7) // 8), np.uint8)
    gscale = c_scale(grad.scale)

    def tiles(_ctx, first, count, out, out_scale):
        if first + count > nrows:
            return 3  # TT_ERR_ARG
        ctypes.memmove(out, gsel[first:first + count].ctypes.data, count * cols * 4)
        out_scale[0] = gscale
        return TT_OK

    fn = GRAD_ROWS_FN(tiles)
    ws = c_scale(value.scale)
    e1, x1 = (None, None) if rank1 is None else (_array(rank1[0], np.int8, "err"), _array(rank1[1], np.int8, "x"))
    batch = 0 if e1 is None else (1 if e1.ndim == 1 else e1.shape[0])
    u = CTiledUpdate(_ptr(vm) if vm.dtype == np.int8 else None, _ptr(vm) if vm.dtype == np.int16 else None,
                     ctypes.pointer(ws), row_count, cols, _ptr(r), nrows, _ptr(mom), _ptr(tile), int(tile_rows),
                     _ptr(flags), fn, None, _ptr(e1), _ptr(x1), batch)
    return TiledUpdate(u, vm, ws, mom, (r, gsel, tile, flags, fn, e1, x1))


def fnv1a_u32(data: bytes, h: int = 0x811C9DC5) -> int:
    """``tt_fnv1a_u32``: FNV-1a (32-bit) of ``data`` continuing from ``h``."""
    buf = np.frombuffer(bytes(data), np.uint8)
    return int(load().tt_fnv1a_u32(h & 0xFFFFFFFF, _ptr(buf) if buf.size else None, buf.size))


# -- a whole training step on the C kernels ------------------------------------------------------

@dataclass(frozen=True, slots=True)
class HostStepResult:
    """What :func:`train_step` returns (the fields of ``tintin.train.step.StepResult``)."""

    loss: LossValue
    correct: int
    count: int


def _weight_view(param, mode) -> QTensor:
    return weight_view_s8(param.value, mode) if param.bits == 16 else param.value


def _linear_forward(act: QTensor, weight, bias: QTensor | None, mode) -> QTensor:
    if weight.row_exp is None:
        return linear_forward_s8(act, _weight_view(weight, mode), bias, mode)
    from .host_rows import linear_forward_rows_s8

    return linear_forward_rows_s8(act, weight.value, bias, mode, weight.row_exp)


def _linear_backward_input(err: QTensor, view: QTensor, weight, mode) -> QTensor:
    if weight.row_exp is None:
        return linear_backward_input_s8(err, view, mode)
    from .host_rows import linear_backward_input_rows_s8

    return linear_backward_input_rows_s8(err, view, mode, weight.row_exp)


def _check_dense(model) -> None:
    from ..nn.layers import Flatten, Linear, ReLU

    for layer in model.layers:
        if not isinstance(layer, (Linear, ReLU, Flatten)):
            raise ValueError(f"the host runtime runs Linear, ReLU and Flatten layers, not {type(layer).__name__}")


def forward(model, x: np.ndarray) -> QTensor:
    """``model.forward`` (evaluation) on the C kernels: the int8 output and its scale."""
    from ..nn.layers import Linear, ReLU

    _check_dense(model)
    mode = ScaleMode(model.config.scale_mode)
    act = QTensor(np.ascontiguousarray(x), Scale(model.input_exponent))
    for layer in model.layers:
        if isinstance(layer, Linear):
            b = layer.bias.value if layer.bias is not None else None
            act = _linear_forward(act, layer.weight, b, mode)
        elif isinstance(layer, ReLU):
            act = relu_forward_s8(act)
        else:
            act = QTensor(act.m.reshape(act.m.shape[0], -1), act.scale)
    return act


def train_step(model, optimizer, x: np.ndarray, y: np.ndarray, ctx, target_exponent: int = 0) -> HostStepResult:
    """``tintin.train.step.train_step`` executed by the C runtime, for Sequential models of
    ``Linear``, ``ReLU`` and ``Flatten`` layers. Updates ``model`` in place exactly as the Python does
    (same weights, scales, momentum, stream step)."""
    from ..nn.config import LOSS_ERROR_SITE
    from ..nn.layers import Linear, ReLU

    _check_dense(model)
    mode = ScaleMode(model.config.scale_mode)
    config = SgdConfig.from_optimizer(optimizer)
    config = SgdConfig(config.rule, config.lr, len(x), config.rounding, config.mode, config.mu,
                       config.momentum_shift, config.weight_rescale)
    optimizer.batch_size = len(x)
    site = {id(p): 4 * i for i, p in enumerate(optimizer.params)}

    # forward, keeping what the backward pass needs
    act = QTensor(np.ascontiguousarray(x), Scale(model.input_exponent))
    saved = []
    for layer in model.layers:
        if isinstance(layer, Linear):
            view = _weight_view(layer.weight, mode)
            b = layer.bias.value if layer.bias is not None else None
            saved.append((act, view))
            act = _linear_forward(act, layer.weight, b, mode)
        elif isinstance(layer, ReLU):
            act = relu_forward_s8(act)
            saved.append(act)
        else:
            saved.append(act.m.shape)
            act = QTensor(act.m.reshape(act.m.shape[0], -1), act.scale)
    out = act

    if model.loss == "cross_entropy":
        rounding = model.config.loss_error_rounding
        key = ctx.stream.key(LOSS_ERROR_SITE) if rounding is not Rounding.NEAREST else None
        err, loss = softmax_cross_entropy_error(out, y, mode, rounding, key)
        correct = int((predict_argmax(out.m) == np.asarray(y)).sum())
    else:
        target = QTensor(np.asarray(y).reshape(out.shape).astype(np.int8), Scale(target_exponent))
        err, loss = mse_error(out, target, mode)
        correct = 0

    def update(p) -> None:
        key = ctx.stream.key(site[id(p)])
        if p.row_exp is not None:  # per-row weight scales (tt_rows.c)
            from .host_rows import sgd_update_rows_scaled

            if p.trainable_rows is not None:
                raise ValueError(f"{p.name}: the host runtime updates row-scaled weights on every row")
            value, p.row_exp = sgd_update_rows_scaled(p.value, p.row_exp, p.grad, config, key, p.row_limit)
            p.assign(value)
            p.grad = None
            return
        value, mom = sgd_update(p.kind, p.value, p.grad, config, key, p.momentum, p.trainable_rows)
        if mom is not None:
            p.momentum = mom
        p.assign(value)
        p.grad = None

    stop = model.first_trainable_layer()
    for i in range(len(model.layers) - 1, stop - 1, -1):
        layer = model.layers[i]
        need_input_error = i > stop
        if isinstance(layer, Linear):
            x_in, view = saved[i]
            e_in = _linear_backward_input(err, view, layer.weight, mode) if need_input_error else None
            if layer.weight.trainable:
                layer.weight.grad = linear_backward_weight_s32(err, x_in)
            if layer.bias is not None and layer.bias.trainable:
                layer.bias.grad = linear_backward_bias_s32(err)
            err = e_in
        elif isinstance(layer, ReLU):
            err = relu_backward_s8(err, saved[i]) if need_input_error else None
        else:
            err = QTensor(err.m.reshape(saved[i]), err.scale) if need_input_error else None
        for p in layer.parameters():
            if p.trainable and p.grad is not None:
                update(p)
    ctx.stream.advance()
    return HostStepResult(loss, correct, len(x))
