/*
 * Outcome: what the exchange's subrequest brought back (Stytch's answer, or
 * a transport failure) becomes the client's status, $stytch_tat_error and
 * one error-log line that names the configured internal location.
 *
 *   transport failure      502, or 504 on a timeout ("stytch_tat_fail")
 *   a session              NGX_OK, the session in the request context
 *   Stytch refuses         "stytch_tat_refused_status" (403)
 *   the module's own setup 500, naming the directive to fix
 *   rate limited           503 with Stytch's Retry-After
 *   Stytch's 5xx, garbage  502
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_response.h"


#define NGX_HTTP_STYTCH_TAT_NO_PROFILE  "trusted_token_profile_not_found"
#define NGX_HTTP_STYTCH_TAT_BAD_TOKEN   "invalid_trusted_auth_token"


static ngx_int_t ngx_http_stytch_tat_outcome_transport(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_outcome_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_response_t *resp);
static ngx_int_t ngx_http_stytch_tat_outcome_refusal(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_response_t *resp);
static void ngx_http_stytch_tat_outcome_token_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
static void ngx_http_stytch_tat_outcome_log_string(ngx_str_t *s, size_t max);
static ngx_int_t ngx_http_stytch_tat_outcome_is(ngx_str_t *s,
    const char *name);
static ngx_int_t ngx_http_stytch_tat_outcome_keep_retry_after(
    ngx_http_request_t *r, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_outcome_error(
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t status, const char *error);
static ngx_int_t ngx_http_stytch_tat_outcome_copy(ngx_http_request_t *r,
    ngx_str_t *dst, ngx_http_stytch_tat_field_t *src);


ngx_int_t
ngx_http_stytch_tat_outcome(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    int                              kind;
    ngx_int_t                        rc;
    ngx_http_stytch_tat_response_t   resp;

    if (ctx->sr_too_big || ctx->sr_failed || ctx->sr_status == 0
        || ctx->sr_misrouted || !ctx->sr_checked)
    {
        return ngx_http_stytch_tat_outcome_transport(r, lcf, ctx);
    }

    kind = ngx_http_stytch_tat_response_parse(ctx->sr_body.data,
                                              ctx->sr_body.len,
                                              (int) ctx->sr_status, &resp);

    switch (kind) {

    case NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION:
        rc = ngx_http_stytch_tat_outcome_session(r, ctx, &resp);
        break;

    case NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: unusable answer from Stytch through "
                      "\"%V\": status %ui, %s", &ctx->sr_uri, ctx->sr_status,
                      resp.reason);
        rc = ngx_http_stytch_tat_outcome_error(ctx, NGX_HTTP_BAD_GATEWAY,
                                               "stytch_bad_response");
        break;

    default:
        rc = ngx_http_stytch_tat_outcome_refusal(r, lcf, ctx, &resp);
    }

    ngx_http_stytch_tat_response_free(&resp);

    return rc;
}


/*
 * No answer of Stytch's own: the subrequest never reached a location that
 * proxies to Stytch, an answer too big, a timeout, no connection.
 */

static ngx_int_t
ngx_http_stytch_tat_outcome_transport(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    if (ctx->sr_misrouted) {
        /* logged where it was found, in the subrequest's precontent phase */
        return ngx_http_stytch_tat_outcome_error(ctx,
                                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                                 "stytch_location_invalid");
    }

    if (!ctx->sr_checked) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: \"%V\" answered without proxying to "
                      "Stytch (status %ui): the \"stytch_tat\" URI must name "
                      "an \"internal\" location that proxy_passes to Stytch",
                      &ctx->sr_uri, ctx->sr_status);
        return ngx_http_stytch_tat_outcome_error(ctx,
                                                 NGX_HTTP_INTERNAL_SERVER_ERROR,
                                                 "stytch_location_invalid");
    }

    if (ctx->sr_too_big) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's answer through \"%V\" (status "
                      "%ui) exceeds \"stytch_tat_buffer_size\" %uz",
                      &ctx->sr_uri, ctx->sr_status, lcf->buffer_size);
        return ngx_http_stytch_tat_outcome_error(ctx, NGX_HTTP_BAD_GATEWAY,
                                                 "stytch_bad_response");
    }

    if (ctx->sr_status == NGX_HTTP_GATEWAY_TIME_OUT) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch timed out (\"%V\")", &ctx->sr_uri);
        return ngx_http_stytch_tat_outcome_error(ctx,
                                                 NGX_HTTP_GATEWAY_TIME_OUT,
                                                 "stytch_timeout");
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "stytch_tat: Stytch unreachable or its answer unreadable "
                  "(\"%V\" status %ui); see the lines above",
                  &ctx->sr_uri, ctx->sr_status);

    return ngx_http_stytch_tat_outcome_error(ctx, NGX_HTTP_BAD_GATEWAY,
                                             "stytch_unavailable");
}


static ngx_int_t
ngx_http_stytch_tat_outcome_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_response_t *resp)
{
    if (ngx_http_stytch_tat_outcome_copy(r, &ctx->session_token,
                                         &resp->session_token) != NGX_OK
        || ngx_http_stytch_tat_outcome_copy(r, &ctx->session_jwt,
                                            &resp->session_jwt) != NGX_OK
        || ngx_http_stytch_tat_outcome_copy(r, &ctx->user_id,
                                            &resp->user_id) != NGX_OK
        || ngx_http_stytch_tat_outcome_copy(r, &ctx->session_id,
                                            &resp->session_id) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->expires_at = (time_t) resp->expires_at;
    ctx->session_jwt_exp = (time_t) resp->jwt_exp;

    /* a new JWT: its roles and factors are read anew (they may change) */
    ngx_str_null(&ctx->rbac);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "stytch_tat: session \"%V\" for user \"%V\"",
                   &ctx->session_id, &ctx->user_id);

    return NGX_OK;
}


/* a Stytch error: its error_type for the variable and the log */

static ngx_int_t
ngx_http_stytch_tat_outcome_refusal(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_response_t *resp)
{
    ngx_uint_t  status;

    status = ctx->sr_status;

    if (ngx_http_stytch_tat_outcome_copy(r, &ctx->error, &resp->error_type)
        != NGX_OK
        || ngx_http_stytch_tat_outcome_copy(r, &ctx->error_message,
                                            &resp->error_message) != NGX_OK
        || ngx_http_stytch_tat_outcome_copy(r, &ctx->request_id,
                                            &resp->request_id) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* Stytch's message and request id go to the log: one line, bounded */

    ngx_http_stytch_tat_outcome_log_string(&ctx->error_message, 256);
    ngx_http_stytch_tat_outcome_log_string(&ctx->request_id, 128);

    if (status >= NGX_HTTP_INTERNAL_SERVER_ERROR
        || status < NGX_HTTP_BAD_REQUEST)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch failed through \"%V\": status %ui, "
                      "error_type \"%V\"", &ctx->sr_uri, status, &ctx->error);
        return NGX_HTTP_BAD_GATEWAY;
    }

    if (status == NGX_HTTP_UNAUTHORIZED
        || ngx_http_stytch_tat_outcome_is(&ctx->error,
                                          NGX_HTTP_STYTCH_TAT_NO_PROFILE))
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

        if (ngx_http_stytch_tat_outcome_keep_retry_after(r, ctx) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    ctx->refused = 1;

    if (ngx_http_stytch_tat_outcome_is(&ctx->error,
                                       NGX_HTTP_STYTCH_TAT_BAD_TOKEN))
    {
        ngx_http_stytch_tat_outcome_token_refused(r, ctx);
        return lcf->refused_status;
    }

    ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                  "stytch_tat: Stytch refused the identity: status %ui, "
                  "error_type \"%V\", \"%V\", request_id \"%V\"", status,
                  &ctx->error, &ctx->error_message, &ctx->request_id);

    return lcf->refused_status;
}


/*
 * invalid_trusted_auth_token: the token the module minted.  An unreachable
 * JWKS URL, a kid Stytch does not know after a key rotation, clock skew, an
 * issuer or audience that differs from the profile's all answer so: a
 * configuration fault more likely than a refused user.  The line says what
 * the module sent (never the token) and what Stytch said; such a refusal
 * is never remembered for the identity (stytch_tat_cache_refusals).
 */

static void
ngx_http_stytch_tat_outcome_token_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    time_t                            iat;
    ngx_http_stytch_tat_key_t        *key;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ctx->token_refused = 1;

    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);
    key = mcf->keys.elts;

    iat = ctx->claims ? (time_t) ctx->claims[NGX_HTTP_STYTCH_TAT_IAT].number
                      : 0;

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "stytch_tat: Stytch refused the module's token: "
                  "\"invalid_trusted_auth_token\", \"%V\", request_id "
                  "\"%V\"; the token had kid \"%V\", iat %T, exp %T (this "
                  "host's clock)%s: likely a configuration fault, not the "
                  "user: check the profile's issuer, audience and keys or "
                  "JWKS URL against \"stytch_tat_issuer\", "
                  "\"stytch_tat_audience\" and \"stytch_tat_signing_key\", "
                  "and this host's clock",
                  &ctx->error_message, &ctx->request_id, &key[0].kid, iat,
                  ctx->jwt_exp,
                  ctx->explicit_jti ? ", its token id from "
                                      "\"stytch_tat_token_id\" (a replay?)"
                                    : "");
}


/*
 * A string of Stytch's for the log: one line, at most max bytes, its
 * double quotes single, so that the line's own quoting holds.
 */

static void
ngx_http_stytch_tat_outcome_log_string(ngx_str_t *s, size_t max)
{
    size_t  i;

    if (s->len > max) {
        s->len = max;
    }

    for (i = 0; i < s->len; i++) {
        if (s->data[i] < 0x20 || s->data[i] == 0x7f) {
            s->data[i] = ' ';

        } else if (s->data[i] == '"') {
            s->data[i] = '\'';
        }
    }
}


static ngx_int_t
ngx_http_stytch_tat_outcome_is(ngx_str_t *s, const char *name)
{
    size_t  len;

    len = ngx_strlen(name);

    return s->len == len && ngx_strncmp(s->data, name, len) == 0;
}


/* Stytch's Retry-After, kept for the client and for those who wait on it */

static ngx_int_t
ngx_http_stytch_tat_outcome_keep_retry_after(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &ctx->subrequest->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                return NGX_OK;
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

        /* the subrequest's strings live in the request's pool */
        ctx->retry_after = h[i].value;

        return NGX_OK;
    }
}


/* as auth_request copies WWW-Authenticate: Stytch's Retry-After, on a 503 */

ngx_int_t
ngx_http_stytch_tat_outcome_retry_after(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_table_elt_t  *h;

    if (ctx->retry_after.len == 0) {
        return NGX_OK;
    }

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Retry-After");
    h->value = ctx->retry_after;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


/* Stytch could not answer: fail closed, or open where configured */

ngx_int_t
ngx_http_stytch_tat_outcome_fail_mode(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status)
{
    if (status == NGX_HTTP_SERVICE_UNAVAILABLE
        && ngx_http_stytch_tat_outcome_retry_after(r, ctx) != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

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


void
ngx_http_stytch_tat_outcome_count(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t rc)
{
    ngx_uint_t                    counter, fail;
    ngx_http_stytch_tat_stats_t  *st;

    if (lcf->cache == NULL) {
        return;
    }

    /* why there is no session, but for a refused identity: by its status */

    if (rc != NGX_OK && (!ctx->refused || ctx->token_refused)) {

        if (ctx->token_refused) {
            fail = NGX_HTTP_STYTCH_TAT_FAIL_TOKEN_REFUSED;

        } else if (rc == NGX_HTTP_SERVICE_UNAVAILABLE) {
            fail = NGX_HTTP_STYTCH_TAT_FAIL_RATE_LIMITED;

        } else if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
            fail = NGX_HTTP_STYTCH_TAT_FAIL_TIMEOUT;

        } else if (rc == NGX_HTTP_BAD_GATEWAY) {
            fail = NGX_HTTP_STYTCH_TAT_FAIL_ERROR;

        } else {
            fail = NGX_HTTP_STYTCH_TAT_FAIL_CONFIGURATION;
        }

        st = &lcf->cache->sh->stats;
        ngx_atomic_fetch_add(&st->call_failures[fail], 1);
    }

    if (ctx->cache_role == NGX_HTTP_STYTCH_TAT_CACHE_REFRESH) {
        counter = (rc == NGX_OK) ? NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_OK
                                 : NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_FAILED;

    } else {
        counter = (rc == NGX_OK) ? NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_OK
                  : ctx->refused ? NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_REFUSED
                                 : NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_FAILED;
    }

    ngx_http_stytch_tat_zone_count(lcf->cache, counter,
                                    ngx_current_msec - ctx->started);
}


/* a local reason for $stytch_tat_error, and the status that goes with it */

static ngx_int_t
ngx_http_stytch_tat_outcome_error(ngx_http_stytch_tat_ctx_t *ctx,
    ngx_int_t status, const char *error)
{
    ctx->error.data = (u_char *) error;
    ctx->error.len = ngx_strlen(error);

    return status;
}


static ngx_int_t
ngx_http_stytch_tat_outcome_copy(ngx_http_request_t *r, ngx_str_t *dst,
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
