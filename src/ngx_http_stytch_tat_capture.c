/*
 * Capture: header and body filters that keep Stytch's answer to the
 * exchange's subrequest for the module, so that nothing of it reaches the
 * client.
 *
 * The state is found through the subrequest's post_subrequest handler, not
 * its module context: an internal redirect of the subrequest (a rewrite, or
 * an error page where the operator's configuration allows one) clears the
 * context, and the redirected answer must be captured all the same.
 */


#include "ngx_http_stytch_tat.h"


static ngx_http_stytch_tat_ctx_t *ngx_http_stytch_tat_capture_ctx(
    ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_capture_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_capture_body(ngx_http_request_t *r,
    ngx_chain_t *in);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_stytch_tat_capture_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_stytch_tat_capture_header;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_stytch_tat_capture_body;

    return NGX_OK;
}


static ngx_http_stytch_tat_ctx_t *
ngx_http_stytch_tat_capture_ctx(ngx_http_request_t *r)
{
    ngx_http_stytch_tat_ctx_t  *ctx;

    if (r == r->main || r->post_subrequest == NULL
        || r->post_subrequest->handler != ngx_http_stytch_tat_subrequest_done)
    {
        return NULL;
    }

    ctx = r->post_subrequest->data;

    return (ctx->subrequest == r) ? ctx : NULL;
}


static ngx_int_t
ngx_http_stytch_tat_capture_header(ngx_http_request_t *r)
{
    ngx_http_stytch_tat_ctx_t  *ctx;

    ctx = ngx_http_stytch_tat_capture_ctx(r);

    if (ctx == NULL) {
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

    ctx = ngx_http_stytch_tat_capture_ctx(r);

    if (ctx == NULL) {
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
