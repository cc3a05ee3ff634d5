/*
 * The session the client brings: a Stytch session JWT, verified here
 * against Stytch's JWKS (ngx_http_stytch_tat_stytch_jwks.c) with no call
 * to Stytch, and known good in the zone until it expires.
 *
 * Two users.  "stytch_tat_verify VALUE" is the whole check of a location:
 * the JWT in VALUE or 401.  In cluster mode (stytch_tat with
 * stytch_tat_cookie and stytch_tat_session_jwks) every session the module
 * makes is bound to its identity by a session claim, and a
 * stytch_session_jwt cookie bound to this request's identity is the
 * session, on any node: an expired one is refreshed through
 * sessions/authenticate with the stytch_session cookie; any other cookie
 * is ignored, and the zone and Stytch serve the request as before.
 */


#include "ngx_http_stytch_tat.h"

#include <jansson.h>


static ngx_int_t ngx_http_stytch_tat_client_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t code);
static ngx_int_t ngx_http_stytch_tat_client_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token);
static void ngx_http_stytch_tat_client_cookie(ngx_http_request_t *r,
    ngx_int_t index, ngx_str_t *value);
static void ngx_http_stytch_tat_client_forget(ngx_http_stytch_tat_ctx_t *ctx);
static json_t *ngx_http_stytch_tat_client_claim_find(ngx_http_request_t *r,
    json_t *root, ngx_str_t *key);


/* stytch_tat_verify VALUE: the Stytch session JWT in VALUE, or 401 */

ngx_int_t
ngx_http_stytch_tat_client_verify(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t   rc, code;
    ngx_str_t   token;

    if (ngx_http_complex_value(r, lcf->verify, &token) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* "Authorization: Bearer TOKEN" as well as the token alone */

    if (token.len > 7 && ngx_strncasecmp(token.data, (u_char *) "Bearer ", 7)
                         == 0)
    {
        token.data += 7;
        token.len -= 7;

        while (token.len && token.data[0] == ' ') {
            token.data++;
            token.len--;
        }
    }

    if (token.len == 0) {
        ngx_str_set(&ctx->error, "session_jwt_missing");
        return ngx_http_stytch_tat_client_refused(r, ctx, -1);
    }

    rc = ngx_http_stytch_tat_verified_check(r, lcf, ctx, &token, NULL, &code);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_AGAIN:
        return NGX_AGAIN;

    case NGX_BUSY:

        /* another request fetches the keys: wait for it, as for a lease */

        if (ctx->wait_started == 0) {
            ctx->wait_started = ngx_current_msec;
            return ngx_http_stytch_tat_subrequest_delay(r);
        }

        if (ngx_current_msec - ctx->wait_started < lcf->lock_timeout) {
            return ngx_http_stytch_tat_subrequest_delay(r);
        }

        /* fall through */

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: no Stytch session JWKS to verify with: "
                      "\"stytch_tat_session_jwks %V\" has not answered "
                      "with one", &lcf->jwks_uri);
        ngx_str_set(&ctx->error, "jwks_unavailable");
        return NGX_HTTP_BAD_GATEWAY;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (code != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        /* an expired token's names were read: none of it is handed on */
        ngx_http_stytch_tat_client_forget(ctx);
        return ngx_http_stytch_tat_client_refused(r, ctx, code);
    }

    ctx->session_jwt = token;
    ctx->cache_status = NGX_HTTP_STYTCH_TAT_CLIENT;
    ctx->client_session = 1;
    ctx->client_kept = 1;

    return (ngx_http_stytch_tat_headers_hand_off(r, lcf, ctx) == NGX_OK)
           ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/* 401, as auth_basic answers, with the reason in $stytch_tat_error */

static ngx_int_t
ngx_http_stytch_tat_client_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t code)
{
    u_char           *p;
    const char       *name;
    ngx_table_elt_t  *h;

    if (code >= 0) {
        name = ngx_http_stytch_tat_verify_code_name(code);

        p = ngx_pnalloc(r->pool, sizeof("session_jwt_") - 1
                                 + ngx_strlen(name));
        if (p == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->error.data = p;
        ctx->error.len = ngx_sprintf(p, "session_jwt_%s", name) - p;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");

    if (code >= 0) {
        ngx_str_set(&h->value, "Bearer realm=\"stytch\", "
                               "error=\"invalid_token\"");

    } else {
        ngx_str_set(&h->value, "Bearer realm=\"stytch\"");
    }

    r->headers_out.www_authenticate = h;

    return NGX_HTTP_UNAUTHORIZED;
}


/*
 * Cluster mode, before the zone: NGX_OK when the client's cookies hold a
 * session bound to this request's identity (ctx has it), NGX_AGAIN while
 * a JWKS fetch or a refresh is under way, NGX_DECLINED when the zone and
 * Stytch are to serve the request as without cookies.
 */

ngx_int_t
ngx_http_stytch_tat_client_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char                            buf[NGX_HTTP_STYTCH_TAT_BINDING_LEN];
    ngx_int_t                         rc, code;
    ngx_str_t                         token, binding;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ngx_http_stytch_tat_client_cookie(r, lcf->cookie_jwt_index, &token);

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
        rc = ngx_http_stytch_tat_client_refresh(r, lcf, ctx, &token);

        if (rc != NGX_DECLINED) {
            if (rc == NGX_AGAIN && ctx->state == NGX_HTTP_STYTCH_TAT_STATE_NEW)
            {
                ctx->client_done = 0;   /* waits: looks again */
            }

            return rc;
        }
    }

zone:

    ngx_http_stytch_tat_client_forget(ctx);

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
ngx_http_stytch_tat_client_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *jwt)
{
    json_t     *obj;
    ngx_int_t   rc;
    ngx_str_t   token, body;

    ngx_http_stytch_tat_client_cookie(r, lcf->cookie_token_index, &token);

    if (token.len == 0 || lcf->refresh_uri.len == 0) {
        goto zone;
    }

    /* a sibling domain can set any bytes: only a plausible token is sent */

    if (ngx_http_stytch_tat_value_check(token.data, token.len)
        != NGX_HTTP_STYTCH_TAT_CLAIM_OK)
    {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: stytch_session cookie ignored: too "
                      "long, control characters or invalid UTF-8");
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

        if (ctx->wait_started == 0) {
            ctx->wait_started = ngx_current_msec;

        } else if (ngx_current_msec - ctx->wait_started >= lcf->lock_timeout)
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

    if (0) {
lead:
        ctx->leading = 1;
        ctx->zone = lcf->cache;
    }

    ngx_str_null(&ctx->session_token);
    ngx_str_null(&ctx->session_jwt);

    obj = json_pack("{s:s%}", "session_token", (char *) token.data,
                    token.len);

    if (obj == NULL
        || ngx_http_stytch_tat_subrequest_json(r, obj, &body) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the digest stays the refresh's until its answer is in */

    if (ngx_http_stytch_tat_subrequest(r, &lcf->refresh_uri, ctx,
                                                &body)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->sr_purpose = NGX_HTTP_STYTCH_TAT_SR_CLIENT;

    return NGX_AGAIN;

zone:

    ngx_memcpy(ctx->digest, ctx->identity, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);
    ngx_http_stytch_tat_client_forget(ctx);

    return NGX_DECLINED;
}


/*
 * The answer of a JWKS fetch or of a client session's refresh.  NGX_OK:
 * the client's session, refreshed, is in ctx; NGX_DECLINED: start over
 * (the keys are there now, or the client's session is no good).
 */

ngx_int_t
ngx_http_stytch_tat_client_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char                            buf[NGX_HTTP_STYTCH_TAT_BINDING_LEN];
    ngx_int_t                         rc, code;
    ngx_str_t                         binding;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;

    if (ctx->sr_purpose == NGX_HTTP_STYTCH_TAT_SR_JWKS) {
        (void) ngx_http_stytch_tat_stytch_jwks_answered(r, lcf, ctx);
        return NGX_DECLINED;
    }

    /* a refresh of the client's session: is the new JWT still theirs */

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
    ngx_http_stytch_tat_client_forget(ctx);

    return (ngx_http_stytch_tat_headers_drop_cookies(r) == NGX_OK)
           ? NGX_DECLINED : NGX_ERROR;
}


/* what a client's session that is not taken left in ctx */

static void
ngx_http_stytch_tat_client_forget(ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_null(&ctx->session_token);
    ngx_str_null(&ctx->session_jwt);
    ngx_str_null(&ctx->user_id);
    ngx_str_null(&ctx->session_id);
    ctx->expires_at = 0;
    ctx->session_jwt_exp = 0;
}


static void
ngx_http_stytch_tat_client_cookie(ngx_http_request_t *r, ngx_int_t index,
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


/*
 * $stytch_session_claim_NAME: a top-level claim of the session JWT this
 * request was let in with (stytch_tat_verify, or a client's session in
 * cluster mode): a string as it is, anything else as compact JSON.
 */

ngx_int_t
ngx_http_stytch_tat_client_claim_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t *name = (ngx_str_t *) data;

    u_char                     *p, *dot;
    size_t                      i, len;
    json_t                     *root, *claim;
    ngx_str_t                   src, dst, key;
    ngx_http_stytch_tat_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || !ctx->client_session) {
        return NGX_OK;
    }

    key.data = name->data + sizeof("stytch_session_claim_") - 1;
    key.len = name->len - (sizeof("stytch_session_claim_") - 1);

    /* the payload, the token's middle part: verified, so well formed */

    p = ngx_strlchr(ctx->session_jwt.data,
                    ctx->session_jwt.data + ctx->session_jwt.len, '.');
    if (p == NULL) {
        return NGX_OK;
    }

    dot = ngx_strlchr(p + 1, ctx->session_jwt.data + ctx->session_jwt.len,
                      '.');
    if (dot == NULL) {
        return NGX_OK;
    }

    src.data = p + 1;
    src.len = dot - src.data;

    dst.data = ngx_pnalloc(r->pool, ngx_base64_decoded_length(src.len));
    if (dst.data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64url(&dst, &src) != NGX_OK) {
        return NGX_OK;
    }

    root = json_loadb((char *) dst.data, dst.len, 0, NULL);
    if (root == NULL) {
        return NGX_OK;
    }

    claim = ngx_http_stytch_tat_client_claim_find(r, root, &key);

    p = NULL;
    len = 0;

    if (json_is_string(claim)) {
        len = json_string_length(claim);
        p = ngx_pnalloc(r->pool, len);

        if (p) {
            ngx_memcpy(p, json_string_value(claim), len);
        }

    } else if (claim) {
        len = json_dumpb(claim, NULL, 0, JSON_COMPACT | JSON_ENCODE_ANY);
        p = ngx_pnalloc(r->pool, len);

        if (p) {
            len = json_dumpb(claim, (char *) p, len,
                             JSON_COMPACT | JSON_ENCODE_ANY);
        }
    }

    json_decref(root);

    if (claim && p == NULL && len) {
        return NGX_ERROR;
    }

    /*
     * The value is the token's, and goes into headers (proxy_set_header)
     * that nginx does not filter: a CR or LF would split the upstream
     * request.  Such a value leaves the variable empty.
     */

    for (i = 0; claim && i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "stytch_tat: session claim \"%V\" has control "
                          "characters: $%V is empty", &key, name);
            return NGX_OK;
        }
    }

    if (claim) {
        v->data = p;
        v->len = len;
        v->valid = 1;
        v->no_cacheable = 0;
        v->not_found = 0;
    }

    return NGX_OK;
}


/*
 * The claim that a variable names.  nginx lower-cases variable names, so
 * $stytch_session_claim_teamname names "teamName" as well: a claim is
 * found in any case, and only when no other claim of the token has the
 * same name in another case (then the variable is empty).
 */

static json_t *
ngx_http_stytch_tat_client_claim_find(ngx_http_request_t *r, json_t *root,
    ngx_str_t *key)
{
    json_t      *claim, *v;
    ngx_uint_t   n;
    const char  *name;

    claim = NULL;
    n = 0;

    json_object_foreach(root, name, v) {
        if (ngx_strlen(name) == key->len
            && ngx_strncasecmp((u_char *) name, key->data, key->len) == 0)
        {
            claim = v;
            n++;
        }
    }

    if (n > 1) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: %ui session claims are named \"%V\" "
                      "in some case: $stytch_session_claim_%V is empty",
                      n, key, key);
        return NULL;
    }

    return claim;
}
