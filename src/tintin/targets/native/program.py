"""A model's training program compiled for the host and driven through ctypes.

:class:`NativeProgram` compiles the model (:func:`tintin.codegen.compile_for_codegen`), renders the
C project, builds it with the vectorised host kernels (:mod:`tintin.targets.native.build`) and
loads its own copy of the library (two programs never share an arena). The model's state goes in
with :meth:`NativeProgram.load_state` and comes back with :meth:`NativeProgram.store_state`;
:meth:`NativeProgram.train_steps` runs many batches in one call.
"""

from __future__ import annotations

import ctypes
import hashlib
import shutil
import tempfile
from pathlib import Path

import numpy as np

from tintin.codegen import CodegenError, compile_for_codegen, generate_project
from tintin.codegen.host import CScale, c_scale, py_scale
from tintin.codegen.model_c import (ROLE_FEEDBACK, ROLE_FROZEN, ROLE_MOMENTUM, ROLE_ROW_EXP, ROLE_TRAINED,
                                   state_entries)
from tintin.targets.errors import BuildError, TargetError
from tintin.targets.native.build import build_library

_LABEL_DTYPES = {"uint8_t": np.uint8, "uint16_t": np.uint16, "int8_t": np.int8, "int16_t": np.int16}
_DTYPES = {1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64, 5: np.uint8}
TT_OK, TT_ERR_OVERFLOW = 0, 2
_STATUS = {1: "TT_ERR_SHAPE", 2: "TT_ERR_OVERFLOW", 3: "TT_ERR_ARG", 4: "TT_ERR_RANGE", 5: "TT_ERR_IO"}


class NativeRunError(TargetError):
    """The native program returned an error status."""


class CParamInfo(ctypes.Structure):
    """tt_param_info_t of the generated tt_model.h."""
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_uint8), ("role", ctypes.c_uint8),
                ("count", ctypes.c_size_t), ("data", ctypes.c_void_p), ("scale", ctypes.POINTER(CScale))]


def _ptr(a: np.ndarray) -> ctypes.c_void_p:
    return ctypes.c_void_p(a.ctypes.data)


class NativeProgram:
    """The training program of ``model`` at ``batch_size`` (update ``update``, optimiser settings
    ``optim``: a :class:`tintin.optim.OptimConfig`), built for this CPU.

    Raises :class:`tintin.codegen.CodegenError` for models the C generator does not handle and
    :class:`tintin.targets.ToolchainMissingError` / :class:`tintin.targets.BuildError` when the
    host compiler is missing or fails."""

    def __init__(self, model, batch_size: int, optim=None, update: str | None = "full"):
        self.model = model
        self.batch_size = int(batch_size)
        with tempfile.TemporaryDirectory(prefix="tintin-native-") as tmp:
            program, plan, eval_program = compile_for_codegen(model, update, self.batch_size, optim)
            self.feedback_bits = program.optim.feedback_bits
            project = generate_project(model, Path(tmp) / "project", program=program, plan=plan,
                                       eval_program=eval_program, target="host", example=False)
            self.entries = project.model.params
            self.label_dtype = np.dtype(_LABEL_DTYPES[project.model.label_ctype])
            self.input_size = project.model.input_size
            self.label_size = project.model.label_size
            self.classes = project.model.classes
            # trained values and momentum are written by load_state: only the program's text and
            # the frozen parameters name the library
            params = {p.name: p for p in model.parameters()}
            key = hashlib.sha256()
            changing = {e.index for e in state_entries(self.entries)}
            for e in self.entries:
                if e.role == ROLE_FROZEN:
                    key.update(e.name.encode() + np.ascontiguousarray(params[e.name].value.m).tobytes())
                elif e.role == ROLE_ROW_EXP and e.index not in changing:  # a frozen weight's exponents
                    key.update(e.name.encode() + np.ascontiguousarray(params[e.param].row_exp, np.int8).tobytes())
            program_sources = [s for s in project.sources if s.parent == project.out_dir]
            lib = build_library(program_sources, list(project.include_dirs), key_extra=key.digest(),
                                hashed=[s for s in program_sources if s.name != "tt_model_params.c"])
            # a private copy: dlopen of one path twice would share the arena of two programs
            own = Path(tmp) / "libprogram.so"
            shutil.copyfile(lib, own)
            try:
                self.lib = ctypes.CDLL(str(own))
            except OSError as exc:
                raise BuildError(f"native: the built library does not load: {str(exc).splitlines()[0]}") from None
        self._declare()
        if self.lib.tt_host_batch_size() != self.batch_size or self.lib.tt_host_input_size() != self.input_size:
            raise CodegenError("the native library does not match its program (batch or input size)")
        self.simd_level = int(self.lib.tt_host_simd_level())

    def _declare(self) -> None:
        L, P, SZ = self.lib, ctypes.c_void_p, ctypes.c_size_t
        L.tt_init.argtypes, L.tt_init.restype = [ctypes.c_uint32], None
        L.tt_set_epoch.argtypes, L.tt_set_epoch.restype = [ctypes.c_uint32], None
        L.tt_set_stream.argtypes, L.tt_set_stream.restype = [ctypes.c_uint32, ctypes.c_uint32], None
        L.tt_step_count.argtypes, L.tt_step_count.restype = [], ctypes.c_uint32
        L.tt_param_get.argtypes, L.tt_param_get.restype = [SZ, ctypes.POINTER(CParamInfo)], ctypes.c_int
        L.tt_host_train_steps.argtypes = [P, P, P, SZ, P, P, P, ctypes.POINTER(SZ), ctypes.POINTER(ctypes.c_int)]
        L.tt_host_train_steps.restype = ctypes.c_int
        for name in ("tt_host_batch_size", "tt_host_input_size", "tt_host_label_size", "tt_host_label_bytes"):
            getattr(L, name).argtypes, getattr(L, name).restype = [], SZ
        L.tt_host_simd_level.argtypes, L.tt_host_simd_level.restype = [], ctypes.c_int

    def _info(self, index: int) -> CParamInfo:
        info = CParamInfo()
        if self.lib.tt_param_get(index, ctypes.byref(info)) != TT_OK:
            raise NativeRunError(f"tt_param_get({index}) failed")
        return info

    # -- state ----------------------------------------------------------------------------------
    def load_state(self, seed: int, step: int, epoch: int) -> None:
        """Start the program from the model's parameters (values, scales, momentum, row exponents),
        the rounding stream at ``(seed, step)`` and the settings of ``epoch``."""
        self.lib.tt_init(int(seed) & 0xFFFFFFFF)
        params = {p.name: p for p in self.model.parameters()}
        for e in state_entries(self.entries):
            info = self._info(e.index)
            dtype = _DTYPES[info.dtype]
            if e.role == ROLE_MOMENTUM:
                mom = params[e.param].momentum
                src = np.zeros(info.count, dtype) if mom is None else np.ascontiguousarray(mom, dtype).ravel()
            elif e.role == ROLE_ROW_EXP:
                src = np.ascontiguousarray(params[e.param].row_exp, dtype).ravel()
            elif e.role == ROLE_FEEDBACK:
                from tintin.compile.executor import pack_remainder

                src = pack_remainder(params[e.param], self.feedback_bits)
            else:
                p = params[e.name]
                src = np.ascontiguousarray(p.value.m, dtype).ravel()
                info.scale[0] = c_scale(p.value.scale)
            if src.size != info.count:
                raise NativeRunError(f"{e.name}: {src.size} values, the program holds {info.count}")
            ctypes.memmove(info.data, src.ctypes.data, src.nbytes)
        self.lib.tt_set_stream(int(seed) & 0xFFFFFFFF, int(step) & 0xFFFFFFFF)
        self.lib.tt_set_epoch(int(epoch))

    def set_epoch(self, epoch: int) -> None:
        self.lib.tt_set_epoch(int(epoch))

    def store_state(self) -> None:
        """Write the program's parameters (momentum, row exponents, error-feedback remainders) back
        into the model."""
        from tintin.numerics import QTensor

        params = {p.name: p for p in self.model.parameters()}
        for e in state_entries(self.entries):
            info = self._info(e.index)
            dtype = np.dtype(_DTYPES[info.dtype])
            values = np.empty(info.count, dtype)
            ctypes.memmove(values.ctypes.data, info.data, values.nbytes)
            if e.role == ROLE_MOMENTUM:
                params[e.param].momentum = values.reshape(e.shape)
            elif e.role == ROLE_ROW_EXP:
                params[e.param].row_exp = values.reshape(e.shape)
            elif e.role == ROLE_FEEDBACK:
                from tintin.numerics.bitplane import unpack_plane

                p = params[e.param]
                p.remainder = unpack_plane(values, self.feedback_bits, p.value.m.size).reshape(p.value.m.shape)
                p.feedback_bits = self.feedback_bits
            elif e.role == ROLE_TRAINED:
                p = params[e.name]
                p.assign(QTensor(values.reshape(p.value.m.shape), py_scale(info.scale[0])))

    # -- training -------------------------------------------------------------------------------
    def prepare_data(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``x`` and ``y`` laid out as the C loop reads them (keep them alive while training)."""
        xs = np.ascontiguousarray(x, np.int8).reshape(len(x), -1)
        ys = np.ascontiguousarray(np.asarray(y).astype(self.label_dtype)).reshape(len(y), -1)
        if xs.shape[1] != self.input_size or ys.shape[1] != self.label_size:
            raise NativeRunError(f"samples of {xs.shape[1]} values and {ys.shape[1]} labels; the program takes "
                                 f"{self.input_size} and {self.label_size}")
        return xs, ys

    def train_steps(self, xs: np.ndarray, ys: np.ndarray, order: np.ndarray):
        """Train ``len(order) // batch_size`` batches (``order``: sample indices, int64) in one call.
        Returns ``(loss_totals int64, loss_scales (steps, 3) int16, correct uint32, overflow)``."""
        order = np.ascontiguousarray(order, np.int64)
        steps = len(order) // self.batch_size
        totals = np.zeros(steps, np.int64)
        scales = np.zeros((steps, 3), np.int16)
        correct = np.zeros(steps, np.uint32)
        done, overflow = ctypes.c_size_t(0), ctypes.c_int(0)
        st = self.lib.tt_host_train_steps(_ptr(xs), _ptr(ys), _ptr(order), steps, _ptr(totals), _ptr(scales),
                                          _ptr(correct), ctypes.byref(done), ctypes.byref(overflow))
        if st != TT_OK:
            raise NativeRunError(f"native training step {done.value} failed: {_STATUS.get(st, st)}")
        return totals, scales, correct, bool(overflow.value)
