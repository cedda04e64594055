"""Run a built program on its target's emulator and collect output, exit status and counts.

- Cortex-M: ``qemu-system-arm`` with ARM semihosting for console and exit status, and the
  ``tt_insn_count`` TCG plugin, which logs the executed-instruction count each time
  ``tt_bench_mark`` is entered.
- AVR: the ``tt_simavr_run`` libsimavr runner, which prints USART0 bytes and the cycle counter
  each time ``tt_bench_mark`` is entered.
- host: the executable itself (nothing is counted).

Every run has a wall-clock timeout; the emulator is killed when it expires.
"""

from __future__ import annotations

import bisect
import os
import re
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from tintin.targets.build import BuildResult
from tintin.targets.errors import RunError, TargetError
from tintin.targets.registry import Machine, Target
from tintin.targets.toolchain import qemu_plugin_path, require_toolchain, simavr_runner_path

FAULT_EXIT_CODE = 99
"""Exit status of a Cortex-M program stopped by a fault handler (``startup_cm.c``)."""

_EXCEPTION_NAMES = {2: "NMI", 3: "HardFault", 4: "MemManage", 5: "BusFault", 6: "UsageFault",
                    11: "SVCall", 12: "DebugMonitor", 14: "PendSV", 15: "SysTick"}


@dataclass(frozen=True)
class RunResult:
    """What one emulated run produced.

    Attributes:
        target: target name.
        machine: the board that ran it: QEMU machine (``"microbit"``, ``"mps2-an385"``,
            ``"mps2-an386"``), ``"simavr"`` or ``"host"``.
        machine_description: one line, e.g. ``"QEMU mps2-an385, cpu cortex-m3"``.
        stdout: console output of the program (semihosting / USART0 / stdout), decoded UTF-8.
        exit_code: the program's exit status (0..255).
        counts: instructions (Cortex-M) or cycles (AVR) between consecutive ``tt_bench_mark()``
            calls: ``counts[i] = marks[i+1] - marks[i]``; empty on the host. Each includes the
            call into and return from ``tt_bench_mark`` (a few instructions / ~10 cycles).
        marks: the running count when each ``tt_bench_mark()`` was entered.
        total: instructions or cycles of the whole run (None on the host).
        count_unit: ``"instructions"``, ``"cycles"`` or None.
        stack_used_bytes: stack high-water mark in bytes (painted-stack scan; MCU targets).
        stack_bytes: stack reserved / available in bytes (MCU targets).
        wall_time_s: wall-clock time of the emulator process, in seconds.
        command: the emulator command line.
        log: the emulator's diagnostic output (stderr, plugin log).
    """

    target: str
    machine: str
    machine_description: str
    stdout: str
    exit_code: int
    counts: tuple[int, ...]
    marks: tuple[int, ...]
    total: int | None
    count_unit: str | None
    stack_used_bytes: int | None
    stack_bytes: int | None
    wall_time_s: float
    command: tuple[str, ...] = field(repr=False)
    log: str = field(default="", repr=False)


def _text(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return data.decode("utf-8", errors="replace")


def _execute(cmd: list[str], timeout_s: float, what: str, env: dict | None = None
             ) -> tuple[int, str, str, float]:
    """Run ``cmd``; return (returncode, stdout, stderr, seconds). Kill it on timeout."""
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True,
                              timeout=timeout_s, env=env)
    except subprocess.TimeoutExpired as exc:
        raise RunError(
            f"{what}: no exit within {timeout_s:g} s, killed (endless loop, or tt_exit never "
            "reached?)",
            details=f"$ {' '.join(cmd)}\n--- stdout ---\n{_text(exc.stdout)}\n"
                    f"--- stderr ---\n{_text(exc.stderr)}") from None
    except OSError as exc:
        raise RunError(f"{what}: cannot start {cmd[0]}: {exc}") from None
    return proc.returncode, _text(proc.stdout), _text(proc.stderr), time.perf_counter() - t0


def _symbol_at(build: BuildResult, address: int) -> str:
    """Name of the symbol at or before ``address`` (for fault messages)."""
    items = sorted((a, n) for n, a in build.symbols.items() if not n.startswith("$"))
    addrs = [a for a, _ in items]
    i = bisect.bisect_right(addrs, address) - 1
    return items[i][1] if i >= 0 else "?"


def _choose_machine(t: Target, build: BuildResult, requested: str | None) -> Machine:
    flash_end = build.symbols.get("_tt_flash_end", 0)
    ram_end = build.symbols.get("_tt_ram_end", t.ram_origin) - t.ram_origin
    flash_end -= t.flash_origin if flash_end else 0
    names = [m.name for m in t.machines]

    def fits(m: Machine) -> bool:
        return ((m.flash_bytes is None or flash_end <= m.flash_bytes)
                and (m.ram_bytes is None or ram_end <= m.ram_bytes))

    if requested is not None:
        if requested not in names:
            raise TargetError(f"machine {requested!r} does not run {t.name}; "
                              f"valid machines: {', '.join(names)}")
        m = t.machines[names.index(requested)]
        if not fits(m):
            raise RunError(f"{t.name}: program needs {flash_end} B flash and {ram_end} B RAM, "
                           f"more than {m.name} has ({m.flash_bytes} B / {m.ram_bytes} B)")
        return m
    for m in t.machines:
        if fits(m):
            return m
    raise RunError(f"{t.name}: program needs {flash_end} B flash and {ram_end} B RAM; no machine "
                   f"has that much ({', '.join(names)})")


def _counts(marks: list[int]) -> tuple[int, ...]:
    return tuple(b - a for a, b in zip(marks, marks[1:]))


def _finish(t: Target, build: BuildResult, result: RunResult, check: bool) -> RunResult:
    what = f"{t.name} on {result.machine}"
    if (result.stack_used_bytes is not None and result.stack_bytes
            and result.stack_used_bytes >= result.stack_bytes):
        raise RunError(f"{what}: stack overflow: all {result.stack_bytes} B of stack used "
                       "(raise stack_bytes in build())", details=result.log, result=result)
    if check and result.exit_code != 0:
        tail = result.stdout.strip().splitlines()[-1:] or [""]
        raise RunError(f"{what}: exit status {result.exit_code}"
                       + (f" (last output: {tail[0][:120]!r})" if tail[0] else ""),
                       details=result.stdout + "\n" + result.log, result=result)
    return result


def _run_host(t: Target, build: BuildResult, timeout_s: float, check: bool) -> RunResult:
    cmd = [str(build.elf_path)]
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1")
    rc, out, err, dt = _execute(cmd, timeout_s, "host", env)
    if rc < 0:
        name = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
        raise RunError(f"host: program killed by signal {name}", details=out + "\n" + err)
    if "Sanitizer" in err or "runtime error:" in err:
        first = next((ln for ln in err.splitlines() if "ERROR" in ln or "runtime error" in ln), "")
        raise RunError(f"host: sanitizer finding: {first.strip()[:200]}", details=out + "\n" + err)
    result = RunResult(target=t.name, machine="host", machine_description="host executable",
                       stdout=out, exit_code=rc, counts=(), marks=(), total=None,
                       count_unit=None, stack_used_bytes=None, stack_bytes=None,
                       wall_time_s=dt, command=tuple(cmd), log=err)
    return _finish(t, build, result, check)


def _run_qemu(t: Target, build: BuildResult, timeout_s: float, check: bool,
              machine: str | None) -> RunResult:
    m = _choose_machine(t, build, machine)
    plugin = qemu_plugin_path()
    mark = build.symbols.get("tt_bench_mark")
    plugin_arg = f"{plugin},mark={mark:#x}" if mark is not None else str(plugin)
    desc = f"QEMU {m.name}, cpu {m.cpu}"
    if t.name == "cortex-m0" and m.cpu != "cortex-m0":
        desc += " (executing the ARMv6-M binary)"
    what = f"{t.name} on {m.name}"
    with tempfile.TemporaryDirectory(prefix="tt-qemu-") as tmp:
        log_path = Path(tmp) / "plugin.log"
        cmd = ["qemu-system-arm", "-M", m.name, "-cpu", m.cpu, "-display", "none",
               "-monitor", "none", "-serial", "none", "-nic", "none",
               "-semihosting-config", "enable=on,target=native,chardev=tt_console",
               "-chardev", "stdio,id=tt_console",
               "-kernel", str(build.elf_path),
               "-plugin", plugin_arg, "-d", "plugin", "-D", str(log_path)]
        rc, out, err, dt = _execute(cmd, timeout_s, what)
        plugin_log = log_path.read_text(errors="replace") if log_path.exists() else ""
    err = "\n".join(ln for ln in err.splitlines() if "has no peer" not in ln)
    log = err + ("\n" if err else "") + plugin_log
    marks = [int(v) for v in re.findall(r"^tt-mark (\d+)$", plugin_log, re.M)]
    total_m = re.search(r"^tt-insns (\d+)$", plugin_log, re.M)
    stack_m = re.search(r"^tt-stack (\d+) (\d+)$", err, re.M)
    fault_m = re.search(r"^tt-fault (\d+) (\d+)$", err, re.M)
    if "Lockup" in err:
        raise RunError(f"{what}: CPU lockup (a fault while entering the fault handler; usually "
                       f"a stack overflow, stack is {build.stack_bytes} B)",
                       details=f"$ {' '.join(cmd)}\n{out}\n{log}")
    if fault_m:
        exc, pc = int(fault_m.group(1)), int(fault_m.group(2))
        raise RunError(f"{what}: {_EXCEPTION_NAMES.get(exc, f'exception {exc}')} at "
                       f"pc={pc:#010x} (in {_symbol_at(build, pc)})",
                       details=f"$ {' '.join(cmd)}\n{out}\n{log}")
    if rc != 0 and not stack_m:  # the program never reached tt_exit: QEMU itself failed
        first = err.strip().splitlines()[:1] or [f"exit status {rc}"]
        raise RunError(f"{what}: qemu-system-arm failed: {first[0][:200]}",
                       details=f"$ {' '.join(cmd)}\n{out}\n{log}")
    result = RunResult(
        target=t.name, machine=m.name, machine_description=desc, stdout=out, exit_code=rc,
        counts=_counts(marks), marks=tuple(marks),
        total=int(total_m.group(1)) if total_m else None, count_unit=t.count_unit,
        stack_used_bytes=int(stack_m.group(1)) if stack_m else None,
        stack_bytes=int(stack_m.group(2)) if stack_m else build.stack_bytes,
        wall_time_s=dt, command=tuple(cmd), log=log)
    return _finish(t, build, result, check)


def _run_simavr(t: Target, build: BuildResult, timeout_s: float, check: bool,
                max_cycles: int | None) -> RunResult:
    sym = build.symbols
    # .data and .bss start at 0x800100: the first machine whose SRAM holds them
    ram_end = (sym.get("_end", sym.get("__bss_end", 0x100)) & 0xFFFF) - 0x100
    m = next((mm for mm in t.machines if mm.ram_bytes is None or ram_end <= mm.ram_bytes), t.machines[0])
    runner = simavr_runner_path()
    exits = [sym[n] for n in ("tt_exit", "exit", "_exit") if n in sym]
    if not exits:
        raise RunError(f"{t.name}: no tt_exit or exit symbol in {build.elf_path.name}")
    floor = sym.get("_end", sym.get("__bss_end", 0)) & 0xFFFF
    cmd = [str(runner), str(build.elf_path), m.cpu, str(t.clock_hz),
           f"{sym.get('tt_bench_mark', 0):x}", ",".join(f"{a:x}" for a in sorted(set(exits))),
           str(max_cycles or 0), f"{floor:x}"]
    what = f"{t.name} on simavr" + (f" ({m.cpu})" if m is not t.machines[0] else "")
    rc, out, err, dt = _execute(cmd, timeout_s, what)
    marks = [int(v) for v in re.findall(r"^tt-mark (\d+)$", err, re.M)]
    stack_m = re.search(r"^tt-stack (\d+) (\d+)$", err, re.M)
    details = f"$ {' '.join(cmd)}\n{out}\n{err}"
    if rc != 0 or re.search(r"^tt-error", err, re.M):
        first = next((ln for ln in err.splitlines() if ln.strip()), f"exit status {rc}")
        raise RunError(f"{what}: runner failed: {first[:200]}", details=details)
    exit_m = re.search(r"^tt-exit (-?\d+) (\d+)$", err, re.M)
    if not exit_m:
        crash = re.search(r"^tt-crash (\S+) (\d+)$", err, re.M)
        if crash:
            pc = int(crash.group(1), 16)
            msg = f"simavr reports a crash at pc={pc:#06x} (in {_symbol_at(build, pc)})"
            if stack_m and int(stack_m.group(1)) >= int(stack_m.group(2)):
                msg = f"stack overflow: the stack grew over .data/.bss; then {msg}"
        elif re.search(r"^tt-limit", err, re.M):
            msg = f"cycle limit of {max_cycles} reached"
        elif re.search(r"^tt-done", err, re.M):
            msg = "the CPU went to sleep with interrupts disabled without calling tt_exit"
        else:
            msg = "stopped without an exit status"
        raise RunError(f"{what}: {msg}", details=details)
    result = RunResult(
        target=t.name, machine=m.name, machine_description=f"simavr {m.cpu} at "
        f"{t.clock_hz / 1e6:g} MHz", stdout=out, exit_code=int(exit_m.group(1)) & 0xFF,
        counts=_counts(marks), marks=tuple(marks), total=int(exit_m.group(2)),
        count_unit=t.count_unit,
        stack_used_bytes=int(stack_m.group(1)) if stack_m else None,
        stack_bytes=int(stack_m.group(2)) if stack_m else build.stack_bytes,
        wall_time_s=dt, command=tuple(cmd), log=err)
    return _finish(t, build, result, check)


def run(target: str | Target, build_result: BuildResult, timeout_s: float = 60.0, *,
        machine: str | None = None, check: bool = True,
        max_cycles: int | None = None) -> RunResult:
    """Run a program built by ``build`` for the same target.

    Args:
        target: target name or ``Target`` (must be the one ``build_result`` was built for).
        build_result: the program.
        timeout_s: wall-clock limit in seconds; the emulator is killed when it expires.
        machine: force one of the target's machines (e.g. ``"mps2-an385"`` for cortex-m0);
            default: the first that holds the program.
        check: raise ``RunError`` when the exit status is not 0 (else return it).
        max_cycles: AVR only: stop after this many cycles (``RunError``).

    Raises:
        UnknownTargetError, ToolchainMissingError: bad target or missing tools.
        RunError: timeout, fault, CPU lockup, crash, stack overflow, non-zero exit status
            (with ``check``), or the emulator failed; ``.details`` has the full output.
    """
    t = require_toolchain(target)
    if not isinstance(build_result, BuildResult):
        raise TargetError(f"run() needs a BuildResult, not {type(build_result).__name__}")
    if build_result.target != t.name:
        raise TargetError(f"program was built for {build_result.target}, not {t.name}")
    if build_result.kind != "executable":
        raise TargetError(f"{build_result.elf_path.name} is a shared library; load it with ctypes")
    if not build_result.elf_path.is_file():
        raise RunError(f"{t.name}: program file is gone: {build_result.elf_path}")
    if not timeout_s or timeout_s <= 0:
        raise TargetError(f"timeout_s must be positive, not {timeout_s!r}")
    if t.family == "host":
        return _run_host(t, build_result, timeout_s, check)
    if t.family == "cortex-m":
        return _run_qemu(t, build_result, timeout_s, check, machine)
    if t.family == "avr":
        return _run_simavr(t, build_result, timeout_s, check, max_cycles)
    raise TargetError(f"no runner for target family {t.family!r}")  # pragma: no cover

