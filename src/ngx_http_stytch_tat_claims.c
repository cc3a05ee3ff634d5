/*
 * The JWT claims set: see ngx_http_stytch_tat_claims.h.
 */


#include <string.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_claims.h"


static int ngx_http_stytch_tat_claim_add(json_t *obj,
    const ngx_http_stytch_tat_claim_t *claim);
static int ngx_http_stytch_tat_string(const unsigned char *data, size_t len,
    json_t **out);


int
ngx_http_stytch_tat_value_check(const unsigned char *data, size_t len)
{
    size_t   i;
    json_t  *s;

    if (len > NGX_HTTP_STYTCH_TAT_VALUE_MAX) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG;
    }

    if (len == 0) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
    }

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL;
        }
    }

    /* jansson validates UTF-8 (no overlongs, no surrogates) */

    s = json_stringn((const char *) data, len);
    if (s == NULL) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_UTF8;
    }

    json_decref(s);

    return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


static int
ngx_http_stytch_tat_string(const unsigned char *data, size_t len,
    json_t **out)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] == 0x7f) {
            return NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL;
        }
    }

    *out = json_stringn((const char *) data, len);

    return (*out == NULL) ? NGX_HTTP_STYTCH_TAT_CLAIM_UTF8
                          : NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


static int
ngx_http_stytch_tat_claim_add(json_t *obj,
    const ngx_http_stytch_tat_claim_t *claim)
{
    int                   rc;
    json_t               *v, *item;
    const unsigned char  *p, *last, *start, *end;

    if (claim->type == NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER) {
        v = json_integer(claim->number);
        goto set;
    }

    if (claim->len > NGX_HTTP_STYTCH_TAT_VALUE_MAX) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG;
    }

    if (claim->type == NGX_HTTP_STYTCH_TAT_CLAIM_STRING) {
        if (claim->len == 0) {
            return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
        }

        rc = ngx_http_stytch_tat_string(claim->data, claim->len, &v);
        if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
            return rc;
        }

        goto set;
    }

    /* a list: "a, b,,c" is ["a","b","c"]; an empty list is still a list */

    v = json_array();
    if (v == NULL) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM;
    }

    if (claim->len == 0) {
        /* an empty value (its data may be NULL) is an empty list */
        goto set;
    }

    p = claim->data;
    last = claim->data + claim->len;

    for ( ;; ) {
        end = memchr(p, claim->sep, (size_t) (last - p));
        if (end == NULL) {
            end = last;
        }

        start = p;
        p = end;

        /* spaces around items go; a TAB is a control character, refused */

        while (start < end && *start == ' ') {
            start++;
        }

        while (end > start && end[-1] == ' ') {
            end--;
        }

        if (start != end) {
            rc = ngx_http_stytch_tat_string(start, (size_t) (end - start),
                                            &item);
            if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
                json_decref(v);
                return rc;
            }

            if (json_array_append_new(v, item) != 0) {
                json_decref(v);
                return NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM;
            }
        }

        if (p == last) {
            break;
        }

        p++;
    }

set:

    if (v == NULL || json_object_set_new(obj, claim->name, v) != 0) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM;
    }

    return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


int
ngx_http_stytch_tat_claims_json(const ngx_http_stytch_tat_claim_t *claims,
    size_t n, unsigned char *buf, size_t size, size_t *len, size_t *bad)
{
    int      rc;
    size_t   i, need;
    json_t  *obj;

    obj = json_object();
    if (obj == NULL) {
        *bad = n;
        return NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM;
    }

    for (i = 0; i < n; i++) {
        rc = ngx_http_stytch_tat_claim_add(obj, &claims[i]);
        if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
            json_decref(obj);
            *bad = i;
            return rc;
        }
    }

    /* json_dumpb() reports the size it needs even when buf is too small */
    need = json_dumpb(obj, (char *) buf, size, JSON_COMPACT);
    json_decref(obj);

    if (need == 0) {
        *bad = n;
        return NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM;
    }

    if (need > size || need > NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX) {
        *bad = n;
        return NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED;
    }

    *len = need;

    return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


const char *
ngx_http_stytch_tat_claim_strerror(int rc)
{
    switch (rc) {
    case NGX_HTTP_STYTCH_TAT_CLAIM_OK:
        return "ok";
    case NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG:
        return "value longer than 1024 bytes";
    case NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL:
        return "value contains a control character";
    case NGX_HTTP_STYTCH_TAT_CLAIM_UTF8:
        return "value is not valid UTF-8";
    case NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED:
        return "claims exceed 4096 bytes of JSON";
    }

    return "out of memory";
}
