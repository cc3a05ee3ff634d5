/*
 * The module's subrequests to Stytch, whoever makes them (the exchange's
 * attest and refresh, the session JWKS fetch, a cluster session's
 * refresh): a POST of a JSON body or a GET, with fresh headers and none
 * of the client's, the Basic credentials added only once the subrequest
 * is in an internal location that proxies, and its completion recorded
 * in the request's context.  Also: the checks nginx -t makes of those
 * locations, and the timer that makes a request wait without blocking.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_version.h"

#include <jansson.h>


/* the version is the release's: ngx_http_stytch_tat_version.h */
#define NGX_HTTP_STYTCH_TAT_USER_AGENT                                        \
    "ngx_http_stytch_tat_module/" NGX_HTTP_STYTCH_TAT_VERSION

/* the attest body's first buffer: a token, a profile id, a few numbers */
#define NGX_HTTP_STYTCH_TAT_BODY_GUESS  2048


static ngx_int_t ngx_http_stytch_tat_subrequest_body(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_str_t *body);
static void ngx_http_stytch_tat_subrequest_wake(ngx_http_request_t *r);
static ngx_http_core_loc_conf_t *ngx_http_stytch_tat_subrequest_find_location(
    ngx_http_core_loc_conf_t *pclcf, ngx_str_t *uri);


/* a POST of body to uri for the module, or a GET where body is NULL */

ngx_int_t
ngx_http_stytch_tat_subrequest(ngx_http_request_t *r,
    ngx_str_t *uri, ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *body)
{
    ngx_http_request_t          *sr;
    ngx_http_post_subrequest_t  *ps;

    ps = ngx_palloc(r->pool, sizeof(ngx_http_post_subrequest_t));
    if (ps == NULL) {
        return NGX_ERROR;
    }

    /* the capture filters find ctx through ps even after a redirect */

    ps->handler = ngx_http_stytch_tat_subrequest_done;
    ps->data = ctx;

    /*
     * Not NGX_HTTP_SUBREQUEST_IN_MEMORY: an answer over its buffer fails
     * the client's connection.  The capture filters read the answer
     * instead, and an oversized one is only an error of the exchange.
     */

    if (ngx_http_subrequest(r, uri, NULL, &sr, ps,
                            NGX_HTTP_SUBREQUEST_WAITED)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->filter_need_in_memory = 1;

    /*
     * No error_page for the subrequest, whatever the internal location
     * inherits (the stock "error_page 500 502 503 504 /50x.html" at server
     * level): Stytch's status must reach the module unchanged, and an
     * error page is no answer of Stytch's.
     */

    sr->error_page = 1;

    if (ngx_http_stytch_tat_subrequest_body(r, sr, body) != NGX_OK) {
        return NGX_ERROR;
    }

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
    ctx->sr_purpose = NGX_HTTP_STYTCH_TAT_SR_STYTCH;
    ctx->sr_uri = *uri;
    ctx->started = ngx_current_msec;
    ctx->state = NGX_HTTP_STYTCH_TAT_STATE_WAIT;
    ctx->sr_status = 0;
    ctx->sr_failed = 0;
    ctx->sr_too_big = 0;
    ctx->sr_misrouted = 0;
    ctx->sr_checked = 0;
    ngx_str_null(&ctx->sr_body);

    return NGX_OK;
}


/*
 * The subrequest got a shallow copy of the client's headers_in and its
 * body: replace both, so that Stytch gets the JSON body, Content-Type, a
 * User-Agent and nothing of the client's.  The credentials are added only
 * once the subrequest has found its location.
 */

static ngx_int_t
ngx_http_stytch_tat_subrequest_body(ngx_http_request_t *r,
    ngx_http_request_t *sr, ngx_str_t *body)
{
    ngx_buf_t    *b;
    ngx_str_t     value;
    ngx_chain_t  *cl;

    static ngx_str_t  post = ngx_string("POST");
    static ngx_str_t  get = ngx_string("GET");

    ngx_memzero(&sr->headers_in, sizeof(ngx_http_headers_in_t));

    if (ngx_list_init(&sr->headers_in.headers, r->pool, 4,
                      sizeof(ngx_table_elt_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    sr->headers_in.keep_alive_n = -1;

    if (body == NULL) {
        sr->headers_in.content_length_n = -1;
        sr->request_body = NULL;
        sr->method = NGX_HTTP_GET;
        sr->method_name = get;

        value.data = (u_char *) NGX_HTTP_STYTCH_TAT_USER_AGENT;
        value.len = sizeof(NGX_HTTP_STYTCH_TAT_USER_AGENT) - 1;

        return ngx_http_stytch_tat_headers_add(r, &sr->headers_in.headers,
                                               "User-Agent", &value);
    }

    sr->headers_in.content_length_n = body->len;

    ngx_str_set(&value, "application/json");
    if (ngx_http_stytch_tat_headers_add(r, &sr->headers_in.headers,
                                        "Content-Type", &value)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ngx_str_set(&value, NGX_HTTP_STYTCH_TAT_USER_AGENT);
    if (ngx_http_stytch_tat_headers_add(r, &sr->headers_in.headers,
                                        "User-Agent", &value)
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

    return NGX_OK;
}


/*
 * The precontent handler of subrequests: the exchange's subrequest gets
 * the Basic credentials here, once it is in the location that will serve
 * it, and only if that location is internal and has a content handler
 * (proxy_pass): a mistyped URI that falls into the application's
 * "location /" gets nothing, and the exchange answers 500.
 */

ngx_int_t
ngx_http_stytch_tat_subrequest_credentials(ngx_http_request_t *sr)
{
    ngx_http_core_loc_conf_t         *clcf;
    ngx_http_stytch_tat_ctx_t        *ctx;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    ctx = sr->post_subrequest->data;

    if (ctx->subrequest != sr || ctx->sr_checked) {
        return NGX_DECLINED;
    }

    clcf = ngx_http_get_module_loc_conf(sr, ngx_http_core_module);

    if (!clcf->internal || clcf->handler == NULL) {
        ngx_log_error(NGX_LOG_ERR, sr->connection->log, 0,
                      "stytch_tat: \"%V\" reached a location that %s; "
                      "the credentials were not sent: the \"stytch_tat\" "
                      "URI must name an \"internal\" location that "
                      "proxy_passes to Stytch", &ctx->sr_uri,
                      clcf->internal ? "has no proxy_pass"
                                     : "is not \"internal\"");
        ctx->sr_misrouted = 1;
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->sr_checked = 1;

    /* Stytch's session JWKS is public: it gets no credentials */

    if (ctx->sr_purpose == NGX_HTTP_STYTCH_TAT_SR_JWKS) {
        return NGX_DECLINED;
    }

    mcf = ngx_http_get_module_main_conf(sr, ngx_http_stytch_tat_module);

    if (mcf->authorization.len
        && ngx_http_stytch_tat_headers_add(sr, &sr->headers_in.headers,
                                           "Authorization",
                                           &mcf->authorization)
           != NGX_OK)
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_stytch_tat_subrequest_done(ngx_http_request_t *sr, void *data,
    ngx_int_t rc)
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

    /* $stytch_tat_call_time: every call this request waited for */
    ctx->call_time += ngx_current_msec - ctx->started;
    ctx->called = 1;

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


/* serializes and releases obj */

ngx_int_t
ngx_http_stytch_tat_subrequest_json(ngx_http_request_t *r, void *data,
    ngx_str_t *body)
{
    json_t  *obj = data;

    size_t   len, size;
    u_char  *buf;

    /*
     * one dump into a buffer that holds the usual body (an RS256 token is
     * about 750 bytes), a second one only when it does not
     */

    size = NGX_HTTP_STYTCH_TAT_BODY_GUESS;
    buf = ngx_pnalloc(r->pool, size);
    len = (buf == NULL) ? 0 : json_dumpb(obj, (char *) buf, size, JSON_COMPACT);

    if (len > size) {
        size = len;
        buf = ngx_pnalloc(r->pool, size);
        len = (buf == NULL) ? 0
                            : json_dumpb(obj, (char *) buf, size, JSON_COMPACT);
    }

    json_decref(obj);

    if (len == 0 || len > size) {
        return NGX_ERROR;
    }

    body->data = buf;
    body->len = len;

    return NGX_OK;
}


/* like limit_req's delay: the worker goes on, a timer wakes us */

ngx_int_t
ngx_http_stytch_tat_subrequest_delay(ngx_http_request_t *r)
{
    r->read_event_handler = ngx_http_test_reading;
    r->write_event_handler = ngx_http_stytch_tat_subrequest_wake;

    r->connection->write->delayed = 1;
    ngx_add_timer(r->connection->write, NGX_HTTP_STYTCH_TAT_WAIT_STEP);

    return NGX_AGAIN;
}


static void
ngx_http_stytch_tat_subrequest_wake(ngx_http_request_t *r)
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


/* the URIs a server's locations send the exchange to, once each */

ngx_int_t
ngx_http_stytch_tat_subrequest_add_uri(ngx_conf_t *cf,
    ngx_http_stytch_tat_srv_conf_t *sscf, char *directive, ngx_str_t *uri,
    ngx_str_t *file, ngx_uint_t line)
{
    ngx_uint_t                  i;
    ngx_http_stytch_tat_uri_t  *u;

    if (sscf->uris == NULL) {
        sscf->uris = ngx_array_create(cf->pool, 2,
                                      sizeof(ngx_http_stytch_tat_uri_t));
        if (sscf->uris == NULL) {
            return NGX_ERROR;
        }
    }

    u = sscf->uris->elts;

    for (i = 0; i < sscf->uris->nelts; i++) {
        if (u[i].uri.data == uri->data) {
            return NGX_OK;
        }
    }

    u = ngx_array_push(sscf->uris);
    if (u == NULL) {
        return NGX_ERROR;
    }

    u->directive = directive;
    u->uri = *uri;
    u->file = *file;
    u->line = line;

    return NGX_OK;
}


/*
 * "nginx -t" refuses a stytch_tat URI that leads to a location which is
 * not internal or has no content handler: the subrequest carries the
 * Stytch secret.  Where a regex location could take the URI, only the
 * request knows: the exchange checks again before adding the credentials.
 */

ngx_int_t
ngx_http_stytch_tat_subrequest_check_uris(ngx_conf_t *cf)
{
    ngx_uint_t                        s, i;
    ngx_http_core_loc_conf_t         *clcf, *found;
    ngx_http_core_srv_conf_t        **cscfp;
    ngx_http_core_main_conf_t        *cmcf;
    ngx_http_stytch_tat_uri_t        *u;
    ngx_http_stytch_tat_srv_conf_t   *sscf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);
    cscfp = cmcf->servers.elts;

    for (s = 0; s < cmcf->servers.nelts; s++) {
        sscf = cscfp[s]->ctx->srv_conf[ngx_http_stytch_tat_module.ctx_index];

        if (sscf->uris == NULL) {
            continue;
        }

        clcf = cscfp[s]->ctx->loc_conf[ngx_http_core_module.ctx_index];
        u = sscf->uris->elts;

        for (i = 0; i < sscf->uris->nelts; i++) {
            found = ngx_http_stytch_tat_subrequest_find_location(clcf, &u[i].uri);

            if (found == NULL || (found->internal && found->handler)) {
                continue;
            }

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"%s %V\" in %V:%ui leads to location "
                          "\"%V\", which %s: the Stytch credentials go only "
                          "to an \"internal\" location that proxy_passes to "
                          "Stytch", u[i].directive, &u[i].uri, &u[i].file,
                          u[i].line,
                          &found->name,
                          found->internal ? "has no proxy_pass"
                                          : "is not \"internal\"");
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * The location a URI certainly reaches from a server's level, the way
 * ngx_http_core_find_location() finds it, or NULL where a regex or a
 * nested location could decide otherwise, or none matches.
 */

static ngx_http_core_loc_conf_t *
ngx_http_stytch_tat_subrequest_find_location(ngx_http_core_loc_conf_t *pclcf,
    ngx_str_t *uri)
{
    u_char                         *p;
    size_t                          len, n;
    ngx_int_t                       rc;
    ngx_http_core_loc_conf_t       *found;
    ngx_http_location_tree_node_t  *node;

    p = uri->data;
    len = uri->len;
    found = NULL;
    node = pclcf->static_locations;

    while (node) {
        n = (len <= (size_t) node->len) ? len : node->len;

        rc = ngx_filename_cmp(p, node->name, n);

        if (rc != 0) {
            node = (rc < 0) ? node->left : node->right;
            continue;
        }

        if (len > (size_t) node->len) {
            if (node->inclusive) {
                found = node->inclusive;
                node = node->tree;
                p += n;
                len -= n;
                continue;
            }

            node = node->right;
            continue;
        }

        if (len == (size_t) node->len) {
            if (node->exact) {
                return node->exact;
            }

            found = node->inclusive;
            break;
        }

        node = node->left;
    }

    if (found == NULL || found->static_locations) {
        return NULL;
    }

#if (NGX_PCRE)
    if (found->regex_locations
        || (!found->noregex && pclcf->regex_locations))
    {
        return NULL;
    }
#endif

    return found;
}
