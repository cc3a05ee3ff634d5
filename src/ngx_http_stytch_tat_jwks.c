/*
 * The stytch_tat_jwks content handler: the public keys of every
 * stytch_tat_signing_key, so a Trusted Auth Token profile (or any
 * upstream) can verify minted tokens through a JWKS URL.
 */


#include "ngx_http_stytch_tat.h"


/* short: a rotated-in key must be seen soon after a reload */
#define NGX_HTTP_STYTCH_TAT_JWKS_MAX_AGE  "max-age=300"


static ngx_int_t ngx_http_stytch_tat_jwks_handler(ngx_http_request_t *r);


char *
ngx_http_stytch_tat_jwks(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_stytch_tat_jwks_handler;

    /* Stytch fetches it without a session: an inherited stytch_tat skips */
    lcf->endpoint = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_stytch_tat_jwks_handler(ngx_http_request_t *r)
{
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_chain_t                       out;
    ngx_table_elt_t                  *h;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    if (mcf->jwks.len == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat_jwks: no \"stytch_tat_signing_key\" "
                      "is configured");
        return NGX_HTTP_NOT_FOUND;
    }

    ngx_str_set(&r->headers_out.content_type, "application/jwk-set+json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = mcf->jwks.len;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    h->hash = 1;
    ngx_str_set(&h->key, "Cache-Control");
    ngx_str_set(&h->value, NGX_HTTP_STYTCH_TAT_JWKS_MAX_AGE);

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
        return ngx_http_send_header(r);
    }

    b = ngx_calloc_buf(r->pool);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* the document is built once per configuration and never changes */

    b->pos = mcf->jwks.data;
    b->last = mcf->jwks.data + mcf->jwks.len;
    b->memory = 1;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    return ngx_http_output_filter(r, &out);
}
