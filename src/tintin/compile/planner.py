"""Static memory planning: every SRAM buffer of a program gets a byte offset in one arena.

The interface mirrors TensorFlow Lite Micro's memory planners: a planner receives allocation
requests (size, first and last step of use, alignment) and returns an offset for each; two requests
whose lifetimes intersect must not overlap in bytes. Strategies:

``naive``
    Every request its own space, one after the other (the arena is the sum of all sizes): what a
    program needs without any reuse, the baseline the others are measured against.
``greedy``
    Lifetime-aware first fit, largest first: requests sorted by size (descending; ties: earlier
    first use, then name), each placed at the lowest aligned offset where it overlaps no already
    placed request whose lifetime intersects its own (never larger than ``naive``: if alignment
    padding made it so, the naive layout is kept).

:func:`plan_memory` builds the requests of a :class:`TrainingProgram` (one per storage root:
aliases such as Flatten views and in-place ReLU outputs share their root's bytes and extend its
lifetime), runs a planner and returns a :class:`MemoryPlan` with every buffer's offset, the arena
size and the flash layout of the frozen parameters. :func:`check_placement` verifies a placement.
"""

from __future__ import annotations

from tintin.errors import TintinError

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from .ir import BufferKind, Memory, TrainingProgram


class PlanError(TintinError, ValueError):
    """An invalid placement, or an unknown planner."""


def align_up(value: int, alignment: int) -> int:
    return -(-value // alignment) * alignment


@dataclass(frozen=True)
class AllocationRequest:
    """``size`` bytes live from step ``first`` to step ``last`` (inclusive), at an offset that is a
    multiple of ``alignment``."""

    name: str
    size: int
    first: int
    last: int
    alignment: int = 4

    def __post_init__(self):
        if self.size < 0 or self.first > self.last or self.alignment < 1:
            raise PlanError(f"bad allocation request {self}")

    def overlaps_in_time(self, other: "AllocationRequest") -> bool:
        return self.first <= other.last and other.first <= self.last


class MemoryPlanner(ABC):
    """A placement strategy: ``place(requests) -> {name: offset}``."""

    name: str = ""

    @abstractmethod
    def place(self, requests: list[AllocationRequest]) -> dict[str, int]: ...


class NaivePlanner(MemoryPlanner):
    """No reuse: requests laid out one after the other in the given order."""

    name = "naive"

    def place(self, requests):
        offsets, end = {}, 0
        for r in requests:
            off = align_up(end, r.alignment)
            offsets[r.name] = off
            end = off + r.size
        return offsets


class GreedyPlanner(MemoryPlanner):
    """Lifetime-aware first fit, largest request first. Mixed alignments can make the padding of
    this order exceed the naive layout's; then the naive layout is returned (never worse)."""

    name = "greedy"

    def place(self, requests):
        offsets = self._first_fit(requests)
        naive = NaivePlanner().place(requests)
        return naive if arena_size(requests, naive) < arena_size(requests, offsets) else offsets

    @staticmethod
    def _first_fit(requests):
        order = sorted(requests, key=lambda r: (-r.size, r.first, r.name))
        placed: list[tuple[int, int, AllocationRequest]] = []  # (offset, end, request)
        offsets = {}
        for r in order:
            if r.size == 0:
                offsets[r.name] = 0
                continue
            busy = sorted((off, end) for off, end, q in placed if q.overlaps_in_time(r))
            candidate = 0
            for off, end in busy:
                candidate = align_up(candidate, r.alignment)
                if candidate + r.size <= off:
                    break
                candidate = max(candidate, end)
            candidate = align_up(candidate, r.alignment)
            offsets[r.name] = candidate
            placed.append((candidate, candidate + r.size, r))
        return offsets


PLANNERS: dict[str, type[MemoryPlanner]] = {"naive": NaivePlanner, "greedy": GreedyPlanner}


def get_planner(planner: str | MemoryPlanner) -> MemoryPlanner:
    if isinstance(planner, MemoryPlanner):
        return planner
    try:
        return PLANNERS[planner]()
    except (KeyError, TypeError):
        raise PlanError(f"unknown planner {planner!r} (available: {', '.join(PLANNERS)})") from None


def arena_size(requests: list[AllocationRequest], offsets: dict[str, int]) -> int:
    return max((offsets[r.name] + r.size for r in requests), default=0)


def check_placement(requests: list[AllocationRequest], offsets: dict[str, int]) -> None:
    """Raise :class:`PlanError` naming the first two requests that are live at the same step and
    share bytes, or a misaligned / missing offset."""
    for r in requests:
        if r.name not in offsets:
            raise PlanError(f"no offset for {r.name}")
        if offsets[r.name] < 0 or offsets[r.name] % r.alignment:
            raise PlanError(f"{r.name}: offset {offsets[r.name]} is not a non-negative multiple of {r.alignment}")
    live = sorted((r for r in requests if r.size > 0), key=lambda r: offsets[r.name])
    for i, a in enumerate(live):
        a0 = offsets[a.name]
        a1 = a0 + a.size
        for b in live[i + 1:]:
            b0 = offsets[b.name]
            if b0 >= a1:
                break
            if a.overlaps_in_time(b):
                raise PlanError(f"{a.name} [{a0}, {a1}) and {b.name} [{b0}, {b0 + b.size}) overlap while both are "
                                f"live (steps {max(a.first, b.first)}..{min(a.last, b.last)})")


def lower_bound(requests: list[AllocationRequest]) -> int:
    """Largest sum of sizes live at one step: no placement can use a smaller arena (up to
    alignment padding)."""
    events: dict[int, int] = {}
    for r in requests:
        events[r.first] = events.get(r.first, 0) + r.size
        events[r.last + 1] = events.get(r.last + 1, 0) - r.size
    peak = cur = 0
    for step in sorted(events):
        cur += events[step]
        peak = max(peak, cur)
    return peak


@dataclass(frozen=True)
class MemoryPlan:
    """Where every buffer of a program lives.

    Attributes:
        planner: strategy name.
        alignment: minimum alignment of every SRAM offset (int64 buffers use at least 8).
        arena_bytes: SRAM arena size (the peak SRAM of the training step, tensors only).
        offsets: SRAM buffer name -> byte offset in the arena (aliases share their root's offset).
        requests: the allocation requests (one per storage root).
        flash_offsets: frozen parameter name -> byte offset in the flash constant block.
        flash_constant_bytes: bytes of frozen parameters in flash (aligned).
        lower_bound_bytes: largest live sum at one step (the best any planner can do).
    """

    planner: str
    alignment: int
    arena_bytes: int
    offsets: dict[str, int]
    requests: tuple[AllocationRequest, ...]
    flash_offsets: dict[str, int]
    flash_constant_bytes: int
    lower_bound_bytes: int
    trained_parameters: tuple[str, ...] = field(default=())

    def check(self, program: TrainingProgram) -> None:
        """Re-verify the placement against the program: no two live SRAM buffers overlap."""
        check_placement(list(self.requests), {r.name: self.offsets[r.name] for r in self.requests})
        for name, b in program.buffers.items():
            if b.memory is Memory.SRAM and self.offsets.get(name) != self.offsets[program.root(name)]:
                raise PlanError(f"alias {name} is not at its root's offset")

    def to_dict(self) -> dict:
        return {"planner": self.planner, "alignment": self.alignment, "arena_bytes": self.arena_bytes,
                "lower_bound_bytes": self.lower_bound_bytes, "offsets": dict(self.offsets),
                "flash_offsets": dict(self.flash_offsets), "flash_constant_bytes": self.flash_constant_bytes,
                "trained_parameters": list(self.trained_parameters)}


def program_requests(program: TrainingProgram, alignment: int = 4) -> list[AllocationRequest]:
    """One request per SRAM storage root, in creation order."""
    requests = []
    for root, members in program.storage_groups().items():
        first, last = program.group_lifetime(root)
        size = max(program.buffers[m].nbytes for m in members)
        itemsize = max(program.buffers[m].itemsize for m in members)
        requests.append(AllocationRequest(root, size, first, last, max(alignment, min(itemsize, 8))))
    return requests


def plan_memory(program: TrainingProgram, planner: str | MemoryPlanner = "greedy", alignment: int = 4) -> MemoryPlan:
    """Place every SRAM buffer of ``program`` in one arena with ``planner`` and lay out the frozen
    parameters in flash. The placement is checked before it is returned."""
    if alignment < 1 or alignment & (alignment - 1):
        raise PlanError(f"alignment must be a power of two, got {alignment}")
    strategy = get_planner(planner)
    requests = program_requests(program, alignment)
    root_offsets = strategy.place(requests)
    check_placement(requests, root_offsets)
    offsets = {name: root_offsets[program.root(name)] for name, b in program.buffers.items()
               if b.memory is Memory.SRAM}
    flash_offsets, end = {}, 0
    for b in program.flash_buffers():
        off = align_up(end, max(alignment, b.itemsize))
        flash_offsets[b.name] = off
        end = off + b.nbytes
    trained = tuple(b.name for b in program.buffers.values()
                    if b.kind is BufferKind.PARAMETER and b.memory is Memory.SRAM)
    return MemoryPlan(strategy.name, alignment, arena_size(requests, root_offsets), offsets, tuple(requests),
                      flash_offsets, end, lower_bound(requests), trained)
