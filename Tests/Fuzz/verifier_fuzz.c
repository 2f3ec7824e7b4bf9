/* libFuzzer harness: the batch verifier's pipeline against itself one record
 * at a time.
 *
 * The pipeline hashes a whole chunk ahead of its verdicts, guessing where
 * each chain walk ends, and deals records to shards; fed one record per call
 * it has no chunk to guess in and no order to keep, so it is then simply the
 * §7 checks record by record. The fuzzer's bytes drive a small world of six
 * tickets (chains of 40 words, orders), most often all registered
 * beforehand, into batches of valid payments, forgeries, replays, retries,
 * gaps, registrations, other banks, wrong modes and malformed records; every
 * batch must give the same verdicts, credits and final ticket states on 1, 2
 * and 3 shards (windows of 1 to 13 records, or the whole batch in one,
 * scanned once and dealt to the shards, each shard's results scattered back
 * into file order) as one record at a time.
 * Any difference, or any memory error (ASan, UBSan), stops the run.
 *
 *   Tests/Fuzz/run.sh [seconds]      # builds with clang and runs it
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "CEngine.h"

enum { TICKETS = 6, CHAIN = 40, BANK = 7, MAX_RECORDS = 4096, MAX_SHARDS = 3 };
static const uint64_t MERCHANT = 2002, NOW = 1900000000ULL, FIRST_SERIAL = 100;

typedef struct world_ticket {
    uint64_t serial;
    int chain;
    uint8_t chain_id[12];
    uint8_t words[CHAIN + 1][32];
    mp_hmac_key mac;
    uint8_t record[184];
    /* what the customer has sent so far */
    uint32_t sent_index, sent_seq;
    uint64_t sent_cumulative;
    uint8_t last_sent[76];
    size_t last_sent_len;
} world_ticket;

static uint8_t merchant_key[32];
static world_ticket tickets[TICKETS];

static void be32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static void be64(uint8_t *p, uint64_t v) { be32(p, (uint32_t)(v >> 32)); be32(p + 4, (uint32_t)v); }

static void header(uint8_t *r, uint8_t kind, uint32_t bank, uint64_t serial) {
    r[0] = kind; r[1] = 1; r[2] = 1; r[3] = 0;
    be32(r + 4, bank);
    be64(r + 8, serial);
}

/* Six tickets, the same for every input: even ones chains, odd ones orders;
 * ticket 5 expired. */
static void make_world(void) {
    if (mp_init() != MP_OK) abort();
    memset(merchant_key, 0x4b, sizeof merchant_key);
    uint8_t ticket_key[32];
    mp_derive_subkey(merchant_key, "MPE1", ticket_key);
    for (int n = 0; n < TICKETS; n++) {
        world_ticket *t = &tickets[n];
        memset(t, 0, sizeof *t);
        t->serial = FIRST_SERIAL + (uint64_t)n;
        t->chain = n % 2 == 0;
        memset(t->chain_id, 0x30 + n, 12);
        memset(t->words[CHAIN], 0x60 + n, 32);
        for (uint32_t i = CHAIN; i >= 1; i--) mp_chain_step(t->chain_id, i, t->words[i], t->words[i - 1]);
        uint8_t session[32], mac_key[32], body[120];
        memset(session, 0x90 + n, sizeof session);
        mp_derive_subkey(session, "MPM1", mac_key);
        mp_hmac_key_init(&t->mac, mac_key, 32);
        memset(body, 0, sizeof body);
        be64(body + 0, 1001);                              /* customer */
        be64(body + 8, t->chain ? CHAIN * 3ULL : 5000);    /* limit */
        be64(body + 16, t->chain ? 3 : 0);                 /* unit */
        be32(body + 24, t->chain ? CHAIN : 0);             /* chain length */
        if (t->chain) memcpy(body + 28, t->chain_id, 12);
        be64(body + 40, NOW - 100);                        /* issued */
        be64(body + 48, n == 5 ? NOW - 1 : NOW + 1000);    /* expires */
        if (t->chain) memcpy(body + 56, t->words[0], 32);  /* root */
        memcpy(body + 88, session, 32);
        uint8_t *r = t->record;
        header(r, 0x10, BANK, t->serial);
        be64(r + 16, MERCHANT);
        memset(r + 24, 0xa0 + n, 24); /* nonce */
        if (mp_xchacha_seal(r + 48, body, 120, r, 48, r + 24, ticket_key) != MP_OK) abort();
    }
}

typedef struct batch {
    uint8_t bytes[4 + MAX_RECORDS * (2 + 184)];
    size_t length;
    size_t offsets[MAX_RECORDS]; /* where each record's bytes start */
    size_t count;
} batch;

static void append(batch *b, const uint8_t *r, size_t len) {
    if (b->count == MAX_RECORDS) return;
    b->bytes[b->length] = (uint8_t)(len >> 8);
    b->bytes[b->length + 1] = (uint8_t)len;
    memcpy(b->bytes + b->length + 2, r, len);
    b->offsets[b->count++] = b->length + 2;
    b->length += 2 + len;
}

static size_t chain_payment(uint8_t *r, const world_ticket *t, uint32_t index, const uint8_t *word) {
    header(r, 0x01, BANK, t->serial);
    be32(r + 16, index);
    memcpy(r + 20, word, 32);
    return 52;
}

static size_t order(uint8_t *r, const world_ticket *t, uint32_t seq, uint64_t cumulative, uint8_t item) {
    header(r, 0x02, BANK, t->serial);
    be32(r + 16, seq);
    be64(r + 20, cumulative);
    memset(r + 28, item, 16); /* item */
    memset(r + 44, 0, 16);    /* the customer's MAC: the bank's to check */
    mp_mac128(&t->mac, "MPO1", r, 60, r + 60);
    return 76;
}

/* One record from two input bytes. */
static void next_record(batch *b, uint8_t op, uint8_t arg) {
    world_ticket *t = &tickets[op % TICKETS];
    uint8_t r[184];
    size_t len = 0;
    switch ((op / TICKETS) % 8) {
    case 0: /* the ticket itself: a registration, or known */
        append(b, t->record, 184);
        return;
    case 1: case 2: /* the customer's next payment, 1-3 steps on */
        if (t->chain) {
            uint32_t index = t->sent_index + 1 + arg % 3;
            if (index > CHAIN) index = CHAIN;
            len = chain_payment(r, t, index, t->words[index]);
            t->sent_index = index;
        } else {
            t->sent_seq += 1 + arg % 2;
            t->sent_cumulative += arg;
            len = order(r, t, t->sent_seq, t->sent_cumulative, arg);
        }
        memcpy(t->last_sent, r, len);
        t->last_sent_len = len;
        break;
    case 3: /* a forged word or tag */
        if (t->chain) {
            uint8_t word[32];
            memset(word, arg, sizeof word);
            len = chain_payment(r, t, t->sent_index + 1, word);
        } else {
            len = order(r, t, t->sent_seq + 1, t->sent_cumulative, arg);
            r[16 + arg % 60] ^= 1;
        }
        break;
    case 4: /* a replay of an earlier payment, right in itself */
        if (t->chain) {
            uint32_t index = arg % (t->sent_index + 1);
            len = chain_payment(r, t, index, t->words[index]);
        } else {
            len = order(r, t, t->sent_seq ? arg % t->sent_seq : 0, t->sent_cumulative, 1);
        }
        break;
    case 5: /* a retry of the last one sent */
        if (t->last_sent_len == 0) return;
        append(b, t->last_sent, t->last_sent_len);
        return;
    case 6: /* too far: past the chain, or past the limit; or less than before */
        if (t->chain) {
            uint32_t index = t->sent_index + 1 + arg;
            len = chain_payment(r, t, index, t->words[index > CHAIN ? CHAIN : index]);
        } else {
            uint64_t cumulative = arg & 1 ? 5001 + arg : (t->sent_cumulative ? t->sent_cumulative - 1 : 0);
            len = order(r, t, t->sent_seq + 1, cumulative, arg);
        }
        break;
    default: /* wrong mode, another bank, an unknown serial, malformed, unknown kind */
        switch (arg % 5) {
        case 0:
            len = t->chain ? order(r, t, 1, 1, 0) : chain_payment(r, t, 1, t->words[1]);
            break;
        case 1:
            len = chain_payment(r, t, 1, t->words[1]);
            be32(r + 4, BANK + 1);
            break;
        case 2:
            len = chain_payment(r, t, 1, t->words[1]);
            be64(r + 8, 999);
            break;
        case 3:
            len = chain_payment(r, t, 1, t->words[1]) - 1 - arg % 40;
            break;
        default:
            memset(r, arg, 20);
            r[0] = 0x77;
            len = 20;
        }
    }
    append(b, r, len);
}

/* Registers the tickets of `mask` (an expired one is refused) before the
 * fuzzed batch, so that its payments find them in the table from its first
 * record: their walks are lined up ahead, with guesses to get wrong. The
 * others are registered only if the batch carries their ticket record:
 * payments before it are unknown, those after it in the same chunk are
 * hashed with the rest. */
static void register_tickets(mp_verifier *v, uint32_t partitions, unsigned mask) {
    static batch registrations;
    memcpy(registrations.bytes, "MPB1", 4);
    registrations.length = 4;
    registrations.count = 0;
    for (int n = 0; n < TICKETS; n++)
        if (mask & (1u << n)) append(&registrations, tickets[n].record, 184);
    mp_record_ref r[MAX_SHARDS][TICKETS];
    mp_record_ref *lists[MAX_SHARDS] = {r[0], r[1], r[2]};
    size_t counts[MAX_SHARDS], position = 4;
    uint64_t truncated = UINT64_MAX;
    mp_verifier_scan_window(v, registrations.bytes, registrations.length, &position, TICKETS, lists, counts,
                            &truncated, 0);
    for (uint32_t p = 0; p < partitions; p++) {
        uint8_t verdicts[TICKETS];
        uint64_t credits[TICKETS];
        mp_verifier_run(v, p, registrations.bytes, lists[p], counts[p], NOW, verdicts, credits);
    }
}

/* The state of every ticket in the table, sorted by serial. */
static size_t export_all(const mp_verifier *v, uint32_t partitions, mp_ticket_export *out) {
    size_t n = 0;
    for (uint32_t p = 0; p < partitions; p++)
        for (uint32_t i = 0; i < mp_verifier_partition_count(v, p); i++) mp_verifier_export_at(v, p, i, &out[n++]);
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && out[j - 1].serial > out[j].serial; j--) {
            mp_ticket_export tmp = out[j];
            out[j] = out[j - 1];
            out[j - 1] = tmp;
        }
    return n;
}

static int same_state(const mp_ticket_export *a, const mp_ticket_export *b) {
    return a->serial == b->serial && a->credited == b->credited && a->last == b->last &&
           memcmp(a->last_word, b->last_word, 32) == 0 && a->last_seq == b->last_seq &&
           a->last_cumulative == b->last_cumulative && a->has_last_order == b->has_last_order &&
           (!a->has_last_order || memcmp(a->last_order, b->last_order, 76) == 0);
}

static batch input_batch;
static uint8_t one_verdict[MAX_RECORDS], shard_verdicts[MAX_RECORDS], out_verdicts[MAX_RECORDS];
static uint64_t one_credit[MAX_RECORDS], shard_credits[MAX_RECORDS], out_credits[MAX_RECORDS], out_starts[MAX_RECORDS];
static mp_record_ref refs[MAX_SHARDS][MAX_RECORDS];
static mp_ticket_export one_state[TICKETS], shard_state[TICKETS];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static int ready = 0;
    if (!ready) {
        make_world();
        ready = 1;
    }
    for (int n = 0; n < TICKETS; n++) {
        tickets[n].sent_index = tickets[n].sent_seq = 0;
        tickets[n].sent_cumulative = 0;
        tickets[n].last_sent_len = 0;
    }
    batch *b = &input_batch;
    memcpy(b->bytes, "MPB1", 4);
    b->length = 4;
    b->count = 0;
    for (size_t i = 0; i + 1 < size; i += 2) next_record(b, data[i], data[i + 1]);
    /* Which tickets are in the table before the batch: most often all. */
    unsigned mask = size > 0 && (data[size - 1] & 0xc0) == 0 ? data[size - 1] & 0x3f : 0x3f;

    /* The reference: one record per call, so no guess and no dealing. */
    mp_verifier *one = mp_verifier_new(BANK, MERCHANT, merchant_key, 1);
    register_tickets(one, 1, mask);
    for (size_t i = 0; i < b->count; i++) {
        size_t len = ((size_t)b->bytes[b->offsets[i] - 2] << 8) | b->bytes[b->offsets[i] - 1];
        mp_record_ref ref = {b->offsets[i], (uint32_t)len, 0};
        mp_verifier_run(one, 0, b->bytes, &ref, 1, NOW, &one_verdict[i], &one_credit[i]);
    }
    size_t one_tickets = export_all(one, 1, one_state);

    for (uint32_t partitions = 1; partitions <= MAX_SHARDS; partitions++) {
        mp_verifier *v = mp_verifier_new(BANK, MERCHANT, merchant_key, partitions);
        register_tickets(v, partitions, mask);
        /* One scan a window deals the records to the shards, their slots
         * their places in the window (as BatchVerifier.verify does); each
         * shard runs its list and its results are scattered into file
         * order. The window's size comes from the input, so that windows
         * end anywhere, the last one empty or cut short. */
        memset(out_verdicts, 0xff, sizeof out_verdicts);
        /* Small windows put window ends anywhere; a whole-batch window gives
         * the chunks of 1024 and the long guess chains. */
        size_t window = size > 0 && (data[0] & 0x80) ? MAX_RECORDS : size % 13 + 1;
        size_t position = 4, first = 0, taken;
        uint64_t truncated = UINT64_MAX;
        do {
            mp_record_ref *lists[MAX_SHARDS] = {refs[0], refs[1], refs[2]};
            size_t counts[MAX_SHARDS];
            taken = mp_verifier_scan_window(v, b->bytes, b->length, &position, window, lists, counts, &truncated, 1);
            for (uint32_t p = 0; p < partitions; p++) {
                mp_verifier_run(v, p, b->bytes, lists[p], counts[p], NOW, shard_verdicts, shard_credits);
                mp_verifier_scatter(lists[p], counts[p], shard_verdicts, shard_credits, out_verdicts + first,
                                    out_credits + first, out_starts + first);
            }
            first += taken;
        } while (taken == window);
        if (first != b->count || truncated != UINT64_MAX) abort(); /* the harness writes whole records only */
        for (size_t i = 0; i < b->count; i++)
            if (out_verdicts[i] != one_verdict[i] || out_credits[i] != one_credit[i] || out_starts[i] != b->offsets[i]) {
                fprintf(stderr, "record %zu, %u shards: verdict %u credit %llu, alone %u credit %llu\n", i, partitions,
                        out_verdicts[i], (unsigned long long)out_credits[i], one_verdict[i],
                        (unsigned long long)one_credit[i]);
                abort();
            }
        size_t n = export_all(v, partitions, shard_state);
        if (n != one_tickets) abort();
        for (size_t i = 0; i < n; i++)
            if (!same_state(&shard_state[i], &one_state[i])) {
                fprintf(stderr, "ticket %llu differs on %u shards\n", (unsigned long long)one_state[i].serial, partitions);
                abort();
            }
        mp_verifier_free(v);
    }
    mp_verifier_free(one);
    return 0;
}
