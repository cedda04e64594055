"""Device fit: does a planned program fit a device's SRAM and flash, and what would fit if not.

The device is any object with ``name``, ``sram_bytes`` and ``flash_bytes`` (a
``tintin.targets.DeviceProfile`` for instance; this module does not import ``tintin.targets``).
SRAM needed = the planned arena + ``reserve_sram`` (stack and runtime state, given by the caller);
flash needed = :func:`tintin.compile.cost.flash_estimate` (its code part is an ESTIMATE).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from .compiler import CompileOptions, compile_program
from .cost import FlashEstimate, flash_estimate
from .planner import plan_memory
from .registry import CompileError
from .selection import UpdateSelectionError, parameterised_layers


@dataclass(frozen=True)
class FitReport:
    """SRAM and flash needed against a device's capacity. Margins are capacity minus need
    (negative: that many bytes are missing)."""

    device: str
    sram_needed: int
    sram_capacity: int
    flash_needed: int
    flash_capacity: int

    @property
    def sram_margin(self) -> int:
        return self.sram_capacity - self.sram_needed

    @property
    def flash_margin(self) -> int:
        return self.flash_capacity - self.flash_needed

    @property
    def fits(self) -> bool:
        return self.sram_margin >= 0 and self.flash_margin >= 0

    @property
    def missing_sram(self) -> int:
        return max(0, -self.sram_margin)

    @property
    def missing_flash(self) -> int:
        return max(0, -self.flash_margin)

    def to_dict(self) -> dict:
        return {**asdict(self), "fits": self.fits, "sram_margin": self.sram_margin, "flash_margin": self.flash_margin,
                "missing_sram": self.missing_sram, "missing_flash": self.missing_flash}


def _capacity(device, field: str) -> int:
    value = getattr(device, field, None)
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(f"device profile {getattr(device, 'name', '?')!r} has no valid {field} (got {value!r})")
    return value


def check_fit(arena_bytes: int, flash: FlashEstimate | int, device, reserve_sram: int = 0) -> FitReport:
    """Fit of an arena of ``arena_bytes`` (+ ``reserve_sram``) and ``flash`` bytes on ``device``."""
    flash_total = flash.total if isinstance(flash, FlashEstimate) else int(flash)
    return FitReport(getattr(device, "name", "?"), int(arena_bytes) + int(reserve_sram), _capacity(device, "sram_bytes"),
                     flash_total, _capacity(device, "flash_bytes"))


@dataclass(frozen=True)
class FitOption:
    """One candidate configuration and its needs on the device."""

    update: str
    batch_size: int
    accumulator_budget: int | None
    sram_bytes: int
    flash_bytes: int
    fits: bool
    sram_margin: int
    flash_margin: int

    def to_dict(self) -> dict:
        return asdict(self)


def candidate_updates(model) -> list[str]:
    """``full``, ``last:K`` for K from the number of parameterised layers minus one down to 1,
    ``bias+last:1`` and ``bias`` (those that make sense for ``model``)."""
    n = len(parameterised_layers(model))
    out = ["full"] + [f"last:{k}" for k in range(n - 1, 0, -1)]
    if any(p.kind == "bias" for p in model.parameters()):
        out += ["bias+last:1", "bias"]
    return out


def fit_options(model, device, *, updates: list[str] | None = None, batch_sizes=(1, 2, 4, 8, 16, 32),
                planner: str = "greedy", optim=None, options: CompileOptions | None = None,
                reserve_sram: int = 0, recompute_budget: int | None = 0) -> list[FitOption]:
    """For each candidate update choice, the batch sizes that fit ``device`` (memory grows with the
    batch, so the search stops at the first that does not). When even batch size 1 does not fit,
    the same choice is also tried with large int32 accumulators recomputed instead of stored
    (``accumulator_budget=recompute_budget``; None skips that)."""
    options = options or CompileOptions()
    core = getattr(device, "core", None)
    found: list[FitOption] = []

    def attempt(update: str, batch: int, opts: CompileOptions) -> FitOption | None:
        try:
            program = compile_program(model, update, batch, optim=optim, options=opts)
        except (CompileError, UpdateSelectionError):
            return None
        plan = plan_memory(program, planner)
        report = check_fit(plan.arena_bytes, flash_estimate(program, plan, core), device, reserve_sram)
        return FitOption(program.update, batch, opts.accumulator_budget, report.sram_needed, report.flash_needed,
                         report.fits, report.sram_margin, report.flash_margin)

    for update in updates or candidate_updates(model):
        first = None
        for batch in sorted(batch_sizes):
            option = attempt(update, batch, options)
            if option is None:
                break
            found.append(option)
            first = first or option
            if not option.fits:
                break
        if first is not None and not first.fits and recompute_budget is not None \
                and options.accumulator_budget != recompute_budget:
            option = attempt(update, min(batch_sizes), replace(options, accumulator_budget=recompute_budget))
            if option is not None:
                found.append(option)
    return found


def summarise_options(options: list[FitOption]) -> list[dict]:
    """Per (update, accumulator budget): the largest fitting batch size, or the bytes missing at the
    smallest batch size."""
    groups: dict[tuple[str, int | None], list[FitOption]] = {}
    for o in options:
        groups.setdefault((o.update, o.accumulator_budget), []).append(o)
    rows = []
    for (update, budget), opts in groups.items():
        fitting = [o for o in opts if o.fits]
        smallest = min(opts, key=lambda o: o.batch_size)
        rows.append({"update": update, "accumulator_budget": budget,
                     "max_batch_size": max(o.batch_size for o in fitting) if fitting else None,
                     "sram_bytes_at_batch_1": smallest.sram_bytes, "flash_bytes": smallest.flash_bytes,
                     "fits": bool(fitting), "missing_sram": max(0, -smallest.sram_margin),
                     "missing_flash": max(0, -smallest.flash_margin)})
    return rows
