// OpenSSL's libcrypto for the naive baselines: one-shot SHA256() and
// HMAC(EVP_sha256(), ...), called once per hash as a plain program would.
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
