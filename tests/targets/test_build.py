"""build(), build_shared() and check_no_softfloat()."""

import ctypes

import pytest

from tintin.targets import (
    BuildError,
    BuildResult,
    build,
    build_shared,
    check_no_softfloat,
)

from .helpers import DOT_CHECKSUM, MCU_TARGETS, require_toolchain, write_c

FLOAT_PROGRAM = """
volatile float a = 1.5f, b = 2.25f;
volatile int32_t out;
int main(void)
{
    tt_platform_init();
    out = (int32_t)(a * b + a / b - (float)out);
    tt_put_i32(out);
    tt_putc('\\n');
    return 0;
}
"""


def test_host_build_reports_sizes_and_symbols(tmp_path):
    require_toolchain("host")
    b = build("host", [DOT_CHECKSUM], tmp_path, defines={"TT_TEST_N": 8})
    assert isinstance(b, BuildResult) and b.elf_path.is_file() and b.kind == "executable"
    assert b.text_bytes > 0 and b.stack_bytes is None
    assert {"main", "dot_s8", "tt_bench_mark"} <= set(b.symbols)


@pytest.mark.emulator
@pytest.mark.parametrize("target", MCU_TARGETS)
def test_mcu_build_sizes_symbols_and_no_softfloat(tmp_path, target):
    require_toolchain(target)
    b = build(target, [DOT_CHECKSUM], tmp_path, defines={"TT_TEST_N": 64})
    assert b.text_bytes > 500 and b.bss_bytes >= 128  # two 64-byte arrays
    assert b.stack_bytes and b.ram_bytes == b.data_bytes + b.bss_bytes + b.stack_bytes
    assert {"main", "dot_s8", "tt_bench_mark", "memcpy", "memset"} <= set(b.symbols) or \
        {"main", "dot_s8", "tt_bench_mark"} <= set(b.symbols)
    assert check_no_softfloat(b) == []
    assert check_no_softfloat(b.elf_path) == []


@pytest.mark.emulator
@pytest.mark.parametrize("target,helper", [
    ("cortex-m0", "__aeabi_fmul"),
    ("cortex-m3", "__aeabi_fdiv"),
    ("cortex-m4", "__aeabi_fadd"),
    ("atmega328p", "__mulsf3"),
])
def test_softfloat_helpers_found_in_float_program(tmp_path, target, helper):
    require_toolchain(target)
    b = build(target, [write_c(tmp_path, "f.c", FLOAT_PROGRAM)], tmp_path)
    found = check_no_softfloat(b)
    assert helper in found
    assert not any(h.startswith(("__aeabi_idiv", "__aeabi_uidiv", "__mulsi3")) for h in found)


@pytest.mark.emulator
def test_hard_float_target_needs_no_float_helpers(tmp_path):
    require_toolchain("cortex-m4f")
    b = build("cortex-m4f", [write_c(tmp_path, "f.c", FLOAT_PROGRAM)], tmp_path)
    assert check_no_softfloat(b) == []


def test_host_float_program_has_no_helpers(tmp_path):
    require_toolchain("host")
    b = build("host", [write_c(tmp_path, "f.c", FLOAT_PROGRAM)], tmp_path)
    assert check_no_softfloat(b) == []


@pytest.mark.parametrize("target", ["host", "cortex-m3", "atmega328p"])
def test_compile_error_raises_build_error_with_compiler_message(tmp_path, target):
    require_toolchain(target)
    src = write_c(tmp_path, "broken.c", "int main(void) { return undefined_thing + 1; }\n")
    with pytest.raises(BuildError) as info:
        build(target, [src], tmp_path)
    msg = str(info.value)
    assert "\n" not in msg and "undefined_thing" in msg and "error" in msg
    assert "broken.c" in info.value.details


def test_undefined_function_is_an_error_not_a_warning(tmp_path):
    require_toolchain("host")
    src = write_c(tmp_path, "implicit.c", "int main(void) { return no_such_function(); }\n")
    with pytest.raises(BuildError, match="no_such_function"):
        build("host", [src], tmp_path)


@pytest.mark.emulator
@pytest.mark.parametrize("target,kwargs", [
    ("atmega328p", {}),                        # 4 KB array > 2 KB SRAM
    ("cortex-m0", {"ram_bytes": 6 * 1024}),    # a device limit: 4 KB stack + 4 KB array
])
def test_ram_overflow_is_a_build_error(tmp_path, target, kwargs):
    require_toolchain(target)
    src = write_c(tmp_path, "big.c", "volatile uint8_t big[4096];\n"
                  "int main(void) { big[1] = 1; return big[1]; }\n")
    with pytest.raises(BuildError, match="overflow"):
        build(target, [src], tmp_path, **kwargs)


@pytest.mark.parametrize("kwargs,words", [
    ({"sources": []}, "no C sources"),
    ({"sources": ["/nonexistent/x.c"]}, "not found"),
    ({"defines": {"1BAD": 1}}, "invalid macro"),
    ({"defines": {"X": 1.5}}, "float"),
    ({"opt": "-funroll-loops"}, "optimisation"),
    ({"include_dirs": ["/nonexistent/inc"]}, "include directory"),
])
def test_bad_arguments_raise_build_error(tmp_path, kwargs, words):
    require_toolchain("host")
    args = {"sources": [DOT_CHECKSUM], **kwargs}
    with pytest.raises(BuildError, match=words):
        build("host", args.pop("sources"), tmp_path, **args)


@pytest.mark.emulator
def test_sanitize_is_host_only(tmp_path):
    require_toolchain("cortex-m3")
    with pytest.raises(BuildError, match="host"):
        build("cortex-m3", [DOT_CHECKSUM], tmp_path, sanitize=True)


def test_shared_library_through_ctypes(tmp_path):
    require_toolchain("host")
    lib_build = build_shared([DOT_CHECKSUM], tmp_path, defines={"TT_TEST_N": 4})
    assert lib_build.kind == "shared" and lib_build.elf_path.suffix == ".so"
    lib = ctypes.CDLL(str(lib_build.elf_path))
    lib.dot_s8.restype = ctypes.c_int32
    lib.dot_s8.argtypes = [ctypes.POINTER(ctypes.c_int8), ctypes.POINTER(ctypes.c_int8),
                           ctypes.c_uint16]
    xs = [127, -128, 5, -7, 100]
    ys = [127, -128, -3, 9, -100]
    arr = ctypes.c_int8 * len(xs)
    assert lib.dot_s8(arr(*xs), arr(*ys), len(xs)) == sum(x * y for x, y in zip(xs, ys))
