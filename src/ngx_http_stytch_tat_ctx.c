/*
 * The request's context: per request, never in the configuration (a
 * location's configuration is shared by every request of every worker).
 * The main request's lives as long as its pool, and is found again after
 * an internal redirect (which clears module contexts) through its pool
 * cleanup, the way the realip module does: the exchange runs once per
 * client request.  When the pool goes, the leases its request held go
 * with it.
 */


#include "ngx_http_stytch_tat.h"


static void ngx_http_stytch_tat_ctx_cleanup(void *data);
static void ngx_http_stytch_tat_ctx_sr_cleanup(void *data);


ngx_http_stytch_tat_ctx_t *
ngx_http_stytch_tat_ctx_get(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t         *cln;
    ngx_http_stytch_tat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx) {
        return ctx;
    }

    if (r == r->main && r->internal) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_stytch_tat_ctx_cleanup) {
                ctx = cln->data;
                ngx_http_set_ctx(r, ctx, ngx_http_stytch_tat_module);
                return ctx;
            }
        }
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_stytch_tat_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    /*
     * A subrequest's (stytch_tat_verify under auth_request) shares the
     * pool: its cleanup is another function, never found above.
     */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NULL;
    }

    cln->handler = (r == r->main) ? ngx_http_stytch_tat_ctx_cleanup
                                  : ngx_http_stytch_tat_ctx_sr_cleanup;
    cln->data = ctx;

    ngx_http_set_ctx(r, ctx, ngx_http_stytch_tat_module);

    return ctx;
}


/*
 * The request's pool is going away: a leader that recorded no outcome (its
 * client hung up, the worker shut down) gives its claim up, so that those
 * waiting on it take over at once.
 */

static void
ngx_http_stytch_tat_ctx_cleanup(void *data)
{
    ngx_http_stytch_tat_ctx_t  *ctx = data;

    if (ctx->leading) {
        ctx->leading = 0;
        ngx_http_stytch_tat_session_release(ctx->zone, ctx);
    }

    if (ctx->jwks_leading) {
        ctx->jwks_leading = 0;
        ngx_http_stytch_tat_stytch_jwks_release(ctx->zone);
    }

    if (ctx->policy_leading) {
        ctx->policy_leading = 0;
        ngx_http_stytch_tat_policy_release(ctx->zone);
    }
}


/* the same for a subrequest's context: found by no redirect */

static void
ngx_http_stytch_tat_ctx_sr_cleanup(void *data)
{
    ngx_http_stytch_tat_ctx_cleanup(data);
}


/*
 * A request waiting on another's work (its exchange, a fetch of Stytch's
 * JWKS or policy) waits on: 1 until timeout ms after it first looked
 * (*started, 0 before; the monotonic clock, as the leases'), then 0.
 */

ngx_uint_t
ngx_http_stytch_tat_ctx_waiting(ngx_msec_t *started, ngx_msec_t timeout)
{
    if (*started == 0) {
        *started = ngx_current_msec;
        return 1;
    }

    return ngx_current_msec - *started < timeout;
}
