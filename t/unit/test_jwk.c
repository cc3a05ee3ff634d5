/*
 * Public JWKs, RFC 7638 thumbprints and the JWS header: RFC 7638 section
 * 3.1 and RFC 8037 appendix A vectors, then the JWK of each key type.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>

#include <jansson.h>

#include "unit.h"


/* RFC 7638 section 3.1 */
static const char  rfc7638_n[] =
    "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aP"
    "FFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl9"
    "3lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdA"
    "ZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3"
    "XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
static const char  rfc7638_e[] = "AQAB";
static const char  rfc7638_thumbprint[] =
    "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs";

/* RFC 8037 appendix A.1 to A.4 */
static const char  rfc8037_d[] = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
static const char  rfc8037_x[] = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
static const char  rfc8037_thumbprint[] =
    "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";
static const char  rfc8037_input[] =
    "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
static const char  rfc8037_sig[] =
    "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7"
    "sVvpAr_MuM0KAg";


static EVP_PKEY *
rfc8037_key(void)
{
    long            n;
    EVP_PKEY       *pkey;
    unsigned char   d[32], x[32], pub[32];
    size_t          len;

    n = b64url_decode(d, sizeof(d), rfc8037_d);
    assert_int_equal(n, 32);

    pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, d, 32);
    assert_non_null(pkey);

    /* A.2: the public key derived from d is x */
    n = b64url_decode(x, sizeof(x), rfc8037_x);
    assert_int_equal(n, 32);

    len = sizeof(pub);
    assert_int_equal(EVP_PKEY_get_raw_public_key(pkey, pub, &len), 1);
    assert_int_equal(len, 32);
    assert_memory_equal(pub, x, 32);

    return pkey;
}


static json_t *
json_of(const char *json)
{
    json_t        *v;
    json_error_t   error;

    v = json_loads(json, JSON_REJECT_DUPLICATES, &error);
    if (v == NULL) {
        fail_msg("not JSON: %s: \"%s\"", error.text, json);
    }

    assert_true(json_is_object(v));

    return v;
}


static const char *
member(json_t *obj, const char *name)
{
    json_t  *v;

    v = json_object_get(obj, name);
    if (v == NULL || !json_is_string(v)) {
        fail_msg("no string member \"%s\"", name);
    }

    return json_string_value(v);
}


/* the decoded base64url member equals the key's big number parameter */
static void
assert_member_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, size_t len)
{
    long            n;
    BIGNUM         *bn;
    unsigned char   raw[1100], expect[1100];

    n = b64url_decode(raw, sizeof(raw), member(obj, name));
    assert_true(n > 0);

    bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(pkey, param, &bn), 1);

    if (len == 0) {
        /* RFC 7518 6.3.1: minimal octets */
        len = (size_t) BN_num_bytes(bn);
        assert_true(raw[0] != 0);
    }

    assert_int_equal((size_t) n, len);
    assert_int_equal(BN_bn2binpad(bn, expect, (int) len), (int) len);
    assert_memory_equal(raw, expect, len);

    BN_free(bn);
}


void
test_alg_name(void **state)
{
    (void) state;

    assert_string_equal(ngx_http_stytch_tat_alg_name(
                            NGX_HTTP_STYTCH_TAT_ALG_RS256), "RS256");
    assert_string_equal(ngx_http_stytch_tat_alg_name(
                            NGX_HTTP_STYTCH_TAT_ALG_ES256), "ES256");
    assert_string_equal(ngx_http_stytch_tat_alg_name(
                            NGX_HTTP_STYTCH_TAT_ALG_EDDSA), "EdDSA");
    assert_string_equal(ngx_http_stytch_tat_alg_name(0), "none");
    assert_string_equal(ngx_http_stytch_tat_alg_name(42), "none");
}


void
test_rfc7638_rsa_thumbprint(void **state)
{
    char       out[64];
    EVP_PKEY  *pkey;

    (void) state;

    pkey = rsa_public_from_b64url(rfc7638_n, rfc7638_e);

    memset(out, 0, sizeof(out));
    assert_int_equal(ngx_http_stytch_tat_key_thumbprint(pkey,
                         NGX_HTTP_STYTCH_TAT_ALG_RS256, out), 0);
    assert_string_equal(out, rfc7638_thumbprint);

    EVP_PKEY_free(pkey);
}


void
test_rfc7638_rsa_public_members(void **state)
{
    char      *json;
    json_t    *obj;
    EVP_PKEY  *pkey;

    (void) state;

    pkey = rsa_public_from_b64url(rfc7638_n, rfc7638_e);

    obj = ngx_http_stytch_tat_key_public_members(pkey,
                                            NGX_HTTP_STYTCH_TAT_ALG_RS256);
    assert_non_null(obj);

    /* RFC 7638 3.1: the exact string that is hashed */
    json = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    assert_non_null(json);
    assert_int_equal(json_object_size(obj), 3);
    assert_string_equal(member(obj, "kty"), "RSA");
    assert_string_equal(member(obj, "n"), rfc7638_n);
    assert_string_equal(member(obj, "e"), rfc7638_e);

    assert_int_equal(strncmp(json, "{\"e\":\"AQAB\",\"kty\":\"RSA\",\"n\":\"0vx7",
                             32), 0);

    free(json);
    json_decref(obj);

    /* the same key as a JWK */
    json = ngx_http_stytch_tat_key_jwk(pkey, NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                       "2011-04-29");
    assert_non_null(json);

    obj = json_of(json);
    assert_string_equal(member(obj, "n"), rfc7638_n);
    assert_string_equal(member(obj, "e"), "AQAB");
    assert_string_equal(member(obj, "kid"), "2011-04-29");
    assert_string_equal(member(obj, "alg"), "RS256");
    assert_string_equal(member(obj, "use"), "sig");

    json_decref(obj);
    free(json);
    EVP_PKEY_free(pkey);
}


void
test_rfc8037_ed25519_thumbprint(void **state)
{
    char       out[64], *json;
    json_t    *obj;
    EVP_PKEY  *pkey;

    (void) state;

    pkey = rfc8037_key();

    /* A.3 */
    memset(out, 0, sizeof(out));
    assert_int_equal(ngx_http_stytch_tat_key_thumbprint(pkey,
                         NGX_HTTP_STYTCH_TAT_ALG_EDDSA, out), 0);
    assert_string_equal(out, rfc8037_thumbprint);

    /* A.2: the public JWK */
    json = ngx_http_stytch_tat_key_jwk(pkey, NGX_HTTP_STYTCH_TAT_ALG_EDDSA,
                                       rfc8037_thumbprint);
    assert_non_null(json);

    obj = json_of(json);
    assert_int_equal(json_object_size(obj), 6);
    assert_string_equal(member(obj, "kty"), "OKP");
    assert_string_equal(member(obj, "crv"), "Ed25519");
    assert_string_equal(member(obj, "x"), rfc8037_x);
    assert_string_equal(member(obj, "kid"), rfc8037_thumbprint);
    assert_string_equal(member(obj, "alg"), "EdDSA");
    assert_string_equal(member(obj, "use"), "sig");
    assert_null(json_object_get(obj, "d"));

    json_decref(obj);
    free(json);
    EVP_PKEY_free(pkey);
}


void
test_rfc8037_ed25519_signature(void **state)
{
    size_t         siglen;
    EVP_PKEY      *pkey;
    unsigned char  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char  b64[ngx_http_stytch_tat_b64url_len(64)];

    (void) state;

    pkey = rfc8037_key();

    /* A.4: Ed25519 is deterministic, so the signature is the RFC's */
    siglen = 0;
    assert_int_equal(ngx_http_stytch_tat_sign(pkey,
                         NGX_HTTP_STYTCH_TAT_ALG_EDDSA,
                         (const unsigned char *) rfc8037_input,
                         strlen(rfc8037_input), sig, &siglen), 0);
    assert_int_equal(siglen, 64);

    assert_int_equal(ngx_http_stytch_tat_b64url_encode(b64, sig, siglen),
                     86);
    assert_string_equal((char *) b64, rfc8037_sig);

    /* A.5 */
    assert_true(verify(pkey, NULL, (const unsigned char *) rfc8037_input,
                       strlen(rfc8037_input), sig, siglen));

    sig[10] ^= 0x01;
    assert_false(verify(pkey, NULL, (const unsigned char *) rfc8037_input,
                        strlen(rfc8037_input), sig, siglen));

    EVP_PKEY_free(pkey);
}


void
test_rfc8037_ed25519_signer(void **state)
{
    int                            i;
    size_t                         siglen;
    EVP_PKEY                      *pkey;
    unsigned char                  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char                  b64[ngx_http_stytch_tat_b64url_len(64)];
    ngx_http_stytch_tat_signer_t  *signer;

    (void) state;

    pkey = rfc8037_key();

    signer = ngx_http_stytch_tat_signer_new(pkey,
                                            NGX_HTTP_STYTCH_TAT_ALG_EDDSA);
    assert_non_null(signer);

    /* A.4 from the prepared signer, again and again */
    for (i = 0; i < 3; i++) {
        siglen = 0;
        if (ngx_http_stytch_tat_signer_sign(signer,
                (const unsigned char *) rfc8037_input,
                strlen(rfc8037_input), sig, &siglen)
            != 0)
        {
            ngx_http_stytch_tat_signer_free(signer);
            EVP_PKEY_free(pkey);
            fail_msg("signature %d of one EdDSA signer failed", i + 1);
        }

        assert_int_equal(siglen, 64);
        ngx_http_stytch_tat_b64url_encode(b64, sig, siglen);
        assert_string_equal((char *) b64, rfc8037_sig);
    }

    ngx_http_stytch_tat_signer_free(signer);
    EVP_PKEY_free(pkey);
}


/*
 * ngx_http_stytch_tat_jose.h promises that the thumbprint fits "a buffer of
 * at least 44 bytes" (43 characters and the NUL).
 */

void
test_thumbprint_fits_44_bytes(void **state)
{
    size_t          i;
    EVP_PKEY       *pkeys[3];
    unsigned char   out[44 + GUARD_LEN];
    static const int  algs[3] = {
        NGX_HTTP_STYTCH_TAT_ALG_RS256,
        NGX_HTTP_STYTCH_TAT_ALG_ES256,
        NGX_HTTP_STYTCH_TAT_ALG_EDDSA
    };

    (void) state;

    pkeys[0] = keys.rsa2048;
    pkeys[1] = keys.p256;
    pkeys[2] = keys.ed25519;

    for (i = 0; i < 3; i++) {
        memset(out, GUARD_BYTE, sizeof(out));

        assert_int_equal(ngx_http_stytch_tat_key_thumbprint(pkeys[i],
                             algs[i], (char *) out), 0);
        assert_int_equal(strlen((char *) out), 43);
        assert_b64url_alphabet((char *) out, 43);
        guarded_check(out, 44);
    }
}


/* RFC 7638 3.2 for EC, computed here independently of the module */

void
test_thumbprint_ec_independent(void **state)
{
    char           canon[256], out[64], expect[64];
    json_t        *obj;
    unsigned int   mdlen;
    unsigned char  md[EVP_MAX_MD_SIZE];
    char          *json;

    (void) state;

    json = ngx_http_stytch_tat_key_jwk(keys.p256,
                                       NGX_HTTP_STYTCH_TAT_ALG_ES256, "k");
    assert_non_null(json);
    obj = json_of(json);

    snprintf(canon, sizeof(canon),
             "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}",
             member(obj, "x"), member(obj, "y"));

    assert_int_equal(EVP_Digest(canon, strlen(canon), md, &mdlen,
                                EVP_sha256(), NULL), 1);
    assert_int_equal(mdlen, 32);
    ngx_http_stytch_tat_b64url_encode((unsigned char *) expect, md, mdlen);

    assert_int_equal(ngx_http_stytch_tat_key_thumbprint(keys.p256,
                         NGX_HTTP_STYTCH_TAT_ALG_ES256, out), 0);
    assert_string_equal(out, expect);

    json_decref(obj);
    free(json);
}


void
test_jwk_rsa(void **state)
{
    char    *json;
    json_t  *obj;

    (void) state;

    json = ngx_http_stytch_tat_key_jwk(keys.rsa2048,
                                       NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                       "rsa-kid");
    assert_non_null(json);

    /* compact: no white space at all */
    assert_null(strpbrk(json, " \t\r\n"));

    obj = json_of(json);
    assert_int_equal(json_object_size(obj), 6);
    assert_string_equal(member(obj, "kty"), "RSA");
    assert_string_equal(member(obj, "kid"), "rsa-kid");
    assert_string_equal(member(obj, "alg"), "RS256");
    assert_string_equal(member(obj, "use"), "sig");
    assert_string_equal(member(obj, "e"), "AQAB");
    assert_int_equal(strlen(member(obj, "n")), 342);      /* 256 bytes */
    assert_member_bn(obj, "n", keys.rsa2048, OSSL_PKEY_PARAM_RSA_N, 0);

    /* no private member may leak */
    assert_null(json_object_get(obj, "d"));
    assert_null(json_object_get(obj, "p"));
    assert_null(json_object_get(obj, "q"));

    json_decref(obj);
    free(json);
}


static void
check_ec_jwk(EVP_PKEY *pkey)
{
    char    *json;
    json_t  *obj;

    json = ngx_http_stytch_tat_key_jwk(pkey, NGX_HTTP_STYTCH_TAT_ALG_ES256,
                                       "ec-kid");
    assert_non_null(json);

    obj = json_of(json);
    assert_int_equal(json_object_size(obj), 7);
    assert_string_equal(member(obj, "kty"), "EC");
    assert_string_equal(member(obj, "crv"), "P-256");
    assert_string_equal(member(obj, "kid"), "ec-kid");
    assert_string_equal(member(obj, "alg"), "ES256");
    assert_string_equal(member(obj, "use"), "sig");

    /* RFC 7518 6.2.1.2: the full 32 bytes, leading zeros kept */
    assert_int_equal(strlen(member(obj, "x")), 43);
    assert_int_equal(strlen(member(obj, "y")), 43);
    assert_member_bn(obj, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32);
    assert_member_bn(obj, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);

    assert_null(json_object_get(obj, "d"));

    json_decref(obj);
    free(json);
}


void
test_jwk_ec(void **state)
{
    (void) state;

    check_ec_jwk(keys.p256);
}


void
test_jwk_ec_coordinates_padded(void **state)
{
    int        i, short_x, short_y;
    BIGNUM    *x, *y;
    EVP_PKEY  *pkey;

    (void) state;

    /*
     * About 1 key in 256 has x under 2^248, and as many y: find one of
     * each, so both coordinates are seen padded with a leading zero.
     */

    short_x = 0;
    short_y = 0;

    for (i = 0; i < 30000 && !(short_x && short_y); i++) {
        pkey = gen_key("EC", "P-256", 0);

        x = NULL;
        y = NULL;
        assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X,
                                               &x), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y,
                                               &y), 1);

        if ((BN_num_bytes(x) < 32 && !short_x)
            || (BN_num_bytes(y) < 32 && !short_y))
        {
            short_x |= BN_num_bytes(x) < 32;
            short_y |= BN_num_bytes(y) < 32;
            check_ec_jwk(pkey);
        }

        BN_free(x);
        BN_free(y);
        EVP_PKEY_free(pkey);
    }

    assert_true(short_x);
    assert_true(short_y);
}


void
test_jwk_okp(void **state)
{
    char           *json;
    json_t         *obj;
    long            n;
    size_t          len;
    unsigned char   x[64], pub[32];

    (void) state;

    json = ngx_http_stytch_tat_key_jwk(keys.ed25519,
                                       NGX_HTTP_STYTCH_TAT_ALG_EDDSA,
                                       "ed-kid");
    assert_non_null(json);

    obj = json_of(json);
    assert_int_equal(json_object_size(obj), 6);
    assert_string_equal(member(obj, "kty"), "OKP");
    assert_string_equal(member(obj, "crv"), "Ed25519");
    assert_string_equal(member(obj, "kid"), "ed-kid");
    assert_string_equal(member(obj, "alg"), "EdDSA");
    assert_string_equal(member(obj, "use"), "sig");
    assert_int_equal(strlen(member(obj, "x")), 43);

    n = b64url_decode(x, sizeof(x), member(obj, "x"));
    assert_int_equal(n, 32);

    len = sizeof(pub);
    assert_int_equal(EVP_PKEY_get_raw_public_key(keys.ed25519, pub, &len), 1);
    assert_memory_equal(x, pub, 32);

    assert_null(json_object_get(obj, "d"));

    json_decref(obj);
    free(json);
}


void
test_jwk_bad_alg(void **state)
{
    char  out[64];

    (void) state;

    /* an alg that is not the key's yields nothing, and no OpenSSL noise */
    assert_null(ngx_http_stytch_tat_key_public_members(keys.p256, 0));
    assert_null(ngx_http_stytch_tat_key_jwk(keys.p256, 0, "k"));
    assert_int_equal(ngx_http_stytch_tat_key_thumbprint(keys.p256, 0, out),
                     -1);
    assert_null(ngx_http_stytch_tat_key_jwk(keys.ed25519,
                                            NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                            "k"));
    assert_null(ngx_http_stytch_tat_key_jwk(keys.rsa2048,
                                            NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                            NULL));
    ERR_clear_error();
}


/*
 * ngx_http_stytch_tat_set_bn() has a 1024-byte buffer and checks the size
 * of the number only after BN_bn2bin() wrote it: a modulus over 8192 bits
 * must be refused (-1 / NULL), not written past the buffer.  key_load()
 * refuses such keys, but the JWK functions take any EVP_PKEY.  Run in a
 * child, as the failure mode is stack corruption.
 */

static int
jwk_of_big_rsa(void *data)
{
    char  out[64];

    if (ngx_http_stytch_tat_key_thumbprint(data,
            NGX_HTTP_STYTCH_TAT_ALG_RS256, out) != -1)
    {
        return 1;
    }

    if (ngx_http_stytch_tat_key_jwk(data, NGX_HTTP_STYTCH_TAT_ALG_RS256, "k")
        != NULL)
    {
        return 2;
    }

    if (ngx_http_stytch_tat_key_public_members(data,
            NGX_HTTP_STYTCH_TAT_ALG_RS256) != NULL)
    {
        return 3;
    }

    return 0;
}


void
test_jwk_rsa_over_8192_bits(void **state)
{
    int             rc;
    char            why[128];
    size_t          i;
    EVP_PKEY       *pkey;
    unsigned char   n[1536];
    char            b64[ngx_http_stytch_tat_b64url_len(1536)];

    (void) state;

    /* 12288 bits: the value matters not, only its size */
    for (i = 0; i < sizeof(n); i++) {
        n[i] = (unsigned char) (i * 7 + 1);
    }
    n[0] = 0xc1;
    n[sizeof(n) - 1] |= 1;

    ngx_http_stytch_tat_b64url_encode((unsigned char *) b64, n, sizeof(n));
    pkey = rsa_public_from_b64url(b64, "AQAB");

    rc = in_child(jwk_of_big_rsa, pkey, why, sizeof(why));

    EVP_PKEY_free(pkey);

    if (rc != 0) {
        fail_msg("JWK of a 12288-bit RSA key: %s; "
                 "ngx_http_stytch_tat_set_bn() writes 1536 bytes into its "
                 "1024-byte buffer before it checks the size", why);
    }
}


static void
check_header(int alg, const char *kid, const char *expect)
{
    long            n;
    char           *b64;
    unsigned char   json[512];

    b64 = ngx_http_stytch_tat_jws_header(alg, kid);
    assert_non_null(b64);
    assert_b64url_alphabet(b64, strlen(b64));

    n = b64url_decode(json, sizeof(json) - 1, b64);
    assert_true(n > 0);
    json[n] = '\0';

    assert_string_equal((char *) json, expect);

    free(b64);
}


void
test_jws_header(void **state)
{
    char    *b64;
    json_t  *obj;

    (void) state;

    check_header(NGX_HTTP_STYTCH_TAT_ALG_RS256, "k1",
                 "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"k1\"}");
    check_header(NGX_HTTP_STYTCH_TAT_ALG_ES256, rfc8037_thumbprint,
                 "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\""
                 "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k\"}");
    check_header(NGX_HTTP_STYTCH_TAT_ALG_EDDSA, "ed",
                 "{\"alg\":\"EdDSA\",\"typ\":\"JWT\",\"kid\":\"ed\"}");

    /* the exact bytes of the ES256 header of kid "k1" */
    b64 = ngx_http_stytch_tat_jws_header(NGX_HTTP_STYTCH_TAT_ALG_ES256, "k1");
    assert_non_null(b64);
    assert_string_equal(b64,
        "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0");
    free(b64);

    assert_null(ngx_http_stytch_tat_jws_header(NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                               NULL));

    /* and it is a JSON object with exactly those members */
    b64 = ngx_http_stytch_tat_jws_header(NGX_HTTP_STYTCH_TAT_ALG_RS256, "x");
    assert_non_null(b64);
    {
        unsigned char  json[256];
        long           n;

        n = b64url_decode(json, sizeof(json) - 1, b64);
        assert_true(n > 0);
        json[n] = '\0';

        obj = json_of((char *) json);
        assert_int_equal(json_object_size(obj), 3);
        assert_string_equal(member(obj, "alg"), "RS256");
        assert_string_equal(member(obj, "typ"), "JWT");
        assert_string_equal(member(obj, "kid"), "x");
        json_decref(obj);
    }
    free(b64);
}


void
test_jws_header_escapes_kid(void **state)
{
    (void) state;

    check_header(NGX_HTTP_STYTCH_TAT_ALG_ES256, "a\"b\\c",
                 "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"a\\\"b\\\\c\"}");
}
