/* Many XChaCha20-Poly1305-IETF opens under one key: the merchant's tickets,
 * all sealed under enc(K_M). On AVX2, eight at a time: HChaCha20 and the
 * ChaCha20 blocks of eight ciphertexts run side by side, one per 32-bit lane
 * (RFC 8439 and draft-irtf-cfrg-xchacha); Poly1305 and the constant-time tag
 * check stay libsodium's. Elsewhere, or for longer messages, one libsodium
 * open after another. Tested against mp_xchacha_open item by item. */
#include <sodium.h>

#include "internal.h"

static void open_each(size_t count, uint8_t *const *out, const uint8_t *const *sealed, size_t ct_len,
                      const uint8_t *const *ad, size_t ad_len, const uint8_t *const *nonce, const uint8_t key[32],
                      uint8_t *ok) {
    for (size_t i = 0; i < count; i++)
        ok[i] = mp_xchacha_open(out[i], sealed[i], ct_len + MP_AEAD_TAG_BYTES, ad[i], ad_len, nonce[i], key) == MP_OK;
}

#if defined(__x86_64__)
#include <immintrin.h>

#define MP_AVX2 __attribute__((target("avx2")))
#define LANES 8
/* Two keystream blocks after the Poly1305 key's: messages up to 128 bytes. */
#define MAX_BLOCKS 2

static inline uint32_t load_le32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

MP_AVX2 static inline __m256i rotl(__m256i x, int n) {
    return _mm256_or_si256(_mm256_slli_epi32(x, n), _mm256_srli_epi32(x, 32 - n));
}

/* Rotations by whole bytes are one byte shuffle. */
#define QR(a, b, c, d)                                                                   \
    do {                                                                                 \
        a = _mm256_add_epi32(a, b); d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), rot16); \
        c = _mm256_add_epi32(c, d); b = rotl(_mm256_xor_si256(b, c), 12);               \
        a = _mm256_add_epi32(a, b); d = _mm256_shuffle_epi8(_mm256_xor_si256(d, a), rot8);  \
        c = _mm256_add_epi32(c, d); b = rotl(_mm256_xor_si256(b, c), 7);                \
    } while (0)

/* The 20 rounds of ChaCha20 on eight states, word-major (x[w] holds word w of every lane). */
MP_AVX2 static void chacha_rounds(__m256i x[16]) {
    const __m256i rot16 = _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13,
                                           2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
    const __m256i rot8 = _mm256_setr_epi8(3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14,
                                          3, 0, 1, 2, 7, 4, 5, 6, 11, 8, 9, 10, 15, 12, 13, 14);
    for (int i = 0; i < 10; i++) {
        QR(x[0], x[4], x[8], x[12]); QR(x[1], x[5], x[9], x[13]);
        QR(x[2], x[6], x[10], x[14]); QR(x[3], x[7], x[11], x[15]);
        QR(x[0], x[5], x[10], x[15]); QR(x[1], x[6], x[11], x[12]);
        QR(x[2], x[7], x[8], x[13]); QR(x[3], x[4], x[9], x[14]);
    }
}

/* Word w of each lane's bytes at p[lane] + at. */
MP_AVX2 static inline __m256i gather_le32(const uint8_t *const p[LANES], size_t at) {
    return _mm256_setr_epi32((int)load_le32(p[0] + at), (int)load_le32(p[1] + at), (int)load_le32(p[2] + at),
                             (int)load_le32(p[3] + at), (int)load_le32(p[4] + at), (int)load_le32(p[5] + at),
                             (int)load_le32(p[6] + at), (int)load_le32(p[7] + at));
}

/* Up to eight opens; lanes past `count` repeat item 0 and are dropped. */
MP_AVX2 static void open8(size_t count, uint8_t *const *out, const uint8_t *const *sealed, size_t ct_len,
                          const uint8_t *const *ad, size_t ad_len, const uint8_t *const *nonce, const uint8_t key[32],
                          uint8_t *ok) {
    const uint8_t *n[LANES];
    for (int l = 0; l < LANES; l++) n[l] = nonce[(size_t)l < count ? (size_t)l : 0];
    const __m256i sigma[4] = {_mm256_set1_epi32(0x61707865), _mm256_set1_epi32(0x3320646e),
                              _mm256_set1_epi32(0x79622d32), _mm256_set1_epi32(0x6b206574)};
    /* HChaCha20(key, nonce[0..16)): the subkey is words 0..3 and 12..15, no feed-forward. */
    __m256i x[16], subkey[8];
    for (int w = 0; w < 4; w++) x[w] = sigma[w];
    for (int w = 0; w < 8; w++) x[4 + w] = _mm256_set1_epi32((int)load_le32(key + 4 * w));
    for (int w = 0; w < 4; w++) x[12 + w] = gather_le32(n, 4 * (size_t)w);
    chacha_rounds(x);
    for (int w = 0; w < 4; w++) subkey[w] = x[w], subkey[4 + w] = x[12 + w];
    /* ChaCha20-IETF under the subkey, nonce 0^4 || nonce[16..24): block 0 keys
     * Poly1305, blocks 1.. are the keystream. */
    const __m256i tail0 = gather_le32(n, 16), tail1 = gather_le32(n, 20);
    uint32_t blocks[1 + MAX_BLOCKS][16][LANES] __attribute__((aligned(32)));
    const int nblocks = 1 + (int)((ct_len + 63) / 64);
    for (int b = 0; b < nblocks; b++) {
        __m256i input[16];
        for (int w = 0; w < 4; w++) input[w] = sigma[w];
        for (int w = 0; w < 8; w++) input[4 + w] = subkey[w];
        input[12] = _mm256_set1_epi32(b);
        input[13] = _mm256_setzero_si256();
        input[14] = tail0;
        input[15] = tail1;
        for (int w = 0; w < 16; w++) x[w] = input[w];
        chacha_rounds(x);
        for (int w = 0; w < 16; w++) _mm256_store_si256((__m256i *)blocks[b][w], _mm256_add_epi32(x[w], input[w]));
        sodium_memzero(input, sizeof input); /* words 4..11 are the subkey */
    }
    static const uint8_t zeros[16];
    for (size_t l = 0; l < count; l++) {
        uint8_t stream[64 * (1 + MAX_BLOCKS)];
        for (int b = 0; b < nblocks; b++) /* x86 is little-endian: a word's bytes are ChaCha's */
            for (int w = 0; w < 16; w++) memcpy(stream + 64 * b + 4 * w, &blocks[b][w][l], 4);
        /* RFC 8439 §2.8: Poly1305 over ad, pad, ciphertext, pad, the two lengths */
        crypto_onetimeauth_poly1305_state state;
        uint8_t lengths[16], tag[16];
        for (int i = 0; i < 8; i++) {
            lengths[i] = (uint8_t)((uint64_t)ad_len >> (8 * i));
            lengths[8 + i] = (uint8_t)((uint64_t)ct_len >> (8 * i));
        }
        crypto_onetimeauth_poly1305_init(&state, stream);
        crypto_onetimeauth_poly1305_update(&state, ad[l], ad_len);
        crypto_onetimeauth_poly1305_update(&state, zeros, (16 - ad_len % 16) % 16);
        crypto_onetimeauth_poly1305_update(&state, sealed[l], ct_len);
        crypto_onetimeauth_poly1305_update(&state, zeros, (16 - ct_len % 16) % 16);
        crypto_onetimeauth_poly1305_update(&state, lengths, 16);
        crypto_onetimeauth_poly1305_final(&state, tag);
        ok[l] = crypto_verify_16(tag, sealed[l] + ct_len) == 0;
        sodium_memzero(tag, sizeof tag);
        uint8_t *plain = out[l]; /* may be sealed[l]: a byte is read before it is written */
        const uint8_t *cipher = sealed[l];
        if (ok[l]) {
            for (size_t i = 0; i < ct_len; i++) plain[i] = cipher[i] ^ stream[64 + i];
        } else if (ct_len > 0) {
            sodium_memzero(plain, ct_len);
        }
        sodium_memzero(stream, sizeof stream);
        sodium_memzero(&state, sizeof state);
    }
    sodium_memzero(blocks, sizeof blocks);
    sodium_memzero(x, sizeof x);
    sodium_memzero(subkey, sizeof subkey);
}
#endif

void mp_xchacha_open_batch(size_t count, uint8_t *const *out, const uint8_t *const *sealed, size_t ct_len,
                           const uint8_t *const *ad, size_t ad_len, const uint8_t *const *nonce,
                           const uint8_t key[32], uint8_t *ok) {
#if defined(__x86_64__)
    if (mp_cpu_has_avx2() && ct_len <= 64 * MAX_BLOCKS) {
        for (size_t at = 0; at < count; at += LANES) {
            size_t n = count - at < LANES ? count - at : LANES;
            open8(n, out + at, sealed + at, ct_len, ad + at, ad_len, nonce + at, key, ok + at);
        }
        return;
    }
#endif
    open_each(count, out, sealed, ct_len, ad, ad_len, nonce, key, ok);
}
