/*
 * The cache's rules, free of nginx headers (like the response parser):
 * given what an entry holds, the times, and whether the request has waited
 * already, what a lookup does and what it writes back into the entry;
 * when an entry may be evicted; what a leader that fails or gives up
 * leaves behind.  ngx_http_stytch_tat_session.c applies them under the
 * zone's lock.
 *
 * Two clocks: seconds on the wall clock (ngx_time()) for the session and
 * token expiries, which are Stytch's epoch times, and milliseconds on
 * nginx's monotonic clock (ngx_current_msec) for everything the module
 * times itself: leases, failures, negative caching.  A step of the wall
 * clock then cannot stretch or break a lease.  Monotonic values are
 * compared by their signed difference, as limit_req compares lr->last.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_CACHE_STATE_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_CACHE_STATE_H_INCLUDED_


#include <stdint.h>
#include <time.h>


/* nginx's ngx_msec_t and ngx_msec_int_t */
typedef uintptr_t  ngx_http_stytch_tat_msec_t;
typedef intptr_t   ngx_http_stytch_tat_msec_int_t;


/* what an entry holds */
#define NGX_HTTP_STYTCH_TAT_NODE_NONE      0   /* a minted token only */
#define NGX_HTTP_STYTCH_TAT_NODE_PENDING   1   /* a leader talks to Stytch */
#define NGX_HTTP_STYTCH_TAT_NODE_SESSION   2
#define NGX_HTTP_STYTCH_TAT_NODE_FAILED    3

/* $stytch_tat_cache_status */
#define NGX_HTTP_STYTCH_TAT_NONE     0
#define NGX_HTTP_STYTCH_TAT_HIT      1
#define NGX_HTTP_STYTCH_TAT_MISS     2
#define NGX_HTTP_STYTCH_TAT_EXPIRED  3
#define NGX_HTTP_STYTCH_TAT_STALE    4
#define NGX_HTTP_STYTCH_TAT_BYPASS   5
#define NGX_HTTP_STYTCH_TAT_CLIENT   6   /* the client's own session JWT */

/* what a cache lookup tells the exchange to do */
#define NGX_HTTP_STYTCH_TAT_CACHE_HIT      1   /* session in ctx */
#define NGX_HTTP_STYTCH_TAT_CACHE_ATTEST   2   /* lead: attest */
#define NGX_HTTP_STYTCH_TAT_CACHE_REFRESH  3   /* lead: refresh the JWT */
#define NGX_HTTP_STYTCH_TAT_CACHE_WAIT     4   /* another request leads */
#define NGX_HTTP_STYTCH_TAT_CACHE_FAILED   5   /* its outcome in ctx */
#define NGX_HTTP_STYTCH_TAT_CACHE_BYPASS   6

/* how long a failed leader's outcome stays for its waiters to see, ms */
#define NGX_HTTP_STYTCH_TAT_FAILED_MS        2000
/* after a failed refresh, the JWT serves STALE this long before another, ms */
#define NGX_HTTP_STYTCH_TAT_REFRESH_BACKOFF_MS  5000

/* what a leader that gives up its claim does to the entry */
#define NGX_HTTP_STYTCH_TAT_RELEASE_KEEP     0   /* not its claim (now) */
#define NGX_HTTP_STYTCH_TAT_RELEASE_DELETE   1   /* its PENDING entry */
#define NGX_HTTP_STYTCH_TAT_RELEASE_UNLEASE  2   /* a session it refreshed */


/*
 * An entry's state; it lives in the zone's nodes, so its fields have fixed
 * sizes.  A lease or a negative caching time counts only with its flag:
 * a monotonic value of 0 is no "never" once the clock has wrapped.
 */

typedef struct {
    unsigned char                  state;         /* NODE_* */
    unsigned char                  leased;        /* a leader's claim */
    unsigned char                  refreshing;    /* ... to refresh the JWT */
    unsigned char                  negative;      /* a remembered refusal */
    unsigned char                  refresh_failed; /* SESSION: at failed_at */

    ngx_http_stytch_tat_msec_t     lease_until;
    ngx_http_stytch_tat_msec_t     failed_at;     /* FAILED: when */
    ngx_http_stytch_tat_msec_t     negative_until;

    time_t                         expires_at;    /* SESSION: its end */
    time_t                         jwt_exp;       /* SESSION: its JWT's */
    time_t                         token_exp;     /* the minted token's */

    int                            pid;           /* the leader's process */
    unsigned long                  generation;    /* a verified JWT: of the
                                                     JWKS it verified with */
} ngx_http_stytch_tat_entry_t;


/* what a lookup knows besides the entry */

typedef struct {
    time_t                         now;           /* ngx_time() */
    ngx_http_stytch_tat_msec_t     now_ms;        /* ngx_current_msec */
    ngx_http_stytch_tat_msec_t     lease;         /* a leader's claim, ms */
    time_t                         ahead;         /* refresh this early, s */
    unsigned                       waited:1;      /* told to WAIT before */
} ngx_http_stytch_tat_lookup_t;


typedef struct {
    int                            action;        /* CACHE_* */
    int                            status;        /* NONE for WAIT */
    unsigned                       update:1;      /* write entry back */
    unsigned                       create:1;      /* no entry yet: make it */
    unsigned                       copy:1;        /* copy the session out */
    ngx_http_stytch_tat_entry_t    entry;         /* the entry to write */
} ngx_http_stytch_tat_decision_t;


/*
 * A lookup of entry e (NULL: none).  The actions: HIT (status HIT, or
 * STALE for a session whose refresh another request leads or failed less
 * than REFRESH_BACKOFF_MS ago), ATTEST (MISS
 * or EXPIRED: this request leads; where others keep the old session the
 * entry stays a SESSION), REFRESH (EXPIRED: this request refreshes the
 * session JWT), WAIT (another request leads), FAILED (a failure to hand
 * on: remembered, or the outcome of the leader the request waited on).
 */
void ngx_http_stytch_tat_cache_state_decide(
    const ngx_http_stytch_tat_entry_t *e,
    const ngx_http_stytch_tat_lookup_t *lk, ngx_http_stytch_tat_decision_t *d);

/* 1 while a leader's claim on e holds */
int ngx_http_stytch_tat_cache_state_leased(
    const ngx_http_stytch_tat_entry_t *e, ngx_http_stytch_tat_msec_t now_ms);

/*
 * 1 when e may go without being forced out: no claim on it, nothing left
 * to serve (a failure stays NGX_HTTP_STYTCH_TAT_FAILED_MS for its waiters)
 */
int ngx_http_stytch_tat_cache_state_expired(
    const ngx_http_stytch_tat_entry_t *e, time_t now,
    ngx_http_stytch_tat_msec_t now_ms);

/*
 * A leader's failure: returns 1 when e keeps its session (a failed
 * refresh; the lease is cleared, the failure's time kept for the
 * backoff), else 0 with e made FAILED, remembered for negative_ms when
 * not 0.
 */
int ngx_http_stytch_tat_cache_state_fail(ngx_http_stytch_tat_entry_t *e,
    ngx_http_stytch_tat_msec_t now_ms, ngx_http_stytch_tat_msec_t negative_ms);

/*
 * A leader that gives up before an outcome (its client went away): its
 * claim is the lease_until it was granted.  RELEASE_DELETE for its
 * PENDING entry, so that the next request leads at once; RELEASE_UNLEASE
 * (e updated) for a session it was refreshing or re-attesting; KEEP when
 * the claim is no longer its own or there is no claim.
 */
int ngx_http_stytch_tat_cache_state_release(ngx_http_stytch_tat_entry_t *e,
    ngx_http_stytch_tat_msec_t claim);


#endif /* _NGX_HTTP_STYTCH_TAT_CACHE_STATE_H_INCLUDED_ */
