"""Integer lookup tables for the softmax cross-entropy error and the loss value.

The tables are generated once, on the host, from their mathematical definition; the generated
integers are the specification (the C runtime embeds exactly these values, see
``tintin.codegen``). Both use 256 segments with linear interpolation.

* ``EXP2_Q15[i] = round(2**(i/256) * 2**15)`` for ``i = 0..256`` (values 32768..65536):
  ``exp2_frac_q15(f)`` for a 16-bit fraction ``f`` returns ``2**(f/65536)`` in Q15.
* ``LOG2_Q16[i] = round(log2(1 + i/256) * 2**16)`` for ``i = 0..256`` (values 0..65536):
  ``log2_q16(x)`` returns ``log2(x)`` in Q16 for a positive integer ``x``.
* ``LOG2E_Q14 = round(log2(e) * 2**14)`` and ``LN2_Q16 = round(ln(2) * 2**16)``.
"""

from __future__ import annotations

import math

import numpy as np

TABLE_BITS = 8
EXP2_Q15 = np.array([round(2.0 ** (i / 256) * 2**15) for i in range(257)], dtype=np.int64)
LOG2_Q16 = np.array([round(math.log2(1 + i / 256) * 2**16) for i in range(257)], dtype=np.int64)
LOG2E_Q14 = round(math.log2(math.e) * 2**14)  # 23637
LN2_Q16 = round(math.log(2) * 2**16)  # 45426


def exp2_frac_q15(frac: np.ndarray) -> np.ndarray:
    """``2**(frac / 65536)`` in Q15 for integer ``frac`` in [0, 65536) (int64 array)."""
    idx = frac >> 8
    low = frac & 0xFF
    base = EXP2_Q15[idx]
    return base + (((EXP2_Q15[idx + 1] - base) * low + 128) >> 8)


def log2_q16(x: int) -> int:
    """``log2(x)`` in Q16 for a positive Python int (integer part from the bit length, fraction from
    the table with linear interpolation on the next 8 bits)."""
    if x <= 0:
        raise ValueError("log2 of a non-positive number")
    e = x.bit_length() - 1
    # mantissa in Q16: x / 2**e in [1, 2) -> 16 fraction bits
    frac16 = ((x << 16) >> e) - (1 << 16) if e <= 16 else (x >> (e - 16)) - (1 << 16)
    idx = frac16 >> 8
    low = frac16 & 0xFF
    base = int(LOG2_Q16[idx])
    return (e << 16) + base + (((int(LOG2_Q16[idx + 1]) - base) * low + 128) >> 8)
