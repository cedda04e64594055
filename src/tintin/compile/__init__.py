"""tintin.compile: training programs, update selection, static memory planning and cost estimates.

    from tintin.compile import compile_program, plan_memory, run_program
    program = compile_program(model, update="bias", batch_size=1, optim=OptimConfig())
    plan = plan_memory(program, "greedy")          # arena size, offset of every buffer
    result = run_program(program, model, x, y, ctx, plan=plan)   # bit-identical to train_step

Layer types plug in through :mod:`tintin.compile.registry` (a lowering per layer class, a kernel
per op); the fully connected layers are in :mod:`tintin.compile.lower_dense`, convolution, pooling,
residual and channel-scale layers in :mod:`tintin.compile.lower_conv`.
"""

from . import kernels as _kernels  # noqa: F401  (registers kernels)
from . import lower_dense as _lower_dense  # noqa: F401  (registers Linear / ReLU / Flatten)
from . import update as _update  # noqa: F401  (registers update kernels)

# convolution, pooling, residual and channel-scale layers (registers their lowerings); a broken
# import fails here, not later as "no lowering for layer"
from . import lower_conv as _lower_conv  # noqa: F401,E402
from . import patch as _patch  # noqa: F401,E402  (registers the patch-stage kernel)
from .compiler import CompileOptions, ProgramBuilder, compile_program
from .executor import ExecutionError, ProgramExecutor, ProgramResult, run_program
from .ir import Buffer, BufferKind, Memory, Phase, Step, TrainingProgram
from .planner import (AllocationRequest, GreedyPlanner, MemoryPlan, MemoryPlanner, NaivePlanner, PLANNERS,
                      PlanError, check_placement, get_planner, lower_bound, plan_memory)
from .registry import (CompileError, lowered_types, register_gradient_rows, register_kernel,
                       register_lowering)
from .selection import (UpdateSelection, UpdateSelectionError, apply_update_selection, model_selection,
                        parameterised_layers, parse_update)

__all__ = [
    "CompileOptions", "ProgramBuilder", "compile_program", "ExecutionError", "ProgramExecutor", "ProgramResult",
    "run_program", "Buffer", "BufferKind", "Memory", "Phase", "Step", "TrainingProgram", "AllocationRequest",
    "GreedyPlanner", "MemoryPlan", "MemoryPlanner", "NaivePlanner", "PLANNERS", "PlanError", "check_placement",
    "get_planner", "lower_bound", "plan_memory", "CompileError", "lowered_types", "register_gradient_rows",
    "register_kernel", "register_lowering", "UpdateSelection", "UpdateSelectionError", "apply_update_selection",
    "model_selection", "parameterised_layers", "parse_update",
]
