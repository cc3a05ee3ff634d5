/*
 * The cache's rules: every transition of an entry, with the times passed
 * in, so that nothing depends on the clock: single flight and its lease,
 * takeover, refresh ahead of the JWT's exp, STALE, a session that ends,
 * failures and negative caching, release, eviction, and the boundaries
 * of seconds, milliseconds and a wrapping monotonic clock.
 */

#include <string.h>

#include "unit.h"
#include "ngx_http_stytch_tat_cache_state.h"


#define NOW      1795897900          /* wall clock, s */
#define NOW_MS   ((ngx_http_stytch_tat_msec_t) 86400000)   /* monotonic */
#define LEASE    5000
#define AHEAD    60

#define HIT      NGX_HTTP_STYTCH_TAT_CACHE_HIT
#define ATTEST   NGX_HTTP_STYTCH_TAT_CACHE_ATTEST
#define REFRESH  NGX_HTTP_STYTCH_TAT_CACHE_REFRESH
#define WAIT     NGX_HTTP_STYTCH_TAT_CACHE_WAIT
#define FAILED   NGX_HTTP_STYTCH_TAT_CACHE_FAILED

#define S_NONE     NGX_HTTP_STYTCH_TAT_NONE
#define S_HIT      NGX_HTTP_STYTCH_TAT_HIT
#define S_MISS     NGX_HTTP_STYTCH_TAT_MISS
#define S_EXPIRED  NGX_HTTP_STYTCH_TAT_EXPIRED
#define S_STALE    NGX_HTTP_STYTCH_TAT_STALE

#define PENDING  NGX_HTTP_STYTCH_TAT_NODE_PENDING
#define SESSION  NGX_HTTP_STYTCH_TAT_NODE_SESSION


static ngx_http_stytch_tat_lookup_t
at(time_t now, ngx_http_stytch_tat_msec_t now_ms, int waited)
{
    ngx_http_stytch_tat_lookup_t  lk;

    memset(&lk, 0, sizeof(lk));

    lk.now = now;
    lk.now_ms = now_ms;
    lk.lease = LEASE;
    lk.ahead = AHEAD;
    lk.waited = waited ? 1 : 0;

    return lk;
}


static ngx_http_stytch_tat_decision_t
decide(const ngx_http_stytch_tat_entry_t *e, ngx_http_stytch_tat_lookup_t lk)
{
    ngx_http_stytch_tat_decision_t  d;

    memset(&d, 0xa5, sizeof(d));     /* every field must be written */

    ngx_http_stytch_tat_cache_state_decide(e, &lk, &d);

    return d;
}


/* what the cache does with a decision: write the entry back */

static void
apply(ngx_http_stytch_tat_entry_t *e, const ngx_http_stytch_tat_decision_t *d)
{
    if (d->update) {
        *e = d->entry;
    }
}


static void
expect(const ngx_http_stytch_tat_decision_t *d, int action, int status,
    int update, int copy)
{
    assert_int_equal(d->action, action);
    assert_int_equal(d->status, status);
    assert_int_equal(d->update, update);
    assert_int_equal(d->copy, copy);
    assert_int_equal(d->create, 0);
}


/* a lead: the entry as state under a fresh lease from now_ms */

static void
expect_lease(const ngx_http_stytch_tat_decision_t *d, int state,
    int refreshing, ngx_http_stytch_tat_msec_t now_ms)
{
    assert_int_equal(d->entry.state, state);
    assert_int_equal(d->entry.refreshing, refreshing);
    assert_int_equal(d->entry.leased, 1);
    assert_true(d->entry.lease_until == now_ms + LEASE);
}


static ngx_http_stytch_tat_entry_t
session(time_t expires_at, time_t jwt_exp)
{
    ngx_http_stytch_tat_entry_t  e;

    memset(&e, 0, sizeof(e));

    e.state = SESSION;
    e.expires_at = expires_at;
    e.jwt_exp = jwt_exp;

    return e;
}


static ngx_http_stytch_tat_entry_t
pending(ngx_http_stytch_tat_msec_t lease_until)
{
    ngx_http_stytch_tat_entry_t  e;

    memset(&e, 0, sizeof(e));

    e.state = PENDING;
    e.leased = 1;
    e.lease_until = lease_until;

    return e;
}


static ngx_http_stytch_tat_entry_t
failed(ngx_http_stytch_tat_msec_t failed_at,
    ngx_http_stytch_tat_msec_t negative_ms)
{
    ngx_http_stytch_tat_entry_t  e;

    memset(&e, 0, sizeof(e));

    e.state = PENDING;
    e.leased = 1;
    e.lease_until = failed_at + 1;

    assert_int_equal(ngx_http_stytch_tat_cache_state_fail(&e, failed_at,
                                                          negative_ms), 0);
    return e;
}


void
test_cache_state_new_entry(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* the first request for an identity leads: a PENDING entry, a lease */

    d = decide(NULL, at(NOW, NOW_MS, 0));

    assert_int_equal(d.action, ATTEST);
    assert_int_equal(d.status, S_MISS);
    assert_int_equal(d.create, 1);
    assert_int_equal(d.update, 1);
    assert_int_equal(d.copy, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);
    assert_int_equal(d.entry.negative, 0);

    /* the next one, the same millisecond or any time in the lease, waits */

    e = d.entry;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, WAIT, S_NONE, 0, 0);

    d = decide(&e, at(NOW + 4, NOW_MS + LEASE - 1, 1));
    expect(&d, WAIT, S_NONE, 0, 0);

    /* an entry that only holds a minted token is no session: lead */

    memset(&e, 0, sizeof(e));
    e.token_exp = NOW + 300;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);
    assert_int_equal(d.entry.token_exp, NOW + 300);
}


void
test_cache_state_pending_lease(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    e = pending(NOW_MS + 1);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, WAIT, S_NONE, 0, 0);

    /* a lease ends at lease_until: the request that comes then takes over */

    d = decide(&e, at(NOW, NOW_MS + 1, 1));
    expect(&d, ATTEST, S_MISS, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS + 1);

    apply(&e, &d);

    /* the new leader's lease holds the others off again */

    d = decide(&e, at(NOW, NOW_MS + 2, 1));
    expect(&d, WAIT, S_NONE, 0, 0);

    d = decide(&e, at(NOW + 5, NOW_MS + 1 + LEASE, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);

    /* without its flag a lease is no claim, whatever its time */

    e = pending(NOW_MS + 1000);
    e.leased = 0;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);
}


void
test_cache_state_session_hit(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    e = session(NOW + 3600, NOW + 300);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_HIT, 0, 1);

    /* a waiter whose leader stored the session gets it the same way */

    d = decide(&e, at(NOW, NOW_MS, 1));
    expect(&d, HIT, S_HIT, 0, 1);

    /* the refresh window: a HIT until one second more than AHEAD */

    e = session(NOW + 3600, NOW + AHEAD + 1);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_HIT, 0, 1);

    e = session(NOW + 3600, NOW + AHEAD);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);

    /* a lease left from before does not turn a fresh session stale */

    e = session(NOW + 3600, NOW + 300);
    e.leased = 1;
    e.lease_until = NOW_MS + 1000;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_HIT, 0, 1);
}


void
test_cache_state_refresh_one_leader(void **state)
{
    int                             i, refresh, stale;
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* the session lives on, its JWT ends in 50 s: one request refreshes */

    e = session(NOW + 3600, NOW + 50);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
    expect_lease(&d, SESSION, 1, NOW_MS);
    assert_int_equal(d.entry.expires_at, NOW + 3600);
    assert_int_equal(d.entry.jwt_exp, NOW + 50);

    apply(&e, &d);

    /* a burst: the others keep the still valid JWT */

    refresh = 0;
    stale = 0;

    for (i = 0; i < 20; i++) {
        d = decide(&e, at(NOW, NOW_MS + i, i & 1));
        apply(&e, &d);

        refresh += (d.action == REFRESH);
        stale += (d.action == HIT && d.status == S_STALE && d.copy);
        assert_int_equal(d.update, 0);
    }

    assert_int_equal(refresh, 0);
    assert_int_equal(stale, 20);

    /* the last millisecond of the lease is still its */

    d = decide(&e, at(NOW + 4, NOW_MS + LEASE - 1, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    /* a refresher that never came back: the next request takes over */

    d = decide(&e, at(NOW + 5, NOW_MS + LEASE, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
    expect_lease(&d, SESSION, 1, NOW_MS + LEASE);
}


void
test_cache_state_refresh_jwt_past_exp(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* a JWT past its exp is never handed out: wait for the refresh */

    e = session(NOW + 3600, NOW);
    e.leased = 1;
    e.refreshing = 1;
    e.lease_until = NOW_MS + 100;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, WAIT, S_NONE, 0, 0);

    /* one second before its exp it is still handed out, STALE */

    e.jwt_exp = NOW + 1;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    /* with no lease, the request that finds the JWT expired refreshes */

    e = session(NOW + 3600, NOW - 1);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
    expect_lease(&d, SESSION, 1, NOW_MS);

    apply(&e, &d);

    d = decide(&e, at(NOW, NOW_MS + 1, 1));
    expect(&d, WAIT, S_NONE, 0, 0);
}


void
test_cache_state_session_ending(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /*
     * The session itself ends in 30 s, its JWT with it: no refresh can
     * help, one request attests anew while the others keep the old one.
     */

    e = session(NOW + 30, NOW + 30);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, SESSION, 0, NOW_MS);
    assert_int_equal(d.entry.expires_at, NOW + 30);

    apply(&e, &d);

    d = decide(&e, at(NOW, NOW_MS + 1, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    d = decide(&e, at(NOW + 4, NOW_MS + LEASE - 1, 1));
    expect(&d, HIT, S_STALE, 0, 1);

    /* an attest slower than the lease: the next request attests */

    d = decide(&e, at(NOW + 5, NOW_MS + LEASE, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, SESSION, 0, NOW_MS + LEASE);

    /* a refresh under way when the session nears its end: STALE too */

    e = session(NOW + 30, NOW + 30);
    e.leased = 1;
    e.refreshing = 1;
    e.lease_until = NOW_MS + 10;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    /* the window's edge: AHEAD seconds before the end is the end */

    e = session(NOW + AHEAD, NOW + AHEAD);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);

    e = session(NOW + AHEAD + 1, NOW + AHEAD + 1);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_HIT, 0, 1);

    /* ... and one second more than AHEAD with a JWT in the window */

    e = session(NOW + AHEAD + 1, NOW + AHEAD);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
}


void
test_cache_state_session_ended(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* nothing left to serve: the entry is PENDING again for its leader */

    e = session(NOW, NOW + 30);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);

    apply(&e, &d);

    d = decide(&e, at(NOW, NOW_MS + 1, 0));
    expect(&d, WAIT, S_NONE, 0, 0);

    /* a session near its end whose JWT is past exp: the same */

    e = session(NOW + 30, NOW);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);

    /* ... and while another request holds the lease on it: WAIT */

    e = session(NOW + 30, NOW);
    e.leased = 1;
    e.lease_until = NOW_MS + 1;

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, WAIT, S_NONE, 0, 0);

    /* one second after its end it is ended, one before it is not */

    e = session(NOW - 1, NOW - 1);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);

    e = session(NOW + 1, NOW + 1);
    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_EXPIRED, 1, 0);
    expect_lease(&d, SESSION, 0, NOW_MS);
}


void
test_cache_state_failed_negative(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* a refusal remembered for 30 s: everyone gets it, nobody leads */

    e = failed(NOW_MS, 30000);

    assert_int_equal(e.state, NGX_HTTP_STYTCH_TAT_NODE_FAILED);
    assert_int_equal(e.leased, 0);
    assert_int_equal(e.negative, 1);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, FAILED, S_HIT, 0, 0);

    d = decide(&e, at(NOW + 29, NOW_MS + 29999, 0));
    expect(&d, FAILED, S_HIT, 0, 0);

    d = decide(&e, at(NOW, NOW_MS + 1, 1));
    expect(&d, FAILED, S_MISS, 0, 0);

    /* remembered for 30 s exactly, whatever the wall clock says */

    d = decide(&e, at(NOW - 3600, NOW_MS + 30000, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS + 30000);
    assert_int_equal(d.entry.negative, 0);

    d = decide(&e, at(NOW + 3600, NOW_MS + 1, 0));
    expect(&d, FAILED, S_HIT, 0, 0);
}


void
test_cache_state_failed_waiters(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* a leader failed, nothing remembered: its waiters get its outcome */

    e = failed(NOW_MS, 0);

    assert_int_equal(e.negative, 0);

    d = decide(&e, at(NOW, NOW_MS, 1));
    expect(&d, FAILED, S_MISS, 0, 0);

    /* ... even when their own clock reads earlier than the leader's */

    d = decide(&e, at(NOW, NOW_MS - 3, 1));
    expect(&d, FAILED, S_MISS, 0, 0);

    /* a newcomer leads instead */

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);
    expect_lease(&d, PENDING, 0, NOW_MS);

    /* and once it leads, the newcomers after it wait */

    apply(&e, &d);

    d = decide(&e, at(NOW, NOW_MS + 1, 0));
    expect(&d, WAIT, S_NONE, 0, 0);
}


void
test_cache_state_clock_wraps(void **state)
{
    ngx_http_stytch_tat_msec_t      now_ms;
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* ngx_current_msec wraps (in 49 days where it is 32 bits wide) */

    now_ms = (ngx_http_stytch_tat_msec_t) -10;

    d = decide(NULL, at(NOW, now_ms, 0));
    assert_true(d.entry.lease_until == LEASE - 10);

    e = d.entry;

    d = decide(&e, at(NOW, now_ms + 5, 1));
    expect(&d, WAIT, S_NONE, 0, 0);

    d = decide(&e, at(NOW, 0, 1));
    expect(&d, WAIT, S_NONE, 0, 0);

    d = decide(&e, at(NOW, LEASE - 11, 1));
    expect(&d, WAIT, S_NONE, 0, 0);

    d = decide(&e, at(NOW, LEASE - 10, 1));
    expect(&d, ATTEST, S_MISS, 1, 0);

    /* a refusal across the wrap */

    e = failed(now_ms, 1000);

    d = decide(&e, at(NOW, 900, 0));
    expect(&d, FAILED, S_HIT, 0, 0);

    d = decide(&e, at(NOW, 990, 0));
    expect(&d, ATTEST, S_MISS, 1, 0);
}


void
test_cache_state_fail(void **state)
{
    ngx_http_stytch_tat_entry_t  e;

    (void) state;

    /* a failed refresh keeps the session, clears the claim */

    e = session(NOW + 3600, NOW + 50);
    e.leased = 1;
    e.refreshing = 1;
    e.lease_until = NOW_MS + 10;

    assert_int_equal(ngx_http_stytch_tat_cache_state_fail(&e, NOW_MS, 30000),
                     1);
    assert_int_equal(e.state, SESSION);
    assert_int_equal(e.leased, 0);
    assert_int_equal(e.refreshing, 0);
    assert_int_equal(e.negative, 0);
    assert_int_equal(e.jwt_exp, NOW + 50);
    assert_int_equal(e.refresh_failed, 1);
    assert_true(e.failed_at == NOW_MS);

    /* a failed attest: FAILED, with or without negative caching */

    e = failed(NOW_MS + 7, 0);
    assert_int_equal(e.state, NGX_HTTP_STYTCH_TAT_NODE_FAILED);
    assert_true(e.failed_at == NOW_MS + 7);
    assert_int_equal(e.negative, 0);
    assert_int_equal(e.leased, 0);

    e = failed(NOW_MS + 7, 1);
    assert_int_equal(e.negative, 1);
    assert_true(e.negative_until == NOW_MS + 8);
}


void
test_cache_state_release(void **state)
{
    ngx_http_stytch_tat_msec_t      claim_a, claim_b;
    ngx_http_stytch_tat_entry_t     e, before;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    /* a leader gives up: its PENDING entry goes, the next one leads */

    d = decide(NULL, at(NOW, NOW_MS, 0));
    e = d.entry;
    claim_a = e.lease_until;

    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e, claim_a),
                     NGX_HTTP_STYTCH_TAT_RELEASE_DELETE);

    /* its lease ran out and another took over: that claim is not its */

    d = decide(&e, at(NOW + 5, NOW_MS + LEASE, 1));
    expect(&d, ATTEST, S_MISS, 1, 0);
    apply(&e, &d);
    claim_b = e.lease_until;

    assert_true(claim_b != claim_a);

    before = e;
    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e, claim_a),
                     NGX_HTTP_STYTCH_TAT_RELEASE_KEEP);
    assert_memory_equal(&e, &before, sizeof(e));

    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e, claim_b),
                     NGX_HTTP_STYTCH_TAT_RELEASE_DELETE);

    /* a refresher gives up: the session stays, the next one refreshes */

    e = session(NOW + 3600, NOW + 50);
    d = decide(&e, at(NOW, NOW_MS, 0));
    apply(&e, &d);

    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e,
                                                              NOW_MS + LEASE),
                     NGX_HTTP_STYTCH_TAT_RELEASE_UNLEASE);
    assert_int_equal(e.state, SESSION);
    assert_int_equal(e.leased, 0);
    assert_int_equal(e.refreshing, 0);

    d = decide(&e, at(NOW, NOW_MS + 1, 1));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);

    /* an outcome already recorded: nothing left to release */

    e = session(NOW + 3600, NOW + 300);
    before = e;
    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e, 0),
                     NGX_HTTP_STYTCH_TAT_RELEASE_KEEP);
    assert_memory_equal(&e, &before, sizeof(e));

    e = failed(NOW_MS, 0);
    assert_int_equal(ngx_http_stytch_tat_cache_state_release(&e,
                                                              NOW_MS + 1),
                     NGX_HTTP_STYTCH_TAT_RELEASE_KEEP);
}


void
test_cache_state_expired(void **state)
{
    ngx_http_stytch_tat_entry_t  e;

    (void) state;

#define EXPIRED(e, now, now_ms)                                              \
    ngx_http_stytch_tat_cache_state_expired(&(e), now, now_ms)

    /* a leader's entry is never evicted while its lease holds */

    e = pending(NOW_MS + 1);
    assert_false(EXPIRED(e, NOW, NOW_MS));
    assert_true(EXPIRED(e, NOW, NOW_MS + 1));

    e = session(NOW - 10, NOW - 10);
    e.leased = 1;
    e.lease_until = NOW_MS + 1;
    assert_false(EXPIRED(e, NOW, NOW_MS));
    assert_true(EXPIRED(e, NOW, NOW_MS + 1));

    /* a session until its end */

    e = session(NOW + 1, NOW - 10);
    assert_false(EXPIRED(e, NOW, NOW_MS));
    assert_true(EXPIRED(e, NOW + 1, NOW_MS));

    /* a failure for its waiters, then for its negative caching */

    assert_int_equal(NGX_HTTP_STYTCH_TAT_FAILED_MS, 2000);

    e = failed(NOW_MS, 0);
    assert_false(EXPIRED(e, NOW, NOW_MS + 1999));
    assert_true(EXPIRED(e, NOW, NOW_MS + 2000));

    e = failed(NOW_MS, 30000);
    assert_false(EXPIRED(e, NOW, NOW_MS + 29999));
    assert_true(EXPIRED(e, NOW, NOW_MS + 30000));

    /* a minted token until its exp */

    memset(&e, 0, sizeof(e));
    e.token_exp = NOW + 1;
    assert_false(EXPIRED(e, NOW, NOW_MS));
    assert_true(EXPIRED(e, NOW + 1, NOW_MS));

#undef EXPIRED
}


/*
 * After a failed refresh the JWT, valid still, serves as STALE for the
 * backoff, with no call; then one request refreshes again; a JWT past
 * its exp is never served, backoff or not.
 */

void
test_cache_state_refresh_backoff(void **state)
{
    ngx_http_stytch_tat_entry_t     e;
    ngx_http_stytch_tat_decision_t  d;

    (void) state;

    e = session(NOW + 3600, NOW + 50);
    e.leased = 1;
    e.refreshing = 1;
    e.lease_until = NOW_MS + 10;
    assert_int_equal(ngx_http_stytch_tat_cache_state_fail(&e, NOW_MS, 0), 1);

    d = decide(&e, at(NOW, NOW_MS, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    d = decide(&e, at(NOW + 4, NOW_MS
                      + NGX_HTTP_STYTCH_TAT_REFRESH_BACKOFF_MS - 1, 0));
    expect(&d, HIT, S_STALE, 0, 1);

    d = decide(&e, at(NOW + 5, NOW_MS
                      + NGX_HTTP_STYTCH_TAT_REFRESH_BACKOFF_MS, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
    expect_lease(&d, SESSION, 1, NOW_MS
                 + NGX_HTTP_STYTCH_TAT_REFRESH_BACKOFF_MS);

    /* within the backoff, but the JWT has ended: refresh, never serve */

    e.jwt_exp = NOW;
    d = decide(&e, at(NOW, NOW_MS + 1, 0));
    expect(&d, REFRESH, S_EXPIRED, 1, 1);
}
