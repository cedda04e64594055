"""A fleet client's local training, run by the simulator, by the generated C on the host, or by an
emulated microcontroller: the same bits from each.

One *local update* (what a device does in a federated round): start from the weights it received,
take ``steps`` integer training steps of ``batch_size`` samples (default 1) on its own samples in
a seeded order, and return its weights. Three executors:

``simulate_local_update``   the specification: :func:`tintin.train.train_step`.
``HostProgramClient``       the model's generated C project (:func:`tintin.codegen.generate_project`)
                            built once as a host shared library and called through ``ctypes``:
                            the received weights are written into the program's parameters
                            through ``tt_param_get``'s pointers, ``tt_train_step`` runs the steps,
                            and the weights are read back. Weights change every round without a
                            rebuild; frozen parameters (update modes other than ``full``) are part
                            of the build, so a change to them rebuilds (cached by content).
``local_update_on_target``  the same program built for a target (``"cortex-m0"``, ``"host"``, ...:
                            see ``tintin devices``) with the weights and samples embedded, run in
                            its emulator (QEMU, simavr), the final weights read from its output.

The sample order: step ``s`` trains on samples ``order[s*B:(s+1)*B]``; by default ``order`` is
:func:`tintin.targets.ondevice.training_order` for ``seed`` (the trainer's seeded permutation per
pass over the samples); any order can be given (e.g. a federated client's own). The rounding stream starts at ``(seed, step 0)``; the optimiser starts
without momentum; the learning rate is ``optim``'s of epoch 0.

    from tintin.fleet.device_client import HostProgramClient, simulate_local_update
    client = HostProgramClient(model, optim=OptimConfig(lr=0.05), update="full")
    device = client.local_update(model, x, y, steps=10, seed=3)
    reference = simulate_local_update(model, x, y, steps=10, seed=3, optim=OptimConfig(lr=0.05))
    # every parameter of device equals reference, mantissas and scales
"""

from __future__ import annotations

import copy
import ctypes
import hashlib
import json
import os
import shutil
import tempfile
import threading
from pathlib import Path

import numpy as np

from ..compile import CompileOptions
from ..compile.selection import apply_update_selection, parse_update
from ..errors import TintinError
from ..nn import Context, Sequential
from ..numerics import QTensor, RoundingStream, Scale
from ..optim import IntegerSGD, OptimConfig
from ..train import train_step
from ..train.step import check_labels, check_samples

__all__ = ["DeviceClientError", "HostProgramClient", "default_cache_dir", "simulate_local_update", "local_update_on_target",
           "local_order", "same_parameters"]

_DTYPES = {1: np.int8, 2: np.int16, 3: np.int32, 4: np.int64}
_ROLE_FROZEN, _ROLE_TRAINED = 0, 1
_TT_OK, _TT_ERR_OVERFLOW = 0, 2


_LIBRARY_LOCK = threading.Lock()


def default_cache_dir() -> Path:
    """``$TINTIN_CACHE/fleet-client``, else ``~/.cache/tintin/fleet-client``."""
    root = os.environ.get("TINTIN_CACHE")
    return (Path(root) if root else Path.home() / ".cache" / "tintin") / "fleet-client"


class DeviceClientError(TintinError, RuntimeError):
    """A local update that cannot run (bad samples or steps, a device status, a missing output)."""


class _CScale(ctypes.Structure):
    _fields_ = [("S", ctypes.c_int16), ("U", ctypes.c_int16), ("D", ctypes.c_int16)]


class _CParamInfo(ctypes.Structure):
    """tt_param_info_t of a generated tt_model.h."""
    _fields_ = [("name", ctypes.c_char_p), ("dtype", ctypes.c_uint8), ("role", ctypes.c_uint8),
                ("count", ctypes.c_size_t), ("data", ctypes.c_void_p), ("scale", ctypes.POINTER(_CScale))]


# -- the order and the specification ------------------------------------------------------------------

def local_order(n: int, steps: int, seed: int, batch_size: int = 1) -> np.ndarray:
    """Which of ``n`` samples ``steps`` steps of ``batch_size`` train on (step ``s``: entries
    ``s*B .. s*B+B-1``): the trainer's seeded permutations (:func:`tintin.train.epoch_order`),
    concatenated."""
    from ..targets.ondevice import training_order

    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise DeviceClientError(f"steps must be an integer >= 1, got {steps!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise DeviceClientError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    if n < 1:
        raise DeviceClientError("a local update needs at least one sample")
    return training_order(int(n), int(steps), int(batch_size), int(seed))[0]


def _checked(model: Sequential, x, y, steps: int, seed: int, order, batch_size: int = 1):
    x = check_samples(model, x, "local samples")
    y = check_labels(model, y, len(x), "local labels")
    if order is None:
        order = local_order(len(x), steps, seed, batch_size)
    else:
        local_order(1, steps, 0, batch_size)  # the same checks of steps and batch size
        need = steps * batch_size
        order = np.asarray(order, dtype=np.int64).ravel()
        if len(order) < need:
            raise DeviceClientError(f"{steps} steps of batch {batch_size} need {need} sample indices, the order "
                                    f"has {len(order)}")
        order = order[:need]
        if order.size and (order.min() < 0 or order.max() >= len(x)):
            raise DeviceClientError(f"the order refers to samples outside [0, {len(x)})")
    return x, y, order


def _target_exponent(model: Sequential, target_exponent: int | None) -> int:
    if model.loss == "mse" and target_exponent is None:
        raise DeviceClientError("a regression model trains on int8 targets: give target_exponent")
    return 0 if target_exponent is None else int(target_exponent)


def simulate_local_update(model: Sequential, x, y, *, steps: int, seed: int = 0, optim: OptimConfig | None = None,
                          update: str = "full", target_exponent: int | None = None, order=None,
                          batch_size: int = 1) -> Sequential:
    """The local update on the simulator (the specification): a copy of ``model`` after ``steps``
    :func:`tintin.train.train_step` calls, step ``s`` on the samples ``order[s*B:(s+1)*B]``
    (``B = batch_size``). ``model`` is not changed."""
    x, y, order = _checked(model, x, y, steps, seed, order, batch_size)
    te = _target_exponent(model, target_exponent)
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.momentum = None
    apply_update_selection(m, parse_update(update))
    sgd = IntegerSGD(m.parameters(), optim or OptimConfig(), m.config.scale_mode)
    ctx = Context(mode=m.config.scale_mode, training=True, stream=RoundingStream(int(seed)))
    for s in range(steps):
        idx = order[s * batch_size:(s + 1) * batch_size]
        train_step(m, sgd, x[idx], y[idx], ctx, target_exponent=te)
    return m


def same_parameters(a: Sequential, b: Sequential) -> list[str]:
    """Names of the parameters whose mantissas, dtype or scale differ (empty: bit-identical)."""
    out = []
    for p, q in zip(a.parameters(), b.parameters()):
        if (p.name != q.name or p.value.m.dtype != q.value.m.dtype or p.value.m.tobytes() != q.value.m.tobytes()
                or p.value.scale != q.value.scale):
            out.append(p.name)
    if len(a.parameters()) != len(b.parameters()):
        out.append("(parameter count)")
    return out


def _program_options(model: Sequential, target_exponent: int | None) -> CompileOptions:
    return CompileOptions(target_exponent=_target_exponent(model, target_exponent))


def _frozen_bytes(model: Sequential, update: str) -> bytes:
    """The bytes of the parameters the update does not train (they are built into the program)."""
    m = copy.deepcopy(model)
    apply_update_selection(m, parse_update(update))
    parts = []
    for p in m.parameters():
        if not p.trainable or p.trainable_rows is not None:
            parts += [p.name.encode(), p.value.m.tobytes(), repr(p.value.scale.as_tuple()).encode()]
    return b"\0".join(parts)


def _with_parameters(model: Sequential, values: dict) -> Sequential:
    """A copy of ``model`` whose parameters named in ``values`` take ``(mantissas, (S, U, D))``."""
    m = copy.deepcopy(model)
    for p in m.parameters():
        if p.name in values:
            arr, scale = values[p.name]
            p.assign(QTensor(np.asarray(arr, dtype=p.value.m.dtype).reshape(p.value.m.shape).copy(), Scale(*scale)))
        p.momentum = None
    return m


def _architecture(model: Sequential) -> tuple:
    return (model.name, model.loss, tuple(model.input_shape), model.input_exponent,
            tuple((p.name, p.value.m.shape, str(p.value.m.dtype)) for p in model.parameters()))


# -- the generated C on the host, through ctypes ------------------------------------------------------

class HostProgramClient:
    """The generated C training program of ``model``'s architecture, built for the host as a
    shared library and called through ``ctypes`` (see the module docstring).

    ``optim``, ``update`` and ``target_exponent`` are compiled into the program. The program is
    generated on first use and again only when the frozen parameters change; its library is
    compiled into ``cache_dir`` (default :func:`default_cache_dir`) under a hash of its sources, so
    other clients and other processes with the same program load it without compiling. One client
    serves any number of devices of one architecture. Calls are serialised (a program's arena is
    one global of its library).
    Raises :class:`tintin.codegen.CodegenError` for a model the generator cannot handle and
    :class:`tintin.targets.TargetError` when no host C compiler works."""

    def __init__(self, model: Sequential, *, optim: OptimConfig | None = None, update: str = "full",
                 target_exponent: int | None = None, batch_size: int = 1, cache_dir=None):
        parse_update(update)
        local_order(1, 1, 0, batch_size)  # checks batch_size
        self.batch_size = int(batch_size)
        self.template = copy.deepcopy(model)
        self.optim = optim or OptimConfig()
        self.update = update
        self.target_exponent = target_exponent
        self.options = _program_options(model, target_exponent)
        self._tmp = tempfile.TemporaryDirectory(prefix="tintin-client-")
        self.work_dir = Path(self._tmp.name)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self._lib = None
        self._key = None
        self._label_dtype = None
        self.generated = 0  #: programs generated (one per architecture and frozen parameters)
        self.builds = 0  #: libraries compiled (not found in the cache)

    def _build(self, model: Sequential) -> None:
        from ..codegen import generate_project
        from ..codegen.project import EXTRA_CFLAGS, TARGET_CFLAGS
        from ..targets import build_shared

        frozen = _frozen_bytes(model, self.update)
        key = hashlib.sha256(json.dumps(model.spec(), sort_keys=True).encode() + b"\0" + frozen).hexdigest()
        if key == self._key:
            return
        self.generated += 1
        project = generate_project(model, self.work_dir / f"project-{self.generated}", update=self.update,
                                   batch_size=self.batch_size, optim=self.optim, options=self.options, example=False)
        flags = [*EXTRA_CFLAGS, *TARGET_CFLAGS.get("host", ())]
        digest = hashlib.sha256(" ".join(flags).encode())
        for f in sorted(project.out_dir.rglob("*.[ch]")):
            digest.update(f.relative_to(project.out_dir).as_posix().encode() + b"\0" + f.read_bytes())
        lib_dir = self.cache_dir / digest.hexdigest()[:20]
        lib_path = lib_dir / "libtt_client.so"
        if not lib_path.exists():
            lib_dir.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=lib_dir))
            try:
                built = build_shared(project.sources, tmp, include_dirs=project.include_dirs, name="libtt_client",
                                     extra_cflags=flags)
                os.replace(built.elf_path, lib_path)  # atomic: a concurrent builder never sees half a library
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            self.builds += 1
        lib = ctypes.CDLL(str(lib_path))
        lib.tt_init.argtypes = [ctypes.c_uint32]
        lib.tt_init.restype = None
        lib.tt_set_stream.argtypes = [ctypes.c_uint32, ctypes.c_uint32]
        lib.tt_set_stream.restype = None
        lib.tt_train_step.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
        lib.tt_train_step.restype = ctypes.c_int
        lib.tt_param_get.argtypes = [ctypes.c_size_t, ctypes.POINTER(_CParamInfo)]
        lib.tt_param_get.restype = ctypes.c_int
        self._entries = project.model.params
        self._label_dtype = np.dtype(project.program.buffers["labels"].dtype)
        self._lib, self._key = lib, key
        shutil.rmtree(project.out_dir, ignore_errors=True)

    def _info(self, index: int) -> _CParamInfo:
        info = _CParamInfo()
        if self._lib.tt_param_get(index, ctypes.byref(info)) != _TT_OK:
            raise DeviceClientError(f"tt_param_get({index}) failed")
        return info

    def local_update(self, model: Sequential, x, y, *, steps: int, seed: int = 0, order=None) -> Sequential:
        """A copy of ``model`` after ``steps`` steps of the C program at the client's batch size
        (the bits of :func:`simulate_local_update` with this client's settings). ``model`` must
        have the architecture the client was made for."""
        if _architecture(model) != _architecture(self.template):
            raise DeviceClientError(f"model {model.name!r} has another architecture than the client's "
                                    f"{self.template.name!r}")
        x, y, order = _checked(model, x, y, steps, seed, order, self.batch_size)
        with _LIBRARY_LOCK:
            self._build(model)
            lib = self._lib
            lib.tt_init(ctypes.c_uint32(int(seed) & 0xFFFFFFFF))
            params = {p.name: p for p in model.parameters()}
            for e in self._entries:
                if e.role != _ROLE_TRAINED:
                    continue
                info = self._info(e.index)
                value = params[e.name].value
                src = np.ascontiguousarray(value.m, dtype=_DTYPES[info.dtype])
                if src.size != info.count:
                    raise DeviceClientError(f"{e.name}: {src.size} values, the program holds {info.count}")
                ctypes.memmove(info.data, src.ctypes.data, src.nbytes)
                info.scale.contents.S, info.scale.contents.U, info.scale.contents.D = value.scale.as_tuple()
            lib.tt_set_stream(ctypes.c_uint32(int(seed) & 0xFFFFFFFF), 0)
            xs = np.ascontiguousarray(x.reshape(len(x), -1), dtype=np.int8)
            ys = np.ascontiguousarray(np.asarray(y).reshape(len(x), -1), dtype=self._label_dtype)
            for s in range(steps):
                idx = order[s * self.batch_size:(s + 1) * self.batch_size]
                xb, yb = np.ascontiguousarray(xs[idx]), np.ascontiguousarray(ys[idx])
                status = lib.tt_train_step(xb.ctypes.data, yb.ctypes.data)
                if status not in (_TT_OK, _TT_ERR_OVERFLOW):
                    raise DeviceClientError(f"tt_train_step returned status {status} at step {s}")
            values = {}
            for e in self._entries:
                if e.role != _ROLE_TRAINED:
                    continue
                info = self._info(e.index)
                dtype = _DTYPES[info.dtype]
                buf = (ctypes.c_char * (info.count * np.dtype(dtype).itemsize)).from_address(info.data)
                arr = np.frombuffer(bytes(buf), dtype=dtype)
                sc = info.scale.contents
                values[e.name] = (arr, (int(sc.S), int(sc.U), int(sc.D)))
        return _with_parameters(model, values)


# -- an emulated microcontroller ------------------------------------------------------------------------

def local_update_on_target(model: Sequential, x, y, *, target: str, steps: int, seed: int = 0,
                           optim: OptimConfig | None = None, update: str = "full",
                           target_exponent: int | None = None, order=None, batch_size: int = 1, work_dir=None,
                           timeout_s: float = 300.0) -> Sequential:
    """The local update run on ``target`` (e.g. ``"cortex-m0"`` in QEMU): the program of ``model``
    with its weights and the samples the steps read embedded, built, run, and the final trained
    parameters read from the device's output. Raises the :mod:`tintin.targets` errors (missing
    toolchain, build or run failure; all ``TintinError``)."""
    from ..codegen import compile_for_codegen, generate_project
    from ..codegen.driver import render_driver
    from ..codegen.project import EXTRA_CFLAGS, MAKE_TARGETS, TARGET_CFLAGS
    from ..targets import build, run
    from ..targets.compare import parse_output
    from ..targets.errors import DeviceRunError, ToolchainMissingError
    from ..targets.ondevice import select_samples
    from ..targets.toolchain import toolchain_status

    x, y, order = _checked(model, x, y, steps, seed, order, batch_size)
    ok, reason = toolchain_status(target)
    if not ok:
        raise ToolchainMissingError(reason)
    xs, ys, local = select_samples(x, y, order, steps, batch_size)
    m = copy.deepcopy(model)
    for p in m.parameters():
        p.momentum = None
    optim = optim or OptimConfig()
    with tempfile.TemporaryDirectory(prefix="tintin-client-") as tmp:
        work = Path(work_dir if work_dir is not None else tmp)
        program, plan, eval_program = compile_for_codegen(m, update, batch_size, optim,
                                                          _program_options(m, target_exponent))
        project = generate_project(m, work / "project", program=program, plan=plan, eval_program=eval_program,
                                   target=target if target in MAKE_TARGETS else "host", example=False)
        drv = render_driver(project.model, x_samples=xs, y_samples=ys, order=local, steps=steps, batch_size=batch_size,
                            seed=int(seed), dump=True)
        ddir = work / "project" / "driver"
        ddir.mkdir(parents=True, exist_ok=True)
        for name, text in drv.items():
            (ddir / name).write_text(text)
        built = build(target, [*project.sources, ddir / "tt_driver.c", ddir / "tt_driver_data.c"], work / "build",
                      include_dirs=[*project.include_dirs, ddir], name="client",
                      extra_cflags=[*EXTRA_CFLAGS, *TARGET_CFLAGS.get(target, ())])
        res = run(target, built, timeout_s=timeout_s)
    dev = parse_output(res.stdout, program.loss == "cross_entropy")
    if not dev.complete or len(dev.steps) != steps:
        raise DeviceRunError(f"{target}: the device reported {len(dev.steps)} of {steps} steps"
                             + ("" if dev.complete else " and stopped before END"))
    bad = [s for s in dev.steps if s[0] not in (_TT_OK, _TT_ERR_OVERFLOW)]
    if bad:
        raise DeviceClientError(f"{target}: a training step returned status {bad[0][0]}")
    values = {}
    for e in project.model.params:
        if e.role != _ROLE_TRAINED:
            continue
        if e.index not in dev.dumps or e.index not in dev.params:
            raise DeviceRunError(f"{target}: parameter {e.name} missing from the device output")
        dtype = _DTYPES[dev.params[e.index]["dtype"]]
        values[e.name] = (np.frombuffer(dev.dumps[e.index], dtype=np.dtype(dtype).newbyteorder("<")).astype(dtype),
                          dev.params[e.index]["scale"])
    return _with_parameters(model, values)
