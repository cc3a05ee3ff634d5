/*
 * Stytch's answers: ngx_http_stytch_tat_response_parse() on any body, for
 * the status the first byte selects, checked against an independent
 * reading of the same JSON; ngx_http_stytch_tat_jwt_exp() on the body as a
 * JWT, checked against a strict base64url decoder, and the module's own
 * decoder (ngx_http_stytch_tat_b64url_decode()) on it, against that one;
 * and ngx_http_stytch_tat_parse_rfc3339() on the body as a C string.
 */

#include <stdint.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_response.h"
#include "fuzz_common.h"


static const int  statuses[] = {
    200, 201, 299, 400, 401, 403, 404, 429, 500, 502, 503, 0, 199, 300, -1
};


static void
check_reply(const ngx_http_stytch_tat_field_t *f, json_t *want)
{
    size_t  i;
    volatile char  c;

    FUZZ_CHECK(f->data != NULL && f->len > 0);

    /* every byte is readable, and jansson without JSON_ALLOW_NUL has none */
    for (i = 0; i < f->len; i++) {
        c = f->data[i];
        FUZZ_CHECK(c != '\0');
    }

    FUZZ_CHECK(f->data[f->len] == '\0');

    if (want != NULL) {
        FUZZ_CHECK(json_is_string(want));
        FUZZ_CHECK(json_string_length(want) == f->len);
        FUZZ_CHECK(memcmp(json_string_value(want), f->data, f->len) == 0);
    }
}


/*
 * The "exp" of a JWT's payload by a strict reading: -2 when the payload
 * is not strict base64url of a JSON object with a positive integer "exp".
 */
static long long
ref_jwt_exp(const unsigned char *jwt, size_t len)
{
    long                  n;
    char                 *seg;
    json_t               *claims, *exp;
    long long             rc;
    const unsigned char  *p, *dot;
    unsigned char        *raw;

    p = memchr(jwt, '.', len);
    if (p == NULL) {
        return -2;
    }

    p++;
    dot = memchr(p, '.', len - (size_t) (p - jwt));
    if (dot == NULL || dot == p || dot - p > 16384) {
        return -2;
    }

    /* any byte, NUL included, that is not base64url makes it unreadable */
    seg = (char *) fuzz_dup(p, (size_t) (dot - p), 0);
    raw = malloc((size_t) (dot - p));
    n = fuzz_b64url_decode_n(seg, (size_t) (dot - p), raw,
                             (size_t) (dot - p));
    free(seg);

    rc = -2;

    if (n > 0) {
        claims = json_loadb((char *) raw, (size_t) n, 0, NULL);
        exp = json_object_get(claims, "exp");

        if (json_is_integer(exp) && json_integer_value(exp) > 0) {
            rc = json_integer_value(exp);
        }

        json_decref(claims);
    }

    free(raw);

    return rc;
}


/*
 * The raw bytes as base64url: the module's one decoder (jose.c), into a
 * buffer of exactly the size it asks for, against the reference.
 */
static void
check_b64url(const unsigned char *src, size_t size)
{
    int             rc;
    long            ref_n;
    size_t          n;
    unsigned char  *dst, *ref;

    dst = malloc(ngx_http_stytch_tat_b64url_decoded_len(size) + (size == 0));
    ref = malloc(size + 1);
    FUZZ_CHECK(dst != NULL && ref != NULL);

    n = 12345;
    rc = ngx_http_stytch_tat_b64url_decode(dst, &n, (const char *) src, size);
    ref_n = fuzz_b64url_decode_n((const char *) src, size, ref, size);

    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK((rc == 0) == (ref_n >= 0));

    if (rc == 0) {
        FUZZ_CHECK(n == (size_t) ref_n);
        FUZZ_CHECK(n == 0 || memcmp(dst, ref, n) == 0);

    } else {
        FUZZ_CHECK(n == 0);
    }

    free(dst);
    free(ref);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                              rc, status;
    json_t                          *ref, *session, *want;
    long long                        t;
    unsigned char                   *body, *str;
    ngx_http_stytch_tat_response_t   resp;

    if (size == 0) {
        return 0;
    }

    status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    data++;
    size--;

    body = fuzz_dup(data, size, 0);

    rc = ngx_http_stytch_tat_response_parse(size ? body : NULL, size, status,
                                            &resp);

    /* an independent reading of the same bytes */
    ref = json_loadb((const char *) body, size, JSON_REJECT_DUPLICATES, NULL);

    switch (rc) {

    case NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION:
        FUZZ_CHECK(status >= 200 && status <= 299);
        FUZZ_CHECK(resp.root != NULL && resp.reason == NULL);
        FUZZ_CHECK(json_is_object(ref));
        FUZZ_CHECK(resp.expires_at >= 0);

        /* the user (member) id at the top, else in the session object */
        session = json_object_get(ref, "member_session");

        if (json_is_object(session)) {
            want = json_object_get(ref, "member_id");
            if (!fuzz_nonempty(want)) {
                want = json_object_get(session, "member_id");
            }
            check_reply(&resp.user_id, want);
            check_reply(&resp.session_id,
                        json_object_get(session, "member_session_id"));

        } else {
            session = json_object_get(ref, "session");
            want = json_object_get(ref, "user_id");
            if (!fuzz_nonempty(want)) {
                want = json_object_get(session, "user_id");
            }
            check_reply(&resp.user_id, want);
            check_reply(&resp.session_id,
                        json_object_get(session, "session_id"));
        }

        check_reply(&resp.session_token,
                    json_object_get(ref, "session_token"));
        check_reply(&resp.session_jwt, json_object_get(ref, "session_jwt"));
        FUZZ_CHECK(resp.expires_at == ngx_http_stytch_tat_parse_rfc3339(
                   json_string_value(json_object_get(session, "expires_at"))));
        FUZZ_CHECK(resp.jwt_exp > 0);
        FUZZ_CHECK(resp.jwt_exp == ngx_http_stytch_tat_jwt_exp(
                   resp.session_jwt.data, resp.session_jwt.len));
        break;

    case NGX_HTTP_STYTCH_TAT_RESPONSE_ERROR:
        FUZZ_CHECK(status < 200 || status > 299);
        FUZZ_CHECK(resp.root != NULL && resp.reason == NULL);
        FUZZ_CHECK(json_is_object(ref));
        check_reply(&resp.error_type, json_object_get(ref, "error_type"));
        if (resp.error_message.data != NULL) {
            check_reply(&resp.error_message,
                        json_object_get(ref, "error_message"));
        } else {
            FUZZ_CHECK(!fuzz_nonempty(json_object_get(ref, "error_message")));
        }
        break;

    case NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED:
        FUZZ_CHECK(resp.reason != NULL && resp.reason[0] != '\0');
        /* a non-object is refused without keeping anything */
        FUZZ_CHECK(json_is_object(ref) || resp.root == NULL);
        break;

    default:
        FUZZ_CHECK(0 && "unknown result");
    }

    if (resp.request_id.data != NULL) {
        check_reply(&resp.request_id, json_object_get(ref, "request_id"));
    }

    ngx_http_stytch_tat_response_free(&resp);
    FUZZ_CHECK(resp.root == NULL);

    /* freeing twice is harmless */
    ngx_http_stytch_tat_response_free(&resp);

    json_decref(ref);
    free(body);

    /* the raw bytes as a session JWT */

    if (size > 0) {
        long long  exp, ref_exp;

        body = fuzz_dup(data, size, 0);
        exp = ngx_http_stytch_tat_jwt_exp((const char *) body, size);
        ref_exp = ref_jwt_exp(body, size);

        /* the module reads the payload as strictly as the reference */
        FUZZ_CHECK(exp == (ref_exp == -2 ? -1 : ref_exp));

        check_b64url(body, size);

        free(body);
    }

    /* the expiry parser on the raw bytes, as a C string */

    str = fuzz_dup(data, size, 1);
    t = ngx_http_stytch_tat_parse_rfc3339((const char *) str);

    if (t >= 0) {
        /* "YYYY-MM-DDTHH:MM:SS" at least, then a Z */
        FUZZ_CHECK(strlen((char *) str) >= 20);
        FUZZ_CHECK(str[strlen((char *) str) - 1] == 'Z'
                   || str[strlen((char *) str) - 1] == 'z');
    }

    free(str);

    return 0;
}
