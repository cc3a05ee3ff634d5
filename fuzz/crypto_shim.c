/*
 * Sanitizer-aware stand-ins for the libcrypto functions the module's pure
 * sources hand output buffers to.
 *
 * libcrypto is not instrumented: when it writes past a buffer of the
 * module (a stack array too small for a BIGNUM, say), AddressSanitizer sees
 * nothing.  Each stand-in first writes, from instrumented code, every byte
 * the real function is allowed to write by its contract, so a buffer that
 * is too small is reported as a buffer overflow in the module's frame; then
 * it calls the real function.
 *
 * Linked into the fuzz targets only: the executable's definitions win over
 * libcrypto's for the calls the module's objects make.
 */

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/evp.h>


#define FUZZ_REAL(name)                                                      \
    static __typeof__(name) *real;                                           \
    if (real == NULL) {                                                      \
        real = (__typeof__(name) *) dlsym(RTLD_NEXT, #name);                 \
        if (real == NULL) {                                                  \
            abort();                                                         \
        }                                                                    \
    }


/* a write of n bytes at p, checked by ASan's memset interceptor */
static void
fuzz_claim(void *p, size_t n)
{
    if (p != NULL && n > 0) {
        memset(p, 0xa5, n);
    }
}


int
BN_bn2bin(const BIGNUM *a, unsigned char *to)
{
    FUZZ_REAL(BN_bn2bin);

    fuzz_claim(to, (size_t) BN_num_bytes(a));

    return real(a, to);
}


int
BN_bn2binpad(const BIGNUM *a, unsigned char *to, int tolen)
{
    FUZZ_REAL(BN_bn2binpad);

    if (tolen > 0 && BN_num_bytes(a) <= tolen) {
        fuzz_claim(to, (size_t) tolen);
    }

    return real(a, to, tolen);
}


int
EVP_EncodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    FUZZ_REAL(EVP_EncodeBlock);

    if (n >= 0) {
        /* 4 characters per 3 bytes and a NUL */
        fuzz_claim(t, (size_t) (n + 2) / 3 * 4 + 1);
        /* and every input byte is read */
        if (n > 0) {
            volatile unsigned char c = f[0];
            (void) c;
            c = f[n - 1];
        }
    }

    return real(t, f, n);
}


int
EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sigret, size_t *siglen,
    const unsigned char *tbs, size_t tbslen)
{
    FUZZ_REAL(EVP_DigestSign);

    /* *siglen is the room the caller claims to have */
    if (sigret != NULL && siglen != NULL) {
        fuzz_claim(sigret, *siglen);
    }

    if (tbs != NULL && tbslen > 0) {
        volatile unsigned char c = tbs[0];
        (void) c;
        c = tbs[tbslen - 1];
    }

    return real(ctx, sigret, siglen, tbs, tbslen);
}


int
EVP_Digest(const void *data, size_t count, unsigned char *md,
    unsigned int *size, const EVP_MD *type, ENGINE *impl)
{
    FUZZ_REAL(EVP_Digest);

    if (type != NULL && EVP_MD_get_size(type) > 0) {
        fuzz_claim(md, (size_t) EVP_MD_get_size(type));
    }

    if (data != NULL && count > 0) {
        volatile unsigned char c = ((const unsigned char *) data)[0];
        (void) c;
        c = ((const unsigned char *) data)[count - 1];
    }

    return real(data, count, md, size, type, impl);
}


int
EVP_PKEY_get_raw_public_key(const EVP_PKEY *pkey, unsigned char *pub,
    size_t *len)
{
    FUZZ_REAL(EVP_PKEY_get_raw_public_key);

    if (pub != NULL && len != NULL) {
        fuzz_claim(pub, *len);
    }

    return real(pkey, pub, len);
}


int
EVP_PKEY_get_utf8_string_param(const EVP_PKEY *pkey, const char *key_name,
    char *str, size_t max_buf_sz, size_t *out_sz)
{
    FUZZ_REAL(EVP_PKEY_get_utf8_string_param);

    fuzz_claim(str, max_buf_sz);

    return real(pkey, key_name, str, max_buf_sz, out_sz);
}


int
EVP_PKEY_sign(EVP_PKEY_CTX *ctx, unsigned char *sig, size_t *siglen,
    const unsigned char *tbs, size_t tbslen)
{
    FUZZ_REAL(EVP_PKEY_sign);

    if (sig != NULL && siglen != NULL) {
        fuzz_claim(sig, *siglen);
    }

    if (tbs != NULL && tbslen > 0) {
        volatile unsigned char c = tbs[0];
        (void) c;
        c = tbs[tbslen - 1];
    }

    return real(ctx, sig, siglen, tbs, tbslen);
}


int
EVP_DecodeBlock(unsigned char *t, const unsigned char *f, int n)
{
    FUZZ_REAL(EVP_DecodeBlock);

    if (n > 0) {
        /* at most 3 bytes per 4 characters, and every character is read */
        fuzz_claim(t, (size_t) n / 4 * 3);
        volatile unsigned char c = f[0];
        (void) c;
        c = f[n - 1];
    }

    return real(t, f, n);
}
