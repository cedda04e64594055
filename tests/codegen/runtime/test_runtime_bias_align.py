"""``tt_align_bias_row`` (the bias loop of the dense forward pass: the multiplier checked once, a bias
below 2**16 in one 32-bit multiply-add) and ``tt_align_bias_one`` against
:func:`tintin.numerics.rescale.apply_multiplier` (nearest, clipped to +-2**30), on the host and the
Arm cores: every shift n from 1 to 31, multipliers at the edges of [0, 2**15) and outside it (the
general path), biases at the int32 limits, on both sides of 2**16 and random."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tintin.codegen import RUNTIME_DIR
from tintin.codegen.runtime_files import runtime_files_for
from tintin.numerics import Scale
from tintin.numerics.bounds import BIAS_ALIGN_LIMIT
from tintin.numerics.rescale import apply_multiplier
from tintin.targets import build, run, toolchain_status

from test_runtime_emulator import PRINT_HELPERS_C, c_array, parse

EDGE_BIASES = [-2**31, 2**31 - 1, 0, 1, -1] + [s * (2**k + d) for k in (7, 15, 16, 17, 23, 30) for d in (-1, 0, 1)
                                              for s in (1, -1)]


def program(bs: list[int], ms: list[int]) -> str:
    """Prints r<j><n as a letter> (tt_align_bias_row) and o<j><n> (tt_align_bias_one) for every
    multiplier ms[j] and shift n in 1..31, plus r<j>0 / o<j>0 for the shifts 0 and 32 (the general
    path)."""
    return f"""#include "tt_platform.h"
#include "tt_runtime.h"
#include "tt_internal.h"
{c_array("int32_t", "bv", bs)}{c_array("int32_t", "mv", ms)}static int32_t r[{len(bs)}];
{PRINT_HELPERS_C}
int main(void)
{{
    const tt_scale_t s0 = {{0, 0, 0}};
    char name[4] = {{0, 0, 0, 0}};
    size_t i;
    uint8_t j, n;
    tt_platform_init();
    ok(TT_OK);
    for (j = 0; j < {len(ms)}u; ++j) {{
        for (n = 0; n <= 32u; ++n) {{
            const tt_multiplier_t mult = {{mv[j], n}};
            name[1] = (char)('a' + j);
            name[2] = (char)(64 + n);
            tt_align_bias_row(bv, {len(bs)}u, mult, r);
            name[0] = 'r';
            put(name, s0, r, NULL, {len(bs)}u);
            for (i = 0; i < {len(bs)}u; ++i) r[i] = tt_align_bias_one(bv[i], mult);
            name[0] = 'o';
            put(name, s0, r, NULL, {len(bs)}u);
        }}
    }}
    return 0;
}}
"""


def check(target: str, tmp_path_factory, seed: int, ms: list[int]) -> None:
    ok, reason = toolchain_status(target)
    if not ok:
        pytest.skip(reason)
    rng = np.random.default_rng(seed)
    bs = EDGE_BIASES + [int(v) for v in rng.integers(-2**31, 2**31, 12, dtype=np.int64)]
    bs += [int(v) for v in rng.integers(-2**16 + 1, 2**16, 12)]
    out = tmp_path_factory.mktemp(target)
    text = program(bs, ms)
    (out / "align.c").write_text(text)
    files = [RUNTIME_DIR / f for f in runtime_files_for([text]) if f.endswith(".c")]
    b = build(target, [out / "align.c", *files], out, include_dirs=[RUNTIME_DIR], opt="-O2",
              extra_cflags=("-Werror",))
    got = parse(run(target, b, timeout_s=60).stdout)
    for j, m in enumerate(ms):
        for n in range(0, 33):
            want = [int(v) for v in apply_multiplier(np.array(bs, dtype=np.int64), (m, n), limit=BIAS_ALIGN_LIMIT)]
            for kind in "ro":
                assert got[f"{kind}{chr(97 + j)}{chr(64 + n)}"] == (Scale(0), want), (kind, m, n)


MULTIPLIERS = st.lists(st.one_of(st.integers(0, 2**15 - 1), st.sampled_from([0, 1, 2**14, 2**15 - 1, 2**15, 2**20])),
                       min_size=3, max_size=3)


@settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), ms=MULTIPLIERS)
def test_bias_row_alignment_on_the_host(tmp_path_factory, seed, ms):
    check("host", tmp_path_factory, seed, ms)


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m3", "cortex-m4"])
@settings(max_examples=2, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), ms=MULTIPLIERS)
def test_bias_row_alignment_on_arm_cores(tmp_path_factory, target, seed, ms):
    check(target, tmp_path_factory, seed, ms)
