/*
 * Stytch's session JWKS parsed into a key set: see
 * ngx_http_stytch_tat_verify.h.  Every key that Stytch's SDK (jose) would
 * not use is skipped, with why; a kid that two usable keys share is kept
 * as ambiguous.  No nginx headers here; OpenSSL's EVP API for the keys,
 * jansson for the JSON.
 */


#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_verify.h"

static BIGNUM *ngx_http_stytch_tat_verify_bn(json_t *jwk, const char *name);
static EVP_PKEY *ngx_http_stytch_tat_verify_rsa(BIGNUM *n, BIGNUM *e);
static int ngx_http_stytch_tat_verify_key_use(json_t *jwk,
    const char **why);
static EVP_PKEY *ngx_http_stytch_tat_verify_key_rsa(json_t *jwk,
    const char **why);
static int ngx_http_stytch_tat_verify_key_add(
    ngx_http_stytch_tat_verify_keys_t *keys, json_t *jwk, const char **why);


/* a JWK member as a positive BIGNUM, from strict base64url */

static BIGNUM *
ngx_http_stytch_tat_verify_bn(json_t *jwk, const char *name)
{
    BIGNUM                             *bn;
    const char                         *s;
    ngx_http_stytch_tat_verify_part_t   raw;

    s = json_string_value(json_object_get(jwk, name));

    if (s == NULL || s[0] == '\0'
        || ngx_http_stytch_tat_verify_part(s, strlen(s), &raw) != 0)
    {
        return NULL;
    }

    /* at most 48 KB from a 64 KB document: the caller checks the bits */
    bn = BN_bin2bn(raw.data, (int) raw.len, NULL);

    free(raw.data);

    return bn;
}


static EVP_PKEY *
ngx_http_stytch_tat_verify_rsa(BIGNUM *n, BIGNUM *e)
{
    EVP_PKEY        *pkey;
    OSSL_PARAM      *params;
    EVP_PKEY_CTX    *ctx;
    OSSL_PARAM_BLD  *bld;

    pkey = NULL;
    params = NULL;
    ctx = NULL;

    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        return NULL;
    }

    if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1
        || OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
    {
        goto done;
    }

    params = OSSL_PARAM_BLD_to_param(bld);
    ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);

    if (params == NULL || ctx == NULL
        || EVP_PKEY_fromdata_init(ctx) != 1
        || EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
    {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }

done:

    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);

    return pkey;
}


/*
 * A JWK for RS256 signatures, as jose takes one: an object, kty "RSA",
 * alg and use optional but right when present, key_ops with "verify".
 */

static int
ngx_http_stytch_tat_verify_key_use(json_t *jwk, const char **why)
{
    int          found;
    size_t       i;
    json_t      *ops, *op;
    const char  *kty, *alg, *use;

    if (!json_is_object(jwk)) {
        *why = "a key that is not a JSON object";
        return -1;
    }

    kty = json_string_value(json_object_get(jwk, "kty"));
    alg = json_string_value(json_object_get(jwk, "alg"));
    use = json_string_value(json_object_get(jwk, "use"));

    if (kty == NULL || strcmp(kty, "RSA") != 0) {
        *why = "a key that is not RSA";
        return -1;
    }

    /* alg and use are optional in a JWK (RFC 7517 4.2, 4.4) */

    if ((json_object_get(jwk, "alg") != NULL
         && (alg == NULL || strcmp(alg, "RS256") != 0))
        || (json_object_get(jwk, "use") != NULL
            && (use == NULL || strcmp(use, "sig") != 0)))
    {
        *why = "a key not for RS256 signatures";
        return -1;
    }

    /* RFC 7517 4.3: jose passes over a key not for "verify" */

    ops = json_object_get(jwk, "key_ops");

    if (ops != NULL) {
        found = 0;

        json_array_foreach(ops, i, op) {
            if (json_is_string(op) && strcmp(json_string_value(op), "verify")
                                      == 0)
            {
                found = 1;
            }
        }

        if (!json_is_array(ops) || !found) {
            *why = "a key whose key_ops exclude \"verify\"";
            return -1;
        }
    }

    return 0;
}


/* the JWK's RSA public key, if its n and e make a sound one; or NULL */

static EVP_PKEY *
ngx_http_stytch_tat_verify_key_rsa(json_t *jwk, const char **why)
{
    int        bits;
    BIGNUM    *n, *e;
    EVP_PKEY  *pkey;

    n = ngx_http_stytch_tat_verify_bn(jwk, "n");
    e = ngx_http_stytch_tat_verify_bn(jwk, "e");

    pkey = NULL;

    if (n == NULL || e == NULL) {
        *why = "an RSA key whose n or e is not strict base64url";
        goto done;
    }

    bits = BN_num_bits(n);

    /* a small modulus is factorable; a huge one makes verifying slow */

    if (bits < NGX_HTTP_STYTCH_TAT_VERIFY_RSA_MIN_BITS
        || bits > NGX_HTTP_STYTCH_TAT_VERIFY_RSA_MAX_BITS)
    {
        *why = "an RSA key under 2048 or over 8192 bits";
        goto done;
    }

    /* OpenSSL refuses exponents over 64 bits with large moduli anyway */

    if (!BN_is_odd(e) || BN_is_one(e) || BN_num_bits(e) > 64) {
        *why = "an RSA key with an even, unit or over 64-bit exponent";
        goto done;
    }

    pkey = ngx_http_stytch_tat_verify_rsa(n, e);

    if (pkey == NULL) {
        *why = "an RSA key OpenSSL cannot use";
    }

done:

    BN_free(n);
    BN_free(e);
    ERR_clear_error();

    return pkey;
}


static int
ngx_http_stytch_tat_verify_key_add(ngx_http_stytch_tat_verify_keys_t *keys,
    json_t *jwk, const char **why)
{
    size_t                             i, kid_len;
    EVP_PKEY                          *pkey;
    const char                        *kid;
    ngx_http_stytch_tat_verify_key_t  *key;

    if (ngx_http_stytch_tat_verify_key_use(jwk, why) != 0) {
        return -1;
    }

    kid = ngx_http_stytch_tat_verify_string(json_object_get(jwk, "kid"),
                                            &kid_len);

    if (kid == NULL || kid_len > NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX) {
        *why = "a key without a kid, or with one over 128 bytes";
        return -1;
    }

    pkey = ngx_http_stytch_tat_verify_key_rsa(jwk, why);

    if (pkey == NULL) {
        return -1;
    }

    /*
     * Two usable keys under one kid: jose (and so Stytch's SDK) refuses
     * the tokens naming it rather than pick one, and so does the module.
     */

    for (i = 0; i < keys->nkeys; i++) {
        if (keys->key[i].kid_len == kid_len
            && memcmp(keys->key[i].kid, kid, kid_len) == 0)
        {
            keys->key[i].ambiguous = 1;
            *why = "two keys with one kid";
            EVP_PKEY_free(pkey);
            return -1;
        }
    }

    key = &keys->key[keys->nkeys++];
    key->pkey = pkey;
    key->kid_len = kid_len;
    memcpy(key->kid, kid, kid_len);
    key->kid[kid_len] = '\0';

    return 0;
}


int
ngx_http_stytch_tat_verify_keys_parse(const unsigned char *json, size_t len,
    ngx_http_stytch_tat_verify_keys_t **keys, const char **reason)
{
    size_t                              i;
    json_t                             *root, *array;
    const char                         *why, *first;
    ngx_http_stytch_tat_verify_keys_t  *set;

    *keys = NULL;
    *reason = NULL;

    if (json == NULL || len == 0) {
        *reason = "empty JWKS";
        return -1;
    }

    if (len > NGX_HTTP_STYTCH_TAT_VERIFY_JWKS_MAX) {
        *reason = "JWKS over 64 KB";
        return -1;
    }

    root = json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES, NULL);
    array = json_object_get(root, "keys");

    if (!json_is_array(array)) {
        json_decref(root);
        *reason = "JWKS without a \"keys\" array";
        return -1;
    }

    if (json_array_size(array) > NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX) {
        json_decref(root);
        *reason = "JWKS with more than 16 keys";
        return -1;
    }

    set = calloc(1, sizeof(ngx_http_stytch_tat_verify_keys_t));
    if (set == NULL) {
        json_decref(root);
        *reason = "out of memory";
        return -1;
    }

    /* fetched once here, not implicitly (under a lock) per verification */

    set->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (set->sha256 == NULL) {
        free(set);
        json_decref(root);
        ERR_clear_error();
        *reason = "OpenSSL has no SHA-256";
        return -1;
    }

    why = NULL;
    first = NULL;

    for (i = 0; i < json_array_size(array); i++) {
        if (ngx_http_stytch_tat_verify_key_add(set, json_array_get(array, i),
                                               &why)
            != 0)
        {
            set->skipped++;

            if (first == NULL) {
                first = why;
            }
        }
    }

    json_decref(root);

    *reason = first;

    if (set->nkeys == 0) {
        ngx_http_stytch_tat_verify_keys_free(set);

        if (first == NULL) {
            *reason = "JWKS without keys";
        }

        return -1;
    }

    *keys = set;

    return 0;
}


size_t
ngx_http_stytch_tat_verify_keys_count(
    const ngx_http_stytch_tat_verify_keys_t *keys)
{
    return (keys == NULL) ? 0 : keys->nkeys;
}


size_t
ngx_http_stytch_tat_verify_keys_skipped(
    const ngx_http_stytch_tat_verify_keys_t *keys)
{
    return (keys == NULL) ? 0 : keys->skipped;
}


void
ngx_http_stytch_tat_verify_keys_free(ngx_http_stytch_tat_verify_keys_t *keys)
{
    size_t  i;

    if (keys == NULL) {
        return;
    }

    for (i = 0; i < keys->nkeys; i++) {
        EVP_PKEY_free(keys->key[i].pkey);
    }

    EVP_MD_free(keys->sha256);
    free(keys);
}
