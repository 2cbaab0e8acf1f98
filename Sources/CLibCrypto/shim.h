#ifndef ALTI_CLIBCRYPTO_SHIM_H
#define ALTI_CLIBCRYPTO_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#endif
