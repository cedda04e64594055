"""The training state a generated program saves to flash, and the slot format of ``tt_checkpoint.c``.

A project generated with ``checkpoint=True`` (:func:`tintin.codegen.generate_project`) has
``tt_checkpoint_save(const tt_flash_ops_t *)`` and ``tt_checkpoint_restore(...)``. The state they
save is the same training state :class:`tintin.train.checkpoint.FitCheckpointer` keeps on the host,
as the device holds it (:func:`state_regions`, in this order):

* every trained parameter's mantissas, every momentum buffer and the row exponents of trained
  row-scaled weights (little-endian, as in memory);
* the scales of all parameters (``S, U, D`` as int16, table order);
* the rounding stream (seed, step), the number of steps done (the data-order position: step ``i``
  reads the ``i``-th batch of the firmware's order) and the epoch (the learning-rate and NITI
  ``mu`` schedule position).

:func:`model_hash` is the 32-bit identity of the architecture, the plan and the training settings
(a slot of another model is never loaded). :func:`parse_slot` reads one slot of a flash image
with the same rules as the C (docs/file-format.md, "Training state in flash").

>>> import zlib
>>> from tintin.codegen.checkpoint import crc32
>>> crc32(b"123456789") == zlib.crc32(b"123456789") == 0xCBF43926
True
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass

from .model_c import ROLE_FROZEN, ROLE_TRAINED, state_entries

MAGIC = 0x4B435454
COMMIT_MAGIC = 0x4D435454
VERSION = 1
HEADER_BYTES = 32
COMMIT_BYTES = 16
#: bytes per program call of the C (TT_CKPT_BUFFER_BYTES)
BUFFER_BYTES = 64

_ITEM = {"int8": 1, "int16": 2, "int32": 4, "int64": 8, "uint8": 1}


def crc32(data: bytes, crc: int = 0) -> int:
    """CRC-32 as ``tt_crc32`` computes it (zlib's)."""
    return zlib.crc32(data, crc) & 0xFFFFFFFF


@dataclass(frozen=True)
class StateRegion:
    """One piece of the saved state: its name, the C expression of its address, its bytes."""

    name: str
    c_expr: str
    nbytes: int


def state_regions(entries, address) -> list[StateRegion]:
    """The regions of the state, from the parameter table ``entries``
    (:class:`tintin.codegen.model_c.ParamEntry`); ``address(name)`` is the C address of a buffer."""
    out = [StateRegion(e.name, address(e.name), e.count * _ITEM[e.dtype]) for e in state_entries(entries)]
    scaled = [e for e in entries if e.role in (ROLE_TRAINED, ROLE_FROZEN)]
    out += [StateRegion("scales", "(void *)&tt_pscale", 6 * len(scaled)),
            StateRegion("stream", "(void *)&tt_stream", 8),
            StateRegion("steps", "(void *)&tt_steps_done", 4),
            StateRegion("epoch", "(void *)&tt_epoch", 4)]
    return out


def state_payload(entries, values: dict, *, seed: int, steps: int, epoch: int) -> bytes:
    """The payload a device saves, built from the host's state: ``values`` maps each table entry's
    index to ``(scale (S, U, D) or None, little-endian bytes)`` (as
    :func:`tintin.targets.compare.simulate` returns them), the rounding stream is ``(seed, steps)``
    after ``steps`` training steps, at ``epoch``."""
    out = [values[e.index][1] for e in state_entries(entries)]
    out += [struct.pack("<hhh", *values[e.index][0]) for e in entries if e.role in (ROLE_TRAINED, ROLE_FROZEN)]
    out.append(struct.pack("<IIII", seed & 0xFFFFFFFF, steps & 0xFFFFFFFF, steps & 0xFFFFFFFF, epoch & 0xFFFFFFFF))
    return b"".join(out)


def model_hash(program, plan, regions) -> int:
    """CRC-32 of the canonical description of what a saved state belongs to: the model's name,
    input shape and loss, the update selection, batch size, scale mode and optimiser settings,
    every persistent buffer (name, type, shape, arena offset) and the state's regions."""
    persistent = [(n, b.dtype, list(b.shape), int(plan.offsets[n])) for n, b in program.buffers.items()
                  if b.persistent and b.memory.value == "sram"]
    desc = {"format": f"tintin-checkpoint-{VERSION}", "model": program.model_name,
            "input_shape": list(program.input_shape), "loss": program.loss, "update": program.update,
            "batch_size": program.batch_size, "scale_mode": str(getattr(program.scale_mode, "value",
                                                                        program.scale_mode)),
            "optim": repr(program.optim), "buffers": persistent,
            "regions": [(r.name, r.nbytes) for r in regions]}
    return crc32(json.dumps(desc, sort_keys=True).encode())


def _align(v: int, a: int) -> int:
    return -(-v // a) * a


@dataclass(frozen=True)
class SlotLayout:
    payload_offset: int
    commit_offset: int
    slot_bytes: int
    slots: int


def layout(region_bytes: int, page_size: int, write_align: int, payload_bytes: int) -> SlotLayout:
    """The slot layout ``tt_ckpt_layout`` computes (``slots`` may be < 2: the C refuses that)."""
    payload_offset = _align(HEADER_BYTES, write_align)
    commit_offset = _align(payload_offset + payload_bytes, max(16, write_align))
    slot = _align(commit_offset + _align(COMMIT_BYTES, write_align), page_size)
    return SlotLayout(payload_offset, commit_offset, slot, region_bytes // slot)


@dataclass(frozen=True)
class Slot:
    """What :func:`parse_slot` found: ``valid`` when header, commit record and payload check out."""

    valid: bool
    sequence: int
    model_hash: int
    payload: bytes
    reason: str


def parse_slot(image: bytes, index: int, lay: SlotLayout, payload_bytes: int, model_hash_: int | None = None) -> Slot:
    """Slot ``index`` of a flash ``image`` (the region's bytes), checked as ``tt_ckpt_restore`` does."""
    base = index * lay.slot_bytes
    h = image[base:base + HEADER_BYTES]
    magic, ver, hbytes, mhash, seq, length, pcrc, slot_bytes, hcrc = struct.unpack("<IHHIIIIII", h)
    payload = image[base + lay.payload_offset:base + lay.payload_offset + payload_bytes]
    c = image[base + lay.commit_offset:base + lay.commit_offset + COMMIT_BYTES]
    cmagic, cseq, chcrc, ccrc = struct.unpack("<IIII", c)
    checks = [(magic == MAGIC, "no header"), (ver == VERSION and hbytes == HEADER_BYTES, "format version"),
              (hcrc == crc32(h[:28]), "header CRC"), (seq != 0, "sequence 0"),
              (model_hash_ is None or mhash == model_hash_, "another model"),
              (length == payload_bytes and slot_bytes == lay.slot_bytes, "another layout"),
              (cmagic == COMMIT_MAGIC and cseq == seq and chcrc == hcrc and ccrc == crc32(c[:12]), "no commit record"),
              (pcrc == crc32(payload), "payload CRC")]
    for ok, why in checks:
        if not ok:
            return Slot(False, seq, mhash, payload, why)
    return Slot(True, seq, mhash, payload, "")
