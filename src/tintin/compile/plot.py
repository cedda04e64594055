"""Picture of a memory plan: every SRAM storage root as a rectangle, step range x byte range."""

from __future__ import annotations

from pathlib import Path

from .ir import BufferKind, TrainingProgram
from .planner import MemoryPlan

KIND_COLOURS = {
    BufferKind.INPUT: "#4e79a7", BufferKind.LABEL: "#9c755f", BufferKind.ACTIVATION: "#76b7b2",
    BufferKind.SAVED: "#59a14f", BufferKind.ERROR: "#e15759", BufferKind.GRADIENT: "#f28e2b",
    BufferKind.PARAMETER: "#bab0ac", BufferKind.OPTIMIZER_STATE: "#b07aa1", BufferKind.WORKSPACE: "#edc948",
    BufferKind.OUTPUT: "#ff9da7",
}


def plot_arena(program: TrainingProgram, plan: MemoryPlan, path: str | Path, title: str | None = None) -> Path:
    """Write a PNG of the arena over the schedule (x: step, y: byte offset; colour: buffer kind of
    the storage root, labelled when the rectangle is large enough). Needs matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.patches import Patch, Rectangle
    except ImportError as exc:  # pragma: no cover - matplotlib is an optional extra
        raise RuntimeError("plotting needs matplotlib (pip install 'tintin[plot]')") from exc
    path = Path(path)
    n = max(len(program.steps), 1)
    fig, ax = plt.subplots(figsize=(max(8.0, min(20.0, n * 0.25)), 6))
    groups = program.storage_groups()
    arena = max(plan.arena_bytes, 1)
    for root, members in groups.items():
        first, last = program.group_lifetime(root)
        size = max(program.buffers[m].nbytes for m in members)
        if size == 0:
            continue
        kind = program.buffers[root].kind
        off = plan.offsets[root]
        ax.add_patch(Rectangle((first - 0.45, off), last - first + 0.9, size, facecolor=KIND_COLOURS[kind],
                               edgecolor="black", linewidth=0.4, alpha=0.9))
        if size > arena * 0.04 and (last - first + 1) > n * 0.08:
            ax.text((first + last) / 2, off + size / 2, root, ha="center", va="center", fontsize=7, clip_on=True)
    ax.set_xlim(-1, n)
    ax.set_ylim(0, arena * 1.02)
    ax.set_xlabel("step")
    ax.set_ylabel("arena offset (bytes)")
    ax.set_title(title or f"{program.model_name}, update {program.update}, batch {program.batch_size}: "
                          f"{plan.planner} arena {plan.arena_bytes} B")
    used = {program.buffers[r].kind for r in groups}
    ax.legend(handles=[Patch(color=KIND_COLOURS[k], label=k.value) for k in BufferKind if k in used],
              loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
