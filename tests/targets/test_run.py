"""run(): output, exit status, exact counts, machines, timeouts and faults on every target."""

import time

import pytest

from tintin.targets import RunError, RunResult, TargetError, build, run, toolchain_status

from .helpers import (
    ALL_TARGETS,
    DOT_CHECKSUM,
    MCU_TARGETS,
    expected_dot_checksum,
    require_toolchain,
    write_c,
)

pytestmark = pytest.mark.emulator

SPIN_FOREVER = """
volatile uint32_t ticks;
int main(void) { tt_platform_init(); tt_puts("spinning\\n"); for (;;) { ticks++; } }
"""


@pytest.fixture(scope="module")
def dot_builds(tmp_path_factory):
    """dot_checksum.c for N = 64 and N = 128 on every available target."""
    out = {}
    for target in ALL_TARGETS:
        for n in (64, 128):
            if toolchain_status(target)[0]:
                out[target, n] = build(target, [DOT_CHECKSUM],
                                       tmp_path_factory.mktemp(f"{target}-{n}"),
                                       defines={"TT_TEST_N": n})
    return out


def _dot_build(dot_builds, target, n):
    require_toolchain(target)
    return dot_builds[target, n]


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_output_matches_python_on_every_target(dot_builds, target):
    r = run(target, _dot_build(dot_builds, target, 64))
    assert isinstance(r, RunResult)
    assert r.stdout == expected_dot_checksum(64)
    assert r.exit_code == 0 and r.wall_time_s > 0


@pytest.mark.parametrize("target", MCU_TARGETS)
def test_counts_are_exactly_repeatable(dot_builds, target):
    b = _dot_build(dot_builds, target, 64)
    first, second = run(target, b), run(target, b)
    assert len(first.counts) == 2  # three marks: dot product, checksum
    assert first.counts == second.counts and first.total == second.total
    assert first.marks == second.marks
    assert first.count_unit in ("instructions", "cycles")
    assert 0 < first.stack_used_bytes < first.stack_bytes


@pytest.mark.parametrize("target", MCU_TARGETS)
def test_counts_grow_with_the_work(dot_builds, target):
    small = run(target, _dot_build(dot_builds, target, 64))
    large = run(target, _dot_build(dot_builds, target, 128))
    for phase in range(2):  # dot product over N, checksum over 2N bytes
        ratio = large.counts[phase] / small.counts[phase]
        assert 1.8 < ratio < 2.1, (phase, small.counts, large.counts)
    assert large.total > small.total


def test_host_counts_nothing(dot_builds):
    r = run("host", _dot_build(dot_builds, "host", 64))
    assert r.counts == () and r.total is None and r.count_unit is None and r.machine == "host"


def test_cortex_m0_same_binary_same_counts_on_both_machines(dot_builds):
    b = _dot_build(dot_builds, "cortex-m0", 64)
    on_microbit = run("cortex-m0", b)
    on_an385 = run("cortex-m0", b, machine="mps2-an385")
    assert on_microbit.machine == "microbit" and on_an385.machine == "mps2-an385"
    assert "ARMv6-M" in on_an385.machine_description
    assert on_microbit.stdout == on_an385.stdout
    assert on_microbit.marks == on_an385.marks and on_microbit.total == on_an385.total


def test_cortex_m0_program_larger_than_microbit_runs_on_an385(tmp_path):
    require_toolchain("cortex-m0")
    src = write_c(tmp_path, "big.c", """
static uint8_t arena[64 * 1024];   /* > 16 KB: does not fit the micro:bit */
int main(void)
{
    uint32_t i, sum = 0;
    tt_platform_init();
    for (i = 0; i < sizeof arena; i++) arena[i] = (uint8_t)i;
    for (i = 0; i < sizeof arena; i++) sum += arena[i];
    tt_put_u32(sum);
    tt_putc('\\n');
    return 0;
}
""")
    b = build("cortex-m0", [src], tmp_path)
    r = run("cortex-m0", b)
    assert r.machine == "mps2-an385"
    assert r.stdout == f"{sum(i & 0xFF for i in range(65536))}\n"
    with pytest.raises(RunError, match="microbit"):
        run("cortex-m0", b, machine="microbit")


def test_cortex_m0_unaligned_access_faults_on_both_machines(tmp_path):
    require_toolchain("cortex-m0")
    src = write_c(tmp_path, "unaligned.c", """
volatile uint32_t sink, offset = 1;
static uint8_t buf[8];
__attribute__((noinline)) uint32_t load32(const void *p) { return *(const volatile uint32_t *)p; }
int main(void) { tt_platform_init(); sink = load32(buf + offset); return 0; }
""")
    b = build("cortex-m0", [src], tmp_path)
    for machine in ("microbit", "mps2-an385"):
        with pytest.raises(RunError, match=r"HardFault at pc=0x[0-9a-f]+ \(in load32\)"):
            run("cortex-m0", b, machine=machine)


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_endless_loop_is_killed_by_the_timeout(tmp_path, target):
    require_toolchain(target)
    b = build(target, [write_c(tmp_path, "spin.c", SPIN_FOREVER)], tmp_path)
    t0 = time.perf_counter()
    with pytest.raises(RunError, match="no exit within 1 s") as info:
        run(target, b, timeout_s=1.0)
    assert time.perf_counter() - t0 < 5.0
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("target", ALL_TARGETS)
def test_exit_status_is_reported(tmp_path, target):
    require_toolchain(target)
    src = write_c(tmp_path, "exit.c", """
int main(void) { tt_platform_init(); tt_puts("bye\\n"); tt_exit(42); }
""")
    b = build(target, [src], tmp_path)
    with pytest.raises(RunError, match="exit status 42") as info:
        run(target, b)
    assert info.value.result.stdout == "bye\n"
    r = run(target, b, check=False)
    assert r.exit_code == 42 and r.stdout == "bye\n"


@pytest.mark.parametrize("target", ["cortex-m3", "cortex-m4"])
def test_bus_fault_names_the_function(tmp_path, target):
    require_toolchain(target)
    src = write_c(tmp_path, "fault.c", """
__attribute__((noinline)) uint32_t read_nowhere(void) { return *(volatile uint32_t *)0x30000000u; }
int main(void) { tt_platform_init(); return (int)read_nowhere(); }
""")
    b = build(target, [src], tmp_path)
    with pytest.raises(RunError, match=r"HardFault at pc=.*\(in read_nowhere\)"):
        run(target, b)


@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "atmega328p"])
def test_stack_overflow_is_detected(tmp_path, target):
    require_toolchain(target)
    src = write_c(tmp_path, "recurse.c", """
volatile uint32_t depth = 100000;
__attribute__((noinline)) uint32_t dive(uint32_t n)
{
    volatile uint8_t pad[24];
    pad[0] = (uint8_t)n;
    return n == 0 ? 0 : dive(n - 1) + pad[0];
}
int main(void) { tt_platform_init(); tt_put_u32(dive(depth)); return 0; }
""")
    b = build(target, [src], tmp_path)
    with pytest.raises(RunError, match="stack|lockup|crash"):
        run(target, b, timeout_s=10)


def test_stack_high_water_mark_grows_with_stack_use(tmp_path):
    require_toolchain("cortex-m3")
    used = []
    for depth in (10, 40):
        src = write_c(tmp_path, f"r{depth}.c", f"""
__attribute__((noinline)) uint32_t dive(uint32_t n)
{{
    volatile uint8_t pad[24];
    pad[0] = (uint8_t)n;
    return n == 0 ? 0 : dive(n - 1) + pad[0];
}}
int main(void) {{ tt_platform_init(); tt_put_u32(dive({depth})); return 0; }}
""")
        prog = build("cortex-m3", [src], tmp_path / str(depth))
        used.append(run("cortex-m3", prog).stack_used_bytes)
    assert used[1] - used[0] >= 30 * 32  # >= 32 bytes per frame


def test_run_rejects_mismatched_target(dot_builds):
    b = _dot_build(dot_builds, "cortex-m3", 64)
    require_toolchain("cortex-m4")
    with pytest.raises(TargetError, match="built for cortex-m3"):
        run("cortex-m4", b)
    with pytest.raises(TargetError, match="valid machines"):
        run("cortex-m3", b, machine="microbit")


def test_sanitizer_finding_fails_the_host_run(tmp_path):
    require_toolchain("host")
    src = write_c(tmp_path, "ub.c", """
volatile int32_t big = 2147483647;
int main(void) { tt_platform_init(); tt_put_i32(big + 1); return 0; }
""")
    b = build("host", [src], tmp_path, sanitize=True)
    with pytest.raises(RunError, match="sanitizer"):
        run("host", b)
    assert run("host", build("host", [src], tmp_path / "plain")).exit_code == 0


BIG_BSS = """
static volatile uint8_t big[6000];
int main(void)
{
    uint16_t i;
    uint32_t s = 0;
    tt_platform_init();
    for (i = 0; i < sizeof big; ++i) big[i] = (uint8_t)i;
    for (i = 0; i < sizeof big; ++i) s += big[i];
    tt_put_u32(s); tt_putc('\\n');
    return 0;
}
"""


def test_avr_program_over_2kb_runs_on_the_atmega1284p_machine(tmp_path):
    """A program linked for more SRAM than the ATmega328P has (a float reference) runs on simavr's
    ATmega1284P, the same core, with its stack at that part's RAMEND."""
    require_toolchain("atmega328p")
    src = write_c(tmp_path, "big.c", BIG_BSS)
    b = build("atmega328p", [src], tmp_path / "out", ram_bytes=16 * 1024, flash_bytes=128 * 1024,
              extra_cflags=("-Wl,--defsym=__stack=0x40FF",))
    r = run("atmega328p", b, timeout_s=60)
    assert r.machine == "simavr-atmega1284p"
    assert r.stdout.split() == [str(sum(i & 0xFF for i in range(6000)))]
    small = build("atmega328p", [write_c(tmp_path, "spin.c", "int main(void) { tt_platform_init(); return 0; }")],
                  tmp_path / "small")
    assert run("atmega328p", small, timeout_s=60).machine == "simavr"
