/*
 * Stytch's answers: consumer and B2B attest and authenticate answers, error
 * answers, and everything that must be read as malformed instead.
 */

#include <string.h>

#include "unit.h"
#include "ngx_http_stytch_tat_response.h"


/* header.payload.signature with payload {"exp":1795898000} */
#define JWT_EXP  "eyJhbGciOiJSUzI1NiJ9.eyJleHAiOjE3OTU4OTgwMDB9.c2ln"

#define CONSUMER                                                            \
    "{\"status_code\":200,\"request_id\":\"request-id-test-1\","            \
    "\"user_id\":\"user-test-1\",\"session_token\":\"tok-44\","             \
    "\"session_jwt\":\"" JWT_EXP "\","                                       \
    "\"user\":{\"user_id\":\"user-test-1\",\"emails\":[]},"                 \
    "\"session\":{\"session_id\":\"session-test-1\","                       \
    "\"user_id\":\"user-test-1\",\"started_at\":\"2026-11-28T19:31:40Z\","  \
    "\"expires_at\":\"2026-11-28T20:31:40Z\","                              \
    "\"authentication_factors\":[{\"type\":\"trusted_auth_token\"}]}}"


static int
parse(const char *body, int status, ngx_http_stytch_tat_response_t *resp)
{
    return ngx_http_stytch_tat_response_parse((const unsigned char *) body,
                                              strlen(body), status, resp);
}


static void
assert_field(ngx_http_stytch_tat_field_t *f, const char *want)
{
    assert_non_null(f->data);
    assert_int_equal(f->len, strlen(want));
    assert_memory_equal(f->data, want, f->len);
}


void
test_response_consumer(void **state)
{
    ngx_http_stytch_tat_response_t  resp;

    (void) state;

    assert_int_equal(parse(CONSUMER, 200, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION);
    assert_field(&resp.user_id, "user-test-1");
    assert_field(&resp.session_id, "session-test-1");
    assert_field(&resp.session_token, "tok-44");
    assert_field(&resp.session_jwt, JWT_EXP);
    assert_field(&resp.request_id, "request-id-test-1");
    assert_int_equal(resp.expires_at, 1795897900);
    assert_int_equal(resp.jwt_exp, 1795898000);
    assert_null(resp.error_type.data);

    ngx_http_stytch_tat_response_free(&resp);
}


void
test_response_b2b(void **state)
{
    ngx_http_stytch_tat_response_t  resp;

    static const char  body[] =
        "{\"status_code\":200,\"member_id\":\"member-test-1\","
        "\"session_token\":\"tok\",\"session_jwt\":\"" JWT_EXP "\","
        "\"member_session\":{\"member_session_id\":\"member-session-1\","
        "\"member_id\":\"member-test-1\",\"organization_id\":\"org-1\","
        "\"expires_at\":\"2026-11-28T20:31:40.123456Z\"},"
        "\"member\":{},\"organization\":{}}";

    (void) state;

    assert_int_equal(parse(body, 200, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION);
    assert_field(&resp.user_id, "member-test-1");
    assert_field(&resp.session_id, "member-session-1");
    assert_int_equal(resp.expires_at, 1795897900);

    ngx_http_stytch_tat_response_free(&resp);
}


void
test_response_authenticate_without_top_user_id(void **state)
{
    ngx_http_stytch_tat_response_t  resp;

    /* authenticate answers carry the user in the session and user objects */
    static const char  body[] =
        "{\"status_code\":200,\"session_token\":\"tok\","
        "\"session_jwt\":\"" JWT_EXP "\",\"session\":{\"session_id\":\"s-1\","
        "\"user_id\":\"user-from-session\","
        "\"expires_at\":\"2026-11-28T20:31:40Z\"},\"user\":{}}";

    (void) state;

    assert_int_equal(parse(body, 200, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION);
    assert_field(&resp.user_id, "user-from-session");

    ngx_http_stytch_tat_response_free(&resp);
}


void
test_response_b2b_authenticate_without_top_member_id(void **state)
{
    ngx_http_stytch_tat_response_t  resp;

    /* B2B authenticate answers carry the member in the member session */
    static const char  body[] =
        "{\"status_code\":200,\"session_token\":\"tok\","
        "\"session_jwt\":\"" JWT_EXP "\",\"member_session\":{"
        "\"member_session_id\":\"member-session-1\","
        "\"member_id\":\"member-from-session\","
        "\"expires_at\":\"2026-11-28T20:31:40Z\"},"
        "\"member\":{},\"organization\":{}}";

    (void) state;

    assert_int_equal(parse(body, 200, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION);
    assert_field(&resp.user_id, "member-from-session");
    assert_field(&resp.session_id, "member-session-1");

    ngx_http_stytch_tat_response_free(&resp);
}


void
test_response_error(void **state)
{
    ngx_http_stytch_tat_response_t  resp;

    static const char  body[] =
        "{\"status_code\":400,\"request_id\":\"r\","
        "\"error_type\":\"invalid_trusted_auth_token\","
        "\"error_message\":\"The token's aud claim does not match.\","
        "\"error_url\":\"https://stytch.com/docs/api/errors/400\"}";

    (void) state;

    assert_int_equal(parse(body, 400, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_ERROR);
    assert_field(&resp.error_type, "invalid_trusted_auth_token");
    assert_field(&resp.error_message, "The token's aud claim does not match.");
    assert_null(resp.session_jwt.data);

    ngx_http_stytch_tat_response_free(&resp);

    /* a session-shaped body with an error status is still an error */
    assert_int_equal(parse(CONSUMER, 500, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED);
    ngx_http_stytch_tat_response_free(&resp);
}


void
test_response_malformed(void **state)
{
    size_t                           i;
    ngx_http_stytch_tat_response_t   resp;

    static const struct {
        int          status;
        const char  *body;
        const char  *reason;
    } cases[] = {
        { 200, "", "empty body" },
        { 200, "not json", "not a JSON object" },
        { 200, "[1,2]", "not a JSON object" },
        { 200, "{\"user_id\":\"u\",\"user_id\":\"v\"}", "not a JSON object" },
        { 200, "{\"session_token\":\"t\"}", "no usable \"user_id\"" },
        { 200, "{\"user_id\":\"u\"}", "no session object" },
        /* a CR LF would split a header: such a string is no value */
        { 200, "{\"user_id\":\"u\\r\\nX-Stytch-User-Id: v\"}",
          "no usable \"user_id\"" },
        { 200, "{\"user_id\":\"u\",\"session_token\":\"t\\n\","
               "\"session\":{\"session_id\":\"s\"}}",
          "no usable \"session_token\"" },
        { 400, "{\"error_type\":\"x\\r\\nSet-Cookie: a=b\"}",
          "error answer without \"error_type\"" },
        { 200, "{\"user_id\":\"u\",\"session\":{}}", "no session id" },
        { 200, "{\"user_id\":\"u\",\"session\":{\"session_id\":\"s\"}}",
          "no usable \"session_token\"" },
        { 200, "{\"user_id\":\"u\",\"session_token\":\"t\","
               "\"session\":{\"session_id\":\"s\"}}",
          "no usable \"session_jwt\"" },
        { 200, "{\"user_id\":\"u\",\"session_token\":\"t\","
               "\"session_jwt\":\"" JWT_EXP "\","
               "\"session\":{\"session_id\":\"s\"}}",
          "no valid session \"expires_at\"" },
        { 200, "{\"user_id\":\"u\",\"session_token\":\"t\","
               "\"session_jwt\":\"a.eyJpYXQiOjF9.b\","
               "\"session\":{\"session_id\":\"s\","
               "\"expires_at\":\"2026-11-28T20:31:40Z\"}}",
          "a \"session_jwt\" without a readable \"exp\"" },
        { 200, "{\"user_id\":\"\",\"session_token\":\"t\"}",
          "no usable \"user_id\"" },
        { 429, "{\"status_code\":429}", "error answer without \"error_type\"" },
        { 502, "<html>bad gateway</html>", "not a JSON object" },
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(parse(cases[i].body, cases[i].status, &resp),
                         NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED);
        assert_string_equal(resp.reason, cases[i].reason);
        ngx_http_stytch_tat_response_free(&resp);
    }

    /* NULL bodies (no answer at all) too */
    assert_int_equal(ngx_http_stytch_tat_response_parse(NULL, 0, 200, &resp),
                     NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED);
}


void
test_response_rfc3339(void **state)
{
    (void) state;

    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("1970-01-01T00:00:00Z"),
                     0);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("2026-11-28T20:31:40Z"),
                     1795897900);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T20:31:40.999Z"),
        1795897900);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("2024-02-29T12:00:00z"),
                     1709208000);

    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339(NULL), -1);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339(""), -1);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("2026-13-01T00:00:00Z"),
                     -1);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("2026-11-28 20:31:40Z"),
                     -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T20:31:40+01:00"), -1);
    assert_int_equal(ngx_http_stytch_tat_parse_rfc3339("2026-11-28T20:31:40"),
                     -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T20:31:40Zjunk"), -1);

    /* what sscanf() would let through: signs, spaces, impossible dates */
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T-1:31:40Z"), -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T 1:31:40Z"), -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-02-31T00:00:00Z"), -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("2026-11-28T24:00:00Z"), -1);
    assert_int_equal(
        ngx_http_stytch_tat_parse_rfc3339("1969-12-31T23:59:59Z"), -1);
}


void
test_response_jwt_exp(void **state)
{
    size_t  i;

    /* payload lengths with every base64 remainder, and no padding */
    static const char  *good[] = {
        "h.eyJleHAiOjE3OTU4OTgwMDB9.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJiIn0.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImFiIjoiYyJ9.s",
    };

    static const char  *bad[] = {
        "", "no-dots", "one.dot", "h..s", "h.eyJleHAiOiJzb29uIn0.s",
        "h.eyJpYXQiOjF9.s", "h.!!!!.s", "h.e30.s"
    };

    (void) state;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(ngx_http_stytch_tat_jwt_exp(good[i], strlen(good[i])),
                         1795898000);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(ngx_http_stytch_tat_jwt_exp(bad[i], strlen(bad[i])),
                         -1);
    }
}


void
test_response_jwt_exp_strict(void **state)
{
    size_t  i;

    /* the url alphabet's own characters, "-" and "_" */
    static const char  *good[] = {
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJ-fn4ifQ.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiI_Pz8ifQ.s",
    };

    /*
     * The same payloads in base64's alphabet, with nonzero unused bits,
     * padded, with white space or one character too many: not base64url
     */
    static const char  *bad[] = {
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJ+fn4ifQ.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiI/Pz8ifQ.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJiIn1.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJiIn0=.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJ-fn4ifQ==.s",
        "h. eyJleHAiOjE3OTU4OTgwMDAsImEiOiJiIn0.s",
        "h.eyJleHAiOjE3OTU4OTgwMDAsImEiOiJiIn0\n.s",
        "h.eyJleHAiOjE3OTU4OTgwMDB9A.s",
    };

    (void) state;

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        assert_int_equal(ngx_http_stytch_tat_jwt_exp(good[i], strlen(good[i])),
                         1795898000);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ngx_http_stytch_tat_jwt_exp(bad[i], strlen(bad[i])) != -1) {
            fail_msg("exp read from \"%s\"", bad[i]);
        }
    }
}
