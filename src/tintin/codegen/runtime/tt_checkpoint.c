/* tt_checkpoint.c - power-loss-safe training state in flash (see tt_checkpoint.h). */
#include "tt_checkpoint.h"
#include "tt_rom.h"

#if (TT_CKPT_BUFFER_BYTES < 32u) || ((TT_CKPT_BUFFER_BYTES & (TT_CKPT_BUFFER_BYTES - 1u)) != 0u)
#error "TT_CKPT_BUFFER_BYTES must be a power of two of at least 32"
#endif

/* CRC-32 of every nibble value (reflected polynomial 0xEDB88320): two lookups per byte */
static const uint32_t tt_crc32_nibble[16] TT_ROM = {
    0x00000000UL, 0x1DB71064UL, 0x3B6E20C8UL, 0x26D930ACUL, 0x76DC4190UL, 0x6B6B51F4UL, 0x4DB26158UL, 0x5005713CUL,
    0xEDB88320UL, 0xF00F9344UL, 0xD6D6A3E8UL, 0xCB61B38CUL, 0x9B64C2B0UL, 0x86D3D2D4UL, 0xA00AE278UL, 0xBDBDF21CUL
};

uint32_t tt_crc32(uint32_t crc, const uint8_t *data, uint32_t count)
{
    uint32_t i;
    crc = ~crc;
    for (i = 0; i < count; ++i) {
        crc ^= (uint32_t)data[i];
        crc = (crc >> 4) ^ tt_rom_u32(&tt_crc32_nibble[crc & 15u]);
        crc = (crc >> 4) ^ tt_rom_u32(&tt_crc32_nibble[crc & 15u]);
    }
    return ~crc;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v & 0xFFu);
    p[1] = (uint8_t)((v >> 8) & 0xFFu);
    p[2] = (uint8_t)((v >> 16) & 0xFFu);
    p[3] = (uint8_t)((v >> 24) & 0xFFu);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint32_t align_up(uint32_t v, uint32_t a)
{
    return (v + a - 1u) / a * a;
}

tt_status_t tt_ckpt_layout(const tt_flash_ops_t *flash, uint32_t payload_bytes, tt_ckpt_layout_t *layout)
{
    uint32_t a, end;
    if (flash == NULL || layout == NULL || flash->erase_page == NULL || flash->program == NULL ||
        flash->read == NULL) {
        return TT_ERR_ARG;
    }
    a = flash->write_align;
    if (a == 0u || (a & (a - 1u)) != 0u || a > TT_CKPT_BUFFER_BYTES || flash->page_size < 32u ||
        flash->page_size % 32u != 0u || flash->page_size % a != 0u || flash->base % flash->page_size != 0u ||
        flash->size % flash->page_size != 0u || payload_bytes > 0x7FFF0000UL) {
        return TT_ERR_ARG;
    }
    layout->payload_offset = align_up(TT_CKPT_HEADER_BYTES, a);
    layout->commit_offset = align_up(layout->payload_offset + payload_bytes, a > 16u ? a : 16u);
    end = layout->commit_offset + align_up(TT_CKPT_COMMIT_BYTES, a);
    layout->slot_bytes = align_up(end, flash->page_size);
    layout->slots = flash->size / layout->slot_bytes;
    return layout->slots >= 2u ? TT_OK : TT_ERR_ARG;
}

static uint32_t slot_addr(const tt_flash_ops_t *flash, const tt_ckpt_layout_t *lay, uint32_t slot)
{
    return flash->base + slot * lay->slot_bytes;
}

/* Header and commit record of `slot` check out for this model: *seq = its sequence number (0: no). */
static tt_status_t committed_seq(const tt_flash_ops_t *flash, const tt_ckpt_layout_t *lay, uint32_t slot,
                                 uint32_t model_hash, uint32_t payload_bytes, uint32_t *seq, uint32_t *crc)
{
    uint8_t h[TT_CKPT_HEADER_BYTES];
    uint8_t c[TT_CKPT_COMMIT_BYTES];
    uint32_t at = slot_addr(flash, lay, slot), hcrc;
    *seq = 0;
    if (flash->read(flash->ctx, at, h, TT_CKPT_HEADER_BYTES) != 0 ||
        flash->read(flash->ctx, at + lay->commit_offset, c, TT_CKPT_COMMIT_BYTES) != 0) {
        return TT_ERR_IO;
    }
    hcrc = tt_crc32(0, h, 28u);
    if (get32(h) != TT_CKPT_MAGIC || get32(h + 4) != (TT_CKPT_VERSION | (TT_CKPT_HEADER_BYTES << 16)) ||
        get32(h + 8) != model_hash || get32(h + 12) == 0u || get32(h + 16) != payload_bytes ||
        get32(h + 24) != lay->slot_bytes || get32(h + 28) != hcrc) {
        return TT_OK;
    }
    if (get32(c) != TT_CKPT_COMMIT_MAGIC || get32(c + 4) != get32(h + 12) || get32(c + 8) != hcrc ||
        get32(c + 12) != tt_crc32(0, c, 12u)) {
        return TT_OK;
    }
    *seq = get32(h + 12);
    *crc = get32(h + 20);
    return TT_OK;
}

/* CRC-32 of `bytes` bytes of flash at `at`; with `regions`, the bytes are also copied into them. */
static tt_status_t read_payload(const tt_flash_ops_t *flash, uint32_t at, uint32_t bytes,
                                const tt_ckpt_region_t *regions, uint32_t count, uint32_t *crc)
{
    uint8_t buf[TT_CKPT_BUFFER_BYTES];
    uint32_t done = 0, r = 0, in_r = 0, k;
    *crc = 0;
    while (done < bytes) {
        uint32_t n = bytes - done < TT_CKPT_BUFFER_BYTES ? bytes - done : TT_CKPT_BUFFER_BYTES;
        if (flash->read(flash->ctx, at + done, buf, n) != 0) {
            return TT_ERR_IO;
        }
        *crc = tt_crc32(*crc, buf, n);
        if (regions != NULL) {
            for (k = 0; k < n; ++k) {
                while (r < count && in_r >= regions[r].bytes) {
                    ++r;
                    in_r = 0;
                }
                ((uint8_t *)regions[r].data)[in_r++] = buf[k];
            }
        }
        done += n;
    }
    return TT_OK;
}

typedef struct {
    uint32_t best_slot; /* newest slot whose payload checks out too */
    uint32_t best_seq;  /* its sequence number, 0: none */
    uint32_t max_seq;   /* highest committed sequence number (payload checked or not) */
} tt_ckpt_scan_t;

static tt_status_t scan(const tt_flash_ops_t *flash, const tt_ckpt_layout_t *lay, uint32_t model_hash,
                        uint32_t payload_bytes, tt_ckpt_scan_t *out)
{
    uint32_t limit = 0xFFFFFFFFUL, i, seq, crc, got, first = 1u;
    tt_status_t st;
    out->best_slot = 0;
    out->best_seq = 0;
    out->max_seq = 0;
    for (;;) {
        uint32_t cand = 0, cand_seq = 0, cand_crc = 0;
        for (i = 0; i < lay->slots; ++i) {
            st = committed_seq(flash, lay, i, model_hash, payload_bytes, &seq, &crc);
            if (st != TT_OK) {
                return st;
            }
            if (first && seq > out->max_seq) {
                out->max_seq = seq;
            }
            if (seq != 0u && seq < limit && seq > cand_seq) {
                cand = i;
                cand_seq = seq;
                cand_crc = crc;
            }
        }
        first = 0;
        if (cand_seq == 0u) {
            return TT_OK;
        }
        st = read_payload(flash, slot_addr(flash, lay, cand) + lay->payload_offset, payload_bytes, NULL, 0, &got);
        if (st != TT_OK) {
            return st;
        }
        if (got == cand_crc) {
            out->best_slot = cand;
            out->best_seq = cand_seq;
            return TT_OK;
        }
        limit = cand_seq;
    }
}

/* Check the regions, lay out the slots for their bytes (*payload) and scan the flash. */
static tt_status_t prepare(const tt_flash_ops_t *flash, uint32_t model_hash, const tt_ckpt_region_t *regions,
                           uint32_t count, uint32_t *payload, tt_ckpt_layout_t *lay, tt_ckpt_scan_t *s)
{
    uint32_t i;
    tt_status_t st;
    if (regions == NULL && count != 0u) {
        return TT_ERR_ARG;
    }
    *payload = 0;
    for (i = 0; i < count; ++i) {
        if (regions[i].data == NULL && regions[i].bytes != 0u) {
            return TT_ERR_ARG;
        }
        *payload += regions[i].bytes;
    }
    st = tt_ckpt_layout(flash, *payload, lay);
    if (st != TT_OK) {
        return st;
    }
    return scan(flash, lay, model_hash, *payload, s);
}

tt_status_t tt_ckpt_newest(const tt_flash_ops_t *flash, uint32_t model_hash, uint32_t payload_bytes,
                           uint32_t *sequence, uint32_t *slot)
{
    tt_ckpt_layout_t lay;
    tt_ckpt_scan_t s;
    tt_status_t st = tt_ckpt_layout(flash, payload_bytes, &lay);
    if (st != TT_OK) {
        return st;
    }
    st = scan(flash, &lay, model_hash, payload_bytes, &s);
    if (st != TT_OK) {
        return st;
    }
    if (sequence != NULL) {
        *sequence = s.best_seq;
    }
    if (slot != NULL) {
        *slot = s.best_slot;
    }
    return TT_OK;
}

/* Program `len` bytes of buf (padded with 0xFF to the write alignment) at `at`. */
static tt_status_t program_padded(const tt_flash_ops_t *flash, uint32_t at, uint8_t *buf, uint32_t len)
{
    uint32_t padded = align_up(len, flash->write_align);
    while (len < padded) {
        buf[len++] = 0xFFu;
    }
    return flash->program(flash->ctx, at, buf, padded) == 0 ? TT_OK : TT_ERR_IO;
}

tt_status_t tt_ckpt_save(const tt_flash_ops_t *flash, uint32_t model_hash, const tt_ckpt_region_t *regions,
                         uint32_t count)
{
    uint8_t buf[TT_CKPT_BUFFER_BYTES];
    tt_ckpt_layout_t lay;
    tt_ckpt_scan_t s;
    uint32_t payload, slot, at, seq, crc = 0, hcrc, i, r, k, fill, pos;
    tt_status_t st = prepare(flash, model_hash, regions, count, &payload, &lay, &s);
    if (st != TT_OK) {
        return st;
    }
    if (s.max_seq == 0xFFFFFFFFUL) {
        return TT_ERR_ARG; /* 2**32 - 1 saves: the sequence numbers are used up */
    }
    seq = s.max_seq + 1u;
    slot = s.best_seq != 0u ? (s.best_slot + 1u) % lay.slots : 0u;
    at = slot_addr(flash, &lay, slot);
    for (i = 0; i < count; ++i) {
        crc = tt_crc32(crc, (const uint8_t *)regions[i].data, regions[i].bytes);
    }
    /* 1. erase the slot (never the newest valid one) */
    for (i = 0; i < lay.slot_bytes; i += flash->page_size) {
        if (flash->erase_page(flash->ctx, at + i) != 0) {
            return TT_ERR_IO;
        }
    }
    /* 2. the header */
    put32(buf, TT_CKPT_MAGIC);
    put32(buf + 4, TT_CKPT_VERSION | (TT_CKPT_HEADER_BYTES << 16));
    put32(buf + 8, model_hash);
    put32(buf + 12, seq);
    put32(buf + 16, payload);
    put32(buf + 20, crc);
    put32(buf + 24, lay.slot_bytes);
    hcrc = tt_crc32(0, buf, 28u);
    put32(buf + 28, hcrc);
    st = program_padded(flash, at, buf, TT_CKPT_HEADER_BYTES);
    if (st != TT_OK) {
        return st;
    }
    /* 3. the payload, in chunks that never cross a page */
    pos = at + lay.payload_offset;
    fill = 0;
    for (r = 0; r < count; ++r) {
        const uint8_t *src = (const uint8_t *)regions[r].data;
        for (k = 0; k < regions[r].bytes; ++k) {
            uint32_t room = flash->page_size - (pos - flash->base) % flash->page_size;
            buf[fill++] = src[k];
            if (fill == TT_CKPT_BUFFER_BYTES || fill == room) {
                if (flash->program(flash->ctx, pos, buf, fill) != 0) {
                    return TT_ERR_IO;
                }
                pos += fill;
                fill = 0;
            }
        }
    }
    if (fill != 0u) {
        st = program_padded(flash, pos, buf, fill);
        if (st != TT_OK) {
            return st;
        }
    }
    /* 4. the commit record, last */
    put32(buf, TT_CKPT_COMMIT_MAGIC);
    put32(buf + 4, seq);
    put32(buf + 8, hcrc);
    put32(buf + 12, tt_crc32(0, buf, 12u));
    return program_padded(flash, at + lay.commit_offset, buf, TT_CKPT_COMMIT_BYTES);
}

tt_status_t tt_ckpt_restore(const tt_flash_ops_t *flash, uint32_t model_hash, const tt_ckpt_region_t *regions,
                            uint32_t count)
{
    tt_ckpt_layout_t lay;
    tt_ckpt_scan_t s;
    uint32_t payload, at, seq, want, got;
    tt_status_t st = prepare(flash, model_hash, regions, count, &payload, &lay, &s);
    if (st != TT_OK) {
        return st;
    }
    if (s.best_seq == 0u) {
        return TT_ERR_NO_STATE;
    }
    at = slot_addr(flash, &lay, s.best_slot);
    st = committed_seq(flash, &lay, s.best_slot, model_hash, payload, &seq, &want);
    if (st != TT_OK) {
        return st;
    }
    st = read_payload(flash, at + lay.payload_offset, payload, regions, count, &got);
    if (st != TT_OK) {
        return st;
    }
    return (seq == s.best_seq && got == want) ? TT_OK : TT_ERR_IO;
}
