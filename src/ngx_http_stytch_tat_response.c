/*
 * Stytch's answers: see ngx_http_stytch_tat_response.h.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* timegm() */
#endif

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "ngx_http_stytch_tat_response.h"


/*
 * Stytch's answers are read in one pass that builds no tree: a strict JSON
 * scan that keeps only the strings the module uses, decoded into one
 * allocation (resp->root).  It accepts no more than jansson's json_loadb()
 * with JSON_REJECT_DUPLICATES (fuzz/fuzz_response.c holds it to that): UTF-8
 * checked, no \u0000, surrogates paired, integers within long long, reals
 * that do not overflow, no duplicate key in any object, at most jansson's
 * 2048 levels.  jansson spent about 80 instructions per byte of the answer
 * on the module's cold path, most of it on the user object it never reads.
 */

#define NGX_HTTP_STYTCH_TAT_JSON_MAX_DEPTH  2048      /* jansson's */

/* where a scanned object's members go */
#define NGX_HTTP_STYTCH_TAT_JSON_SKIP     0
#define NGX_HTTP_STYTCH_TAT_JSON_TOP      1
#define NGX_HTTP_STYTCH_TAT_JSON_SESSION  2           /* + 0 or 1 */
#define NGX_HTTP_STYTCH_TAT_JSON_CLAIMS   4           /* a JWT's payload */

/* value kinds */
#define NGX_HTTP_STYTCH_TAT_JSON_OTHER    0
#define NGX_HTTP_STYTCH_TAT_JSON_STRING   1
#define NGX_HTTP_STYTCH_TAT_JSON_OBJECT   2
#define NGX_HTTP_STYTCH_TAT_JSON_INTEGER  3

/* the strings kept: of the answer, and of its session objects */
enum {
    NGX_HTTP_STYTCH_TAT_F_REQUEST_ID = 0,
    NGX_HTTP_STYTCH_TAT_F_ERROR_TYPE,
    NGX_HTTP_STYTCH_TAT_F_ERROR_MESSAGE,
    NGX_HTTP_STYTCH_TAT_F_USER_ID,
    NGX_HTTP_STYTCH_TAT_F_MEMBER_ID,
    NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN,
    NGX_HTTP_STYTCH_TAT_F_SESSION_JWT,
    NGX_HTTP_STYTCH_TAT_F_TOP
};

enum {
    NGX_HTTP_STYTCH_TAT_S_SESSION_ID = 0,
    NGX_HTTP_STYTCH_TAT_S_USER_ID,
    NGX_HTTP_STYTCH_TAT_S_MEMBER_SESSION_ID,
    NGX_HTTP_STYTCH_TAT_S_MEMBER_ID,
    NGX_HTTP_STYTCH_TAT_S_EXPIRES_AT,
    NGX_HTTP_STYTCH_TAT_S_N
};

#define NGX_HTTP_STYTCH_TAT_SESSION         0         /* "session" */
#define NGX_HTTP_STYTCH_TAT_MEMBER_SESSION  1         /* "member_session" */

#define NGX_HTTP_STYTCH_TAT_JSON_KEYS      64         /* before malloc() */


typedef struct {
    const char  *data;
    size_t       len;
    uint32_t     hash;
} ngx_http_stytch_tat_json_key_t;


typedef struct {
    const unsigned char             *p;
    const unsigned char             *end;
    int                              depth;
    int                              dups;      /* reject duplicate keys */

    char                            *arena;     /* decoded strings */
    size_t                           used;

    ngx_http_stytch_tat_json_key_t  *keys;      /* of the open objects */
    size_t                           nkeys;
    size_t                           nalloc;
    ngx_http_stytch_tat_json_key_t   local[NGX_HTTP_STYTCH_TAT_JSON_KEYS];

    /* the last value scanned: a string's raw bytes, a number's */
    const unsigned char             *vdata;
    size_t                           vlen;
    int                              vescaped;

    ngx_http_stytch_tat_field_t      top[NGX_HTTP_STYTCH_TAT_F_TOP];
    ngx_http_stytch_tat_field_t      sess[2][NGX_HTTP_STYTCH_TAT_S_N];
    int                              sess_object[2];

    int                              exp_kind;  /* a JWT's "exp" */
    long long                        exp;
} ngx_http_stytch_tat_json_t;


static int ngx_http_stytch_tat_json_value(ngx_http_stytch_tat_json_t *js,
    int role, int *kind);
static int ngx_http_stytch_tat_json_object(ngx_http_stytch_tat_json_t *js,
    int role);
static int ngx_http_stytch_tat_json_array(ngx_http_stytch_tat_json_t *js);
static int ngx_http_stytch_tat_json_string(ngx_http_stytch_tat_json_t *js);
static int ngx_http_stytch_tat_json_number(ngx_http_stytch_tat_json_t *js,
    int *kind);
static int ngx_http_stytch_tat_json_hex4(const unsigned char *p);
static size_t ngx_http_stytch_tat_json_decode(const unsigned char *src,
    size_t len, char *dst);
static int ngx_http_stytch_tat_json_slot(int role, const char *key,
    size_t len);
static int ngx_http_stytch_tat_json_scan(ngx_http_stytch_tat_json_t *js,
    const unsigned char *data, size_t len, int role);
static void ngx_http_stytch_tat_json_done(ngx_http_stytch_tat_json_t *js);
static int ngx_http_stytch_tat_field(ngx_http_stytch_tat_field_t *src,
    ngx_http_stytch_tat_field_t *field);
static int ngx_http_stytch_tat_response_session(
    ngx_http_stytch_tat_json_t *js, ngx_http_stytch_tat_response_t *resp);


/* the bytes a string holds as they are: not '"', '\\', control or 8-bit */
static const unsigned char  ngx_http_stytch_tat_json_plain[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 10 */
    1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 20 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 30 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 40 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1,  /* 50 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 60 */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,  /* 70 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 80 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* 90 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* a0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* b0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* c0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* d0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* e0 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  /* f0 */
};


static void
ngx_http_stytch_tat_json_ws(ngx_http_stytch_tat_json_t *js)
{
    while (js->p < js->end
           && (*js->p == ' ' || *js->p == '\t' || *js->p == '\n'
               || *js->p == '\r'))
    {
        js->p++;
    }
}


/* the hex value of \uXXXX's four digits, or -1 */

static int
ngx_http_stytch_tat_json_hex4(const unsigned char *p)
{
    int            i, v;
    unsigned char  c;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            v = v * 16 + (c - '0');

        } else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f') {
            v = v * 16 + ((c | 0x20) - 'a' + 10);

        } else {
            return -1;
        }
    }

    return v;
}


/*
 * A string at js->p (its opening quote): checked, its raw bytes between
 * the quotes in js->vdata and js->vlen.
 */

static int
ngx_http_stytch_tat_json_string(ngx_http_stytch_tat_json_t *js)
{
    int                   hi, lo;
    size_t                n, need;
    unsigned char         c;
    const unsigned char  *p, *end;

    p = js->p + 1;
    end = js->end;

    js->vdata = p;
    js->vescaped = 0;

    for ( ;; ) {
        while (p < end && ngx_http_stytch_tat_json_plain[*p]) {
            p++;
        }

        if (p == end) {
            return -1;
        }

        c = *p;

        if (c == '"') {
            break;
        }

        if (c < 0x20) {
            return -1;
        }

        if (c < 0x80) {
            if (c == '\\') {
                js->vescaped = 1;

                if (end - p < 2) {
                    return -1;
                }

                switch (p[1]) {
                case '"': case '\\': case '/': case 'b': case 'f':
                case 'n': case 'r': case 't':
                    p += 2;
                    continue;

                case 'u':
                    break;

                default:
                    return -1;
                }

                if (end - p < 6) {
                    return -1;
                }

                hi = ngx_http_stytch_tat_json_hex4(p + 2);

                if (hi <= 0 || (hi >= 0xdc00 && hi <= 0xdfff)) {
                    return -1;                  /* \u0000, a lone low */
                }

                p += 6;

                if (hi >= 0xd800 && hi <= 0xdbff) {
                    if (end - p < 6 || p[0] != '\\' || p[1] != 'u') {
                        return -1;
                    }

                    lo = ngx_http_stytch_tat_json_hex4(p + 2);

                    if (lo < 0xdc00 || lo > 0xdfff) {
                        return -1;
                    }

                    p += 6;
                }

                continue;
            }

            p++;
            continue;
        }

        /* UTF-8: no overlong form, no surrogate, nothing past U+10FFFF */

        if (c >= 0xc2 && c <= 0xdf) {
            need = 1;

        } else if (c >= 0xe0 && c <= 0xef) {
            need = 2;

        } else if (c >= 0xf0 && c <= 0xf4) {
            need = 3;

        } else {
            return -1;
        }

        if ((size_t) (end - p) <= need) {
            return -1;
        }

        if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f)
            || (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
        {
            return -1;
        }

        for (n = 1; n <= need; n++) {
            if ((p[n] & 0xc0) != 0x80) {
                return -1;
            }
        }

        p += need + 1;
    }

    js->vlen = p - js->vdata;
    js->p = p + 1;

    return 0;
}


/* a string's raw bytes, checked, decoded to dst; returns the length */

static size_t
ngx_http_stytch_tat_json_decode(const unsigned char *src, size_t len,
    char *dst)
{
    int                   v, lo;
    char                 *d;
    const unsigned char  *p, *end;

    d = dst;
    end = src + len;

    for (p = src; p < end; /* void */) {

        if (*p != '\\') {
            *d++ = (char) *p++;
            continue;
        }

        switch (p[1]) {
        case 'b': *d++ = '\b'; p += 2; continue;
        case 'f': *d++ = '\f'; p += 2; continue;
        case 'n': *d++ = '\n'; p += 2; continue;
        case 'r': *d++ = '\r'; p += 2; continue;
        case 't': *d++ = '\t'; p += 2; continue;
        case 'u': break;
        default: *d++ = (char) p[1]; p += 2; continue;
        }

        v = ngx_http_stytch_tat_json_hex4(p + 2);
        p += 6;

        if (v >= 0xd800 && v <= 0xdbff) {
            lo = ngx_http_stytch_tat_json_hex4(p + 2);
            p += 6;
            v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
        }

        if (v < 0x80) {
            *d++ = (char) v;

        } else if (v < 0x800) {
            *d++ = (char) (0xc0 | (v >> 6));
            *d++ = (char) (0x80 | (v & 0x3f));

        } else if (v < 0x10000) {
            *d++ = (char) (0xe0 | (v >> 12));
            *d++ = (char) (0x80 | ((v >> 6) & 0x3f));
            *d++ = (char) (0x80 | (v & 0x3f));

        } else {
            *d++ = (char) (0xf0 | (v >> 18));
            *d++ = (char) (0x80 | ((v >> 12) & 0x3f));
            *d++ = (char) (0x80 | ((v >> 6) & 0x3f));
            *d++ = (char) (0x80 | (v & 0x3f));
        }
    }

    return d - dst;
}


/*
 * A number, as jansson lexes it: an integer must fit a long long, a real
 * must not overflow a double.
 */

static int
ngx_http_stytch_tat_json_number(ngx_http_stytch_tat_json_t *js, int *kind)
{
    int                   real, rc;
    char                 *copy, buf[64];
    double                d;
    size_t                len, digits;
    long long             v;
    const unsigned char  *p, *end, *start, *first;

    p = js->p;
    end = js->end;
    start = p;
    real = 0;

    if (*p == '-') {
        p++;
    }

    first = p;

    if (p == end || *p < '0' || *p > '9') {
        return -1;
    }

    if (*p == '0') {
        p++;

        if (p < end && *p >= '0' && *p <= '9') {
            return -1;                          /* a leading zero */
        }

    } else {
        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    digits = p - first;

    if (p < end && *p == '.') {
        real = 1;
        p++;

        if (p == end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        real = 1;
        p++;

        if (p < end && (*p == '+' || *p == '-')) {
            p++;
        }

        if (p == end || *p < '0' || *p > '9') {
            return -1;
        }

        while (p < end && *p >= '0' && *p <= '9') {
            p++;
        }
    }

    js->p = p;
    js->vdata = start;
    js->vlen = p - start;

    len = p - start;

    if (!real && digits < 19) {
        *kind = NGX_HTTP_STYTCH_TAT_JSON_INTEGER;
        return 0;
    }

    /* long enough to overflow: strtoll() or strtod() decide, as jansson's */

    copy = (len < sizeof(buf)) ? buf : malloc(len + 1);
    if (copy == NULL) {
        return -1;
    }

    memcpy(copy, start, len);
    copy[len] = '\0';

    errno = 0;
    rc = 0;

    if (real) {
        d = strtod(copy, NULL);
        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE) {
            rc = -1;
        }

        *kind = NGX_HTTP_STYTCH_TAT_JSON_OTHER;

    } else {
        v = strtoll(copy, NULL, 10);
        if (errno == ERANGE) {
            rc = -1;
        }

        (void) v;
        *kind = NGX_HTTP_STYTCH_TAT_JSON_INTEGER;
    }

    if (copy != buf) {
        free(copy);
    }

    return rc;
}


/* which kept string a member is, by its (decoded) key; -1: none */

static int
ngx_http_stytch_tat_json_slot(int role, const char *key, size_t len)
{

#define ngx_http_stytch_tat_key_is(name)                                      \
    (len == sizeof(name) - 1 && memcmp(key, name, sizeof(name) - 1) == 0)

    if (role == NGX_HTTP_STYTCH_TAT_JSON_TOP) {
        switch (len) {
        case 7:
            return ngx_http_stytch_tat_key_is("user_id")
                   ? NGX_HTTP_STYTCH_TAT_F_USER_ID : -1;
        case 9:
            return ngx_http_stytch_tat_key_is("member_id")
                   ? NGX_HTTP_STYTCH_TAT_F_MEMBER_ID : -1;
        case 10:
            if (ngx_http_stytch_tat_key_is("request_id")) {
                return NGX_HTTP_STYTCH_TAT_F_REQUEST_ID;
            }
            return ngx_http_stytch_tat_key_is("error_type")
                   ? NGX_HTTP_STYTCH_TAT_F_ERROR_TYPE : -1;
        case 11:
            return ngx_http_stytch_tat_key_is("session_jwt")
                   ? NGX_HTTP_STYTCH_TAT_F_SESSION_JWT : -1;
        case 13:
            if (ngx_http_stytch_tat_key_is("error_message")) {
                return NGX_HTTP_STYTCH_TAT_F_ERROR_MESSAGE;
            }
            return ngx_http_stytch_tat_key_is("session_token")
                   ? NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN : -1;
        default:
            return -1;
        }
    }

    /* a session object */

    switch (len) {
    case 7:
        return ngx_http_stytch_tat_key_is("user_id")
               ? NGX_HTTP_STYTCH_TAT_S_USER_ID : -1;
    case 9:
        return ngx_http_stytch_tat_key_is("member_id")
               ? NGX_HTTP_STYTCH_TAT_S_MEMBER_ID : -1;
    case 10:
        if (ngx_http_stytch_tat_key_is("session_id")) {
            return NGX_HTTP_STYTCH_TAT_S_SESSION_ID;
        }
        return ngx_http_stytch_tat_key_is("expires_at")
               ? NGX_HTTP_STYTCH_TAT_S_EXPIRES_AT : -1;
    case 17:
        return ngx_http_stytch_tat_key_is("member_session_id")
               ? NGX_HTTP_STYTCH_TAT_S_MEMBER_SESSION_ID : -1;
    default:
        return -1;
    }
}


static int
ngx_http_stytch_tat_json_object(ngx_http_stytch_tat_json_t *js, int role)
{
    int                              kind, slot, child, which;
    char                             *key, tmp[32];
    size_t                           i, klen, mark;
    uint32_t                         hash;
    ngx_http_stytch_tat_json_key_t  *keys;
    ngx_http_stytch_tat_field_t     *f;

    js->p++;
    ngx_http_stytch_tat_json_ws(js);

    if (js->p < js->end && *js->p == '}') {
        js->p++;
        return 0;
    }

    mark = js->nkeys;
    hash = 0;

    for ( ;; ) {
        ngx_http_stytch_tat_json_ws(js);

        if (js->p == js->end || *js->p != '"'
            || ngx_http_stytch_tat_json_string(js) != 0)
        {
            return -1;
        }

        /* the key, decoded where it has escapes */

        key = (char *) js->vdata;
        klen = js->vlen;

        if (js->vescaped) {
            if (js->dups) {
                key = js->arena + js->used;

            } else if (klen < sizeof(tmp)) {
                key = tmp;

            } else {
                key = NULL;             /* too long to be a wanted key */
            }

            if (key != NULL) {
                klen = ngx_http_stytch_tat_json_decode(js->vdata, js->vlen,
                                                       key);
                if (key != tmp) {
                    js->used += klen;
                }
            }
        }

        if (js->dups) {
            hash = 2166136261u;
            for (i = 0; i < klen; i++) {
                hash = (hash ^ (unsigned char) key[i]) * 16777619u;
            }

            for (i = mark; i < js->nkeys; i++) {
                if (js->keys[i].hash == hash && js->keys[i].len == klen
                    && memcmp(js->keys[i].data, key, klen) == 0)
                {
                    return -1;
                }
            }

            if (js->nkeys == js->nalloc) {
                keys = malloc(2 * js->nalloc
                              * sizeof(ngx_http_stytch_tat_json_key_t));
                if (keys == NULL) {
                    return -1;
                }

                memcpy(keys, js->keys,
                       js->nkeys * sizeof(ngx_http_stytch_tat_json_key_t));

                if (js->keys != js->local) {
                    free(js->keys);
                }

                js->keys = keys;
                js->nalloc *= 2;
            }

            js->keys[js->nkeys].data = key;
            js->keys[js->nkeys].len = klen;
            js->keys[js->nkeys].hash = hash;
            js->nkeys++;
        }

        /* where its value goes */

        slot = -1;
        child = NGX_HTTP_STYTCH_TAT_JSON_SKIP;
        which = 0;

        if (key != NULL) {
            switch (role) {

            case NGX_HTTP_STYTCH_TAT_JSON_TOP:
                if (klen == 7 && memcmp(key, "session", 7) == 0) {
                    child = NGX_HTTP_STYTCH_TAT_JSON_SESSION
                            + NGX_HTTP_STYTCH_TAT_SESSION;

                } else if (klen == 14
                           && memcmp(key, "member_session", 14) == 0)
                {
                    child = NGX_HTTP_STYTCH_TAT_JSON_SESSION
                            + NGX_HTTP_STYTCH_TAT_MEMBER_SESSION;

                } else {
                    slot = ngx_http_stytch_tat_json_slot(role, key, klen);
                }

                break;

            case NGX_HTTP_STYTCH_TAT_JSON_SESSION:
            case NGX_HTTP_STYTCH_TAT_JSON_SESSION + 1:
                slot = ngx_http_stytch_tat_json_slot(role, key, klen);
                which = role - NGX_HTTP_STYTCH_TAT_JSON_SESSION;
                break;

            case NGX_HTTP_STYTCH_TAT_JSON_CLAIMS:
                if (klen == 3 && memcmp(key, "exp", 3) == 0) {
                    slot = 0;
                }
                break;
            }
        }

        ngx_http_stytch_tat_json_ws(js);

        if (js->p == js->end || *js->p != ':') {
            return -1;
        }

        js->p++;
        ngx_http_stytch_tat_json_ws(js);

        if (ngx_http_stytch_tat_json_value(js, child, &kind) != 0) {
            return -1;
        }

        if (child != NGX_HTTP_STYTCH_TAT_JSON_SKIP) {
            js->sess_object[child - NGX_HTTP_STYTCH_TAT_JSON_SESSION] =
                                      (kind == NGX_HTTP_STYTCH_TAT_JSON_OBJECT);

        } else if (slot >= 0 && role == NGX_HTTP_STYTCH_TAT_JSON_CLAIMS) {
            /* the last "exp" counts, as with jansson */
            js->exp_kind = kind;

            if (kind == NGX_HTTP_STYTCH_TAT_JSON_INTEGER) {
                errno = 0;
                js->exp = 0;

                if (js->vlen < sizeof(tmp)) {
                    memcpy(tmp, js->vdata, js->vlen);
                    tmp[js->vlen] = '\0';
                    js->exp = strtoll(tmp, NULL, 10);
                }
            }

        } else if (slot >= 0) {
            f = (role == NGX_HTTP_STYTCH_TAT_JSON_TOP) ? &js->top[slot]
                                                       : &js->sess[which][slot];

            if (kind == NGX_HTTP_STYTCH_TAT_JSON_STRING) {
                /* at most the raw bytes and their quotes: the arena holds it */
                f->data = js->arena + js->used;

                if (js->vescaped) {
                    f->len = ngx_http_stytch_tat_json_decode(js->vdata,
                                                js->vlen, js->arena + js->used);

                } else {
                    memcpy(js->arena + js->used, js->vdata, js->vlen);
                    f->len = js->vlen;
                }

                js->arena[js->used + f->len] = '\0';
                js->used += f->len + 1;

            } else {
                f->data = NULL;
                f->len = 0;
            }
        }

        ngx_http_stytch_tat_json_ws(js);

        if (js->p == js->end) {
            return -1;
        }

        if (*js->p == ',') {
            js->p++;
            continue;
        }

        if (*js->p == '}') {
            js->p++;
            js->nkeys = mark;
            return 0;
        }

        return -1;
    }
}


static int
ngx_http_stytch_tat_json_array(ngx_http_stytch_tat_json_t *js)
{
    int  kind;

    js->p++;
    ngx_http_stytch_tat_json_ws(js);

    if (js->p < js->end && *js->p == ']') {
        js->p++;
        return 0;
    }

    for ( ;; ) {
        ngx_http_stytch_tat_json_ws(js);

        if (ngx_http_stytch_tat_json_value(js, NGX_HTTP_STYTCH_TAT_JSON_SKIP,
                                           &kind)
            != 0)
        {
            return -1;
        }

        ngx_http_stytch_tat_json_ws(js);

        if (js->p == js->end) {
            return -1;
        }

        if (*js->p == ',') {
            js->p++;
            continue;
        }

        if (*js->p == ']') {
            js->p++;
            return 0;
        }

        return -1;
    }
}


static int
ngx_http_stytch_tat_json_value(ngx_http_stytch_tat_json_t *js, int role,
    int *kind)
{
    int      rc, bare;
    size_t   n;

    static const char  *literals[] = { "true", "false", "null" };

    if (js->p == js->end) {
        return -1;
    }

    if (++js->depth > NGX_HTTP_STYTCH_TAT_JSON_MAX_DEPTH) {
        return -1;
    }

    *kind = NGX_HTTP_STYTCH_TAT_JSON_OTHER;
    bare = 1;

    switch (*js->p) {

    case '{':
        rc = ngx_http_stytch_tat_json_object(js, role);
        *kind = NGX_HTTP_STYTCH_TAT_JSON_OBJECT;
        bare = 0;
        break;

    case '[':
        rc = ngx_http_stytch_tat_json_array(js);
        bare = 0;
        break;

    case '"':
        rc = ngx_http_stytch_tat_json_string(js);
        *kind = NGX_HTTP_STYTCH_TAT_JSON_STRING;
        bare = 0;
        break;

    case 't':
    case 'f':
    case 'n':
        rc = -1;
        n = (*js->p == 't') ? 0 : (*js->p == 'f') ? 1 : 2;

        if ((size_t) (js->end - js->p) >= strlen(literals[n])
            && memcmp(js->p, literals[n], strlen(literals[n])) == 0)
        {
            js->p += strlen(literals[n]);
            rc = 0;
        }

        break;

    default:
        rc = ngx_http_stytch_tat_json_number(js, kind);
    }

    /*
     * jansson's lexer reads one byte past a number or a literal and puts
     * it back, and a NUL put back is lost: "[1\0]" is [1] to jansson
     */

    if (rc == 0 && bare && js->p < js->end && *js->p == '\0') {
        js->p++;
    }

    js->depth--;

    return rc;
}


/*
 * One JSON text that must be an object, whitespace around it and nothing
 * else; role says what of it to keep.  The arena holds len + 1 bytes: the
 * strings kept and the escaped keys decoded, each with a NUL, never take
 * more than their quoted bytes in the text.
 */

static int
ngx_http_stytch_tat_json_scan(ngx_http_stytch_tat_json_t *js,
    const unsigned char *data, size_t len, int role)
{
    int  kind;

    js->p = data;
    js->end = data + len;
    js->keys = js->local;
    js->nalloc = NGX_HTTP_STYTCH_TAT_JSON_KEYS;

    ngx_http_stytch_tat_json_ws(js);

    if (js->p == js->end || *js->p != '{') {
        return -1;
    }

    if (ngx_http_stytch_tat_json_value(js, role, &kind) != 0) {
        return -1;
    }

    ngx_http_stytch_tat_json_ws(js);

    return (js->p == js->end) ? 0 : -1;
}


static void
ngx_http_stytch_tat_json_done(ngx_http_stytch_tat_json_t *js)
{
    if (js->keys != js->local) {
        free(js->keys);
    }

    js->keys = js->local;
}


/* a kept string that is there and not empty */

static int
ngx_http_stytch_tat_field(ngx_http_stytch_tat_field_t *src,
    ngx_http_stytch_tat_field_t *field)
{
    if (src->data == NULL || src->len == 0) {
        field->data = NULL;
        field->len = 0;
        return -1;
    }

    *field = *src;

    return 0;
}


int
ngx_http_stytch_tat_response_parse(const unsigned char *body, size_t len,
    int status, ngx_http_stytch_tat_response_t *resp)
{
    int                          rc;
    ngx_http_stytch_tat_json_t   scan, *js;

    memset(resp, 0, sizeof(ngx_http_stytch_tat_response_t));

    if (body == NULL || len == 0) {
        resp->reason = "empty body";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    js = &scan;
    memset(js, 0, sizeof(ngx_http_stytch_tat_json_t));

    js->dups = 1;
    js->arena = malloc(len + 1);

    rc = (js->arena != NULL)
         ? ngx_http_stytch_tat_json_scan(js, body, len,
                                         NGX_HTTP_STYTCH_TAT_JSON_TOP)
         : -1;

    ngx_http_stytch_tat_json_done(js);

    if (rc != 0) {
        free(js->arena);
        resp->reason = "not a JSON object";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    resp->root = js->arena;

    (void) ngx_http_stytch_tat_field(&js->top[NGX_HTTP_STYTCH_TAT_F_REQUEST_ID],
                                     &resp->request_id);

    if (status < 200 || status > 299) {
        if (ngx_http_stytch_tat_field(
                &js->top[NGX_HTTP_STYTCH_TAT_F_ERROR_TYPE], &resp->error_type)
            != 0)
        {
            resp->reason = "error answer without \"error_type\"";
            rc = NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;

        } else {
            (void) ngx_http_stytch_tat_field(
                           &js->top[NGX_HTTP_STYTCH_TAT_F_ERROR_MESSAGE],
                           &resp->error_message);
            rc = NGX_HTTP_STYTCH_TAT_RESPONSE_ERROR;
        }

    } else {
        rc = ngx_http_stytch_tat_response_session(js, resp);
    }

    return rc;
}


/* a 2xx answer: the session, whichever of Stytch's shapes it comes in */

static int
ngx_http_stytch_tat_response_session(ngx_http_stytch_tat_json_t *js,
    ngx_http_stytch_tat_response_t *resp)
{
    int                           s, sid;
    ngx_http_stytch_tat_field_t  *top, *sess;

    top = js->top;

    /* consumer: user_id and session; B2B: member_id and member_session */

    if (js->sess_object[NGX_HTTP_STYTCH_TAT_MEMBER_SESSION]) {
        s = NGX_HTTP_STYTCH_TAT_MEMBER_SESSION;
        sess = js->sess[s];
        sid = NGX_HTTP_STYTCH_TAT_S_MEMBER_SESSION_ID;

        if (ngx_http_stytch_tat_field(&top[NGX_HTTP_STYTCH_TAT_F_MEMBER_ID],
                                      &resp->user_id) != 0
            && ngx_http_stytch_tat_field(&sess[NGX_HTTP_STYTCH_TAT_S_MEMBER_ID],
                                         &resp->user_id) != 0)
        {
            resp->reason = "no \"member_id\"";
            return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
        }

    } else {
        s = NGX_HTTP_STYTCH_TAT_SESSION;
        sess = js->sess[s];
        sid = NGX_HTTP_STYTCH_TAT_S_SESSION_ID;

        if (ngx_http_stytch_tat_field(&top[NGX_HTTP_STYTCH_TAT_F_USER_ID],
                                      &resp->user_id) != 0
            && (!js->sess_object[s]
                || ngx_http_stytch_tat_field(
                       &sess[NGX_HTTP_STYTCH_TAT_S_USER_ID], &resp->user_id)
                   != 0))
        {
            resp->reason = "no \"user_id\"";
            return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
        }
    }

    if (!js->sess_object[s]) {
        resp->reason = "no session object";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(&sess[sid], &resp->session_id) != 0) {
        resp->reason = "no session id";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(&top[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN],
                                  &resp->session_token) != 0)
    {
        resp->reason = "no \"session_token\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(&top[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT],
                                  &resp->session_jwt) != 0)
    {
        resp->reason = "no \"session_jwt\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    resp->expires_at = ngx_http_stytch_tat_parse_rfc3339(
                                 sess[NGX_HTTP_STYTCH_TAT_S_EXPIRES_AT].data);

    if (resp->expires_at < 0) {
        resp->reason = "no valid session \"expires_at\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    resp->jwt_exp = ngx_http_stytch_tat_jwt_exp(resp->session_jwt.data,
                                                resp->session_jwt.len);

    if (resp->jwt_exp < 0) {
        resp->reason = "a \"session_jwt\" without a readable \"exp\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    return NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION;
}


void
ngx_http_stytch_tat_response_free(ngx_http_stytch_tat_response_t *resp)
{
    free(resp->root);
    resp->root = NULL;
}


long long
ngx_http_stytch_tat_jwt_exp(const char *jwt, size_t len)
{
    int                          n;
    char                        *b64;
    size_t                       i, plen, blen;
    long long                    rc;
    const char                  *p, *dot;
    unsigned char               *raw;
    ngx_http_stytch_tat_json_t   js;

    p = memchr(jwt, '.', len);
    if (p == NULL) {
        return -1;
    }

    p++;
    dot = memchr(p, '.', len - (p - jwt));
    if (dot == NULL) {
        return -1;
    }

    plen = dot - p;

    if (plen == 0 || plen > 16384) {
        return -1;
    }

    /* base64url to base64 with padding, for EVP_DecodeBlock() */

    blen = (plen + 3) & ~(size_t) 3;
    b64 = malloc(blen + 1);
    raw = malloc(blen);

    if (b64 == NULL || raw == NULL) {
        free(b64);
        free(raw);
        return -1;
    }

    for (i = 0; i < plen; i++) {
        b64[i] = (p[i] == '-') ? '+' : (p[i] == '_') ? '/' : p[i];
    }

    for ( /* void */ ; i < blen; i++) {
        b64[i] = '=';
    }

    b64[blen] = '\0';

    n = EVP_DecodeBlock(raw, (unsigned char *) b64, (int) blen);
    free(b64);

    rc = -1;

    if (n > 0) {
        /* EVP_DecodeBlock() counts the padding as zero bytes */
        n -= (int) (blen - plen);

        /* as json_loadb() without flags: the last "exp" of several */

        memset(&js, 0, sizeof(ngx_http_stytch_tat_json_t));

        if (ngx_http_stytch_tat_json_scan(&js, raw, (size_t) n,
                                          NGX_HTTP_STYTCH_TAT_JSON_CLAIMS)
            == 0
            && js.exp_kind == NGX_HTTP_STYTCH_TAT_JSON_INTEGER && js.exp > 0)
        {
            rc = js.exp;
        }

        ngx_http_stytch_tat_json_done(&js);
    }

    free(raw);

    return rc;
}


long long
ngx_http_stytch_tat_parse_rfc3339(const char *s)
{
    int          i;
    time_t       t;
    struct tm    tm, check;
    const char  *p;

    /* "YYYY-MM-DDTHH:MM:SS", then an optional fraction, then "Z" */
    static const char  form[] = "dddd-dd-ddTdd:dd:dd";

    if (s == NULL) {
        return -1;
    }

    for (i = 0; form[i]; i++) {
        if (form[i] == 'd' ? (s[i] < '0' || s[i] > '9')
                           : (form[i] == 'T' ? (s[i] != 'T' && s[i] != 't')
                                             : s[i] != form[i]))
        {
            return -1;
        }
    }

    memset(&tm, 0, sizeof(struct tm));

    tm.tm_year = (s[0] - '0') * 1000 + (s[1] - '0') * 100
                 + (s[2] - '0') * 10 + (s[3] - '0') - 1900;
    tm.tm_mon = (s[5] - '0') * 10 + (s[6] - '0') - 1;
    tm.tm_mday = (s[8] - '0') * 10 + (s[9] - '0');
    tm.tm_hour = (s[11] - '0') * 10 + (s[12] - '0');
    tm.tm_min = (s[14] - '0') * 10 + (s[15] - '0');
    tm.tm_sec = (s[17] - '0') * 10 + (s[18] - '0');

    p = s + 19;

    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
        }
    }

    if ((*p != 'Z' && *p != 'z') || p[1] != '\0' || tm.tm_year < 70) {
        return -1;
    }

    check = tm;

    t = timegm(&tm);

    /* timegm() normalizes: February 31 must not become March 3 */

    if (t == (time_t) -1 || tm.tm_mday != check.tm_mday
        || tm.tm_mon != check.tm_mon || tm.tm_hour != check.tm_hour
        || tm.tm_min != check.tm_min || tm.tm_sec != check.tm_sec)
    {
        return -1;
    }

    return (long long) t;
}
