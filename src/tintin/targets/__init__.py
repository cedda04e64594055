"""tintin.targets: build C programs for MCU targets, run them in emulators, count their work.

Targets (``TARGETS``): ``host`` (system gcc), ``cortex-m0`` / ``cortex-m3`` / ``cortex-m4`` /
``cortex-m4f`` (QEMU, exact instruction counts) and ``atmega328p`` (simavr, exact cycle counts).
Programs include ``tt_platform.h`` and supply ``main()``; see ``docs/targets.md``.

    from tintin.targets import build, run
    prog = build("cortex-m4", ["kernel.c", "main.c"], "build/m4")
    res = run("cortex-m4", prog)
    res.stdout, res.counts          # output, instructions between tt_bench_mark() calls

Device profiles (``load_device``) describe real parts: memory, clock, power, CPI estimates.
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
    RunError,
    TargetError,
    ToolchainMissingError,
    UnknownDeviceError,
    UnknownTargetError,
)
from tintin.targets.registry import FILES_DIR, TARGETS, Machine, Target, get_target
from tintin.targets.run import RunResult, run
from tintin.targets.toolchain import cache_dir, toolchain_status

__all__ = [
    "FILES_DIR",
    "TARGETS",
    "BuildError",
    "BuildResult",
    "CoreProfile",
    "DeviceProfile",
    "DeviceProfileError",
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
    "check_no_softfloat",
    "get_target",
    "list_devices",
    "load_device",
    "run",
    "toolchain_status",
]
