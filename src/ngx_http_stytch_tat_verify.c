/*
 * Stytch session JWT verification: see ngx_http_stytch_tat_verify.h.
 * No nginx headers here; OpenSSL's EVP API for the signatures, jansson for
 * the JSON.
 */


#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_verify.h"


/* "stytch.com/" project_id is the issuer of a project's session JWTs */
#define NGX_HTTP_STYTCH_TAT_VERIFY_ISS_PREFIX  "stytch.com/"

/* a now this far from the epoch's ends keeps now +- leeway in range */
#define NGX_HTTP_STYTCH_TAT_VERIFY_NOW_MAX     (1LL << 62)


static int ngx_http_stytch_tat_verify_depth(json_t *v, int depth);
static json_t *ngx_http_stytch_tat_verify_json(
    ngx_http_stytch_tat_verify_part_t *part);
static int ngx_http_stytch_tat_verify_signature(
    const ngx_http_stytch_tat_verify_keys_t *keys, EVP_PKEY *pkey,
    const char *input, size_t len, ngx_http_stytch_tat_verify_part_t *sig,
    const char **why);
static int ngx_http_stytch_tat_verify_claims(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_iss(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params);
static int ngx_http_stytch_tat_verify_aud(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params);
static int ngx_http_stytch_tat_verify_ids(
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_binding(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_copy_out(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_printable(const char *s, size_t len);
static int ngx_http_stytch_tat_verify_typ(json_t *header);
static int ngx_http_stytch_tat_verify_times(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_params_ok(
    const ngx_http_stytch_tat_verify_params_t *params, const char *token,
    size_t len);
static int ngx_http_stytch_tat_verify_split(const char *token, size_t len,
    ngx_http_stytch_tat_verify_part_t *part, size_t *signed_len,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_header(json_t *header,
    ngx_http_stytch_tat_verify_result_t *res);
static int ngx_http_stytch_tat_verify_key_find(
    const ngx_http_stytch_tat_verify_keys_t *keys,
    ngx_http_stytch_tat_verify_result_t *res, EVP_PKEY **pkey);
static int ngx_http_stytch_tat_verify_payload(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res);


static const char *const  ngx_http_stytch_tat_verify_names[] = {
    "ok",
    "malformed",
    "alg",
    "unknown_kid",
    "signature",
    "iss",
    "aud",
    "expired",
    "not_yet_valid",
    "too_big",
    "binding",
    "typ",
    "lifetime",
    "kid_ambiguous",
    "error"
};


/*
 * A part of the token, or a JWK member, decoded from strict base64url
 * (ngx_http_stytch_tat_b64url_decode()) into memory of its own.  Returns
 * -1 for input that is not that, -2 when out of memory.
 */

int
ngx_http_stytch_tat_verify_part(const char *src, size_t len,
    ngx_http_stytch_tat_verify_part_t *out)
{
    out->len = 0;
    out->data = malloc(ngx_http_stytch_tat_b64url_decoded_len(len) + 1);

    if (out->data == NULL) {
        return -2;
    }

    if (ngx_http_stytch_tat_b64url_decode(out->data, &out->len, src, len)
        != 0)
    {
        free(out->data);
        out->data = NULL;
        return -1;
    }

    return 0;
}


/*
 * jansson bounds its own recursion (2048 levels); this bounds what the
 * module accepts, so that no later reader of the claims walks deeper.
 */

static int
ngx_http_stytch_tat_verify_depth(json_t *v, int depth)
{
    size_t       i;
    json_t      *item;
    const char  *name;

    if (!json_is_object(v) && !json_is_array(v)) {
        return 0;
    }

    if (depth > NGX_HTTP_STYTCH_TAT_VERIFY_DEPTH_MAX) {
        return -1;
    }

    if (json_is_array(v)) {
        json_array_foreach(v, i, item) {
            if (ngx_http_stytch_tat_verify_depth(item, depth + 1) != 0) {
                return -1;
            }
        }

        return 0;
    }

    json_object_foreach(v, name, item) {
        if (ngx_http_stytch_tat_verify_depth(item, depth + 1) != 0) {
            return -1;
        }
    }

    return 0;
}


/* a decoded part as a JSON object: duplicate names are ambiguous, refused */

static json_t *
ngx_http_stytch_tat_verify_json(ngx_http_stytch_tat_verify_part_t *part)
{
    json_t  *obj;

    obj = json_loadb((const char *) part->data, part->len,
                     JSON_REJECT_DUPLICATES, NULL);

    if (!json_is_object(obj) || ngx_http_stytch_tat_verify_depth(obj, 1) != 0)
    {
        json_decref(obj);
        return NULL;
    }

    return obj;
}


/* a non-empty JSON string and its length, or NULL */

const char *
ngx_http_stytch_tat_verify_string(json_t *v, size_t *len)
{
    if (!json_is_string(v) || json_string_length(v) == 0) {
        *len = 0;
        return NULL;
    }

    *len = json_string_length(v);

    return json_string_value(v);
}


static int
ngx_http_stytch_tat_verify_signature(
    const ngx_http_stytch_tat_verify_keys_t *keys, EVP_PKEY *pkey,
    const char *input, size_t len, ngx_http_stytch_tat_verify_part_t *sig,
    const char **why)
{
    int            rc;
    EVP_MD_CTX    *ctx;
    EVP_PKEY_CTX  *pctx;

    /* RFC 7518 3.3: the signature is exactly as long as the modulus */

    if (sig->len != (size_t) EVP_PKEY_get_size(pkey)) {
        *why = "signature of the wrong size";
        return NGX_HTTP_STYTCH_TAT_VERIFY_SIGNATURE;
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        *why = "out of memory";
        return NGX_HTTP_STYTCH_TAT_VERIFY_ERROR;
    }

    if (EVP_DigestVerifyInit(ctx, &pctx, keys->sha256, NULL, pkey) != 1
        || EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
    {
        *why = "cannot set up RS256 verification";
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_ERROR;

    } else if (EVP_DigestVerify(ctx, sig->data, sig->len,
                                (const unsigned char *) input, len)
               != 1)
    {
        *why = "signature does not verify";
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_SIGNATURE;

    } else {
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_OK;
    }

    EVP_MD_CTX_free(ctx);
    ERR_clear_error();

    return rc;
}


/* the outputs, copied into one block that the result owns */

static int
ngx_http_stytch_tat_verify_copy_out(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    int                            i;
    char                          *p, *dump;
    json_t                        *v;
    size_t                         size;
    ngx_http_stytch_tat_field_t    src[4], *dst[4];

    dst[0] = &res->sub;
    dst[1] = &res->session_id;
    dst[2] = &res->organization_id;
    dst[3] = &res->claim;

    src[0].data = ngx_http_stytch_tat_verify_string(
                      json_object_get(claims, "sub"), &src[0].len);

    src[1].data = ngx_http_stytch_tat_verify_string(
                      json_object_get(json_object_get(claims,
                                          "https://stytch.com/session"),
                                      "id"),
                      &src[1].len);

    src[2].data = ngx_http_stytch_tat_verify_string(
                      json_object_get(json_object_get(claims,
                                          "https://stytch.com/organization"),
                                      "organization_id"),
                      &src[2].len);

    src[3].data = NULL;
    src[3].len = 0;
    dump = NULL;

    v = (params->claim == NULL)
        ? NULL : json_object_getn(claims, params->claim, params->claim_len);

    if (json_is_string(v)) {
        if (ngx_http_stytch_tat_verify_printable(json_string_value(v),
                                                 json_string_length(v)))
        {
            src[3].data = json_string_value(v);
            src[3].len = json_string_length(v);
        }

    } else if (v != NULL) {
        dump = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (dump == NULL) {
            return -1;
        }

        src[3].data = dump;
        src[3].len = strlen(dump);
    }

    size = 0;

    for (i = 0; i < 4; i++) {
        size += (src[i].data == NULL) ? 0 : src[i].len + 1;
    }

    if (size == 0) {
        return 0;
    }

    res->mem = malloc(size);
    if (res->mem == NULL) {
        free(dump);
        return -1;
    }

    p = res->mem;

    for (i = 0; i < 4; i++) {
        if (src[i].data == NULL) {
            continue;
        }

        memcpy(p, src[i].data, src[i].len);
        p[src[i].len] = '\0';

        dst[i]->data = p;
        dst[i]->len = src[i].len;

        p += src[i].len + 1;
    }

    free(dump);

    return 0;
}


/*
 * exp, iat and nbf.  Stytch's are integers (a fraction is not theirs), and
 * so bounded that no sum below overflows: iat <= now + skew, exp <= iat +
 * max_lifetime.
 */

static int
ngx_http_stytch_tat_verify_times(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    json_t     *exp, *iat, *nbf;
    long long   leeway, skew;

    leeway = params->leeway;
    skew = params->skew;

    if (leeway < 0) {
        leeway = 0;

    } else if (leeway > NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX) {
        leeway = NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX;
    }

    if (skew < 0) {
        skew = 0;

    } else if (skew > NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX) {
        skew = NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX;
    }

    exp = json_object_get(claims, "exp");
    iat = json_object_get(claims, "iat");
    nbf = json_object_get(claims, "nbf");

    if (!json_is_integer(exp) || !json_is_integer(iat)
        || (nbf != NULL && !json_is_integer(nbf))
        || res->exp < 0 || res->iat < 0)
    {
        res->reason = "exp or iat missing, or exp, iat or nbf not a "
                      "non-negative integer";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    if (res->iat > params->now + skew
        || (nbf != NULL && res->nbf > params->now + skew))
    {
        res->reason = "not valid yet (iat or nbf)";
        return NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID;
    }

    if (res->exp < res->iat || res->exp - res->iat > params->max_lifetime) {
        res->reason = "exp before iat, or too long after it";
        return NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME;
    }

    if (res->exp <= params->now - leeway) {
        res->reason = "expired";
        return NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED;
    }

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/*
 * jose's check of typ (jwtVerify's "typ" option, as Stytch's SDK sets it):
 * a string equal to "JWT" in any case, "application/" before it allowed.
 */

static int
ngx_http_stytch_tat_verify_typ(json_t *header)
{
    size_t       len;
    const char  *typ;

    typ = ngx_http_stytch_tat_verify_string(json_object_get(header, "typ"),
                                            &len);
    if (typ == NULL) {
        return 0;
    }

    if (len > sizeof("application/") - 1
        && strncasecmp(typ, "application/", sizeof("application/") - 1) == 0)
    {
        typ += sizeof("application/") - 1;
        len -= sizeof("application/") - 1;
    }

    return len == 3 && strncasecmp(typ, "jwt", 3) == 0;
}


/* no C0 control character and no DEL: safe in a header or a log line */

static int
ngx_http_stytch_tat_verify_printable(const char *s, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* iss: "stytch.com/" and the project id */

static int
ngx_http_stytch_tat_verify_iss(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params)
{
    size_t       len, plen;
    const char  *s;

    plen = sizeof(NGX_HTTP_STYTCH_TAT_VERIFY_ISS_PREFIX) - 1;

    s = ngx_http_stytch_tat_verify_string(json_object_get(claims, "iss"),
                                          &len);

    return s != NULL && len == plen + params->project_id_len
           && memcmp(s, NGX_HTTP_STYTCH_TAT_VERIFY_ISS_PREFIX, plen) == 0
           && memcmp(s + plen, params->project_id, params->project_id_len)
              == 0;
}


/* aud: RFC 7519 4.1.3, one string, or an array of them, names the project */

static int
ngx_http_stytch_tat_verify_aud(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params)
{
    size_t       i, len;
    json_t      *aud, *v;
    const char  *s;

    aud = json_object_get(claims, "aud");

    if (json_is_array(aud)) {
        json_array_foreach(aud, i, v) {
            s = ngx_http_stytch_tat_verify_string(v, &len);

            if (s != NULL && len == params->project_id_len
                && memcmp(s, params->project_id, len) == 0)
            {
                return 1;
            }
        }

        return 0;
    }

    s = ngx_http_stytch_tat_verify_string(aud, &len);

    return s != NULL && len == params->project_id_len
           && memcmp(s, params->project_id, len) == 0;
}


/* the ids copied out: a sub and a session id, all headed upstream */

static int
ngx_http_stytch_tat_verify_ids(ngx_http_stytch_tat_verify_result_t *res)
{
    if (res->sub.data == NULL) {
        res->reason = "no sub";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    if (res->session_id.data == NULL) {
        res->reason = "no https://stytch.com/session id";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    /* they go upstream as headers: a CR or LF there would split them */

    if (!ngx_http_stytch_tat_verify_printable(res->sub.data, res->sub.len)
        || !ngx_http_stytch_tat_verify_printable(res->session_id.data,
                                                 res->session_id.len)
        || !ngx_http_stytch_tat_verify_printable(res->organization_id.data,
                                                 res->organization_id.len))
    {
        res->reason = "a sub, session or organization id with control "
                      "characters";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/* the binding claim, when the caller expects a value of it */

static int
ngx_http_stytch_tat_verify_binding(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    json_t  *v;

    if (params->expected.data == NULL) {
        return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
    }

    v = json_object_getn(claims, params->claim, params->claim_len);

    if (v == NULL) {
        res->reason = "no binding claim";
        return NGX_HTTP_STYTCH_TAT_VERIFY_BINDING;
    }

    if (!json_is_string(v) || json_string_length(v) != params->expected.len
        || memcmp(json_string_value(v), params->expected.data,
                  params->expected.len) != 0)
    {
        res->reason = "binding claim does not match the identity";
        return NGX_HTTP_STYTCH_TAT_VERIFY_BINDING;
    }

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


static int
ngx_http_stytch_tat_verify_claims(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    int  rc;

    if (!ngx_http_stytch_tat_verify_iss(claims, params)) {
        res->reason = "iss is not stytch.com/ and the project id";
        return NGX_HTTP_STYTCH_TAT_VERIFY_ISS;
    }

    if (!ngx_http_stytch_tat_verify_aud(claims, params)) {
        res->reason = "aud does not name the project";
        return NGX_HTTP_STYTCH_TAT_VERIFY_AUD;
    }

    rc = ngx_http_stytch_tat_verify_ids(res);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        return rc;
    }

    rc = ngx_http_stytch_tat_verify_times(claims, params, res);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        return rc;
    }

    return ngx_http_stytch_tat_verify_binding(claims, params, res);
}


/* the parameters a caller must get right, whatever the token */

static int
ngx_http_stytch_tat_verify_params_ok(
    const ngx_http_stytch_tat_verify_params_t *params, const char *token,
    size_t len)
{
    return !(params == NULL || params->project_id == NULL
             || params->project_id_len == 0
             || params->now < 0
             || params->now > NGX_HTTP_STYTCH_TAT_VERIFY_NOW_MAX
             || params->max_lifetime < 1
             || params->max_lifetime > (1LL << 31)
             || (params->expected.data != NULL && params->claim == NULL)
             || (token == NULL && len != 0));
}


/*
 * header.payload.signature: exactly two dots, three strict base64url
 * parts, decoded into part[]; *signed_len is the length of the signing
 * input, the token's text up to the second dot.
 */

static int
ngx_http_stytch_tat_verify_split(const char *token, size_t len,
    ngx_http_stytch_tat_verify_part_t *part, size_t *signed_len,
    ngx_http_stytch_tat_verify_result_t *res)
{
    int          n;
    const char  *dot1, *dot2;

    dot1 = (len == 0) ? NULL : memchr(token, '.', len);
    dot2 = (dot1 == NULL) ? NULL : memchr(dot1 + 1, '.',
                                          len - (dot1 + 1 - token));

    if (dot2 == NULL || dot1 == token || dot2 == dot1 + 1
        || memchr(dot2 + 1, '.', len - (dot2 + 1 - token)) != NULL)
    {
        res->reason = "not three dot-separated parts";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    n = ngx_http_stytch_tat_verify_part(token, dot1 - token, &part[0]);

    if (n == 0) {
        n = ngx_http_stytch_tat_verify_part(dot1 + 1, dot2 - dot1 - 1,
                                            &part[1]);
    }

    if (n == 0) {
        n = ngx_http_stytch_tat_verify_part(dot2 + 1, len - (dot2 + 1 - token),
                                            &part[2]);
    }

    if (n != 0) {
        res->reason = (n == -2) ? "out of memory"
                                : "a part that is not strict base64url";
        return (n == -2) ? NGX_HTTP_STYTCH_TAT_VERIFY_ERROR
                         : NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    *signed_len = dot2 - token;

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/* the JOSE header: alg, typ, crit and the kid, copied into res */

static int
ngx_http_stytch_tat_verify_header(json_t *header,
    ngx_http_stytch_tat_verify_result_t *res)
{
    size_t       kid_len;
    const char  *alg, *kid;

    /*
     * Only RS256: "none", HMAC with the public key as its secret and
     * every other algorithm a token may ask for are refused here, before
     * any key is looked at.
     */

    alg = json_string_value(json_object_get(header, "alg"));

    if (alg == NULL || strcmp(alg, "RS256") != 0) {
        res->reason = "alg is not RS256";
        return NGX_HTTP_STYTCH_TAT_VERIFY_ALG;
    }

    if (!ngx_http_stytch_tat_verify_typ(header)) {
        res->reason = "typ is not JWT";
        return NGX_HTTP_STYTCH_TAT_VERIFY_TYP;
    }

    /* RFC 7515 4.1.11: no extension is understood here, so none is */

    if (json_object_get(header, "crit") != NULL) {
        res->reason = "header with crit";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    kid = ngx_http_stytch_tat_verify_string(json_object_get(header, "kid"),
                                            &kid_len);

    if (kid == NULL || kid_len > NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX) {
        res->reason = "no kid, or one over 128 bytes";
        return NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
    }

    memcpy(res->kid, kid, kid_len);
    res->kid[kid_len] = '\0';
    res->kid_len = kid_len;

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/* the one key of the set under the token's kid (keys may be NULL) */

static int
ngx_http_stytch_tat_verify_key_find(
    const ngx_http_stytch_tat_verify_keys_t *keys,
    ngx_http_stytch_tat_verify_result_t *res, EVP_PKEY **pkey)
{
    size_t  i;

    *pkey = NULL;

    for (i = 0; keys != NULL && i < keys->nkeys; i++) {
        if (keys->key[i].kid_len == res->kid_len
            && memcmp(keys->key[i].kid, res->kid, res->kid_len) == 0)
        {
            *pkey = keys->key[i].pkey;
            break;
        }
    }

    if (*pkey == NULL) {
        res->reason = "kid not in the JWKS";
        return NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID;
    }

    if (keys->key[i].ambiguous) {
        res->reason = "kid of two keys in the JWKS";
        return NGX_HTTP_STYTCH_TAT_VERIFY_KID_AMBIGUOUS;
    }

    return NGX_HTTP_STYTCH_TAT_VERIFY_OK;
}


/* the claims of a token whose signature has verified: outputs, checks */

static int
ngx_http_stytch_tat_verify_payload(json_t *claims,
    const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    int      rc;
    json_t  *v;

    if (ngx_http_stytch_tat_verify_copy_out(claims, params, res) != 0) {
        res->reason = "out of memory";
        return NGX_HTTP_STYTCH_TAT_VERIFY_ERROR;
    }

    v = json_object_get(claims, "exp");
    res->exp = json_is_integer(v) ? json_integer_value(v) : 0;
    v = json_object_get(claims, "nbf");
    res->nbf = json_is_integer(v) ? json_integer_value(v) : 0;
    v = json_object_get(claims, "iat");
    res->iat = json_is_integer(v) ? json_integer_value(v) : 0;

    rc = ngx_http_stytch_tat_verify_claims(claims, params, res);

    if (rc == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        res->reason = "ok";
    }

    return rc;
}


int
ngx_http_stytch_tat_verify(const ngx_http_stytch_tat_verify_keys_t *keys,
    const ngx_http_stytch_tat_verify_params_t *params, const char *token,
    size_t len, ngx_http_stytch_tat_verify_result_t *res)
{
    int                                 rc;
    json_t                             *header, *claims;
    size_t                              i, signed_len;
    EVP_PKEY                           *pkey;
    const char                         *why;
    ngx_http_stytch_tat_verify_part_t   part[3];

    memset(res, 0, sizeof(ngx_http_stytch_tat_verify_result_t));
    memset(part, 0, sizeof(part));

    header = NULL;
    claims = NULL;

    if (!ngx_http_stytch_tat_verify_params_ok(params, token, len)) {
        res->reason = "bad verification parameters";
        return NGX_HTTP_STYTCH_TAT_VERIFY_ERROR;
    }

    if (len > NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX) {
        res->reason = "token over 8192 bytes";
        return NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG;
    }

    rc = ngx_http_stytch_tat_verify_split(token, len, part, &signed_len, res);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        goto done;
    }

    header = ngx_http_stytch_tat_verify_json(&part[0]);

    if (header == NULL) {
        res->reason = "header is not a JSON object";
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    rc = ngx_http_stytch_tat_verify_header(header, res);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        goto done;
    }

    rc = ngx_http_stytch_tat_verify_key_find(keys, res, &pkey);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        goto done;
    }

    rc = ngx_http_stytch_tat_verify_signature(keys, pkey, token, signed_len,
                                              &part[2], &why);
    if (rc != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        res->reason = why;
        goto done;
    }

    claims = ngx_http_stytch_tat_verify_json(&part[1]);

    if (claims == NULL) {
        res->reason = "claims are not a JSON object";
        rc = NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED;
        goto done;
    }

    rc = ngx_http_stytch_tat_verify_payload(claims, params, res);

done:

    json_decref(header);
    json_decref(claims);

    for (i = 0; i < 3; i++) {
        free(part[i].data);
    }

    return rc;
}


void
ngx_http_stytch_tat_verify_result_free(ngx_http_stytch_tat_verify_result_t *res)
{
    free(res->mem);

    res->mem = NULL;
    res->sub.data = NULL;
    res->session_id.data = NULL;
    res->organization_id.data = NULL;
    res->claim.data = NULL;
}


const char *
ngx_http_stytch_tat_verify_code_name(int rc)
{
    if (rc < 0 || rc >= NGX_HTTP_STYTCH_TAT_VERIFY_NCODES) {
        return "unknown";
    }

    return ngx_http_stytch_tat_verify_names[rc];
}
