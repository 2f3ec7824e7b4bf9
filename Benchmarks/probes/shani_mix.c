/* Probe: can vector-ALU SHA-256 lanes run beside SHA-NI lanes in one
 * instruction stream, and so pass the SHA unit's ceiling?
 *
 *   clang -O2 -o /tmp/shani_mix Benchmarks/probes/shani_mix.c && /tmp/shani_mix
 *
 * Four loops, each timed alone (3 rounds): SHA-NI chain steps on 2 lanes in
 * SSE-only code, the same next to 4-lane SSE SHA-256 rounds (8 of them per
 * SHA-NI step), AVX2 8-lane blocks alone, and SHA-NI next to the AVX2 lanes.
 * The chain steps are shaped like the engine's (each step's message is the
 * previous state), the rounds like lanes_avx2.c's; only the rates matter,
 * the hashes are not checked.
 *
 * On the project machine (AMD EPYC Zen 3 under KVM, 2026-11-26): SHA-NI
 * alone 37-43 M steps/s; with the SSE lanes 22-32 M steps and blocks in all,
 * less than alone (they share the vector pipes); SHA-NI in the AVX2 function
 * 10.5-11 M, and interleaved with AVX2 0.4 M: sha256rnds2 exists only in the
 * legacy SSE encoding, and with the AVX2 lanes' upper halves live it pays a
 * penalty on every instruction. So no mix beats the SHA-NI kernels here. */
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>
static const uint32_t K[64] = {
0x428a2f98,0x71374491,0xb5c0fbcf,0xe9b5dba5,0x3956c25b,0x59f111f1,0x923f82a4,0xab1c5ed5,0xd807aa98,0x12835b01,0x243185be,0x550c7dc3,0x72be5d74,0x80deb1fe,0x9bdc06a7,0xc19bf174,
0xe49b69c1,0xefbe4786,0x0fc19dc6,0x240ca1cc,0x2de92c6f,0x4a7484aa,0x5cb0a9dc,0x76f988da,0x983e5152,0xa831c66d,0xb00327c8,0xbf597fc7,0xc6e00bf3,0xd5a79147,0x06ca6351,0x14292967,
0x27b70a85,0x2e1b2138,0x4d2c6dfc,0x53380d13,0x650a7354,0x766a0abb,0x81c2c92e,0x92722c85,0xa2bfe8a1,0xa81a664b,0xc24b8b70,0xc76c51a3,0xd192e819,0xd6990624,0xf40e3585,0x106aa070,
0x19a4c116,0x1e376c08,0x2748774c,0x34b0bcb5,0x391c0cb3,0x4ed8aa4a,0x5b9cca4f,0x682e6ff3,0x748f82ee,0x78a5636f,0x84c87814,0x8cc70208,0x90befffa,0xa4506ceb,0xbef9a3f7,0xc67178f2};
#define ROTR(x, n) _mm256_or_si256(_mm256_srli_epi32(x, n), _mm256_slli_epi32(x, 32 - (n)))
#define BSIG0(a) _mm256_xor_si256(_mm256_xor_si256(ROTR(a, 2), ROTR(a, 13)), ROTR(a, 22))
#define BSIG1(e) _mm256_xor_si256(_mm256_xor_si256(ROTR(e, 6), ROTR(e, 11)), ROTR(e, 25))
#define SSIG0(x) _mm256_xor_si256(_mm256_xor_si256(ROTR(x, 7), ROTR(x, 18)), _mm256_srli_epi32(x, 3))
#define SSIG1(x) _mm256_xor_si256(_mm256_xor_si256(ROTR(x, 17), ROTR(x, 19)), _mm256_srli_epi32(x, 10))
typedef struct { __m256i v[8]; } st8;
#define AVX_ROUND(i) do { \
    __m256i wi; \
    if ((i) < 16) wi = w[(i)]; else { wi = _mm256_add_epi32(_mm256_add_epi32(SSIG1(w[((i) - 2) & 15]), w[((i) - 7) & 15]), \
                              _mm256_add_epi32(SSIG0(w[((i) - 15) & 15]), w[(i) & 15])); w[(i) & 15] = wi; } \
    __m256i ch = _mm256_xor_si256(_mm256_and_si256(e, f), _mm256_andnot_si256(e, g)); \
    __m256i maj = _mm256_xor_si256(_mm256_and_si256(a, _mm256_xor_si256(b, c)), _mm256_and_si256(b, c)); \
    __m256i t1 = _mm256_add_epi32(_mm256_add_epi32(h, BSIG1(e)), _mm256_add_epi32(ch, _mm256_add_epi32(wi, _mm256_set1_epi32((int)K[(i)])))); \
    __m256i t2 = _mm256_add_epi32(BSIG0(a), maj); \
    h = g; g = f; f = e; e = _mm256_add_epi32(d, t1); d = c; c = b; b = a; a = _mm256_add_epi32(t1, t2); } while (0)

#define QR(g, S0, S1, CUR, PREV, NEXT) do { \
    __m128i m_ = _mm_add_epi32(CUR, _mm_loadu_si128((const __m128i *)&K[4 * (g)])); \
    S1 = _mm_sha256rnds2_epu32(S1, S0, m_); \
    if ((g) >= 3 && (g) <= 14) NEXT = _mm_sha256msg2_epu32(_mm_add_epi32(NEXT, _mm_alignr_epi8(CUR, PREV, 4)), CUR); \
    S0 = _mm_sha256rnds2_epu32(S0, S1, _mm_shuffle_epi32(m_, 0x0E)); \
    if ((g) >= 1 && (g) <= 12) PREV = _mm_sha256msg1_epu32(PREV, CUR); } while (0)
#define QR2(g, c, p, n) do { QR(g, A0, A1, Am##c, Am##p, Am##n); QR(g, B0, B1, Bm##c, Bm##p, Bm##n); } while (0)
/* step start: message from the state (as a chain does) */
#define SHA_BEGIN() do { Am0 = pre; Am1 = A0; Am2 = A1; Am3 = pad; Bm0 = pre; Bm1 = B0; Bm2 = B1; Bm3 = pad; \
    sA0 = A0; sA1 = A1; sB0 = B0; sB1 = B1; } while (0)
#define SHA_END() do { A0 = _mm_add_epi32(A0, sA0); A1 = _mm_add_epi32(A1, sA1); B0 = _mm_add_epi32(B0, sB0); B1 = _mm_add_epi32(B1, sB1); } while (0)

/* Eight SHA-NI x2 chain steps with eight rounds of ROUND after each pair of quad-rounds. */
#define INTERLEAVED_STEPS(ROUND)                                                       \
    for (int s = 0; s < 8; s++) {                                                      \
        int r = 8 * s;                                                                 \
        SHA_BEGIN();                                                                   \
        QR2(0, 0, 3, 1); QR2(1, 1, 0, 2); ROUND(r + 0);                                \
        QR2(2, 2, 1, 3); QR2(3, 3, 2, 0); ROUND(r + 1);                                \
        QR2(4, 0, 3, 1); QR2(5, 1, 0, 2); ROUND(r + 2);                                \
        QR2(6, 2, 1, 3); QR2(7, 3, 2, 0); ROUND(r + 3);                                \
        QR2(8, 0, 3, 1); QR2(9, 1, 0, 2); ROUND(r + 4);                                \
        QR2(10, 2, 1, 3); QR2(11, 3, 2, 0); ROUND(r + 5);                              \
        QR2(12, 0, 3, 1); QR2(13, 1, 0, 2); ROUND(r + 6);                              \
        QR2(14, 2, 1, 3); QR2(15, 3, 2, 0); ROUND(r + 7);                              \
        SHA_END();                                                                     \
    }

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

__attribute__((target("sha,avx2"), noinline)) double run(int mode, long iters, uint32_t *sink) {
    __m128i A0 = _mm_set1_epi32(1), A1 = _mm_set1_epi32(2), B0 = _mm_set1_epi32(3), B1 = _mm_set1_epi32(4);
    __m128i Am0, Am1, Am2, Am3, Bm0, Bm1, Bm2, Bm3, sA0, sA1, sB0, sB1;
    const __m128i pre = _mm_set_epi32(1, 2, 3, 4), pad = _mm_set_epi32(416, 0, (int)0x80000000, 0);
    __m256i a = _mm256_set1_epi32(5), b = a, c = a, d = a, e = a, f = a, g = a, h = a;
    __m256i w[16];
    _mm256_zeroupper();
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        /* one AVX2 8-lane block and/or eight SHA-NI x2 steps */
        if (mode != 1) {
            for (int j = 0; j < 8; j++) w[j] = j & 1 ? a : e; /* message from the state */
            for (int j = 8; j < 16; j++) w[j] = _mm256_set1_epi32(j);
        }
        if (mode == 0) { /* AVX2 alone */
            for (int i = 0; i < 64; i++) AVX_ROUND(i);
        } else if (mode == 1) { /* SHA-NI alone: 8 steps on 2 lanes */
            for (int s = 0; s < 8; s++) {
                SHA_BEGIN();
                QR2(0,0,3,1); QR2(1,1,0,2); QR2(2,2,1,3); QR2(3,3,2,0); QR2(4,0,3,1); QR2(5,1,0,2); QR2(6,2,1,3); QR2(7,3,2,0);
                QR2(8,0,3,1); QR2(9,1,0,2); QR2(10,2,1,3); QR2(11,3,2,0); QR2(12,0,3,1); QR2(13,1,0,2); QR2(14,2,1,3); QR2(15,3,2,0);
                SHA_END();
            }
        } else { /* both, interleaved: 8 AVX2 rounds per SHA-NI step */
            INTERLEAVED_STEPS(AVX_ROUND);
        }
    }
    double t = now() - t0;
    __m256i x = _mm256_xor_si256(_mm256_xor_si256(a, e), h);
    __m128i y = _mm_xor_si128(_mm_xor_si128(A0, A1), _mm_xor_si128(B0, B1));
    sink[0] = (uint32_t)_mm256_extract_epi32(x, 0) ^ (uint32_t)_mm_extract_epi32(y, 0);
    return t;
}

__attribute__((target("sha,sse4.1"), noinline)) double run_sse(long iters, uint32_t *sink) {
    __m128i A0 = _mm_set1_epi32(1), A1 = _mm_set1_epi32(2), B0 = _mm_set1_epi32(3), B1 = _mm_set1_epi32(4);
    __m128i Am0, Am1, Am2, Am3, Bm0, Bm1, Bm2, Bm3, sA0, sA1, sB0, sB1;
    const __m128i pre = _mm_set_epi32(1, 2, 3, 4), pad = _mm_set_epi32(416, 0, (int)0x80000000, 0);
    double t0 = now();
    for (long it = 0; it < iters * 8; it++) {
        SHA_BEGIN();
        QR2(0,0,3,1); QR2(1,1,0,2); QR2(2,2,1,3); QR2(3,3,2,0); QR2(4,0,3,1); QR2(5,1,0,2); QR2(6,2,1,3); QR2(7,3,2,0);
        QR2(8,0,3,1); QR2(9,1,0,2); QR2(10,2,1,3); QR2(11,3,2,0); QR2(12,0,3,1); QR2(13,1,0,2); QR2(14,2,1,3); QR2(15,3,2,0);
        SHA_END();
    }
    double t = now() - t0;
    sink[0] = (uint32_t)_mm_extract_epi32(_mm_xor_si128(A0, B1), 0);
    return t;
}

#define R4(x, n) _mm_or_si128(_mm_srli_epi32(x, n), _mm_slli_epi32(x, 32 - (n)))
#define B0_4(a) _mm_xor_si128(_mm_xor_si128(R4(a, 2), R4(a, 13)), R4(a, 22))
#define B1_4(e) _mm_xor_si128(_mm_xor_si128(R4(e, 6), R4(e, 11)), R4(e, 25))
#define S0_4(x) _mm_xor_si128(_mm_xor_si128(R4(x, 7), R4(x, 18)), _mm_srli_epi32(x, 3))
#define S1_4(x) _mm_xor_si128(_mm_xor_si128(R4(x, 17), R4(x, 19)), _mm_srli_epi32(x, 10))
#define SSE_ROUND(i) do { \
    __m128i wi; \
    if ((i) < 16) wi = v[(i)]; else { wi = _mm_add_epi32(_mm_add_epi32(S1_4(v[((i) - 2) & 15]), v[((i) - 7) & 15]), \
                              _mm_add_epi32(S0_4(v[((i) - 15) & 15]), v[(i) & 15])); v[(i) & 15] = wi; } \
    __m128i ch = _mm_xor_si128(_mm_and_si128(pe, pf), _mm_andnot_si128(pe, pg)); \
    __m128i maj = _mm_xor_si128(_mm_and_si128(pa, _mm_xor_si128(pb, pc)), _mm_and_si128(pb, pc)); \
    __m128i t1 = _mm_add_epi32(_mm_add_epi32(ph, B1_4(pe)), _mm_add_epi32(ch, _mm_add_epi32(wi, _mm_set1_epi32((int)K[(i)])))); \
    __m128i t2 = _mm_add_epi32(B0_4(pa), maj); \
    ph = pg; pg = pf; pf = pe; pe = _mm_add_epi32(pd, t1); pd = pc; pc = pb; pb = pa; pa = _mm_add_epi32(t1, t2); } while (0)

/* mode 0: SSE 4-lane alone; mode 1: SHA-NI x2 + SSE 4-lane interleaved */
__attribute__((target("sha,sse4.1"), noinline)) double run_sse_mix(int mode, long iters, uint32_t *sink) {
    __m128i A0 = _mm_set1_epi32(1), A1 = _mm_set1_epi32(2), B0 = _mm_set1_epi32(3), B1 = _mm_set1_epi32(4);
    __m128i Am0, Am1, Am2, Am3, Bm0, Bm1, Bm2, Bm3, sA0, sA1, sB0, sB1;
    const __m128i pre = _mm_set_epi32(1, 2, 3, 4), pad = _mm_set_epi32(416, 0, (int)0x80000000, 0);
    __m128i pa = _mm_set1_epi32(5), pb = pa, pc = pa, pd = pa, pe = pa, pf = pa, pg = pa, ph = pa;
    __m128i v[16];
    double t0 = now();
    for (long it = 0; it < iters; it++) {
        for (int j = 0; j < 8; j++) v[j] = j & 1 ? pa : pe;
        for (int j = 8; j < 16; j++) v[j] = _mm_set1_epi32(j);
        if (mode == 0) {
            for (int i = 0; i < 64; i++) SSE_ROUND(i);
        } else {
            INTERLEAVED_STEPS(SSE_ROUND);
        }
    }
    double t = now() - t0;
    sink[0] = (uint32_t)_mm_extract_epi32(_mm_xor_si128(_mm_xor_si128(A0, B1), _mm_xor_si128(pa, ph)), 0);
    return t;
}
int main(void) {
    uint32_t sink[1];
    long iters = 400000;
    for (int round = 0; round < 3; round++) {
        double ta = run(0, iters, sink), ts = run(1, iters, sink), tb = run(2, iters, sink);
        double tq = run_sse(iters, sink);
        printf("sse-only sha-ni x2 %.1f M steps/s\n", 16.0 * iters / tq / 1e6);
        double tm0 = run_sse_mix(0, iters, sink), tm1 = run_sse_mix(1, iters, sink);
        printf("sse 4-lane alone %.1f M blocks/s | sha-ni x2 + sse 4-lane interleaved %.1f M (sha %.1f + sse %.1f)\n",
               4.0 * iters / tm0 / 1e6, 20.0 * iters / tm1 / 1e6, 16.0 * iters / tm1 / 1e6, 4.0 * iters / tm1 / 1e6);
        printf("avx2 x8 alone %.1f M blocks/s | sha-ni x2 in the AVX2 function %.1f M | sha-ni x2 + avx2 x8 interleaved %.1f M (sha %.1f + avx %.1f)  [%u]\n",
               8.0 * iters / ta / 1e6, 16.0 * iters / ts / 1e6, 24.0 * iters / tb / 1e6, 16.0 * iters / tb / 1e6, 8.0 * iters / tb / 1e6, sink[0]);
    }
}
