/*
 * Stytch's answers: see ngx_http_stytch_tat_response.h.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE              /* timegm() */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_response.h"


static int ngx_http_stytch_tat_response_session(json_t *root,
    ngx_http_stytch_tat_response_t *resp);
static int ngx_http_stytch_tat_field(json_t *obj, const char *name,
    ngx_http_stytch_tat_field_t *field);


/*
 * A non-empty string without control characters: the session's strings
 * go into headers, cookies and variables, error_type into
 * $stytch_tat_error, where a CR or LF would split them.
 */

static int
ngx_http_stytch_tat_field(json_t *obj, const char *name,
    ngx_http_stytch_tat_field_t *field)
{
    size_t       i;
    json_t      *v;
    const char  *s;

    field->data = NULL;
    field->len = 0;

    v = json_object_get(obj, name);

    if (!json_is_string(v) || json_string_length(v) == 0) {
        return -1;
    }

    s = json_string_value(v);

    for (i = 0; i < json_string_length(v); i++) {
        if ((unsigned char) s[i] < 0x20 || (unsigned char) s[i] == 0x7f) {
            return -1;
        }
    }

    field->data = s;
    field->len = json_string_length(v);

    return 0;
}


int
ngx_http_stytch_tat_response_parse(const unsigned char *body, size_t len,
    int status, ngx_http_stytch_tat_response_t *resp)
{
    json_t        *root;
    json_error_t   err;

    memset(resp, 0, sizeof(ngx_http_stytch_tat_response_t));

    if (body == NULL || len == 0) {
        resp->reason = "empty body";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    root = json_loadb((const char *) body, len, JSON_REJECT_DUPLICATES, &err);

    if (!json_is_object(root)) {
        json_decref(root);
        resp->reason = "not a JSON object";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    resp->root = root;

    (void) ngx_http_stytch_tat_field(root, "request_id", &resp->request_id);

    if (status < 200 || status > 299) {
        if (ngx_http_stytch_tat_field(root, "error_type", &resp->error_type)
            != 0)
        {
            resp->reason = "error answer without \"error_type\"";
            return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
        }

        /* for the log only, which escapes it */

        resp->error_message.data = json_string_value(
                                  json_object_get(root, "error_message"));
        resp->error_message.len = resp->error_message.data
                        ? json_string_length(json_object_get(root,
                                                         "error_message"))
                        : 0;

        return NGX_HTTP_STYTCH_TAT_RESPONSE_ERROR;
    }

    return ngx_http_stytch_tat_response_session(root, resp);
}


/* a 2xx answer: the session, whichever of Stytch's shapes it comes in */

static int
ngx_http_stytch_tat_response_session(json_t *root,
    ngx_http_stytch_tat_response_t *resp)
{
    json_t      *session;
    const char  *sid;

    /* consumer: user_id and session; B2B: member_id and member_session */

    session = json_object_get(root, "member_session");

    if (json_is_object(session)) {
        sid = "member_session_id";

        if (ngx_http_stytch_tat_field(root, "member_id", &resp->user_id) != 0
            && ngx_http_stytch_tat_field(session, "member_id", &resp->user_id)
               != 0)
        {
            resp->reason = "no \"member_id\"";
            return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
        }

    } else {
        session = json_object_get(root, "session");
        sid = "session_id";

        if (ngx_http_stytch_tat_field(root, "user_id", &resp->user_id) != 0
            && (!json_is_object(session)
                || ngx_http_stytch_tat_field(session, "user_id",
                                             &resp->user_id) != 0))
        {
            resp->reason = "no usable \"user_id\"";
            return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
        }
    }

    if (!json_is_object(session)) {
        resp->reason = "no session object";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(session, sid, &resp->session_id) != 0) {
        resp->reason = "no session id";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(root, "session_token", &resp->session_token)
        != 0)
    {
        resp->reason = "no usable \"session_token\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    if (ngx_http_stytch_tat_field(root, "session_jwt", &resp->session_jwt)
        != 0)
    {
        resp->reason = "no usable \"session_jwt\"";
        return NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED;
    }

    resp->expires_at = ngx_http_stytch_tat_parse_rfc3339(
                   json_string_value(json_object_get(session, "expires_at")));

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
    json_decref((json_t *) resp->root);
    resp->root = NULL;
}


long long
ngx_http_stytch_tat_jwt_exp(const char *jwt, size_t len)
{
    size_t          n, plen;
    json_t         *claims, *exp;
    long long       rc;
    const char     *p, *dot;
    unsigned char  *raw;

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

    raw = malloc(ngx_http_stytch_tat_b64url_decoded_len(plen));
    if (raw == NULL) {
        return -1;
    }

    rc = -1;

    /* strict, as every JWT is read here: Stytch's are base64url proper */

    if (ngx_http_stytch_tat_b64url_decode(raw, &n, p, plen) == 0) {
        claims = json_loadb((char *) raw, n, 0, NULL);
        exp = json_object_get(claims, "exp");

        if (json_is_integer(exp) && json_integer_value(exp) > 0) {
            rc = json_integer_value(exp);
        }

        json_decref(claims);
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
