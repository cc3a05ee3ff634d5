/*
 * The cache: a shared-memory zone (stytch_tat_zone) holding, per identity,
 * the minted token and the Stytch session, across workers and reloads.
 * This file owns the zone's directives, its memory and its locking: the
 * rbtree and LRU, finding, inserting, evicting, and copying entries out.
 * What a lookup decides is ngx_http_stytch_tat_cache_state.c's.
 *
 * Modelled on ngx_http_limit_req_module's zone: a slab pool, an rbtree
 * keyed by a SHA-256 digest of everything that makes a session different
 * (the full digest is compared), an LRU queue, expiry of a few stale nodes
 * per insert and forced eviction when the slab is full.  As there, a
 * lookup decides under the lock, then acts: writes the entry back, counts,
 * copies out.
 *
 * A node is also the single-flight lock: the first request for an identity
 * leaves a PENDING node with a lease and talks to Stytch; the others wait on
 * a timer until the node holds a session or a failure.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"




/*
 * A Stytch session JWT verified before, until it expires: its user and
 * session ids in ctx, its binding claim in *binding.  NGX_DECLINED: not
 * known.
 */

ngx_int_t
ngx_http_stytch_tat_cache_verified(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding, time_t leeway)
{
    u_char                      *p;
    ngx_uint_t                   i;
    ngx_int_t                    rc;
    ngx_http_stytch_tat_node_t  *tn;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, digest);

    /* the same signature is not enough: the same token, byte for byte */

    p = NULL;

    if (tn && tn->len[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] == token->len) {
        p = tn->data;

        for (i = 0; i < NGX_HTTP_STYTCH_TAT_F_SESSION_JWT; i++) {
            p += tn->len[i];
        }

        if (ngx_memcmp(p, token->data, token->len) != 0) {
            p = NULL;
        }
    }

    /*
     * Good for this location's leeway (locations sharing the zone may
     * differ), and verified with the JWKS document the zone has now: one
     * that dropped the token's key makes it verify again, and fail.
     */

    if (p && tn->entry.state == NGX_HTTP_STYTCH_TAT_NODE_SESSION
        && tn->entry.jwt_exp > ngx_time() - leeway
        && tn->entry.generation == zone->sh->jwks.generation)
    {
        ngx_http_stytch_tat_zone_touch(zone, tn);

        rc = NGX_OK;

        if (ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_USER_ID, &ctx->user_id)
            != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_SESSION_ID,
                                &ctx->session_id)
               != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_BINDING, binding)
               != NGX_OK)
        {
            rc = NGX_ERROR;
        }

        ctx->session_jwt_exp = tn->entry.jwt_exp;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* a token that verified, known good until its exp (and a leeway) */

void
ngx_http_stytch_tat_cache_store_verified(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding,
    ngx_uint_t generation)
{
    ngx_str_t                    fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_http_stytch_tat_node_t  *tn, *old;

    ngx_memzero(fields, sizeof(fields));
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] = *token;
    fields[NGX_HTTP_STYTCH_TAT_F_USER_ID] = ctx->user_id;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID] = ctx->session_id;
    fields[NGX_HTTP_STYTCH_TAT_F_BINDING] = *binding;

    ngx_shmtx_lock(&zone->shpool->mutex);

    old = ngx_http_stytch_tat_zone_find(zone, digest);

    tn = ngx_http_stytch_tat_zone_replace(zone, r, old, digest, fields);

    if (tn) {
        /* kept while the laxest leeway might still take it */

        ngx_memzero(&tn->entry, sizeof(ngx_http_stytch_tat_entry_t));
        tn->entry.state = NGX_HTTP_STYTCH_TAT_NODE_SESSION;
        tn->entry.expires_at = ctx->session_jwt_exp
                               + NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX;
        tn->entry.jwt_exp = ctx->session_jwt_exp;
        tn->entry.generation = generation;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}
