/* Multi-lane batch kernels on AVX2: eight SHA-256 blocks at once, one per
 * 32-bit lane, for CPUs without the SHA extensions. A chain stays in the
 * lanes: the eight output state vectors are the next step's W5..W12. */
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MP_AVX2 __attribute__((target("avx2")))
#define MP_INLINE static inline __attribute__((always_inline))

#define ROTR(x, n) _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - (n)))
#define BSIG0(a) _mm256_xor_si256(_mm256_xor_si256(ROTR(a, 2), ROTR(a, 13)), ROTR(a, 22))
#define BSIG1(e) _mm256_xor_si256(_mm256_xor_si256(ROTR(e, 6), ROTR(e, 11)), ROTR(e, 25))
#define SSIG0(x) _mm256_xor_si256(_mm256_xor_si256(ROTR(x, 7), ROTR(x, 18)), _mm256_srli_epi32(x, 3))
#define SSIG1(x) _mm256_xor_si256(_mm256_xor_si256(ROTR(x, 17), ROTR(x, 19)), _mm256_srli_epi32(x, 10))

/* One compression of eight blocks: state st (8 vectors, a..h) += rounds over
 * w[16]; or, given `wk`, over one constant block whose W+K is scheduled
 * already (mp_sha256_padding_wk), broadcast round by round. */
MP_AVX2 MP_INLINE void compress8(__m256i st[8], __m256i w[16], const uint32_t *wk) {
    __m256i a = st[0], b = st[1], c = st[2], d = st[3], e = st[4], f = st[5], g = st[6], h = st[7];
    for (int i = 0; i < 64; i++) {
        __m256i wki;
        if (wk != NULL) {
            wki = _mm256_set1_epi32((int)wk[i]);
        } else {
            __m256i wi;
            if (i < 16) {
                wi = w[i];
            } else {
                wi = _mm256_add_epi32(_mm256_add_epi32(SSIG1(w[(i - 2) & 15]), w[(i - 7) & 15]),
                                      _mm256_add_epi32(SSIG0(w[(i - 15) & 15]), w[i & 15]));
                w[i & 15] = wi;
            }
            wki = _mm256_add_epi32(wi, _mm256_set1_epi32((int)mp_sha256_k[i]));
        }
        __m256i ch = _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g));
        __m256i maj = _mm256_xor_si256(_mm256_and_si256(a, _mm256_xor_si256(b, c)), _mm256_and_si256(b, c));
        __m256i t1 = _mm256_add_epi32(_mm256_add_epi32(h, BSIG1(e)), _mm256_add_epi32(ch, wki));
        __m256i t2 = _mm256_add_epi32(BSIG0(a), maj);
        h = g; g = f; f = e;
        e = _mm256_add_epi32(d, t1);
        d = c; c = b; b = a;
        a = _mm256_add_epi32(t1, t2);
    }
    st[0] = _mm256_add_epi32(st[0], a); st[1] = _mm256_add_epi32(st[1], b);
    st[2] = _mm256_add_epi32(st[2], c); st[3] = _mm256_add_epi32(st[3], d);
    st[4] = _mm256_add_epi32(st[4], e); st[5] = _mm256_add_epi32(st[5], f);
    st[6] = _mm256_add_epi32(st[6], g); st[7] = _mm256_add_epi32(st[7], h);
}

/* ---- chains ---- */

MP_AVX2 void mp_chain_verify_avx2_x8(MP_CHAIN_BATCH_PARAMS) {
    /* Message matrix, word-major: m[j][lane] is W_j of that lane's block. */
    uint32_t m[16][8] __attribute__((aligned(32)));
    uint32_t target[8];
    size_t element[8];
    int live[8];
    size_t next = 0;
    int alive = 0;
    for (int j = 0; j < 16; j++)
        for (int l = 0; l < 8; l++) m[j][l] = 0;
    for (int l = 0; l < 8; l++) m[13][l] = 0x80000000u, m[15][l] = 416;

#define LOAD_LANE(l)                                                                 \
    do {                                                                             \
        while (next < count && index[next] <= last[next]) ok[next++] = 0;           \
        if (next == count) {                                                         \
            live[l] = 0;                                                             \
            break;                                                                   \
        }                                                                            \
        size_t e_ = next++;                                                          \
        m[0][l] = 0x4d504331u; /* "MPC1" */                                          \
        for (int j = 0; j < 3; j++) m[1 + j][l] = mp_load_be32(chain_ids + 12 * e_ + 4 * j); \
        m[4][l] = index[e_];                                                         \
        for (int j = 0; j < 8; j++) m[5 + j][l] = mp_load_be32(words + 32 * e_ + 4 * j); \
        target[l] = last[e_];                                                        \
        element[l] = e_;                                                             \
        live[l] = 1;                                                                 \
    } while (0)

    for (int l = 0; l < 8; l++) {
        LOAD_LANE(l);
        alive += live[l];
    }
    while (alive > 0) {
        __m256i w[16], st[8];
        for (int j = 0; j < 16; j++) w[j] = _mm256_load_si256((const __m256i *)m[j]);
        for (int j = 0; j < 8; j++) st[j] = _mm256_set1_epi32((int)mp_sha256_iv[j]);
        compress8(st, w, NULL);
        for (int j = 0; j < 8; j++) _mm256_store_si256((__m256i *)m[5 + j], st[j]);
        for (int l = 0; l < 8; l++) {
            m[4][l]--;
            if (live[l] && m[4][l] == target[l]) {
                const uint8_t *want = expected + 32 * element[l];
                uint32_t diff = 0;
                for (int j = 0; j < 8; j++) diff |= m[5 + j][l] ^ mp_load_be32(want + 4 * j);
                ok[element[l]] = diff == 0;
                LOAD_LANE(l);
                alive -= !live[l];
            }
        }
    }
#undef LOAD_LANE
}

/* ---- order tags (4-byte label + 60 bytes: one block) ---- */

MP_AVX2 void mp_mac128_verify_avx2_x8(MP_TAG_BATCH_PARAMS) {
    if (mac_len != 60) {
        mp_mac128_verify_portable(count, keys, label, records, stride, mac_len, ok);
        return;
    }
    uint32_t m[16][8] __attribute__((aligned(32)));
    uint32_t s[8][8] __attribute__((aligned(32)));
    const uint32_t label_word = mp_load_be32((const uint8_t *)label);
    /* the inner hash's second block pads every tag's 128 bytes alike */
    uint32_t pad_wk[64];
    mp_sha256_padding_wk(128, pad_wk);
    for (size_t base = 0; base < count; base += 8) {
        const uint8_t *rec[8];
        for (int l = 0; l < 8; l++) {
            size_t r = base + (size_t)l < count ? base + (size_t)l : count - 1;
            rec[l] = records + r * stride;
            m[0][l] = label_word;
            for (int j = 1; j < 16; j++) m[j][l] = mp_load_be32(rec[l] + 4 * (j - 1));
            for (int j = 0; j < 8; j++) s[j][l] = keys[r]->inner[j];
        }
        __m256i w[16], st[8];
        for (int j = 0; j < 16; j++) w[j] = _mm256_load_si256((const __m256i *)m[j]);
        for (int j = 0; j < 8; j++) st[j] = _mm256_load_si256((const __m256i *)s[j]);
        compress8(st, w, NULL);
        compress8(st, NULL, pad_wk);
        /* outer: the inner digest's words, then the padding of a 96-byte message */
        for (int j = 0; j < 8; j++) w[j] = st[j];
        w[8] = _mm256_set1_epi32((int)0x80000000u);
        for (int j = 9; j < 15; j++) w[j] = _mm256_setzero_si256();
        w[15] = _mm256_set1_epi32(768);
        for (int l = 0; l < 8; l++) {
            size_t r = base + (size_t)l < count ? base + (size_t)l : count - 1;
            for (int j = 0; j < 8; j++) s[j][l] = keys[r]->outer[j];
        }
        for (int j = 0; j < 8; j++) st[j] = _mm256_load_si256((const __m256i *)s[j]);
        compress8(st, w, NULL);
        for (int j = 0; j < 4; j++) _mm256_store_si256((__m256i *)s[j], st[j]);
        for (int l = 0; l < 8 && base + (size_t)l < count; l++) {
            uint32_t diff = 0;
            for (int j = 0; j < 4; j++) diff |= s[j][l] ^ mp_load_be32(rec[l] + 60 + 4 * j);
            ok[base + (size_t)l] = diff == 0;
        }
    }
}

#endif
