/* HMAC-SHA-256 (RFC 2104) over cached key states, MAC128, and the key
 * schedule of PROTOCOL §1. */
#include "internal.h"

/* The blocks K ^ ipad and K ^ opad of a key of at most 64 bytes, zero-padded
 * to the block (RFC 2104); eight bytes at a time (a byte loop cost as much
 * as the compressions in the batched derivation below). */
static void key_blocks(const uint8_t *key, size_t key_len, uint8_t inner[64], uint8_t outer[64]) {
    const uint64_t ipad = 0x3636363636363636ULL, opad = 0x5c5c5c5c5c5c5c5cULL;
    for (size_t i = 0; i < 8; i++) {
        uint64_t k = 0, x;
        if (8 * i < key_len) memcpy(&k, key + 8 * i, key_len - 8 * i < 8 ? key_len - 8 * i : 8);
        x = k ^ ipad;
        memcpy(inner + 8 * i, &x, 8);
        x = k ^ opad;
        memcpy(outer + 8 * i, &x, 8);
    }
}

void mp_hmac_key_init(mp_hmac_key *state, const void *key, size_t key_len) {
    mp_compress_fn compress = mp_active_compress();
    uint8_t digest[32], inner[64], outer[64];
    if (key_len > 64) { /* a longer key is hashed first */
        mp_sha256(key, key_len, digest);
        key = digest;
        key_len = sizeof digest;
    }
    key_blocks(key, key_len, inner, outer);
    memcpy(state->inner, mp_sha256_iv, sizeof state->inner);
    compress(state->inner, inner, 1);
    memcpy(state->outer, mp_sha256_iv, sizeof state->outer);
    compress(state->outer, outer, 1);
    mp_zero(digest, sizeof digest);
    mp_zero(inner, sizeof inner);
    mp_zero(outer, sizeof outer);
}

void mp_hmac_outer(mp_compress_fn compress, const uint32_t outer[8], const uint8_t inner_digest[32],
                   uint8_t out[32]) {
    /* 64 bytes of key block already absorbed + 32 of digest = 768 bits */
    static const uint8_t pad[32] = {0x80, [30] = 0x03, [31] = 0x00};
    uint8_t block[64];
    uint32_t h[8];
    memcpy(block, inner_digest, 32);
    memcpy(block + 32, pad, 32);
    memcpy(h, outer, sizeof h);
    compress(h, block, 1);
    mp_state_to_bytes(h, out);
}

void mp_hmac2(const mp_hmac_key *state, const void *part1, size_t len1, const void *part2,
              size_t len2, uint8_t out[32]) {
    mp_compress_fn compress = mp_active_compress();
    mp_sha256_ctx ctx;
    uint8_t inner[32];
    mp_sha256_ctx_resume(&ctx, compress, state->inner, 64);
    if (len1 > 0) mp_sha256_ctx_update(&ctx, part1, len1);
    if (len2 > 0) mp_sha256_ctx_update(&ctx, part2, len2);
    mp_sha256_ctx_final(&ctx, inner);
    mp_hmac_outer(compress, state->outer, inner, out);
}

void mp_hmac(const void *key, size_t key_len, const void *msg, size_t len, uint8_t out[32]) {
    mp_hmac_key state;
    mp_hmac_key_init(&state, key, key_len);
    mp_hmac2(&state, msg, len, NULL, 0, out);
    mp_zero(&state, sizeof state);
}

void mp_mac128(const mp_hmac_key *state, const char label[4], const void *msg, size_t len,
               uint8_t out[16]) {
    uint8_t full[32];
    mp_hmac2(state, label, 4, msg, len, full);
    memcpy(out, full, 16);
}

mp_status mp_mac128_verify(const mp_hmac_key *state, const char label[4], const void *msg,
                           size_t len, const uint8_t tag[16]) {
    uint8_t expect[16];
    mp_mac128(state, label, msg, len, expect);
    return mp_ct_equal(expect, tag, 16) ? MP_OK : MP_ERR_AUTH;
}

void mp_mac128_verify_portable(size_t count, const mp_hmac_key *const *keys, const char label[4],
                            const uint8_t *records, size_t stride, size_t mac_len, uint8_t *ok) {
    for (size_t r = 0; r < count; r++) {
        const uint8_t *rec = records + r * stride;
        ok[r] = mp_mac128_verify(keys[r], label, rec, mac_len, rec + mac_len) == MP_OK;
    }
}

mp_status mp_derive_account_key(const uint8_t master[32], char role, uint32_t bank_id,
                                uint64_t account, uint8_t out[32]) {
    if (role != 'C' && role != 'M') return MP_ERR_ARGUMENT;
    uint8_t msg[17];
    memcpy(msg, "MPK1", 4);
    msg[4] = (uint8_t)role;
    mp_store_be32(msg + 5, bank_id);
    mp_store_be64(msg + 9, account);
    mp_hmac(master, 32, msg, sizeof msg, out);
    return MP_OK;
}

void mp_derive_session_key(const uint8_t master[32], uint32_t bank_id, uint64_t serial,
                           uint8_t out[32]) {
    uint8_t msg[16];
    memcpy(msg, "MPS1", 4);
    mp_store_be32(msg + 4, bank_id);
    mp_store_be64(msg + 8, serial);
    mp_hmac(master, 32, msg, sizeof msg, out);
}

void mp_derive_subkey(const uint8_t key[32], const char label[4], uint8_t out[32]) {
    mp_hmac(key, 32, label, 4, out);
}

void mp_compress_blocks_portable(size_t count, uint32_t (*state)[8], const uint8_t *blocks) {
    mp_compress_fn compress = mp_active_compress();
    for (size_t i = 0; i < count; i++) compress(state[i], blocks + 64 * i, 1);
}

/* A 32-byte key's two key blocks at 2i and 2i + 1 of `blocks`, their
 * states the IV. */
static void key_lanes(const uint8_t key[32], size_t i, uint8_t (*blocks)[64], uint32_t (*state)[8]) {
    key_blocks(key, 32, blocks[2 * i], blocks[2 * i + 1]);
    memcpy(state[2 * i], mp_sha256_iv, 32);
    memcpy(state[2 * i + 1], mp_sha256_iv, 32);
}

/* Keys a group at a time: its 6 compressions a key in four rounds of
 * independent blocks, each round one kernel call. */
#define SUBKEY_GROUP 8

/* Zeroes the stack the kernels just used below the caller's frame: their
 * message schedules of the key blocks (the 4-way kernels write all 64 W+K
 * of each lane there, and W0..W15 are the key block itself) and any
 * register spills. 4 KB covers the deepest kernel's frame with room. */
static __attribute__((noinline)) void scrub_stack(void) {
    uint8_t below[4096];
    mp_zero(below, sizeof below);
}

mp_status mp_hmac_subkey_states_batch_with(mp_lane_kernel kernel, size_t count, const uint8_t *const *keys,
                                           const char label[4], mp_hmac_key *const *out) {
    mp_status status = mp_lane_kernel_check(kernel);
    if (status != MP_OK) return status;
    mp_blocks_fn compress = mp_lane_blocks(kernel);
    /* all secret: zeroed before returning, and the kernels' stack after them */
    uint8_t blocks[2 * SUBKEY_GROUP][64], subkey[SUBKEY_GROUP][32];
    uint32_t keyed[2 * SUBKEY_GROUP][8], inner[SUBKEY_GROUP][8], outer[SUBKEY_GROUP][8];
    for (size_t base = 0; base < count; base += SUBKEY_GROUP) {
        size_t n = count - base < SUBKEY_GROUP ? count - base : SUBKEY_GROUP;
        /* 1: HMAC(K, label)'s key states, K ^ ipad at 2i and K ^ opad at 2i + 1 */
        for (size_t i = 0; i < n; i++) key_lanes(keys[base + i], i, blocks, keyed);
        compress(2 * n, keyed, blocks[0]);
        /* 2: the inner hash's last block: label and padding (64 + 4 bytes hashed) */
        for (size_t i = 0; i < n; i++) {
            memcpy(inner[i], keyed[2 * i], 32);
            memcpy(outer[i], keyed[2 * i + 1], 32);
            memset(blocks[i], 0, 64);
            memcpy(blocks[i], label, 4);
            blocks[i][4] = 0x80;
            mp_store_be64(blocks[i] + 56, (64 + 4) * 8);
        }
        compress(n, inner, blocks[0]);
        /* 3: the outer hash of the inner digest (64 + 32 bytes hashed): the subkey */
        for (size_t i = 0; i < n; i++) {
            memset(blocks[i], 0, 64);
            mp_state_to_bytes(inner[i], blocks[i]);
            blocks[i][32] = 0x80;
            mp_store_be64(blocks[i] + 56, (64 + 32) * 8);
        }
        compress(n, outer, blocks[0]);
        /* 4: the subkey's own key states */
        for (size_t i = 0; i < n; i++) {
            mp_state_to_bytes(outer[i], subkey[i]);
            key_lanes(subkey[i], i, blocks, keyed);
        }
        compress(2 * n, keyed, blocks[0]);
        for (size_t i = 0; i < n; i++) {
            memcpy(out[base + i]->inner, keyed[2 * i], 32);
            memcpy(out[base + i]->outer, keyed[2 * i + 1], 32);
        }
    }
    mp_zero(blocks, sizeof blocks);
    mp_zero(subkey, sizeof subkey);
    mp_zero(keyed, sizeof keyed);
    mp_zero(inner, sizeof inner);
    mp_zero(outer, sizeof outer);
    scrub_stack();
    return MP_OK;
}
