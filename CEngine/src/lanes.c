/* Dispatch of the multi-lane batch kernels: picked once at start-up from the
 * CPU's features, forcible by name for tests and benchmarks. */
#include <stdatomic.h>
#include <stdlib.h>

#include "internal.h"

/* blocks: the key schedules' compressions (mp_hmac_subkey_states_batch_with,
 * for order tickets registered or loaded). AVX2 does them one at a time:
 * there they cost less than the tickets' opens at registration and their
 * log's decryption at loading. */
typedef struct lane_kernel {
    const char *name;
    mp_chain_batch_fn chain;
    mp_tag_batch_fn tag;
    mp_blocks_fn blocks;
} lane_kernel;

static const lane_kernel kernels[MP_LANE_KERNEL_COUNT] = {
    [MP_LANES_PORTABLE] = {"portable", mp_chain_verify_portable, mp_mac128_verify_portable, mp_compress_blocks_portable},
#if defined(__x86_64__)
    [MP_LANES_SHANI_X1] = {"sha-ni-x1", mp_chain_verify_shani_x1, mp_mac128_verify_shani_x1, mp_compress_blocks_shani_x1},
    [MP_LANES_SHANI_X2] = {"sha-ni-x2", mp_chain_verify_shani_x2, mp_mac128_verify_shani_x2, mp_compress_blocks_shani_x2},
    [MP_LANES_SHANI_X4] = {"sha-ni-x4", mp_chain_verify_shani_x4, mp_mac128_verify_shani_x4, mp_compress_blocks_shani_x4},
    [MP_LANES_AVX2_X8] = {"avx2-x8", mp_chain_verify_avx2_x8, mp_mac128_verify_avx2_x8, mp_compress_blocks_portable},
    [MP_LANES_SHANI_X2_X4] = {"sha-ni-x2-x4", mp_chain_verify_shani_x2, mp_mac128_verify_shani_x4,
                              mp_compress_blocks_shani_x4},
#else
    [MP_LANES_SHANI_X1] = {"sha-ni-x1", NULL, NULL, NULL},
    [MP_LANES_SHANI_X2] = {"sha-ni-x2", NULL, NULL, NULL},
    [MP_LANES_SHANI_X4] = {"sha-ni-x4", NULL, NULL, NULL},
    [MP_LANES_AVX2_X8] = {"avx2-x8", NULL, NULL, NULL},
    [MP_LANES_SHANI_X2_X4] = {"sha-ni-x2-x4", NULL, NULL, NULL},
#endif
};

static _Atomic int active = MP_LANES_PORTABLE;

int mp_lane_kernel_available(mp_lane_kernel kernel) {
    if ((unsigned)kernel >= MP_LANE_KERNEL_COUNT || kernels[kernel].chain == NULL) return 0;
#if defined(__x86_64__)
    switch (kernel) {
    case MP_LANES_SHANI_X1:
    case MP_LANES_SHANI_X2:
    case MP_LANES_SHANI_X4:
    case MP_LANES_SHANI_X2_X4:
        return mp_cpu_has_shani();
    case MP_LANES_AVX2_X8:
        return mp_cpu_has_avx2();
    default:
        break;
    }
#endif
    return 1;
}

mp_lane_kernel mp_lane_active_kernel(void) {
    return (mp_lane_kernel)atomic_load_explicit(&active, memory_order_relaxed);
}

const char *mp_lane_kernel_name(mp_lane_kernel kernel) {
    return (unsigned)kernel < MP_LANE_KERNEL_COUNT ? kernels[kernel].name : NULL;
}

mp_status mp_lane_force_kernel(mp_lane_kernel kernel) {
    if ((unsigned)kernel >= MP_LANE_KERNEL_COUNT) return MP_ERR_ARGUMENT;
    if (!mp_lane_kernel_available(kernel)) return MP_ERR_UNSUPPORTED;
    atomic_store_explicit(&active, (int)kernel, memory_order_relaxed);
    return MP_OK;
}

/* Preference measured on AMD Zen 3 (BENCHMARKS.md): SHA-NI with chains
 * 2-way (the 4-way chain kernel, its W+K through the stack, does 27 M
 * steps/s against 30-44 M) and tags 4-way (1.24-1.59x the 2-way tag
 * kernel), then AVX2, then one block at a time. */
void mp_lane_pick_kernel(void) {
    const char *forced = getenv("MICROPAY_LANE_KERNEL");
    if (forced != NULL && forced[0] != '\0') {
        for (int k = 0; k < MP_LANE_KERNEL_COUNT; k++)
            if (strcmp(forced, kernels[k].name) == 0 && mp_lane_force_kernel((mp_lane_kernel)k) == MP_OK) return;
    }
    static const mp_lane_kernel preference[] = {MP_LANES_SHANI_X2_X4, MP_LANES_AVX2_X8, MP_LANES_PORTABLE};
    for (size_t i = 0; i < sizeof preference / sizeof preference[0]; i++)
        if (mp_lane_force_kernel(preference[i]) == MP_OK) return;
}

void mp_chain_verify_batch(MP_CHAIN_BATCH_PARAMS) {
    kernels[mp_lane_active_kernel()].chain(count, chain_ids, index, words, last, expected, ok);
}

void mp_mac128_verify_batch(MP_TAG_BATCH_PARAMS) {
    kernels[mp_lane_active_kernel()].tag(count, keys, label, records, stride, mac_len, ok);
}

mp_status mp_lane_kernel_check(mp_lane_kernel kernel) {
    if (mp_lane_kernel_available(kernel)) return MP_OK;
    return mp_lane_kernel_name(kernel) ? MP_ERR_UNSUPPORTED : MP_ERR_ARGUMENT;
}

mp_status mp_chain_verify_batch_with(mp_lane_kernel kernel, MP_CHAIN_BATCH_PARAMS) {
    mp_status status = mp_lane_kernel_check(kernel);
    if (status == MP_OK) kernels[kernel].chain(count, chain_ids, index, words, last, expected, ok);
    return status;
}

mp_status mp_mac128_verify_batch_with(mp_lane_kernel kernel, MP_TAG_BATCH_PARAMS) {
    mp_status status = mp_lane_kernel_check(kernel);
    if (status == MP_OK) kernels[kernel].tag(count, keys, label, records, stride, mac_len, ok);
    return status;
}

mp_blocks_fn mp_lane_blocks(mp_lane_kernel kernel) { return kernels[kernel].blocks; }
