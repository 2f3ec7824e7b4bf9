/* Multi-lane batch kernels on the x86 SHA extensions.
 *
 * A chain step or an HMAC compression is 32 dependent sha256rnds2; their
 * latency leaves the SHA unit idle unless several independent blocks are in
 * flight, so these kernels interleave 1, 2 or 4 lanes. Chains stay in
 * registers: a step's output state words are the next step's message words
 * W5..W12 (the big-endian store and load cancel), W0..W3 are the chain's
 * constant prefix "MPC1" || chain_id, W4 the index, W13..W15 the padding. */
#include "internal.h"

#if defined(__x86_64__)
#include <immintrin.h>

#define MP_SHANI __attribute__((target("sha,ssse3,sse4.1")))
#define MP_INLINE static inline __attribute__((always_inline))

MP_SHANI MP_INLINE __m128i bswap_mask(void) {
    return _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
}

/* State words a..h ↔ the (ABEF, CDGH) pairs sha256rnds2 works on. */
MP_SHANI MP_INLINE void to_abef(__m128i abcd, __m128i efgh, __m128i *s0, __m128i *s1) {
    __m128i t0 = _mm_shuffle_epi32(abcd, 0xB1);
    __m128i t1 = _mm_shuffle_epi32(efgh, 0x1B);
    *s0 = _mm_alignr_epi8(t0, t1, 8);
    *s1 = _mm_blend_epi16(t1, t0, 0xF0);
}

MP_SHANI MP_INLINE void from_abef(__m128i s0, __m128i s1, __m128i *abcd, __m128i *efgh) {
    __m128i t0 = _mm_shuffle_epi32(s0, 0x1B);
    __m128i t1 = _mm_shuffle_epi32(s1, 0xB1);
    *abcd = _mm_blend_epi16(t0, t1, 0xF0);
    *efgh = _mm_alignr_epi8(t1, t0, 8);
}

/* Quad-round g on every lane; see sha256_shani.c for the schedule. */
#define LANES_QROUND(L, g, S0, S1, CUR, PREV, NEXT)                                              \
    do {                                                                                         \
        const __m128i k_ = _mm_loadu_si128((const __m128i *)&mp_sha256_k[4 * (g)]);              \
        __m128i msg_[4];                                                                         \
        for (int l = 0; l < (L); l++) {                                                          \
            msg_[l] = _mm_add_epi32(CUR[l], k_);                                                 \
            S1[l] = _mm_sha256rnds2_epu32(S1[l], S0[l], msg_[l]);                                \
        }                                                                                        \
        for (int l = 0; l < (L); l++) {                                                          \
            if ((g) >= 3 && (g) <= 14)                                                           \
                NEXT[l] = _mm_sha256msg2_epu32(                                                  \
                    _mm_add_epi32(NEXT[l], _mm_alignr_epi8(CUR[l], PREV[l], 4)), CUR[l]);        \
            S0[l] = _mm_sha256rnds2_epu32(S0[l], S1[l], _mm_shuffle_epi32(msg_[l], 0x0E));       \
            if ((g) >= 1 && (g) <= 12) PREV[l] = _mm_sha256msg1_epu32(PREV[l], CUR[l]);          \
        }                                                                                        \
    } while (0)

#define LANES_ROUNDS(L, S0, S1, M0, M1, M2, M3)          \
    do {                                                 \
        LANES_QROUND(L, 0, S0, S1, M0, M3, M1);          \
        LANES_QROUND(L, 1, S0, S1, M1, M0, M2);          \
        LANES_QROUND(L, 2, S0, S1, M2, M1, M3);          \
        LANES_QROUND(L, 3, S0, S1, M3, M2, M0);          \
        LANES_QROUND(L, 4, S0, S1, M0, M3, M1);          \
        LANES_QROUND(L, 5, S0, S1, M1, M0, M2);          \
        LANES_QROUND(L, 6, S0, S1, M2, M1, M3);          \
        LANES_QROUND(L, 7, S0, S1, M3, M2, M0);          \
        LANES_QROUND(L, 8, S0, S1, M0, M3, M1);          \
        LANES_QROUND(L, 9, S0, S1, M1, M0, M2);          \
        LANES_QROUND(L, 10, S0, S1, M2, M1, M3);         \
        LANES_QROUND(L, 11, S0, S1, M3, M2, M0);         \
        LANES_QROUND(L, 12, S0, S1, M0, M3, M1);         \
        LANES_QROUND(L, 13, S0, S1, M1, M0, M2);         \
        LANES_QROUND(L, 14, S0, S1, M2, M1, M3);         \
        LANES_QROUND(L, 15, S0, S1, M3, M2, M0);         \
    } while (0)

/* With four lanes the interleaved schedule needs 24 live registers and
 * spills; instead each lane's W+K for all 64 rounds is written to the stack
 * first, for chains and tags alike, so the interleaved rounds keep only the
 * 2 state registers per lane live and read their message (the implicit xmm0
 * operand) from memory. */
#define SCHED_QUAD_LANES(L, g, CUR, PREV, NEXT, WK)                                          \
    do {                                                                                     \
        const __m128i k_ = _mm_loadu_si128((const __m128i *)&mp_sha256_k[4 * (g)]);          \
        for (int l = 0; l < (L); l++) {                                                      \
            _mm_store_si128((__m128i *)&WK[l][4 * (g)], _mm_add_epi32(CUR[l], k_));          \
            if ((g) >= 3 && (g) <= 14)                                                       \
                NEXT[l] = _mm_sha256msg2_epu32(_mm_add_epi32(NEXT[l], _mm_alignr_epi8(CUR[l], PREV[l], 4)), CUR[l]); \
            if ((g) >= 1 && (g) <= 12) PREV[l] = _mm_sha256msg1_epu32(PREV[l], CUR[l]);      \
        }                                                                                    \
    } while (0)

#define SCHEDULE_LANES(L, M0, M1, M2, M3, WK)            \
    do {                                                 \
        SCHED_QUAD_LANES(L, 0, M0, M3, M1, WK);          \
        SCHED_QUAD_LANES(L, 1, M1, M0, M2, WK);          \
        SCHED_QUAD_LANES(L, 2, M2, M1, M3, WK);          \
        SCHED_QUAD_LANES(L, 3, M3, M2, M0, WK);          \
        SCHED_QUAD_LANES(L, 4, M0, M3, M1, WK);          \
        SCHED_QUAD_LANES(L, 5, M1, M0, M2, WK);          \
        SCHED_QUAD_LANES(L, 6, M2, M1, M3, WK);          \
        SCHED_QUAD_LANES(L, 7, M3, M2, M0, WK);          \
        SCHED_QUAD_LANES(L, 8, M0, M3, M1, WK);          \
        SCHED_QUAD_LANES(L, 9, M1, M0, M2, WK);          \
        SCHED_QUAD_LANES(L, 10, M2, M1, M3, WK);         \
        SCHED_QUAD_LANES(L, 11, M3, M2, M0, WK);         \
        SCHED_QUAD_LANES(L, 12, M0, M3, M1, WK);         \
        SCHED_QUAD_LANES(L, 13, M1, M0, M2, WK);         \
        SCHED_QUAD_LANES(L, 14, M2, M1, M3, WK);         \
        SCHED_QUAD_LANES(L, 15, M3, M2, M0, WK);         \
    } while (0)

/* 64 rounds on L lanes from their scheduled W+K. */
#define SCHEDULED_ROUNDS(L, S0, S1, WK)                                                       \
    do {                                                                                      \
        for (int q = 0; q < 16; q++)                                                          \
            for (int l = 0; l < (L); l++) {                                                   \
                S1[l] = _mm_sha256rnds2_epu32(S1[l], S0[l],                                   \
                                              _mm_load_si128((const __m128i *)&WK[l][4 * q])); \
                S0[l] = _mm_sha256rnds2_epu32(S0[l], S1[l],                                   \
                                              _mm_loadl_epi64((const __m128i *)&WK[l][4 * q + 2])); \
            }                                                                                 \
    } while (0)

/* One compression on L lanes from their message words: the schedule in
 * registers beside the rounds for up to 2 lanes, through the stack for 4. */
#define COMPRESS_LANES(L, S0, S1, M0, M1, M2, M3)             \
    do {                                                      \
        if ((L) >= 4) {                                       \
            uint32_t wk_[4][64] __attribute__((aligned(16))); \
            SCHEDULE_LANES(L, M0, M1, M2, M3, wk_);           \
            SCHEDULED_ROUNDS(L, S0, S1, wk_);                 \
        } else {                                              \
            LANES_ROUNDS(L, S0, S1, M0, M1, M2, M3);          \
        }                                                     \
    } while (0)

/* Lane l starts a compression: from the state words st (kept in A0/A1 for
 * the final add) on the 64-byte block's message words. */
MP_SHANI MP_INLINE void lane_start(int l, const uint32_t st[8], const uint8_t block[64], __m128i mask, __m128i *S0,
                                   __m128i *S1, __m128i *A0, __m128i *A1, __m128i *M0, __m128i *M1, __m128i *M2,
                                   __m128i *M3) {
    to_abef(_mm_loadu_si128((const __m128i *)&st[0]), _mm_loadu_si128((const __m128i *)&st[4]), &A0[l], &A1[l]);
    S0[l] = A0[l];
    S1[l] = A1[l];
    M0[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 0)), mask);
    M1[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 16)), mask);
    M2[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 32)), mask);
    M3[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(block + 48)), mask);
}

/* ---- chains ---- */

typedef struct chain_lanes {
    __m128i prefix[4], abcd[4], efgh[4];
    uint32_t k[4], target[4];
    size_t element[4];
    int live[4];
    size_t next;
} chain_lanes;

/* Gives lane l the next element that needs hashing; elements with nothing to
 * walk (index <= last) fail at once, as the scalar path does. */
MP_SHANI MP_INLINE void chain_lane_load(chain_lanes *s, int l, MP_CHAIN_BATCH_PARAMS) {
    (void)expected;
    while (s->next < count && index[s->next] <= last[s->next]) ok[s->next++] = 0;
    if (s->next == count) {
        s->live[l] = 0;
        return;
    }
    size_t e = s->next++;
    const __m128i mask = bswap_mask();
    uint8_t prefix[16];
    memcpy(prefix, "MPC1", 4);
    memcpy(prefix + 4, chain_ids + 12 * e, 12);
    s->prefix[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)prefix), mask);
    s->abcd[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(words + 32 * e)), mask);
    s->efgh[l] = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(words + 32 * e + 16)), mask);
    s->k[l] = index[e];
    s->target[l] = last[e];
    s->element[l] = e;
    s->live[l] = 1;
}

MP_SHANI MP_INLINE void chain_verify_lanes(const int L, MP_CHAIN_BATCH_PARAMS) {
    const __m128i mask = bswap_mask();
    const __m128i pad = _mm_set_epi32(416, 0, (int)0x80000000, 0);
    __m128i iv0, iv1;
    to_abef(_mm_loadu_si128((const __m128i *)&mp_sha256_iv[0]),
            _mm_loadu_si128((const __m128i *)&mp_sha256_iv[4]), &iv0, &iv1);
    chain_lanes s;
    s.next = 0;
    int live = 0;
    for (int l = 0; l < L; l++) {
        chain_lane_load(&s, l, count, chain_ids, index, words, last, expected, ok);
        live += s.live[l];
    }
    while (live > 0) {
        __m128i S0[4], S1[4], M0[4], M1[4], M2[4], M3[4];
        for (int l = 0; l < L; l++) {
            S0[l] = iv0;
            S1[l] = iv1;
            M0[l] = s.prefix[l];
            M1[l] = _mm_or_si128(_mm_slli_si128(s.abcd[l], 4), _mm_cvtsi32_si128((int)s.k[l]));
            M2[l] = _mm_alignr_epi8(s.efgh[l], s.abcd[l], 12);
            M3[l] = _mm_or_si128(_mm_srli_si128(s.efgh[l], 12), pad);
        }
        COMPRESS_LANES(L, S0, S1, M0, M1, M2, M3);
        for (int l = 0; l < L; l++) {
            from_abef(_mm_add_epi32(S0[l], iv0), _mm_add_epi32(S1[l], iv1), &s.abcd[l], &s.efgh[l]);
            s.k[l]--;
            if (s.live[l] && s.k[l] == s.target[l]) {
                const uint8_t *want = expected + 32 * s.element[l];
                __m128i eq = _mm_and_si128(
                    _mm_cmpeq_epi32(s.abcd[l], _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)want), mask)),
                    _mm_cmpeq_epi32(s.efgh[l], _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(want + 16)), mask)));
                ok[s.element[l]] = _mm_movemask_epi8(eq) == 0xFFFF;
                chain_lane_load(&s, l, count, chain_ids, index, words, last, expected, ok);
                live -= !s.live[l];
            }
        }
    }
}

MP_SHANI void mp_chain_verify_shani_x1(MP_CHAIN_BATCH_PARAMS) {
    chain_verify_lanes(1, count, chain_ids, index, words, last, expected, ok);
}
MP_SHANI void mp_chain_verify_shani_x2(MP_CHAIN_BATCH_PARAMS) {
    chain_verify_lanes(2, count, chain_ids, index, words, last, expected, ok);
}
MP_SHANI void mp_chain_verify_shani_x4(MP_CHAIN_BATCH_PARAMS) {
    chain_verify_lanes(4, count, chain_ids, index, words, last, expected, ok);
}

/* ---- order tags: MAC128 over exactly one block (4-byte label + 60 bytes) ---- */

MP_SHANI MP_INLINE void tag_verify_lanes(const int L, MP_TAG_BATCH_PARAMS) {
    if (mac_len != 60) {
        mp_mac128_verify_portable(count, keys, label, records, stride, mac_len, ok);
        return;
    }
    const __m128i mask = bswap_mask();
    const __m128i pad_first = _mm_set_epi32(0, 0, 0, (int)0x80000000);
    const __m128i pad_outer_len = _mm_set_epi32(768, 0, 0, 0);  /* 96 bytes hashed */
    /* The inner hash's second block is the same padding for every tag: its
     * W+K is scheduled once, and that compression is rounds alone. */
    uint32_t pad_wk[64] __attribute__((aligned(16)));
    mp_sha256_padding_wk(128, pad_wk);
    const uint32_t *pad_rows[4] = {pad_wk, pad_wk, pad_wk, pad_wk};
    for (size_t base = 0; base < count; base += (size_t)L) {
        __m128i S0[4], S1[4], A0[4], A1[4], M0[4], M1[4], M2[4], M3[4];
        const uint8_t *rec[4];
        for (int l = 0; l < L; l++) {
            size_t r = base + (size_t)l < count ? base + (size_t)l : count - 1;
            rec[l] = records + r * stride;
            uint8_t block[64];
            memcpy(block, label, 4);
            memcpy(block + 4, rec[l], 60);
            lane_start(l, keys[r]->inner, block, mask, S0, S1, A0, A1, M0, M1, M2, M3);
        }
        COMPRESS_LANES(L, S0, S1, M0, M1, M2, M3);
        for (int l = 0; l < L; l++) {
            S0[l] = A0[l] = _mm_add_epi32(S0[l], A0[l]);
            S1[l] = A1[l] = _mm_add_epi32(S1[l], A1[l]);
        }
        SCHEDULED_ROUNDS(L, S0, S1, pad_rows);
        for (int l = 0; l < L; l++) {
            size_t r = base + (size_t)l < count ? base + (size_t)l : count - 1;
            /* the inner digest's words are the outer block's first 8 message words */
            from_abef(_mm_add_epi32(S0[l], A0[l]), _mm_add_epi32(S1[l], A1[l]), &M0[l], &M1[l]);
            M2[l] = pad_first;
            M3[l] = pad_outer_len;
            to_abef(_mm_loadu_si128((const __m128i *)&keys[r]->outer[0]),
                    _mm_loadu_si128((const __m128i *)&keys[r]->outer[4]), &A0[l], &A1[l]);
            S0[l] = A0[l];
            S1[l] = A1[l];
        }
        COMPRESS_LANES(L, S0, S1, M0, M1, M2, M3);
        for (int l = 0; l < L && base + (size_t)l < count; l++) {
            __m128i abcd, efgh;
            from_abef(_mm_add_epi32(S0[l], A0[l]), _mm_add_epi32(S1[l], A1[l]), &abcd, &efgh);
            __m128i tag = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(rec[l] + 60)), mask);
            ok[base + (size_t)l] = _mm_movemask_epi8(_mm_cmpeq_epi32(abcd, tag)) == 0xFFFF;
        }
    }
}

/* ---- independent one-block compressions (key schedules: many keys' HMAC states) ---- */

MP_SHANI MP_INLINE void compress_blocks_lanes(const int L, MP_BLOCKS_PARAMS) {
    const __m128i mask = bswap_mask();
    for (size_t base = 0; base < count; base += (size_t)L) {
        __m128i S0[4], S1[4], A0[4], A1[4], M0[4], M1[4], M2[4], M3[4];
        for (int l = 0; l < L; l++) {
            /* past the end, a lane repeats the last block and is not stored */
            size_t i = base + (size_t)l < count ? base + (size_t)l : count - 1;
            lane_start(l, state[i], blocks + 64 * i, mask, S0, S1, A0, A1, M0, M1, M2, M3);
        }
        COMPRESS_LANES(L, S0, S1, M0, M1, M2, M3);
        for (int l = 0; l < L && base + (size_t)l < count; l++) {
            __m128i abcd, efgh;
            from_abef(_mm_add_epi32(S0[l], A0[l]), _mm_add_epi32(S1[l], A1[l]), &abcd, &efgh);
            _mm_storeu_si128((__m128i *)&state[base + (size_t)l][0], abcd);
            _mm_storeu_si128((__m128i *)&state[base + (size_t)l][4], efgh);
        }
    }
}

MP_SHANI void mp_compress_blocks_shani_x1(MP_BLOCKS_PARAMS) { compress_blocks_lanes(1, count, state, blocks); }
MP_SHANI void mp_compress_blocks_shani_x2(MP_BLOCKS_PARAMS) { compress_blocks_lanes(2, count, state, blocks); }
MP_SHANI void mp_compress_blocks_shani_x4(MP_BLOCKS_PARAMS) { compress_blocks_lanes(4, count, state, blocks); }

MP_SHANI void mp_mac128_verify_shani_x1(MP_TAG_BATCH_PARAMS) {
    tag_verify_lanes(1, count, keys, label, records, stride, mac_len, ok);
}
MP_SHANI void mp_mac128_verify_shani_x2(MP_TAG_BATCH_PARAMS) {
    tag_verify_lanes(2, count, keys, label, records, stride, mac_len, ok);
}
MP_SHANI void mp_mac128_verify_shani_x4(MP_TAG_BATCH_PARAMS) {
    tag_verify_lanes(4, count, keys, label, records, stride, mac_len, ok);
}

#endif
