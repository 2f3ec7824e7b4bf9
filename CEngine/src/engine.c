/* Start-up and the libsodium-backed utilities. */
#include <pthread.h>
#include <sodium.h>

#include "internal.h"

void mp_sha256_pick_kernel(void);
void mp_lane_pick_kernel(void);

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static mp_status init_status = MP_ERR_LIBRARY;

static void init_engine(void) {
    if (sodium_init() < 0) return;
    mp_sha256_pick_kernel();
    mp_lane_pick_kernel();
    init_status = MP_OK;
}

mp_status mp_init(void) {
    pthread_once(&init_once, init_engine);
    return init_status;
}

int mp_ct_equal(const void *a, const void *b, size_t len) { return sodium_memcmp(a, b, len) == 0; }

void mp_zero(void *p, size_t len) { sodium_memzero(p, len); }

void mp_random(void *p, size_t len) { randombytes_buf(p, len); }
