"""Target registry: names, errors and flags."""

import pytest

from tintin.targets import TARGETS, Target, UnknownTargetError, get_target, toolchain_status
from tintin.targets.build import COMMON_CFLAGS, MCU_CFLAGS


def test_all_required_targets_are_registered():
    assert set(TARGETS) == {"host", "cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f", "cortex-m33",
                            "atmega328p"}


def test_cortex_m33_links_for_the_secure_aliases_of_mps2_an505():
    """The M33 starts in secure state with its vector table at 0x10000000: code and RAM are linked
    at the secure aliases; every other Cortex-M target keeps 0x00000000 / 0x20000000."""
    t = get_target("cortex-m33")
    assert (t.flash_origin, t.ram_origin) == (0x10000000, 0x38000000)
    assert [m.name for m in t.machines] == ["mps2-an505"]
    assert "-mcpu=cortex-m33" in t.arch_flags
    assert all((TARGETS[n].flash_origin, TARGETS[n].ram_origin) == (0, 0x20000000)
               for n in ("cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f"))


def test_get_target_returns_target_and_passes_targets_through():
    t = get_target("cortex-m3")
    assert isinstance(t, Target) and t.name == "cortex-m3"
    assert get_target(t) is t


@pytest.mark.parametrize("bad", ["cortex-m7", "", "HOST", None, 3])
def test_unknown_target_message_is_one_line_listing_valid_names(bad):
    with pytest.raises(UnknownTargetError) as info:
        get_target(bad)
    msg = str(info.value)
    assert "\n" not in msg
    assert all(name in msg for name in TARGETS)
    assert isinstance(info.value, KeyError)  # usable as a lookup failure too


def test_toolchain_status_rejects_unknown_target():
    with pytest.raises(UnknownTargetError):
        toolchain_status("z80")


def test_toolchain_status_reports_missing_tool_with_install_hint(monkeypatch):
    import tintin.targets.toolchain as tc

    real_which = tc.shutil.which
    monkeypatch.setattr(tc.shutil, "which",
                        lambda tool: None if tool == "qemu-system-arm" else real_which(tool))
    ok, reason = toolchain_status("cortex-m3")
    assert not ok
    assert "qemu-system-arm" in reason and "make toolchains" in reason
    assert "apt-get install" in reason and "\n" not in reason


def test_flags_are_freestanding_c99_and_float_abi_matches():
    assert "-std=c99" in COMMON_CFLAGS and "-ffunction-sections" in COMMON_CFLAGS
    assert "-ffreestanding" in MCU_CFLAGS and "-fno-tree-loop-distribute-patterns" in MCU_CFLAGS
    assert "-mcpu=cortex-m0" in TARGETS["cortex-m0"].arch_flags
    assert "-mfloat-abi=soft" in TARGETS["cortex-m4"].arch_flags
    m4f = TARGETS["cortex-m4f"]
    assert m4f.hard_float and "-mfloat-abi=hard" in m4f.arch_flags
    assert TARGETS["atmega328p"].clock_hz == 16_000_000


def test_cortex_m0_prefers_microbit_and_falls_back_to_an385():
    machines = TARGETS["cortex-m0"].machines
    assert [m.name for m in machines] == ["microbit", "mps2-an385"]
    assert machines[0].ram_bytes == 16 * 1024 and machines[0].cpu == "cortex-m0"
    assert machines[1].ram_bytes >= TARGETS["cortex-m0"].ram_bytes  # 264 KB class fits


def test_count_units():
    assert TARGETS["host"].count_unit is None
    assert TARGETS["atmega328p"].count_unit == "cycles"
    assert all(TARGETS[t].count_unit == "instructions"
               for t in ("cortex-m0", "cortex-m3", "cortex-m4", "cortex-m4f"))
