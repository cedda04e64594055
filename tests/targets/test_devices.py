"""Device profiles: the bundled files load, and malformed files give clear errors."""

import re
import shutil

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tintin.targets import (
    TARGETS,
    DeviceProfile,
    DeviceProfileError,
    UnknownDeviceError,
    list_devices,
    load_device,
)
from tintin.targets.device_profiles import CITED_FIELDS, DEVICES_DIR, load_cores, parse_device

REQUIRED = {"rp2040", "stm32f103c8", "nrf52840", "apollo3", "atmega328p", "msp430fr5994"}


def test_required_devices_are_bundled():
    assert REQUIRED <= set(list_devices())
    assert "cores" not in list_devices()


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profile_loads_with_sane_values_and_citations(name):
    d = load_device(name)
    assert isinstance(d, DeviceProfile) and d.name == name
    assert d.sram_bytes > 0 and d.flash_bytes > d.sram_bytes
    assert 1_000_000 <= d.clock_hz <= 500_000_000
    assert 1.0 <= d.supply_voltage_v <= 5.5
    assert 1.0 <= d.active_current_ua_per_mhz <= 2000.0
    assert d.emulator_target is None or d.emulator_target in TARGETS
    for field in CITED_FIELDS:
        assert d.sources[field].strip()
    assert d.datasheet_title and d.datasheet_revision
    assert 1.0 <= d.core_profile.average_cpi <= 3.0
    with pytest.raises(Exception):
        d.sram_bytes = 1  # frozen


def test_known_values():
    rp = load_device("rp2040")
    assert rp.sram_bytes == 264 * 1024 and rp.emulator_target == "cortex-m0" and not rp.fpu
    assert "active_current_ua_per_mhz" in rp.estimated
    assert load_device("nrf52840").fpu and load_device("apollo3").fpu
    assert load_device("stm32f103c8").sram_bytes == 20 * 1024
    assert load_device("msp430fr5994").emulator_target is None
    avr = load_device("atmega328p")
    assert avr.sram_bytes == 2048 and avr.emulator_target == "atmega328p"


def test_energy_and_latency_estimates():
    avr = load_device("atmega328p")  # 5 V * 650 uA/MHz = 3.25 nJ per cycle
    assert avr.energy_per_cycle_j == pytest.approx(3.25e-9)
    assert avr.estimate_energy_j(16_000_000) == pytest.approx(0.052)
    assert avr.active_power_w(16_000_000) == pytest.approx(0.052)
    assert avr.estimate_seconds(20_000_000) == pytest.approx(1.0)
    core = load_device("rp2040").core_profile
    expected = sum(core.typical_mix[c] * core.cycles[c] for c in core.cycles)
    assert core.average_cpi == pytest.approx(expected)
    assert load_device("rp2040").estimate_cycles(1000) == pytest.approx(1000 * expected)


def test_cores_file_lists_every_core_used():
    cores = load_cores()
    assert {load_device(n).core for n in list_devices()} <= set(cores)
    for core in cores.values():
        assert sum(core.typical_mix.values()) == pytest.approx(1.0)
        assert core.source


@pytest.mark.parametrize("bad", ["rp2041", "", "RP2040", "cores", None])
def test_unknown_device_lists_valid_ones(bad):
    with pytest.raises(UnknownDeviceError) as info:
        load_device(bad)
    msg = str(info.value)
    assert "\n" not in msg and "rp2040" in msg and "apollo3" in msg


# --- malformed profiles ---------------------------------------------------------------------

def _copy(tmp_path, name="stm32f103c8"):
    path = tmp_path / f"{name}.toml"
    shutil.copy(DEVICES_DIR / f"{name}.toml", path)
    return path


def _replace_line(path, key, new_line):
    text = path.read_text()
    pattern = re.compile(rf"^{re.escape(key)} = .*$", re.M)
    assert pattern.search(text), key
    path.write_text(pattern.sub(new_line, text, count=1))


def _error(path):
    with pytest.raises(DeviceProfileError) as info:
        parse_device(path)
    msg = str(info.value)
    assert "\n" not in msg and path.name in msg
    return msg


def test_copy_of_bundled_profile_parses(tmp_path):
    assert parse_device(_copy(tmp_path)).sram_bytes == 20480


@pytest.mark.parametrize("key,line,field,words", [
    ("sram_bytes", "", "sram_bytes", "missing"),
    ("sram_bytes", 'sram_bytes = "20K"', "sram_bytes", "integer"),
    ("sram_bytes", "sram_bytes = -20480", "sram_bytes", "positive"),
    ("flash_bytes", "flash_bytes = 0", "flash_bytes", "positive"),
    ("clock_hz", "clock_hz = 72.0e6", "clock_hz", "integer"),
    ("fpu", "fpu = 0", "fpu", "true or false"),
    ("sram_bytes", "sram_bytes = true", "sram_bytes", "boolean"),
    ("supply_voltage_v", "supply_voltage_v = -3.3", "supply_voltage_v", "positive"),
    ("active_current_ua_per_mhz", 'active_current_ua_per_mhz = "375"',
     "active_current_ua_per_mhz", "number"),
    ("core", 'core = "cortex-m99"', "core", "unknown core"),
    ("emulator_target", 'emulator_target = "cortex-m7"', "emulator_target", "unknown target"),
    ("name", 'name = "stm32"', "name", "file name"),
    ("estimated", 'estimated = ["colour"]', "estimated", "colour"),
])
def test_malformed_field_is_named(tmp_path, key, line, field, words):
    path = _copy(tmp_path)
    _replace_line(path, key, line)
    msg = _error(path)
    assert f"'{field}'" in msg and words in msg


def test_missing_citation_is_named(tmp_path):
    path = _copy(tmp_path)
    text = path.read_text()
    path.write_text(re.sub(r"^clock_hz = \"DS5319.*$", "", text, flags=re.M))
    assert "'sources.clock_hz'" in _error(path)


def test_invalid_toml_is_reported(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("name = \n")
    assert "TOML" in _error(path)


def test_missing_file_is_reported(tmp_path):
    assert "cannot read" in _error(tmp_path / "absent.toml")


@settings(max_examples=25, deadline=None)
@given(field=st.sampled_from(["sram_bytes", "flash_bytes", "clock_hz"]),
       value=st.integers(max_value=0, min_value=-(2**40)))
def test_any_non_positive_size_is_rejected(tmp_path_factory, field, value):
    path = _copy(tmp_path_factory.mktemp("dev"))
    _replace_line(path, field, f"{field} = {value}")
    msg = _error(path)
    assert f"'{field}'" in msg and "positive" in msg
