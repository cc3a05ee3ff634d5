/*
 * Local verification of Stytch session JWTs against the project's JWKS
 * (GET /v1/sessions/jwks/{project_id}, B2B /v1/b2b/sessions/jwks/...).
 * Free of nginx headers, like ngx_http_stytch_tat_jose.h: no I/O, no
 * clock, no global state; the caller passes the JWKS text, the token, the
 * time and the leeway, and owns what comes out.
 *
 * A key set is parsed once per JWKS document (per worker: an EVP_PKEY
 * cannot live in a shared zone, the document's text can) and then used
 * read-only by any number of verifications.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_VERIFY_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_VERIFY_H_INCLUDED_


#include <stddef.h>

#include "ngx_http_stytch_tat_response.h"


/* results of ngx_http_stytch_tat_verify() */
#define NGX_HTTP_STYTCH_TAT_VERIFY_OK             0
#define NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED      1  /* not a usable JWS/JWT */
#define NGX_HTTP_STYTCH_TAT_VERIFY_ALG            2  /* alg is not RS256 */
#define NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID    3  /* refetch the JWKS */
#define NGX_HTTP_STYTCH_TAT_VERIFY_SIGNATURE      4
#define NGX_HTTP_STYTCH_TAT_VERIFY_ISS            5
#define NGX_HTTP_STYTCH_TAT_VERIFY_AUD            6
#define NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED        7
#define NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID  8
#define NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG        9
#define NGX_HTTP_STYTCH_TAT_VERIFY_BINDING        10
#define NGX_HTTP_STYTCH_TAT_VERIFY_TYP            11 /* typ is not JWT */
#define NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME       12 /* exp - iat too long */
#define NGX_HTTP_STYTCH_TAT_VERIFY_KID_AMBIGUOUS  13 /* two keys, one kid */
#define NGX_HTTP_STYTCH_TAT_VERIFY_ERROR          14 /* memory, bad params */

#define NGX_HTTP_STYTCH_TAT_VERIFY_NCODES         15

/*
 * The leeway on exp that the module uses unless told otherwise: none, as
 * Stytch's SDKs (a revoked session's JWT lives no longer at the edge than
 * in the SDK).  nbf and iat allow clock skew: the leeway, and at least
 * SKEW seconds.
 */
#define NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY         0
#define NGX_HTTP_STYTCH_TAT_VERIFY_SKEW           30
/* a larger leeway is taken as this one: clock skew, not a second life */
#define NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX     300
/* Stytch's session JWTs live iat + 300 s: exp - iat may be no longer */
#define NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME_MAX   300

/* Stytch's session JWTs are about 1 KB; cookies end at 4 KB anyway */
#define NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX      8192
/* nesting of the header and of the claims; Stytch's nest 5 deep */
#define NGX_HTTP_STYTCH_TAT_VERIFY_DEPTH_MAX      16
#define NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX        128

/* the JWKS document: Stytch publishes two keys, more during a rotation */
#define NGX_HTTP_STYTCH_TAT_VERIFY_JWKS_MAX       65536
#define NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX       16
/* RSA moduli accepted, as for the module's own signing keys */
#define NGX_HTTP_STYTCH_TAT_VERIFY_RSA_MIN_BITS   2048
#define NGX_HTTP_STYTCH_TAT_VERIFY_RSA_MAX_BITS   8192


typedef struct ngx_http_stytch_tat_verify_keys_s
    ngx_http_stytch_tat_verify_keys_t;


typedef struct {
    /* "iss" must be "stytch.com/" project_id, "aud" must contain it */
    const char                   *project_id;
    size_t                        project_id_len;

    /*
     * seconds since the epoch; the leeway on exp, 0..LEEWAY_MAX; how far
     * in the future nbf and iat may be (clock skew), 0..LEEWAY_MAX; the
     * longest exp - iat, 1..2^31
     */
    long long                     now;
    long long                     leeway;
    long long                     skew;
    long long                     max_lifetime;

    /*
     * An optional top-level claim (the identity binding the module sets
     * through session_custom_claims) to copy out; when expected.data is
     * set, the claim must be a JSON string equal to it, else BINDING.
     * A string claim with control characters is copied out as empty.
     */
    const char                   *claim;
    size_t                        claim_len;
    ngx_http_stytch_tat_field_t   expected;
} ngx_http_stytch_tat_verify_params_t;


/*
 * What a verification found.  The strings are copies, NUL-terminated,
 * owned by the result: release them with
 * ngx_http_stytch_tat_verify_result_free().
 *
 * sub, the session id (the "id" of the https://stytch.com/session claim),
 * organization_id (of https://stytch.com/organization), the claim the
 * caller named and the times are read only once the signature has
 * verified, and are the identity only when the result is OK; after
 * ISS, AUD, EXPIRED, NOT_YET_VALID, LIFETIME or BINDING they say whose
 * token it was, for the log line.  sub, the session id and the
 * organization id are free of control characters (a token whose ids have
 * any is MALFORMED): they are headed upstream.  kid is the token's, as
 * soon as the header is read: chosen by whoever sent the token, like the
 * other strings before OK, so escape them all before logging.
 */

typedef struct {
    ngx_http_stytch_tat_field_t   sub;             /* user or member id */
    ngx_http_stytch_tat_field_t   session_id;      /* its "id" */
    ngx_http_stytch_tat_field_t   organization_id; /* B2B, or empty */
    ngx_http_stytch_tat_field_t   claim;           /* params->claim, or empty;
                                                      compact JSON if not a
                                                      string */
    long long                     exp;
    long long                     nbf;             /* 0 if absent */
    long long                     iat;             /* 0 if absent */

    char                          kid[NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX + 1];
    size_t                        kid_len;

    const char                   *reason;          /* static, for logs */
    void                         *mem;             /* owns the strings */
} ngx_http_stytch_tat_verify_result_t;


/*
 * Parses a JWKS document into a key set.  Keys that are not RSA for
 * RS256 signatures (kty "RSA"; alg "RS256" or absent; use "sig" or
 * absent; key_ops, if present, an array with "verify"), that have no kid
 * or one longer than KID_MAX, a modulus outside RSA_MIN_BITS..RSA_MAX_BITS,
 * an even or tiny exponent or one over 64 bits, or base64url that is not
 * strict, are skipped and counted.  Two usable keys under one kid make
 * that kid ambiguous, as jose finds it (JWKSMultipleMatchingKeys): a token
 * naming it is refused (KID_AMBIGUOUS), and the kid counts as skipped.
 *
 * Returns 0 and a key set to free with ngx_http_stytch_tat_verify_keys_free()
 * when at least one key is usable; *reason then names why the first
 * skipped key was skipped, or is NULL.  Returns -1 with *reason set when
 * the document is not JSON, larger than JWKS_MAX, holds more than
 * KEYS_MAX keys, or no usable one.
 */
int ngx_http_stytch_tat_verify_keys_parse(const unsigned char *json,
    size_t len, ngx_http_stytch_tat_verify_keys_t **keys,
    const char **reason);

size_t ngx_http_stytch_tat_verify_keys_count(
    const ngx_http_stytch_tat_verify_keys_t *keys);
size_t ngx_http_stytch_tat_verify_keys_skipped(
    const ngx_http_stytch_tat_verify_keys_t *keys);

void ngx_http_stytch_tat_verify_keys_free(
    ngx_http_stytch_tat_verify_keys_t *keys);

/*
 * Verifies a compact JWS Stytch session JWT of len bytes, in this order:
 * size (TOO_BIG over TOKEN_MAX); three strict base64url parts and a header
 * JSON object (MALFORMED); alg exactly "RS256" (ALG); typ "JWT" as jose
 * compares it, case aside and "application/" allowed (TYP); no "crit" and
 * a kid (MALFORMED if not, or too long) in keys (UNKNOWN_KID; keys may be
 * NULL: no JWKS yet) naming one key only (KID_AMBIGUOUS); the
 * RSASSA-PKCS1-v1_5 SHA-256 signature (SIGNATURE); the claims a JSON
 * object without duplicate names, nested at most DEPTH_MAX deep
 * (MALFORMED); iss (ISS); aud (AUD); a sub and a session id, and any
 * organization id, without control characters (MALFORMED); exp and iat
 * non-negative integers, nbf absent or one (MALFORMED); iat <= now + skew
 * and nbf <= now + skew (NOT_YET_VALID); iat <= exp <= iat + max_lifetime
 * (LIFETIME); now < exp + leeway (EXPIRED); the binding claim (BINDING).
 *
 * ERROR: out of memory, or parameters the caller got wrong (no project
 * id, now outside 0..2^62, max_lifetime outside 1..2^31, an expected
 * value without a claim name).
 * res is always set (res->reason too) and must always be freed.
 */
int ngx_http_stytch_tat_verify(const ngx_http_stytch_tat_verify_keys_t *keys,
    const ngx_http_stytch_tat_verify_params_t *params, const char *token,
    size_t len, ngx_http_stytch_tat_verify_result_t *res);

void ngx_http_stytch_tat_verify_result_free(
    ngx_http_stytch_tat_verify_result_t *res);

/* "ok", "malformed", "alg", ...: a result as a word for counters */
const char *ngx_http_stytch_tat_verify_code_name(int rc);


/*
 * Between the verifier's two files (ngx_http_stytch_tat_verify.c, the
 * token; _verify_keys.c, the key set), not for their callers: a key set's
 * layout, and the helpers both use.
 */

#include <openssl/evp.h>

struct json_t;

typedef struct {
    EVP_PKEY                          *pkey;
    unsigned                           ambiguous:1;  /* another key's kid */
    size_t                             kid_len;
    char                               kid[NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX
                                           + 1];
} ngx_http_stytch_tat_verify_key_t;


struct ngx_http_stytch_tat_verify_keys_s {
    EVP_MD                            *sha256;   /* fetched once per set */
    size_t                             nkeys;
    size_t                             skipped;
    ngx_http_stytch_tat_verify_key_t   key[NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX];
};


/* a base64url part of a token or a JWK member, decoded */
typedef struct {
    unsigned char                     *data;
    size_t                             len;
} ngx_http_stytch_tat_verify_part_t;


/* strict base64url into memory of its own: 0, -1 not that, -2 no memory */
int ngx_http_stytch_tat_verify_part(const char *src, size_t len,
    ngx_http_stytch_tat_verify_part_t *out);

/* a non-empty JSON string and its length, or NULL */
const char *ngx_http_stytch_tat_verify_string(struct json_t *v, size_t *len);


#endif /* _NGX_HTTP_STYTCH_TAT_VERIFY_H_INCLUDED_ */
