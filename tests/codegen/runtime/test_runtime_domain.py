"""The runtime's int8 domain: values in [-127, 127]. Inside it every accumulator bound holds exactly;
outside it (-128) the forward kernels saturate instead of overflowing (no undefined behaviour), and
the entry points reject such inputs."""

from pathlib import Path

import numpy as np
import pytest

from tintin.codegen import RUNTIME_DIR
from tintin.targets import build, run, toolchain_status

WORST_CASE = Path(__file__).resolve().parent / "c" / "domain_worst_case.c"


def test_check_domain_rejects_minus_128(rt):
    ok = np.array([-127, 0, 127, 5], np.int8)
    assert rt.load().tt_check_domain_s8(ok.ctypes.data, ok.size) == rt.TT_OK
    for i in range(ok.size):
        bad = ok.copy()
        bad[i] = -128
        assert rt.load().tt_check_domain_s8(bad.ctypes.data, bad.size) == rt.TT_ERR_ARG
    assert rt.load().tt_check_domain_s8(None, 0) == rt.TT_OK


def test_worst_case_accumulator_saturates_under_ubsan(tmp_path):
    """Fan-in 66,572, aligned bias at +-2**30, products of -128 and -127: the int32 sum would exceed
    2**31. Under UBSan (any undefined behaviour aborts) every forward variant runs, saturates, and
    they agree; at the domain's edge (127 x 127) the result is exact."""
    ok, reason = toolchain_status("host")
    if not ok:
        pytest.skip(reason)
    b = build("host", [WORST_CASE, *sorted(RUNTIME_DIR.glob("*.c"))], tmp_path, include_dirs=[RUNTIME_DIR],
              opt="-O1", name="domain_worst_case", sanitize=True, extra_cflags=("-pedantic", "-Werror"))
    out = run("host", b, timeout_s=120).stdout
    cases: dict[str, set[str]] = {}
    tag = None
    for line in out.splitlines():
        if line.endswith(":"):
            tag = line[:-1]
        elif line:
            kernel, rest = line.split(" ", 1)
            cases.setdefault(tag, set()).add(rest)
            assert "status=0" in rest, line
    assert set(cases) == {"positive", "positive-swapped", "negative", "both-minus-128", "domain-edge"}
    for tag, results in cases.items():
        assert len(results) == 1, (tag, results)  # every variant gives the same mantissa and scale
    assert cases["negative"] == {r.replace("y=", "y=-") for r in cases["positive"]}
    # the domain's edge is exact: the Python simulator gives the same mantissa and scale
    from tintin.numerics import QTensor, Scale
    from tintin.ops import linear_forward_s8

    k = 66572
    y = linear_forward_s8(QTensor(np.full((1, k), 127, np.int8), Scale(0)),
                          QTensor(np.full((1, k), 127, np.int8), Scale(0)),
                          QTensor(np.array([2**30], np.int32), Scale(0)))
    assert cases["domain-edge"] == {f"status=0 y={int(y.m[0, 0])} S={y.scale.S}"}
    assert y.scale.U == 0 and y.scale.D == 0


@pytest.mark.emulator
@pytest.mark.parametrize("target", ["cortex-m0", "cortex-m4"])
def test_check_domain_word_loop_on_cortex_m(tmp_path, target):
    """The Arm cores test four bytes per word: every length 1..13 at every word offset, with -128 at
    each position and none (neighbours of -128 and 0x80's bit patterns must not be taken for it)."""
    ok_, reason = toolchain_status(target)
    if not ok_:
        pytest.skip(reason)
    rng = np.random.default_rng(0)
    cases = []
    for n in range(1, 14):
        for off in range(4):
            base = rng.choice(np.array([-127, -1, 0, 1, 127, 126, -126], np.int8), n)
            cases.append((off, base.copy(), 0))
            for i in range(n):
                bad = base.copy()
                bad[i] = -128
                cases.append((off, bad, 1))
    body = []
    for j, (off, v, _) in enumerate(cases):
        vals = ", ".join(str(int(a)) for a in v)
        body.append(f"    {{ static const int8_t v[] = {{{vals}}}; size_t i; for (i = 0; i < {len(v)}u; ++i) buf[{off} + i] = v[i];\n"
                    f"      tt_put_i32(tt_check_domain_s8(buf + {off}, {len(v)}u) == TT_OK ? 0 : 1); tt_putc(','); }}")
    src = tmp_path / "domain.c"
    src.write_text('#include "tt_platform.h"\n#include "tt_runtime.h"\nstatic int8_t buf[24];\nint main(void)\n{\n'
                   "    tt_platform_init();\n" + "\n".join(body) + "\n    tt_putc('\\n');\n    return 0;\n}\n")
    b = build(target, [src, *sorted(RUNTIME_DIR.glob("*.c"))], tmp_path, include_dirs=[RUNTIME_DIR], opt="-O2",
              extra_cflags=("-Werror",))
    got = [int(t) for t in run(target, b, timeout_s=60).stdout.strip().split(",") if t]
    assert got == [bad for _, _, bad in cases]
