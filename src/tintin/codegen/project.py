"""Generate a self-contained C99 project from a model and its compiled training program.

    from tintin.codegen import generate_project
    project = generate_project(model, "out/mlp", update="full", batch_size=1)
    project.sources        # every .c file to compile (model + runtime)
    project.include_dirs   # out/mlp and out/mlp/runtime

Layout of the project directory::

    tt_model.h            the API for firmware (tt_init, tt_train_step, tt_predict, tt_param_get, ...)
    tt_model.c            the arena and the training schedule (one runtime call per program step)
    tt_model_internal.h   every buffer's place in the arena (generated, not API)
    tt_model_params.c     initial values of trained parameters (flash) and frozen parameters
    runtime/              the tintin C runtime files the program calls
    example_main.c        a minimal host program using the API
    Makefile              host gcc, arm-none-eabi-gcc (Cortex-M0/M3/M4/M4F), avr-gcc (ATmega328P)
    README.md             how to use it from firmware
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from . import RUNTIME_DIR
from .cgen import CodegenError
from .model_c import ROLE_FROZEN, ROLE_TRAINED, ModelSources, render_model_sources
from .runtime_files import runtime_files_for
from .toolchains import C_TOOLCHAINS

#: compiler settings per target in the generated Makefile: ``(cc, ar, flags)``, from the one table
#: the target registry also reads (:data:`tintin.codegen.toolchains.C_TOOLCHAINS`)
MAKE_TARGETS = {name: (tc.cc, tc.ar, " ".join(tc.arch_flags + tc.program_flags))
                for name, tc in C_TOOLCHAINS.items()}

#: extra flags for every generated source (the arena is reinterpreted as several element types)
EXTRA_CFLAGS = ("-fno-strict-aliasing",)

#: extra flags per target for generated programs, beyond the target's own (e.g. ``-mcall-prologues``)
TARGET_CFLAGS = {name: tc.program_flags for name, tc in C_TOOLCHAINS.items() if tc.program_flags}


@dataclass(frozen=True)
class Project:
    """A generated C project.

    Attributes:
        out_dir: the project directory.
        sources: the C files to compile (model and runtime), not the example.
        include_dirs: ``-I`` directories.
        program: the compiled training program.
        plan: its memory plan (``plan.arena_bytes`` is ``TT_ARENA_BYTES``).
        eval_program: the batch-1 program ``tt_forward`` / ``tt_predict`` run.
        model: what the model files contain (parameter table, label type, evaluation layout).
        runtime_files: runtime file names copied into ``runtime/``.
    """

    out_dir: Path
    sources: tuple
    include_dirs: tuple
    program: object
    plan: object
    eval_program: object
    model: ModelSources
    runtime_files: tuple
    checkpoint: bool = False  #: the project has tt_checkpoint_save / tt_checkpoint_restore


def compile_for_codegen(model, update: str | None = "full", batch_size: int = 1, optim=None, options=None,
                        planner: str = "greedy"):
    """``(program, plan, eval_program)``: the training program, its memory plan and the batch-1
    program whose forward steps the evaluation runs (the same program when ``batch_size == 1``)."""
    from ..compile import CompileOptions, compile_program, plan_memory

    program = compile_program(model, update=update, batch_size=batch_size, optim=optim,
                              options=options or CompileOptions())
    plan = plan_memory(program, planner)
    if batch_size == 1:
        return program, plan, program
    eval_program = compile_program(model, update=update, batch_size=1, optim=optim,
                                   options=options or CompileOptions())
    return program, plan, eval_program


def generate_project(model, out_dir, *, update: str | None = "full", batch_size: int = 1, optim=None,
                     options=None, planner: str = "greedy", program=None, plan=None, eval_program=None,
                     target: str = "host", example: bool = True, checkpoint: bool = False) -> Project:
    """Write the C project of ``model`` trained with ``update`` at ``batch_size`` into ``out_dir``.

    A given ``program`` (and ``plan``, ``eval_program``) is used as is; otherwise the model is
    compiled with ``update``, ``batch_size``, ``optim`` (:class:`tintin.optim.OptimConfig`) and
    ``options`` (:class:`tintin.compile.CompileOptions`). ``target`` is the Makefile's default
    ``TARGET``. ``checkpoint`` adds power-loss-safe training state in flash
    (``tt_checkpoint_save`` / ``tt_checkpoint_restore``, runtime ``tt_checkpoint.c``; see
    ``docs/field.md``). Raises :class:`CodegenError` for models or ops the generator cannot handle.

    >>> from tintin.codegen import generate_project
    >>> from tintin.nn import build_model
    >>> project = generate_project(build_model("mlp", (1, 8, 8), 10, seed=0), "build/mlp", update="last:1",
    ...                            target="cortex-m0")
    >>> sorted(p.name for p in project.sources if p.parent == project.out_dir)
    ['tt_model.c', 'tt_model_params.c']
    >>> (project.out_dir / "Makefile").is_file(), project.plan.arena_bytes > 0
    (True, True)
    """
    if target not in MAKE_TARGETS:
        raise CodegenError(f"unknown target {target!r} (known: {', '.join(MAKE_TARGETS)})")
    if program is None:
        program, plan, eval_program = compile_for_codegen(model, update, batch_size, optim, options, planner)
    else:
        from ..compile import compile_program, plan_memory

        plan = plan if plan is not None else plan_memory(program, planner)
        if eval_program is None:
            if program.batch_size == 1:
                eval_program = program
            else:
                from ..compile import CompileOptions

                eval_program = compile_program(model, update=None if program.update == "model" else program.update,
                                               batch_size=1, optim=program.optim,
                                               options=CompileOptions(**program.options))
    sources = render_model_sources(model, program, plan, eval_program, checkpoint=checkpoint)
    out = Path(out_dir)
    rt = out / "runtime"
    rt.mkdir(parents=True, exist_ok=True)
    files = runtime_files_for(sources.files.values())
    for stale in rt.glob("tt_*.[ch]"):
        if stale.name not in files:
            stale.unlink()
    for name in files:
        shutil.copyfile(RUNTIME_DIR / name, rt / name)
    for name, text in sources.files.items():
        (out / name).write_text(text)
    (out / "Makefile").write_text(render_makefile(program, target))
    (out / "README.md").write_text(render_readme(program, plan, sources, files, target))
    if example:
        (out / "example_main.c").write_text(render_example(program, sources))
    c_files = [out / "tt_model.c", out / "tt_model_params.c"] + [rt / f for f in files if f.endswith(".c")]
    return Project(out, tuple(c_files), (out, rt), program, plan, eval_program, sources,
                   tuple(files), checkpoint)


def render_makefile(program, target: str) -> str:
    rules = []
    for i, (name, (cc, ar, arch)) in enumerate(MAKE_TARGETS.items()):
        kw = "ifeq" if i == 0 else "else ifeq"
        rules += [f"{kw} ($(TARGET),{name})", f"  CC := {cc}", f"  AR := {ar}", f"  ARCH := {arch}"]
    rules += ["else", "  $(error unknown TARGET '$(TARGET)': " + " | ".join(MAKE_TARGETS) + ")", "endif"]
    return "\n".join([
        f"# Makefile of the generated training program of `{program.model_name}` (tintin).",
        *_build_lines(target, "#   ", 38),
        "# Link build/$(TARGET)/libtintin_model.a into your firmware and #include \"tt_model.h\" (add -I. -Iruntime).",
        f"TARGET ?= {target}",
        "OPT ?= -O2",
        "",
        *rules,
        "",
        "SRC := tt_model.c tt_model_params.c $(wildcard runtime/*.c)",
        "BUILD := build/$(TARGET)",
        "OBJ := $(patsubst %.c,$(BUILD)/%.o,$(SRC))",
        "LIB := $(BUILD)/libtintin_model.a",
        "CFLAGS := $(ARCH) -std=c99 $(OPT) -Wall -Wextra -Werror -pedantic -ffunction-sections -fdata-sections "
        + " ".join(EXTRA_CFLAGS),
        "ifneq ($(TARGET),host)",
        "  # freestanding: no libc; GCC may still call memcpy/memset, which the firmware provides",
        "  CFLAGS += -ffreestanding -fno-tree-loop-distribute-patterns",
        "endif",
        "CPPFLAGS := -I. -Iruntime",
        "",
        ".PHONY: all lib check example clean",
        "all: lib",
        "lib: $(LIB)",
        "check: $(OBJ)",
        "",
        "$(BUILD)/%.o: %.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(CPPFLAGS) -c $< -o $@",
        "",
        "$(LIB): $(OBJ)",
        "\t$(AR) rcs $@ $^",
        "",
        "example: build/host/example",
        "build/host/example: example_main.c $(SRC) tt_model.h",
        "\t@mkdir -p build/host",
        "\tgcc -std=c99 $(OPT) -Wall -Wextra -Werror -pedantic " + " ".join(EXTRA_CFLAGS)
        + " $(CPPFLAGS) example_main.c $(SRC) -o $@",
        "",
        "clean:",
        "\trm -rf build",
        "",
    ])


def render_example(program, sources: ModelSources) -> str:
    ce = program.loss == "cross_entropy"
    label_init = "0" if ce else "0"
    predict = ("    if (tt_predict(x, &cls) == TT_OK) {\n"
               "        printf(\"predicted class of the sample: %u\\n\", (unsigned)cls);\n"
               "    }\n") if ce else \
        ("    if (tt_forward(x, out, &out_scale) == TT_OK) {\n"
         "        printf(\"first output mantissa: %d (scale exponents %d %d %d)\\n\", out[0], out_scale.S,"
         " out_scale.U, out_scale.D);\n    }\n")
    decls = "    uint16_t cls = 0;\n" if ce else "    int8_t out[TT_OUTPUT_SIZE];\n    tt_scale_t out_scale;\n"
    return f"""/* example_main.c - the API in a hosted program (generated by tintin).
 * A firmware does the same with samples from its sensor; nothing here is needed on the device. */
#include <stdio.h>
#include "tt_model.h"

int main(void)
{{
    static int8_t x[TT_BATCH_SIZE * TT_INPUT_SIZE];
    static tt_label_t y[TT_BATCH_SIZE * TT_LABEL_SIZE];
    int64_t loss = 0;
    tt_scale_t loss_scale;
    tt_param_info_t info;
{decls}    size_t i;
    int step;
    for (i = 0; i < TT_BATCH_SIZE * TT_INPUT_SIZE; ++i) {{
        x[i] = (int8_t)((i * 37u) % 255u - 127);  /* a made-up sample */
    }}
    for (i = 0; i < TT_BATCH_SIZE * TT_LABEL_SIZE; ++i) {{
        y[i] = {label_init};
    }}
    tt_init(1u);
    for (step = 0; step < 10; ++step) {{
        tt_status_t st = tt_train_step(x, y);
        if (st != TT_OK) {{
            printf("step %d: status %d\\n", step, (int)st);
            return 1;
        }}
        tt_last_loss(&loss, &loss_scale);
        printf("step %d: loss mantissa %lld at 2^%d\\n", step, (long long)loss, loss_scale.S);
    }}
{predict}    for (i = 0; i < TT_PARAM_COUNT; ++i) {{
        tt_param_get(i, &info);
        printf("%s: %u elements\\n", info.name, (unsigned)info.count);
    }}
    printf("parameter checksum 0x%08lx\\n", (unsigned long)tt_params_checksum());
    return 0;
}}
"""


def _build_lines(target: str, comment: str, width: int) -> list[str]:
    """The build commands of the Makefile and README, stating the real default ``TARGET``."""
    cc = MAKE_TARGETS[target][0]
    others = ", ".join(name for name in MAKE_TARGETS if name != target)
    rows = [("make", f"TARGET={target} (the default): build/{target}/libtintin_model.a ({cc})"),
            ("make TARGET=<name>", f"any other target: {others}"),
            ("make check", "every source under the strict flags"),
            ("make example && ./build/host/example", "a hosted example program (host gcc, whatever TARGET)")]
    return [f"{comment}{cmd:<{width}} # {text}" for cmd, text in rows]


def render_readme(program, plan, sources: ModelSources, files, target: str = "host") -> str:
    ce = program.loss == "cross_entropy"
    trained = [e for e in sources.params if e.role == ROLE_TRAINED]
    frozen = [e for e in sources.params if e.role == ROLE_FROZEN]
    lay = sources.eval_layout
    eval_text = {"training": "uses the training arena (same offsets as the forward steps)",
                 "gap": f"uses {lay.bytes} bytes of the training arena at offset {lay.base}, which no "
                        "parameter or training output occupies",
                 "separate": f"needs its own {lay.bytes}-byte scratch array (tt_eval_arena)"}[lay.mode]
    label = ("class indices (`tt_label_t` = `" + sources.label_ctype + "`)") if ce else \
        f"int8 targets at scale 2^{program.target_exponent}"
    lines = [
        f"# On-device training of `{program.model_name}` (generated by tintin)",
        "",
        f"Update `{program.update}`, batch size {program.batch_size}, {len(program.steps)} program steps, "
        f"one arena of **{plan.arena_bytes} bytes** (`TT_ARENA_BYTES`, planner `{plan.planner}`).",
        f"Trained parameters (in the arena): {', '.join(e.name for e in trained) or 'none'}.",
        f"Frozen parameters (constant, flash): {', '.join(e.name for e in frozen) or 'none'}.",
        "",
        "Integer arithmetic only: no floating point, no malloc, no libc beyond `<stdint.h>`/`<stddef.h>`; C99,",
        "compiles with `-std=c99 -Wall -Wextra -Werror -pedantic`. Results equal tintin's simulator bit for bit.",
        "",
        "## Use it from firmware",
        "",
        "```c",
        '#include "tt_model.h"',
        "",
        "tt_init(seed);                                   /* once */",
        "/* per step: TT_BATCH_SIZE samples of TT_INPUT_SIZE int8 at scale 2^TT_INPUT_EXPONENT */",
        "tt_status_t st = tt_train_step(tt_input_buffer(), tt_label_buffer());  /* after filling them */",
        "tt_last_loss(&total, &scale);                    /* loss = total * scale */",
    ]
    if ce:
        lines += ["tt_predict(sample, &cls);                        /* inference at batch 1 */"]
    lines += [
        "tt_param_get(i, &info);                          /* export: name, dtype, data, scale */",
        "```",
        "",
        f"Inputs: int8 mantissas in [-127, 127] at scale 2^{program.input_exponent}. Labels: {label}.",
        "`tt_set_epoch(e)` applies the learning-rate schedule; `tt_set_stream(seed, step)` resumes the",
        f"stochastic-rounding stream. Evaluation (`tt_forward`/`tt_predict`) {eval_text}; read the",
        "last step's loss and predictions before calling it.",
        "",
        "## Build",
        "",
        "```sh",
        *_build_lines(target, "", 38),
        "```",
        "",
        "Link the library (or compile `tt_model.c`, `tt_model_params.c` and `runtime/*.c` with your",
        "sources, `-I. -Iruntime`, `-fno-strict-aliasing`). Freestanding builds must provide `memcpy`",
        "and `memset` (GCC may emit calls to them for struct copies). Use `-ffunction-sections",
        "-Wl,--gc-sections` so that only the kernels the program calls are linked. The stack is not part",
        "of the arena: budget 0.5-1 KB on Cortex-M (less on AVR for small models).",
        "",
        "On the ATmega328P the initial values of trained parameters stay in program memory (`TT_ROM`);",
        "frozen parameters are `const` data, which avr-gcc copies into SRAM at start-up.",
        "",
        "## Files",
        "",
        "| file | holds |",
        "|---|---|",
        "| `tt_model.h` | the API |",
        "| `tt_model.c` | the arena, the scales, `tt_train_step` (one runtime call per program step), evaluation, export |",
        "| `tt_model_internal.h` | each buffer's offset in the arena (`TT_BUF_*`) |",
        "| `tt_model_params.c` | initial parameter values |",
        f"| `runtime/` | the tintin C runtime: {', '.join(f for f in files if f.endswith('.c'))} |",
        "",
    ]
    return "\n".join(lines)
