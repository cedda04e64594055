"""The generated C table header is current and the C table functions equal the Python ones."""

import numpy as np

from tintin.codegen import tables
from tintin.numerics.tables import exp2_frac_q15, log2_q16


def test_generated_header_is_current():
    assert tables.is_current(), "run: python -m tintin.codegen.tables (tt_tables.h is out of date)"


def test_header_check_entry_point(tmp_path, monkeypatch, capsys):
    assert tables.main(["--check"]) == 0
    stale = tmp_path / "tt_tables.h"
    stale.write_text(tables.render().replace("23637", "23638"))
    assert not tables.is_current(stale)
    monkeypatch.setattr(tables, "HEADER_PATH", stale)
    assert tables.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err


def test_exp2_table_every_fraction(rt):
    frac = np.arange(0, 65536, 1, dtype=np.int64)
    assert np.array_equal(rt.exp2_frac_q15(frac), exp2_frac_q15(frac))


def test_log2_table(rt):
    xs = list(range(1, 5000)) + [2**k + d for k in range(12, 32) for d in (-1, 0, 1, 12345)]
    xs += [int(v) for v in np.random.default_rng(1).integers(1, 2**32, 2000)]
    for x in xs:
        if 0 < x < 2**32:
            assert rt.log2_q16(x) == log2_q16(x), x
