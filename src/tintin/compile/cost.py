"""Cost model of a training program: MACs, memory traffic, flash, and latency / energy ESTIMATES.

Counts (exact for the IR as compiled):

* ``macs``: int8 x int8 multiply-accumulates of each step (whole batch), including the extra
  passes the program chose (recomputed accumulators, NITI's two-pass tiled update).
* ``elementwise``: other per-element integer operations (rescaling, masking, pooling, update
  arithmetic): an order-of-magnitude count from the lowering.
* traffic: bytes a step reads (inputs, mutated buffers) and writes (outputs, mutated buffers), plus
  its workspaces written and read once; a tiled weight update reads the layer input once per tile.

Estimates (labelled as such everywhere; emulator measurements replace them later):

* instructions = ``macs * per_mac + elementwise * per_elementwise`` from
  :data:`INSTRUCTIONS_PER_OP`, a per-core guess of what portable C compiles to (an int8 MAC in a
  loop: two sign-extending loads, a multiply-add and loop overhead on ARMv7-M; a 32-bit add is four
  instructions on an 8-bit AVR);
* cycles = instructions x the core's average CPI (the device profile's core table and typical
  mix); seconds at the device clock; energy = cycles x supply voltage x active current per MHz;
* flash = frozen parameters + initial values of trained parameters (copied to SRAM at start) +
  integer tables + a code-size guess per kernel and per step (:data:`CODE_BYTES`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .ir import BufferKind, Memory, Phase, TrainingProgram
from .planner import MemoryPlan

#: ESTIMATE: instructions per int8 MAC and per element-wise operation, by core (portable C, -O2)
INSTRUCTIONS_PER_OP: dict[str, tuple[float, float]] = {
    "cortex-m0plus": (6.0, 10.0),  # no MLA, register-offset LDRSB only
    "cortex-m0": (6.0, 10.0),
    "cortex-m3": (4.5, 8.0),  # LDRSB x2, MLA, amortised loop overhead
    "cortex-m4": (4.5, 8.0),  # portable C: the DSP dual MAC (SMLAD) is not used
    "avr8": (15.0, 30.0),  # MULS, 32-bit accumulate in four adds, sign extension, loads
    "msp430x": (10.0, 16.0),  # MPY32 peripheral: operand writes, result reads
}
DEFAULT_INSTRUCTIONS_PER_OP = (5.0, 10.0)

#: ESTIMATE: code bytes of the runtime core, of each distinct kernel, and of each step's call
CODE_BYTES = {"runtime": 2048, "per_kernel": 512, "per_step": 16}
#: constant tables of the integer softmax (EXP2_Q15 and LOG2_Q16, 257 x uint16 offsets each)
SOFTMAX_TABLE_BYTES = 2 * 257 * 2


@dataclass(frozen=True)
class StepCost:
    index: int
    phase: str
    op: str
    layer: str | None
    macs: int
    elementwise: int
    bytes_read: int
    bytes_written: int


@dataclass(frozen=True)
class ProgramCost:
    """Counts per step and their totals per phase and per training sample."""

    batch_size: int
    steps: tuple[StepCost, ...]

    def totals(self) -> dict[str, dict[str, int]]:
        """Phase -> {macs, elementwise, bytes_read, bytes_written} for the whole batch; key
        ``"total"`` sums all phases."""
        out: dict[str, dict[str, int]] = {}
        for s in self.steps:
            for key in (s.phase, "total"):
                d = out.setdefault(key, {"macs": 0, "elementwise": 0, "bytes_read": 0, "bytes_written": 0})
                d["macs"] += s.macs
                d["elementwise"] += s.elementwise
                d["bytes_read"] += s.bytes_read
                d["bytes_written"] += s.bytes_written
        return out

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.steps)

    @property
    def macs_per_sample(self) -> float:
        return self.macs / self.batch_size

    @property
    def elementwise(self) -> int:
        return sum(s.elementwise for s in self.steps)

    @property
    def traffic_bytes(self) -> int:
        return sum(s.bytes_read + s.bytes_written for s in self.steps)

    def per_sample(self) -> dict[str, dict[str, float]]:
        return {phase: {k: v / self.batch_size for k, v in d.items()} for phase, d in self.totals().items()}


def program_cost(program: TrainingProgram) -> ProgramCost:
    """MACs, element-wise operations and traffic of every step."""
    nbytes = {name: b.nbytes for name, b in program.buffers.items()}
    steps = []
    for s in program.steps:
        read = sum(nbytes[n] for n in s.inputs + s.mutates)
        written = sum(nbytes[n] for n in s.outputs + s.mutates)
        scratch = sum(nbytes[n] for n in s.workspace)
        if s.op == "fused_weight_update":
            tiles = int(s.attrs["tiles"]) * int(s.attrs.get("gradient_passes", 1))
            if len(s.inputs) > 1:
                read += nbytes[s.inputs[1]] * (tiles - 1)  # the layer input, once per tile
            scratch *= tiles
        steps.append(StepCost(s.index, s.phase.value, s.op, s.layer, s.macs, s.elementwise, read + scratch,
                              written + scratch))
    return ProgramCost(program.batch_size, tuple(steps))


@dataclass(frozen=True)
class FlashEstimate:
    """Flash bytes of a program: parameters exact, code an ESTIMATE."""

    frozen_parameters: int
    trained_initial_values: int
    tables: int
    code_estimate: int

    @property
    def total(self) -> int:
        return self.frozen_parameters + self.trained_initial_values + self.tables + self.code_estimate

    def to_dict(self) -> dict:
        return {**asdict(self), "total": self.total, "code_is_estimate": True}


def flash_estimate(program: TrainingProgram, plan: MemoryPlan, core: str | None = None) -> FlashEstimate:
    """Flash needed by ``program``: frozen parameters (as planned), initial values of the trained
    parameters and optimiser state (.data), the softmax tables, and a code-size ESTIMATE
    (doubled on 8-bit AVR, whose instructions do a quarter of a 32-bit operation)."""
    trained = sum(b.nbytes for b in program.buffers.values()
                  if b.memory is Memory.SRAM and b.kind in (BufferKind.PARAMETER, BufferKind.OPTIMIZER_STATE))
    tables = SOFTMAX_TABLE_BYTES if program.loss == "cross_entropy" else 0
    kernels = {s.op for s in program.steps}
    code = CODE_BYTES["runtime"] + CODE_BYTES["per_kernel"] * len(kernels) + CODE_BYTES["per_step"] * len(program.steps)
    if core == "avr8":
        code *= 2
    return FlashEstimate(plan.flash_constant_bytes, trained, tables, code)


@dataclass(frozen=True)
class LatencyEstimate:
    """ESTIMATES per training step and per sample on one device."""

    device: str
    instructions_per_sample: float
    cycles_per_sample: float
    seconds_per_sample: float
    energy_j_per_sample: float | None
    cpi: float
    clock_hz: int

    def to_dict(self) -> dict:
        return {**asdict(self), "estimate": True}


def _core_name(device) -> str | None:
    return getattr(device, "core", None)


def estimate_latency(cost: ProgramCost, device) -> LatencyEstimate:
    """Latency and energy ESTIMATES per sample for ``device``, a duck-typed profile with
    ``clock_hz`` and optionally ``core`` (key of :data:`INSTRUCTIONS_PER_OP`), ``core_profile``
    with ``average_cpi``, ``supply_voltage_v`` and ``active_current_ua_per_mhz``."""
    clock = int(getattr(device, "clock_hz"))
    if clock <= 0:
        raise ValueError(f"device clock must be positive, got {clock}")
    per_mac, per_elem = INSTRUCTIONS_PER_OP.get(_core_name(device) or "", DEFAULT_INSTRUCTIONS_PER_OP)
    instructions = (cost.macs * per_mac + cost.elementwise * per_elem) / cost.batch_size
    core_profile = getattr(device, "core_profile", None)
    cpi = float(getattr(core_profile, "average_cpi", None) or getattr(device, "cpi", None) or 1.0)
    cycles = instructions * cpi
    volts = getattr(device, "supply_voltage_v", None)
    current = getattr(device, "active_current_ua_per_mhz", None)
    energy = cycles * volts * current * 1e-12 if volts is not None and current is not None else None
    return LatencyEstimate(getattr(device, "name", "?"), instructions, cycles, cycles / clock, energy, cpi, clock)


def phase_summary(cost: ProgramCost) -> list[tuple[str, int, int]]:
    """(phase, MACs per sample, traffic bytes per sample) in schedule order of phases."""
    totals = cost.totals()
    rows = []
    for phase in (Phase.FORWARD.value, Phase.LOSS.value, Phase.BACKWARD.value, Phase.UPDATE.value):
        if phase in totals:
            d = totals[phase]
            rows.append((phase, d["macs"] // cost.batch_size, (d["bytes_read"] + d["bytes_written"]) // cost.batch_size))
    return rows
