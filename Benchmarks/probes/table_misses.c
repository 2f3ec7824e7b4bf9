/* Probe: how fast can one core look serials up in a table far past the
 * caches, the verifier's shape over 1 M tickets?
 *
 *   clang -O2 -o /tmp/table_misses Benchmarks/probes/table_misses.c && /tmp/table_misses
 *
 * The table is laid out as the verifier's (CEngine/src/verifier.c): 16-byte
 * hash slots, 2 per ticket rounded up to a power of two (64 MB for 1 M
 * tickets), and 128-byte hot entries (128 MB), on 2 MB pages where the kernel
 * gives them. A lookup reads a random serial's slot, then its entry's two
 * lines. Lookups go 1024 at a time, as the verifier's chunks do: find them
 * all, then read the entries. Each way is timed over 8 M lookups, best of 3
 * rounds:
 *
 *   plain        no prefetching: what the out-of-order window overlaps alone;
 *   interleaved  the verifier's pass 1: a slot prefetched 16 lookups ahead of
 *                its find, an entry prefetched as soon as its slot is read;
 *   batched      the same after the chunk's 1024 slots were prefetched in a
 *                loop of their own (tried in the verifier, not kept: no
 *                change beyond the noise over 9 alternating runs);
 *   written      interleaved, and each entry then updated on both lines as
 *                an accepted chain payment does, so the lines go back dirty;
 *   inline       another layout: the entries themselves open-addressed, 2
 *                per ticket (256 MB), so a lookup reads 2 lines and not 3.
 *
 * It prints ns per lookup and lookups per second. No hashing and no checks
 * are done: a verifier over 1 M tickets pays this on top of its work per
 * payment, unless it hides it under that work. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define TICKETS (1u << 20)
#define SLOTS (TICKETS * 4u) /* capacity rounds 1.125 M up to 2 M, slots are twice that */
#define LOOKUPS (8u << 20)
#define BATCH 1024
#define AHEAD 16

struct slot { uint64_t serial; uint32_t index, pad; };
struct entry { uint64_t serial, credited; uint8_t rest[112]; };

static struct slot *slots;
static struct entry *entries;
/* The alternative layout: the entries themselves in the open-addressed
 * table, 2 per ticket (256 MB), so a lookup reads 2 lines, not 3. */
#define INLINE_SLOTS (TICKETS * 2u)
static struct entry *inline_table;
static uint64_t *serials; /* the lookups' serials, in order */

static void *huge(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(p, bytes, MADV_HUGEPAGE);
    memset(p, 0, bytes);
    return p;
}

/* The verifier's home(): the top log2(slots) bits of serial * golden ratio. */
static inline uint32_t home_in(uint64_t serial, uint32_t slots) {
    return (uint32_t)((serial * 0x9E3779B97F4A7C15ULL) >> (64 - __builtin_ctz(slots)));
}
static inline uint32_t home(uint64_t serial) { return home_in(serial, SLOTS); }

static inline uint32_t find(uint64_t serial) {
    uint32_t i = home(serial);
    while (slots[i].serial != serial) i = (i + 1) & (SLOTS - 1);
    return slots[i].index;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static uint32_t found[BATCH];

/* 1024 lookups at a time, in the verifier's passes: find each entry, then
 * read them all. `lookahead` prefetches a slot that many lookups ahead of its
 * find; `slot_loop` first prefetches the batch's slots in a loop of their own. */
static uint64_t lookups(int lookahead, int slot_loop, int prefetch_entries, int write) {
    uint64_t sum = 0;
    for (uint32_t at = 0; at < LOOKUPS; at += BATCH) {
        const uint64_t *s = serials + at;
        if (slot_loop)
            for (uint32_t k = 0; k < BATCH; k++) __builtin_prefetch(&slots[home(s[k])]);
        for (uint32_t k = 0; k < BATCH; k++) {
            if (lookahead && k + lookahead < BATCH) __builtin_prefetch(&slots[home(s[k + lookahead])]);
            uint32_t e = found[k] = find(s[k]);
            if (prefetch_entries) {
                __builtin_prefetch(&entries[e]);
                __builtin_prefetch((uint8_t *)&entries[e] + 64);
            }
        }
        for (uint32_t k = 0; k < BATCH; k++) {
            struct entry *e = &entries[found[k]];
            sum += e->credited;
            if (write) { /* as a payment does: the credit on the first line, the chain word on the second */
                e->credited += 1;
                e->rest[100] += 1;
            }
        }
    }
    return sum;
}

/* The same passes over the inline layout: the entry's lines prefetched
 * `AHEAD` lookups ahead of the find, which reads the serial in the entry. */
static uint64_t inline_lookups(void) {
    uint64_t sum = 0;
    for (uint32_t at = 0; at < LOOKUPS; at += BATCH) {
        const uint64_t *s = serials + at;
        for (uint32_t k = 0; k < BATCH; k++) {
            if (k + AHEAD < BATCH) {
                const struct entry *e = &inline_table[home_in(s[k + AHEAD], INLINE_SLOTS)];
                __builtin_prefetch(e);
                __builtin_prefetch((const uint8_t *)e + 64);
            }
            uint32_t i = home_in(s[k], INLINE_SLOTS);
            while (inline_table[i].serial != s[k]) i = (i + 1) & (INLINE_SLOTS - 1);
            found[k] = i;
        }
        for (uint32_t k = 0; k < BATCH; k++) sum += inline_table[found[k]].credited;
    }
    return sum;
}

static uint64_t plain(void) { return lookups(0, 0, 0, 0); }
static uint64_t interleaved(void) { return lookups(AHEAD, 0, 1, 0); }
static uint64_t batched(void) { return lookups(AHEAD, 1, 1, 0); }
static uint64_t written(void) { return lookups(AHEAD, 0, 1, 1); }

static void time_it(const char *name, uint64_t (*f)(void)) {
    double best = 1e9;
    uint64_t check = 0;
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        check += f();
        double t = now() - t0;
        if (t < best) best = t;
    }
    double per = best * 1e9 / LOOKUPS;
    printf("%-12s %6.1f ns a lookup  %6.1f M lookups/s  (sum %llu)\n", name, per, 1e3 / per,
           (unsigned long long)check);
}

int main(void) {
    slots = huge(sizeof(struct slot) * SLOTS);
    entries = huge(sizeof(struct entry) * (TICKETS + 1));
    inline_table = huge(sizeof(struct entry) * INLINE_SLOTS);
    serials = malloc(sizeof(uint64_t) * LOOKUPS);
    uint64_t x = 0x2545F4914F6CDD1DULL;
    for (uint32_t t = 1; t <= TICKETS; t++) {
        uint64_t serial = t * 0xD1B54A32D192ED03ULL | 1;
        uint32_t i = home(serial);
        while (slots[i].index != 0) i = (i + 1) & (SLOTS - 1);
        slots[i].serial = serial;
        slots[i].index = t;
        entries[t].serial = serial;
        entries[t].credited = t;
        uint32_t j = home_in(serial, INLINE_SLOTS);
        while (inline_table[j].serial != 0) j = (j + 1) & (INLINE_SLOTS - 1);
        inline_table[j].serial = serial;
        inline_table[j].credited = t;
    }
    for (uint32_t k = 0; k < LOOKUPS; k++) {
        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        serials[k] = (x % TICKETS + 1) * 0xD1B54A32D192ED03ULL | 1;
    }
    time_it("plain", plain);
    time_it("interleaved", interleaved);
    time_it("batched", batched);
    time_it("written", written);
    time_it("inline", inline_lookups);
    return 0;
}
