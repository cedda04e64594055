"""tt_checkpoint.c through ctypes, over the flash simulator: whatever the state, the flash geometry,
the operation a power cut hits and how a torn write or a flipped bit garbles the flash, a restore
gives exactly the last committed state or the one being saved, never a corrupt or mixed one."""

import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from checkpoint_lib import (CUT_AFTER, CUT_BEFORE, CUT_TORN, TT_ERR_ARG, TT_ERR_IO, TT_ERR_NO_STATE, TT_OK, Flash,
                            load)
from tintin.codegen.checkpoint import layout, parse_slot

HASH = 0x1234ABCD


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    return load(tmp_path_factory.mktemp("ckpt"))


def random_state(rng, sizes):
    return [rng.integers(0, 256, size=n, dtype=np.uint8) for n in sizes]


def zeros_like(arrays):
    return [np.zeros_like(a) for a in arrays]


def region_bytes(sizes, page, align, slots):
    return slots * layout(0, page, align, sum(sizes)).slot_bytes


def same(a, b):
    return all(np.array_equal(x, y) for x, y in zip(a, b))


def restored(flash, sizes, model_hash=HASH):
    out = [np.full(n, 0x5A, dtype=np.uint8) for n in sizes]
    return flash.restore(model_hash, out), out


@given(data=st.binary(max_size=600), start=st.integers(0, 2**32 - 1))
def test_crc32_is_zlibs(lib, data, start):
    buf = np.frombuffer(data, dtype=np.uint8).copy() if data else np.zeros(1, np.uint8)
    assert lib.tt_crc32(start, buf.ctypes.data, len(data)) == zlib.crc32(data, start)


geometry = st.tuples(st.sampled_from([32, 64, 256, 1024]), st.sampled_from([1, 2, 4, 8, 16, 32, 64]),
                     st.integers(2, 3)).filter(lambda g: g[1] <= g[0])


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sizes=st.lists(st.integers(0, 700), min_size=1, max_size=4), geo=geometry, seed=st.integers(1, 2**32 - 1),
       saves_before=st.integers(1, 3), kind=st.sampled_from([CUT_BEFORE, CUT_AFTER, CUT_TORN]), data=st.data())
def test_a_cut_at_any_operation_restores_the_committed_or_the_new_state(lib, sizes, geo, seed, saves_before, kind,
                                                                        data):
    page, align, slots = geo
    rng = np.random.default_rng(seed)
    flash = Flash(lib, region_bytes(sizes, page, align, slots), page, align)
    committed = None
    for _ in range(saves_before):
        committed = random_state(rng, sizes)
        assert flash.save(HASH, committed) == TT_OK
    new = random_state(rng, sizes)
    n_ops = flash.ops_of_save(HASH, new)
    at = data.draw(st.integers(0, n_ops - 1), label="cut at operation")
    flash.arm(at, kind, seed)
    status = flash.save(HASH, new)
    completed = at == n_ops - 1 and kind != CUT_BEFORE
    assert status == (TT_OK if completed else TT_ERR_IO)
    flash.power_on()
    st_, got = restored(flash, sizes)
    assert st_ == TT_OK
    assert same(got, committed) or (completed and same(got, new))
    if kind == CUT_AFTER and completed:
        assert same(got, new)
    assert flash.sim.misuse == 0  # every call kept to the page and alignment rules
    # the Python reader of the format agrees on what the newest valid slot holds
    lay = layout(flash.mem.size, page, align, sum(sizes))
    slots_ = [parse_slot(flash.mem.tobytes(), i, lay, sum(sizes), HASH) for i in range(slots)]
    newest = max((s for s in slots_ if s.valid), key=lambda s: s.sequence)
    assert newest.payload == b"".join(a.tobytes() for a in got)
    # and the next save, cut nowhere, becomes the newest state
    again = random_state(rng, sizes)
    assert flash.save(HASH, again) == TT_OK
    assert same(restored(flash, sizes)[1], again)


def test_torn_writes_at_every_operation_with_many_seeds(lib):
    sizes, page, align = [300, 41, 7], 64, 8
    rng = np.random.default_rng(3)
    flash = Flash(lib, region_bytes(sizes, page, align, 2), page, align)
    old = random_state(rng, sizes)
    assert flash.save(HASH, old) == TT_OK
    image = flash.mem.copy()
    new = random_state(rng, sizes)
    n_ops = flash.ops_of_save(HASH, new)
    outcomes = {"old": 0, "new": 0}
    for at in range(n_ops):
        for seed in range(1, 9):
            flash.mem[:] = image
            flash.power_on()
            flash.arm(at, CUT_TORN, seed * 7919 + at)
            flash.save(HASH, new)
            flash.power_on()
            status, got = restored(flash, sizes)
            assert status == TT_OK
            if same(got, old):
                outcomes["old"] += 1
            else:
                assert at == n_ops - 1 and same(got, new), f"operation {at}, seed {seed}: corrupt restore"
                outcomes["new"] += 1
    assert outcomes["old"] >= n_ops * 8 - 8


@settings(max_examples=150, deadline=None)
@given(offset=st.integers(0, 2**31), bit=st.integers(0, 7), seed=st.integers(0, 1000))
def test_a_flipped_bit_falls_back_to_the_other_slot(lib, offset, bit, seed):
    sizes, page, align = [200, 13], 256, 4
    rng = np.random.default_rng(seed)
    flash = Flash(lib, region_bytes(sizes, page, align, 2), page, align)
    a, b = random_state(rng, sizes), random_state(rng, sizes)
    assert flash.save(HASH, a) == TT_OK
    assert flash.save(HASH, b) == TT_OK  # b in slot 1, a in slot 0
    lay = layout(flash.mem.size, page, align, sum(sizes))
    offset %= flash.mem.size
    flash.flip(offset, bit)
    status, got = restored(flash, sizes)
    assert status == TT_OK
    slot, within = divmod(offset, lay.slot_bytes)
    checked = within < 32 or lay.payload_offset <= within < lay.payload_offset + sum(sizes) or \
        lay.commit_offset <= within < lay.commit_offset + 16
    if slot == 1 and checked:
        assert same(got, a)
    else:
        assert same(got, b)


def test_flips_in_both_slots_leave_no_state_and_the_regions_untouched(lib):
    sizes, page, align = [100], 128, 4
    flash = Flash(lib, region_bytes(sizes, page, align, 2), page, align)
    rng = np.random.default_rng(0)
    assert flash.save(HASH, random_state(rng, sizes)) == TT_OK
    assert flash.save(HASH, random_state(rng, sizes)) == TT_OK
    lay = layout(flash.mem.size, page, align, 100)
    flash.flip(lay.payload_offset + 5, 1)
    flash.flip(lay.slot_bytes + lay.payload_offset + 50, 6)
    status, got = restored(flash, sizes)
    assert status == TT_ERR_NO_STATE
    assert np.all(got[0] == 0x5A)
    # a save after that still works, into a slot that holds no valid state
    fresh = random_state(rng, sizes)
    assert flash.save(HASH, fresh) == TT_OK
    assert same(restored(flash, sizes)[1], fresh)


def test_another_models_state_is_refused(lib):
    sizes = [64, 64]
    flash = Flash(lib, region_bytes(sizes, 256, 4, 2), 256, 4)
    state = random_state(np.random.default_rng(1), sizes)
    assert flash.save(HASH, state) == TT_OK
    status, got = restored(flash, sizes, model_hash=HASH ^ 1)
    assert status == TT_ERR_NO_STATE and all(np.all(g == 0x5A) for g in got)
    assert restored(flash, [64, 65])[0] in (TT_ERR_NO_STATE, TT_ERR_ARG)  # another layout: never loaded
    assert flash.save(HASH ^ 1, state) == TT_OK
    assert restored(flash, sizes, model_hash=HASH ^ 1)[0] == TT_OK


def test_a_failed_flash_call_keeps_the_previous_state(lib):
    sizes = [500]
    flash = Flash(lib, region_bytes(sizes, 256, 4, 2), 256, 4)
    rng = np.random.default_rng(2)
    old = random_state(rng, sizes)
    assert flash.save(HASH, old) == TT_OK
    flash.power_on()
    flash.arm(0, CUT_BEFORE, 1)
    assert flash.save(HASH, random_state(rng, sizes)) == TT_ERR_IO
    assert flash.restore(HASH, [np.zeros(500, np.uint8)]) == TT_ERR_IO  # power is still off: reads fail
    flash.power_on()
    assert same(restored(flash, sizes)[1], old)


def test_slots_rotate_and_wear_is_one_slot_of_erases_per_save(lib):
    sizes, page = [1000], 256
    flash = Flash(lib, region_bytes(sizes, page, 4, 3), page, 4)
    rng = np.random.default_rng(4)
    lay = layout(flash.mem.size, page, 4, 1000)
    for i in range(7):
        flash.power_on()
        assert flash.save(HASH, random_state(rng, sizes)) == TT_OK
        assert flash.sim.erases == lay.slot_bytes // page
        seqs = [parse_slot(flash.mem.tobytes(), k, lay, 1000, HASH) for k in range(3)]
        assert seqs[i % 3].valid and seqs[i % 3].sequence == i + 1


@pytest.mark.parametrize("size, page, align", [(1024, 256, 4),  # one slot only
                                               (4096, 256, 3),  # alignment not a power of two
                                               (4096, 48, 4),  # page not a multiple of 32
                                               (4096, 256, 128)])  # alignment above the staging buffer
def test_bad_flash_descriptions_are_refused(lib, size, page, align):
    flash = Flash(lib, size, page, align)
    assert flash.save(HASH, [np.zeros(600, np.uint8)]) == TT_ERR_ARG
    assert flash.restore(HASH, [np.zeros(600, np.uint8)]) == TT_ERR_ARG


def test_an_empty_flash_has_no_state(lib):
    flash = Flash(lib, 2048, 256, 4)
    assert restored(flash, [10])[0] == TT_ERR_NO_STATE
