/* tt_checkpoint.h - training state in flash that survives power loss.
 *
 * The firmware describes its flash region with a tt_flash_ops_t (erase a page, program, read,
 * page size, write alignment, region base and size). The region holds two or more slots, written
 * copy-on-write: a save never touches the newest valid slot. Each slot is
 *
 *   header (32 bytes)   magic "TTCK", format version, model hash, sequence number, payload
 *                       length, payload CRC-32, slot bytes, CRC-32 of the header
 *   payload             the training state, byte for byte as it sits in memory
 *   commit record       magic "TTCM", sequence number, the header's CRC-32, CRC-32 of the record
 *
 * written in that order (erase, header, payload, commit): the commit record is programmed last,
 * so a slot without a matching commit record was never completed. Restore takes the slot with
 * the highest sequence number whose header, commit record and payload CRC-32 all check out and
 * whose model hash is this model's, and falls back to the next one. docs/file-format.md gives
 * the byte layout, docs/field.md the fault model and a firmware example.
 *
 * Integer-only, no allocation: a TT_CKPT_BUFFER_BYTES staging buffer on the stack.
 */
#ifndef TT_CHECKPOINT_H
#define TT_CHECKPOINT_H

#include "tt_types.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TT_CKPT_MAGIC 0x4B435454UL        /* "TTCK" little-endian */
#define TT_CKPT_COMMIT_MAGIC 0x4D435454UL /* "TTCM" little-endian */
#define TT_CKPT_VERSION 1UL
#define TT_CKPT_HEADER_BYTES 32UL
#define TT_CKPT_COMMIT_BYTES 16UL

/* Bytes programmed per call (a multiple of the write alignment; at most one page). Raise it for
 * flash that programs whole 256-byte pages, e.g. -DTT_CKPT_BUFFER_BYTES=256 on an RP2040. */
#ifndef TT_CKPT_BUFFER_BYTES
#define TT_CKPT_BUFFER_BYTES 64u
#endif

/* The flash region the firmware gives to the checkpoint. Addresses are absolute (base ...
 * base + size - 1); every callback returns 0 on success, anything else fails the call with
 * TT_ERR_IO. erase_page: set the page at addr (page-aligned) to 0xFF. program: write len bytes
 * (addr and len multiples of write_align, within one page, into erased flash). read: copy len
 * bytes at addr (any alignment). */
typedef struct {
    void *ctx;            /* passed to every callback */
    uint32_t base;        /* first address of the region (page-aligned) */
    uint32_t size;        /* bytes of the region (a multiple of page_size) */
    uint32_t page_size;   /* erase unit, a multiple of write_align */
    uint32_t write_align; /* program unit: a power of two dividing TT_CKPT_BUFFER_BYTES */
    int32_t (*erase_page)(void *ctx, uint32_t addr);
    int32_t (*program)(void *ctx, uint32_t addr, const uint8_t *data, uint32_t len);
    int32_t (*read)(void *ctx, uint32_t addr, uint8_t *data, uint32_t len);
} tt_flash_ops_t;

/* One piece of the training state: `bytes` bytes at `data`. */
typedef struct {
    void *data;
    uint32_t bytes;
} tt_ckpt_region_t;

/* Where a slot puts its parts, for `payload_bytes` of state on `flash`. */
typedef struct {
    uint32_t payload_offset; /* from the slot's start */
    uint32_t commit_offset;
    uint32_t slot_bytes;     /* whole pages */
    uint32_t slots;          /* slots in the region (>= 2 for a valid layout) */
} tt_ckpt_layout_t;

/* CRC-32 (IEEE 802.3, reflected 0xEDB88320, as zlib.crc32): crc = tt_crc32(crc, data, count),
 * starting from 0. */
uint32_t tt_crc32(uint32_t crc, const uint8_t *data, uint32_t count);

/* The slot layout; TT_ERR_ARG when the region holds fewer than two slots or the flash
 * parameters break the rules above. */
tt_status_t tt_ckpt_layout(const tt_flash_ops_t *flash, uint32_t payload_bytes, tt_ckpt_layout_t *layout);

/* Save the regions as the newest state of model `model_hash`. TT_ERR_IO when a flash call
 * fails (the previous state stays valid), TT_ERR_ARG for a bad flash description. */
tt_status_t tt_ckpt_save(const tt_flash_ops_t *flash, uint32_t model_hash, const tt_ckpt_region_t *regions,
                         uint32_t count);

/* Load the newest valid state of model `model_hash` into the regions. TT_ERR_NO_STATE when no
 * slot holds one (the regions are unchanged); TT_ERR_IO when a read fails or the flash changes
 * while it is read (the regions may then be partly written: start afresh). */
tt_status_t tt_ckpt_restore(const tt_flash_ops_t *flash, uint32_t model_hash, const tt_ckpt_region_t *regions,
                            uint32_t count);

/* The sequence number of the newest valid state (0: none) and its slot. */
tt_status_t tt_ckpt_newest(const tt_flash_ops_t *flash, uint32_t model_hash, uint32_t payload_bytes,
                           uint32_t *sequence, uint32_t *slot);

#ifdef __cplusplus
}
#endif

#endif /* TT_CHECKPOINT_H */
