"""The runtime is strict, float-free C99 that gives the same results on every compiler and target.

* every source compiles with ``-std=c99 -Wall -Wextra -Werror -pedantic`` (host gcc, Cortex-M0,
  ATmega328P) and uses no float, no double, no allocation, no header but <stdint.h>/<stddef.h>;
* the MCU object files reference no soft-float helper;
* a driver that runs every function on edge cases prints the same checksum under
  AddressSanitizer + UBSan (any undefined behaviour aborts) and at -O2, and on the emulated
  Cortex-M0, Cortex-M3 and ATmega328P (16-bit int) (``@pytest.mark.emulator``).
"""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tintin.codegen import RUNTIME_DIR
from tintin.targets import TARGETS, build, run, toolchain_status
from tintin.targets.build import check_no_softfloat

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
EXTRA_WARNINGS = ["-Wshadow", "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wundef", "-Wcast-qual",
                  "-Wpointer-arith", "-Wdouble-promotion", "-Wfloat-equal"]
MCU_FLAGS = {
    "cortex-m0": ("arm-none-eabi-gcc", ["-mcpu=cortex-m0", "-mthumb", "-mfloat-abi=soft", "-Os"], "arm-none-eabi-size"),
    "atmega328p": ("avr-gcc", ["-mmcu=atmega328p", "-Os"], "avr-size"),
}
DRIVER = Path(__file__).resolve().parent / "c" / "runtime_checksum.c"
SOFTFLOAT = re.compile(r"__aeabi_[fd]|__aeabi_[il]2[fd]|__aeabi_[fd]2|[sdt]f3$|[sdt]f2$|__fix\w*[sd]f|__float\w*[sd]f|__fp_")


def sources() -> list[Path]:
    return sorted(RUNTIME_DIR.glob("*.c"))


def headers() -> list[Path]:
    return sorted(RUNTIME_DIR.glob("*.h"))


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def require(target: str) -> None:
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)


def test_sources_are_float_free_and_allocation_free():
    own = {p.name for p in headers()}
    for path in sources() + headers():
        code = strip_comments(path.read_text())
        for word in ("float", "double", "malloc", "calloc", "realloc", "free", "printf", "memcpy", "memset"):
            assert not re.search(rf"\b{word}\b", code), f"{path.name} uses {word}"
        for inc in re.findall(r'#\s*include\s*[<"]([^>"]+)[>"]', code):
            assert inc in ("stdint.h", "stddef.h") or inc in own, f"{path.name} includes {inc}"
        assert not re.search(r"\b(?:unsigned\s+)?(?:int|long|short)\b(?!\w)", re.sub(r"\b\w+_t\b", "", code)), \
            f"{path.name} uses a type of platform-dependent width (use <stdint.h> types)"


@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_host_compile_is_warning_free(tmp_path, opt):
    if shutil.which("gcc") is None:
        pytest.skip("no host gcc")
    for src in sources():
        cmd = ["gcc", *STRICT, *EXTRA_WARNINGS, opt, "-c", str(src), "-o", str(tmp_path / (src.stem + ".o"))]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("target", sorted(MCU_FLAGS))
def test_mcu_objects_compile_strictly_without_softfloat(tmp_path, target):
    cc, flags, size_tool = MCU_FLAGS[target]
    if shutil.which(cc) is None:
        pytest.skip(f"{cc} not installed (install with `make toolchains`)")
    total = 0
    for src in sources():
        obj = tmp_path / (src.stem + ".o")
        proc = subprocess.run([cc, *flags, *STRICT, *EXTRA_WARNINGS, "-ffreestanding", "-ffunction-sections",
                               "-fdata-sections", "-c", str(src), "-o", str(obj)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr
        assert check_no_softfloat(obj) == [], f"{src.name}: soft-float helpers referenced"
        nm = subprocess.run([cc.replace("gcc", "nm"), str(obj)], capture_output=True, text=True, check=True).stdout
        names = [line.split()[-1] for line in nm.splitlines() if line.strip()]
        assert not [n for n in names if SOFTFLOAT.search(n)], f"{src.name}: {names}"
        size = subprocess.run([size_tool, str(obj)], capture_output=True, text=True, check=True).stdout
        text, data = (int(v) for v in size.splitlines()[1].split()[:2])
        assert data == 0, f"{src.name}: initialised RAM data ({data} bytes): tables must stay in flash"
        total += text
    print(f"\n{target}: runtime object code {total} bytes (-Os)")


def _checksum_lines(stdout: str) -> list[str]:
    return [ln for ln in stdout.splitlines() if "=" in ln and not ln.startswith("checks=")]


@pytest.fixture(scope="module")
def host_checksums(tmp_path_factory):
    require("host")
    out = tmp_path_factory.mktemp("host-checksum")
    b = build("host", [DRIVER, *sources()], out, include_dirs=[RUNTIME_DIR], opt="-O2", name="checksum",
              extra_cflags=("-pedantic", "-Werror"))
    return _checksum_lines(run("host", b).stdout)


def test_sanitized_run_matches_optimised_run(tmp_path, host_checksums):
    b = build("host", [DRIVER, *sources()], tmp_path, include_dirs=[RUNTIME_DIR], opt="-O1", name="checksum_asan",
              sanitize=True, extra_cflags=("-pedantic", "-Werror"))
    r = run("host", b, timeout_s=120)
    assert _checksum_lines(r.stdout) == host_checksums
    assert len(host_checksums) == 6


EMULATED = [("cortex-m0", ()), ("cortex-m3", ()),  # the ATmega328P's 32 KB of flash hold one part at a time
            ("atmega328p", ("TT_CHECK_SKIP_OPS", "TT_CHECK_SKIP_SGD", "TT_CHECK_SKIP_CNN")),
            ("atmega328p", ("TT_CHECK_SKIP_NUMERICS", "TT_CHECK_SKIP_SGD", "TT_CHECK_SKIP_CNN")),
            ("atmega328p", ("TT_CHECK_SKIP_NUMERICS", "TT_CHECK_SKIP_OPS", "TT_CHECK_SKIP_CNN")),
            ("atmega328p", ("TT_CHECK_SKIP_NUMERICS", "TT_CHECK_SKIP_OPS", "TT_CHECK_SKIP_SGD"))]


@pytest.mark.emulator
@pytest.mark.parametrize("target,skip", EMULATED,
                         ids=["cortex-m0", "cortex-m3", "atmega328p-numerics", "atmega328p-ops", "atmega328p-sgd",
                              "atmega328p-cnn"])
def test_same_checksum_on_emulated_mcus(tmp_path, host_checksums, target, skip):
    require(target)
    defines = {name: None for name in skip}
    b = build(target, [DRIVER, *sources()], tmp_path, include_dirs=[RUNTIME_DIR], opt="-Os", name="checksum",
              defines=defines, extra_cflags=("-Werror",))
    assert check_no_softfloat(b) == []
    r = run(target, b, timeout_s=120)
    lines = _checksum_lines(r.stdout)
    assert lines and all(line in host_checksums for line in lines), (lines, host_checksums)
    print(f"\n{target} {' '.join('-D' + k for k in skip)}: flash {b.flash_bytes} B, RAM {b.data_bytes + b.bss_bytes} B, "
          f"stack used {r.stack_used_bytes} B, {r.count_unit} per phase {r.counts[::2]}")
