/*
 * Stytch session JWT verification: ngx_http_stytch_tat_verify() on
 * fuzz-made tokens, and ngx_http_stytch_tat_verify_keys_parse() on
 * fuzz-made JWKS documents.  The low two bits of byte 0 choose:
 *
 *   0  the rest is a token, verified against a fixed key set (the RS256
 *      key of fixed_keys.h under kid "fuzz-k1") and against no key set;
 *   1  the rest is a JWKS document, 0xff, a token verified against it;
 *   2  the rest is a claims set, signed here under a fixed header, so that
 *      the claim checks behind the signature are reached;
 *   3  the rest is a header, 0xff, a claims set, both signed here.
 *
 * Bit 2 of byte 0 asks for the binding claim to equal an expected value,
 * bit 3 (without bit 2) only to be copied out.
 *
 * With the fixed key set the result must equal a reference reading of
 * the same rules written here (strict base64url by fuzz_common.h, the
 * signature checked with EVP_DigestVerify directly, the claims by
 * jansson), and the outputs must match it; with any key set the outputs
 * must be well-formed and the result repeatable.
 */

#include <stdint.h>
#include <strings.h>

#include <jansson.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_verify.h"
#include "fuzz_common.h"
#include "fixed_keys.h"


#define KID       "fuzz-k1"
#define PROJECT   "project-test-fuzz"
#define CLAIM     "tat_identity"
#define EXPECTED  "sha256:fuzz"
#define NOW       1800000060LL
#define LEEWAY    30LL
#define MAX_LIFETIME  300LL


static EVP_PKEY                           *pkey;
static ngx_http_stytch_tat_verify_keys_t  *fixed;


static void
init(void)
{
    int          alg;
    char         err[NGX_HTTP_STYTCH_TAT_ERR_LEN], *jwk, *doc;
    size_t       len;
    const char  *reason;

    if (ngx_http_stytch_tat_key_load((const unsigned char *) fixed_key_rsa,
                                     strlen(fixed_key_rsa), &pkey, &alg, err)
        != 0)
    {
        fprintf(stderr, "fixed key: %s\n", err);
        abort();
    }

    jwk = ngx_http_stytch_tat_key_jwk(pkey, alg, KID);
    FUZZ_CHECK(jwk != NULL);

    len = strlen(jwk) + sizeof("{\"keys\":[]}");
    doc = malloc(len);
    FUZZ_CHECK(doc != NULL);
    snprintf(doc, len, "{\"keys\":[%s]}", jwk);

    FUZZ_CHECK(ngx_http_stytch_tat_verify_keys_parse((unsigned char *) doc,
                                                     strlen(doc), &fixed,
                                                     &reason) == 0);
    FUZZ_CHECK(ngx_http_stytch_tat_verify_keys_count(fixed) == 1);

    free(jwk);
    free(doc);
}


static int
depth_ok(json_t *v, int depth)
{
    size_t       i;
    json_t      *item;
    const char  *name;

    if (json_is_array(v)) {
        if (depth > NGX_HTTP_STYTCH_TAT_VERIFY_DEPTH_MAX) {
            return 0;
        }

        json_array_foreach(v, i, item) {
            if (!depth_ok(item, depth + 1)) {
                return 0;
            }
        }

    } else if (json_is_object(v)) {
        if (depth > NGX_HTTP_STYTCH_TAT_VERIFY_DEPTH_MAX) {
            return 0;
        }

        json_object_foreach(v, name, item) {
            if (!depth_ok(item, depth + 1)) {
                return 0;
            }
        }
    }

    return 1;
}


/* a strict base64url part as a JSON object within the depth bound */
static json_t *
ref_json(const char *p, size_t len)
{
    long            n;
    json_t         *obj;
    unsigned char  *raw;

    raw = malloc(len + 1);
    FUZZ_CHECK(raw != NULL);

    n = fuzz_b64url_decode_n(p, len, raw, len);
    obj = (n < 0) ? NULL
                  : json_loadb((char *) raw, (size_t) n,
                               JSON_REJECT_DUPLICATES, NULL);
    free(raw);

    if (!json_is_object(obj) || !depth_ok(obj, 1)) {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


static int
str_is(json_t *v, const char *s)
{
    return json_is_string(v) && json_string_length(v) == strlen(s)
           && memcmp(json_string_value(v), s, strlen(s)) == 0;
}


/* jose's typ: "JWT" or "application/JWT", case aside */
static int
ref_typ(json_t *v)
{
    size_t       len;
    const char  *s;

    if (!json_is_string(v)) {
        return 0;
    }

    s = json_string_value(v);
    len = json_string_length(v);

    return (len == 3 && strncasecmp(s, "jwt", 3) == 0)
           || (len == 15 && strncasecmp(s, "application/jwt", 15) == 0);
}


/* a string, if any, without a C0 control character or DEL */
static int
printable(json_t *v)
{
    size_t               i;
    const unsigned char  *s;

    if (!fuzz_nonempty(v)) {
        return 1;
    }

    s = (const unsigned char *) json_string_value(v);

    for (i = 0; i < json_string_length(v); i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* the claims of a signed token, in the verifier's order */
static int
ref_claims(json_t *c, int expected)
{
    int          found;
    size_t       i;
    json_t      *v, *aud, *sub, *sid, *org;
    json_int_t   exp, iat;

    if (!str_is(json_object_get(c, "iss"), "stytch.com/" PROJECT)) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_ISS;
    }

    aud = json_object_get(c, "aud");
    found = str_is(aud, PROJECT);

    json_array_foreach(aud, i, v) {
        found |= str_is(v, PROJECT);
    }

    if (!found) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_AUD;
    }

    sub = json_object_get(c, "sub");
    sid = json_object_get(json_object_get(c, "https://stytch.com/session"),
                          "id");
    org = json_object_get(json_object_get(c,
                              "https://stytch.com/organization"),
                          "organization_id");

    if (!fuzz_nonempty(sub) || !fuzz_nonempty(sid)
        || !printable(sub) || !printable(sid) || !printable(org))
    {
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    v = json_object_get(c, "nbf");

    if (!json_is_integer(json_object_get(c, "exp"))
        || !json_is_integer(json_object_get(c, "iat"))
        || (v != NULL && !json_is_integer(v)))
    {
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    exp = json_integer_value(json_object_get(c, "exp"));
    iat = json_integer_value(json_object_get(c, "iat"));

    if (exp < 0 || iat < 0) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    if (iat > NOW + LEEWAY
        || (v != NULL && json_integer_value(v) > NOW + LEEWAY))
    {
        return NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID;
    }

    if (exp < iat || exp - iat > MAX_LIFETIME) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME;
    }

    if (exp <= NOW - LEEWAY) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED;
    }

    if (expected && !str_is(json_object_get(c, CLAIM), EXPECTED)) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_BINDING;
    }

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/*
 * The documented rules against the fixed key set, read independently;
 * *claims gets the claims object when the signature verified.
 */
static int
ref_verify(const char *t, size_t len, int expected, json_t **claims)
{
    int                   rc, found;
    long                  n;
    json_t               *hdr, *c, *v;
    size_t                i, dots, d1, d2;
    EVP_MD_CTX           *ctx;
    unsigned char        *sig;

    *claims = NULL;

    if (len > NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG;
    }

    dots = 0;
    d1 = 0;
    d2 = 0;

    for (i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (dots == 0) {
                d1 = i;
            } else if (dots == 1) {
                d2 = i;
            }
            dots++;
        }
    }

    if (dots != 2 || d1 == 0 || d2 == d1 + 1) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    /* every part strict base64url, before anything is read as JSON */

    sig = malloc(len + 1);
    FUZZ_CHECK(sig != NULL);

    hdr = NULL;
    c = NULL;

    if (fuzz_b64url_decode_n(t, d1, sig, len) < 0
        || fuzz_b64url_decode_n(t + d1 + 1, d2 - d1 - 1, sig, len) < 0
        || (n = fuzz_b64url_decode_n(t + d2 + 1, len - d2 - 1, sig, len)) < 0)
    {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    hdr = ref_json(t, d1);
    c = ref_json(t + d1 + 1, d2 - d1 - 1);

    if (hdr == NULL) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    if (!str_is(json_object_get(hdr, "alg"), "RS256")) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_ALG;
        goto done;
    }

    if (!ref_typ(json_object_get(hdr, "typ"))) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_TYP;
        goto done;
    }

    v = json_object_get(hdr, "kid");

    if (json_object_get(hdr, "crit") != NULL || !fuzz_nonempty(v)
        || json_string_length(v) > NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX)
    {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    if (!str_is(v, KID)) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID;
        goto done;
    }

    ctx = EVP_MD_CTX_new();
    FUZZ_CHECK(ctx != NULL);
    FUZZ_CHECK(EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, pkey)
               == 1);
    found = (n == EVP_PKEY_get_size(pkey)
             && EVP_DigestVerify(ctx, sig, (size_t) n,
                                 (const unsigned char *) t, d2) == 1);
    EVP_MD_CTX_free(ctx);
    ERR_clear_error();

    if (!found) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_SIGNATURE;
        goto done;
    }

    if (c == NULL) {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    *claims = json_incref(c);

    rc = ref_claims(c, expected);

done:

    json_decref(hdr);
    json_decref(c);
    free(sig);

    return rc;
}


static void
check_claim(const ngx_http_stytch_tat_field_t *f, json_t *want)
{
    if (!fuzz_nonempty(want)) {
        FUZZ_CHECK(f->data == NULL && f->len == 0);
        return;
    }

    FUZZ_CHECK(f->data != NULL && f->data[f->len] == '\0');
    FUZZ_CHECK(f->len == json_string_length(want));
    FUZZ_CHECK(memcmp(f->data, json_string_value(want), f->len) == 0);
}


/* invariants whatever the key set */
static void
check_result(int rc, ngx_http_stytch_tat_verify_result_t *res)
{
    size_t                              i;
    const ngx_http_stytch_tat_field_t  *f[4];

    FUZZ_CHECK(rc >= 0 && rc < NGX_HTTP_STYTCH_TAT_VERIFY_NCODES);
    FUZZ_CHECK(rc != NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    FUZZ_CHECK(res->reason != NULL && res->reason[0] != '\0');

    FUZZ_CHECK(res->kid_len <= NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX);
    FUZZ_CHECK(res->kid[res->kid_len] == '\0');
    FUZZ_CHECK(strlen(res->kid) == res->kid_len);

    if (rc == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        FUZZ_CHECK(res->sub.data != NULL && res->sub.len > 0);
        FUZZ_CHECK(res->session_id.data != NULL && res->session_id.len > 0);
        FUZZ_CHECK(res->exp > NOW - LEEWAY);
    }

    /* every output readable to its NUL, jansson strings hold none */
    f[0] = &res->sub;
    f[1] = &res->session_id;
    f[2] = &res->organization_id;
    f[3] = &res->claim;

    for (i = 0; i < 4; i++) {
        if (f[i]->data != NULL) {
            FUZZ_CHECK(f[i]->len > 0 || i == 3);
            FUZZ_CHECK(strlen(f[i]->data) == f[i]->len);
        }
    }
}


static int
verify_twice(const ngx_http_stytch_tat_verify_keys_t *keys, const char *t,
    size_t len, int flags, ngx_http_stytch_tat_verify_result_t *res)
{
    int                                  rc, again;
    ngx_http_stytch_tat_verify_params_t  params;
    ngx_http_stytch_tat_verify_result_t  res2;

    memset(&params, 0, sizeof(params));

    params.project_id = PROJECT;
    params.project_id_len = sizeof(PROJECT) - 1;
    params.now = NOW;
    params.leeway = LEEWAY;
    params.skew = LEEWAY;
    params.max_lifetime = MAX_LIFETIME;

    if (flags & 0x0c) {
        params.claim = CLAIM;
        params.claim_len = sizeof(CLAIM) - 1;
    }

    if (flags & 0x04) {
        params.expected.data = EXPECTED;
        params.expected.len = sizeof(EXPECTED) - 1;
    }

    rc = ngx_http_stytch_tat_verify(keys, &params, t, len, res);
    check_result(rc, res);

    /* nothing is kept between calls */
    again = ngx_http_stytch_tat_verify(keys, &params, t, len, &res2);
    FUZZ_CHECK(again == rc);
    FUZZ_CHECK(res2.kid_len == res->kid_len);
    ngx_http_stytch_tat_verify_result_free(&res2);

    return rc;
}


static void
fuzz_fixed(const char *t, size_t len, int flags)
{
    int                                   rc, want;
    json_t                               *claims, *v;
    ngx_http_stytch_tat_verify_result_t   res;

    rc = verify_twice(fixed, t, len, flags, &res);
    want = ref_verify(t, len, flags & 0x04, &claims);

    if (rc != want) {
        fprintf(stderr, "verify: %s (%s), reference: %s\n",
                ngx_http_stytch_tat_verify_code_name(rc), res.reason,
                ngx_http_stytch_tat_verify_code_name(want));
        FUZZ_CHECK(rc == want);
    }

    if (claims != NULL) {
        /* signed: the outputs are the claims' */
        check_claim(&res.sub, json_object_get(claims, "sub"));
        check_claim(&res.session_id,
                    json_object_get(json_object_get(claims,
                                        "https://stytch.com/session"), "id"));
        check_claim(&res.organization_id,
                    json_object_get(json_object_get(claims,
                                        "https://stytch.com/organization"),
                                    "organization_id"));

        v = json_object_get(claims, CLAIM);

        if ((flags & 0x0c) && json_is_string(v)) {
            FUZZ_CHECK(res.claim.len == json_string_length(v));
            FUZZ_CHECK(memcmp(res.claim.data, json_string_value(v),
                              res.claim.len) == 0);

        } else if (!(flags & 0x0c) || v == NULL) {
            FUZZ_CHECK(res.claim.data == NULL);

        } else {
            FUZZ_CHECK(res.claim.data != NULL);
        }

        v = json_object_get(claims, "exp");
        FUZZ_CHECK(res.exp == (json_is_integer(v) ? json_integer_value(v)
                                                  : 0));
        json_decref(claims);

    } else {
        FUZZ_CHECK(res.mem == NULL && res.sub.data == NULL);
    }

    ngx_http_stytch_tat_verify_result_free(&res);

    /* with no key set, nothing gets past the kid */
    rc = verify_twice(NULL, t, len, flags, &res);
    FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG
               || rc == NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED
               || rc == NGX_HTTP_STYTCH_TAT_VERIFY_ALG
               || rc == NGX_HTTP_STYTCH_TAT_VERIFY_TYP
               || rc == NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID);
    FUZZ_CHECK(res.mem == NULL);
    ngx_http_stytch_tat_verify_result_free(&res);
}


/* header and claims as given, then signed with the fixed key */
static void
fuzz_signed(const uint8_t *hdr, size_t hlen, const uint8_t *claims,
    size_t clen, int flags)
{
    char           *t;
    size_t          n, siglen;
    unsigned char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    t = malloc(ngx_http_stytch_tat_b64url_len(hlen)
               + ngx_http_stytch_tat_b64url_len(clen)
               + ngx_http_stytch_tat_b64url_len(sizeof(sig)) + 2);
    FUZZ_CHECK(t != NULL);

    n = ngx_http_stytch_tat_b64url_encode((unsigned char *) t, hdr, hlen);
    t[n++] = '.';
    n += ngx_http_stytch_tat_b64url_encode((unsigned char *) t + n, claims,
                                           clen);

    FUZZ_CHECK(ngx_http_stytch_tat_sign(pkey, NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                        (unsigned char *) t, n, sig, &siglen)
               == 0);

    t[n++] = '.';
    n += ngx_http_stytch_tat_b64url_encode((unsigned char *) t + n, sig,
                                           siglen);

    fuzz_fixed(t, n, flags);

    free(t);
}


static void
fuzz_jwks(const uint8_t *doc, size_t dlen, const char *t, size_t len,
    int flags)
{
    int                                   rc;
    json_t                               *ref;
    const char                           *reason;
    unsigned char                        *copy;
    ngx_http_stytch_tat_verify_keys_t    *keys;
    ngx_http_stytch_tat_verify_result_t   res;

    copy = fuzz_dup(doc, dlen, 0);

    rc = ngx_http_stytch_tat_verify_keys_parse(dlen ? copy : NULL, dlen,
                                               &keys, &reason);

    ref = json_loadb((char *) copy, dlen, JSON_REJECT_DUPLICATES, NULL);
    free(copy);

    if (rc == 0) {
        FUZZ_CHECK(keys != NULL);
        FUZZ_CHECK(ngx_http_stytch_tat_verify_keys_count(keys) >= 1);
        FUZZ_CHECK(ngx_http_stytch_tat_verify_keys_count(keys)
                   <= NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX);
        FUZZ_CHECK(json_is_array(json_object_get(ref, "keys")));
        FUZZ_CHECK(ngx_http_stytch_tat_verify_keys_count(keys)
                   + ngx_http_stytch_tat_verify_keys_skipped(keys)
                   == json_array_size(json_object_get(ref, "keys")));
        FUZZ_CHECK((reason == NULL)
                   == (ngx_http_stytch_tat_verify_keys_skipped(keys) == 0));

    } else {
        FUZZ_CHECK(rc == -1 && keys == NULL);
        FUZZ_CHECK(reason != NULL && reason[0] != '\0');
    }

    json_decref(ref);

    rc = verify_twice(keys, t, len, flags, &res);
    ngx_http_stytch_tat_verify_result_free(&res);

    ngx_http_stytch_tat_verify_keys_free(keys);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             flags;
    char           *t;
    const uint8_t  *sep;

    static const char  header[] = "{\"alg\":\"RS256\",\"kid\":\"" KID "\","
                                  "\"typ\":\"JWT\"}";

    if (pkey == NULL) {
        init();
    }

    if (size == 0) {
        return 0;
    }

    flags = data[0];
    data++;
    size--;

    sep = memchr(data, 0xff, size);

    switch (flags & 3) {

    case 0:
        /* an exact-size copy: ASan sees any read past the token */
        t = (char *) fuzz_dup(data, size, 0);
        fuzz_fixed(t, size, flags);
        free(t);
        break;

    case 1:
        if (sep == NULL) {
            sep = data + size;
        }

        t = (char *) fuzz_dup(sep + (sep < data + size),
                              size - (sep - data) - (sep < data + size), 0);
        fuzz_jwks(data, sep - data, t,
                  size - (sep - data) - (sep < data + size), flags);
        free(t);
        break;

    case 2:
        fuzz_signed((const uint8_t *) header, sizeof(header) - 1, data, size,
                    flags);
        break;

    default:
        if (sep == NULL) {
            fuzz_signed(data, size, (const uint8_t *) "", 0, flags);

        } else {
            fuzz_signed(data, sep - data, sep + 1, size - (sep - data) - 1,
                        flags);
        }
    }

    return 0;
}
