"""Device profiles: real microcontrollers described by data files, with their sources.

Each ``devices/<name>.toml`` describes one part: memory, clock, FPU, supply voltage and active
current per MHz, the tintin target that runs its code, and a datasheet citation for every
number. ``devices/cores.toml`` holds per-core cycle tables for latency estimates. See
``docs/targets.md`` for the format.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import MappingProxyType

from tintin.targets.errors import DeviceProfileError, UnknownDeviceError
from tintin.targets.registry import TARGETS

DEVICES_DIR = Path(__file__).resolve().parent / "devices"
CORES_FILE = DEVICES_DIR / "cores.toml"

CITED_FIELDS = ("sram_bytes", "flash_bytes", "clock_hz", "fpu", "supply_voltage_v",
                "active_current_ua_per_mhz")
"""Fields that need a citation in the profile's ``[sources]`` table."""

INSTRUCTION_CLASSES = ("alu", "mul", "load", "store", "branch_taken", "branch_not_taken",
                       "call_return")
"""Instruction classes of a core's cycle table and typical mix."""


@dataclass(frozen=True)
class CoreProfile:
    """Instruction timing of a CPU core, for latency ESTIMATES.

    Attributes:
        name: key in ``cores.toml``, e.g. ``"cortex-m0plus"``.
        title: one line.
        cycles: instruction class -> cycles (see ``INSTRUCTION_CLASSES``).
        typical_mix: instruction class -> assumed fraction of executed instructions (sums to 1).
        source: the reference manual section the cycle table comes from.
        verified: True when the figures were checked against the cited document.
        notes: caveats (wait states, multi-cycle instructions).
    """

    name: str
    title: str
    cycles: Mapping[str, float]
    typical_mix: Mapping[str, float]
    source: str
    verified: bool
    notes: str

    @property
    def average_cpi(self) -> float:
        """ESTIMATE of cycles per instruction: ``sum(typical_mix[c] * cycles[c])``."""
        return sum(self.typical_mix[c] * self.cycles[c] for c in INSTRUCTION_CLASSES)


@dataclass(frozen=True)
class DeviceProfile:
    """One microcontroller part.

    Attributes:
        name: file stem, e.g. ``"rp2040"``.
        title: vendor and part name.
        core: the core's key in ``cores.toml``; ``core_profile`` is that entry.
        emulator_target: tintin target that runs this part's code, or None if there is none.
        sram_bytes, flash_bytes: on-chip SRAM and code memory (flash/FRAM), in bytes.
        clock_hz: maximum core clock, in Hz.
        fpu: True when the core has a hardware floating-point unit.
        supply_voltage_v: supply voltage the current figure refers to, in volts.
        active_current_ua_per_mhz: active-mode current per MHz of core clock, in microamps/MHz.
        estimated: names of fields that are estimates rather than datasheet values.
        verified: True when the numbers were checked against the cited datasheet.
        datasheet_title, datasheet_revision: the main document.
        sources: field name -> citation (document, section / table).
        notes: caveats.
        path: the profile file.
    """

    name: str
    title: str
    core: str
    core_profile: CoreProfile
    emulator_target: str | None
    sram_bytes: int
    flash_bytes: int
    clock_hz: int
    fpu: bool
    supply_voltage_v: float
    active_current_ua_per_mhz: float
    estimated: frozenset[str]
    verified: bool
    datasheet_title: str
    datasheet_revision: str
    sources: Mapping[str, str]
    notes: str
    path: Path

    @property
    def energy_per_cycle_j(self) -> float:
        """Active energy per core clock cycle in joules: V * (uA/MHz) * 1e-12 (an ESTIMATE:
        datasheet currents are measured on benchmark code, not on our kernels)."""
        return self.supply_voltage_v * self.active_current_ua_per_mhz * 1e-12

    def active_power_w(self, clock_hz: int | None = None) -> float:
        """Active power in watts at ``clock_hz`` (default: ``self.clock_hz``)."""
        f = self.clock_hz if clock_hz is None else clock_hz
        return self.energy_per_cycle_j * f

    def estimate_cycles(self, instructions: int) -> float:
        """ESTIMATE of core cycles for ``instructions`` executed, via the core's average CPI."""
        return instructions * self.core_profile.average_cpi

    def estimate_seconds(self, cycles: float, clock_hz: int | None = None) -> float:
        """Seconds for ``cycles`` at ``clock_hz`` (default: the maximum clock)."""
        return cycles / (self.clock_hz if clock_hz is None else clock_hz)

    def estimate_energy_j(self, cycles: float) -> float:
        """ESTIMATE of active energy in joules for ``cycles`` core cycles."""
        return cycles * self.energy_per_cycle_j


def _err(path: Path, field: str, problem: str) -> DeviceProfileError:
    return DeviceProfileError(f"{path.name}: field '{field}' {problem}")


def _get(data: Mapping, path: Path, field: str, kind: type | tuple[type, ...],
         prefix: str = "") -> object:
    name = prefix + field
    if field not in data:
        raise _err(path, name, "is missing")
    value = data[field]
    # bool is an int subclass: keep them apart
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise _err(path, name, f"must be {_kind_name(kind)}, not a boolean")
    if not isinstance(value, kind):
        raise _err(path, name, f"must be {_kind_name(kind)}, not {type(value).__name__}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a table"}
    return " or ".join(dict.fromkeys(names.get(k, k.__name__) for k in kinds))


def _read_toml(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise DeviceProfileError(f"{path.name}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise DeviceProfileError(f"{path.name}: cannot read: {exc.strerror}") from None


def _class_table(data: Mapping, path: Path, field: str) -> dict[str, float]:
    table = _get(data, path, field, dict)
    out = {}
    for c in INSTRUCTION_CLASSES:
        v = _get(table, path, c, (int, float), prefix=field + ".")
        if not math.isfinite(v) or v < 0:
            raise _err(path, f"{field}.{c}", f"must be a finite number >= 0, not {v}")
        out[c] = float(v)
    extra = set(table) - set(INSTRUCTION_CLASSES)
    if extra:
        raise _err(path, f"{field}.{sorted(extra)[0]}", "is not an instruction class "
                   f"(valid: {', '.join(INSTRUCTION_CLASSES)})")
    return out


def load_cores(path: Path = CORES_FILE) -> dict[str, CoreProfile]:
    """Read ``cores.toml``: core key -> ``CoreProfile``.

    Raises:
        DeviceProfileError: malformed file (names the file and field).
    """
    data = _read_toml(path)
    cores = {}
    for key, entry in data.items():
        if not isinstance(entry, dict):
            raise _err(path, key, "must be a table")
        cycles = _class_table(entry, path, "cycles")
        mix = _class_table(entry, path, "typical_mix")
        if abs(sum(mix.values()) - 1.0) > 1e-6:
            raise _err(path, f"{key}.typical_mix", f"fractions must sum to 1, not "
                       f"{sum(mix.values()):.4f}")
        if any(v <= 0 for v in cycles.values()):
            raise _err(path, f"{key}.cycles", "every class needs a positive cycle count")
        cores[key] = CoreProfile(
            name=key, title=_get(entry, path, "title", str, key + "."),
            cycles=MappingProxyType(cycles), typical_mix=MappingProxyType(mix),
            source=_get(entry, path, "source", str, key + "."),
            verified=_get(entry, path, "verified", bool, key + "."),
            notes=str(entry.get("notes", "")))
    return cores


def parse_device(path: str | Path, cores: Mapping[str, CoreProfile] | None = None
                 ) -> DeviceProfile:
    """Read and validate one device profile file.

    Raises:
        DeviceProfileError: missing field, wrong type, non-positive size, missing citation,
            unknown core or emulator target; the message names the file and the field.
    """
    path = Path(path)
    data = _read_toml(path)
    cores = load_cores() if cores is None else cores

    name = _get(data, path, "name", str)
    if name != path.stem:
        raise _err(path, "name", f"must match the file name ({path.stem!r}), not {name!r}")
    core = _get(data, path, "core", str)
    if core not in cores:
        raise _err(path, "core", f"names unknown core {core!r} (known: {', '.join(cores)})")
    target = _get(data, path, "emulator_target", str)
    if target != "none" and target not in TARGETS:
        raise _err(path, "emulator_target", f"names unknown target {target!r} "
                   f"(valid: {', '.join(TARGETS)}, or \"none\")")
    ints = {}
    for field in ("sram_bytes", "flash_bytes", "clock_hz"):
        v = _get(data, path, field, int)
        if v <= 0:
            raise _err(path, field, f"must be positive, not {v}")
        ints[field] = v
    floats = {}
    for field in ("supply_voltage_v", "active_current_ua_per_mhz"):
        v = _get(data, path, field, (int, float))
        if not math.isfinite(v) or v <= 0:
            raise _err(path, field, f"must be a positive number, not {v}")
        floats[field] = float(v)
    fpu = _get(data, path, "fpu", bool)
    verified = _get(data, path, "verified", bool)
    estimated = _get(data, path, "estimated", list)
    for e in estimated:
        if e not in CITED_FIELDS:
            raise _err(path, "estimated", f"lists {e!r}, which is not one of "
                       f"{', '.join(CITED_FIELDS)}")
    sheet = _get(data, path, "datasheet", dict)
    sources = _get(data, path, "sources", dict)
    for field in CITED_FIELDS:
        citation = _get(sources, path, field, str, prefix="sources.")
        if not citation.strip():
            raise _err(path, f"sources.{field}", "must not be empty")
    return DeviceProfile(
        name=name, title=_get(data, path, "title", str), core=core, core_profile=cores[core],
        emulator_target=None if target == "none" else target, fpu=fpu, verified=verified,
        estimated=frozenset(estimated),
        datasheet_title=_get(sheet, path, "title", str, "datasheet."),
        datasheet_revision=_get(sheet, path, "revision", str, "datasheet."),
        sources=MappingProxyType(dict(sources)), notes=str(data.get("notes", "")), path=path,
        **ints, **floats)


def list_devices() -> list[str]:
    """Names of the bundled device profiles, sorted."""
    return sorted(p.stem for p in DEVICES_DIR.glob("*.toml") if p != CORES_FILE)


@cache
def _load_bundled(name: str) -> DeviceProfile:
    return parse_device(DEVICES_DIR / f"{name}.toml")


def load_device(name: str) -> DeviceProfile:
    """Load the bundled profile called ``name`` (e.g. ``"rp2040"``).

    Raises:
        UnknownDeviceError: no such profile; the message lists the valid names.
        DeviceProfileError: the profile file is malformed.
    """
    names = list_devices()
    if not isinstance(name, str) or name not in names:
        raise UnknownDeviceError(f"unknown device {name!r}; valid devices: {', '.join(names)}")
    return _load_bundled(name)
