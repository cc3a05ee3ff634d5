/*
 * The claims set: ngx_http_stytch_tat_claims_json() on fuzz-chosen values,
 * compared byte for byte with a reference built here from the documented
 * rules (ngx_http_stytch_tat_claims.h, docs/directives.md): strings, lists split on a separator with
 * spaces trimmed and empty items left out, numbers; values over 1024 bytes,
 * with control characters or with invalid UTF-8 refused, in claim order.
 *
 * Input: byte 0 the list mask (bit i: value i is a list), byte 1 the
 * separator (below 0x80: one of the usual ones; else the byte itself),
 * byte 2 the size of the small output buffer, then up to 8 values
 * separated by 0xff.  A number claim ("exp") is appended.  Empty values
 * 0, 2, 4 and 6 are passed as {NULL, 0}, the others with a pointer.
 */

#include <stdint.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_claims.h"
#include "fuzz_common.h"


#define NVALUES  8

static const char  *names[NVALUES] = {
    "sub", "email", "jti", "assignments", "org", "groups",
    "https://example.com/claim", "name"
};

static const unsigned char  seps[] = { ',', ' ', ';', '|', ':', '\t', '/' };


static int
ref_scalar(const unsigned char *p, size_t len, json_t **out)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            return NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL;
        }
    }

    if (!fuzz_utf8_valid(p, len)) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_UTF8;
    }

    *out = len ? json_stringn((const char *) p, len) : json_string("");
    FUZZ_CHECK(*out != NULL);     /* jansson agrees on UTF-8 */

    return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


/* the expected result of one claim, added to obj */
static int
ref_claim(json_t *obj, const ngx_http_stytch_tat_claim_t *c)
{
    int                   rc;
    size_t                i, start, end;
    json_t               *v, *item;
    const unsigned char  *p;

    if (c->type == NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER) {
        json_object_set_new(obj, c->name, json_integer(c->number));
        return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
    }

    if (c->len > NGX_HTTP_STYTCH_TAT_VALUE_MAX) {
        return NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG;
    }

    if (c->type == NGX_HTTP_STYTCH_TAT_CLAIM_STRING) {
        if (c->len == 0) {
            return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
        }

        rc = ref_scalar(c->data, c->len, &v);
        if (rc == NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
            json_object_set_new(obj, c->name, v);
        }

        return rc;
    }

    v = json_array();
    p = c->data;
    start = 0;

    for (i = 0; i <= c->len; i++) {
        if (i < c->len && p[i] != c->sep) {
            continue;
        }

        end = i;

        /* spaces are trimmed; a TAB is a control character, refused */

        while (start < end && p[start] == ' ') {
            start++;
        }

        while (end > start && p[end - 1] == ' ') {
            end--;
        }

        if (end > start) {
            rc = ref_scalar(p + start, end - start, &item);
            if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
                json_decref(v);
                return rc;
            }

            json_array_append_new(v, item);
        }

        start = i + 1;
    }

    json_object_set_new(obj, c->name, v);

    return NGX_HTTP_STYTCH_TAT_CLAIM_OK;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                           rc, ref_rc, vrc;
    size_t                        i, n, len, slen, bad, sbad, small, nref;
    size_t                        start;
    char                         *ref_json;
    json_t                       *ref, *parsed;
    unsigned char                *copy, *buf, *sbuf, sep;
    unsigned char                *piece[NVALUES];
    ngx_http_stytch_tat_claim_t   claims[NVALUES + 1];

    if (size < 3) {
        return 0;
    }

    sep = data[1] < 0x80 ? seps[data[1] % sizeof(seps)] : data[1];
    small = (size_t) data[2] + 1;

    copy = fuzz_dup(data + 3, size - 3, 0);
    size -= 3;

    /* split on 0xff; each value gets its own exact-size allocation */

    memset(claims, 0, sizeof(claims));
    n = 0;
    start = 0;

    for (i = 0; i <= size && n < NVALUES; i++) {
        if (i < size && copy[i] != 0xff) {
            continue;
        }

        len = i - start;
        piece[n] = fuzz_dup(copy + start, len, 0);

        claims[n].name = names[n];
        claims[n].data = piece[n];
        claims[n].len = len;
        /* nginx's empty strings may be {0, NULL}: so are every other one */
        if (len == 0 && n % 2 == 0) {
            claims[n].data = NULL;
        }
        if (data[0] & (1u << n)) {
            claims[n].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
            claims[n].sep = sep;
        } else {
            claims[n].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
        }

        n++;
        start = i + 1;
    }

    claims[n].name = "exp";
    claims[n].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    claims[n].number = (long long) (size * 2654435761u) - 1000000000LL;
    n++;

    /* the value check alone, on each value */

    for (i = 0; i + 1 < n; i++) {
        if (claims[i].data == NULL) {
            /* value_check(NULL, 0) says "invalid UTF-8": never called so */
            continue;
        }

        vrc = ngx_http_stytch_tat_value_check(claims[i].data, claims[i].len);

        if (claims[i].len > NGX_HTTP_STYTCH_TAT_VALUE_MAX) {
            FUZZ_CHECK(vrc == NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG);

        } else {
            json_t  *tmp = NULL;

            ref_rc = ref_scalar(claims[i].data, claims[i].len, &tmp);
            json_decref(tmp);
            FUZZ_CHECK(vrc == ref_rc);
        }
    }

    /* the reference */

    ref = json_object();
    ref_rc = NGX_HTTP_STYTCH_TAT_CLAIM_OK;
    nref = n;

    for (i = 0; i < n; i++) {
        ref_rc = ref_claim(ref, &claims[i]);
        if (ref_rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
            nref = i;
            break;
        }
    }

    ref_json = json_dumps(ref, JSON_COMPACT);
    FUZZ_CHECK(ref_json != NULL);

    /* the module, with the full 4096 byte buffer */

    buf = malloc(NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);
    len = 0;
    bad = (size_t) -1;

    rc = ngx_http_stytch_tat_claims_json(claims, n, buf,
                                         NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX,
                                         &len, &bad);

    FUZZ_CHECK(rc != NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM);
    FUZZ_CHECK(ngx_http_stytch_tat_claim_strerror(rc) != NULL);

    if (ref_rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        /* the first bad claim is named, for the reason the reference has */
        FUZZ_CHECK(rc == ref_rc);
        FUZZ_CHECK(bad == nref);

    } else if (strlen(ref_json) > NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX) {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED);
        FUZZ_CHECK(bad == n);

    } else {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_CLAIM_OK);
        FUZZ_CHECK(len > 0 && len <= NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);

        /* valid JSON, and exactly the reference */
        parsed = json_loadb((const char *) buf, len, JSON_REJECT_DUPLICATES,
                            NULL);
        FUZZ_CHECK(json_is_object(parsed));
        FUZZ_CHECK(json_equal(parsed, ref));
        json_decref(parsed);

        FUZZ_CHECK(len == strlen(ref_json));
        FUZZ_CHECK(memcmp(buf, ref_json, len) == 0);
    }

    /* the same claims into a small buffer of the exact fuzz-chosen size */

    sbuf = malloc(small);
    slen = 0;
    sbad = (size_t) -1;

    rc = ngx_http_stytch_tat_claims_json(claims, n, sbuf, small, &slen,
                                         &sbad);

    if (ref_rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        FUZZ_CHECK(rc == ref_rc && sbad == nref);

    } else if (strlen(ref_json) > small
               || strlen(ref_json) > NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX)
    {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED && sbad == n);

    } else {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_CLAIM_OK);
        FUZZ_CHECK(slen == strlen(ref_json));
        FUZZ_CHECK(memcmp(sbuf, ref_json, slen) == 0);
        parsed = json_loadb((const char *) sbuf, slen, 0, NULL);
        FUZZ_CHECK(json_is_object(parsed));
        json_decref(parsed);
    }

    free(sbuf);
    free(buf);
    free(ref_json);
    json_decref(ref);

    for (i = 0; i + 1 < n; i++) {
        free(piece[i]);
    }

    free(copy);

    return 0;
}
