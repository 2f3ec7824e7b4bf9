/* Probe: how many sha256rnds2 a core retires per second, by the number of
 * independent chains in flight, and what the message schedule's
 * sha256msg1 / sha256msg2 take from it.
 *
 *   clang -O2 -o /tmp/sha_unit Benchmarks/probes/sha_unit.c && /tmp/sha_unit
 *
 * Each loop keeps L chains in registers; an iteration gives every chain two
 * dependent sha256rnds2, as a compression's rounds are (the message is a
 * constant register: no loads, no adds). The schedule variants add, beside
 * the rounds, sha256msg1 and sha256msg2 on chains of their own, independent
 * of the rounds: as many per round as a compression has. Best of 3 rounds
 * of 5 M iterations.
 *
 * A compression is 32 sha256rnds2 plus, for a message that must be
 * scheduled, 12 sha256msg1 and 12 sha256msg2. If the schedule ran beside
 * the rounds for free, the kernels' rates would follow the first lines; they
 * follow the last (BENCHMARKS.md, "What limits each"). The last two lines
 * are the schedule instructions alone, 8 independent chains of each: how
 * many the core retires a second when nothing else runs. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define ITERATIONS 5000000L
#define SHA __attribute__((target("sha,sse4.1"), noinline))

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static volatile int sink;

/* G sha256rnds2 per second with L chains (the unit of the lines printed
 * for them; the schedule probes below count their own instruction). An iteration gives each chain 4
 * pairs of rounds; MSG of the 4 pairs also carry a sha256msg1 and a
 * sha256msg2 (a compression's 12 of 16: MSG = 3). */
#define PROBE(NAME, L, MSG)                                                            \
    SHA static double NAME(void) {                                                     \
        __m128i s[L], t[L], w[L], u[L];                                                \
        const __m128i m = _mm_set1_epi32(0x12345678);                                  \
        for (int l = 0; l < (L); l++) {                                                \
            s[l] = _mm_set1_epi32(l);                                                  \
            t[l] = _mm_set1_epi32(3 * l + 1);                                          \
            w[l] = _mm_set1_epi32(5 * l + 2);                                          \
            u[l] = _mm_set1_epi32(9 * l + 3);                                          \
        }                                                                              \
        double start = now();                                                          \
        for (long i = 0; i < ITERATIONS; i++)                                          \
            for (int pair = 0; pair < 4; pair++)                                       \
                for (int l = 0; l < (L); l++) {                                        \
                    t[l] = _mm_sha256rnds2_epu32(t[l], s[l], m);                       \
                    if (pair < (MSG)) u[l] = _mm_sha256msg2_epu32(u[l], w[l]);         \
                    s[l] = _mm_sha256rnds2_epu32(s[l], t[l], m);                       \
                    if (pair < (MSG)) w[l] = _mm_sha256msg1_epu32(w[l], u[l]);         \
                }                                                                      \
        double seconds = now() - start;                                                \
        __m128i x = _mm_setzero_si128();                                               \
        for (int l = 0; l < (L); l++)                                                  \
            x = _mm_xor_si128(x, _mm_xor_si128(_mm_xor_si128(s[l], t[l]), _mm_xor_si128(w[l], u[l]))); \
        sink = _mm_cvtsi128_si32(x);                                                   \
        return 8.0 * (L) * ITERATIONS / seconds / 1e9;                                 \
    }

PROBE(rounds1, 1, 0)
PROBE(rounds2, 2, 0)
PROBE(rounds4, 4, 0)
PROBE(rounds6, 6, 0)
PROBE(scheduled2, 2, 3)
PROBE(scheduled4, 4, 3)
PROBE(scheduled6, 6, 3)
PROBE(every4, 4, 4)

/* G schedule instructions per second, 8 independent chains of one kind. */
#define PROBE_SCHEDULE(NAME, OP)                                                       \
    SHA static double NAME(void) {                                                     \
        __m128i x[8];                                                                  \
        const __m128i m = _mm_set1_epi32(0x12345678);                                  \
        for (int c = 0; c < 8; c++) x[c] = _mm_set1_epi32(c);                          \
        double start = now();                                                          \
        for (long i = 0; i < ITERATIONS; i++)                                          \
            for (int c = 0; c < 8; c++) x[c] = OP(x[c], m);                            \
        double seconds = now() - start;                                                \
        __m128i y = _mm_setzero_si128();                                               \
        for (int c = 0; c < 8; c++) y = _mm_xor_si128(y, x[c]);                        \
        sink = _mm_cvtsi128_si32(y);                                                   \
        return 8.0 * ITERATIONS / seconds / 1e9;                                       \
    }

PROBE_SCHEDULE(msg1_alone, _mm_sha256msg1_epu32)
PROBE_SCHEDULE(msg2_alone, _mm_sha256msg2_epu32)

int main(void) {
    struct { const char *name; double (*run)(void); } probes[] = {
        {"1 chain, rounds alone", rounds1},
        {"2 chains, rounds alone", rounds2},
        {"4 chains, rounds alone", rounds4},
        {"6 chains, rounds alone", rounds6},
        {"2 chains, with a compression's schedule", scheduled2},
        {"4 chains, with a compression's schedule", scheduled4},
        {"6 chains, with a compression's schedule", scheduled6},
        {"4 chains, msg1 and msg2 beside every pair", every4},
        {"sha256msg1 alone, 8 chains", msg1_alone},
        {"sha256msg2 alone, 8 chains", msg2_alone},
    };
    for (size_t p = 0; p < sizeof probes / sizeof probes[0]; p++) {
        double best = 0;
        for (int round = 0; round < 3; round++) {
            double rate = probes[p].run();
            if (rate > best) best = rate;
        }
        printf("%-40s %.2f G/s\n", probes[p].name, best);
    }
    return 0;
}
