/*
 * The exchange, shaped like ngx_http_auth_request_module: a precontent
 * handler mints a token for the request's identity and POSTs it to Stytch
 * through a subrequest to the "stytch_tat" URI; the post-subrequest handler
 * records the answer; the handler, run again, turns it into the session
 * handed upstream or a status.
 *
 * It runs in the precontent phase, after the whole access phase, so that
 * identity set by auth_request_set is there.  It runs once per client
 * request: its context is found again after an internal redirect.  It
 * orchestrates; the others do not call back into it: the session in the
 * zone (ngx_http_stytch_tat_session.c), the session the client brings
 * (_client.c, _cluster.c), the subrequests (_subrequest.c), Stytch's
 * answer (_capture.c, _outcome.c), what the location requires of the
 * session (_authz.c), the headers (_headers.c).
 */


#include "ngx_http_stytch_tat.h"

#include <jansson.h>


static ngx_int_t ngx_http_stytch_tat_exchange_start(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_session_claims(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_wait(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_attest(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static json_t *ngx_http_stytch_tat_exchange_attest_body(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_client(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_answered(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_grant(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_fetch_jwks(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_finish(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_exchange_failed_refresh(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_stytch_tat_exchange_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);


ngx_int_t
ngx_http_stytch_tat_exchange_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_stytch_tat_ctx_t       *ctx;
    ngx_http_stytch_tat_loc_conf_t  *lcf;

    /* the module's own subrequests: to Stytch, checked and nothing else */

    if (r->post_subrequest
        && r->post_subrequest->handler == ngx_http_stytch_tat_subrequest_done)
    {
        return ngx_http_stytch_tat_subrequest_credentials(r);
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);

    if ((lcf->uri.len == 0 && lcf->verify == NULL) || lcf->endpoint) {
        return NGX_DECLINED;
    }

    /*
     * The exchange is the client request's, once; stytch_tat_verify also
     * checks any other subrequest that reaches it (auth_request), or that
     * subrequest would let every request in.
     */

    if (r != r->main && lcf->verify == NULL) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_stytch_tat_ctx_get(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->state) {

    case NGX_HTTP_STYTCH_TAT_STATE_NEW:

        /* a session waiting on another request's fetch of the policy */

        rc = ctx->session_ready
             ? ngx_http_stytch_tat_exchange_grant(r, lcf, ctx)
             : ngx_http_stytch_tat_exchange_client(r, lcf, ctx);
        break;

    case NGX_HTTP_STYTCH_TAT_STATE_WAIT:
        return NGX_AGAIN;

    case NGX_HTTP_STYTCH_TAT_STATE_ANSWERED:
        rc = ngx_http_stytch_tat_exchange_answered(r, lcf, ctx);
        break;

    default: /* NGX_HTTP_STYTCH_TAT_STATE_DONE */

        /*
         * Only an internal redirect brings the request here again: its
         * exchange is done (try_files, error_page, "rewrite ... last"),
         * and its verdict, a session or an error page, stands.
         */

        return NGX_DECLINED;
    }

    if (rc != NGX_AGAIN) {
        ctx->state = NGX_HTTP_STYTCH_TAT_STATE_DONE;
        ctx->status = rc;
    }

    return rc;
}


/* a subrequest's answer is in: what it was for goes on */

static ngx_int_t
ngx_http_stytch_tat_exchange_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (ctx->sr_purpose == NGX_HTTP_STYTCH_TAT_SR_STYTCH) {
        return ngx_http_stytch_tat_exchange_finish(r, lcf, ctx);
    }

    /* Stytch's JWKS: the check starts over, with the keys or not */

    if (ctx->sr_purpose == NGX_HTTP_STYTCH_TAT_SR_JWKS) {
        ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;
        (void) ngx_http_stytch_tat_stytch_jwks_answered(r, lcf, ctx);
        return ngx_http_stytch_tat_exchange_client(r, lcf, ctx);
    }

    /* the RBAC policy: what the session may do is decided now */

    if (ctx->sr_purpose == NGX_HTTP_STYTCH_TAT_SR_POLICY) {
        ngx_http_stytch_tat_policy_answered(r, lcf, ctx);
        return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);
    }

    /* the refresh of a client's session, cluster mode */

    rc = ngx_http_stytch_tat_cluster_answered(r, lcf, ctx);

    if (rc == NGX_OK) {
        rc = ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);

    } else if (rc == NGX_DECLINED) {
        rc = ngx_http_stytch_tat_exchange_client(r, lcf, ctx);

    } else {
        rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return rc;
}


/*
 * stytch_tat_verify, or the exchange; either may first need Stytch's JWKS
 * fetched, which a subrequest of this request does.
 */

static ngx_int_t
ngx_http_stytch_tat_exchange_client(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (lcf->verify) {
        rc = ngx_http_stytch_tat_client_verify(r, lcf, ctx);

        if (rc == NGX_OK) {
            return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);
        }

    } else {
        rc = ngx_http_stytch_tat_exchange_start(r, lcf, ctx);
    }

    if (rc == NGX_AGAIN && ctx->jwks_leading
        && ctx->state == NGX_HTTP_STYTCH_TAT_STATE_NEW)
    {
        return ngx_http_stytch_tat_exchange_fetch_jwks(r, lcf, ctx);
    }

    return rc;
}


/*
 * A session is in ctx, whoever gave it: what the location requires of it
 * is decided, then it goes upstream.  NGX_DECLINED (on), NGX_AGAIN (the
 * RBAC policy is being fetched, by this request or another), or a status.
 */

static ngx_int_t
ngx_http_stytch_tat_exchange_grant(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    ctx->session_ready = 1;
    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;

    rc = ngx_http_stytch_tat_authz(r, lcf, ctx);

    if (rc == NGX_AGAIN) {
        if (!ctx->policy_leading) {
            return ngx_http_stytch_tat_subrequest_delay(r);
        }

        if (ngx_http_stytch_tat_subrequest(r, &lcf->policy_uri, ctx, NULL)
            != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->sr_purpose = NGX_HTTP_STYTCH_TAT_SR_POLICY;

        return NGX_AGAIN;
    }

    if (rc != NGX_OK) {
        return rc;
    }

    return (ngx_http_stytch_tat_headers_hand_off(r, lcf, ctx) == NGX_OK)
           ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_fetch_jwks(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    if (ngx_http_stytch_tat_subrequest(r, &lcf->jwks_uri, ctx, NULL)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->sr_purpose = NGX_HTTP_STYTCH_TAT_SR_JWKS;

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_start(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (!ctx->evaluated) {
        rc = ngx_http_stytch_tat_exchange_evaluate(r, lcf, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    /* a custom factor (a session or a token id passed in) is one event */

    if (lcf->cache == NULL || ctx->attached || ctx->explicit_jti) {
        ctx->cache_status = lcf->cache ? NGX_HTTP_STYTCH_TAT_BYPASS
                                       : NGX_HTTP_STYTCH_TAT_NONE;
        if (lcf->cache) {
            ngx_atomic_fetch_add(&lcf->cache->sh->stats.bypass, 1);
        }

        return ngx_http_stytch_tat_exchange_attest(r, lcf, ctx);
    }

    /* cluster mode: the session the client's cookies hold, if theirs */

    if (lcf->bind && !ctx->client_done) {
        rc = ngx_http_stytch_tat_cluster_session(r, lcf, ctx);

        if (rc == NGX_OK) {
            return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);
        }

        if (rc != NGX_DECLINED) {
            return (rc == NGX_AGAIN) ? NGX_AGAIN
                                     : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    rc = ngx_http_stytch_tat_session_lookup(r, lcf->cache, ctx,
                                          lcf->lock_timeout);

    switch (rc) {

    case NGX_HTTP_STYTCH_TAT_CACHE_HIT:
        return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_FAILED:
        return ngx_http_stytch_tat_outcome_fail_mode(r, lcf, ctx,
                                                     ctx->status);

    case NGX_HTTP_STYTCH_TAT_CACHE_WAIT:
        return ngx_http_stytch_tat_exchange_wait(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_ATTEST:
        ctx->cache_role = NGX_HTTP_STYTCH_TAT_CACHE_ATTEST;
        ctx->zone = lcf->cache;
        ctx->leading = 1;
        return ngx_http_stytch_tat_exchange_attest(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_REFRESH:
        ctx->cache_role = NGX_HTTP_STYTCH_TAT_CACHE_REFRESH;
        ctx->zone = lcf->cache;
        ctx->leading = 1;

        if (lcf->refresh_uri.len) {
            return ngx_http_stytch_tat_exchange_refresh(r, lcf, ctx);
        }

        /* without stytch_tat_refresh, a new attest gets a new JWT */
        ngx_str_null(&ctx->session_token);
        return ngx_http_stytch_tat_exchange_attest(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_BYPASS:
        ngx_atomic_fetch_add(&lcf->cache->sh->stats.bypass, 1);
        return ngx_http_stytch_tat_exchange_attest(r, lcf, ctx);
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    size_t                      i;
    ngx_int_t                   rc;
    ngx_str_t                  *value, extra[4];
    ngx_http_complex_value_t   *cv[4];
    static const char          *names[4] = {
        "profile_id", "organization_id", "session_token", "session_jwt"
    };

    rc = ngx_http_stytch_tat_identity_evaluate(r, ctx);

    if (rc == NGX_DECLINED) {
        ngx_str_set(&ctx->error, "identity_missing");
        return NGX_HTTP_UNAUTHORIZED;
    }

    if (rc == NGX_HTTP_FORBIDDEN) {
        ngx_str_set(&ctx->error, "untrusted_address");
        return NGX_HTTP_FORBIDDEN;
    }

    if (rc != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cv[0] = lcf->profile_id;
    cv[1] = lcf->organization_id;
    cv[2] = lcf->session_token;
    cv[3] = lcf->session_jwt;

    value = ctx->body_values;

    for (i = 0; i < 4; i++) {
        ngx_str_null(&value[i]);

        if (cv[i] && ngx_http_complex_value(r, cv[i], &value[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        /* only values from variables can be the client's: check those */

        if (value[i].len && cv[i]->lengths
            && ngx_http_stytch_tat_value_check(value[i].data, value[i].len)
               != NGX_HTTP_STYTCH_TAT_CLAIM_OK)
        {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "stytch_tat: \"%s\" value rejected: too long, "
                          "control characters or invalid UTF-8", names[i]);
            ngx_str_set(&ctx->error, "identity_invalid");
            return NGX_HTTP_BAD_REQUEST;
        }
    }

    if (value[0].len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: \"stytch_tat_profile_id\" is empty");
        ngx_str_set(&ctx->error, "profile_id_missing");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* Stytch takes at most one of session_token and session_jwt */

    if (value[2].len) {
        ngx_str_null(&value[3]);
    }

    if (lcf->session_claims) {
        rc = ngx_http_stytch_tat_exchange_session_claims(r, lcf, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    ctx->attached = (value[2].len || value[3].len) ? 1 : 0;
    ctx->evaluated = 1;

    if (lcf->cache == NULL || ctx->attached || ctx->explicit_jti) {
        return NGX_OK;
    }

    /* what the configuration asks of Stytch, and what the request does */

    extra[0].data = lcf->fingerprint;
    extra[0].len = NGX_HTTP_STYTCH_TAT_DIGEST_LEN;
    extra[1] = value[0];
    extra[2] = value[1];
    extra[3] = ctx->session_claims;   /* names, types and values, as JSON */

    if (ngx_http_stytch_tat_key_digest(r, ctx, extra,
                                      lcf->session_claims ? 4 : 3)
        != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


/*
 * stytch_tat_session_claim: the session_custom_claims object, built and
 * checked like the token's claims (each value, then at most 4096 bytes of
 * JSON: Stytch's bound).  Its values come from the request: a bad one is
 * the request's fault, a 400.
 */

static ngx_int_t
ngx_http_stytch_tat_exchange_session_claims(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    int                                rc;
    u_char                            *buf;
    size_t                             len, bad;
    ngx_str_t                          value;
    ngx_uint_t                         i, n;
    ngx_http_stytch_tat_claim_t       *c;
    ngx_http_stytch_tat_claim_conf_t  *cc;

    n = lcf->session_claims->nelts;
    cc = lcf->session_claims->elts;

    c = ngx_pcalloc(r->pool, n * sizeof(ngx_http_stytch_tat_claim_t));
    buf = ngx_pnalloc(r->pool, NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);

    if (c == NULL || buf == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (i = 0; i < n; i++) {
        if (ngx_http_complex_value(r, &cc[i].value, &value) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        c[i].name = (char *) cc[i].name.data;
        c[i].data = value.data;
        c[i].len = value.len;

        if (cc[i].sep) {
            c[i].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
            c[i].sep = cc[i].sep;
        }
    }

    rc = ngx_http_stytch_tat_claims_json(c, n, buf,
                                         NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX,
                                         &len, &bad);

    if (rc == NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        /* the value itself is the client's: name the claim, not its value */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: no exchange: session claim \"%s\": %s",
                      bad < n ? c[bad].name : "*",
                      ngx_http_stytch_tat_claim_strerror(rc));
        ngx_str_set(&ctx->error, "identity_invalid");
        return NGX_HTTP_BAD_REQUEST;
    }

    ctx->session_claims.data = buf;
    ctx->session_claims.len = len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_wait(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    if (!ngx_http_stytch_tat_ctx_waiting(&ctx->wait_started,
                                         lcf->lock_timeout))
    {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: waited %M ms for another request's "
                      "exchange in stytch_tat_zone \"%V\", going on alone",
                      ngx_current_msec - ctx->wait_started,
                      &lcf->cache->shm_zone->shm.name);
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_BYPASS;
        return ngx_http_stytch_tat_exchange_attest(r, lcf, ctx);
    }

    return ngx_http_stytch_tat_subrequest_delay(r);
}


static ngx_int_t
ngx_http_stytch_tat_exchange_attest(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    json_t     *obj;
    ngx_int_t   rc;
    ngx_str_t   body;

    /* a token of its own: one JWT is never sent to Stytch twice */

    ctx->minted = 0;
    ngx_str_null(&ctx->jwt);

    if (!ctx->explicit_jti) {
        ngx_str_null(&ctx->jti);
    }

    rc = ngx_http_stytch_tat_mint(r, ctx);

    if (rc != NGX_OK) {
        if (rc == NGX_HTTP_BAD_REQUEST) {
            ngx_str_set(&ctx->error, "identity_invalid");

        } else {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (ctx->leading) {
            /* the same identity fails alike for those waiting on it */
            ctx->leading = 0;
            ngx_http_stytch_tat_session_fail(r, lcf->cache, ctx, rc, 0);
        }

        return rc;
    }

    if (lcf->cache) {
        ngx_http_stytch_tat_zone_count(lcf->cache,
                                        NGX_HTTP_STYTCH_TAT_COUNT_MINT_RS256
                                        + ctx->mint_alg - 1, 0);
    }

    obj = ngx_http_stytch_tat_exchange_attest_body(r, lcf, ctx);
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_stytch_tat_subrequest_json(r, obj, &body) != NGX_OK
        || ngx_http_stytch_tat_subrequest(r, &lcf->uri, ctx, &body)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


/* the attest's JSON body, or NULL */

static json_t *
ngx_http_stytch_tat_exchange_attest_body(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char                            binding[NGX_HTTP_STYTCH_TAT_BINDING_LEN];
    size_t                            i;
    json_t                           *obj, *claims;
    ngx_str_t                        *value;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    static const char  *names[4] = {
        "profile_id", "organization_id", "session_token", "session_jwt"
    };

    obj = json_object();
    if (obj == NULL) {
        return NULL;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);
    value = ctx->body_values;

    for (i = 0; i < 4; i++) {
        if (value[i].len
            && json_object_set_new(obj, names[i],
                                   json_stringn((char *) value[i].data,
                                                value[i].len))
               != 0)
        {
            goto failed;
        }
    }

    /*
     * On an existing session Stytch applies the duration from now: a
     * step-up would cut a long session short unless the operator asked.
     */

    if (json_object_set_new(obj, "token",
                            json_stringn((char *) ctx->jwt.data, ctx->jwt.len))
        != 0
        || ((!ctx->attached || lcf->session_duration_set)
            && json_object_set_new(obj, "session_duration_minutes",
                                   json_integer(lcf->session_duration / 60))
               != 0))
    {
        goto failed;
    }

    /* "{}": every session claim's value was empty, nothing to send */

    claims = NULL;

    if (ctx->session_claims.len > 2) {
        claims = json_loadb((char *) ctx->session_claims.data,
                            ctx->session_claims.len, 0, NULL);
        if (claims == NULL) {
            goto failed;
        }
    }

    /*
     * Cluster mode: the session says which identity it was made for, so
     * that any node can tell whether a client's session JWT is this
     * identity's (a new session only: Stytch ignores claims on step-up).
     */

    if (lcf->bind && ctx->keyed) {
        if (ngx_http_stytch_tat_key_binding(mcf, ctx->digest, binding)
            != NGX_OK
            || (claims == NULL && (claims = json_object()) == NULL)
            || json_object_set_new(claims, NGX_HTTP_STYTCH_TAT_BINDING_CLAIM,
                                   json_stringn((char *) binding,
                                          NGX_HTTP_STYTCH_TAT_BINDING_LEN))
               != 0)
        {
            json_decref(claims);
            goto failed;
        }
    }

    if (claims && json_object_set_new(obj, "session_custom_claims", claims)
                  != 0)
    {
        goto failed;
    }

    return obj;

failed:

    json_decref(obj);

    return NULL;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    json_t     *obj;
    ngx_str_t   body;

    obj = json_object();
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (json_object_set_new(obj, "session_token",
                            json_stringn((char *) ctx->session_token.data,
                                         ctx->session_token.len))
        != 0)
    {
        json_decref(obj);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_stytch_tat_subrequest_json(r, obj, &body) != NGX_OK
        || ngx_http_stytch_tat_subrequest(r, &lcf->refresh_uri, ctx,
                                                   &body)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_stytch_tat_exchange_finish(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    r->connection->log->action = "exchanging the identity with Stytch";

    rc = ngx_http_stytch_tat_outcome(r, lcf, ctx);

    r->connection->log->action = NULL;

    ngx_http_stytch_tat_outcome_count(lcf, ctx, rc);

    if (rc == NGX_OK) {
        return ngx_http_stytch_tat_exchange_session(r, lcf, ctx);
    }

    if (ctx->cache_role == NGX_HTTP_STYTCH_TAT_CACHE_REFRESH) {
        return ngx_http_stytch_tat_exchange_failed_refresh(r, lcf, ctx, rc);
    }

    /*
     * A refusal of the module's own token is no verdict on the identity:
     * its waiters get it once, and the next request asks Stytch again.
     */

    if (ctx->leading) {
        ctx->leading = 0;
        ngx_http_stytch_tat_session_fail(r, lcf->cache, ctx, rc,
                                       (ctx->refused && !ctx->token_refused)
                                       ? lcf->cache_refusals : 0);
    }

    return ngx_http_stytch_tat_outcome_fail_mode(r, lcf, ctx, rc);
}


static ngx_int_t
ngx_http_stytch_tat_exchange_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    if (ctx->leading) {
        ctx->leading = 0;

        /* the session's roles and factors, read once, kept with it */

        if (lcf->cache->rbac
            && ngx_http_stytch_tat_authz_claims(r, ctx, &ctx->session_jwt)
               != NGX_OK)
        {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ngx_http_stytch_tat_session_store(r, lcf->cache, ctx);
    }

    return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);
}


static ngx_int_t
ngx_http_stytch_tat_exchange_failed_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t rc)
{
    ctx->leading = 0;

    if (ctx->error.len == sizeof("session_not_found") - 1
        && ngx_strncmp(ctx->error.data, "session_not_found",
                       ctx->error.len) == 0)
    {
        /* the session is gone: drop it and attest anew, once */

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: cached session ended at Stytch, "
                      "attesting anew");

        ngx_http_stytch_tat_session_drop(lcf->cache, ctx);

        ctx->cache_role = 0;
        ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;
        ngx_str_null(&ctx->error);
        ngx_str_null(&ctx->session_token);
        ngx_str_null(&ctx->session_jwt);

        return ngx_http_stytch_tat_exchange_start(r, lcf, ctx);
    }

    /* a failed refresh: the old JWT serves while it is valid */

    ngx_http_stytch_tat_session_fail(r, lcf->cache, ctx, rc, 0);

    if (ctx->session_jwt.len && ctx->session_jwt_exp > ngx_time()) {
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_STALE;

        return ngx_http_stytch_tat_exchange_grant(r, lcf, ctx);
    }

    return ngx_http_stytch_tat_outcome_fail_mode(r, lcf, ctx, rc);
}


char *
ngx_http_stytch_tat_exchange_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->uri.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&lcf->uri, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be the URI of a location, such as "
                           "\"/_stytch_attest\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->uri = value[1];
    lcf->uri_file = cf->conf_file->file.name;
    lcf->uri_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


char *
ngx_http_stytch_tat_exchange_refresh_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->refresh_uri.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&lcf->refresh_uri, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be the URI of a location, such as "
                           "\"/_stytch_authenticate\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->refresh_uri = value[1];

    return NGX_CONF_OK;
}
