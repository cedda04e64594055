"""Device profiles as W3C WoT Thing Descriptions 1.1 (JSON-LD).

A profile is a part that models train on, not a networked Thing with interaction affordances, so
the description has the TD's mandatory members (``@context``, ``title``, ``security``,
``securityDefinitions``) and no ``properties``/``actions``/``events``; its hardware is described
with OM measures and tintin terms (``tt:sramCapacity``, ``tt:flashCapacity``, ...).
"""

from __future__ import annotations

import hashlib

from .vocab import DEVICE_BASE, TD_CONTEXT_URL, DEVICE_CONTEXT, measure


def device_iri(name: str) -> str:
    return DEVICE_BASE + name


def describe_device(profile) -> dict:
    """The Thing Description of ``profile`` (a :class:`tintin.targets.DeviceProfile`), keyed by
    the SHA-256 of its profile file.

        from tintin.targets import load_device
        td = describe_device(load_device("rp2040"))
        td["title"], td["tt:sramCapacity"]["om:hasNumericalValue"]      # 'Raspberry Pi RP2040', 270336
    """
    iri = device_iri(profile.name)
    digest = hashlib.sha256(profile.path.read_bytes()).hexdigest()
    doc = {
        "@context": [TD_CONTEXT_URL, DEVICE_CONTEXT],
        "id": iri,
        "type": ["Thing", "tt:Microcontroller", "sosa:Platform"],
        "title": profile.title,
        "description": f"{profile.title}: {profile.core} core, "
                       f"{profile.sram_bytes} B SRAM, {profile.flash_bytes} B flash",
        "securityDefinitions": {"nosec_sc": {"id": iri + "#nosec_sc", "scheme": "nosec"}},
        "security": "nosec_sc",
        "tt:deviceName": profile.name,
        "tt:sha256": digest,
        "tt:core": profile.core,
        "tt:coreTitle": profile.core_profile.title,
        "tt:hasFPU": profile.fpu,
        "tt:clockFrequency": measure(iri + "#clock", profile.clock_hz, "hertz"),
        "tt:sramCapacity": measure(iri + "#sram", profile.sram_bytes, "byte"),
        "tt:flashCapacity": measure(iri + "#flash", profile.flash_bytes, "byte"),
        "tt:verifiedAgainstDatasheet": profile.verified,
        "tt:datasheet": f"{profile.datasheet_title}, revision {profile.datasheet_revision}",
    }
    energy = profile.energy_per_cycle_j
    if energy > 0:
        doc["tt:energyPerCycle"] = measure(iri + "#energy", float(energy), "joule")
        doc["tt:energyPerCycleIsEstimate"] = True
    if profile.emulator_target is not None:
        doc["tt:emulatorTarget"] = profile.emulator_target
    if profile.estimated:
        doc["tt:estimatedField"] = sorted(profile.estimated)
    return doc
