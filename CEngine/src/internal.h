/* Private to CEngine: the SHA-256 building blocks the public entry points share. */
#ifndef CENGINE_INTERNAL_H
#define CENGINE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "CEngine.h"

/* Runs `blocks` 64-byte blocks through the compression function. */
typedef void (*mp_compress_fn)(uint32_t state[8], const uint8_t *data, size_t blocks);

extern const uint32_t mp_sha256_iv[8];
extern const uint32_t mp_sha256_k[64];

void mp_sha256_compress_portable(uint32_t state[8], const uint8_t *data, size_t blocks);
/* W+K of the block that pads a message of `bytes` bytes, a multiple of 64:
 * the same for every such message, so the batch kernels schedule it once. */
void mp_sha256_padding_wk(uint64_t bytes, uint32_t wk[64]);
#if defined(__x86_64__)
#define MP_HAVE_SHANI_KERNEL 1
void mp_sha256_compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks);
int mp_cpu_has_shani(void);
int mp_cpu_has_aesni(void);
#endif

/* The kernel's compression function; chosen once by mp_init, changed only
 * by mp_sha256_force_kernel. */
mp_compress_fn mp_active_compress(void);
mp_compress_fn mp_kernel_compress(mp_sha256_kernel kernel); /* NULL if unavailable */

/* Incremental SHA-256 over any compression function. */
typedef struct mp_sha256_ctx {
    uint32_t h[8];
    uint64_t total;   /* bytes absorbed, including any precomputed prefix */
    uint8_t buf[64];
    size_t fill;
    mp_compress_fn compress;
} mp_sha256_ctx;

void mp_sha256_ctx_init(mp_sha256_ctx *ctx, mp_compress_fn compress);
/* Starts from a chaining value that has already absorbed `prefix_bytes`
 * (a multiple of 64): how HMAC resumes from its cached key states. */
void mp_sha256_ctx_resume(mp_sha256_ctx *ctx, mp_compress_fn compress, const uint32_t h[8],
                          uint64_t prefix_bytes);
void mp_sha256_ctx_update(mp_sha256_ctx *ctx, const void *data, size_t len);
void mp_sha256_ctx_final(mp_sha256_ctx *ctx, uint8_t out[32]);

/* HMAC's outer hash: one compression of `inner_digest` from the outer state. */
void mp_hmac_outer(mp_compress_fn compress, const uint32_t outer[8], const uint8_t inner_digest[32],
                   uint8_t out[32]);

static inline void mp_store_be32(uint8_t *p, uint32_t v) {
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void mp_store_be64(uint8_t *p, uint64_t v) {
    mp_store_be32(p, (uint32_t)(v >> 32));
    mp_store_be32(p + 4, (uint32_t)v);
}
static inline uint32_t mp_load_be32(const uint8_t *p) {
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | (uint32_t)p[3];
}
static inline void mp_state_to_bytes(const uint32_t h[8], uint8_t out[32]) {
    for (int i = 0; i < 8; i++) mp_store_be32(out + 4 * i, h[i]);
}

/* Batch kernels: the contracts of mp_chain_verify_batch and mp_mac128_verify_batch. */
#define MP_CHAIN_BATCH_PARAMS                                                                   \
    size_t count, const uint8_t *chain_ids, const uint32_t *index, const uint8_t *words,         \
        const uint32_t *last, const uint8_t *expected, uint8_t *ok
#define MP_TAG_BATCH_PARAMS                                                                     \
    size_t count, const mp_hmac_key *const *keys, const char label[4], const uint8_t *records, \
        size_t stride, size_t mac_len, uint8_t *ok

/* count independent one-block compressions: state[i] absorbs blocks[64 i..]. */
#define MP_BLOCKS_PARAMS size_t count, uint32_t (*state)[8], const uint8_t *blocks

typedef void (*mp_chain_batch_fn)(MP_CHAIN_BATCH_PARAMS);
typedef void (*mp_tag_batch_fn)(MP_TAG_BATCH_PARAMS);
typedef void (*mp_blocks_fn)(MP_BLOCKS_PARAMS);

void mp_chain_verify_portable(MP_CHAIN_BATCH_PARAMS);
void mp_mac128_verify_portable(MP_TAG_BATCH_PARAMS);
void mp_compress_blocks_portable(MP_BLOCKS_PARAMS);
/* MP_OK if this CPU runs the lane kernel, MP_ERR_UNSUPPORTED if it does
 * not, MP_ERR_ARGUMENT if there is no such kernel. */
mp_status mp_lane_kernel_check(mp_lane_kernel kernel);
/* The kernel's one-block compressions; only for a kernel that passed the check. */
mp_blocks_fn mp_lane_blocks(mp_lane_kernel kernel);
#if defined(__x86_64__)
int mp_cpu_has_avx2(void);
void mp_chain_verify_shani_x1(MP_CHAIN_BATCH_PARAMS);
void mp_chain_verify_shani_x2(MP_CHAIN_BATCH_PARAMS);
void mp_chain_verify_shani_x4(MP_CHAIN_BATCH_PARAMS);
void mp_mac128_verify_shani_x1(MP_TAG_BATCH_PARAMS);
void mp_mac128_verify_shani_x2(MP_TAG_BATCH_PARAMS);
void mp_mac128_verify_shani_x4(MP_TAG_BATCH_PARAMS);
void mp_compress_blocks_shani_x1(MP_BLOCKS_PARAMS);
void mp_compress_blocks_shani_x2(MP_BLOCKS_PARAMS);
void mp_compress_blocks_shani_x4(MP_BLOCKS_PARAMS);
void mp_chain_verify_avx2_x8(MP_CHAIN_BATCH_PARAMS);
void mp_mac128_verify_avx2_x8(MP_TAG_BATCH_PARAMS);
#endif

#endif
