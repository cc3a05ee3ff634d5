/*
 * ngx_http_stytch_tat_key_load(): the PEM forms accepted, and what is
 * refused with which reason.  Keys are generated here with OpenSSL's APIs
 * and written as PEM in each form.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include "unit.h"


#define PKCS8_HEADER        "-----BEGIN PRIVATE KEY-----"
#define PKCS8_ENC_HEADER    "-----BEGIN ENCRYPTED PRIVATE KEY-----"
#define RSA_HEADER          "-----BEGIN RSA PRIVATE KEY-----"
#define EC_HEADER           "-----BEGIN EC PRIVATE KEY-----"

/* the P-256 OID as "openssl ecparam -genkey" writes it before the key */
#define EC_PARAMS_P256                                                      \
    "-----BEGIN EC PARAMETERS-----\n"                                       \
    "BggqhkjOPQMBBw==\n"                                                    \
    "-----END EC PARAMETERS-----\n"


static int
starts_with(const char *pem, size_t len, const char *header)
{
    return len >= strlen(header) && memcmp(pem, header, strlen(header)) == 0;
}


/* loads pem and expects success with alg and the same public key */
static void
load_ok(const char *pem, size_t len, EVP_PKEY *orig, int expect_alg)
{
    int        alg;
    char       err[NGX_HTTP_STYTCH_TAT_ERR_LEN];
    EVP_PKEY  *pkey;

    alg = -1;
    pkey = NULL;
    strcpy(err, "untouched");

    if (ngx_http_stytch_tat_key_load((const unsigned char *) pem, len, &pkey,
                                     &alg, err)
        != 0)
    {
        fail_msg("key refused: %s", err);
    }

    assert_non_null(pkey);
    assert_int_equal(alg, expect_alg);
    assert_int_equal(ERR_peek_error(), 0);

    /* the private key itself: it can sign */
    if (orig != NULL) {
        assert_int_equal(EVP_PKEY_eq(pkey, orig), 1);
    }

    assert_int_equal(EVP_PKEY_get_base_id(pkey) == EVP_PKEY_RSA
                     || EVP_PKEY_get_base_id(pkey) == EVP_PKEY_EC
                     || EVP_PKEY_get_base_id(pkey) == EVP_PKEY_ED25519, 1);

    {
        size_t         siglen;
        unsigned char  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

        assert_int_equal(ngx_http_stytch_tat_sign(pkey, alg,
                             (const unsigned char *) "a.b", 3, sig, &siglen),
                         0);
        assert_int_equal(siglen, ngx_http_stytch_tat_sig_size(pkey, alg));
    }

    EVP_PKEY_free(pkey);
}


/* loads pem and expects a refusal whose reason contains want */
static void
load_refused(const char *pem, size_t len, const char *want)
{
    int        alg, rc;
    char       err[NGX_HTTP_STYTCH_TAT_ERR_LEN];
    EVP_PKEY  *pkey;

    alg = -1;
    pkey = (EVP_PKEY *) &alg;          /* must be reset to NULL */
    memset(err, 0, sizeof(err));

    rc = ngx_http_stytch_tat_key_load((const unsigned char *) pem, len,
                                      &pkey, &alg, err);

    assert_int_equal(rc, -1);
    assert_null(pkey);
    assert_true(err[0] != '\0');
    assert_true(strlen(err) < sizeof(err));

    if (strstr(err, want) == NULL) {
        fail_msg("error \"%s\" does not say \"%s\"", err, want);
    }

    /* no OpenSSL error left behind for nginx to log later */
    assert_int_equal(ERR_peek_error(), 0);
}


static void
form_ok(EVP_PKEY *pkey, pem_form_t form, const char *header, int alg)
{
    char    *pem;
    size_t   len;

    pem = pem_of(pkey, form, &len);
    assert_true(starts_with(pem, len, header));

    load_ok(pem, len, pkey, alg);

    free(pem);
}


static void
form_refused(EVP_PKEY *pkey, pem_form_t form, const char *want)
{
    char    *pem;
    size_t   len;

    pem = pem_of(pkey, form, &len);
    load_refused(pem, len, want);
    free(pem);
}


void
test_keyload_rsa_pkcs8(void **state)
{
    (void) state;

    form_ok(keys.rsa2048, PEM_PKCS8, PKCS8_HEADER,
            NGX_HTTP_STYTCH_TAT_ALG_RS256);
}


void
test_keyload_rsa_traditional(void **state)
{
    (void) state;

    form_ok(keys.rsa2048, PEM_TRADITIONAL, RSA_HEADER,
            NGX_HTTP_STYTCH_TAT_ALG_RS256);
}


void
test_keyload_rsa_small(void **state)
{
    EVP_PKEY  *pkey;

    (void) state;

    pkey = gen_key("RSA", NULL, 1024);
    form_refused(pkey, PEM_PKCS8, "bits");
    form_refused(pkey, PEM_PKCS8, "1024");
    form_refused(pkey, PEM_TRADITIONAL, "bits");
    EVP_PKEY_free(pkey);

    /* one bit short of the minimum */
    pkey = gen_key("RSA", NULL, 2047);
    assert_int_equal(EVP_PKEY_get_bits(pkey), 2047);
    form_refused(pkey, PEM_PKCS8, "2047 bits");
    EVP_PKEY_free(pkey);
}


void
test_keyload_p256_pkcs8(void **state)
{
    (void) state;

    form_ok(keys.p256, PEM_PKCS8, PKCS8_HEADER,
            NGX_HTTP_STYTCH_TAT_ALG_ES256);
}


void
test_keyload_p256_traditional(void **state)
{
    (void) state;

    form_ok(keys.p256, PEM_TRADITIONAL, EC_HEADER,
            NGX_HTTP_STYTCH_TAT_ALG_ES256);
}


void
test_keyload_p256_with_params(void **state)
{
    char    *pem, *all;
    size_t   len, plen;

    (void) state;

    /* "openssl ecparam -genkey" output: EC PARAMETERS, then the key */

    pem = pem_of(keys.p256, PEM_TRADITIONAL, &len);

    plen = strlen(EC_PARAMS_P256);
    all = malloc(plen + len);
    assert_non_null(all);
    memcpy(all, EC_PARAMS_P256, plen);
    memcpy(all + plen, pem, len);

    load_ok(all, plen + len, keys.p256, NGX_HTTP_STYTCH_TAT_ALG_ES256);

    free(all);
    free(pem);
}


void
test_keyload_other_curves(void **state)
{
    EVP_PKEY  *pkey;

    (void) state;

    pkey = gen_key("EC", "P-384", 0);
    form_refused(pkey, PEM_PKCS8, "secp384r1");
    form_refused(pkey, PEM_TRADITIONAL, "secp384r1");
    form_refused(pkey, PEM_PKCS8, "P-256");
    EVP_PKEY_free(pkey);

    /* 256 bits, but not P-256 */
    pkey = gen_key("EC", "secp256k1", 0);
    form_refused(pkey, PEM_PKCS8, "secp256k1");
    EVP_PKEY_free(pkey);
}


void
test_keyload_ed25519(void **state)
{
    (void) state;

    form_ok(keys.ed25519, PEM_PKCS8, PKCS8_HEADER,
            NGX_HTTP_STYTCH_TAT_ALG_EDDSA);
}


void
test_keyload_unsupported_types(void **state)
{
    EVP_PKEY  *pkey;

    (void) state;

    pkey = gen_key("ED448", NULL, 0);
    form_refused(pkey, PEM_PKCS8, "unsupported key type");
    EVP_PKEY_free(pkey);

    pkey = gen_key("X25519", NULL, 0);
    form_refused(pkey, PEM_PKCS8, "unsupported key type");
    EVP_PKEY_free(pkey);
}


void
test_keyload_encrypted(void **state)
{
    (void) state;

    form_refused(keys.rsa2048, PEM_PKCS8_ENCRYPTED, "encrypted");
    form_refused(keys.p256, PEM_PKCS8_ENCRYPTED, "encrypted");
    form_refused(keys.ed25519, PEM_PKCS8_ENCRYPTED, "encrypted");

    /* the legacy "Proc-Type: 4,ENCRYPTED" form */
    form_refused(keys.rsa2048, PEM_TRADITIONAL_ENCRYPTED, "encrypted");
    form_refused(keys.p256, PEM_TRADITIONAL_ENCRYPTED, "encrypted");
}


void
test_keyload_public(void **state)
{
    (void) state;

    form_refused(keys.rsa2048, PEM_PUBLIC, "public");
    form_refused(keys.p256, PEM_PUBLIC, "public");
    form_refused(keys.ed25519, PEM_PUBLIC, "public");
}


void
test_keyload_certificate(void **state)
{
    (void) state;

    form_refused(keys.p256, PEM_CERTIFICATE, "certificate");
}


void
test_keyload_garbage(void **state)
{
    char    *pem;
    size_t   len;
    static const char  text[] = "this is not a key\n";
    static const char  bad_base64[] =
        "-----BEGIN PRIVATE KEY-----\n"
        "!!!!not base64!!!!\n"
        "-----END PRIVATE KEY-----\n";
    static const char  binary[] = { 0x30, (char) 0x82, 0x01, 0x00, 0x02 };

    (void) state;

    load_refused(text, sizeof(text) - 1, "not a PEM private key");
    load_refused(bad_base64, sizeof(bad_base64) - 1, "not a PEM private key");
    load_refused(binary, sizeof(binary), "not a PEM private key");

    /* a PEM key cut in half */
    pem = pem_of(keys.rsa2048, PEM_PKCS8, &len);
    load_refused(pem, len / 2, "not a PEM private key");
    free(pem);
}


void
test_keyload_empty(void **state)
{
    (void) state;

    load_refused("", 0, "empty");

    /* only white space */
    load_refused("\n\n", 2, "not a PEM private key");
}
