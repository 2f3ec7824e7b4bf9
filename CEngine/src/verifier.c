/* The merchant's batch verifier: a compact ticket table sharded by serial and
 * the §7 check order over a shard's records, a chunk at a time: the chunk's
 * hashing -- chain walks, order tags -- goes through the multi-lane kernels
 * in one call, then the verdicts are applied in file order (see run_chunk).
 * The result is exactly that of judging the records one by one. */
#define _GNU_SOURCE /* mremap */
#include <sodium.h>
#include <stdlib.h>
#include <sys/mman.h>

#include "internal.h"

#define MAX_GAP 4096
#define NO_ENTRY UINT32_MAX
#define LOOKAHEAD 16

/* F_RAW_HEAD: the last order was loaded with other first 16 bytes than an
 * order accepted here has (see order_entry); they are in its order_cold. */
enum { F_DIRTY = 1, F_HAS_ORDER = 2, F_RAW_HEAD = 4 };

/* What the hot path touches, in two cache lines: the first common to both
 * modes, the second the chain walk's state or the order tags' key states.
 * A chain payment reads these two lines of its ticket, an order one more:
 * its ticket's last order (order_entry). */
typedef struct hot_entry {
    uint64_t serial;
    uint64_t expires;
    uint64_t credited;
    uint64_t limit;
    uint64_t last_cumulative;
    uint32_t chain_len;
    uint32_t last_seq;
    uint32_t accepted; /* the record of the current chunk last accepted (NO_REC: none yet) */
    uint32_t stamp;    /* the chunk `spec` and `accepted` belong to */
    uint8_t flags;
    uint8_t pad[7];
    union {
        struct { /* chain_len > 0 */
            uint64_t unit;
            uint32_t last;
            uint32_t spec; /* the record of the current chunk a chain walk was last guessed to end at */
            uint8_t chain_id[12];
            uint8_t pad[4];
            uint8_t last_word[32];
        } chain;
        mp_hmac_key session_mac; /* chain_len == 0: mac(K_CM), cached states; secret */
    } u;
} __attribute__((aligned(64))) hot_entry;

_Static_assert(sizeof(hot_entry) == 128, "two cache lines");
_Static_assert(offsetof(hot_entry, u) == 64, "the mode's state on the second line");

/* Order tickets only: a chain ticket's pages of these two arrays are never
 * touched. order_entry is the ticket's last accepted order, bytes 16..76
 * (seq onwards), in one line: its first 16 bytes are the header, the bank's
 * id and the serial, the same for every order this table accepts, and
 * order_head rebuilds them. order_cold holds what the hot entry has no room
 * for, read only by exports. (The two in one 128-byte entry verified orders
 * 15-30 % slower: its lines and the hot entry's fell on the same cache sets.) */
#define ORDER_HEAD 16
#define ORDER_TAIL (76 - ORDER_HEAD)
typedef struct order_entry {
    uint8_t tail[ORDER_TAIL];
    uint8_t pad[4];
} __attribute__((aligned(64))) order_entry;

_Static_assert(sizeof(order_entry) == 64, "one cache line");

typedef struct order_cold {
    uint64_t unit;
    uint8_t chain_id[12];
    uint8_t raw_head[ORDER_HEAD]; /* F_RAW_HEAD */
} order_cold;

/* What only registration and export read. */
typedef struct cold_entry {
    uint64_t customer;
    uint64_t issued;
    uint64_t registered_at;
    uint64_t settled_amount;
    uint32_t claimed;
    uint32_t settled;
    uint8_t root[32];
    uint8_t session_key[32];
} cold_entry;

/* A hash slot: serial and index together, so a lookup misses once, not twice. */
struct slot {
    uint64_t serial;
    uint32_t index; /* entry index + 1; 0 = empty */
    uint32_t pad;
};

typedef struct shard {
    hot_entry *hot;
    order_entry *order;
    order_cold *order_cold;
    cold_entry *cold;
    uint32_t bank_id; /* for order_head */
    uint32_t count, capacity;
    /* open addressing, load factor at most 1/2 */
    struct slot *slots;
    uint32_t slot_mask;
    uint32_t slot_shift; /* 64 - log2(slots): home() takes the hash's top bits */
    uint32_t *dirty;
    uint32_t dirty_count, dirty_capacity;
    uint32_t run; /* chunks so far, for the entries' stamps */
    struct chunk_scratch *scratch; /* allocated on first use, kept: no allocation per chunk */
} shard;

struct mp_verifier {
    uint32_t bank_id;
    uint64_t merchant;
    uint8_t ticket_key[32]; /* enc(K_M) */
    uint32_t partitions;
    int kernel; /* a pinned mp_lane_kernel, or -1: the active one */
    shard *shards;
};

mp_status mp_verifier_set_kernel(mp_verifier *v, mp_lane_kernel kernel) {
    if (!mp_lane_kernel_available(kernel)) return MP_ERR_UNSUPPORTED;
    v->kernel = (int)kernel;
    return MP_OK;
}

static inline uint64_t mix(uint64_t serial) { return serial * 0x9E3779B97F4A7C15ULL; }
static inline uint64_t load_be64(const uint8_t *p) {
    return ((uint64_t)mp_load_be32(p) << 32) | mp_load_be32(p + 4);
}

uint32_t mp_verifier_partition_of(const mp_verifier *v, uint64_t serial) {
    if (v->partitions == 1) return 0;
    uint64_t h = (serial ^ (serial >> 29)) * 0xBF58476D1CE4E5B9ULL;
    /* the high half scaled to [0, partitions): a multiply, where % divided */
    return (uint32_t)(((h >> 32) * v->partitions) >> 32);
}

uint32_t mp_verifier_partition_of_record(const mp_verifier *v, const uint8_t *record, size_t length) {
    if (length < 16) return 0;
    uint8_t kind = record[0];
    if (kind != 0x01 && kind != 0x02 && kind != 0x10) return 0;
    return mp_verifier_partition_of(v, load_be64(record + 8));
}

uint32_t mp_verifier_partitions(const mp_verifier *v) { return v->partitions; }

mp_verifier *mp_verifier_new(uint32_t bank_id, uint64_t merchant, const uint8_t merchant_key[32],
                             uint32_t partitions) {
    if (partitions == 0 || partitions > 256) return NULL;
    mp_verifier *v = calloc(1, sizeof *v);
    if (v == NULL) return NULL;
    v->shards = calloc(partitions, sizeof(shard));
    if (v->shards == NULL) {
        free(v);
        return NULL;
    }
    v->bank_id = bank_id;
    for (uint32_t p = 0; p < partitions; p++) v->shards[p].bank_id = bank_id;
    v->merchant = merchant;
    v->partitions = partitions;
    v->kernel = -1;
    mp_derive_subkey(merchant_key, "MPE1", v->ticket_key);
    return v;
}

/* The table's arrays come straight from mmap: zeroed by the kernel, and
 * backed by 2 MB pages where the kernel allows it (madvise mode of THP),
 * because verification reads them at random: with 4 KB pages a million
 * tickets miss the TLB on almost every lookup, and loading them takes a
 * page fault every 4 KB. */
static void *table_alloc(size_t bytes) {
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (bytes >= (2u << 20)) (void)madvise(p, bytes, MADV_HUGEPAGE);
#endif
    return p;
}

static void table_free(void *p, size_t bytes) {
    if (p != NULL) munmap(p, bytes);
}

/* Zeroes the secrets of entries [0, count): session keys, and the cached
 * MAC states of order tickets. */
static void zero_secrets(shard *s) {
    for (uint32_t e = 0; e < s->count; e++) {
        sodium_memzero(s->cold[e].session_key, sizeof s->cold[e].session_key);
        if (s->hot[e].chain_len == 0) sodium_memzero(&s->hot[e].u.session_mac, sizeof s->hot[e].u.session_mac);
    }
}

static void free_arrays(shard *s) {
    size_t slots = (size_t)s->capacity * 2;
    table_free(s->hot, sizeof(hot_entry) * s->capacity);
    table_free(s->order, sizeof(order_entry) * s->capacity);
    table_free(s->order_cold, sizeof(order_cold) * s->capacity);
    table_free(s->cold, sizeof(cold_entry) * s->capacity);
    table_free(s->slots, sizeof(struct slot) * slots);
}

void mp_verifier_free(mp_verifier *v) {
    if (v == NULL) return;
    for (uint32_t p = 0; p < v->partitions; p++) {
        shard *s = &v->shards[p];
        if (s->capacity) {
            zero_secrets(s);
            free_arrays(s);
        }
        free(s->dirty);
        free(s->scratch);
    }
    sodium_memzero(v->ticket_key, sizeof v->ticket_key);
    free(v->shards);
    free(v);
}

size_t mp_verifier_ticket_count(const mp_verifier *v) {
    size_t n = 0;
    for (uint32_t p = 0; p < v->partitions; p++) n += v->shards[p].count;
    return n;
}

/* Where a serial's probe starts: the top bits of the golden-ratio product
 * (Fibonacci hashing). Banks issue serials in order, and consecutive
 * serials then land evenly spread, one probe each; bits 32 and up, as
 * before, gave 1.4-2.3 probes a lookup and a second cache line in 9-32 %
 * of them. Random serials fare the same either way. */
static inline uint32_t home(const shard *s, uint64_t serial) { return (uint32_t)(mix(serial) >> s->slot_shift); }

/* Puts entry e under its serial, in the first free slot of its probe. */
static inline void place(shard *s, uint64_t serial, uint32_t e) {
    uint32_t i = home(s, serial);
    while (s->slots[i].index != 0) i = (i + 1) & s->slot_mask;
    s->slots[i].serial = serial;
    s->slots[i].index = e + 1;
}

static inline uint32_t find(const shard *s, uint64_t serial) {
    if (s->slot_mask == 0) return NO_ENTRY;
    uint32_t i = home(s, serial);
    for (;;) {
        uint32_t idx = s->slots[i].index;
        if (idx == 0) return NO_ENTRY;
        if (s->slots[i].serial == serial) return idx - 1;
        i = (i + 1) & s->slot_mask;
    }
}

static inline void prefetch_slot(const shard *s, uint64_t serial) {
    if (s->slot_mask == 0) return;
    __builtin_prefetch(&s->slots[home(s, serial)]);
}

/* ThreadSanitizer does not see mremap (google/sanitizers#1099): a range
 * mremap frees keeps its old access history, and the next shard's array the
 * kernel moves there is reported as racing with it. Under TSan the arrays
 * grow by copy, the path other systems take. */
#if defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define MP_TSAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define MP_TSAN 1
#endif

/* Moves an entry array to a larger mapping. On Linux mremap moves the pages
 * themselves: nothing is copied, and no copy of a key is left behind in the
 * old range; elsewhere the array is copied and the old one zeroed. */
static void *table_grow(void *old, size_t old_bytes, size_t new_bytes) {
#if defined(__linux__) && defined(MREMAP_MAYMOVE) && !defined(MP_TSAN)
    void *p = mremap(old, old_bytes, new_bytes, MREMAP_MAYMOVE);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    if (new_bytes >= (2u << 20)) (void)madvise(p, new_bytes, MADV_HUGEPAGE);
#endif
    return p;
#else
    void *p = table_alloc(new_bytes);
    if (p == NULL) return NULL;
    memcpy(p, old, old_bytes);
    sodium_memzero(old, old_bytes);
    table_free(old, old_bytes);
    return p;
#endif
}

/* Grows a shard's arrays to hold at least `wanted` tickets (doubling, from 1024). */
static int grow(shard *s, uint32_t wanted) {
    uint32_t capacity = s->capacity ? s->capacity * 2 : 1024;
    while (capacity < wanted) capacity *= 2;
    size_t slots = (size_t)capacity * 2; /* load factor at most 1/2 */
    struct slot *new_slots = table_alloc(sizeof(struct slot) * slots);
    if (new_slots == NULL) return 0;
    if (s->capacity == 0) {
        s->hot = table_alloc(sizeof(hot_entry) * capacity);
        s->order = table_alloc(sizeof(order_entry) * capacity);
        s->order_cold = table_alloc(sizeof(order_cold) * capacity);
        s->cold = table_alloc(sizeof(cold_entry) * capacity);
        if (!s->hot || !s->order || !s->order_cold || !s->cold) {
            if (s->hot) table_free(s->hot, sizeof(hot_entry) * capacity);
            if (s->order) table_free(s->order, sizeof(order_entry) * capacity);
            if (s->order_cold) table_free(s->order_cold, sizeof(order_cold) * capacity);
            if (s->cold) table_free(s->cold, sizeof(cold_entry) * capacity);
            s->hot = NULL; s->order = NULL; s->order_cold = NULL; s->cold = NULL;
            table_free(new_slots, sizeof(struct slot) * slots);
            return 0;
        }
    } else {
        hot_entry *hot = table_grow(s->hot, sizeof(hot_entry) * s->capacity, sizeof(hot_entry) * capacity);
        if (hot == NULL) {
            table_free(new_slots, sizeof(struct slot) * slots);
            return 0;
        }
        s->hot = hot;
        s->order = table_grow(s->order, sizeof(order_entry) * s->capacity, sizeof(order_entry) * capacity);
        s->order_cold = table_grow(s->order_cold, sizeof(order_cold) * s->capacity, sizeof(order_cold) * capacity);
        s->cold = table_grow(s->cold, sizeof(cold_entry) * s->capacity, sizeof(cold_entry) * capacity);
        /* out of memory with the table half moved: it cannot go on, nor lose a ticket silently */
        if (s->order == NULL || s->order_cold == NULL || s->cold == NULL) abort();
        table_free(s->slots, sizeof(struct slot) * (size_t)s->capacity * 2);
    }
    s->capacity = capacity;
    s->slots = new_slots;
    s->slot_mask = (uint32_t)(slots - 1);
    s->slot_shift = (uint32_t)(64 - __builtin_ctzll(slots));
    for (uint32_t e = 0; e < s->count; e++) place(s, s->hot[e].serial, e);
    return 1;
}

static void mark_dirty(shard *s, uint32_t e) {
    if (s->hot[e].flags & F_DIRTY) return;
    if (s->dirty_count == s->dirty_capacity) {
        uint32_t capacity = s->dirty_capacity ? s->dirty_capacity * 2 : 1024;
        uint32_t *dirty = realloc(s->dirty, sizeof(uint32_t) * capacity);
        if (dirty == NULL) abort(); /* cannot record a change: never lose one silently */
        s->dirty = dirty;
        s->dirty_capacity = capacity;
    }
    s->hot[e].flags |= F_DIRTY;
    s->dirty[s->dirty_count++] = e;
}

/* The first 16 bytes of every order this table accepts for a serial:
 * kind, version, reserved, the bank's id and the serial (§7 refuses others). */
static void order_head(const shard *s, uint64_t serial, uint8_t head[ORDER_HEAD]) {
    head[0] = 0x02;
    head[1] = 1;
    head[2] = 1;
    head[3] = 0;
    mp_store_be32(head + 4, s->bank_id);
    mp_store_be64(head + 8, serial);
}

/* Sets an order ticket's last order from a loaded state (has: whether it has
 * one): its tail in the order entry, and its head in order_cold if it is
 * not the one order_head gives. */
static void load_last_order(shard *s, uint32_t e, int has, const uint8_t order[76]) {
    hot_entry *h = &s->hot[e];
    h->flags &= (uint8_t)~(F_HAS_ORDER | F_RAW_HEAD);
    if (!has) return;
    uint8_t head[ORDER_HEAD];
    order_head(s, h->serial, head);
    if (memcmp(order, head, ORDER_HEAD) != 0) {
        memcpy(s->order_cold[e].raw_head, order, ORDER_HEAD);
        h->flags |= F_RAW_HEAD;
    }
    memcpy(s->order[e].tail, order + ORDER_HEAD, ORDER_TAIL);
    h->flags |= F_HAS_ORDER;
}

/* Order tickets entered whose key states are still to be derived: eight at
 * a time, their compressions interleaved (mp_hmac_subkey_states_batch_with).
 * By shard and entry, not pointer: a table moves when it grows. */
#define PENDING_MACS 8
typedef struct pending_macs {
    mp_lane_kernel kernel;
    uint32_t n;
    shard *shard[PENDING_MACS];
    uint32_t entry[PENDING_MACS];
} pending_macs;

static void derive_pending(pending_macs *p) {
    if (p->n == 0) return;
    const uint8_t *keys[PENDING_MACS];
    mp_hmac_key *out[PENDING_MACS];
    for (uint32_t i = 0; i < p->n; i++) {
        keys[i] = p->shard[i]->cold[p->entry[i]].session_key;
        out[i] = &p->shard[i]->hot[p->entry[i]].u.session_mac;
    }
    if (mp_hmac_subkey_states_batch_with(p->kernel, p->n, keys, "MPM1", out) != MP_OK) abort(); /* a kernel the CPU runs */
    p->n = 0;
}

static inline mp_lane_kernel kernel_of(const mp_verifier *v) {
    return v->kernel < 0 ? mp_lane_active_kernel() : (mp_lane_kernel)v->kernel;
}

/* Appends a ticket; returns its index or NO_ENTRY (allocation failure). An
 * order ticket's key states are left to `pending`: they must be derived
 * (derive_pending) before its orders are checked. Its `last` and
 * `last_word` are not kept: it has no chain, and exports give 0 and its
 * root, as the log does. */
static uint32_t insert(shard *s, const mp_ticket_export *t, pending_macs *pending) {
    if (s->count == s->capacity && !grow(s, 0)) return NO_ENTRY;
    uint32_t e = s->count++;
    hot_entry *h = &s->hot[e];
    memset(h, 0, sizeof *h);
    h->serial = t->serial;
    h->expires = t->expires;
    h->credited = t->credited;
    h->limit = t->limit;
    h->last_cumulative = t->last_cumulative;
    h->chain_len = t->chain_len;
    h->last_seq = t->last_seq;
    if (t->chain_len > 0) {
        /* A chain ticket leaves its order entries untouched: those pages need never be mapped. */
        h->u.chain.unit = t->unit;
        h->u.chain.last = t->last;
        memcpy(h->u.chain.chain_id, t->chain_id, 12);
        memcpy(h->u.chain.last_word, t->last_word, 32);
    } else {
        s->order_cold[e].unit = t->unit;
        memcpy(s->order_cold[e].chain_id, t->chain_id, 12);
        load_last_order(s, e, t->has_last_order != 0, t->last_order);
    }
    cold_entry *c = &s->cold[e];
    c->customer = t->customer;
    c->issued = t->issued;
    c->registered_at = t->registered_at;
    c->settled_amount = t->settled_amount;
    c->claimed = t->claimed;
    c->settled = t->settled;
    memcpy(c->root, t->root, 32);
    memcpy(c->session_key, t->session_key, 32);
    place(s, t->serial, e);
    if (t->chain_len == 0) {
        pending->shard[pending->n] = s;
        pending->entry[pending->n++] = e;
        if (pending->n == PENDING_MACS) derive_pending(pending);
    }
    return e;
}

mp_status mp_verifier_reserve(mp_verifier *v, size_t tickets) {
    /* Serials spread evenly over the shards; leave room for the spread. */
    size_t per_shard = tickets / v->partitions + tickets / v->partitions / 8 + 64;
    if (per_shard > UINT32_MAX / 4) return MP_ERR_ARGUMENT;
    for (uint32_t p = 0; p < v->partitions; p++) {
        shard *s = &v->shards[p];
        if (s->capacity < per_shard && !grow(s, (uint32_t)per_shard)) return MP_ERR_LIBRARY;
    }
    return MP_OK;
}

static mp_status load(mp_verifier *v, const mp_ticket_export *t, pending_macs *pending) {
    shard *s = &v->shards[mp_verifier_partition_of(v, t->serial)];
    if (find(s, t->serial) != NO_ENTRY) return MP_ERR_ARGUMENT;
    return insert(s, t, pending) == NO_ENTRY ? MP_ERR_LIBRARY : MP_OK;
}

mp_status mp_verifier_load(mp_verifier *v, const mp_ticket_export *t) {
    pending_macs pending = {.kernel = kernel_of(v), .n = 0};
    mp_status status = load(v, t, &pending);
    derive_pending(&pending);
    return status;
}

/* ---- verification ---- */

/* What pass 3 does with a record: nothing (its verdict needed no state, or
 * it was a registration, judged in pass 1), the §7 checks alone, or the
 * checks with a lane's result. */
enum job { J_DONE, J_APPLY, J_CHAIN, J_ORDER };

#define CHUNK 1024
#define NO_REC UINT32_MAX

/* The per-chunk arrays of run_chunk, kept by the shard: no allocation per chunk. */
typedef struct chunk_scratch {
    uint32_t entry[CHUNK];
    uint8_t job[CHUNK];
    uint32_t lane[CHUNK]; /* index into the chain or order arrays */
    uint32_t base[CHUNK]; /* a chain walk's end: a record of the chunk, or NO_REC: the ticket's state */
    /* chain walks, struct of arrays for the kernels */
    uint8_t chain_ids[12 * CHUNK];
    uint32_t index[CHUNK];
    uint8_t words[32 * CHUNK];
    uint32_t last[CHUNK];
    uint8_t expected[32 * CHUNK];
    uint8_t chain_ok[CHUNK];
    /* order tags: the 76-byte orders side by side, with their keys */
    uint8_t order_bytes[76 * CHUNK];
    const mp_hmac_key *keys[CHUNK];
    uint8_t order_ok[CHUNK];
} chunk_scratch;

static int is_known_kind(uint8_t k) {
    switch (k) {
    case 0x01: case 0x02: case 0x10: case 0x11: case 0x20: case 0x30: case 0x31: case 0x40: case 0x41:
        return 1;
    }
    return 0;
}

/* A ticket record: header and nonce (bytes 24..48), the associated data;
 * then the sealed body and its tag. */
#define TICKET_AD 48
#define TICKET_BODY 120

/* A chunk's ticket records, opened 8 at a time ahead of their verdicts
 * (mp_xchacha_open_batch): rec[k] is the record whose body[k] is, ok[k]
 * whether its tag held. Bodies hold session keys: zeroed once used. */
#define TICKET_GROUP 8
typedef struct ticket_group {
    uint32_t rec[TICKET_GROUP];
    uint8_t body[TICKET_GROUP][TICKET_BODY];
    uint8_t ok[TICKET_GROUP];
    uint32_t n, next;
} ticket_group;

static int stateless_verdict(const mp_verifier *v, const uint8_t *r, uint32_t len);

/* Opens the next ticket records of the chunk from record i on, up to 8. */
static void open_tickets(const mp_verifier *v, const uint8_t *base, const mp_record_ref *records, uint32_t i,
                         uint32_t n, ticket_group *g) {
    uint8_t *out[TICKET_GROUP];
    const uint8_t *sealed[TICKET_GROUP], *ad[TICKET_GROUP], *nonce[TICKET_GROUP];
    g->n = g->next = 0;
    for (uint32_t k = i; k < n && g->n < TICKET_GROUP; k++) {
        const uint8_t *r = base + records[k].offset;
        if (records[k].length == 0 || r[0] != 0x10 || stateless_verdict(v, r, records[k].length) >= 0) continue;
        out[g->n] = g->body[g->n];
        sealed[g->n] = r + TICKET_AD;
        ad[g->n] = r;
        nonce[g->n] = r + 24;
        g->rec[g->n++] = k;
    }
    mp_xchacha_open_batch(g->n, out, sealed, TICKET_BODY, ad, TICKET_AD, nonce, v->ticket_key, g->ok);
}

/* Judges a ticket record whose header and size are right (§7: badTicket →
 * known → expired → registered), given its opened body (`opened`: whether
 * the tag held), which it zeroes. */
static uint8_t finish_ticket(const uint8_t *r, int opened, uint8_t body[TICKET_BODY], uint32_t e, uint64_t offset,
                             uint64_t now, mp_ticket_export *registered, int *has_registration) {
    if (!opened) return 3; /* badTicket; the body is zeroed */
    if (e != NO_ENTRY) {
        sodium_memzero(body, TICKET_BODY);
        return 0; /* known: accepted, no change */
    }
    uint64_t expires = load_be64(body + 48);
    if (now > expires) {
        sodium_memzero(body, TICKET_BODY);
        return 4; /* expired */
    }
    mp_ticket_export *t = registered;
    memset(t, 0, sizeof *t);
    t->serial = load_be64(r + 8);
    t->customer = load_be64(body + 0);
    t->limit = load_be64(body + 8);
    t->unit = load_be64(body + 16);
    t->chain_len = mp_load_be32(body + 24);
    memcpy(t->chain_id, body + 28, 12);
    t->issued = load_be64(body + 40);
    t->expires = expires;
    memcpy(t->root, body + 56, 32);
    memcpy(t->last_word, body + 56, 32);
    memcpy(t->session_key, body + 88, 32);
    t->registered_at = offset;
    sodium_memzero(body, TICKET_BODY);
    *has_registration = 1;
    return 0;
}

/* The checks that need no ticket state: a verdict, or -1 if the record
 * names a serial whose state it reads. */
static int stateless_verdict(const mp_verifier *v, const uint8_t *r, uint32_t len) {
    if (len == 0) return 1;                       /* malformed */
    uint8_t kind = r[0];
    if (!is_known_kind(kind)) return 11;          /* unknownKind */
    uint32_t size = kind == 0x01 ? 52 : kind == 0x02 ? 76 : kind == 0x10 ? 184 : 0;
    if (size == 0 || len != size || r[1] != 1 || r[2] != 1 || r[3] != 0) return 1; /* malformed */
    uint32_t bank = mp_load_be32(r + 4);
    if (kind == 0x10) return (bank != v->bank_id || load_be64(r + 16) != v->merchant) ? 3 : -1; /* badTicket */
    return bank != v->bank_id ? 2 : -1;          /* unknownTicket: another bank's payment */
}

/* The entry's guess and acceptance marks, reset the first time a chunk touches it. */
static inline void stamp(hot_entry *h, uint32_t run) {
    if (h->stamp == run) return;
    h->stamp = run;
    h->u.chain.spec = NO_REC;
    h->accepted = NO_REC;
}

/* §7 for a chain payment on the state as it is now. The lane's result stands
 * when its walk ended where the state is: at the record of this chunk that
 * was last accepted, or at the ticket's state if none was. */
static uint8_t apply_chain(mp_lane_kernel kernel, shard *s, const chunk_scratch *c, uint32_t i, uint32_t e,
                           const uint8_t *r, uint32_t run, uint64_t now, uint64_t *credited) {
    hot_entry *h = &s->hot[e];
    if (now > h->expires) return 4;      /* expired */
    if (h->chain_len == 0) return 9;     /* wrongMode */
    uint32_t index = mp_load_be32(r + 16);
    const uint8_t *word = r + 20;
    uint32_t last = h->u.chain.last;
    if (index == last && last >= 1 && mp_ct_equal(word, h->u.chain.last_word, 32)) return 12; /* duplicate */
    if (index <= last) return 7;         /* replay */
    if (index > h->chain_len || index - last > MAX_GAP) return 8; /* overLimit */
    stamp(h, run);
    uint8_t ok;
    if (c->job[i] == J_CHAIN && c->base[i] == h->accepted)
        ok = c->chain_ok[c->lane[i]];
    else /* the guess was wrong (an earlier record was refused) or never made: walk now */
        mp_chain_verify_batch_with(kernel, 1, h->u.chain.chain_id, &index, word, &last, h->u.chain.last_word, &ok);
    if (!ok) return 6;                   /* badChainWord */
    uint64_t credit, total;
    if (__builtin_mul_overflow((uint64_t)(index - last), h->u.chain.unit, &credit) ||
        __builtin_add_overflow(h->credited, credit, &total))
        return 8;                        /* overLimit */
    h->u.chain.last = index;
    memcpy(h->u.chain.last_word, word, 32);
    h->credited = total;
    h->accepted = i;
    mark_dirty(s, e);
    *credited = credit;
    return 0;
}

/* §7 for an order on the state as it is now; the tag does not depend on it. */
static uint8_t apply_order(mp_lane_kernel kernel, shard *s, const chunk_scratch *c, uint32_t i, uint32_t e,
                           const uint8_t *r, uint64_t now, uint64_t *credited) {
    hot_entry *h = &s->hot[e];
    order_entry *o = &s->order[e];
    if (now > h->expires) return 4;      /* expired */
    if (h->chain_len != 0) return 9;     /* wrongMode */
    uint8_t ok;
    if (c->job[i] == J_ORDER)
        ok = c->order_ok[c->lane[i]];
    else {
        const mp_hmac_key *key = &h->u.session_mac;
        mp_mac128_verify_batch_with(kernel, 1, &key, "MPO1", r, 76, 60, &ok);
    }
    if (!ok) return 5;                   /* badMAC */
    uint32_t seq = mp_load_be32(r + 16);
    /* A byte-for-byte repeat of the last order: this order's head is the
     * one order_head gives (§7 let it through to here), so a last order
     * with another (F_RAW_HEAD) differs. Only one with the same seq (the
     * tail's first bytes) can match: the others skip the compare. The seq
     * is read from the last order itself, which assumes nothing about
     * last_seq in a loaded state. */
    if ((h->flags & (F_HAS_ORDER | F_RAW_HEAD)) == F_HAS_ORDER && mp_load_be32(o->tail) == seq &&
        memcmp(o->tail, r + ORDER_HEAD, ORDER_TAIL) == 0)
        return 12;                                     /* duplicate */
    uint64_t cumulative = load_be64(r + 20);
    if (seq <= h->last_seq) return 7;                  /* replay */
    if (cumulative < h->last_cumulative) return 10;    /* decreasingAmount */
    if (cumulative > h->limit) return 8;               /* overLimit */
    uint64_t credit = cumulative - h->last_cumulative, total;
    if (__builtin_add_overflow(h->credited, credit, &total)) return 8;
    h->last_seq = seq;
    h->last_cumulative = cumulative;
    memcpy(o->tail, r + ORDER_HEAD, ORDER_TAIL);
    h->flags = (uint8_t)((h->flags & ~F_RAW_HEAD) | F_HAS_ORDER);
    h->credited = total;
    mark_dirty(s, e);
    *credited = credit;
    return 0;
}

/* Pass 1's prefetches bring a chunk's entries into L2, not all of them into
 * L1: passes 2 and 3 fetch each entry again a few records ahead. */
#define NEAR 8
static inline void prefetch_hot(const shard *s, uint32_t e) {
    __builtin_prefetch(&s->hot[e], 1);
    __builtin_prefetch((const uint8_t *)&s->hot[e] + 64, 1);
}

static inline void prefetch_entry(const shard *s, const chunk_scratch *c, uint32_t i, uint32_t n) {
    if (i >= n || c->job[i] == J_DONE || c->entry[i] == NO_ENTRY) return;
    prefetch_hot(s, c->entry[i]);
    /* pass 3: an order hashed in pass 2 reads and writes its ticket's last order */
    if (c->job[i] == J_ORDER) __builtin_prefetch(&s->order[c->entry[i]], 1);
}

/* One chunk of a shard's records, in three passes.
 *
 * A record's verdict depends on the state its serial's earlier records leave,
 * but its hashing need not wait for them: a chain payment is checked against
 * the word of its serial's previous payment, which is the state once that
 * payment is accepted, and an order's tag depends on the ticket alone. So
 * pass 2 lines up every hash of the chunk for the multi-lane kernels at once,
 * each chain walk guessing that the serial's previous payment in the chunk
 * will be accepted, and pass 3 applies §7 in file order, taking a lane's
 * result only where its guess held and walking again where it did not: after
 * a refused payment, the next one of its serial is walked twice. Tickets
 * registered in the chunk enter the table in pass 1, so the payments after
 * them are hashed in pass 2 too. The result is exactly that of judging the
 * records one by one, however the serials interleave; one serial alone
 * still fills every lane. */
static void run_chunk(mp_verifier *v, shard *s, const uint8_t *base, const mp_record_ref *records, uint32_t n,
                      uint64_t now, uint8_t *verdicts, uint64_t *credited) {
    mp_lane_kernel kernel = kernel_of(v);
    chunk_scratch *c = s->scratch;
    if (++s->run == 0) {
        for (uint32_t e = 0; e < s->count; e++) s->hot[e].stamp = 0;
        s->run = 1;
    }
    uint32_t run = s->run;

    /* Pass 1: the verdicts that need no state, the registrations, and each
     * payment's ticket, whose lines are fetched here for pass 2 to find in
     * cache. A registration's verdict depends on no payment, so it is done
     * here, in file order among the registrations: a payment after it in the
     * chunk finds its ticket and is hashed with the rest in pass 2, and a
     * payment before it does not find it. */
    ticket_group tickets = {.n = 0, .next = 0};
    pending_macs pending = {.kernel = kernel, .n = 0};
    for (uint32_t i = 0; i < n; i++) {
        if (i + LOOKAHEAD < n && records[i + LOOKAHEAD].length >= 16)
            prefetch_slot(s, load_be64(base + records[i + LOOKAHEAD].offset + 8));
        const uint8_t *r = base + records[i].offset;
        uint32_t slot = records[i].slot;
        credited[slot] = 0;
        int verdict = stateless_verdict(v, r, records[i].length);
        if (verdict >= 0) {
            verdicts[slot] = (uint8_t)verdict;
            c->job[i] = J_DONE;
            continue;
        }
        uint32_t e = find(s, load_be64(r + 8));
        if (r[0] == 0x10) {
            if (tickets.next == tickets.n) open_tickets(v, base, records, i, n, &tickets);
            uint32_t k = tickets.next++;
            if (tickets.rec[k] != i) abort(); /* both go in file order, with the same test */
            mp_ticket_export registration;
            int registered = 0;
            verdicts[slot] = finish_ticket(r, tickets.ok[k], tickets.body[k], e, records[i].offset, now,
                                           &registration, &registered);
            if (registered) {
                uint32_t ne = insert(s, &registration, &pending);
                if (ne == NO_ENTRY) abort(); /* out of memory: never drop a ticket silently */
                mark_dirty(s, ne);
                sodium_memzero(&registration, sizeof registration);
            }
            c->job[i] = J_DONE;
            continue;
        }
        c->entry[i] = e;
        c->job[i] = J_APPLY;
        if (e != NO_ENTRY) {
            prefetch_hot(s, e);
            if (r[0] == 0x02) __builtin_prefetch(&s->order[e], 1); /* an order: its ticket's last order too */
        }
    }

    sodium_memzero(&tickets, sizeof tickets);
    derive_pending(&pending); /* before pass 2 hashes the orders of the tickets just registered */

    /* Pass 2: the hashing, all of it independent. */
    uint32_t chains = 0, orders = 0;
    for (uint32_t i = 0; i < n; i++) {
        prefetch_entry(s, c, i + NEAR, n);
        uint32_t e = c->entry[i];
        if (c->job[i] == J_DONE || e == NO_ENTRY) continue;
        const uint8_t *r = base + records[i].offset;
        hot_entry *h = &s->hot[e];
        if (now > h->expires) continue;
        if (r[0] == 0x01) {
            if (h->chain_len == 0) continue;
            stamp(h, run);
            uint32_t from = h->u.chain.last;
            const uint8_t *expected = h->u.chain.last_word;
            if (h->u.chain.spec != NO_REC) {
                const uint8_t *previous = base + records[h->u.chain.spec].offset;
                from = mp_load_be32(previous + 16);
                expected = previous + 20;
            }
            uint32_t index = mp_load_be32(r + 16);
            /* one that pass 3 would refuse after the guessed state: no walk, no guess */
            if (index <= from || index > h->chain_len || index - from > MAX_GAP) continue;
            uint32_t lane = chains++;
            memcpy(c->chain_ids + 12 * lane, h->u.chain.chain_id, 12);
            c->index[lane] = index;
            memcpy(c->words + 32 * lane, r + 20, 32);
            c->last[lane] = from;
            memcpy(c->expected + 32 * lane, expected, 32);
            c->base[i] = h->u.chain.spec;
            h->u.chain.spec = i;
            c->job[i] = J_CHAIN;
            c->lane[i] = lane;
        } else {
            if (h->chain_len != 0) continue;
            uint32_t lane = orders++;
            memcpy(c->order_bytes + 76 * lane, r, 76);
            c->keys[lane] = &h->u.session_mac;
            c->job[i] = J_ORDER;
            c->lane[i] = lane;
        }
    }
    if (chains > 0)
        mp_chain_verify_batch_with(kernel, chains, c->chain_ids, c->index, c->words, c->last, c->expected,
                                   c->chain_ok);
    if (orders > 0)
        mp_mac128_verify_batch_with(kernel, orders, c->keys, "MPO1", c->order_bytes, 76, 60, c->order_ok);

    /* Pass 3: §7 in file order. */
    for (uint32_t i = 0; i < n; i++) {
        prefetch_entry(s, c, i + NEAR, n);
        if (c->job[i] == J_DONE) continue;
        const uint8_t *r = base + records[i].offset;
        uint32_t slot = records[i].slot;
        uint32_t e = c->entry[i];
        if (e == NO_ENTRY) {
            verdicts[slot] = 2; /* unknownTicket */
        } else if (r[0] == 0x01) {
            verdicts[slot] = apply_chain(kernel, s, c, i, e, r, run, now, &credited[slot]);
        } else {
            verdicts[slot] = apply_order(kernel, s, c, i, e, r, now, &credited[slot]);
        }
    }
}

void mp_verifier_run(mp_verifier *v, uint32_t partition, const uint8_t *base, const mp_record_ref *records,
                     size_t count, uint64_t now, uint8_t *verdicts, uint64_t *credited) {
    shard *s = &v->shards[partition];
    if (s->scratch == NULL && (s->scratch = malloc(sizeof(chunk_scratch))) == NULL) abort();
    for (size_t at = 0; at < count; at += CHUNK) {
        uint32_t n = (uint32_t)(count - at < CHUNK ? count - at : CHUNK);
        run_chunk(v, s, base, records + at, n, now, verdicts, credited);
    }
}

/* ---- reading batch files (PROTOCOL §10) ---- */

/* The record at *pos of a batch file: its bytes (their length in *len), with
 * *pos moved past it; NULL at the end, or at a final record cut short, whose
 * offset goes to *truncated_at (and *pos to the end). */
#define SCAN_AHEAD 1024
static inline const uint8_t *next_record(const uint8_t *file, size_t length, size_t *pos, size_t *len,
                                         uint64_t *truncated_at) {
    if (*pos >= length) return NULL;
    if (length - *pos < 2 || (*len = ((size_t)file[*pos] << 8) | file[*pos + 1]) > length - *pos - 2) {
        *truncated_at = *pos;
        *pos = length;
        return NULL;
    }
    const uint8_t *r = file + *pos + 2;
    *pos += 2 + *len;
    /* The hop from length to length is a chain of dependent loads, each a
     * miss on first touch: fetch well ahead of it. */
    if (length - *pos > SCAN_AHEAD) __builtin_prefetch(file + *pos + SCAN_AHEAD);
    return r;
}

size_t mp_verifier_scan_window(const mp_verifier *v, const uint8_t *file, size_t length, size_t *position,
                               size_t max, mp_record_ref *const *refs, size_t *counts, uint64_t *truncated_at,
                               int window_slots) {
    size_t pos = *position, n = 0, len;
    const uint8_t *r;
    for (uint32_t p = 0; p < v->partitions; p++) counts[p] = 0;
    while (n < max && (r = next_record(file, length, &pos, &len, truncated_at)) != NULL) {
        uint32_t p = v->partitions == 1 ? 0 : mp_verifier_partition_of_record(v, r, len);
        size_t k = counts[p]++;
        refs[p][k].offset = (uint64_t)(r - file);
        refs[p][k].length = (uint32_t)len;
        refs[p][k].slot = (uint32_t)(window_slots ? n : k);
        n++;
    }
    *position = pos;
    return n;
}

void mp_verifier_scatter(const mp_record_ref *refs, size_t count, const uint8_t *shard_verdicts,
                         const uint64_t *shard_credited, uint8_t *verdicts, uint64_t *credited, uint64_t *starts) {
    for (size_t k = 0; k < count; k++) {
        uint32_t n = refs[k].slot;
        verdicts[n] = shard_verdicts[n];
        credited[n] = shard_credited[n];
        starts[n] = refs[k].offset;
    }
}

/* ---- changes, for the merchant's store ---- */

size_t mp_verifier_dirty_count(const mp_verifier *v) {
    size_t n = 0;
    for (uint32_t p = 0; p < v->partitions; p++) n += v->shards[p].dirty_count;
    return n;
}

/* A ticket as exported. A chain ticket's order entries are never read
 * (their pages need not exist): its last_order comes out zero. */
static void export_entry(const shard *s, uint32_t e, mp_ticket_export *t) {
    const hot_entry *h = &s->hot[e];
    const cold_entry *c = &s->cold[e];
    t->serial = h->serial;
    t->customer = c->customer;
    t->limit = h->limit;
    t->issued = c->issued;
    t->expires = h->expires;
    t->credited = h->credited;
    t->last_cumulative = h->last_cumulative;
    t->settled_amount = c->settled_amount;
    t->claimed = c->claimed;
    t->settled = c->settled;
    t->registered_at = c->registered_at;
    t->chain_len = h->chain_len;
    t->last_seq = h->last_seq;
    t->has_last_order = (h->flags & F_HAS_ORDER) != 0;
    memcpy(t->root, c->root, 32);
    memcpy(t->session_key, c->session_key, 32);
    memset(t->last_order, 0, 76);
    if (h->chain_len > 0) {
        t->unit = h->u.chain.unit;
        memcpy(t->chain_id, h->u.chain.chain_id, 12);
        t->last = h->u.chain.last;
        memcpy(t->last_word, h->u.chain.last_word, 32);
    } else {
        const order_cold *oc = &s->order_cold[e];
        t->unit = oc->unit;
        memcpy(t->chain_id, oc->chain_id, 12);
        t->last = 0;
        memcpy(t->last_word, c->root, 32);
        if (t->has_last_order) {
            if (h->flags & F_RAW_HEAD)
                memcpy(t->last_order, oc->raw_head, ORDER_HEAD);
            else
                order_head(s, h->serial, t->last_order);
            memcpy(t->last_order + ORDER_HEAD, s->order[e].tail, ORDER_TAIL);
        }
    }
}

size_t mp_verifier_partition_count(const mp_verifier *v, uint32_t partition) {
    return partition < v->partitions ? v->shards[partition].count : 0;
}

void mp_verifier_export_at(const mp_verifier *v, uint32_t partition, uint32_t index, mp_ticket_export *out) {
    export_entry(&v->shards[partition], index, out);
}

void mp_verifier_clear_dirty(mp_verifier *v) {
    for (uint32_t p = 0; p < v->partitions; p++) {
        shard *s = &v->shards[p];
        for (uint32_t d = 0; d < s->dirty_count; d++) {
            s->hot[s->dirty[d]].flags &= (uint8_t)~F_DIRTY;
            s->cold[s->dirty[d]].registered_at = UINT64_MAX;
        }
        s->dirty_count = 0;
    }
}

/* ---- the ticket log: the store's form of the table ---- */

enum { LOG_BODY = 1, LOG_CHAIN = 2, LOG_ORDER = 3 };

size_t mp_log_encode(const mp_ticket_export *t, int with_body, uint8_t *out) {
    size_t n = 0;
    if (with_body) {
        uint8_t *b = out;
        memset(b, 0, MP_LOG_BODY_BYTES);
        b[0] = LOG_BODY;
        mp_store_be32(b + 4, t->chain_len);
        mp_store_be64(b + 8, t->serial);
        mp_store_be64(b + 16, t->customer);
        mp_store_be64(b + 24, t->limit);
        mp_store_be64(b + 32, t->unit);
        mp_store_be64(b + 40, t->issued);
        mp_store_be64(b + 48, t->expires);
        memcpy(b + 56, t->chain_id, 12);
        memcpy(b + 68, t->root, 32);
        memcpy(b + 100, t->session_key, 32);
        n = MP_LOG_BODY_BYTES;
    }
    uint8_t *p = out + n;
    if (t->chain_len > 0) {
        memset(p, 0, MP_LOG_CHAIN_BYTES);
        p[0] = LOG_CHAIN;
        mp_store_be32(p + 4, t->last);
        memcpy(p + 40, t->last_word, 32);
        n += MP_LOG_CHAIN_BYTES;
    } else {
        memset(p, 0, MP_LOG_ORDER_BYTES);
        p[0] = LOG_ORDER;
        p[1] = t->has_last_order ? 1 : 0;
        mp_store_be32(p + 4, t->last_seq);
        mp_store_be64(p + 40, t->last_cumulative);
        memcpy(p + 48, t->last_order, 76);
        n += MP_LOG_ORDER_BYTES;
    }
    mp_store_be64(p + 8, t->serial);
    mp_store_be64(p + 16, t->credited);
    mp_store_be64(p + 24, t->settled_amount);
    mp_store_be32(p + 32, t->claimed);
    mp_store_be32(p + 36, t->settled);
    return n;
}

/* One ticket's records, straight from the table. */
static size_t encode_entry(const shard *s, uint32_t e, int with_body, uint8_t *out) {
    mp_ticket_export t;
    export_entry(s, e, &t);
    size_t n = mp_log_encode(&t, with_body, out);
    sodium_memzero(t.session_key, sizeof t.session_key);
    return n;
}

size_t mp_verifier_log_encode(const mp_verifier *v, uint32_t partition, int dirty_only, uint64_t *cursor,
                              uint8_t *out, size_t capacity) {
    const shard *s = &v->shards[partition];
    /* When most tickets changed, walk the table in order and pick the dirty
     * ones: sequential reads, where the dirty list (first-touch order) would
     * miss the cache on every ticket. */
    int scan = dirty_only && (uint64_t)s->dirty_count * 4 >= s->count;
    uint32_t end = dirty_only && !scan ? s->dirty_count : s->count;
    size_t n = 0;
    uint64_t i = *cursor;
    for (; i < end && capacity - n >= MP_LOG_TICKET_MAX; i++) {
        uint32_t e = dirty_only && !scan ? s->dirty[i] : (uint32_t)i;
        if (scan && !(s->hot[e].flags & F_DIRTY)) continue;
        int new_ticket = !dirty_only || s->cold[e].registered_at != UINT64_MAX;
        n += encode_entry(s, e, new_ticket, out + n);
    }
    *cursor = i < end ? i : UINT64_MAX;
    return n;
}

static int replay_body(mp_verifier *v, const uint8_t *b, pending_macs *pending) {
    mp_ticket_export t;
    memset(&t, 0, sizeof t);
    t.chain_len = mp_load_be32(b + 4);
    t.serial = load_be64(b + 8);
    t.customer = load_be64(b + 16);
    t.limit = load_be64(b + 24);
    t.unit = load_be64(b + 32);
    t.issued = load_be64(b + 40);
    t.expires = load_be64(b + 48);
    memcpy(t.chain_id, b + 56, 12);
    memcpy(t.root, b + 68, 32);
    memcpy(t.last_word, b + 68, 32); /* w_0 = root until a payment */
    memcpy(t.session_key, b + 100, 32);
    t.registered_at = UINT64_MAX;
    mp_status status = load(v, &t, pending);
    sodium_memzero(&t, sizeof t);
    return status;
}

static int replay_progress(mp_verifier *v, const uint8_t *p, int chain) {
    uint64_t serial = load_be64(p + 8);
    shard *s = &v->shards[mp_verifier_partition_of(v, serial)];
    uint32_t e = find(s, serial);
    if (e == NO_ENTRY) return MP_ERR_ARGUMENT;
    hot_entry *h = &s->hot[e];
    if ((h->chain_len > 0) != chain) return MP_ERR_ARGUMENT;
    h->credited = load_be64(p + 16);
    cold_entry *c = &s->cold[e];
    c->settled_amount = load_be64(p + 24);
    c->claimed = mp_load_be32(p + 32);
    c->settled = mp_load_be32(p + 36);
    if (chain) {
        h->u.chain.last = mp_load_be32(p + 4);
        memcpy(h->u.chain.last_word, p + 40, 32);
    } else {
        h->last_seq = mp_load_be32(p + 4);
        h->last_cumulative = load_be64(p + 40);
        load_last_order(s, e, p[1] != 0, p + 48);
    }
    return MP_OK;
}

static size_t log_record_size(uint8_t kind) {
    switch (kind) {
    case LOG_BODY: return MP_LOG_BODY_BYTES;
    case LOG_CHAIN: return MP_LOG_CHAIN_BYTES;
    case LOG_ORDER: return MP_LOG_ORDER_BYTES;
    }
    return 0;
}

#define REPLAY_BLOCK 64

mp_status mp_verifier_replay(mp_verifier *v, uint32_t partition, const uint8_t *records, size_t length,
                             size_t *error_offset) {
    /* Records are taken a block at a time: the block's hash slots are
     * prefetched together, then the records applied in order, so the slot
     * lookups' cache misses overlap instead of queueing. */
    size_t at = 0, bad = SIZE_MAX;
    size_t block[REPLAY_BLOCK];
    pending_macs pending = {.kernel = kernel_of(v), .n = 0};
    while (at < length && bad == SIZE_MAX) {
        int n = 0;
        while (n < REPLAY_BLOCK && at < length) {
            size_t size = log_record_size(records[at]);
            if (size == 0 || size > length - at) {
                bad = at; /* apply what came before, then report this one */
                break;
            }
            uint64_t serial = load_be64(records + at + 8);
            uint32_t p = mp_verifier_partition_of(v, serial);
            if (partition == MP_ALL_PARTITIONS || p == partition) {
                prefetch_slot(&v->shards[p], serial);
                block[n++] = at;
            }
            at += size;
        }
        for (int k = 0; k < n; k++) {
            const uint8_t *r = records + block[k];
            int status = r[0] == LOG_BODY ? replay_body(v, r, &pending) : replay_progress(v, r, r[0] == LOG_CHAIN);
            if (status != MP_OK) {
                derive_pending(&pending);
                *error_offset = block[k];
                return (mp_status)status;
            }
        }
    }
    derive_pending(&pending);
    if (bad != SIZE_MAX) {
        *error_offset = bad;
        return MP_ERR_ARGUMENT;
    }
    return MP_OK;
}
