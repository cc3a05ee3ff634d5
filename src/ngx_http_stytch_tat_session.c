/*
 * Sessions in the zone: per identity, the Stytch session the exchange
 * got, and the single flight that gets it.  A lookup decides under the
 * zone's lock (what it decides is ngx_http_stytch_tat_cache_state.c's,
 * free of nginx), then acts: writes the entry back, counts, copies the
 * session out; a leader stores its session or its failure, or gives its
 * claim up.  As in ngx_http_limit_req_module, decide under the lock.
 *
 * A node is also the single-flight lock: the first request for an identity
 * leaves a PENDING node with a lease and talks to Stytch; the others wait on
 * a timer until the node holds a session or a failure.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"


/* a Retry-After is delta-seconds or an HTTP-date: longer is not one */
#define NGX_HTTP_STYTCH_TAT_RETRY_AFTER_MAX  64

/* refresh Stytch's 5-minute session JWT this long before it expires */
#define NGX_HTTP_STYTCH_TAT_REFRESH_AHEAD    60
/* the longest negative caching, s: see ngx_http_stytch_tat_session_fail() */
#define NGX_HTTP_STYTCH_TAT_NEGATIVE_MAX     (24 * 86400)


static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_session_apply(
    ngx_http_request_t *r, ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static ngx_int_t ngx_http_stytch_tat_session_copy(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static ngx_int_t ngx_http_stytch_tat_session_copy_fields(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_ctx_t *ctx);


ngx_int_t
ngx_http_stytch_tat_session_lookup(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_msec_t lease)
{
    ngx_int_t                        rc;
    ngx_pid_t                        gone;
    ngx_http_stytch_tat_node_t      *tn;
    ngx_http_stytch_tat_lookup_t     lk;
    ngx_http_stytch_tat_decision_t   d;

    ngx_memzero(&lk, sizeof(ngx_http_stytch_tat_lookup_t));

    lk.now = ngx_time();
    lk.now_ms = ngx_current_msec;
    lk.lease = lease;
    lk.ahead = NGX_HTTP_STYTCH_TAT_REFRESH_AHEAD;
    lk.waited = ctx->cache_waited;

    gone = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_zone_touch(zone, tn);

        /*
         * A leader whose worker is gone (killed: no pool cleanup ran to
         * release its claim) leads no more: its waiters need not wait for
         * the lease to run out.
         */

        if (tn->entry.leased
            && ngx_http_stytch_tat_cache_state_leased(&tn->entry, lk.now_ms)
            && ngx_http_stytch_tat_zone_gone(tn->entry.pid))
        {
            gone = tn->entry.pid;
            tn->entry.leased = 0;
        }
    }

    ngx_http_stytch_tat_cache_state_decide(tn ? &tn->entry : NULL, &lk, &d);

    tn = ngx_http_stytch_tat_session_apply(r, zone, ctx, tn, &d);

    rc = tn ? ngx_http_stytch_tat_session_copy(r, ctx, tn, &d)
            : NGX_HTTP_STYTCH_TAT_CACHE_BYPASS;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (gone) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: the worker process %P leading an "
                      "exchange in stytch_tat_zone \"%V\" is gone, its "
                      "lease passes on", gone, &zone->shm_zone->shm.name);
    }

    return rc;
}


/*
 * The decision's effects on the zone and the request: a new node for a
 * new leader, the entry written back, the cache status, the counters.
 * NULL when there is no room for a new node: the request goes alone.
 */

static ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_session_apply(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_decision_t *d)
{
    ngx_http_stytch_tat_stats_t  *st;

    st = &zone->sh->stats;

    if (d->create) {
        tn = ngx_http_stytch_tat_zone_replace(zone, r, NULL, ctx->digest,
                                               NULL);
        if (tn == NULL) {
            ctx->cache_status = NGX_HTTP_STYTCH_TAT_BYPASS;
            return NULL;
        }
    }

    if (d->update) {
        /* this request leads: its lease is its claim, see release() */
        tn->entry = d->entry;
        tn->entry.pid = ngx_pid;
        ctx->cache_claim = d->entry.lease_until;
        ctx->cache_claimed = 1;
    }

    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_WAIT) {
        if (!ctx->cache_waited) {
            ctx->cache_waited = 1;
            ngx_atomic_fetch_add(&st->waits, 1);
        }

        return tn;
    }

    ctx->cache_status = d->status;

    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_FAILED) {
        return tn;
    }

    switch (d->status) {

    case NGX_HTTP_STYTCH_TAT_HIT:
        ngx_atomic_fetch_add(&st->hits, 1);
        break;

    case NGX_HTTP_STYTCH_TAT_STALE:
        ngx_atomic_fetch_add(&st->stale, 1);
        break;

    case NGX_HTTP_STYTCH_TAT_EXPIRED:
        ngx_atomic_fetch_add(&st->expired, 1);
        break;

    default: /* NGX_HTTP_STYTCH_TAT_MISS */
        ngx_atomic_fetch_add(&st->misses, 1);
        break;
    }

    return tn;
}


/* what the request takes from the node, while the zone is locked */

static ngx_int_t
ngx_http_stytch_tat_session_copy(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d)
{
    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_FAILED) {

        /* the leader's outcome, for those who waited on it */

        ctx->status = tn->status;

        if (ngx_http_stytch_tat_zone_copy_out(r, tn,
                                               NGX_HTTP_STYTCH_TAT_F_ERROR,
                                               &ctx->error)
            != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                            NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER,
                                            &ctx->retry_after)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_HTTP_STYTCH_TAT_CACHE_FAILED;
    }

    if (d->copy
        && ngx_http_stytch_tat_session_copy_fields(r, tn, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return d->action;
}


static ngx_int_t
ngx_http_stytch_tat_session_copy_fields(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char      *p, *q;
    size_t       len;
    ngx_str_t   *dst[4];
    ngx_uint_t   i, field;

    ctx->expires_at = tn->entry.expires_at;
    ctx->session_jwt_exp = tn->entry.jwt_exp;

    /* in the order of the fields, from F_SESSION_TOKEN on */

    dst[0] = &ctx->session_token;
    dst[1] = &ctx->session_jwt;
    dst[2] = &ctx->user_id;
    dst[3] = &ctx->session_id;

    q = tn->data;
    len = 0;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN; i++) {
        q += tn->len[i];
    }

    for (i = 0; i < 4; i++) {
        len += tn->len[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN + i];
    }

    len += tn->len[NGX_HTTP_STYTCH_TAT_F_CLAIMS];

    /* one allocation from the request pool for the five, on a hit */

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 4; i++) {
        field = NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN + i;

        dst[i]->len = tn->len[field];
        dst[i]->data = dst[i]->len ? p : NULL;

        p = ngx_cpymem(p, q, tn->len[field]);
        q += tn->len[field];
    }

    /* the session's roles and factors, from their own slot */

    ctx->rbac.len = tn->len[NGX_HTTP_STYTCH_TAT_F_CLAIMS];
    ctx->rbac.data = ctx->rbac.len ? p : NULL;

    if (ctx->rbac.len) {
        ngx_memcpy(p, tn->claims, ctx->rbac.len);
    }

    return NGX_OK;
}


void
ngx_http_stytch_tat_session_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_t                    fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_http_stytch_tat_node_t  *tn;

    ngx_memzero(fields, sizeof(fields));

    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN] = ctx->session_token;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] = ctx->session_jwt;
    fields[NGX_HTTP_STYTCH_TAT_F_USER_ID] = ctx->user_id;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID] = ctx->session_id;
    fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS] = ctx->rbac;
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_ERROR], "");

    /* none read: none kept (a NULL field would keep the old node's) */

    if (ctx->rbac.len == 0) {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS], "");
    }
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER], "");

    /*
     * The token sent to Stytch is not kept: it is never sent again, and
     * without it an entry fits a 2 KB slab class instead of a page.
     */

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);
    tn = ngx_http_stytch_tat_zone_replace(zone, r, tn, ctx->digest, fields);

    if (tn) {
        tn->entry.state = NGX_HTTP_STYTCH_TAT_NODE_SESSION;
        tn->entry.leased = 0;
        tn->entry.refreshing = 0;
        tn->entry.negative = 0;
        tn->entry.refresh_failed = 0;
        tn->entry.expires_at = ctx->expires_at;
        tn->entry.jwt_exp = ctx->session_jwt_exp;

    } else {
        /* no room: waiters must not wait on a node that will never fill */
        tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_zone_delete(zone, tn);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_stytch_tat_session_fail(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t status, time_t negative)
{
    ngx_str_t                     fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_msec_t                    negative_ms;
    ngx_http_stytch_tat_node_t   *tn;
    ngx_http_stytch_tat_entry_t   e;

    /* a monotonic time 32 bits wide spans 24 days either way */

    negative_ms = (ngx_msec_t) ngx_min(negative,
                                       NGX_HTTP_STYTCH_TAT_NEGATIVE_MAX)
                  * 1000;

    ngx_memzero(fields, sizeof(fields));

    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_USER_ID], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS], "");
    fields[NGX_HTTP_STYTCH_TAT_F_ERROR] = ctx->error;
    fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER] = ctx->retry_after;

    if (fields[NGX_HTTP_STYTCH_TAT_F_ERROR].data == NULL) {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_ERROR], "");
    }

    /* waiters behind a rate-limited leader get its Retry-After */

    if (fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER].data == NULL
        || ctx->retry_after.len > NGX_HTTP_STYTCH_TAT_RETRY_AFTER_MAX)
    {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER], "");
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        e = tn->entry;

    } else {
        ngx_memzero(&e, sizeof(ngx_http_stytch_tat_entry_t));
    }

    if (ngx_http_stytch_tat_cache_state_fail(&e, ngx_current_msec,
                                             negative_ms))
    {
        /* a failed refresh of the session in tn: it stays, its lease goes */
        tn->entry = e;
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return;
    }

    tn = ngx_http_stytch_tat_zone_replace(zone, r, tn, ctx->digest, fields);

    if (tn) {
        tn->entry = e;
        tn->status = (uint16_t) status;

    } else {
        /* no room: waiters must not wait on a node that will never fill */
        tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_zone_delete(zone, tn);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_stytch_tat_session_drop(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_http_stytch_tat_node_t  *tn;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_zone_delete(zone, tn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A leader whose request ends before it records an outcome (its client
 * went away) gives up its claim at once, so that its waiters need not wait
 * for the lease to run out: the next request leads.  Nothing happens when
 * the outcome is in, or the claim was taken over.
 */

void
ngx_http_stytch_tat_session_release(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_http_stytch_tat_node_t  *tn;

    if (!ctx->cache_claimed) {
        return;
    }

    ctx->cache_claimed = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    /* RELEASE_UNLEASE clears the lease of a session in place */

    if (tn
        && ngx_http_stytch_tat_cache_state_release(&tn->entry, ctx->cache_claim)
           == NGX_HTTP_STYTCH_TAT_RELEASE_DELETE)
    {
        ngx_http_stytch_tat_zone_delete(zone, tn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}
