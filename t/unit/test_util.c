/*
 * Helpers of the unit tests: guarded buffers, an independent base64url
 * decoder, key generation and PEM output with OpenSSL's own APIs, and
 * signature verification.
 */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "unit.h"


test_keys_t  keys;


unsigned char *
guarded_alloc(size_t size)
{
    unsigned char  *buf;

    buf = malloc(size + GUARD_LEN);
    assert_non_null(buf);

    memset(buf, GUARD_BYTE, size + GUARD_LEN);

    return buf;
}


void
guarded_check(const unsigned char *buf, size_t size)
{
    size_t  i;

    for (i = 0; i < GUARD_LEN; i++) {
        if (buf[size + i] != GUARD_BYTE) {
            fail_msg("buffer of %zu bytes overflowed: byte %zu past its end "
                     "is 0x%02x", size, i, buf[size + i]);
        }
    }
}


static int
b64url_value(int c)
{
    if (c >= 'A' && c <= 'Z') {
        return c - 'A';
    }

    if (c >= 'a' && c <= 'z') {
        return c - 'a' + 26;
    }

    if (c >= '0' && c <= '9') {
        return c - '0' + 52;
    }

    if (c == '-') {
        return 62;
    }

    if (c == '_') {
        return 63;
    }

    return -1;
}


long
b64url_decode(unsigned char *dst, size_t size, const char *src)
{
    int            v;
    size_t         i, len, n, bits;
    unsigned long  acc;

    len = strlen(src);

    /* 1 character left over never makes a byte: not base64 */
    if (len % 4 == 1) {
        return -1;
    }

    acc = 0;
    bits = 0;
    n = 0;

    for (i = 0; i < len; i++) {
        v = b64url_value((unsigned char) src[i]);
        if (v < 0) {
            return -1;
        }

        acc = (acc << 6) | (unsigned long) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;

            if (n == size) {
                return -1;
            }

            dst[n++] = (unsigned char) (acc >> bits);
            acc &= (1UL << bits) - 1;
        }
    }

    /* the unused low bits of the last character must be zero */
    if (acc != 0) {
        return -1;
    }

    return (long) n;
}


void
assert_b64url_alphabet(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (b64url_value((unsigned char) s[i]) < 0) {
            fail_msg("byte %zu of \"%s\" (0x%02x) is not base64url", i, s,
                     (unsigned char) s[i]);
        }
    }
}


EVP_PKEY *
gen_key(const char *type, const char *param, size_t bits)
{
    EVP_PKEY  *pkey;

    if (strcmp(type, "RSA") == 0) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", bits);

    } else if (strcmp(type, "EC") == 0) {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", param);

    } else {
        pkey = EVP_PKEY_Q_keygen(NULL, NULL, type);
    }

    assert_non_null(pkey);

    return pkey;
}


static X509 *
self_signed(EVP_PKEY *pkey)
{
    X509       *x509;
    X509_NAME  *name;

    x509 = X509_new();
    assert_non_null(x509);

    assert_int_equal(X509_set_version(x509, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x509), 1), 1);
    assert_non_null(X509_gmtime_adj(X509_getm_notBefore(x509), 0));
    assert_non_null(X509_gmtime_adj(X509_getm_notAfter(x509), 3600));
    assert_int_equal(X509_set_pubkey(x509, pkey), 1);

    name = X509_get_subject_name(x509);
    assert_int_equal(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                         (const unsigned char *) "unit test", -1, -1, 0), 1);
    assert_int_equal(X509_set_issuer_name(x509, name), 1);

    assert_true(X509_sign(x509, pkey,
                          EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519
                          ? NULL : EVP_sha256()) > 0);

    return x509;
}


char *
pem_of(EVP_PKEY *pkey, pem_form_t form, size_t *len)
{
    int         rc;
    BIO        *bio;
    X509       *x509;
    char       *data, *out;
    long        n;
    static unsigned char  pass[] = "unit-test-passphrase";

    bio = BIO_new(BIO_s_mem());
    assert_non_null(bio);

    switch (form) {

    case PEM_PKCS8:
        rc = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
        break;

    case PEM_TRADITIONAL:
        rc = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0,
                                                  NULL, NULL);
        break;

    case PEM_PKCS8_ENCRYPTED:
        rc = PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(),
                                           (char *) pass,
                                           (int) sizeof(pass) - 1,
                                           NULL, NULL);
        break;

    case PEM_TRADITIONAL_ENCRYPTED:
        rc = PEM_write_bio_PrivateKey_traditional(bio, pkey,
                                                  EVP_aes_256_cbc(), pass,
                                                  (int) sizeof(pass) - 1,
                                                  NULL, NULL);
        break;

    case PEM_PUBLIC:
        rc = PEM_write_bio_PUBKEY(bio, pkey);
        break;

    default: /* PEM_CERTIFICATE */
        x509 = self_signed(pkey);
        rc = PEM_write_bio_X509(bio, x509);
        X509_free(x509);
        break;
    }

    assert_int_equal(rc, 1);

    n = BIO_get_mem_data(bio, &data);
    assert_true(n > 0);

    /* not NUL-terminated on purpose: key_load takes a length */
    out = malloc((size_t) n);
    assert_non_null(out);
    memcpy(out, data, (size_t) n);

    BIO_free(bio);

    *len = (size_t) n;

    return out;
}


static BIGNUM *
bn_from_b64url(const char *s)
{
    long            n;
    BIGNUM         *bn;
    unsigned char   buf[4096];

    n = b64url_decode(buf, sizeof(buf), s);
    assert_true(n > 0);

    bn = BN_bin2bn(buf, (int) n, NULL);
    assert_non_null(bn);

    return bn;
}


EVP_PKEY *
rsa_public_from_b64url(const char *n, const char *e)
{
    BIGNUM          *bn, *be;
    EVP_PKEY        *pkey;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    bn = bn_from_b64url(n);
    be = bn_from_b64url(e);

    bld = OSSL_PARAM_BLD_new();
    assert_non_null(bld);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn),
                     1);
    assert_int_equal(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be),
                     1);

    params = OSSL_PARAM_BLD_to_param(bld);
    assert_non_null(params);

    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    assert_non_null(ctx);
    assert_int_equal(EVP_PKEY_fromdata_init(ctx), 1);

    pkey = NULL;
    assert_int_equal(EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY,
                                       params), 1);
    assert_non_null(pkey);

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);

    return pkey;
}


size_t
jose_to_der(const unsigned char *rs, unsigned char *der, size_t size)
{
    int             n;
    BIGNUM         *r, *s;
    ECDSA_SIG      *sig;
    unsigned char  *p;

    r = BN_bin2bn(rs, 32, NULL);
    s = BN_bin2bn(rs + 32, 32, NULL);
    assert_non_null(r);
    assert_non_null(s);

    sig = ECDSA_SIG_new();
    assert_non_null(sig);
    assert_int_equal(ECDSA_SIG_set0(sig, r, s), 1);

    n = i2d_ECDSA_SIG(sig, NULL);
    assert_true(n > 0 && (size_t) n <= size);

    p = der;
    assert_int_equal(i2d_ECDSA_SIG(sig, &p), n);

    ECDSA_SIG_free(sig);

    return (size_t) n;
}


int
verify(EVP_PKEY *pkey, const EVP_MD *md, const unsigned char *in,
    size_t len, const unsigned char *sig, size_t siglen)
{
    int          rc;
    EVP_MD_CTX  *ctx;

    ctx = EVP_MD_CTX_new();
    assert_non_null(ctx);

    assert_int_equal(EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey), 1);

    rc = EVP_DigestVerify(ctx, sig, siglen, in, len);

    EVP_MD_CTX_free(ctx);
    ERR_clear_error();

    return rc == 1;
}


int
in_child(int (*fn)(void *data), void *data, char *why, size_t size)
{
    int    status, rc;
    pid_t  pid;

    fflush(NULL);

    pid = fork();
    if (pid < 0) {
        snprintf(why, size, "fork() failed");
        return -1;
    }

    if (pid == 0) {
        /* cmocka's handlers would go on running the suite in the child */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        signal(SIGFPE, SIG_DFL);
        signal(SIGSYS, SIG_DFL);
        signal(SIGABRT, SIG_DFL);

        rc = fn(data);

        fflush(NULL);
        _exit(rc == 0 ? 0 : 100 + (rc & 0x7f));
    }

    if (waitpid(pid, &status, 0) != pid) {
        snprintf(why, size, "waitpid() failed");
        return -1;
    }

    if (WIFSIGNALED(status)) {
        snprintf(why, size, "killed by signal %d", WTERMSIG(status));
        return -1;
    }

    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        snprintf(why, size, WEXITSTATUS(status) >= 100
                            ? "check %d failed"
                            : "exit %d (a sanitizer report above?)",
                 WEXITSTATUS(status) >= 100 ? WEXITSTATUS(status) - 100
                                            : WEXITSTATUS(status));
        return -1;
    }

    return 0;
}


int
setup_keys(void **state)
{
    keys.rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);
    keys.p256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    keys.ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");

    if (keys.rsa2048 == NULL || keys.p256 == NULL || keys.ed25519 == NULL) {
        return -1;
    }

    *state = &keys;

    return 0;
}


int
teardown_keys(void **state)
{
    EVP_PKEY_free(keys.rsa2048);
    EVP_PKEY_free(keys.p256);
    EVP_PKEY_free(keys.ed25519);

    memset(&keys, 0, sizeof(keys));

    (void) state;

    return 0;
}
