/*
 * CEngine: the cryptographic core of Micropay.
 *
 * Only <stdint.h>/<stddef.h> types cross this boundary; libsodium and OpenSSL
 * stay inside the .c files. Every symbol carries the `mp_` prefix. Functions
 * that can fail return `mp_status`; batch entry points never fail per element,
 * they write one result byte per element into caller-provided memory and do
 * not allocate.
 *
 * Call mp_init() once before anything else (it is idempotent and thread-safe).
 */
#ifndef CENGINE_H
#define CENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum mp_status {
    MP_OK = 0,
    /* an AEAD tag or MAC did not verify */
    MP_ERR_AUTH = 1,
    /* an argument is out of range (a length, an index, a kernel) */
    MP_ERR_ARGUMENT = 2,
    /* libsodium or OpenSSL failed (allocation, library initialisation) */
    MP_ERR_LIBRARY = 3,
    /* the requested kernel or backend does not run on this CPU */
    MP_ERR_UNSUPPORTED = 4,
} mp_status;

/* Initialises libsodium and picks the fastest kernels this CPU runs.
 * Honours MICROPAY_SHA256_KERNEL=portable|shani to force a kernel. */
mp_status mp_init(void);

/* ---- SHA-256 ------------------------------------------------------------ */

typedef enum mp_sha256_kernel {
    MP_SHA256_PORTABLE = 0,
    /* x86-64 SHA extensions (sha256rnds2 and friends) */
    MP_SHA256_SHANI = 1,
} mp_sha256_kernel;

#define MP_SHA256_KERNEL_COUNT 2

/* 1 if `kernel` runs on this CPU, else 0. */
int mp_sha256_kernel_available(mp_sha256_kernel kernel);
/* The kernel every hashing entry point uses now. */
mp_sha256_kernel mp_sha256_active_kernel(void);
/* A short stable name: "portable", "sha-ni". NULL for an unknown value. */
const char *mp_sha256_kernel_name(mp_sha256_kernel kernel);
/* Switches every hashing entry point to `kernel` (for tests and benchmarks). */
mp_status mp_sha256_force_kernel(mp_sha256_kernel kernel);

/* SHA-256 of `len` bytes with the active kernel. */
void mp_sha256(const void *msg, size_t len, uint8_t out[32]);
/* SHA-256 with a named kernel; MP_ERR_UNSUPPORTED if the CPU lacks it. */
mp_status mp_sha256_with_kernel(mp_sha256_kernel kernel, const void *msg, size_t len,
                                uint8_t out[32]);

/* ---- HMAC-SHA-256 with cached key states --------------------------------- */

/* The inner and outer chaining values of one key: HMAC of a short message
 * then costs two or three compressions instead of four or five. Secret:
 * zero it with mp_zero when done. */
typedef struct mp_hmac_key {
    uint32_t inner[8];
    uint32_t outer[8];
} mp_hmac_key;

void mp_hmac_key_init(mp_hmac_key *state, const void *key, size_t key_len);
/* HMAC(key, part1 || part2); either part may be empty (NULL with length 0). */
void mp_hmac2(const mp_hmac_key *state, const void *part1, size_t len1,
              const void *part2, size_t len2, uint8_t out[32]);
/* One-shot HMAC(key, msg) without a cached state. */
void mp_hmac(const void *key, size_t key_len, const void *msg, size_t len, uint8_t out[32]);
/* MAC128(k, label, m): the first 16 bytes of HMAC(k, label[4] || m). */
void mp_mac128(const mp_hmac_key *state, const char label[4], const void *msg, size_t len,
               uint8_t out[16]);
/* Constant-time check of `tag` against MAC128(k, label, m): MP_OK or MP_ERR_AUTH. */
mp_status mp_mac128_verify(const mp_hmac_key *state, const char label[4], const void *msg,
                           size_t len, const uint8_t tag[16]);

/* Batch: for each record r (at records + r * stride), checks the 16 bytes at
 * offset `mac_len` against MAC128(*keys[r], label, first mac_len bytes).
 * ok[r] = 1 on match, else 0. mac_len + 16 <= stride. */
void mp_mac128_verify_batch(size_t count, const mp_hmac_key *const *keys, const char label[4],
                            const uint8_t *records, size_t stride, size_t mac_len, uint8_t *ok);

/* ---- Key derivation (PROTOCOL §1) --------------------------------------- */

/* K_C or K_M = HMAC(master, "MPK1" || role || u32 bank_id || u64 account);
 * role is 'C' or 'M'. */
mp_status mp_derive_account_key(const uint8_t master[32], char role, uint32_t bank_id,
                                uint64_t account, uint8_t out[32]);
/* K_CM = HMAC(master, "MPS1" || u32 bank_id || u64 serial). */
void mp_derive_session_key(const uint8_t master[32], uint32_t bank_id, uint64_t serial,
                           uint8_t out[32]);
/* A labelled subkey: HMAC(key, label[4]); enc(K) uses "MPE1", mac(K) "MPM1". */
void mp_derive_subkey(const uint8_t key[32], const char label[4], uint8_t out[32]);

/* ---- Hash chains (PROTOCOL §5) ------------------------------------------ */

/* step(i, w) = SHA-256("MPC1" || chain_id[12] || u32 i || w[32]). */
void mp_chain_step(const uint8_t chain_id[12], uint32_t i, const uint8_t w[32], uint8_t out[32]);
/* From (i, w_i) down to index j <= i: out = w_j (i - j steps).
 * MP_ERR_ARGUMENT if j > i. `out` may alias `w`. */
mp_status mp_chain_walk(const uint8_t chain_id[12], uint32_t i, const uint8_t w[32], uint32_t j,
                        uint8_t out[32]);

/* Batch: for each element e, walks from (index[e], words + 32e) down to
 * last[e] and compares, in constant time, with expected + 32e. chain_ids holds
 * 12 bytes per element. ok[e] = 1 on match, else 0 (also when
 * index[e] <= last[e]). The caller bounds index - last (the protocol's 4096). */
void mp_chain_verify_batch(size_t count, const uint8_t *chain_ids, const uint32_t *index,
                           const uint8_t *words, const uint32_t *last, const uint8_t *expected,
                           uint8_t *ok);

/* ---- Multi-lane batch kernels ---------------------------------------------- */

/* The kernels behind mp_chain_verify_batch and mp_mac128_verify_batch: many
 * independent SHA-256 blocks in flight at once, to fill the hash unit. */
typedef enum mp_lane_kernel {
    /* one element at a time through the active SHA-256 kernel */
    MP_LANES_PORTABLE = 0,
    /* SHA extensions with 1, 2 or 4 independent blocks interleaved */
    MP_LANES_SHANI_X1 = 1,
    MP_LANES_SHANI_X2 = 2,
    MP_LANES_SHANI_X4 = 3,
    /* AVX2: 8 blocks, one per 32-bit lane of a 256-bit register */
    MP_LANES_AVX2_X8 = 4,
    /* SHA extensions, chains 2-way and tags 4-way: the 4-way kernels write
     * their W+K to the stack first (four schedules need 24 XMM registers),
     * which 4 chains lose to and 4 tags gain from (BENCHMARKS.md) */
    MP_LANES_SHANI_X2_X4 = 5,
} mp_lane_kernel;

#define MP_LANE_KERNEL_COUNT 6

int mp_lane_kernel_available(mp_lane_kernel kernel);
mp_lane_kernel mp_lane_active_kernel(void);
/* "portable", "sha-ni-x1", "sha-ni-x2", "sha-ni-x4", "avx2-x8"; NULL if unknown. */
const char *mp_lane_kernel_name(mp_lane_kernel kernel);
/* Chosen once by mp_init (MICROPAY_LANE_KERNEL=name forces one). */
mp_status mp_lane_force_kernel(mp_lane_kernel kernel);

/* mp_chain_verify_batch and mp_mac128_verify_batch on a named kernel;
 * MP_ERR_UNSUPPORTED if this CPU lacks it. */
mp_status mp_chain_verify_batch_with(mp_lane_kernel kernel, size_t count, const uint8_t *chain_ids,
                                     const uint32_t *index, const uint8_t *words, const uint32_t *last,
                                     const uint8_t *expected, uint8_t *ok);
mp_status mp_mac128_verify_batch_with(mp_lane_kernel kernel, size_t count,
                                      const mp_hmac_key *const *keys, const char label[4],
                                      const uint8_t *records, size_t stride, size_t mac_len,
                                      uint8_t *ok);
/* The MAC states of count labelled subkeys: out[i] as
 * mp_hmac_key_init(mp_derive_subkey(keys[i], label), 32) gives them, the
 * compressions of a group of keys interleaved on the kernel (the SHA-NI
 * ones; the others take them one at a time). Secret in, secret out. */
mp_status mp_hmac_subkey_states_batch_with(mp_lane_kernel kernel, size_t count, const uint8_t *const *keys,
                                           const char label[4], mp_hmac_key *const *out);

/* ---- The merchant's batch verifier (PROTOCOL §7, §10) ----------------------- */

/* The merchant's ticket table and the hot path of batch verification. Tickets
 * live in `partitions` shards chosen by serial, so one thread per shard
 * verifies its records with no locks: verdicts depend only on the records of
 * the same serial, in file order. Within a shard, a chunk's hashing is lined
 * up for the multi-lane kernels at once, each chain walk guessing that the
 * serial's previous payment is accepted, and the verdicts then applied in
 * file order, walking again only where a guess failed. */
typedef struct mp_verifier mp_verifier;

/* A ticket's opened body and the merchant's progress on it. The table keeps
 * what its mode uses: an order ticket exports last 0 and last_word = root,
 * a chain ticket has_last_order 0, and a ticket without a last order a
 * zeroed last_order, whatever was loaded (the ticket log keeps no more). */
typedef struct mp_ticket_export {
    uint64_t serial;
    uint64_t customer;
    uint64_t limit;
    uint64_t unit;
    uint64_t issued;
    uint64_t expires;
    uint64_t credited;
    uint64_t last_cumulative;
    /* settlement progress, kept for the merchant's store; the verifier never reads it */
    uint64_t settled_amount;
    uint32_t claimed;
    uint32_t settled;
    /* byte offset of the Ticket record that registered it in the last run's
     * buffer, or UINT64_MAX if it was loaded */
    uint64_t registered_at;
    uint32_t chain_len;
    uint32_t last;
    uint32_t last_seq;
    uint32_t has_last_order;
    uint8_t chain_id[12];
    uint8_t root[32];
    uint8_t last_word[32];
    uint8_t session_key[32]; /* K_CM: secret */
    uint8_t last_order[76];
} mp_ticket_export;

/* One record of a batch: where it is in the caller's buffer, and the index
 * of its verdict in the caller's output arrays. */
typedef struct mp_record_ref {
    uint64_t offset;
    uint32_t length;
    uint32_t slot;
} mp_record_ref;

/* NULL on allocation failure. merchant_key is K_M; partitions >= 1. */
mp_verifier *mp_verifier_new(uint32_t bank_id, uint64_t merchant, const uint8_t merchant_key[32],
                             uint32_t partitions);
/* Zeroes every key and frees. NULL is ignored. */
void mp_verifier_free(mp_verifier *verifier);
uint32_t mp_verifier_partitions(const mp_verifier *verifier);
/* Pins the lane kernel this verifier hashes with (tests, benchmarks);
 * MP_ERR_UNSUPPORTED if the CPU lacks it. By default it follows the active one. */
mp_status mp_verifier_set_kernel(mp_verifier *verifier, mp_lane_kernel kernel);
/* The shard of a serial. */
uint32_t mp_verifier_partition_of(const mp_verifier *verifier, uint64_t serial);
/* The shard a record goes to (records without a serial go to shard 0). */
uint32_t mp_verifier_partition_of_record(const mp_verifier *verifier, const uint8_t *record,
                                         size_t length);
/* Adds a ticket already registered (from the merchant's store); its fields
 * and progress as exported. MP_ERR_ARGUMENT if the serial is there already. */
mp_status mp_verifier_load(mp_verifier *verifier, const mp_ticket_export *ticket);
size_t mp_verifier_ticket_count(const mp_verifier *verifier);
/* Makes room for `tickets` tickets in all, so loading them does not grow
 * (copy) the table again and again. */
mp_status mp_verifier_reserve(mp_verifier *verifier, size_t tickets);

/* Verifies the records of shard `partition`, given in file order,
 * at `now`: verdicts[slot] gets the §7 code and credited[slot] the amount.
 * Thread-safe across distinct partitions. */
void mp_verifier_run(mp_verifier *verifier, uint32_t partition, const uint8_t *base,
                     const mp_record_ref *records, size_t count, uint64_t now, uint8_t *verdicts,
                     uint64_t *credited);

/* Takes the next records of a batch file's bytes, from *position (just past
 * "MPB1" at first), up to `max` records, and deals them to the shards:
 * refs[p] gets shard p's records in file order, counts[p] of them (each list
 * must hold `max`). One scan serves every shard, so each window is read once
 * whatever the thread count. A record's slot is its index among its shard's
 * records, or with `window_slots` its index among all those taken. Returns
 * the records taken in all and advances *position; sets *truncated_at to the
 * offset of a final record cut short (else leaves it). */
size_t mp_verifier_scan_window(const mp_verifier *verifier, const uint8_t *file, size_t length, size_t *position,
                               size_t max, mp_record_ref *const *refs, size_t *counts, uint64_t *truncated_at,
                               int window_slots);
/* Puts one shard's results, run with window slots, in their places in file
 * order: verdicts, credits and where each record's bytes start. */
void mp_verifier_scatter(const mp_record_ref *refs, size_t count, const uint8_t *shard_verdicts,
                         const uint64_t *shard_credited, uint8_t *verdicts, uint64_t *credited, uint64_t *starts);

/* Tickets changed since the last mp_verifier_clear_dirty, over all shards. */
size_t mp_verifier_dirty_count(const mp_verifier *verifier);
void mp_verifier_clear_dirty(mp_verifier *verifier);

/* The tickets of one shard, by index: how a caller walks the whole table. */
size_t mp_verifier_partition_count(const mp_verifier *verifier, uint32_t partition);
void mp_verifier_export_at(const mp_verifier *verifier, uint32_t partition, uint32_t index,
                           mp_ticket_export *out);

/* ---- The merchant's ticket log ----------------------------------------------
 * The merchant's store keeps its tickets as a log of fixed-size records,
 * big-endian, appended at every commit and replayed in order on open:
 *   body (kind 1, 136 bytes): the opened ticket, K_CM included;
 *   chain progress (kind 2, 72 bytes): last, w_last, credited, settlement;
 *   order progress (kind 3, 128 bytes): last_seq, last_cumulative, the last
 *     order, credited, settlement.
 * A later progress record for a serial replaces an earlier one. The caller
 * seals the records (they hold session keys) and stores them. */
#define MP_LOG_BODY_BYTES 136
#define MP_LOG_CHAIN_BYTES 72
#define MP_LOG_ORDER_BYTES 128
/* The most one ticket can take: its body and its progress. */
#define MP_LOG_TICKET_MAX (MP_LOG_BODY_BYTES + MP_LOG_ORDER_BYTES)

/* Encodes one ticket (its body first when with_body != 0) into out, which
 * has room for MP_LOG_TICKET_MAX bytes; returns the bytes written. */
size_t mp_log_encode(const mp_ticket_export *ticket, int with_body, uint8_t *out);
/* Encodes the tickets of shard `partition`, every one (dirty_only = 0) or
 * those changed since mp_verifier_clear_dirty (dirty_only = 1; bodies only
 * for tickets the last run registered), resuming at *cursor (0 to start).
 * Stops when fewer than MP_LOG_TICKET_MAX bytes of `capacity` remain;
 * returns the bytes written, and sets *cursor to UINT64_MAX once the shard is
 * done. Distinct shards may be encoded from distinct threads at once. */
size_t mp_verifier_log_encode(const mp_verifier *verifier, uint32_t partition, int dirty_only, uint64_t *cursor,
                              uint8_t *out, size_t capacity);
#define MP_ALL_PARTITIONS UINT32_MAX
/* Applies log records in order: a body adds its ticket, progress replaces a
 * ticket's; only records of shard `partition`, or all with
 * MP_ALL_PARTITIONS (distinct shards may replay from distinct threads at
 * once). MP_ERR_ARGUMENT, with *error_offset set, at a record that is cut
 * short, of no known kind, a second body for a serial, progress for a serial
 * with no body or of the other mode; MP_ERR_LIBRARY if memory runs out. */
mp_status mp_verifier_replay(mp_verifier *verifier, uint32_t partition, const uint8_t *records, size_t length,
                             size_t *error_offset);

/* ---- XChaCha20-Poly1305-IETF (libsodium) ---------------------------------- */

#define MP_XCHACHA_NONCE_BYTES 24
#define MP_AEAD_TAG_BYTES 16

/* out receives len + 16 bytes: ciphertext then tag. */
mp_status mp_xchacha_seal(uint8_t *out, const uint8_t *msg, size_t len, const uint8_t *ad,
                          size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]);
/* `in` holds ciphertext then tag (in_len >= 16); out receives in_len - 16 bytes.
 * MP_ERR_AUTH if the tag fails, and then out is zeroed. */
mp_status mp_xchacha_open(uint8_t *out, const uint8_t *in, size_t in_len, const uint8_t *ad,
                          size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]);
/* Opens `count` items under one key, as mp_xchacha_open does each: item i
 * is sealed[i] (ct_len bytes of ciphertext, then the tag), ad[i] (ad_len
 * bytes) and nonce[i]; out[i] receives ct_len bytes. ok[i] = 1 if the tag
 * holds, else 0 and out[i] zeroed. Eight at a time on AVX2 (ct_len <= 128). */
void mp_xchacha_open_batch(size_t count, uint8_t *const *out, const uint8_t *const *sealed, size_t ct_len,
                           const uint8_t *const *ad, size_t ad_len, const uint8_t *const *nonce,
                           const uint8_t key[32], uint8_t *ok);

/* ---- AES-256-GCM with a context kept per key -------------------------------- */

typedef enum mp_aes_gcm_backend {
    /* libsodium's precomputed state where the CPU has AES-NI, else OpenSSL */
    MP_AES_GCM_AUTO = 0,
    MP_AES_GCM_OPENSSL = 1,
    MP_AES_GCM_SODIUM = 2,
} mp_aes_gcm_backend;

typedef struct mp_aes_gcm_key mp_aes_gcm_key;

/* NULL on allocation failure or when `backend` does not run here. */
mp_aes_gcm_key *mp_aes_gcm_key_new(const uint8_t key[32], mp_aes_gcm_backend backend);
/* Zeroes and frees. NULL is ignored. */
void mp_aes_gcm_key_free(mp_aes_gcm_key *key);
/* The backend this key runs on (never MP_AES_GCM_AUTO). */
mp_aes_gcm_backend mp_aes_gcm_key_backend(const mp_aes_gcm_key *key);
int mp_aes_gcm_backend_available(mp_aes_gcm_backend backend);

/* 12-byte nonce; out receives len + 16 bytes (ciphertext then tag). */
mp_status mp_aes_gcm_seal(mp_aes_gcm_key *key, uint8_t *out, const uint8_t *msg, size_t len,
                          const uint8_t *ad, size_t ad_len, const uint8_t nonce[12]);
/* in_len >= 16; out receives in_len - 16 bytes, zeroed if MP_ERR_AUTH. */
mp_status mp_aes_gcm_open(mp_aes_gcm_key *key, uint8_t *out, const uint8_t *in, size_t in_len,
                          const uint8_t *ad, size_t ad_len, const uint8_t nonce[12]);

/* The chunks of a GoodsStream (PROTOCOL §8) in one call. header48 is the
 * stream header; chunk j (from 0) uses nonce u32 0 || u64 j and associated
 * data header48 || u64 j || u8 final. chunk >= 1.
 * mp_goods_seal: content of `total` bytes → out of total + 16 * chunks bytes.
 * mp_goods_open: the reverse; MP_ERR_AUTH on the first chunk that fails
 * (and out is zeroed). mp_goods_chunk_count gives max(1, ceil(total/chunk)). */
uint64_t mp_goods_chunk_count(uint64_t total, uint32_t chunk);
mp_status mp_goods_seal(mp_aes_gcm_key *key, const uint8_t header48[48], uint32_t chunk,
                        const uint8_t *content, uint64_t total, uint8_t *out);
mp_status mp_goods_open(mp_aes_gcm_key *key, const uint8_t header48[48], uint32_t chunk,
                        const uint8_t *sealed, uint64_t total, uint8_t *out);

/* ---- Utilities (libsodium) ------------------------------------------------ */

/* 1 if the buffers are equal; time depends only on len. */
int mp_ct_equal(const void *a, const void *b, size_t len);
/* Zeroes memory in a way the compiler cannot elide. */
void mp_zero(void *p, size_t len);
/* Bytes from libsodium's CSPRNG. */
void mp_random(void *p, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* CENGINE_H */
