/*
 * The cache's rules: see ngx_http_stytch_tat_cache_state.h.  Single
 * flight: the first request for an identity leads (talks to Stytch) under
 * a lease; the others wait, or keep a still valid session (STALE) while a
 * leader gets a new one; a lease that runs out passes the lead on.
 */


#include <stddef.h>
#include <string.h>

#include "ngx_http_stytch_tat_cache_state.h"


static int ngx_http_stytch_tat_cache_state_live(
    ngx_http_stytch_tat_msec_t until, ngx_http_stytch_tat_msec_t now_ms);
static void ngx_http_stytch_tat_cache_state_session(
    const ngx_http_stytch_tat_lookup_t *lk, ngx_http_stytch_tat_decision_t *d);
static void ngx_http_stytch_tat_cache_state_lead(
    const ngx_http_stytch_tat_lookup_t *lk, ngx_http_stytch_tat_decision_t *d,
    int status, int state, int refreshing);


void
ngx_http_stytch_tat_cache_state_decide(const ngx_http_stytch_tat_entry_t *e,
    const ngx_http_stytch_tat_lookup_t *lk, ngx_http_stytch_tat_decision_t *d)
{
    memset(d, 0, sizeof(ngx_http_stytch_tat_decision_t));

    if (e == NULL) {
        d->create = 1;
        ngx_http_stytch_tat_cache_state_lead(lk, d, NGX_HTTP_STYTCH_TAT_MISS,
                                             NGX_HTTP_STYTCH_TAT_NODE_PENDING,
                                             0);
        return;
    }

    d->entry = *e;

    switch (e->state) {

    case NGX_HTTP_STYTCH_TAT_NODE_SESSION:
        ngx_http_stytch_tat_cache_state_session(lk, d);
        return;

    case NGX_HTTP_STYTCH_TAT_NODE_PENDING:

        if (ngx_http_stytch_tat_cache_state_leased(e, lk->now_ms)) {
            d->action = NGX_HTTP_STYTCH_TAT_CACHE_WAIT;
            return;
        }

        /* its leader is gone (a crashed or reloaded worker): take over */
        break;

    case NGX_HTTP_STYTCH_TAT_NODE_FAILED:

        /*
         * A request that waited saw no FAILED entry then (WAIT is never
         * the answer to one): this failure is the outcome of the leader it
         * waited on, or of a later one.  The lock orders the two; times
         * taken by different workers would only add their skew.
         */

        if (lk->waited
            || (e->negative
                && ngx_http_stytch_tat_cache_state_live(e->negative_until,
                                                        lk->now_ms)))
        {
            d->action = NGX_HTTP_STYTCH_TAT_CACHE_FAILED;
            d->status = lk->waited ? NGX_HTTP_STYTCH_TAT_MISS
                                   : NGX_HTTP_STYTCH_TAT_HIT;
            return;
        }

        break;

    default: /* NGX_HTTP_STYTCH_TAT_NODE_NONE: a minted token only */
        break;
    }

    ngx_http_stytch_tat_cache_state_lead(lk, d, NGX_HTTP_STYTCH_TAT_MISS,
                                         NGX_HTTP_STYTCH_TAT_NODE_PENDING, 0);
}


static void
ngx_http_stytch_tat_cache_state_session(const ngx_http_stytch_tat_lookup_t *lk,
    ngx_http_stytch_tat_decision_t *d)
{
    int                           leased;
    time_t                        now, soon;
    ngx_http_stytch_tat_entry_t  *e;

    e = &d->entry;
    now = lk->now;
    soon = now + lk->ahead;
    leased = ngx_http_stytch_tat_cache_state_leased(e, lk->now_ms);

    if (e->expires_at <= soon) {

        /* the session itself ends: only a new attest helps */

        if (e->expires_at > now && e->jwt_exp > now) {
            if (leased) {
                goto stale;
            }

            /* the others keep the old session while this one attests */

            ngx_http_stytch_tat_cache_state_lead(lk, d,
                                        NGX_HTTP_STYTCH_TAT_EXPIRED,
                                        NGX_HTTP_STYTCH_TAT_NODE_SESSION, 0);
            return;
        }

        if (leased) {
            d->action = NGX_HTTP_STYTCH_TAT_CACHE_WAIT;
            return;
        }

        ngx_http_stytch_tat_cache_state_lead(lk, d,
                                             NGX_HTTP_STYTCH_TAT_EXPIRED,
                                             NGX_HTTP_STYTCH_TAT_NODE_PENDING,
                                             0);
        return;
    }

    if (e->jwt_exp > soon) {
        d->action = NGX_HTTP_STYTCH_TAT_CACHE_HIT;
        d->status = NGX_HTTP_STYTCH_TAT_HIT;
        d->copy = 1;
        return;
    }

    /* the session lives on, its JWT ends soon: one request refreshes */

    if (leased) {
        if (e->jwt_exp > now) {
            goto stale;
        }

        /* a JWT past its exp is never handed out */

        d->action = NGX_HTTP_STYTCH_TAT_CACHE_WAIT;
        return;
    }

    /*
     * A refresh that failed a moment ago (Stytch down, slow): the JWT,
     * still valid, serves as STALE without another call per request.
     */

    if (e->refresh_failed && e->jwt_exp > now
        && ngx_http_stytch_tat_cache_state_live(
                   e->failed_at + NGX_HTTP_STYTCH_TAT_REFRESH_BACKOFF_MS,
                   lk->now_ms))
    {
        goto stale;
    }

    ngx_http_stytch_tat_cache_state_lead(lk, d, NGX_HTTP_STYTCH_TAT_EXPIRED,
                                         NGX_HTTP_STYTCH_TAT_NODE_SESSION, 1);

    /* the refresh sends the session's token */

    d->action = NGX_HTTP_STYTCH_TAT_CACHE_REFRESH;
    d->copy = 1;

    return;

stale:

    d->action = NGX_HTTP_STYTCH_TAT_CACHE_HIT;
    d->status = NGX_HTTP_STYTCH_TAT_STALE;
    d->copy = 1;
}


/* this request leads: the entry becomes state under its lease */

static void
ngx_http_stytch_tat_cache_state_lead(const ngx_http_stytch_tat_lookup_t *lk,
    ngx_http_stytch_tat_decision_t *d, int status, int state, int refreshing)
{
    d->action = NGX_HTTP_STYTCH_TAT_CACHE_ATTEST;
    d->status = status;
    d->update = 1;

    d->entry.state = (unsigned char) state;
    d->entry.refreshing = (unsigned char) refreshing;
    d->entry.leased = 1;
    d->entry.lease_until = lk->now_ms + lk->lease;
    d->entry.negative = 0;
}


int
ngx_http_stytch_tat_cache_state_leased(const ngx_http_stytch_tat_entry_t *e,
    ngx_http_stytch_tat_msec_t now_ms)
{
    return e->leased
           && ngx_http_stytch_tat_cache_state_live(e->lease_until, now_ms);
}


int
ngx_http_stytch_tat_cache_state_expired(const ngx_http_stytch_tat_entry_t *e,
    time_t now, ngx_http_stytch_tat_msec_t now_ms)
{
    if (ngx_http_stytch_tat_cache_state_leased(e, now_ms)) {
        /* a leader is at work on it: waiters depend on it */
        return 0;
    }

    switch (e->state) {

    case NGX_HTTP_STYTCH_TAT_NODE_SESSION:
        return e->expires_at <= now;

    case NGX_HTTP_STYTCH_TAT_NODE_FAILED:

        /* kept a while for the waiters still to look at it */

        if (e->negative
            && ngx_http_stytch_tat_cache_state_live(e->negative_until, now_ms))
        {
            return 0;
        }

        return !ngx_http_stytch_tat_cache_state_live(
                                   e->failed_at + NGX_HTTP_STYTCH_TAT_FAILED_MS,
                                   now_ms);

    case NGX_HTTP_STYTCH_TAT_NODE_NONE:
        return e->token_exp <= now;

    default: /* NGX_HTTP_STYTCH_TAT_NODE_PENDING: its leader is gone */
        return 1;
    }
}


int
ngx_http_stytch_tat_cache_state_fail(ngx_http_stytch_tat_entry_t *e,
    ngx_http_stytch_tat_msec_t now_ms, ngx_http_stytch_tat_msec_t negative_ms)
{
    e->leased = 0;
    e->refreshing = 0;

    if (e->state == NGX_HTTP_STYTCH_TAT_NODE_SESSION) {
        /* a failed refresh keeps the session while its JWT is valid */
        e->refresh_failed = 1;
        e->failed_at = now_ms;
        return 1;
    }

    e->state = NGX_HTTP_STYTCH_TAT_NODE_FAILED;
    e->failed_at = now_ms;
    e->negative = negative_ms ? 1 : 0;
    e->negative_until = now_ms + negative_ms;

    return 0;
}


int
ngx_http_stytch_tat_cache_state_release(ngx_http_stytch_tat_entry_t *e,
    ngx_http_stytch_tat_msec_t claim)
{
    /*
     * A lease taken over is later than the one it replaced (it is granted
     * only after that one ran out), so its lease_until is the claim.
     */

    if (!e->leased || e->lease_until != claim) {
        return NGX_HTTP_STYTCH_TAT_RELEASE_KEEP;
    }

    if (e->state == NGX_HTTP_STYTCH_TAT_NODE_PENDING) {
        return NGX_HTTP_STYTCH_TAT_RELEASE_DELETE;
    }

    e->leased = 0;
    e->refreshing = 0;

    return NGX_HTTP_STYTCH_TAT_RELEASE_UNLEASE;
}


static int
ngx_http_stytch_tat_cache_state_live(ngx_http_stytch_tat_msec_t until,
    ngx_http_stytch_tat_msec_t now_ms)
{
    return (ngx_http_stytch_tat_msec_int_t) (until - now_ms) > 0;
}
