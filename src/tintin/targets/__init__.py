"""tintin.targets: build C programs for MCU targets, run them in emulators, count their work, and
run a model's training on a target compared bit for bit with the simulator.

    from tintin.targets import run_model
    report = run_model(model, dataset, target="cortex-m0", steps=100)
    report.bit_exact, report.per_step   # True, instructions per training step

:func:`run_model` (:mod:`tintin.targets.ondevice`) trains in the trainer's seeded order and
evaluates test samples at batch 1; :func:`run_on_target` takes the embedded samples and order
from the caller; :func:`tintin.targets.stream.run_stream_on_target` runs a stream test-then-train
at batch 1 (predict, then learn when labelled); :mod:`tintin.targets.compare` parses the device
output and compares it with the simulator; :mod:`tintin.targets.float_reference` runs the float32 reference C on a target.

Targets (``TARGETS``): ``host`` (system gcc), ``cortex-m0`` / ``cortex-m3`` / ``cortex-m4`` /
``cortex-m4f`` (QEMU, exact instruction counts) and ``atmega328p`` (simavr, exact cycle counts).
Programs include ``tt_platform.h`` and supply ``main()``; see ``docs/targets.md``.

    from tintin.targets import build, run
    prog = build("cortex-m4", ["kernel.c", "main.c"], "build/m4")
    res = run("cortex-m4", prog)
    res.stdout, res.counts          # output, instructions between tt_bench_mark() calls

Device profiles (``load_device``) describe real parts: memory, clock, power, CPI estimates.

This package imports ``tintin.codegen`` (the C it builds), ``tintin.compile`` and ``tintin.train``
(the simulator it compares with); none of those imports it.
"""

from tintin.targets.build import (
    BuildResult,
    build,
    build_shared,
    check_no_softfloat,
)
from tintin.targets.device_profiles import (
    CoreProfile,
    DeviceProfile,
    list_devices,
    load_device,
)
from tintin.targets.errors import (
    BuildError,
    DeviceProfileError,
    DeviceRunError,
    DoesNotFitError,
    RunError,
    TargetError,
    ToolchainMissingError,
    UnknownDeviceError,
    UnknownTargetError,
)
from tintin.targets.registry import FILES_DIR, TARGETS, Machine, Target, get_target
from tintin.targets.run import RunResult, run
from tintin.targets.toolchain import cache_dir, toolchain_status
from tintin.targets.ondevice import DeviceReport, check_fit, run_model, run_on_target, select_samples

__all__ = [
    "FILES_DIR",
    "TARGETS",
    "BuildError",
    "BuildResult",
    "CoreProfile",
    "DeviceProfile",
    "DeviceProfileError",
    "DeviceReport",
    "DeviceRunError",
    "DoesNotFitError",
    "Machine",
    "RunError",
    "RunResult",
    "Target",
    "TargetError",
    "ToolchainMissingError",
    "UnknownDeviceError",
    "UnknownTargetError",
    "build",
    "build_shared",
    "cache_dir",
    "check_fit",
    "check_no_softfloat",
    "get_target",
    "list_devices",
    "load_device",
    "run",
    "run_model",
    "run_on_target",
    "select_samples",
    "toolchain_status",
]
