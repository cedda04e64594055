"""ctypes bindings of tt_checkpoint.c and the flash simulator (tt_flashsim.c) for the tests."""

from __future__ import annotations

import ctypes

import numpy as np

from tintin.codegen import RUNTIME_DIR
from tintin.targets import FILES_DIR, build_shared

BASE = 0x08040000
TT_OK, TT_ERR_ARG, TT_ERR_IO, TT_ERR_NO_STATE = 0, 3, 5, 6
CUT_BEFORE, CUT_AFTER, CUT_TORN = 1, 2, 3


class FlashOps(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("base", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("page_size", ctypes.c_uint32), ("write_align", ctypes.c_uint32), ("erase_page", ctypes.c_void_p),
                ("program", ctypes.c_void_p), ("read", ctypes.c_void_p)]


class Region(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("bytes", ctypes.c_uint32)]


class FlashSim(ctypes.Structure):
    _fields_ = [("mem", ctypes.c_void_p), ("base", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("page_size", ctypes.c_uint32), ("write_align", ctypes.c_uint32), ("ops", ctypes.c_uint32),
                ("erases", ctypes.c_uint32), ("programs", ctypes.c_uint32), ("bytes_programmed", ctypes.c_uint32),
                ("misuse", ctypes.c_uint32), ("cut_at", ctypes.c_uint32), ("cut_kind", ctypes.c_uint8),
                ("powered", ctypes.c_uint8), ("rng", ctypes.c_uint32)]


def load(out_dir) -> ctypes.CDLL:
    built = build_shared([RUNTIME_DIR / "tt_checkpoint.c", FILES_DIR / "tt_flashsim.c"], out_dir,
                         include_dirs=[RUNTIME_DIR], name="libcheckpoint", extra_cflags=["-Werror", "-pedantic"])
    lib = ctypes.CDLL(str(built.elf_path))
    u32, p = ctypes.c_uint32, ctypes.c_void_p
    lib.tt_crc32.argtypes, lib.tt_crc32.restype = [u32, p, u32], u32
    for name in ("tt_ckpt_save", "tt_ckpt_restore"):
        getattr(lib, name).argtypes = [ctypes.POINTER(FlashOps), u32, ctypes.POINTER(Region), u32]
        getattr(lib, name).restype = ctypes.c_int
    lib.tt_ckpt_newest.argtypes = [ctypes.POINTER(FlashOps), u32, u32, ctypes.POINTER(u32), ctypes.POINTER(u32)]
    lib.tt_ckpt_newest.restype = ctypes.c_int
    lib.tt_flashsim_init.argtypes = [ctypes.POINTER(FlashSim), p, u32, u32, u32, u32]
    lib.tt_flashsim_ops.argtypes = [ctypes.POINTER(FlashSim), ctypes.POINTER(FlashOps)]
    lib.tt_flashsim_power_on.argtypes = [ctypes.POINTER(FlashSim)]
    lib.tt_flashsim_arm.argtypes = [ctypes.POINTER(FlashSim), u32, ctypes.c_uint8, u32]
    lib.tt_flashsim_flip.argtypes = [ctypes.POINTER(FlashSim), u32, ctypes.c_uint8]
    lib.tt_flashsim_sizeof.restype = u32
    return lib


class Flash:
    """A simulated flash region and the state regions saved into it."""

    def __init__(self, lib, size: int, page: int, align: int):
        self.lib = lib
        self.mem = np.zeros(size, dtype=np.uint8)
        self.sim = FlashSim()
        self.ops = FlashOps()
        lib.tt_flashsim_init(ctypes.byref(self.sim), self.mem.ctypes.data, BASE, size, page, align)
        lib.tt_flashsim_ops(ctypes.byref(self.sim), ctypes.byref(self.ops))

    @staticmethod
    def regions(arrays):
        table = (Region * max(len(arrays), 1))()
        for i, a in enumerate(arrays):
            table[i].data = a.ctypes.data if a.size else None
            table[i].bytes = a.size
        return table

    def save(self, model_hash: int, arrays) -> int:
        return self.lib.tt_ckpt_save(ctypes.byref(self.ops), model_hash, self.regions(arrays), len(arrays))

    def restore(self, model_hash: int, arrays) -> int:
        return self.lib.tt_ckpt_restore(ctypes.byref(self.ops), model_hash, self.regions(arrays), len(arrays))

    def power_on(self) -> None:
        self.lib.tt_flashsim_power_on(ctypes.byref(self.sim))

    def arm(self, at: int, kind: int, seed: int) -> None:
        self.lib.tt_flashsim_arm(ctypes.byref(self.sim), at, kind, seed)

    def flip(self, offset: int, bit: int) -> None:
        self.lib.tt_flashsim_flip(ctypes.byref(self.sim), offset, bit)

    def ops_of_save(self, model_hash: int, arrays) -> int:
        """Flash operations of a clean save of ``arrays`` (the flash is left as it was)."""
        before = self.mem.copy()
        self.power_on()
        assert self.save(model_hash, arrays) == TT_OK
        n = self.sim.ops
        self.mem[:] = before
        self.power_on()
        return n
