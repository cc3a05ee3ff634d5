/*
 * ngx_http_stytch_tat_module: types shared by the module's files, and the
 * files' functions.  The file map, "(pure)" for the files free of nginx
 * headers (unit-tested and fuzzed):
 *
 * The module
 *   ngx_http_stytch_tat_module.c         the module, its directive table,
 *                                        configuration, merge, variables
 *   src/ngx_http_stytch_tat_ctx.c        the request's context, found again
 *                                        after a redirect, its leases freed
 *
 * The exchange: identity -> token -> Stytch -> session upstream
 *   src/ngx_http_stytch_tat_identity.c   the identity's directives, and its
 *                                        values read per request
 *   src/ngx_http_stytch_tat_mint.c       minting the token, $stytch_tat_jwt
 *   src/ngx_http_stytch_tat_keys.c       signing keys and their JWKS
 *   src/ngx_http_stytch_tat_credentials.c  stytch_tat_credentials
 *   src/ngx_http_stytch_tat_exchange.c   the precontent handler: the
 *                                        exchange orchestrated, every session
 *                                        granted and handed on
 *   src/ngx_http_stytch_tat_subrequest.c the module's subrequests to Stytch,
 *                                        their credentials, their checks
 *   src/ngx_http_stytch_tat_capture.c    filters keeping Stytch's answer
 *   src/ngx_http_stytch_tat_outcome.c    answer or failure -> status, error
 *   src/ngx_http_stytch_tat_response.c   Stytch's answers read (pure)
 *   src/ngx_http_stytch_tat_headers.c    client X-Stytch-* dropped, session
 *                                        headers and cookies added
 *
 * The zone
 *   src/ngx_http_stytch_tat_zone.c       the zone itself: directives, slab,
 *                                        rbtree, LRU, expiry, counters
 *   src/ngx_http_stytch_tat_key.c        the identity's key, and cluster
 *                                        mode's keyed binding
 *   src/ngx_http_stytch_tat_session.c    sessions in the zone: lookup and
 *                                        store under the lock
 *   src/ngx_http_stytch_tat_cache_state.c  the single-flight and refresh
 *                                        rules (pure)
 *   src/ngx_http_stytch_tat_doc.c        a Stytch document kept in a zone
 *
 * Sessions the client brings
 *   src/ngx_http_stytch_tat_client.c     stytch_tat_verify, and
 *                                        $stytch_session_claim_NAME
 *   src/ngx_http_stytch_tat_cluster.c    cluster mode's bound cookie
 *   src/ngx_http_stytch_tat_verified.c   a client's session JWT checked,
 *                                        known good in the zone
 *   src/ngx_http_stytch_tat_stytch_jwks.c  Stytch's session JWKS, fetched
 *                                        and kept in the zone
 *   src/ngx_http_stytch_tat_verify.c     session JWTs verified (pure)
 *   src/ngx_http_stytch_tat_verify_keys.c  Stytch's JWKS parsed into keys
 *                                        (pure)
 *
 * Authorization at the edge
 *   src/ngx_http_stytch_tat_authz.c      the requirements, decided per
 *                                        request; the session's variables
 *   src/ngx_http_stytch_tat_policy.c     Stytch's RBAC policy, fetched and
 *                                        kept in the zone
 *   src/ngx_http_stytch_tat_rbac.c       policy, roles, factors, verdicts
 *                                        (pure)
 *
 * Elsewhere
 *   src/ngx_http_stytch_tat_jwks.c       the JWKS content handler
 *   src/ngx_http_stytch_tat_status.c     stytch_tat_status
 *   src/ngx_http_stytch_tat_jose.c       JOSE primitives (pure)
 *   src/ngx_http_stytch_tat_claims.c     claims JSON (pure)
 *   src/ngx_http_stytch_tat_version.h    the release's version
 */


#ifndef _NGX_HTTP_STYTCH_TAT_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_claims.h"
#include "ngx_http_stytch_tat_cache_state.h"
#include "ngx_http_stytch_tat_verify.h"
#include "ngx_http_stytch_tat_rbac.h"


/* a kid is printable ASCII, short enough for any header */
#define NGX_HTTP_STYTCH_TAT_KID_MAX     128
#define NGX_HTTP_STYTCH_TAT_CLAIMS_MAX  32


typedef struct {
    EVP_PKEY                   *pkey;
    ngx_http_stytch_tat_signer_t *signer;
    ngx_int_t                   alg;
    ngx_str_t                   kid;
    ngx_str_t                   header;      /* base64url JOSE header */
    ngx_str_t                   jwk;         /* public JWK, JSON */
    size_t                      sig_len;
    ngx_str_t                   file;        /* for log lines */
} ngx_http_stytch_tat_key_t;


typedef struct {
    ngx_str_t                   name;        /* NUL-terminated */
    ngx_http_complex_value_t    value;
    u_char                      sep;         /* list=SEP, 0 for a string */
} ngx_http_stytch_tat_claim_conf_t;


/*
 * How an identity value is read per request (email, iss, aud, sub, jti,
 * then each claim): one variable alone is read where it is, without the
 * copy ngx_http_complex_value() makes, and a value written exactly as an
 * earlier one is that one's, read once.
 */
typedef struct {
    ngx_int_t                   index;       /* the one variable, or -1 */
    ngx_uint_t                  same;        /* 1 + the earlier one, or 0 */
} ngx_http_stytch_tat_read_t;


#define NGX_HTTP_STYTCH_TAT_DIGEST_LEN  32
/* a session JWKS's source: the first bytes of SHA-256(URI, project id) */
#define NGX_HTTP_STYTCH_TAT_SOURCE_LEN  16

/* the session key's extras: fingerprint, profile, organization */
#define NGX_HTTP_STYTCH_TAT_KEY_EXTRAS  3


/*
 * The first fields of a location's session key, constant there (the
 * fingerprint, a profile and organization written without variables, iss
 * and aud), hashed once at configuration time: a key starts from a copy
 * of md and hashes only the rest.  The values are kept to check that a
 * request's first fields are these very ones.
 */
typedef struct {
    EVP_MD_CTX                 *md;          /* NULL: none */
    ngx_str_t                   extra[NGX_HTTP_STYTCH_TAT_KEY_EXTRAS];
    ngx_uint_t                  nextra;
    ngx_str_t                   claim[2];    /* iss, aud */
    ngx_uint_t                  nclaims;
} ngx_http_stytch_tat_key_prefix_t;


/* how often a request waiting on another's exchange looks again, ms */
#define NGX_HTTP_STYTCH_TAT_WAIT_STEP   10

/* attest latency buckets, milliseconds; the last is +Inf */
#define NGX_HTTP_STYTCH_TAT_BUCKETS  \
    { 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 0 }
#define NGX_HTTP_STYTCH_TAT_NBUCKETS    10

/* calls to Stytch by outcome: the index in stats.calls */
#define NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_OK       0
#define NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_REFUSED  1
#define NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_FAILED   2
#define NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_OK      3
#define NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_FAILED  4
#define NGX_HTTP_STYTCH_TAT_NCALLS                5
#define NGX_HTTP_STYTCH_TAT_COUNT_MINT_RS256      100
#define NGX_HTTP_STYTCH_TAT_COUNT_MINT_ES256      101
#define NGX_HTTP_STYTCH_TAT_COUNT_MINT_EDDSA      102

/* calls to Stytch with no session, a refused identity aside, by why */
#define NGX_HTTP_STYTCH_TAT_FAIL_TOKEN_REFUSED    0   /* the module's token */
#define NGX_HTTP_STYTCH_TAT_FAIL_CONFIGURATION    1   /* its setup: 500 */
#define NGX_HTTP_STYTCH_TAT_FAIL_RATE_LIMITED     2   /* 429: 503 */
#define NGX_HTTP_STYTCH_TAT_FAIL_ERROR            3   /* 502 */
#define NGX_HTTP_STYTCH_TAT_FAIL_TIMEOUT          4   /* 504 */
#define NGX_HTTP_STYTCH_TAT_NFAILS                5


typedef struct {
    ngx_atomic_t                hits;
    ngx_atomic_t                misses;
    ngx_atomic_t                expired;
    ngx_atomic_t                stale;
    ngx_atomic_t                bypass;
    ngx_atomic_t                waits;
    ngx_atomic_t                evictions;
    ngx_atomic_t                uncached;
    ngx_atomic_t                jwt_hits;    /* $stytch_tat_jwt reused */
    ngx_atomic_t                jwt_misses;  /* ... minted and stored */
    ngx_atomic_t                mints[3];    /* RS256, ES256, EdDSA */
    ngx_atomic_t                calls[NGX_HTTP_STYTCH_TAT_NCALLS];
    ngx_atomic_t                latency[NGX_HTTP_STYTCH_TAT_NBUCKETS];
    ngx_atomic_t                latency_sum; /* ms */
    ngx_atomic_t                call_failures[NGX_HTTP_STYTCH_TAT_NFAILS];

    /* Stytch session JWTs verified here, and Stytch's JWKS */
    ngx_atomic_t                verify_ok;
    ngx_atomic_t                verify_cached;   /* known good, not redone */
    ngx_atomic_t                verify_failed[
                                    NGX_HTTP_STYTCH_TAT_VERIFY_NCODES];
    ngx_atomic_t                jwks_fetches;
    ngx_atomic_t                jwks_failures;
    ngx_atomic_t                jwks_refetch_limited;

    /* authorization at the edge, and Stytch's RBAC policy */
    ngx_atomic_t                authz_allowed;
    ngx_atomic_t                authz_denied[4]; /* tenancy_mismatch,
                                                    permission_denied,
                                                    factor_required,
                                                    condition_failed */
    ngx_atomic_t                policy_fetches;
    ngx_atomic_t                policy_failures;
    ngx_atomic_t                policy_unavailable;  /* 503s: no policy */
} ngx_http_stytch_tat_stats_t;




/*
 * A document of Stytch's in the zone (ngx_http_stytch_tat_doc.c): the
 * session JWKS's or the RBAC policy's text, which every worker parses
 * for itself when the generation moves on, and who may fetch it when.
 * Times in seconds are ngx_time(); fetch_until is a lease in
 * ngx_current_msec, as the cache's.
 */

#define NGX_HTTP_STYTCH_TAT_DOC_BACKOFF  5   /* s after a failed fetch */

typedef struct {
    u_char                     *doc;         /* slab, or NULL */
    size_t                      len;
    ngx_uint_t                  generation;  /* of doc, from 1 */
    time_t                      fetched;     /* doc's arrival */
    time_t                      retry_at;    /* no fetch before */
    ngx_msec_t                  fetch_until; /* a fetch in flight, or 0 */
    ngx_pid_t                   fetch_pid;   /* ... by this process */
    u_char                      source[NGX_HTTP_STYTCH_TAT_SOURCE_LEN];
} ngx_http_stytch_tat_doc_shm_t;


/*
 * Stytch's session JWKS as the zone keeps it: the document (see above),
 * and when a token whose kid no key has may fetch it again.
 */

typedef struct {
    ngx_http_stytch_tat_doc_shm_t   doc;
    time_t                      kid_at;      /* a kid refetch after
                                                this + min_refetch */
} ngx_http_stytch_tat_jwks_shm_t;


/*
 * A zone's layout, checked when a reload reuses a zone: a change to the
 * zone's structures or its nodes' (ngx_http_stytch_tat_zone.h,
 * ngx_http_stytch_tat_cache_state.h) changes it.
 */
#define NGX_HTTP_STYTCH_TAT_LAYOUT  0x53540301   /* "ST", 3, 1 */

typedef struct {
    uint32_t                    layout;      /* NGX_HTTP_STYTCH_TAT_LAYOUT */
    uint32_t                    size;        /* of this struct */
    ngx_rbtree_t                rbtree;
    ngx_rbtree_node_t           sentinel;
    ngx_queue_t                 queue;       /* LRU: most recent first */
    ngx_uint_t                  entries;
    ngx_http_stytch_tat_stats_t stats;
    ngx_http_stytch_tat_jwks_shm_t  jwks;
    ngx_http_stytch_tat_doc_shm_t   policy;
} ngx_http_stytch_tat_shctx_t;


typedef struct {
    ngx_http_stytch_tat_shctx_t *sh;
    ngx_slab_pool_t            *shpool;
    ngx_shm_zone_t             *shm_zone;
    ngx_str_t                   file;        /* where first named, */
    ngx_uint_t                  line;        /* for an undeclared zone */

    /* this worker's parse of the zone's Stytch JWKS, and its generation */
    ngx_http_stytch_tat_verify_keys_t *keys;
    ngx_uint_t                  keys_generation;

    /*
     * The one stytch_tat_session_jwks URI and project of the zone's
     * locations (one document per zone), and where they were first set
     */
    ngx_str_t                   jwks_uri;
    ngx_str_t                   jwks_project_id;
    ngx_str_t                   jwks_file;
    ngx_uint_t                  jwks_line;

    /* this worker's parse of the zone's RBAC policy, and its generation */
    ngx_http_stytch_tat_rbac_policy_t *policy;
    ngx_uint_t                  policy_generation;
    ngx_str_t                   policy_uri;  /* the zone's one policy, */
    ngx_str_t                   policy_file; /* where first set */
    ngx_uint_t                  policy_line;

    unsigned                    declared:1;  /* by stytch_tat_zone */
    unsigned                    keys_cleanup:1;
    unsigned                    policy_cleanup:1;
    unsigned                    rbac:1;      /* some location requires of
                                                its sessions: they keep
                                                their roles and factors */
} ngx_http_stytch_tat_zone_t;


typedef struct {
    ngx_array_t                 zones;       /* ngx_http_stytch_tat_zone_t * */
    ngx_array_t                 keys;        /* ngx_http_stytch_tat_key_t */
    ngx_str_t                   jwks;        /* {"keys":[...]} */
    ngx_str_t                   authorization;  /* "Basic ..." */
    ngx_str_t                   project_id;
    EVP_MAC_CTX                *binding_mac;    /* keyed, see client.c */
} ngx_http_stytch_tat_main_conf_t;


typedef struct {
    char                       *directive;
    ngx_str_t                   uri;
    ngx_str_t                   file;
    ngx_uint_t                  line;
} ngx_http_stytch_tat_uri_t;


typedef struct {
    ngx_flag_t                  exchange_used;  /* some "stytch_tat URI" */
    ngx_array_t                *uris;           /* ngx_http_stytch_tat_uri_t */
} ngx_http_stytch_tat_srv_conf_t;


typedef struct {
    ngx_http_complex_value_t   *issuer;
    ngx_http_complex_value_t   *audience;
    ngx_http_complex_value_t   *email;
    ngx_http_complex_value_t   *subject;
    ngx_http_complex_value_t   *token_id;
    ngx_array_t                *claims;      /* claim_conf_t, as minted */
    ngx_array_t                *claims_conf; /* ... of stytch_tat_claim */
    ngx_array_t                *session_claims;  /* claim_conf_t */
    ngx_http_stytch_tat_read_t *reads;       /* the values above */
    ngx_array_t                *trusted;     /* ngx_cidr_t */
    time_t                      token_ttl;

    ngx_str_t                   uri;         /* stytch_tat URI */
    ngx_str_t                   uri_file;    /* where it was set */
    ngx_uint_t                  uri_line;
    ngx_http_complex_value_t   *profile_id;
    ngx_http_complex_value_t   *organization_id;
    ngx_str_t                   organization_claim;  /* claim=NAME */
    ngx_str_t                   organization_file;
    ngx_uint_t                  organization_line;
    ngx_http_complex_value_t   *session_token;
    ngx_http_complex_value_t   *session_jwt;
    time_t                      session_duration;
    ngx_flag_t                  session_duration_set;   /* explicitly */
    ngx_uint_t                  refused_status;
    ngx_flag_t                  fail_open;
    ngx_flag_t                  cookie;
    ngx_flag_t                  pass_session_token;
    size_t                      buffer_size;

    ngx_str_t                   refresh_uri; /* stytch_tat_refresh URI */
    ngx_http_stytch_tat_zone_t *cache;
    ngx_msec_t                  lock_timeout;
    time_t                      cache_refusals;
    ngx_uint_t                  status_format;   /* stytch_tat_status */

    ngx_flag_t                  drop_client_headers;
    ngx_flag_t                  endpoint;    /* stytch_tat_jwks, _status */

    /* stytch_tat_session_jwks URI [refresh=] [min_refetch=] [project_id=] */
    ngx_str_t                   jwks_uri;
    ngx_str_t                   jwks_file;   /* where it was set */
    ngx_uint_t                  jwks_line;
    time_t                      jwks_refresh;
    time_t                      jwks_min_refetch;
    time_t                      jwks_leeway; /* on exp */
    time_t                      jwks_max_lifetime;   /* exp - iat */
    ngx_str_t                   jwks_project_id;   /* or the credentials' */
    u_char                      jwks_source[NGX_HTTP_STYTCH_TAT_SOURCE_LEN];
    ngx_http_complex_value_t   *verify;      /* stytch_tat_verify VALUE */
    ngx_str_t                   verify_file; /* where it was set */
    ngx_uint_t                  verify_line;
    ngx_flag_t                  bind;        /* sessions bound, cookies
                                                verified: cluster mode */
    ngx_int_t                   cookie_jwt_index;      /* $cookie_... */
    ngx_int_t                   cookie_token_index;

    /* authorization at the edge: stytch_tat_require_* */
    ngx_array_t                *permissions;
    ngx_array_t                *factors;
    ngx_array_t                *requires;
    ngx_flag_t                  authz;       /* any of them */
    ngx_str_t                   authz_file;  /* where the last was set */
    ngx_uint_t                  authz_line;

    /* stytch_tat_rbac_policy URI [refresh=] [max_stale=] */
    ngx_str_t                   policy_uri;
    ngx_str_t                   policy_file;
    ngx_uint_t                  policy_line;
    time_t                      policy_refresh;
    time_t                      policy_max_stale;
    u_char                      policy_source[NGX_HTTP_STYTCH_TAT_SOURCE_LEN];

    /* what else makes a cached entry different: key, ttl, duration ... */
    u_char                      fingerprint[32];
    ngx_http_stytch_tat_key_prefix_t  key_prefix;

    /* where minting was configured, for errors found at merge time */
    ngx_str_t                   email_file;
    ngx_uint_t                  email_line;
} ngx_http_stytch_tat_loc_conf_t;


#define NGX_HTTP_STYTCH_TAT_STATE_NEW       0
#define NGX_HTTP_STYTCH_TAT_STATE_WAIT      1   /* subrequest in flight */
#define NGX_HTTP_STYTCH_TAT_STATE_ANSWERED  2   /* its answer is in */
#define NGX_HTTP_STYTCH_TAT_STATE_DONE      3

/* what the subrequest in flight is for */
#define NGX_HTTP_STYTCH_TAT_SR_STYTCH       0   /* attest or refresh */
#define NGX_HTTP_STYTCH_TAT_SR_JWKS         1   /* Stytch's session JWKS */
#define NGX_HTTP_STYTCH_TAT_SR_CLIENT       2   /* the client's session */
#define NGX_HTTP_STYTCH_TAT_SR_POLICY       3   /* Stytch's RBAC policy */

/* the session's variables (ngx_http_stytch_tat_authz.c) */
#define NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ROLES     0
#define NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_GRANTED   1
#define NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_FACTORS   2
#define NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_ID    3
#define NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_SLUG  4

/* the session claim binding a session to the identity it was made for */
#define NGX_HTTP_STYTCH_TAT_BINDING_CLAIM   "stytch_tat_identity"
/* its value: base64url of the identity's digest */
#define NGX_HTTP_STYTCH_TAT_BINDING_LEN     43

/*
 * $stytch_tat_cache_status (NGX_HTTP_STYTCH_TAT_HIT ...) and what a cache
 * lookup tells the exchange to do (NGX_HTTP_STYTCH_TAT_CACHE_HIT ...) are
 * in ngx_http_stytch_tat_cache_state.h.
 */


/* the claims the module owns, first in every token, in this order */
#define NGX_HTTP_STYTCH_TAT_ISS           0
#define NGX_HTTP_STYTCH_TAT_AUD           1
#define NGX_HTTP_STYTCH_TAT_SUB           2
#define NGX_HTTP_STYTCH_TAT_EMAIL         3
#define NGX_HTTP_STYTCH_TAT_JTI           4
#define NGX_HTTP_STYTCH_TAT_IAT           5
#define NGX_HTTP_STYTCH_TAT_NBF           6
#define NGX_HTTP_STYTCH_TAT_EXP           7
#define NGX_HTTP_STYTCH_TAT_FIXED_CLAIMS  8


/* per request, never in configuration: a location's configuration is
 * shared by every request of every worker */
typedef struct {
    ngx_http_stytch_tat_claim_t *claims;     /* the identity, evaluated */
    size_t                      nclaims;
    ngx_int_t                   identity_rc;

    ngx_str_t                   jwt;
    ngx_str_t                   jti;
    time_t                      jwt_exp;
    ngx_int_t                   mint_rc;
    ngx_int_t                   mint_alg;

    ngx_uint_t                  state;
    ngx_int_t                   status;      /* the phase handler's answer */
    ngx_str_t                   error;       /* $stytch_tat_error */
    ngx_str_t                   error_message;   /* Stytch's, for the log */
    ngx_str_t                   request_id;      /* Stytch's, for the log */
    ngx_str_t                   retry_after; /* Stytch's, or a leader's */

    ngx_http_request_t         *subrequest;
    ngx_uint_t                  sr_purpose;  /* NGX_HTTP_STYTCH_TAT_SR_* */
    ngx_str_t                   sr_uri;      /* the location it went to */
    ngx_msec_t                  started;
    ngx_msec_t                  call_time;   /* $stytch_tat_call_time */
    ngx_uint_t                  sr_status;
    ngx_str_t                   sr_body;     /* Stytch's answer */
    ngx_uint_t                  log_level;   /* to restore, or 0 */
    size_t                      sr_size;     /* room in sr_body */

    ngx_str_t                   session_token;
    ngx_str_t                   session_jwt;
    ngx_str_t                   user_id;
    ngx_str_t                   session_id;
    time_t                      expires_at;
    time_t                      session_jwt_exp;

    u_char                      digest[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    ngx_uint_t                  cache_status;
    ngx_int_t                   cache_role;  /* ATTEST, REFRESH or 0 */
    ngx_msec_t                  cache_claim; /* the lease it leads under */
    /*
     * When the exchange began waiting on another request's exchange, for
     * stytch_tat_cache_lock_timeout: ngx_current_msec (monotonic, like
     * the cache's leases), 0 before.  The cache keeps its own flag,
     * cache_waited, and never reads this.
     */
    ngx_msec_t                  wait_started;
    /* the identity's digest, while digest keys a client's refresh */
    u_char                      identity[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    ngx_str_t                   body_values[4];  /* profile, org, sessions */
    ngx_str_t                   session_claims;  /* JSON object, or empty */
    ngx_str_t                   rbac;        /* the session's roles,
                                                factors, organization: a
                                                blob, see _rbac.h */
    uint64_t                    granted;     /* roles that granted */
    ngx_msec_t                  policy_wait_started;
    ngx_http_stytch_tat_zone_t *zone;        /* where this request leads */

    unsigned                    identified:1;
    unsigned                    explicit_jti:1;
    unsigned                    minted:1;
    unsigned                    sr_failed:1;
    unsigned                    sr_too_big:1;
    unsigned                    attached:1;  /* adds a factor to a session */
    unsigned                    keyed:1;
    unsigned                    refused:1;
    unsigned                    token_refused:1; /* the token, not the user */
    unsigned                    evaluated:1;
    unsigned                    leading:1;   /* holds the zone's lease */
    unsigned                    sr_misrouted:1;
    unsigned                    sr_checked:1;    /* reached an internal,
                                                    proxying location */
    unsigned                    cache_waited:1;  /* the cache said WAIT */
    unsigned                    cache_claimed:1; /* cache_claim is set */
    unsigned                    jwks_leading:1;  /* fetches Stytch's JWKS */
    unsigned                    jwks_fetched:1;  /* ... did: no more */
    unsigned                    client_done:1;   /* the client's session
                                                    was looked at */
    unsigned                    client_session:1;    /* and is the one */
    unsigned                    client_kept:1;   /* its cookies stand */
    unsigned                    session_ready:1; /* authorization next */
    unsigned                    policy_leading:1;    /* fetches the policy */
    unsigned                    policy_fetched:1;    /* ... did: no more */
    unsigned                    called:1;    /* call_time is set */
} ngx_http_stytch_tat_ctx_t;


ngx_http_stytch_tat_ctx_t *ngx_http_stytch_tat_ctx_get(ngx_http_request_t *r);
ngx_uint_t ngx_http_stytch_tat_ctx_waiting(ngx_msec_t *started,
    ngx_msec_t timeout);
char *ngx_http_stytch_tat_exchange_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_exchange_refresh_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_stytch_tat_exchange_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_stytch_tat_subrequest_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
ngx_int_t ngx_http_stytch_tat_subrequest_credentials(ngx_http_request_t *sr);
ngx_int_t ngx_http_stytch_tat_subrequest_add_uri(ngx_conf_t *cf,
    ngx_http_stytch_tat_srv_conf_t *sscf, char *directive, ngx_str_t *uri,
    ngx_str_t *file, ngx_uint_t line);
ngx_int_t ngx_http_stytch_tat_subrequest_check_uris(ngx_conf_t *cf);
ngx_int_t ngx_http_stytch_tat_subrequest(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *body);
ngx_int_t ngx_http_stytch_tat_subrequest_delay(ngx_http_request_t *r);
/* serializes and releases obj (a json_t *: jansson stays out of here) */
ngx_int_t ngx_http_stytch_tat_subrequest_json(ngx_http_request_t *r,
    void *obj, ngx_str_t *body);

char *ngx_http_stytch_tat_keys_signing_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_stytch_tat_keys_jwks(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf);

char *ngx_http_stytch_tat_identity_email(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_identity_claim(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_identity_organization_id(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_stytch_tat_identity_trusted(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_identity_merge_claims(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf);
ngx_int_t ngx_http_stytch_tat_identity_prepare(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *lcf);
ngx_int_t ngx_http_stytch_tat_identity_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_mint(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_mint_jwt_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

char *ngx_http_stytch_tat_jwks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

char *ngx_http_stytch_tat_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_stytch_tat_capture_init(ngx_conf_t *cf);

ngx_int_t ngx_http_stytch_tat_outcome(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_outcome_fail_mode(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status);
ngx_int_t ngx_http_stytch_tat_outcome_retry_after(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
void ngx_http_stytch_tat_outcome_count(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t rc);

ngx_int_t ngx_http_stytch_tat_headers_drop(ngx_http_request_t *r);
ngx_int_t ngx_http_stytch_tat_headers_drop_cookies(ngx_http_request_t *r);
ngx_int_t ngx_http_stytch_tat_headers_challenge(ngx_http_request_t *r,
    ngx_str_t *value);
ngx_int_t ngx_http_stytch_tat_headers_add(ngx_http_request_t *r,
    ngx_list_t *list, char *key, ngx_str_t *value);
ngx_int_t ngx_http_stytch_tat_headers_hand_off(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);

char *ngx_http_stytch_tat_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_zone_cache_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
ngx_int_t ngx_http_stytch_tat_key_digest(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *extra, ngx_uint_t nextra);
ngx_int_t ngx_http_stytch_tat_key_prefix(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *lcf);
ngx_int_t ngx_http_stytch_tat_key_fingerprint(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf, ngx_http_stytch_tat_loc_conf_t *conf);
ngx_int_t ngx_http_stytch_tat_session_lookup(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_msec_t lease);
void ngx_http_stytch_tat_session_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx);
void ngx_http_stytch_tat_session_fail(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t status, time_t negative);
void ngx_http_stytch_tat_session_drop(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx);
void ngx_http_stytch_tat_session_release(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx);
ngx_uint_t ngx_http_stytch_tat_zone_gone(ngx_pid_t pid);
void ngx_http_stytch_tat_zone_count(ngx_http_stytch_tat_zone_t *zone,
    ngx_uint_t counter, ngx_msec_t latency);
ngx_int_t ngx_http_stytch_tat_verified_check(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token, ngx_str_t *binding, ngx_int_t *code);
void ngx_http_stytch_tat_verified_forget(ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_verified_digest(
    ngx_http_stytch_tat_loc_conf_t *lcf, const char *domain, ngx_str_t *token,
    u_char *digest);

char *ngx_http_stytch_tat_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

char *ngx_http_stytch_tat_stytch_jwks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_stytch_jwks_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf);
ngx_int_t ngx_http_stytch_tat_stytch_jwks_keys(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t unknown_kid, ngx_http_stytch_tat_verify_keys_t **keys);
ngx_int_t ngx_http_stytch_tat_stytch_jwks_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
void ngx_http_stytch_tat_stytch_jwks_release(ngx_http_stytch_tat_zone_t *zone);

char *ngx_http_stytch_tat_client_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_stytch_tat_client_verify(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_cluster_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_cluster_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_key_binding(
    ngx_http_stytch_tat_main_conf_t *mcf, u_char *digest, u_char *out);
ngx_int_t ngx_http_stytch_tat_key_binding_init(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf);
ngx_int_t ngx_http_stytch_tat_client_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


ngx_int_t ngx_http_stytch_tat_doc_due(ngx_http_stytch_tat_doc_shm_t *d,
    u_char *source, time_t refresh, ngx_msec_t lease);
ngx_uint_t ngx_http_stytch_tat_doc_busy(ngx_http_stytch_tat_doc_shm_t *d);
void ngx_http_stytch_tat_doc_take(ngx_http_stytch_tat_doc_shm_t *d,
    ngx_msec_t lease);
void ngx_http_stytch_tat_doc_release(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_doc_shm_t *d);
ngx_uint_t ngx_http_stytch_tat_doc_ours(ngx_http_stytch_tat_doc_shm_t *d,
    u_char *source);
ngx_int_t ngx_http_stytch_tat_doc_store(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_doc_shm_t *d, u_char *source, ngx_str_t *text,
    ngx_uint_t *same);
void ngx_http_stytch_tat_doc_failed(ngx_http_stytch_tat_doc_shm_t *d);
u_char *ngx_http_stytch_tat_doc_copy(ngx_http_stytch_tat_doc_shm_t *d,
    size_t *len, ngx_log_t *log);
ngx_int_t ngx_http_stytch_tat_doc_source(ngx_str_t *uri, ngx_str_t *project,
    u_char *source);

char *ngx_http_stytch_tat_policy_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_stytch_tat_policy_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf);
ngx_int_t ngx_http_stytch_tat_policy_get(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_policy_t **policy);
void ngx_http_stytch_tat_policy_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
void ngx_http_stytch_tat_policy_release(ngx_http_stytch_tat_zone_t *zone);

char *ngx_http_stytch_tat_authz_permission_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_stytch_tat_authz_factor_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_stytch_tat_authz_require_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
char *ngx_http_stytch_tat_authz_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf);
ngx_int_t ngx_http_stytch_tat_authz_claims(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *jwt);
ngx_int_t ngx_http_stytch_tat_authz(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_authz_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


extern ngx_module_t  ngx_http_stytch_tat_module;


#endif /* _NGX_HTTP_STYTCH_TAT_H_INCLUDED_ */
