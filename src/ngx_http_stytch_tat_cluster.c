/*
 * Cluster mode (stytch_tat with stytch_tat_cookie and
 * stytch_tat_session_jwks): every session the module makes is bound to
 * its identity by a session claim (ngx_http_stytch_tat_key.c), and a
 * stytch_session_jwt cookie bound to this request's identity is the
 * session, on any node, with no call to Stytch: an expired one is
 * refreshed through sessions/authenticate with the stytch_session cookie;
 * any other cookie is ignored (and kept from the upstream), and the zone
 * and Stytch serve the request as before.
 */


#include "ngx_http_stytch_tat.h"

#include <jansson.h>

static ngx_int_t ngx_http_stytch_tat_cluster_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token);
static ngx_int_t ngx_http_stytch_tat_cluster_token(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_str_t *token);
static ngx_int_t ngx_http_stytch_tat_cluster_send(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token);
static void ngx_http_stytch_tat_cluster_cookie(ngx_http_request_t *r,
    ngx_int_t index, ngx_str_t *value);


/*
 * Cluster mode, before the zone: NGX_OK when the client's cookies hold a
 * session bound to this request's identity (ctx has it), NGX_AGAIN while
 * a JWKS fetch or a refresh is under way, NGX_DECLINED when the zone and
 * Stytch are to serve the request as without cookies.
 */

ngx_int_t
ngx_http_stytch_tat_cluster_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char                            buf[NGX_HTTP_STYTCH_TAT_BINDING_LEN];
    ngx_int_t                         rc, code;
    ngx_str_t                         token, binding;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ngx_http_stytch_tat_cluster_cookie(r, lcf->cookie_jwt_index, &token);

    if (token.len == 0) {
        ctx->client_done = 1;
        goto zone;
    }

    ngx_memcpy(ctx->identity, ctx->digest, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    if (ngx_http_stytch_tat_key_binding(mcf, ctx->identity, buf)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    binding.data = buf;
    binding.len = NGX_HTTP_STYTCH_TAT_BINDING_LEN;

    rc = ngx_http_stytch_tat_verified_check(r, lcf, ctx, &token, &binding,
                                          &code);

    if (rc == NGX_AGAIN) {
        return NGX_AGAIN;
    }

    ctx->client_done = 1;

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        /* no keys now: the zone serves, as it does without cookies */
        goto zone;
    }

    switch (code) {

    case NGX_HTTP_STYTCH_TAT_VERIFY_OK:
        ctx->session_jwt = token;
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_CLIENT;
        ctx->client_session = 1;
        ctx->client_kept = 1;
        return NGX_OK;

    case NGX_HTTP_STYTCH_TAT_VERIFY_BINDING:
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: session cookie of another identity "
                      "ignored (session \"%V\")", &ctx->session_id);
        goto zone;

    case NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED:
        rc = ngx_http_stytch_tat_cluster_refresh(r, lcf, ctx, &token);

        if (rc != NGX_DECLINED) {
            if (rc == NGX_AGAIN && ctx->state == NGX_HTTP_STYTCH_TAT_STATE_NEW)
            {
                ctx->client_done = 0;   /* waits: looks again */
            }

            return rc;
        }
    }

zone:

    ngx_http_stytch_tat_verified_forget(ctx);

    /*
     * Cookies not taken as this identity's session (another identity's,
     * unverified, expired and not refreshed) never reach the upstream:
     * an application reading Stytch's cookies itself would take them.
     */

    if (ngx_http_stytch_tat_headers_drop_cookies(r) != NGX_OK) {
        return NGX_ERROR;
    }

    return NGX_DECLINED;
}


/*
 * An expired session JWT of this identity's: sessions/authenticate with
 * the stytch_session cookie gives the session a new JWT, the same session
 * id.  One refresh per expired JWT on this node: the requests carrying it
 * at the same time (a page's many requests) wait for the first one's, kept
 * in the zone under the expired JWT's digest, as the zone keeps an
 * identity's session.  NGX_OK: the session is in ctx; NGX_AGAIN: a
 * refresh, or the wait for one, is under way; NGX_DECLINED: the zone
 * serves the request as without cookies.
 */

static ngx_int_t
ngx_http_stytch_tat_cluster_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *jwt)
{
    ngx_int_t   rc;
    ngx_str_t   token;

    if (ngx_http_stytch_tat_cluster_token(r, lcf, &token) != NGX_OK) {
        goto zone;
    }

    if (ngx_http_stytch_tat_verified_digest(lcf, "stytch_tat refreshed", jwt,
                                          ctx->digest)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    rc = ngx_http_stytch_tat_session_lookup(r, lcf->cache, ctx,
                                          lcf->lock_timeout);

    switch (rc) {

    case NGX_HTTP_STYTCH_TAT_CACHE_REFRESH:

        /* the refreshed JWT is still good: no refresh of the refresh */

        if (ctx->session_jwt.len == 0 || ctx->session_jwt_exp <= ngx_time())
        {
            goto lead;
        }

        ngx_http_stytch_tat_session_release(lcf->cache, ctx);

        /* fall through */

    case NGX_HTTP_STYTCH_TAT_CACHE_HIT:
        ngx_memcpy(ctx->digest, ctx->identity, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_CLIENT;
        ctx->client_session = 1;
        return NGX_OK;

    case NGX_HTTP_STYTCH_TAT_CACHE_WAIT:
        ngx_memcpy(ctx->digest, ctx->identity, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

        if (!ngx_http_stytch_tat_ctx_waiting(&ctx->wait_started,
                                             lcf->lock_timeout))
        {
            goto zone;
        }

        return ngx_http_stytch_tat_subrequest_delay(r);

    case NGX_HTTP_STYTCH_TAT_CACHE_ATTEST:
        goto lead;

    case NGX_HTTP_STYTCH_TAT_CACHE_BYPASS:
        break;

    default: /* FAILED: the refresh waited on failed; NGX_ERROR */
        ngx_str_null(&ctx->error);
        ngx_str_null(&ctx->retry_after);
        ctx->status = 0;

        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }

        goto zone;
    }

    return ngx_http_stytch_tat_cluster_send(r, lcf, ctx, &token);

lead:

    ctx->leading = 1;
    ctx->zone = lcf->cache;

    return ngx_http_stytch_tat_cluster_send(r, lcf, ctx, &token);

zone:

    ngx_memcpy(ctx->digest, ctx->identity, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);
    ngx_http_stytch_tat_verified_forget(ctx);

    return NGX_DECLINED;
}


/*
 * The stytch_session cookie, when there is a refresh to send it to and it
 * is a plausible token: a sibling domain can set any bytes.
 */

static ngx_int_t
ngx_http_stytch_tat_cluster_token(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_str_t *token)
{
    ngx_http_stytch_tat_cluster_cookie(r, lcf->cookie_token_index, token);

    if (token->len == 0 || lcf->refresh_uri.len == 0) {
        return NGX_DECLINED;
    }

    if (ngx_http_stytch_tat_value_check(token->data, token->len)
        != NGX_HTTP_STYTCH_TAT_CLAIM_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: stytch_session cookie ignored: too "
                      "long, control characters or invalid UTF-8");
        return NGX_DECLINED;
    }

    return NGX_OK;
}


/*
 * sessions/authenticate with the session's token, by subrequest; the
 * request's digest stays the refresh's until the answer is in.
 */

static ngx_int_t
ngx_http_stytch_tat_cluster_send(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token)
{
    json_t     *obj;
    ngx_str_t   body;

    ngx_str_null(&ctx->session_token);
    ngx_str_null(&ctx->session_jwt);

    obj = json_pack("{s:s%}", "session_token", (char *) token->data,
                    token->len);

    if (obj == NULL
        || ngx_http_stytch_tat_subrequest_json(r, obj, &body) != NGX_OK
        || ngx_http_stytch_tat_subrequest(r, &lcf->refresh_uri, ctx, &body)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->sr_purpose = NGX_HTTP_STYTCH_TAT_SR_CLIENT;

    return NGX_AGAIN;
}


/*
 * The answer of a client session's refresh.  NGX_OK: the client's
 * session, refreshed, is in ctx; NGX_DECLINED: start over, the client's
 * session is no good.
 */

ngx_int_t
ngx_http_stytch_tat_cluster_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char                            buf[NGX_HTTP_STYTCH_TAT_BINDING_LEN];
    ngx_int_t                         rc, code;
    ngx_str_t                         binding;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;

    /* is the new JWT still theirs */

    ctx->cache_role = NGX_HTTP_STYTCH_TAT_CACHE_REFRESH;

    rc = ngx_http_stytch_tat_outcome(r, lcf, ctx);

    ngx_http_stytch_tat_outcome_count(lcf, ctx, rc);

    ctx->cache_role = 0;
    code = NGX_HTTP_STYTCH_TAT_VERIFY_ERROR;

    if (rc == NGX_OK) {
        mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

        if (ngx_http_stytch_tat_key_binding(mcf, ctx->identity, buf)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        binding.data = buf;
        binding.len = NGX_HTTP_STYTCH_TAT_BINDING_LEN;

        /* the keys are there: this check fetches none */

        ctx->jwks_fetched = 1;

        rc = ngx_http_stytch_tat_verified_check(r, lcf, ctx, &ctx->session_jwt,
                                              &binding, &code);
        if (rc == NGX_ERROR) {
            return NGX_ERROR;
        }
    }

    if (ctx->leading) {
        ctx->leading = 0;

        /* under the expired JWT's digest, for those waiting on it */

        /*
         * A failure is remembered as long as a session JWT lives: the
         * same expired JWT brings no second call with the project's
         * secret, however often it comes back.
         */

        if (code == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
            ngx_http_stytch_tat_session_store(r, lcf->cache, ctx);

        } else {
            ngx_http_stytch_tat_session_fail(r, lcf->cache, ctx,
                                  NGX_HTTP_BAD_GATEWAY,
                                  NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME_MAX);
        }
    }

    ngx_memcpy(ctx->digest, ctx->identity, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

    if (code == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_CLIENT;
        ctx->client_session = 1;
        return NGX_OK;
    }

    /* whatever Stytch said, the zone serves this request as without */

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: the client's session was not refreshed "
                  "(%V), going on without it", &ctx->error);

    ngx_str_null(&ctx->error);
    ngx_str_null(&ctx->error_message);
    ngx_str_null(&ctx->request_id);
    ngx_str_null(&ctx->retry_after);
    ctx->refused = 0;
    ctx->token_refused = 0;
    ngx_http_stytch_tat_verified_forget(ctx);

    return (ngx_http_stytch_tat_headers_drop_cookies(r) == NGX_OK)
           ? NGX_DECLINED : NGX_ERROR;
}


static void
ngx_http_stytch_tat_cluster_cookie(ngx_http_request_t *r, ngx_int_t index,
    ngx_str_t *value)
{
    ngx_http_variable_value_t  *vv;

    vv = ngx_http_get_indexed_variable(r, index);

    if (vv == NULL || vv->not_found) {
        ngx_str_null(value);
        return;
    }

    value->data = vv->data;
    value->len = vv->len;
}
