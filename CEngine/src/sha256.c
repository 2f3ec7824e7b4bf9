/* SHA-256 entry points, kernel dispatch and incremental hashing. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

static _Atomic(mp_compress_fn) active_compress = mp_sha256_compress_portable;
static _Atomic int active_kernel = MP_SHA256_PORTABLE;

mp_compress_fn mp_kernel_compress(mp_sha256_kernel kernel) {
    switch (kernel) {
    case MP_SHA256_PORTABLE:
        return mp_sha256_compress_portable;
    case MP_SHA256_SHANI:
#if defined(MP_HAVE_SHANI_KERNEL)
        return mp_cpu_has_shani() ? mp_sha256_compress_shani : NULL;
#else
        return NULL;
#endif
    }
    return NULL;
}

mp_compress_fn mp_active_compress(void) {
    return atomic_load_explicit(&active_compress, memory_order_relaxed);
}

int mp_sha256_kernel_available(mp_sha256_kernel kernel) { return mp_kernel_compress(kernel) != NULL; }

mp_sha256_kernel mp_sha256_active_kernel(void) {
    return (mp_sha256_kernel)atomic_load_explicit(&active_kernel, memory_order_relaxed);
}

const char *mp_sha256_kernel_name(mp_sha256_kernel kernel) {
    switch (kernel) {
    case MP_SHA256_PORTABLE: return "portable";
    case MP_SHA256_SHANI: return "sha-ni";
    }
    return NULL;
}

mp_status mp_sha256_force_kernel(mp_sha256_kernel kernel) {
    mp_compress_fn fn = mp_kernel_compress(kernel);
    if (fn == NULL) return mp_sha256_kernel_name(kernel) ? MP_ERR_UNSUPPORTED : MP_ERR_ARGUMENT;
    atomic_store_explicit(&active_compress, fn, memory_order_relaxed);
    atomic_store_explicit(&active_kernel, (int)kernel, memory_order_relaxed);
    return MP_OK;
}

/* Best kernel for this CPU, unless MICROPAY_SHA256_KERNEL names one. */
void mp_sha256_pick_kernel(void) {
    const char *forced = getenv("MICROPAY_SHA256_KERNEL");
    if (forced != NULL && forced[0] != '\0') {
        for (int k = 0; k < MP_SHA256_KERNEL_COUNT; k++) {
            if (strcmp(forced, mp_sha256_kernel_name((mp_sha256_kernel)k)) == 0 &&
                mp_sha256_force_kernel((mp_sha256_kernel)k) == MP_OK)
                return;
        }
    }
    if (mp_sha256_force_kernel(MP_SHA256_SHANI) == MP_OK) return;
    mp_sha256_force_kernel(MP_SHA256_PORTABLE);
}

/* ---- incremental hashing ---- */

void mp_sha256_ctx_init(mp_sha256_ctx *ctx, mp_compress_fn compress) {
    mp_sha256_ctx_resume(ctx, compress, mp_sha256_iv, 0);
}

void mp_sha256_ctx_resume(mp_sha256_ctx *ctx, mp_compress_fn compress, const uint32_t h[8],
                          uint64_t prefix_bytes) {
    memcpy(ctx->h, h, sizeof ctx->h);
    ctx->total = prefix_bytes;
    ctx->fill = 0;
    ctx->compress = compress;
}

void mp_sha256_ctx_update(mp_sha256_ctx *ctx, const void *data, size_t len) {
    const uint8_t *p = data;
    ctx->total += len;
    if (ctx->fill > 0) {
        size_t take = 64 - ctx->fill;
        if (take > len) take = len;
        memcpy(ctx->buf + ctx->fill, p, take);
        ctx->fill += take;
        p += take;
        len -= take;
        if (ctx->fill < 64) return;
        ctx->compress(ctx->h, ctx->buf, 1);
        ctx->fill = 0;
    }
    if (len >= 64) {
        size_t blocks = len / 64;
        ctx->compress(ctx->h, p, blocks);
        p += blocks * 64;
        len -= blocks * 64;
    }
    if (len > 0) {
        memcpy(ctx->buf, p, len);
        ctx->fill = len;
    }
}

void mp_sha256_ctx_final(mp_sha256_ctx *ctx, uint8_t out[32]) {
    uint64_t bits = ctx->total * 8;
    uint8_t *b = ctx->buf;
    b[ctx->fill++] = 0x80;
    if (ctx->fill > 56) {
        memset(b + ctx->fill, 0, 64 - ctx->fill);
        ctx->compress(ctx->h, b, 1);
        ctx->fill = 0;
    }
    memset(b + ctx->fill, 0, 56 - ctx->fill);
    mp_store_be64(b + 56, bits);
    ctx->compress(ctx->h, b, 1);
    mp_state_to_bytes(ctx->h, out);
}

/* Messages of at most 55 bytes fit one padded block: one compression, no context. */
static void sha256_one_block(mp_compress_fn compress, const uint8_t *msg, size_t len, uint8_t out[32]) {
    uint8_t block[64];
    uint32_t h[8];
    if (len > 0) memcpy(block, msg, len);
    block[len] = 0x80;
    memset(block + len + 1, 0, 55 - len);
    mp_store_be64(block + 56, (uint64_t)len * 8);
    memcpy(h, mp_sha256_iv, sizeof h);
    compress(h, block, 1);
    mp_state_to_bytes(h, out);
}

static void sha256_with(mp_compress_fn compress, const void *msg, size_t len, uint8_t out[32]) {
    if (len <= 55) {
        sha256_one_block(compress, msg, len, out);
        return;
    }
    mp_sha256_ctx ctx;
    mp_sha256_ctx_init(&ctx, compress);
    mp_sha256_ctx_update(&ctx, msg, len);
    mp_sha256_ctx_final(&ctx, out);
}

void mp_sha256(const void *msg, size_t len, uint8_t out[32]) {
    sha256_with(mp_active_compress(), msg, len, out);
}

mp_status mp_sha256_with_kernel(mp_sha256_kernel kernel, const void *msg, size_t len, uint8_t out[32]) {
    mp_compress_fn fn = mp_kernel_compress(kernel);
    if (fn == NULL) return mp_sha256_kernel_name(kernel) ? MP_ERR_UNSUPPORTED : MP_ERR_ARGUMENT;
    sha256_with(fn, msg, len, out);
    return MP_OK;
}
