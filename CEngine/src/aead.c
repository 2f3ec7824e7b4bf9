/* Authenticated encryption: XChaCha20-Poly1305 (libsodium) for tickets and
 * envelopes, AES-256-GCM with per-key contexts for information goods. */
#include <limits.h>
#include <openssl/evp.h>
#include <sodium.h>
#include <stdlib.h>

#include "internal.h"

/* ---- XChaCha20-Poly1305-IETF ---- */

mp_status mp_xchacha_seal(uint8_t *out, const uint8_t *msg, size_t len, const uint8_t *ad,
                          size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]) {
    if (crypto_aead_xchacha20poly1305_ietf_encrypt_detached(out, out + len, NULL, msg, len, ad, ad_len,
                                                            NULL, nonce, key) != 0)
        return MP_ERR_LIBRARY;
    return MP_OK;
}

mp_status mp_xchacha_open(uint8_t *out, const uint8_t *in, size_t in_len, const uint8_t *ad,
                          size_t ad_len, const uint8_t nonce[24], const uint8_t key[32]) {
    if (in_len < MP_AEAD_TAG_BYTES) return MP_ERR_ARGUMENT;
    size_t len = in_len - MP_AEAD_TAG_BYTES;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt_detached(out, NULL, in, len, in + len, ad, ad_len,
                                                            nonce, key) != 0) {
        if (len > 0) sodium_memzero(out, len);
        return MP_ERR_AUTH;
    }
    return MP_OK;
}

/* ---- AES-256-GCM ---- */

struct mp_aes_gcm_key {
    mp_aes_gcm_backend backend;
    /* OpenSSL: one context per direction, each holding the expanded key */
    EVP_CIPHER_CTX *enc;
    EVP_CIPHER_CTX *dec;
    /* libsodium: the precomputed state (must be 16-byte aligned) */
    crypto_aead_aes256gcm_state *sodium;
};

int mp_aes_gcm_backend_available(mp_aes_gcm_backend backend) {
    switch (backend) {
    case MP_AES_GCM_AUTO:
    case MP_AES_GCM_OPENSSL:
        return 1;
    case MP_AES_GCM_SODIUM:
        return crypto_aead_aes256gcm_is_available();
    }
    return 0;
}

mp_aes_gcm_key *mp_aes_gcm_key_new(const uint8_t key[32], mp_aes_gcm_backend backend) {
    if (backend == MP_AES_GCM_AUTO)
        backend = crypto_aead_aes256gcm_is_available() ? MP_AES_GCM_SODIUM : MP_AES_GCM_OPENSSL;
    if (!mp_aes_gcm_backend_available(backend)) return NULL;
    mp_aes_gcm_key *k = calloc(1, sizeof *k);
    if (k == NULL) return NULL;
    k->backend = backend;
    if (backend == MP_AES_GCM_SODIUM) {
        if (posix_memalign((void **)&k->sodium, 16, sizeof *k->sodium) != 0) {
            free(k);
            return NULL;
        }
        crypto_aead_aes256gcm_beforenm(k->sodium, key);
        return k;
    }
    k->enc = EVP_CIPHER_CTX_new();
    k->dec = EVP_CIPHER_CTX_new();
    if (k->enc == NULL || k->dec == NULL ||
        EVP_EncryptInit_ex(k->enc, EVP_aes_256_gcm(), NULL, key, NULL) != 1 ||
        EVP_DecryptInit_ex(k->dec, EVP_aes_256_gcm(), NULL, key, NULL) != 1) {
        mp_aes_gcm_key_free(k);
        return NULL;
    }
    return k;
}

void mp_aes_gcm_key_free(mp_aes_gcm_key *key) {
    if (key == NULL) return;
    EVP_CIPHER_CTX_free(key->enc); /* clears the expanded key */
    EVP_CIPHER_CTX_free(key->dec);
    if (key->sodium != NULL) {
        sodium_memzero(key->sodium, sizeof *key->sodium);
        free(key->sodium);
    }
    free(key);
}

mp_aes_gcm_backend mp_aes_gcm_key_backend(const mp_aes_gcm_key *key) { return key->backend; }

/* OpenSSL takes int lengths: feed larger inputs in pieces. */
static int evp_update(EVP_CIPHER_CTX *ctx, int encrypt, uint8_t *out, const uint8_t *in, size_t len) {
    while (len > 0) {
        int piece = len > (size_t)INT_MAX / 2 ? INT_MAX / 2 : (int)len;
        int outl = 0;
        int rc = encrypt ? EVP_EncryptUpdate(ctx, out, &outl, in, piece)
                         : EVP_DecryptUpdate(ctx, out, &outl, in, piece);
        if (rc != 1) return 0;
        if (out != NULL) out += outl;
        in += piece;
        len -= (size_t)piece;
    }
    return 1;
}

mp_status mp_aes_gcm_seal(mp_aes_gcm_key *key, uint8_t *out, const uint8_t *msg, size_t len,
                          const uint8_t *ad, size_t ad_len, const uint8_t nonce[12]) {
    if (key->backend == MP_AES_GCM_SODIUM) {
        return crypto_aead_aes256gcm_encrypt_detached_afternm(out, out + len, NULL, msg, len, ad, ad_len,
                                                              NULL, nonce, key->sodium) == 0
                   ? MP_OK
                   : MP_ERR_LIBRARY;
    }
    int outl = 0;
    if (EVP_EncryptInit_ex(key->enc, NULL, NULL, NULL, nonce) != 1 ||
        !evp_update(key->enc, 1, NULL, ad, ad_len) || !evp_update(key->enc, 1, out, msg, len) ||
        EVP_EncryptFinal_ex(key->enc, out + len, &outl) != 1 ||
        EVP_CIPHER_CTX_ctrl(key->enc, EVP_CTRL_GCM_GET_TAG, 16, out + len) != 1)
        return MP_ERR_LIBRARY;
    return MP_OK;
}

mp_status mp_aes_gcm_open(mp_aes_gcm_key *key, uint8_t *out, const uint8_t *in, size_t in_len,
                          const uint8_t *ad, size_t ad_len, const uint8_t nonce[12]) {
    if (in_len < MP_AEAD_TAG_BYTES) return MP_ERR_ARGUMENT;
    size_t len = in_len - MP_AEAD_TAG_BYTES;
    int ok;
    if (key->backend == MP_AES_GCM_SODIUM) {
        ok = crypto_aead_aes256gcm_decrypt_detached_afternm(out, NULL, in, len, in + len, ad, ad_len,
                                                            nonce, key->sodium) == 0;
    } else {
        int outl = 0;
        ok = EVP_DecryptInit_ex(key->dec, NULL, NULL, NULL, nonce) == 1 &&
             evp_update(key->dec, 0, NULL, ad, ad_len) && evp_update(key->dec, 0, out, in, len) &&
             EVP_CIPHER_CTX_ctrl(key->dec, EVP_CTRL_GCM_SET_TAG, 16, (void *)(in + len)) == 1 &&
             EVP_DecryptFinal_ex(key->dec, out + len, &outl) == 1;
    }
    if (!ok) {
        if (len > 0) sodium_memzero(out, len);
        return MP_ERR_AUTH;
    }
    return MP_OK;
}

/* ---- GoodsStream chunks (PROTOCOL §8) ---- */

uint64_t mp_goods_chunk_count(uint64_t total, uint32_t chunk) {
    if (chunk == 0) return 0;
    if (total == 0) return 1;
    return total / chunk + (total % chunk != 0);
}

static void goods_chunk_params(const uint8_t header48[48], uint64_t j, int final, uint8_t nonce[12],
                               uint8_t ad[57]) {
    memset(nonce, 0, 4);
    mp_store_be64(nonce + 4, j);
    memcpy(ad, header48, 48);
    mp_store_be64(ad + 48, j);
    ad[56] = (uint8_t)final;
}

static mp_status goods_run(mp_aes_gcm_key *key, const uint8_t header48[48], uint32_t chunk,
                           const uint8_t *in, uint64_t total, uint8_t *out, int seal) {
    if (chunk == 0) return MP_ERR_ARGUMENT;
    uint64_t chunks = mp_goods_chunk_count(total, chunk);
    uint8_t nonce[12], ad[57];
    for (uint64_t j = 0; j < chunks; j++) {
        uint64_t offset = j * chunk;
        size_t len = (size_t)(total - offset < chunk ? total - offset : chunk);
        size_t sealed_off = (size_t)(offset + j * MP_AEAD_TAG_BYTES);
        goods_chunk_params(header48, j, j + 1 == chunks, nonce, ad);
        mp_status s = seal ? mp_aes_gcm_seal(key, out + sealed_off, in + offset, len, ad, sizeof ad, nonce)
                           : mp_aes_gcm_open(key, out + offset, in + sealed_off, len + MP_AEAD_TAG_BYTES, ad,
                                             sizeof ad, nonce);
        if (s != MP_OK) {
            if (!seal && total > 0) sodium_memzero(out, (size_t)total);
            return s;
        }
    }
    return MP_OK;
}

mp_status mp_goods_seal(mp_aes_gcm_key *key, const uint8_t header48[48], uint32_t chunk,
                        const uint8_t *content, uint64_t total, uint8_t *out) {
    return goods_run(key, header48, chunk, content, total, out, 1);
}

mp_status mp_goods_open(mp_aes_gcm_key *key, const uint8_t header48[48], uint32_t chunk,
                        const uint8_t *sealed, uint64_t total, uint8_t *out) {
    return goods_run(key, header48, chunk, sealed, total, out, 0);
}
