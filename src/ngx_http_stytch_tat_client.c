/*
 * stytch_tat_verify VALUE: a location, or a subrequest such as
 * auth_request's, lets a request in with a valid Stytch session JWT in
 * VALUE, or answers 401.  The JWT is checked with no call to Stytch
 * (ngx_http_stytch_tat_verified.c).  Also $stytch_session_claim_NAME:
 * the claims of the session JWT a request was let in with, here or in
 * cluster mode (ngx_http_stytch_tat_cluster.c).
 */


#include "ngx_http_stytch_tat.h"

#include <jansson.h>


static ngx_int_t ngx_http_stytch_tat_client_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t code);
static json_t *ngx_http_stytch_tat_client_payload(ngx_http_request_t *r,
    ngx_str_t *jwt);
static json_t *ngx_http_stytch_tat_client_claim_find(ngx_http_request_t *r,
    json_t *root, ngx_str_t *key);


/*
 * stytch_tat_verify VALUE: NGX_OK when the Stytch session JWT in VALUE is
 * good (the session is in ctx), or a 401; NGX_AGAIN while the JWKS is
 * fetched.
 */

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

        if (ngx_http_stytch_tat_ctx_waiting(&ctx->wait_started,
                                            lcf->lock_timeout))
        {
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
        ngx_http_stytch_tat_verified_forget(ctx);
        return ngx_http_stytch_tat_client_refused(r, ctx, code);
    }

    ctx->session_jwt = token;
    ctx->cache_status = NGX_HTTP_STYTCH_TAT_CLIENT;
    ctx->client_session = 1;
    ctx->client_kept = 1;

    return NGX_OK;
}


/* 401, as auth_basic answers, with the reason in $stytch_tat_error */

static ngx_int_t
ngx_http_stytch_tat_client_refused(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_int_t code)
{
    u_char      *p;
    ngx_str_t    value;
    const char  *name;

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

    if (code >= 0) {
        ngx_str_set(&value, "Bearer realm=\"stytch\", "
                            "error=\"invalid_token\"");

    } else {
        ngx_str_set(&value, "Bearer realm=\"stytch\"");
    }

    return (ngx_http_stytch_tat_headers_challenge(r, &value) == NGX_OK)
           ? NGX_HTTP_UNAUTHORIZED : NGX_HTTP_INTERNAL_SERVER_ERROR;
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

    u_char                     *p;
    size_t                      i, len;
    json_t                     *root, *claim;
    ngx_str_t                   key;
    ngx_http_stytch_tat_ctx_t  *ctx;

    v->not_found = 1;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || !ctx->client_session) {
        return NGX_OK;
    }

    key.data = name->data + sizeof("stytch_session_claim_") - 1;
    key.len = name->len - (sizeof("stytch_session_claim_") - 1);

    root = ngx_http_stytch_tat_client_payload(r, &ctx->session_jwt);
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


/* a verified session JWT's payload, parsed (json_decref() it), or NULL */

static json_t *
ngx_http_stytch_tat_client_payload(ngx_http_request_t *r, ngx_str_t *jwt)
{
    u_char  *p, *dot, *buf;
    size_t   len;

    /* the payload, the token's middle part: verified, so well formed */

    p = ngx_strlchr(jwt->data, jwt->data + jwt->len, '.');
    if (p == NULL) {
        return NULL;
    }

    dot = ngx_strlchr(p + 1, jwt->data + jwt->len, '.');
    if (dot == NULL) {
        return NULL;
    }

    p++;

    len = ngx_http_stytch_tat_b64url_decoded_len(dot - p);

    buf = ngx_pnalloc(r->pool, len);
    if (buf == NULL
        || ngx_http_stytch_tat_b64url_decode(buf, &len, (char *) p, dot - p)
           != 0)
    {
        return NULL;
    }

    return json_loadb((char *) buf, len, 0, NULL);
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


/* stytch_tat_verify VALUE | off */

char *
ngx_http_stytch_tat_client_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (lcf->verify != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->verify = NULL;
        return NGX_CONF_OK;
    }

    lcf->verify = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (lcf->verify == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = lcf->verify;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    lcf->verify_file = cf->conf_file->file.name;
    lcf->verify_line = cf->conf_file->line;

    return NGX_CONF_OK;
}
