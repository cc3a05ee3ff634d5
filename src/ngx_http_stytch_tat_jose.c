/*
 * JOSE primitives: see ngx_http_stytch_tat_jose.h.  No nginx headers here.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* memmem() */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"


static int ngx_http_stytch_tat_b64url_value(int c);
static int ngx_http_stytch_tat_refuse_password(char *buf, int size,
    int rwflag, void *data);
static int ngx_http_stytch_tat_set_b64url(json_t *obj, const char *name,
    const unsigned char *data, size_t len);
static int ngx_http_stytch_tat_set_bn(json_t *obj, const char *name,
    EVP_PKEY *pkey, const char *param, size_t pad);
static const EVP_MD *ngx_http_stytch_tat_sha256(void);
static int ngx_http_stytch_tat_key_selftest(EVP_PKEY *pkey, int alg);
static int ngx_http_stytch_tat_key_alg(EVP_PKEY *key, int *alg, char *err);
static int ngx_http_stytch_tat_der_to_jose(const unsigned char *der,
    size_t n, unsigned char *sig, size_t *siglen);


/* base64url characters decoded at a time: a multiple of 4 */
#define NGX_HTTP_STYTCH_TAT_B64URL_CHUNK  512


struct ngx_http_stytch_tat_signer_s {
    int            alg;
    EVP_PKEY_CTX  *pctx;      /* RS256, ES256 */
    EVP_MD_CTX    *mdctx;     /* EdDSA: initialised once */
    EVP_MD_CTX    *work;      /* EdDSA: a copy of it per signature */
};


size_t
ngx_http_stytch_tat_b64url_encode(unsigned char *dst,
    const unsigned char *src, size_t len)
{
    size_t  i, n;

    n = (size_t) EVP_EncodeBlock(dst, src, (int) len);

    while (n > 0 && dst[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < n; i++) {
        if (dst[i] == '+') {
            dst[i] = '-';

        } else if (dst[i] == '/') {
            dst[i] = '_';
        }
    }

    dst[n] = '\0';

    return n;
}


static int
ngx_http_stytch_tat_b64url_value(int c)
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


/*
 * The characters are checked here; the decoding itself is
 * EVP_DecodeBlock()'s, on copies in the standard alphabet, padded, a chunk
 * at a time on the stack: nothing to allocate, nothing to fail on memory.
 */

int
ngx_http_stytch_tat_b64url_decode(unsigned char *dst, size_t *n,
    const char *src, size_t len)
{
    int            d, v;
    size_t         i, k, chunk, blen;
    unsigned char  b64[NGX_HTTP_STYTCH_TAT_B64URL_CHUNK];

    *n = 0;

    if (len % 4 == 1) {
        return -1;
    }

    v = 0;

    for (i = 0; i < len; i++) {
        v = ngx_http_stytch_tat_b64url_value((unsigned char) src[i]);
        if (v < 0) {
            return -1;
        }
    }

    /* 2 characters carry 12 bits for 8, 3 carry 18 for 16 */
    if ((len % 4 == 2 && (v & 0x0f) != 0) || (len % 4 == 3 && (v & 0x03) != 0))
    {
        return -1;
    }

    for (i = 0; i < len; i += chunk) {
        chunk = len - i;

        if (chunk > NGX_HTTP_STYTCH_TAT_B64URL_CHUNK) {
            chunk = NGX_HTTP_STYTCH_TAT_B64URL_CHUNK;
        }

        blen = (chunk + 3) & ~(size_t) 3;

        for (k = 0; k < chunk; k++) {
            b64[k] = (src[i + k] == '-') ? '+'
                     : (src[i + k] == '_') ? '/' : src[i + k];
        }

        for ( /* void */ ; k < blen; k++) {
            b64[k] = '=';
        }

        d = EVP_DecodeBlock(dst + *n, b64, (int) blen);

        /* after the checks above, only if OpenSSL disagreed with them */
        if (d < 0) {
            *n = 0;
            return -1;
        }

        /* it counts each padding character as a zero byte */
        *n += (size_t) d - (blen - chunk);
    }

    return 0;
}


const char *
ngx_http_stytch_tat_alg_name(int alg)
{
    switch (alg) {
    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        return "RS256";
    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        return "ES256";
    case NGX_HTTP_STYTCH_TAT_ALG_EDDSA:
        return "EdDSA";
    }

    return "none";
}


static int
ngx_http_stytch_tat_refuse_password(char *buf, int size, int rwflag,
    void *data)
{
    /* an encrypted key would need a passphrase at every start: refuse it */
    *(int *) data = 1;

    return -1;
}


int
ngx_http_stytch_tat_key_load(const unsigned char *pem, size_t len,
    EVP_PKEY **pkey, int *alg, char *err)
{
    int        asked;
    BIO       *bio;
    EVP_PKEY  *key;

    *pkey = NULL;

    if (len == 0 || len > 64 * 1024) {
        snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN, "empty or oversized key");
        return -1;
    }

    bio = BIO_new_mem_buf(pem, (int) len);
    if (bio == NULL) {
        snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN, "out of memory");
        return -1;
    }

    asked = 0;
    key = PEM_read_bio_PrivateKey(bio, NULL,
                                  ngx_http_stytch_tat_refuse_password,
                                  &asked);
    BIO_free(bio);
    ERR_clear_error();

    if (key == NULL) {
        if (asked || memmem(pem, len, "ENCRYPTED", 9) != NULL) {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "the key is encrypted; store it decrypted with "
                     "\"openssl pkey -in KEY -out KEY.pem\" and restrict "
                     "its permissions");

        } else if (memmem(pem, len, "PUBLIC KEY-----", 15) != NULL
                   || memmem(pem, len, "CERTIFICATE-----", 16) != NULL)
        {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "a public key or certificate, not a private key");

        } else {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "not a PEM private key");
        }

        return -1;
    }

    if (ngx_http_stytch_tat_key_alg(key, alg, err) != 0) {
        goto failed;
    }

    /*
     * A key whose private and public halves disagree (a corrupted modulus,
     * say) signs tokens that never verify: sign and verify once here.
     */

    if (ngx_http_stytch_tat_key_selftest(key, *alg) != 0) {
        snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                 "the key is inconsistent: its signatures do not verify "
                 "with its own public key");
        goto failed;
    }

    *pkey = key;

    return 0;

failed:

    EVP_PKEY_free(key);
    ERR_clear_error();

    return -1;
}


/* the JWS algorithm a key signs with, or why it cannot be used */

static int
ngx_http_stytch_tat_key_alg(EVP_PKEY *key, int *alg, char *err)
{
    int     nid, bits;
    char    group[64];
    size_t  glen;

    switch (EVP_PKEY_get_base_id(key)) {

    case EVP_PKEY_RSA:
        bits = EVP_PKEY_get_bits(key);
        if (bits < 2048 || bits > 8192) {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "RSA key of %d bits; RS256 needs 2048 to 8192 bits",
                     bits);
            return -1;
        }

        *alg = NGX_HTTP_STYTCH_TAT_ALG_RS256;
        break;

    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME,
                                           group, sizeof(group), &glen)
            != 1)
        {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "EC key without a named curve");
            return -1;
        }

        nid = OBJ_txt2nid(group);
        if (nid != NID_X9_62_prime256v1) {
            snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                     "EC key on curve \"%s\"; ES256 needs P-256", group);
            return -1;
        }

        *alg = NGX_HTTP_STYTCH_TAT_ALG_ES256;
        break;

    case EVP_PKEY_ED25519:
        *alg = NGX_HTTP_STYTCH_TAT_ALG_EDDSA;
        break;

    default:
        snprintf(err, NGX_HTTP_STYTCH_TAT_ERR_LEN,
                 "unsupported key type; use RSA (RS256), P-256 (ES256) "
                 "or Ed25519 (EdDSA)");
        return -1;
    }

    return 0;
}


static int
ngx_http_stytch_tat_set_b64url(json_t *obj, const char *name,
    const unsigned char *data, size_t len)
{
    int            rc;
    size_t         n;
    unsigned char *buf;

    buf = malloc(ngx_http_stytch_tat_b64url_len(len));
    if (buf == NULL) {
        return -1;
    }

    n = ngx_http_stytch_tat_b64url_encode(buf, data, len);

    rc = json_object_set_new(obj, name, json_stringn((char *) buf, n));

    free(buf);

    return rc;
}


static int
ngx_http_stytch_tat_set_bn(json_t *obj, const char *name, EVP_PKEY *pkey,
    const char *param, size_t pad)
{
    int             rc, n;
    BIGNUM         *bn;
    unsigned char   buf[1024];

    bn = NULL;

    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1) {
        return -1;
    }

    if ((size_t) BN_num_bytes(bn) > sizeof(buf) || pad > sizeof(buf)) {
        BN_free(bn);
        return -1;
    }

    /* RFC 7518: RSA members minimal, EC coordinates full field length */
    n = pad ? BN_bn2binpad(bn, buf, (int) pad) : BN_bn2bin(bn, buf);

    rc = (n < 0) ? -1
                 : ngx_http_stytch_tat_set_b64url(obj, name, buf, (size_t) n);

    BN_free(bn);

    return rc;
}


void *
ngx_http_stytch_tat_key_public_members(EVP_PKEY *pkey, int alg)
{
    int             rc;
    size_t          len;
    json_t         *obj;
    unsigned char   raw[32];

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    switch (alg) {

    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        rc = json_object_set_new(obj, "kty", json_string("RSA"));
        rc |= ngx_http_stytch_tat_set_bn(obj, "n", pkey,
                                         OSSL_PKEY_PARAM_RSA_N, 0);
        rc |= ngx_http_stytch_tat_set_bn(obj, "e", pkey,
                                         OSSL_PKEY_PARAM_RSA_E, 0);
        break;

    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        rc = json_object_set_new(obj, "kty", json_string("EC"));
        rc |= json_object_set_new(obj, "crv", json_string("P-256"));
        rc |= ngx_http_stytch_tat_set_bn(obj, "x", pkey,
                                         OSSL_PKEY_PARAM_EC_PUB_X, 32);
        rc |= ngx_http_stytch_tat_set_bn(obj, "y", pkey,
                                         OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        break;

    case NGX_HTTP_STYTCH_TAT_ALG_EDDSA:
        len = sizeof(raw);
        rc = json_object_set_new(obj, "kty", json_string("OKP"));
        rc |= json_object_set_new(obj, "crv", json_string("Ed25519"));
        rc |= (EVP_PKEY_get_raw_public_key(pkey, raw, &len) == 1) ? 0 : -1;
        rc |= ngx_http_stytch_tat_set_b64url(obj, "x", raw, len);
        break;

    default:
        rc = -1;
    }

    if (rc != 0) {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


int
ngx_http_stytch_tat_key_thumbprint(EVP_PKEY *pkey, int alg, char *out)
{
    int             rc;
    char           *json;
    json_t         *obj;
    unsigned int    len;
    unsigned char   md[EVP_MAX_MD_SIZE];
    unsigned char   b64[ngx_http_stytch_tat_b64url_len(EVP_MAX_MD_SIZE)];

    obj = ngx_http_stytch_tat_key_public_members(pkey, alg);
    if (obj == NULL) {
        return -1;
    }

    /* RFC 7638 3.3: required members only, sorted, no white space */
    json = json_dumps(obj, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(obj);

    if (json == NULL) {
        return -1;
    }

    rc = EVP_Digest(json, strlen(json), md, &len,
                    ngx_http_stytch_tat_sha256(), NULL);
    free(json);

    if (rc != 1) {
        return -1;
    }

    /* base64 needs room for padding that base64url then drops */
    ngx_http_stytch_tat_b64url_encode(b64, md, len);
    memcpy(out, b64, 44);

    return 0;
}


char *
ngx_http_stytch_tat_key_jwk(EVP_PKEY *pkey, int alg, const char *kid)
{
    int      rc;
    char    *json;
    json_t  *obj;

    obj = ngx_http_stytch_tat_key_public_members(pkey, alg);
    if (obj == NULL) {
        return NULL;
    }

    rc = json_object_set_new(obj, "kid", json_string(kid));
    rc |= json_object_set_new(obj, "alg",
                              json_string(ngx_http_stytch_tat_alg_name(alg)));
    rc |= json_object_set_new(obj, "use", json_string("sig"));

    json = (rc == 0) ? json_dumps(obj, JSON_COMPACT) : NULL;

    json_decref(obj);

    return json;
}


char *
ngx_http_stytch_tat_jws_header(int alg, const char *kid)
{
    char    *json;
    size_t   len;
    json_t  *obj;
    unsigned char *out;

    obj = json_pack("{s:s, s:s, s:s}",
                    "alg", ngx_http_stytch_tat_alg_name(alg),
                    "typ", "JWT",
                    "kid", kid);
    if (obj == NULL) {
        return NULL;
    }

    json = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);

    if (json == NULL) {
        return NULL;
    }

    len = strlen(json);

    out = malloc(ngx_http_stytch_tat_b64url_len(len));
    if (out != NULL) {
        ngx_http_stytch_tat_b64url_encode(out, (unsigned char *) json, len);
    }

    free(json);

    return (char *) out;
}


static const EVP_MD *
ngx_http_stytch_tat_sha256(void)
{
    static EVP_MD  *md;

    /* fetched once: an implicit fetch on every signature costs a lock */

    if (md == NULL) {
        md = EVP_MD_fetch(NULL, "SHA256", NULL);
    }

    return md;
}


size_t
ngx_http_stytch_tat_sig_size(EVP_PKEY *pkey, int alg)
{
    switch (alg) {
    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        return 64;
    case NGX_HTTP_STYTCH_TAT_ALG_EDDSA:
        return 64;
    }

    return (size_t) EVP_PKEY_get_size(pkey);
}


int
ngx_http_stytch_tat_sign(EVP_PKEY *pkey, int alg, const unsigned char *in,
    size_t len, unsigned char *sig, size_t *siglen)
{
    int             rc;
    size_t          n;
    EVP_MD_CTX     *ctx;
    const EVP_MD   *md;
    unsigned char   der[160];

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    md = (alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA)
         ? NULL : ngx_http_stytch_tat_sha256();

    rc = -1;

    if (EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) != 1) {
        goto done;
    }

    if (alg != NGX_HTTP_STYTCH_TAT_ALG_ES256) {
        n = NGX_HTTP_STYTCH_TAT_SIG_MAX;

        if (EVP_DigestSign(ctx, sig, &n, in, len) != 1) {
            goto done;
        }

        *siglen = n;
        rc = 0;
        goto done;
    }

    n = sizeof(der);

    if (EVP_DigestSign(ctx, der, &n, in, len) == 1) {
        rc = ngx_http_stytch_tat_der_to_jose(der, n, sig, siglen);
    }

done:

    EVP_MD_CTX_free(ctx);

    if (rc != 0) {
        ERR_clear_error();
    }

    return rc;
}


/* ECDSA: OpenSSL yields DER, JWS (RFC 7518 3.4) wants raw r || s */

static int
ngx_http_stytch_tat_der_to_jose(const unsigned char *der, size_t n,
    unsigned char *sig, size_t *siglen)
{
    int                   rc;
    ECDSA_SIG            *ecsig;
    const BIGNUM         *r, *s;
    const unsigned char  *p;

    p = der;
    ecsig = d2i_ECDSA_SIG(NULL, &p, (long) n);
    if (ecsig == NULL) {
        return -1;
    }

    ECDSA_SIG_get0(ecsig, &r, &s);

    rc = -1;

    if (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
    {
        *siglen = 64;
        rc = 0;
    }

    ECDSA_SIG_free(ecsig);

    return rc;
}


ngx_http_stytch_tat_signer_t *
ngx_http_stytch_tat_signer_new(EVP_PKEY *pkey, int alg)
{
    int                            type;
    ngx_http_stytch_tat_signer_t  *signer;

    /*
     * OpenSSL 3.5+ sets up a raw signing context for an Ed25519 key too:
     * a key of the wrong type would fail only at sign time
     */

    switch (alg) {
    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        type = EVP_PKEY_RSA;
        break;
    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        type = EVP_PKEY_EC;
        break;
    case NGX_HTTP_STYTCH_TAT_ALG_EDDSA:
        type = EVP_PKEY_ED25519;
        break;
    default:
        return NULL;
    }

    if (pkey == NULL || EVP_PKEY_get_base_id(pkey) != type) {
        return NULL;
    }

    signer = calloc(1, sizeof(ngx_http_stytch_tat_signer_t));
    if (signer == NULL) {
        return NULL;
    }

    signer->alg = alg;

    if (alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA) {
        signer->mdctx = EVP_MD_CTX_new();
        signer->work = EVP_MD_CTX_new();

        if (signer->mdctx == NULL || signer->work == NULL
            || EVP_DigestSignInit(signer->mdctx, NULL, NULL, NULL, pkey) != 1)
        {
            goto failed;
        }

        return signer;
    }

    /* RSASSA-PKCS1-v1_5 is the default padding of an RSA signing context */

    signer->pctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);

    if (signer->pctx == NULL
        || EVP_PKEY_sign_init(signer->pctx) != 1
        || EVP_PKEY_CTX_set_signature_md(signer->pctx,
                                         ngx_http_stytch_tat_sha256()) != 1)
    {
        goto failed;
    }

    return signer;

failed:

    ngx_http_stytch_tat_signer_free(signer);
    ERR_clear_error();

    return NULL;
}


int
ngx_http_stytch_tat_signer_sign(ngx_http_stytch_tat_signer_t *signer,
    const unsigned char *in, size_t len, unsigned char *sig, size_t *siglen)
{
    size_t          n;
    unsigned int    mdlen;
    unsigned char   md[EVP_MAX_MD_SIZE], der[160];

    if (signer->alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA) {
        n = NGX_HTTP_STYTCH_TAT_SIG_MAX;

        /* OpenSSL 3.2+ allows one one-shot EVP_DigestSign() per context */

        if (EVP_MD_CTX_copy_ex(signer->work, signer->mdctx) != 1
            || EVP_DigestSign(signer->work, sig, &n, in, len) != 1)
        {
            goto failed;
        }

        *siglen = n;
        return 0;
    }

    if (EVP_Digest(in, len, md, &mdlen, ngx_http_stytch_tat_sha256(), NULL)
        != 1)
    {
        goto failed;
    }

    if (signer->alg == NGX_HTTP_STYTCH_TAT_ALG_RS256) {
        n = NGX_HTTP_STYTCH_TAT_SIG_MAX;

        if (EVP_PKEY_sign(signer->pctx, sig, &n, md, mdlen) != 1) {
            goto failed;
        }

        *siglen = n;
        return 0;
    }

    n = sizeof(der);

    if (EVP_PKEY_sign(signer->pctx, der, &n, md, mdlen) == 1
        && ngx_http_stytch_tat_der_to_jose(der, n, sig, siglen) == 0)
    {
        return 0;
    }

failed:

    ERR_clear_error();

    return -1;
}


void
ngx_http_stytch_tat_signer_free(ngx_http_stytch_tat_signer_t *signer)
{
    if (signer == NULL) {
        return;
    }

    EVP_PKEY_CTX_free(signer->pctx);
    EVP_MD_CTX_free(signer->mdctx);
    EVP_MD_CTX_free(signer->work);
    free(signer);
}


static int
ngx_http_stytch_tat_key_selftest(EVP_PKEY *pkey, int alg)
{
    int             rc;
    size_t          n;
    EVP_MD_CTX     *ctx;
    const EVP_MD   *md;
    unsigned char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    static const unsigned char  msg[] = "ngx_http_stytch_tat_module";

    md = (alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA)
         ? NULL : ngx_http_stytch_tat_sha256();

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return -1;
    }

    n = sizeof(sig);

    rc = (EVP_DigestSignInit(ctx, NULL, md, NULL, pkey) == 1
          && EVP_DigestSign(ctx, sig, &n, msg, sizeof(msg) - 1) == 1
          && EVP_MD_CTX_reset(ctx) == 1
          && EVP_DigestVerifyInit(ctx, NULL, md, NULL, pkey) == 1
          && EVP_DigestVerify(ctx, sig, n, msg, sizeof(msg) - 1) == 1)
         ? 0 : -1;

    EVP_MD_CTX_free(ctx);
    ERR_clear_error();

    return rc;
}
