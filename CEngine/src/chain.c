/* PayWord-style chain steps (PROTOCOL §5): each step is one SHA-256 block. */
#include "internal.h"

/* The fixed part of a step's padded block: "MPC1" || chain_id at 0..16, the
 * 0x80 terminator at 52 and the bit length 416 at 56..64. */
static void step_block_init(uint8_t block[64], const uint8_t chain_id[12]) {
    memcpy(block, "MPC1", 4);
    memcpy(block + 4, chain_id, 12);
    block[52] = 0x80;
    memset(block + 53, 0, 11);
    block[62] = 0x01; /* 416 = 0x01a0 */
    block[63] = 0xa0;
}

static inline void step_in_block(mp_compress_fn compress, uint8_t block[64], uint32_t i,
                                 const uint8_t w[32], uint8_t out[32]) {
    uint32_t h[8];
    mp_store_be32(block + 16, i);
    memmove(block + 20, w, 32);
    memcpy(h, mp_sha256_iv, sizeof h);
    compress(h, block, 1);
    mp_state_to_bytes(h, out);
}

void mp_chain_step(const uint8_t chain_id[12], uint32_t i, const uint8_t w[32], uint8_t out[32]) {
    uint8_t block[64];
    step_block_init(block, chain_id);
    step_in_block(mp_active_compress(), block, i, w, out);
}

mp_status mp_chain_walk(const uint8_t chain_id[12], uint32_t i, const uint8_t w[32], uint32_t j,
                        uint8_t out[32]) {
    if (j > i) return MP_ERR_ARGUMENT;
    mp_compress_fn compress = mp_active_compress();
    uint8_t block[64];
    step_block_init(block, chain_id);
    memmove(out, w, 32);
    for (uint32_t k = i; k > j; k--) step_in_block(compress, block, k, out, out);
    return MP_OK;
}

void mp_chain_verify_portable(size_t count, const uint8_t *chain_ids, const uint32_t *index,
                           const uint8_t *words, const uint32_t *last, const uint8_t *expected,
                           uint8_t *ok) {
    uint8_t w[32];
    for (size_t e = 0; e < count; e++) {
        if (index[e] <= last[e]) {
            ok[e] = 0;
            continue;
        }
        mp_chain_walk(chain_ids + 12 * e, index[e], words + 32 * e, last[e], w);
        ok[e] = (uint8_t)mp_ct_equal(w, expected + 32 * e, 32);
    }
}
