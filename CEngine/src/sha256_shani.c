/* SHA-256 compression on the x86 SHA extensions. Compiled per function with
 * a target attribute (no -march for the whole package) and reached only
 * after mp_init has seen SHA, SSSE3 and SSE4.1 in CPUID. */
#include "internal.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>

/* CPUID traps to the hypervisor on a virtual machine (microseconds): each
 * feature is read once and kept. */
#define CACHED_FEATURE(name)                                   \
    static int name##_probe(void);                             \
    int name(void) {                                           \
        static _Atomic int cached = -1;                        \
        int value = cached;                                    \
        if (value < 0) cached = value = name##_probe();        \
        return value;                                          \
    }

CACHED_FEATURE(mp_cpu_has_shani)
CACHED_FEATURE(mp_cpu_has_avx2)
CACHED_FEATURE(mp_cpu_has_aesni)

static int mp_cpu_has_shani_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    int ssse3 = (c >> 9) & 1, sse41 = (c >> 19) & 1;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    int sha = (b >> 29) & 1;
    return ssse3 && sse41 && sha;
}

static int mp_cpu_has_avx2_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    /* AVX needs OSXSAVE and the OS saving YMM state (XCR0 bits 1 and 2) */
    if (!((c >> 27) & 1) || !((c >> 28) & 1)) return 0;
    unsigned xcr0_lo, xcr0_hi;
    __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
    if ((xcr0_lo & 6) != 6) return 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    return (b >> 5) & 1;
}

static int mp_cpu_has_aesni_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    return ((c >> 25) & 1) && ((c >> 1) & 1); /* AES-NI and PCLMULQDQ */
}

#define MP_SHANI __attribute__((target("sha,ssse3,sse4.1")))

/* Four rounds 4g..4g+3 on message words `cur`; while the unit works, the
 * schedule computes the words of group g+1 (into `next`) and starts those of
 * group g+3 (in `prev`). */
#define QROUND(g, cur, prev, next)                                            \
    do {                                                                      \
        msg = _mm_add_epi32(cur, _mm_loadu_si128((const __m128i *)&mp_sha256_k[4 * (g)])); \
        s1 = _mm_sha256rnds2_epu32(s1, s0, msg);                              \
        if ((g) >= 3 && (g) <= 14) {                                          \
            tmp = _mm_alignr_epi8(cur, prev, 4);                              \
            next = _mm_add_epi32(next, tmp);                                  \
            next = _mm_sha256msg2_epu32(next, cur);                           \
        }                                                                     \
        msg = _mm_shuffle_epi32(msg, 0x0E);                                   \
        s0 = _mm_sha256rnds2_epu32(s0, s1, msg);                              \
        if ((g) >= 1 && (g) <= 12) prev = _mm_sha256msg1_epu32(prev, cur);    \
    } while (0)

MP_SHANI
void mp_sha256_compress_shani(uint32_t state[8], const uint8_t *data, size_t blocks) {
    const __m128i bswap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
    __m128i s0, s1, msg, tmp, m0, m1, m2, m3, abef, cdgh;

    /* state words a..h → the (ABEF, CDGH) lane order sha256rnds2 wants */
    tmp = _mm_loadu_si128((const __m128i *)&state[0]);
    s1 = _mm_loadu_si128((const __m128i *)&state[4]);
    tmp = _mm_shuffle_epi32(tmp, 0xB1);
    s1 = _mm_shuffle_epi32(s1, 0x1B);
    s0 = _mm_alignr_epi8(tmp, s1, 8);
    s1 = _mm_blend_epi16(s1, tmp, 0xF0);

    while (blocks--) {
        abef = s0;
        cdgh = s1;
        m0 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 0)), bswap);
        m1 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 16)), bswap);
        m2 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 32)), bswap);
        m3 = _mm_shuffle_epi8(_mm_loadu_si128((const __m128i *)(data + 48)), bswap);

        QROUND(0, m0, m3, m1);
        QROUND(1, m1, m0, m2);
        QROUND(2, m2, m1, m3);
        QROUND(3, m3, m2, m0);
        QROUND(4, m0, m3, m1);
        QROUND(5, m1, m0, m2);
        QROUND(6, m2, m1, m3);
        QROUND(7, m3, m2, m0);
        QROUND(8, m0, m3, m1);
        QROUND(9, m1, m0, m2);
        QROUND(10, m2, m1, m3);
        QROUND(11, m3, m2, m0);
        QROUND(12, m0, m3, m1);
        QROUND(13, m1, m0, m2);
        QROUND(14, m2, m1, m3);
        QROUND(15, m3, m2, m0);

        s0 = _mm_add_epi32(s0, abef);
        s1 = _mm_add_epi32(s1, cdgh);
        data += 64;
    }

    tmp = _mm_shuffle_epi32(s0, 0x1B);
    s1 = _mm_shuffle_epi32(s1, 0xB1);
    s0 = _mm_blend_epi16(tmp, s1, 0xF0);
    s1 = _mm_alignr_epi8(s1, tmp, 8);
    _mm_storeu_si128((__m128i *)&state[0], s0);
    _mm_storeu_si128((__m128i *)&state[4], s1);
}
#endif
