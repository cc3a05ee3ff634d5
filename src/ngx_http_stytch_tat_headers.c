/*
 * Headers: client headers named like the module's own (X-Stytch-*) are
 * dropped before anything reads them; the session is handed to the upstream
 * as request headers, and to the client as cookies where configured.
 */


#include "ngx_http_stytch_tat.h"


/* a header the module hands upstream, its lower case and hash computed once */
typedef struct {
    ngx_str_t                   key;
    ngx_str_t                   lowcase;
    ngx_uint_t                  hash;
} ngx_http_stytch_tat_header_name_t;


static ngx_uint_t ngx_http_stytch_tat_headers_is_ours(ngx_table_elt_t *h);
static ngx_uint_t ngx_http_stytch_tat_headers_is_empty_cookie(
    ngx_table_elt_t *h);
static ngx_int_t ngx_http_stytch_tat_headers_rebuild(ngx_http_request_t *r,
    ngx_uint_t (*drop)(ngx_table_elt_t *h), ngx_uint_t *n);
static ngx_int_t ngx_http_stytch_tat_headers_cookie_strip(
    ngx_http_request_t *r, ngx_str_t *value);
static ngx_int_t ngx_http_stytch_tat_headers_push(ngx_list_t *list,
    ngx_http_stytch_tat_header_name_t *name, ngx_str_t *value);
static ngx_int_t ngx_http_stytch_tat_headers_strip(ngx_http_request_t *r);
static ngx_int_t ngx_http_stytch_tat_headers_cookie(ngx_http_request_t *r,
    char *name, ngx_str_t *value, time_t max_age);


#define NGX_HTTP_STYTCH_TAT_H_SESSION_JWT    0
#define NGX_HTTP_STYTCH_TAT_H_USER_ID        1
#define NGX_HTTP_STYTCH_TAT_H_SESSION_ID     2
#define NGX_HTTP_STYTCH_TAT_H_SESSION_TOKEN  3

static ngx_http_stytch_tat_header_name_t  ngx_http_stytch_tat_header_names[] = {
    { ngx_string("X-Stytch-Session-Jwt"),
      ngx_string("x-stytch-session-jwt"), 0 },
    { ngx_string("X-Stytch-User-Id"),
      ngx_string("x-stytch-user-id"), 0 },
    { ngx_string("X-Stytch-Session-Id"),
      ngx_string("x-stytch-session-id"), 0 },
    { ngx_string("X-Stytch-Session-Token"),
      ngx_string("x-stytch-session-token"), 0 }
};


/*
 * A header named like the module's own: "X-Stytch-" in any case, with "_"
 * read as "-".  nginx's $http_x_stytch_user_id and CGI, FastCGI and uwsgi
 * (HTTP_X_STYTCH_USER_ID) name both spellings alike, so with
 * underscores_in_headers on, "X_Stytch_User_Id" is as much a forgery.
 */

static ngx_uint_t
ngx_http_stytch_tat_headers_is_ours(ngx_table_elt_t *h)
{
    u_char      c, p;
    ngx_uint_t  i;

    static u_char  prefix[] = "x-stytch-";

    if (h->key.len < sizeof(prefix) - 1) {
        return 0;
    }

    for (i = 0; i < sizeof(prefix) - 1; i++) {
        c = ngx_tolower(h->key.data[i]);
        p = prefix[i];

        if (c != p && !(c == '_' && p == '-')) {
            return 0;
        }
    }

    return 1;
}


/*
 * The POST_READ handler: in every location of a server where some location
 * has "stytch_tat URI", before any variable is read, unless
 * "stytch_tat_drop_client_headers off" is set for the server.  It runs once
 * per client request: internal redirects start after this phase, so the
 * module's own headers are never taken for a client's.
 */

ngx_int_t
ngx_http_stytch_tat_headers_drop(ngx_http_request_t *r)
{
    ngx_http_stytch_tat_loc_conf_t  *lcf;
    ngx_http_stytch_tat_srv_conf_t  *sscf;

    sscf = ngx_http_get_module_srv_conf(r, ngx_http_stytch_tat_module);
    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);

    if (!sscf->exchange_used || !lcf->drop_client_headers || r != r->main) {
        return NGX_DECLINED;
    }

    if (ngx_http_stytch_tat_headers_strip(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    return NGX_DECLINED;
}


static ngx_int_t
ngx_http_stytch_tat_headers_strip(ngx_http_request_t *r)
{
    ngx_uint_t  n;

    if (ngx_http_stytch_tat_headers_rebuild(r,
                                  ngx_http_stytch_tat_headers_is_ours, &n)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (n) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: dropped %ui client header(s) named "
                      "X-Stytch-* (\"_\" read as \"-\")", n);
    }

    return NGX_OK;
}


/*
 * The request's headers without those drop() names.  The list cannot
 * lose elements in place: it is built anew.  The known header pointers
 * (host, cookies ...) keep pointing at the old elements, which live as
 * long as the request.
 */

static ngx_int_t
ngx_http_stytch_tat_headers_rebuild(ngx_http_request_t *r,
    ngx_uint_t (*drop)(ngx_table_elt_t *h), ngx_uint_t *n)
{
    ngx_uint_t        i;
    ngx_list_t        headers;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h, *nh;

    part = &r->headers_in.headers.part;
    h = part->elts;
    *n = 0;

    for (i = 0; /* void */ ; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if (drop(&h[i])) {
            (*n)++;
        }
    }

    if (*n == 0) {
        return NGX_OK;
    }

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

        if (drop(&h[i])) {
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

    return NGX_OK;
}


/*
 * Cluster mode: Stytch's cookies (stytch_session, stytch_session_jwt) out
 * of the Cookie headers that go upstream, when the module did not take
 * them as the client's session.  The $cookie_ variables, which read the
 * known header pointers, see the same.
 */

ngx_int_t
ngx_http_stytch_tat_headers_drop_cookies(ngx_http_request_t *r)
{
    ngx_uint_t        i, n;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;
#if (nginx_version < 1023000)
    ngx_table_elt_t **ch;
#endif

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

        if (h[i].key.len == sizeof("Cookie") - 1
            && ngx_strncasecmp(h[i].key.data, (u_char *) "Cookie",
                               sizeof("Cookie") - 1) == 0
            && ngx_http_stytch_tat_headers_cookie_strip(r, &h[i].value)
               != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

#if (nginx_version >= 1023000)
    for (h = r->headers_in.cookie; h; h = h->next) {
        if (ngx_http_stytch_tat_headers_cookie_strip(r, &h->value) != NGX_OK) {
            return NGX_ERROR;
        }
    }
#else
    ch = r->headers_in.cookies.elts;

    for (i = 0; i < r->headers_in.cookies.nelts; i++) {
        if (ngx_http_stytch_tat_headers_cookie_strip(r, &ch[i]->value)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }
#endif

    return ngx_http_stytch_tat_headers_rebuild(r,
                             ngx_http_stytch_tat_headers_is_empty_cookie, &n);
}


static ngx_uint_t
ngx_http_stytch_tat_headers_is_empty_cookie(ngx_table_elt_t *h)
{
    return h->value.len == 0 && h->key.len == sizeof("Cookie") - 1
           && ngx_strncasecmp(h->key.data, (u_char *) "Cookie",
                              sizeof("Cookie") - 1) == 0;
}


/* "a=1; stytch_session=x; b=2" -> "a=1; b=2"; a value without them stays */

static ngx_int_t
ngx_http_stytch_tat_headers_cookie_strip(ngx_http_request_t *r,
    ngx_str_t *value)
{
    u_char  *p, *end, *start, *name_end, *out, *o;
    size_t   len;

    static ngx_str_t  names[] = {
        ngx_string("stytch_session"),
        ngx_string("stytch_session_jwt")
    };

    out = NULL;
    o = NULL;
    p = value->data;
    end = value->data + value->len;

    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ';')) {
            p++;
        }

        start = p;

        while (p < end && *p != ';') {
            p++;
        }

        /* start..p is one pair, its name up to "=" */

        for (name_end = start; name_end < p && *name_end != '='; name_end++) {
            /* void */
        }

        len = name_end - start;

        while (len && (start[len - 1] == ' ' || start[len - 1] == '\t')) {
            len--;
        }

        if ((len == names[0].len
             && ngx_strncmp(start, names[0].data, len) == 0)
            || (len == names[1].len
                && ngx_strncmp(start, names[1].data, len) == 0))
        {
            if (out == NULL) {
                /* "; " between pairs may be longer than the client's ";" */
                out = ngx_pnalloc(r->pool, 2 * value->len);
                if (out == NULL) {
                    return NGX_ERROR;
                }

                /* the pairs before this one, kept as they were */
                o = ngx_cpymem(out, value->data, start - value->data);

                while (o > out && (o[-1] == ' ' || o[-1] == ';')) {
                    o--;
                }
            }

            continue;
        }

        if (out && p > start) {
            if (o > out) {
                *o++ = ';';
                *o++ = ' ';
            }

            o = ngx_cpymem(o, start, p - start);
        }
    }

    if (out) {
        value->data = out;
        value->len = o - out;
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_stytch_tat_headers_add(ngx_http_request_t *r, ngx_list_t *list,
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
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


ngx_int_t
ngx_http_stytch_tat_headers_hand_off(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    time_t                              max_age;
    ngx_uint_t                          i;
    ngx_list_t                         *in;
    ngx_http_stytch_tat_header_name_t  *hn;

    /*
     * A subrequest (stytch_tat_verify under auth_request) shares its
     * parent's header list: its variables carry the session instead
     * (auth_request_set).
     */

    if (ctx->session_jwt.len == 0 || r != r->main) {
        return NGX_OK;
    }

    hn = ngx_http_stytch_tat_header_names;

    /* the hashes of constant names: once per process, not per request */

    if (hn[0].hash == 0) {
        for (i = 0; i < sizeof(ngx_http_stytch_tat_header_names)
                        / sizeof(ngx_http_stytch_tat_header_name_t); i++)
        {
            hn[i].hash = ngx_hash_key(hn[i].lowcase.data, hn[i].lowcase.len);
        }
    }

    /* request headers reach any content handler: proxy, fastcgi, grpc */

    in = &r->headers_in.headers;

    if (ngx_http_stytch_tat_headers_push(in,
                                &hn[NGX_HTTP_STYTCH_TAT_H_SESSION_JWT],
                                &ctx->session_jwt) != NGX_OK
        || ngx_http_stytch_tat_headers_push(in,
                                &hn[NGX_HTTP_STYTCH_TAT_H_USER_ID],
                                &ctx->user_id) != NGX_OK
        || ngx_http_stytch_tat_headers_push(in,
                                &hn[NGX_HTTP_STYTCH_TAT_H_SESSION_ID],
                                &ctx->session_id) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* none when the session is the client's JWT alone */

    if (lcf->pass_session_token && ctx->session_token.len
        && ngx_http_stytch_tat_headers_push(in,
                                &hn[NGX_HTTP_STYTCH_TAT_H_SESSION_TOKEN],
                                &ctx->session_token) != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the client's own session JWT: its cookies stand as they are */

    if (!lcf->cookie || ctx->client_kept) {
        return NGX_OK;
    }

    max_age = ctx->expires_at - ngx_time();
    if (max_age < 0) {
        max_age = 0;
    }

    if (ngx_http_stytch_tat_headers_cookie(r, "stytch_session",
                                       &ctx->session_token, max_age)
        != NGX_OK
        || ngx_http_stytch_tat_headers_cookie(r, "stytch_session_jwt",
                                          &ctx->session_jwt, max_age)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* as ngx_http_stytch_tat_headers_add(), with the name's work done */

static ngx_int_t
ngx_http_stytch_tat_headers_push(ngx_list_t *list,
    ngx_http_stytch_tat_header_name_t *name, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(list);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = name->hash;
    h->key = name->key;
    h->lowcase_key = name->lowcase.data;
    h->value = *value;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_headers_cookie(ngx_http_request_t *r, char *name,
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
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    h->value.data = p;

    p = ngx_sprintf(p, "%s=%V; Path=/; Max-Age=%T; Secure; HttpOnly; "
                    "SameSite=Lax", name, value, max_age);

    h->value.len = p - h->value.data;

    return NGX_OK;
}


/* a 401's WWW-Authenticate, as auth_basic and auth_request set it */

ngx_int_t
ngx_http_stytch_tat_headers_challenge(ngx_http_request_t *r,
    ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
#if (nginx_version >= 1023000)
    h->next = NULL;
#endif
    ngx_str_set(&h->key, "WWW-Authenticate");
    h->value = *value;

    r->headers_out.www_authenticate = h;

    return NGX_OK;
}
