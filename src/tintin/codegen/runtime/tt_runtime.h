/* tt_runtime.h - the tintin C training runtime: include this one header.
 *
 * Portable C99 (32-bit ARM, 8-bit AVR with 16-bit int, any hosted compiler): integer arithmetic only,
 * no allocation, only <stdint.h> and <stddef.h>. Bit-exact with the Python simulator
 * (tintin.numerics, tintin.ops, tintin.optim); docs/c-runtime.md maps every function to its
 * Python counterpart and lists the accumulator bounds.
 */
#ifndef TT_RUNTIME_H
#define TT_RUNTIME_H

#include "tt_types.h"
#include "tt_numerics.h"
#include "tt_ops.h"
#include "tt_optim.h"
#include "tt_rows.h"

#define TT_RUNTIME_VERSION 1

#endif /* TT_RUNTIME_H */
