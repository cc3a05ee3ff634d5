/*
 * Key loading: ngx_http_stytch_tat_key_load() on any bytes; every key it
 * accepts must give a thumbprint, a JWK and a JWS header that check out
 * against the key itself, and a signature that verifies.
 *
 * The prepared signer (ngx_http_stytch_tat_signer_*) must sign alike,
 * again and again.
 *
 * Input: raw PEM text, or, when the first byte is below 0x08, DER that
 * this harness wraps in PEM under the label the byte selects (the
 * mutations then reach the ASN.1 structure rather than its base64).
 */

#include <stdint.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "fuzz_common.h"


/*
 * A key the loader accepts must be usable: it signs, and its own public
 * half verifies the signature.  An inconsistent key (n != p*q, an EC public
 * point not of the private scalar ...) would let nginx start and publish a
 * JWK, and every token would fail verification.  Built with
 * -DFUZZ_LENIENT_KEYS, such keys are skipped instead, to fuzz on past that
 * finding.
 */


static const char  *labels[] = {
    "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY",
    "ENCRYPTED PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE",
    "DSA PRIVATE KEY", "PRIVATE KEY"
};

static const unsigned char  msg[] =
    "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJmdXp6In0";


static unsigned char *
wrap_pem(const unsigned char *der, size_t len, const char *label,
    size_t *out_len)
{
    size_t          n, chunk, room;
    unsigned char  *pem, *p;

    room = len / 48 * 66 + 200 + 2 * strlen(label);
    pem = malloc(room);
    p = pem;

    p += sprintf((char *) p, "-----BEGIN %s-----\n", label);

    for (n = 0; n < len; n += chunk) {
        chunk = len - n > 48 ? 48 : len - n;
        p += EVP_EncodeBlock(p, der + n, (int) chunk);
        *p++ = '\n';
    }

    p += sprintf((char *) p, "-----END %s-----\n", label);
    *out_len = (size_t) (p - pem);

    return pem;
}


/* the base64url JWK member equals the big-endian bytes given */
static void
check_member(json_t *jwk, const char *name, const unsigned char *want,
    size_t len)
{
    long            n;
    const char     *s;
    unsigned char  *raw;

    s = json_string_value(json_object_get(jwk, name));
    FUZZ_CHECK(s != NULL);

    raw = malloc(strlen(s) + 1);
    n = fuzz_b64url_decode(s, raw, strlen(s) + 1);
    FUZZ_CHECK(n >= 0);
    FUZZ_CHECK((size_t) n == len);
    FUZZ_CHECK(memcmp(raw, want, len) == 0);
    free(raw);
}


static void
check_bn_member(json_t *jwk, const char *name, EVP_PKEY *pkey,
    const char *param, int pad)
{
    int             n;
    BIGNUM         *bn;
    unsigned char  *raw;

    bn = NULL;
    FUZZ_CHECK(EVP_PKEY_get_bn_param(pkey, param, &bn) == 1);

    n = pad ? pad : BN_num_bytes(bn);
    raw = malloc((size_t) n + 1);
    FUZZ_CHECK(BN_bn2binpad(bn, raw, n) == n);
    check_member(jwk, name, raw, (size_t) n);

    free(raw);
    BN_free(bn);
}


/* RFC 7638, written out by hand from the JWK's own members */
static void
check_thumbprint(json_t *jwk, int alg, const char *tp)
{
    char           input[4096];
    char           b64[64];
    unsigned int   mdlen;
    unsigned char  md[EVP_MAX_MD_SIZE];

#define M(name)  json_string_value(json_object_get(jwk, name))

    switch (alg) {
    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        snprintf(input, sizeof(input), "{\"e\":\"%s\",\"kty\":\"RSA\","
                 "\"n\":\"%s\"}", M("e"), M("n"));
        break;
    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        snprintf(input, sizeof(input), "{\"crv\":\"P-256\",\"kty\":\"EC\","
                 "\"x\":\"%s\",\"y\":\"%s\"}", M("x"), M("y"));
        break;
    default:
        snprintf(input, sizeof(input), "{\"crv\":\"Ed25519\","
                 "\"kty\":\"OKP\",\"x\":\"%s\"}", M("x"));
    }

#undef M

    FUZZ_CHECK(EVP_Digest(input, strlen(input), md, &mdlen, EVP_sha256(),
                          NULL) == 1);
    ngx_http_stytch_tat_b64url_encode((unsigned char *) b64, md, mdlen);
    FUZZ_CHECK(strcmp(b64, tp) == 0);
}


static int
sig_ok(EVP_PKEY *pkey, int alg, const unsigned char *sig, size_t siglen)
{
    int            ok, n;
    BIGNUM        *r, *s;
    ECDSA_SIG     *es;
    EVP_MD_CTX    *ctx;
    unsigned char *der, *p;

    ctx = EVP_MD_CTX_new();
    FUZZ_CHECK(ctx != NULL);

    if (EVP_DigestVerifyInit(ctx, NULL, alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA
                             ? NULL : EVP_sha256(), NULL, pkey) != 1)
    {
        EVP_MD_CTX_free(ctx);
        return 0;
    }

    if (alg != NGX_HTTP_STYTCH_TAT_ALG_ES256) {
        ok = EVP_DigestVerify(ctx, sig, siglen, msg, sizeof(msg) - 1);
        EVP_MD_CTX_free(ctx);
        return ok == 1;
    }

    /* JWS r || s back to DER */
    FUZZ_CHECK(siglen == 64);
    es = ECDSA_SIG_new();
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    FUZZ_CHECK(es && r && s && ECDSA_SIG_set0(es, r, s) == 1);

    der = NULL;
    n = i2d_ECDSA_SIG(es, &der);
    FUZZ_CHECK(n > 0);
    p = der;
    ok = EVP_DigestVerify(ctx, p, (size_t) n, msg, sizeof(msg) - 1);

    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_MD_CTX_free(ctx);

    return ok == 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc, alg;
    long            n;
    char           *err, *tp, *jwk_json, *hdr;
    size_t          len, siglen;
    json_t         *jwk, *h;
    EVP_PKEY       *pkey;
    unsigned char  *in, *sig, raw[64];
    size_t          rawlen, sig2len;
    int             i;
    unsigned char  *sig2;
    ngx_http_stytch_tat_signer_t  *signer;

    if (size == 0) {
        return 0;
    }

    if (data[0] < 0x08) {
        in = wrap_pem(data + 1, size - 1, labels[data[0]], &len);

    } else {
        in = fuzz_dup(data, size, 0);
        len = size;
    }

    err = malloc(NGX_HTTP_STYTCH_TAT_ERR_LEN);
    memset(err, 0x5a, NGX_HTTP_STYTCH_TAT_ERR_LEN);
    alg = -1;
    pkey = NULL;

    rc = ngx_http_stytch_tat_key_load(in, len, &pkey, &alg, err);

    if (rc != 0) {
        /* a reason, NUL-terminated within the buffer; no key, no errors */
        FUZZ_CHECK(pkey == NULL);
        FUZZ_CHECK(memchr(err, '\0', NGX_HTTP_STYTCH_TAT_ERR_LEN) != NULL);
        FUZZ_CHECK(err[0] != '\0');
        FUZZ_CHECK(ERR_peek_error() == 0);
        goto done;
    }

    FUZZ_CHECK(pkey != NULL);

    FUZZ_CHECK(alg == NGX_HTTP_STYTCH_TAT_ALG_RS256
               || alg == NGX_HTTP_STYTCH_TAT_ALG_ES256
               || alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA);

    /* thumbprint: exactly the 44 bytes the header promises are enough */

    tp = malloc(44);

    if (ngx_http_stytch_tat_key_thumbprint(pkey, alg, tp) != 0) {
        /*
         * A key without a JWK (say, an RSA exponent over 1024 bytes): the
         * module refuses it at configuration time, with this failure.  It
         * must fail the same way for the JWK, without writing anything.
         */
        FUZZ_CHECK(ngx_http_stytch_tat_key_jwk(pkey, alg, "fuzz-kid") == NULL);
        FUZZ_CHECK(ngx_http_stytch_tat_key_public_members(pkey, alg) == NULL);
        free(tp);
        EVP_PKEY_free(pkey);
        goto done;
    }

    FUZZ_CHECK(strlen(tp) == 43);

    /* usable: it signs, and the signature verifies with its public half */

    sig = malloc(NGX_HTTP_STYTCH_TAT_SIG_MAX);
    siglen = 0;

    if (ngx_http_stytch_tat_sign(pkey, alg, msg, sizeof(msg) - 1, sig,
                                 &siglen) != 0
        || !sig_ok(pkey, alg, sig, siglen))
    {
#ifdef FUZZ_LENIENT_KEYS
        free(sig);
        free(tp);
        EVP_PKEY_free(pkey);
        goto done;
#else
        /* EVP_PKEY_pairwise_check() would have refused it */
        FUZZ_CHECK(0 && "inconsistent key accepted: its signature fails");
#endif
    }

    /* the JWK: valid JSON, the right members, the key's own numbers */

    jwk_json = ngx_http_stytch_tat_key_jwk(pkey, alg, "fuzz-kid");
    FUZZ_CHECK(jwk_json != NULL);
    jwk = json_loads(jwk_json, JSON_REJECT_DUPLICATES, NULL);
    FUZZ_CHECK(json_is_object(jwk));
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(jwk, "kid")),
                      "fuzz-kid") == 0);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(jwk, "alg")),
                      ngx_http_stytch_tat_alg_name(alg)) == 0);
    FUZZ_CHECK(strcmp(json_string_value(json_object_get(jwk, "use")),
                      "sig") == 0);
    FUZZ_CHECK(json_object_get(jwk, "d") == NULL);

    switch (alg) {
    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        FUZZ_CHECK(json_object_size(jwk) == 6);
        check_bn_member(jwk, "n", pkey, OSSL_PKEY_PARAM_RSA_N, 0);
        check_bn_member(jwk, "e", pkey, OSSL_PKEY_PARAM_RSA_E, 0);
        break;
    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        FUZZ_CHECK(json_object_size(jwk) == 7);
        check_bn_member(jwk, "x", pkey, OSSL_PKEY_PARAM_EC_PUB_X, 32);
        check_bn_member(jwk, "y", pkey, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
        break;
    default:
        FUZZ_CHECK(json_object_size(jwk) == 6);
        rawlen = sizeof(raw);
        FUZZ_CHECK(EVP_PKEY_get_raw_public_key(pkey, raw, &rawlen) == 1);
        check_member(jwk, "x", raw, rawlen);
    }

    check_thumbprint(jwk, alg, tp);
    json_decref(jwk);
    free(jwk_json);
    free(tp);

    /* the JOSE header */

    hdr = ngx_http_stytch_tat_jws_header(alg, "fuzz-kid");
    FUZZ_CHECK(hdr != NULL);
    {
        unsigned char  dec[256];

        n = fuzz_b64url_decode(hdr, dec, sizeof(dec));
        FUZZ_CHECK(n > 0);
        h = json_loadb((char *) dec, (size_t) n, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(json_is_object(h) && json_object_size(h) == 3);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(h, "alg")),
                          ngx_http_stytch_tat_alg_name(alg)) == 0);
        FUZZ_CHECK(strcmp(json_string_value(json_object_get(h, "typ")),
                          "JWT") == 0);
        json_decref(h);
    }
    free(hdr);

    /* a signature of the advertised size that verifies */

    sig2 = malloc(NGX_HTTP_STYTCH_TAT_SIG_MAX);

    FUZZ_CHECK(siglen == ngx_http_stytch_tat_sig_size(pkey, alg));
    FUZZ_CHECK(siglen <= NGX_HTTP_STYTCH_TAT_SIG_MAX);

    /* the prepared signer, twice: the same (deterministic) signatures */

    signer = ngx_http_stytch_tat_signer_new(pkey, alg);
    FUZZ_CHECK(signer != NULL);

    for (i = 0; i < 2; i++) {
        sig2len = 0;
        FUZZ_CHECK(ngx_http_stytch_tat_signer_sign(signer, msg,
                       sizeof(msg) - 1, sig2, &sig2len) == 0);
        FUZZ_CHECK(sig2len == siglen);
        FUZZ_CHECK(sig_ok(pkey, alg, sig2, sig2len));

        if (alg != NGX_HTTP_STYTCH_TAT_ALG_ES256) {
            FUZZ_CHECK(memcmp(sig, sig2, siglen) == 0);
        }
    }

    ngx_http_stytch_tat_signer_free(signer);
    free(sig2);
    free(sig);
    EVP_PKEY_free(pkey);

done:

    ERR_clear_error();
    free(err);
    free(in);

    return 0;
}
