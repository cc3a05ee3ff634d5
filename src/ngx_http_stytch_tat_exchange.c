/*
 * The exchange: on a location with "stytch_tat URI", mint a token for the
 * request's identity, POST it to Stytch through a non-blocking in-memory
 * subrequest to URI, and hand the session to the upstream.
 *
 * It runs in the precontent phase, after the access phase, so identity set
 * by auth_request_set is there (nginx-notes.md, trap 1).
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_response.h"

#include <jansson.h>


#define NGX_HTTP_STYTCH_TAT_USER_AGENT  "ngx_http_stytch_tat_module/0.1"
#define NGX_HTTP_STYTCH_TAT_NO_PROFILE  "trusted_token_profile_not_found"


static ngx_int_t ngx_http_stytch_tat_start(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_wait(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static void ngx_http_stytch_tat_wake(ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_attest(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_refresh(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_json(ngx_http_request_t *r,
    json_t *obj, ngx_str_t *body);
static ngx_int_t ngx_http_stytch_tat_subrequest(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *body);
static ngx_int_t ngx_http_stytch_tat_failure(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status);
static void ngx_http_stytch_tat_count(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t rc);
static ngx_int_t ngx_http_stytch_tat_done(ngx_http_request_t *sr,
    void *data, ngx_int_t rc);
static ngx_int_t ngx_http_stytch_tat_finish(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_outcome(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_fail(ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status, const char *error);
static ngx_int_t ngx_http_stytch_tat_strip_headers(ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_add_header(ngx_http_request_t *r,
    ngx_list_t *list, char *key, ngx_str_t *value);
static ngx_int_t ngx_http_stytch_tat_hand_off(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_set_cookie(ngx_http_request_t *r,
    char *name, ngx_str_t *value, time_t max_age);
static ngx_int_t ngx_http_stytch_tat_copy(ngx_http_request_t *r,
    ngx_str_t *dst, ngx_http_stytch_tat_field_t *src);
static ngx_int_t ngx_http_stytch_tat_capture_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_capture_body(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_stytch_tat_exchange_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_stytch_tat_capture_header;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_stytch_tat_capture_body;

    return NGX_OK;
}


ngx_int_t
ngx_http_stytch_tat_exchange_handler(ngx_http_request_t *r)
{
    ngx_int_t                        rc;
    ngx_http_stytch_tat_ctx_t       *ctx;
    ngx_http_stytch_tat_loc_conf_t  *lcf;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);

    if (lcf->uri.len == 0 || r != r->main) {
        return NGX_DECLINED;
    }

    ctx = ngx_http_stytch_tat_get_ctx(r);
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    switch (ctx->state) {

    case NGX_HTTP_STYTCH_TAT_STATE_NEW:
        rc = ngx_http_stytch_tat_start(r, lcf, ctx);
        break;

    case NGX_HTTP_STYTCH_TAT_STATE_WAIT:
        return NGX_AGAIN;

    case NGX_HTTP_STYTCH_TAT_STATE_ANSWERED:
        rc = ngx_http_stytch_tat_finish(r, lcf, ctx);
        break;

    default: /* NGX_HTTP_STYTCH_TAT_STATE_DONE */
        return ctx->status;
    }

    if (rc != NGX_AGAIN) {
        ctx->state = NGX_HTTP_STYTCH_TAT_STATE_DONE;
        ctx->status = rc;
    }

    return rc;
}


static ngx_int_t
ngx_http_stytch_tat_start(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    if (!ctx->evaluated) {
        /* an upstream never sees a client's forgery of what the module sets */

        if (ngx_http_stytch_tat_strip_headers(r) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        rc = ngx_http_stytch_tat_evaluate(r, lcf, ctx);
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

        return ngx_http_stytch_tat_attest(r, lcf, ctx);
    }

    rc = ngx_http_stytch_tat_cache_lookup(r, lcf->cache, ctx,
                                          lcf->lock_timeout);

    switch (rc) {

    case NGX_HTTP_STYTCH_TAT_CACHE_HIT:
        return (ngx_http_stytch_tat_hand_off(r, lcf, ctx) == NGX_OK)
               ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;

    case NGX_HTTP_STYTCH_TAT_CACHE_FAILED:
        return ngx_http_stytch_tat_failure(r, lcf, ctx, ctx->status);

    case NGX_HTTP_STYTCH_TAT_CACHE_WAIT:
        return ngx_http_stytch_tat_wait(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_ATTEST:
        ctx->cache_role = NGX_HTTP_STYTCH_TAT_CACHE_ATTEST;
        return ngx_http_stytch_tat_attest(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_REFRESH:
        ctx->cache_role = NGX_HTTP_STYTCH_TAT_CACHE_REFRESH;

        if (lcf->refresh_uri.len) {
            return ngx_http_stytch_tat_refresh(r, lcf, ctx);
        }

        /* without stytch_tat_refresh, a new attest gets a new JWT */
        ngx_str_null(&ctx->session_token);
        return ngx_http_stytch_tat_attest(r, lcf, ctx);

    case NGX_HTTP_STYTCH_TAT_CACHE_BYPASS:
        ngx_atomic_fetch_add(&lcf->cache->sh->stats.bypass, 1);
        return ngx_http_stytch_tat_attest(r, lcf, ctx);
    }

    return NGX_HTTP_INTERNAL_SERVER_ERROR;
}


/*
 * Everything the request contributes, evaluated once: the identity, the
 * values of the attest body, and with a cache the key they make.
 */

static ngx_int_t
ngx_http_stytch_tat_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    size_t                      i;
    ngx_int_t                   rc;
    ngx_str_t                  *value, extra[3];
    ngx_http_complex_value_t   *cv[4];
    static const char          *names[4] = {
        "profile_id", "organization_id", "session_token", "session_jwt"
    };

    rc = ngx_http_stytch_tat_identity(r, ctx);

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

    ctx->attached = (value[2].len || value[3].len) ? 1 : 0;
    ctx->evaluated = 1;

    if (lcf->cache == NULL || ctx->attached || ctx->explicit_jti) {
        return NGX_OK;
    }

    extra[0] = lcf->uri;
    extra[1] = value[0];
    extra[2] = value[1];

    if (ngx_http_stytch_tat_cache_key(r, ctx, extra, 3) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_wait(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    uint64_t     now;
    ngx_time_t  *tp;

    tp = ngx_timeofday();
    now = (uint64_t) tp->sec * 1000 + tp->msec;

    if (ctx->wait_started == 0) {
        ctx->wait_started = now;

    } else if (now - ctx->wait_started >= lcf->lock_timeout) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: waited %uL ms for another request's "
                      "exchange in stytch_tat_zone \"%V\", going on alone",
                      now - ctx->wait_started,
                      &lcf->cache->shm_zone->shm.name);
        ctx->cache_status = NGX_HTTP_STYTCH_TAT_BYPASS;
        return ngx_http_stytch_tat_attest(r, lcf, ctx);
    }

    /* like limit_req's delay: the worker goes on, a timer wakes us */

    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_stytch_tat_wake;

    r->connection->write->delayed = 1;
    ngx_add_timer(r->connection->write, NGX_HTTP_STYTCH_TAT_WAIT_STEP);

    return NGX_AGAIN;
}


static void
ngx_http_stytch_tat_wake(ngx_http_request_t *r)
{
    ngx_event_t  *wev;

    wev = r->connection->write;

    if (wev->delayed) {
        if (ngx_handle_write_event(wev, 0) != NGX_OK) {
            ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        }

        return;
    }

    if (ngx_handle_read_event(r->connection->read, 0) != NGX_OK) {
        ngx_http_finalize_request(r, NGX_HTTP_INTERNAL_SERVER_ERROR);
        return;
    }

    r->read_event_handler = ngx_http_block_reading;
    r->write_event_handler = ngx_http_core_run_phases;

    ngx_http_core_run_phases(r);
}


static ngx_int_t
ngx_http_stytch_tat_attest(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    size_t      i;
    json_t     *obj;
    ngx_int_t   rc;
    ngx_str_t   body, *value;

    static const char  *names[4] = {
        "profile_id", "organization_id", "session_token", "session_jwt"
    };

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

        if (ctx->cache_role) {
            /* the same identity fails alike for those waiting on it */
            ngx_http_stytch_tat_cache_fail(r, lcf->cache, ctx, rc, 0);
        }

        return rc;
    }

    if (lcf->cache) {
        ngx_http_stytch_tat_cache_count(lcf->cache,
                                        NGX_HTTP_STYTCH_TAT_COUNT_MINT_RS256
                                        + ctx->mint_alg - 1, 0);
    }

    obj = json_object();
    if (obj == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    value = ctx->body_values;

    for (i = 0; i < 4; i++) {
        if (value[i].len
            && json_object_set_new(obj, names[i],
                                   json_stringn((char *) value[i].data,
                                                value[i].len))
               != 0)
        {
            json_decref(obj);
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (json_object_set_new(obj, "token",
                            json_stringn((char *) ctx->jwt.data, ctx->jwt.len))
        != 0
        || json_object_set_new(obj, "session_duration_minutes",
                               json_integer(lcf->session_duration / 60))
           != 0)
    {
        json_decref(obj);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ngx_http_stytch_tat_json(r, obj, &body) != NGX_OK
        || ngx_http_stytch_tat_subrequest(r, &lcf->uri, ctx, &body) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_stytch_tat_refresh(ngx_http_request_t *r,
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

    if (ngx_http_stytch_tat_json(r, obj, &body) != NGX_OK
        || ngx_http_stytch_tat_subrequest(r, &lcf->refresh_uri, ctx, &body)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_AGAIN;
}


/* serializes and releases obj */

static ngx_int_t
ngx_http_stytch_tat_json(ngx_http_request_t *r, json_t *obj, ngx_str_t *body)
{
    size_t  len;

    len = json_dumpb(obj, NULL, 0, JSON_COMPACT);

    body->data = (len == 0) ? NULL : ngx_pnalloc(r->pool, len);

    if (body->data == NULL) {
        json_decref(obj);
        return NGX_ERROR;
    }

    body->len = json_dumpb(obj, (char *) body->data, len, JSON_COMPACT);

    json_decref(obj);

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_subrequest(ngx_http_request_t *r, ngx_str_t *uri,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *body)
{
    ngx_buf_t                        *b;
    ngx_str_t                         value;
    ngx_chain_t                      *cl;
    ngx_http_request_t               *sr;
    ngx_http_post_subrequest_t       *ps;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    static ngx_str_t  post = ngx_string("POST");

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    ps->handler = ngx_http_stytch_tat_done;
    ps->data = ctx;

    /*
     * Not NGX_HTTP_SUBREQUEST_IN_MEMORY: an answer over its buffer fails
     * the client's connection.  The capture filters below read the answer
     * instead, and an oversized one is only an error of the exchange.
     */

    if (ngx_http_subrequest(r, uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_http_set_ctx(sr, ctx, ngx_http_stytch_tat_module);
    sr->filter_need_in_memory = 1;

    /*
     * The subrequest got a shallow copy of the client's headers_in and its
     * body: replace both, so that Stytch gets the JSON body, Content-Type,
     * the credentials and nothing of the client's.
     */

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.content_length_n = body->len;
    sr->headers_in.keep_alive_n = -1;

    ngx_str_set(&value, "application/json");
    if (ngx_http_stytch_tat_add_header(r, &sr->headers_in.headers,
                                       "Content-Type", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&value, NGX_HTTP_STYTCH_TAT_USER_AGENT);
    if (ngx_http_stytch_tat_add_header(r, &sr->headers_in.headers,
                                       "User-Agent", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    if (mcf->authorization.len
        && ngx_http_stytch_tat_add_header(r, &sr->headers_in.headers,
                                          "Authorization",
                                          &mcf->authorization)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->request_body = ngx_pcalloc(r->pool, sizeof(ngx_http_request_body_t));
    if (sr->request_body == NULL) {
        return NGX_ERROR;
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_ERROR;
    }

    b->pos = body->data;
    b->last = body->data + body->len;
    b->start = b->pos;
    b->end = b->last;
    b->memory = 1;
    b->last_buf = 1;
    b->last_in_chain = 1;

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    sr->request_body->bufs = cl;
    sr->method = NGX_HTTP_POST;
    sr->method_name = post;

    /*
     * nginx's proxy module dumps the headers it sends at debug level, the
     * Basic credentials among them: while the exchange is under way this
     * connection logs at info at the most.
     */

    if (r->connection->log->log_level & NGX_LOG_DEBUG_ALL) {
        ctx->log_level = r->connection->log->log_level;
        r->connection->log->log_level = NGX_LOG_INFO;
    }

    ctx->subrequest = sr;
    ctx->started = ngx_current_msec;
    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_WAIT;
    ctx->sr_status = 0;
    ctx->sr_failed = 0;
    ctx->sr_too_big = 0;
    ngx_str_null(&ctx->sr_body);

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_done(ngx_http_request_t *sr, void *data, ngx_int_t rc)
{
    ngx_http_stytch_tat_ctx_t  *ctx = data;

    if (ctx->state != NGX_HTTP_STYTCH_TAT_STATE_WAIT) {
        return rc;
    }

    if (ctx->log_level) {
        sr->connection->log->log_level = ctx->log_level;
        ctx->log_level = 0;
    }

    ngx_log_debug3(NGX_LOG_DEBUG_HTTP, sr->connection->log, 0,
                   "stytch_tat: subrequest done, rc:%i status:%ui error:%d",
                   rc, sr->headers_out.status, sr->connection->error);

    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_ANSWERED;

    /* a timeout or a failure of the upstream arrives as rc, not status */

    if (rc == NGX_ERROR || rc >= NGX_HTTP_SPECIAL_RESPONSE) {
        ctx->sr_status = (rc == NGX_ERROR) ? 0 : (ngx_uint_t) rc;
        ctx->sr_failed = 1;

    } else {
        ctx->sr_status = sr->headers_out.status;
    }

    /*
     * NGX_ERROR would terminate the client's request with the subrequest
     * (an answer over subrequest_output_buffer_size, say): the outcome is
     * recorded, so let the parent go on and answer with a status.  A
     * client that went away still terminates it: nginx checks c->error.
     */

    if (rc == NGX_ERROR) {
        return NGX_OK;
    }

    return rc;
}


static ngx_int_t
ngx_http_stytch_tat_finish(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t  rc;

    r->connection->log->action = "exchanging the identity with Stytch";

    rc = ngx_http_stytch_tat_outcome(r, lcf, ctx);

    r->connection->log->action = NULL;

    ngx_http_stytch_tat_count(lcf, ctx, rc);

    if (rc == NGX_OK) {
        if (ctx->cache_role) {
            ngx_http_stytch_tat_cache_store(r, lcf->cache, ctx);
        }

        return (ngx_http_stytch_tat_hand_off(r, lcf, ctx) == NGX_OK)
               ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (ctx->cache_role == NGX_HTTP_STYTCH_TAT_CACHE_REFRESH) {

        if (ctx->error.len == sizeof("session_not_found") - 1
            && ngx_strncmp(ctx->error.data, "session_not_found",
                           ctx->error.len) == 0)
        {
            /* the session is gone: drop it and attest anew, once */

            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "stytch_tat: cached session ended at Stytch, "
                          "attesting anew");

            ngx_http_stytch_tat_cache_drop(lcf->cache, ctx);

            ctx->cache_role = 0;
            ctx->state = NGX_HTTP_STYTCH_TAT_STATE_NEW;
            ngx_str_null(&ctx->error);
            ngx_str_null(&ctx->session_token);
            ngx_str_null(&ctx->session_jwt);

            return ngx_http_stytch_tat_start(r, lcf, ctx);
        }

        /* a failed refresh: the old JWT serves while it is valid */

        ngx_http_stytch_tat_cache_fail(r, lcf->cache, ctx, rc, 0);

        if (ctx->session_jwt.len && ctx->session_jwt_exp > ngx_time()) {
            ctx->cache_status = NGX_HTTP_STYTCH_TAT_STALE;

            return (ngx_http_stytch_tat_hand_off(r, lcf, ctx) == NGX_OK)
                   ? NGX_DECLINED : NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_stytch_tat_failure(r, lcf, ctx, rc);
    }

    if (ctx->cache_role) {
        ngx_http_stytch_tat_cache_fail(r, lcf->cache, ctx, rc,
                                       ctx->refused ? lcf->cache_refusals
                                                    : 0);
    }

    return ngx_http_stytch_tat_failure(r, lcf, ctx, rc);
}


/* Stytch could not answer: fail closed, or open where configured */

static ngx_int_t
ngx_http_stytch_tat_failure(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status)
{
    if (!lcf->fail_open
        || (status != NGX_HTTP_BAD_GATEWAY
            && status != NGX_HTTP_GATEWAY_TIME_OUT))
    {
        return status;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "stytch_tat: failing open: request passed without a "
                  "session (%V)", &ctx->error);

    ngx_str_null(&ctx->session_token);
    ngx_str_null(&ctx->session_jwt);
    ngx_str_null(&ctx->user_id);
    ngx_str_null(&ctx->session_id);

    return NGX_DECLINED;
}


static void
ngx_http_stytch_tat_count(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t rc)
{
    ngx_uint_t  counter;

    if (lcf->cache == NULL) {
        return;
    }

    if (ctx->cache_role == NGX_HTTP_STYTCH_TAT_CACHE_REFRESH) {
        counter = (rc == NGX_OK) ? NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_OK
                                 : NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_FAILED;

    } else {
        counter = (rc == NGX_OK) ? NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_OK
                  : ctx->refused ? NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_REFUSED
                                 : NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_FAILED;
    }

    ngx_http_stytch_tat_cache_count(lcf->cache, counter,
                                    ngx_current_msec - ctx->started);
}


static ngx_int_t
ngx_http_stytch_tat_outcome(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    int                              kind;
    ngx_int_t                        rc;
    ngx_uint_t                       i, status;
    ngx_list_part_t                 *part;
    ngx_table_elt_t                 *h, *ho;
    ngx_http_stytch_tat_response_t   resp;

    status = ctx->sr_status;

    if (ctx->sr_too_big) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's answer (status %ui) exceeds "
                      "\"stytch_tat_buffer_size\" %uz", status,
                      lcf->buffer_size);
        return ngx_http_stytch_tat_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                        "stytch_bad_response");
    }

    if (ctx->sr_failed || status == 0) {
        if (status == NGX_HTTP_GATEWAY_TIME_OUT) {
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "stytch_tat: Stytch timed out (\"%V\")",
                          &ctx->subrequest->uri);
            return ngx_http_stytch_tat_fail(ctx, NGX_HTTP_GATEWAY_TIME_OUT,
                                            "stytch_timeout");
        }

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch unreachable or its answer unreadable "
                      "(\"%V\" status %ui); see the lines above",
                      &ctx->subrequest->uri, status);
        return ngx_http_stytch_tat_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                        "stytch_unavailable");
    }

    kind = ngx_http_stytch_tat_response_parse(ctx->sr_body.data,
                                              ctx->sr_body.len,
                                              (int) status, &resp);

    if (kind == NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION) {
        rc = NGX_OK;

        if (ngx_http_stytch_tat_copy(r, &ctx->session_token,
                                     &resp.session_token) != NGX_OK
            || ngx_http_stytch_tat_copy(r, &ctx->session_jwt,
                                        &resp.session_jwt) != NGX_OK
            || ngx_http_stytch_tat_copy(r, &ctx->user_id,
                                        &resp.user_id) != NGX_OK
            || ngx_http_stytch_tat_copy(r, &ctx->session_id,
                                        &resp.session_id) != NGX_OK)
        {
            rc = NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        ctx->expires_at = (time_t) resp.expires_at;
        ctx->session_jwt_exp = (time_t) resp.jwt_exp;
        ngx_http_stytch_tat_response_free(&resp);

        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                       "stytch_tat: session \"%V\" for user \"%V\"",
                       &ctx->session_id, &ctx->user_id);

        return rc;
    }

    if (kind == NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: unusable answer from Stytch: status %ui, "
                      "%s", status, resp.reason);
        ngx_http_stytch_tat_response_free(&resp);
        return ngx_http_stytch_tat_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                        "stytch_bad_response");
    }

    /* a Stytch error: keep its error_type for the variable and the log */

    if (ngx_http_stytch_tat_copy(r, &ctx->error, &resp.error_type)
        != NGX_OK
        || ngx_http_stytch_tat_copy(r, &ctx->error_message,
                                    &resp.error_message) != NGX_OK)
    {
        ngx_http_stytch_tat_response_free(&resp);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ngx_http_stytch_tat_response_free(&resp);

    /* Stytch's message goes to the log: one line, bounded */

    if (ctx->error_message.len > 256) {
        ctx->error_message.len = 256;
    }

    for (i = 0; i < ctx->error_message.len; i++) {
        if (ctx->error_message.data[i] < 0x20) {
            ctx->error_message.data[i] = ' ';
        }
    }

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR
        || status < NGX_HTTP_BAD_REQUEST)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch failed: status %ui, error_type "
                      "\"%V\"", status, &ctx->error);
        return ngx_http_stytch_tat_fail(ctx, NGX_HTTP_BAD_GATEWAY,
                                        NULL);
    }

    if (status == NGX_HTTP_UNAUTHORIZED
        || (ctx->error.len == sizeof(NGX_HTTP_STYTCH_TAT_NO_PROFILE) - 1
            && ngx_strncmp(ctx->error.data, NGX_HTTP_STYTCH_TAT_NO_PROFILE,
                           ctx->error.len) == 0))
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch refused the module's own "
                      "configuration: \"%V\"; check %s", &ctx->error,
                      status == NGX_HTTP_UNAUTHORIZED
                      ? "\"stytch_tat_credentials\""
                      : "\"stytch_tat_profile_id\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (status == NGX_HTTP_TOO_MANY_REQUESTS) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch rate-limited the exchange: \"%V\"",
                      &ctx->error);

        part = &ctx->subrequest->headers_out.headers.part;
        h = part->elts;

        for (i = 0; /* void */ ; i++) {

            if (i >= part->nelts) {
                if (part->next == NULL) {
                    break;
                }

                part = part->next;
                h = part->elts;
                i = 0;
            }

            if (h[i].hash == 0
                || h[i].key.len != sizeof("Retry-After") - 1
                || ngx_strncasecmp(h[i].key.data, (u_char *) "Retry-After",
                                   h[i].key.len) != 0)
            {
                continue;
            }

            ho = ngx_list_push(&r->headers_out.headers);
            if (ho == NULL) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            *ho = h[i];
            break;
        }

        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "stytch_tat: Stytch refused the identity: status %ui, "
                  "error_type \"%V\", \"%V\"", status, &ctx->error,
                  &ctx->error_message);

    ctx->refused = 1;

    return lcf->refused_status;
}


static ngx_int_t
ngx_http_stytch_tat_fail(ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t status,
    const char *error)
{
    /* NULL keeps the error_type Stytch gave */

    if (error) {
        ctx->error.data = (u_char *) error;
        ctx->error.len = ngx_strlen(error);
    }

    return status;
}


static ngx_int_t
ngx_http_stytch_tat_copy(ngx_http_request_t *r, ngx_str_t *dst,
    ngx_http_stytch_tat_field_t *src)
{
    dst->len = src->len;

    if (src->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    dst->data = ngx_pnalloc(r->pool, src->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, src->data, src->len);

    return NGX_OK;
}


/* the header names the module sets: X-Stytch-* */

static ngx_inline ngx_uint_t
ngx_http_stytch_tat_is_ours(ngx_table_elt_t *h)
{
    static u_char  prefix[] = "x-stytch-";

    return h->key.len >= sizeof(prefix) - 1
           && ngx_strncasecmp(h->key.data, prefix, sizeof(prefix) - 1) == 0;
}


static ngx_int_t
ngx_http_stytch_tat_strip_headers(ngx_http_request_t *r)
{
    ngx_uint_t        i, n;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    part = &r->headers_in.headers.part;
    h = part->elts;
    n = 0;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_stytch_tat_is_ours(&h[i])) {
            n++;
        }
    }

    if (n == 0) {
        return NGX_OK;
    }

    /*
     * The list cannot lose elements in place: build it anew.  The known
     * header pointers (host, cookies ...) keep pointing at the old,
     * identical elements, which live as long as the request.
     */

    if (ngx_list_init(&headers, r->pool, 20, sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    part = &r->headers_in.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (ngx_http_stytch_tat_is_ours(&h[i])) {
            continue;
        }

        nh = ngx_list_push(&headers);
        if (nh == NULL) {
            return NGX_ERROR;
        }

        *nh = h[i];
    }

    r->headers_in.headers = headers;

    /* a one-part list points at its own part: not at our copy on the stack */

    if (headers.last == &headers.part) {
        r->headers_in.headers.last = &r->headers_in.headers.part;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: dropped %ui client header(s) named X-Stytch-*",
                  n);

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_add_header(ngx_http_request_t *r, ngx_list_t *list,
    char *key, ngx_str_t *value)
{
    size_t            len;
    ngx_table_elt_t  *h;

    len = ngx_strlen(key);

    h = ngx_list_push(list);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->key.len = len;
    h->key.data = (u_char *) key;
    h->value = *value;

    h->lowcase_key = ngx_pnalloc(r->pool, len);
    if (h->lowcase_key == NULL) {
        return NGX_ERROR;
    }

    h->hash = ngx_hash_strlow(h->lowcase_key, h->key.data, len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_hand_off(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    time_t      max_age;
    ngx_list_t *in;

    if (ctx->session_jwt.len == 0) {
        return NGX_OK;
    }

    /* request headers reach any content handler: proxy, fastcgi, grpc */

    in = &r->headers_in.headers;

    if (ngx_http_stytch_tat_add_header(r, in, "X-Stytch-Session-Jwt",
                                       &ctx->session_jwt) != NGX_OK
        || ngx_http_stytch_tat_add_header(r, in, "X-Stytch-User-Id",
                                          &ctx->user_id) != NGX_OK
        || ngx_http_stytch_tat_add_header(r, in, "X-Stytch-Session-Id",
                                          &ctx->session_id) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (lcf->pass_session_token
        && ngx_http_stytch_tat_add_header(r, in, "X-Stytch-Session-Token",
                                          &ctx->session_token) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!lcf->cookie) {
        return NGX_OK;
    }

    max_age = ctx->expires_at - ngx_time();
    if (max_age < 0) {
        max_age = 0;
    }

    if (ngx_http_stytch_tat_set_cookie(r, "stytch_session",
                                       &ctx->session_token, max_age)
        != NGX_OK
        || ngx_http_stytch_tat_set_cookie(r, "stytch_session_jwt",
                                          &ctx->session_jwt, max_age)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_set_cookie(ngx_http_request_t *r, char *name,
    ngx_str_t *value, time_t max_age)
{
    u_char           *p;
    size_t            len;
    ngx_table_elt_t  *h;

    len = ngx_strlen(name) + 1 + value->len
          + sizeof("; Path=/; Max-Age=; Secure; HttpOnly; SameSite=Lax") - 1
          + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Set-Cookie");
    h->value.data = p;

    p = ngx_sprintf(p, "%s=%V; Path=/; Max-Age=%T; Secure; HttpOnly; "
                    "SameSite=Lax", name, value, max_age);

    h->value.len = p - h->value.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_capture_header(ngx_http_request_t *r)
{
    ngx_http_stytch_tat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || ctx->subrequest != r) {
        return ngx_http_next_header_filter(r);
    }

    /* Stytch's answer is for the module: nothing of it reaches the client */

    r->header_sent = 1;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_capture_body(ngx_http_request_t *r, ngx_chain_t *in)
{
    size_t                           len;
    ngx_chain_t                     *cl;
    ngx_http_stytch_tat_ctx_t       *ctx;
    ngx_http_stytch_tat_loc_conf_t  *lcf;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || ctx->subrequest != r) {
        return ngx_http_next_body_filter(r, in);
    }

    for (cl = in; cl; cl = cl->next) {

        len = cl->buf->last - cl->buf->pos;

        if (len == 0 || ctx->sr_too_big) {
            cl->buf->pos = cl->buf->last;
            continue;
        }

        if (ctx->sr_body.data == NULL) {
            /* the parent's configuration: the subrequest is elsewhere */
            lcf = ngx_http_get_module_loc_conf(r->parent,
                                               ngx_http_stytch_tat_module);

            ctx->sr_body.data = ngx_pnalloc(r->pool, lcf->buffer_size);
            if (ctx->sr_body.data == NULL) {
                return NGX_ERROR;
            }

            ctx->sr_size = lcf->buffer_size;
        }

        if (len > ctx->sr_size - ctx->sr_body.len) {
            /* keep reading, so the upstream connection ends cleanly */
            ctx->sr_too_big = 1;
            cl->buf->pos = cl->buf->last;
            continue;
        }

        ngx_memcpy(ctx->sr_body.data + ctx->sr_body.len, cl->buf->pos, len);
        ctx->sr_body.len += len;
        cl->buf->pos = cl->buf->last;
    }

    return NGX_OK;
}
