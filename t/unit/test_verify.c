/*
 * Stytch session JWT verification against tokens and a JWKS made by npm's
 * jose (fixtures/verify.json, written by fixtures/gen-verify.mjs): every
 * token gets the result the fixture names, the valid ones their sub,
 * session id and binding claim; the JWKS parser's bounds; exp and nbf at
 * the edges of the leeway.  Times come from the fixture, never the clock.
 *
 * Each test loads the fixture in its setup (test_verify_setup) and frees
 * it in its teardown: the runner's one group holds them all.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "unit.h"
#include "ngx_http_stytch_tat_verify.h"


/* make -C t/unit runs the tests in t/unit; from the top too */
static const char  *fixture_paths[] = {
    "fixtures/verify.json",
    "t/unit/fixtures/verify.json",
};


typedef struct {
    json_t                              *root;
    json_t                              *tokens;
    ngx_http_stytch_tat_verify_keys_t   *keys;
    ngx_http_stytch_tat_verify_params_t  params;
} verify_fixture_t;


static verify_fixture_t  fx;


static const char *
fx_string(json_t *obj, const char *name)
{
    const char  *s;

    s = json_string_value(json_object_get(obj, name));
    if (s == NULL) {
        fail_msg("fixture: no string \"%s\"", name);
    }

    return s;
}


static long long
fx_integer(json_t *obj, const char *name)
{
    json_t  *v;

    v = json_object_get(obj, name);
    if (!json_is_integer(v)) {
        fail_msg("fixture: no integer \"%s\"", name);
    }

    return json_integer_value(v);
}


static const char *
fx_token(const char *name)
{
    json_t  *t;

    t = json_object_get(fx.tokens, name);
    if (t == NULL) {
        fail_msg("fixture: no token \"%s\"", name);
    }

    return fx_string(t, "token");
}


/* the JSON text of a member of the fixture (a JWKS), to free() */
static char *
fx_dump(const char *name)
{
    char  *s;

    s = json_dumps(json_object_get(fx.root, name), JSON_COMPACT);
    assert_non_null(s);

    return s;
}


int
test_verify_setup(void **state)
{
    size_t        i;
    char         *jwks;
    const char   *reason;
    json_error_t  err;

    (void) state;

    for (i = 0; i < sizeof(fixture_paths) / sizeof(fixture_paths[0]); i++) {
        if (access(fixture_paths[i], R_OK) == 0) {
            break;
        }
    }

    if (i == sizeof(fixture_paths) / sizeof(fixture_paths[0])) {
        fprintf(stderr, "test_verify: fixtures/verify.json not found; run "
                        "from t/unit (make -C t/unit run)\n");
        return -1;
    }

    fx.root = json_load_file(fixture_paths[i], 0, &err);
    if (fx.root == NULL) {
        fprintf(stderr, "test_verify: %s:%d: %s\n", fixture_paths[i],
                err.line, err.text);
        return -1;
    }

    fx.tokens = json_object_get(fx.root, "tokens");

    fx.params.project_id = json_string_value(json_object_get(fx.root,
                                                             "project_id"));
    fx.params.claim = json_string_value(json_object_get(fx.root, "claim"));
    fx.params.expected.data = json_string_value(json_object_get(fx.root,
                                                                "binding"));

    if (!json_is_object(fx.tokens) || fx.params.project_id == NULL
        || fx.params.claim == NULL || fx.params.expected.data == NULL)
    {
        fprintf(stderr, "test_verify: the fixture lacks members\n");
        return -1;
    }

    fx.params.project_id_len = strlen(fx.params.project_id);
    fx.params.claim_len = strlen(fx.params.claim);
    fx.params.expected.len = strlen(fx.params.expected.data);
    fx.params.now = json_integer_value(json_object_get(fx.root, "now"));
    fx.params.leeway = json_integer_value(json_object_get(fx.root,
                                                          "leeway"));
    fx.params.skew = json_integer_value(json_object_get(fx.root, "skew"));
    fx.params.max_lifetime = json_integer_value(json_object_get(fx.root,
                                                         "max_lifetime"));

    jwks = json_dumps(json_object_get(fx.root, "jwks"), JSON_COMPACT);

    if (jwks == NULL
        || ngx_http_stytch_tat_verify_keys_parse((unsigned char *) jwks,
                                                 strlen(jwks), &fx.keys,
                                                 &reason)
           != 0)
    {
        fprintf(stderr, "test_verify: the fixture's JWKS is refused\n");
        free(jwks);
        return -1;
    }

    free(jwks);

    return 0;
}


int
test_verify_teardown(void **state)
{
    (void) state;

    ngx_http_stytch_tat_verify_keys_free(fx.keys);
    json_decref(fx.root);
    memset(&fx, 0, sizeof(fx));

    return 0;
}


static int
run(const char *token, const ngx_http_stytch_tat_verify_params_t *params,
    ngx_http_stytch_tat_verify_result_t *res)
{
    int             rc;
    size_t          len;
    unsigned char  *copy;

    /* an exact-size copy without a NUL: ASan sees any read past its end */
    len = strlen(token);
    copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, token, len);

    rc = ngx_http_stytch_tat_verify(fx.keys, params, (char *) copy, len, res);

    free(copy);

    assert_non_null(res->reason);
    assert_true(res->reason[0] != '\0');

    return rc;
}


static void
assert_out(const char *name, const char *what,
    const ngx_http_stytch_tat_field_t *f, json_t *want)
{
    if (want == NULL) {
        return;
    }

    if (f->data == NULL || f->len != json_string_length(want)
        || memcmp(f->data, json_string_value(want), f->len) != 0
        || f->data[f->len] != '\0')
    {
        fail_msg("token %s: %s is \"%.*s\", not \"%s\"", name, what,
                 f->data ? (int) f->len : 6, f->data ? f->data : "(null)",
                 json_string_value(want));
    }
}


static void
assert_time(const char *name, const char *what, long long got, json_t *want)
{
    if (want != NULL && got != json_integer_value(want)) {
        fail_msg("token %s: %s is %lld, not %lld", name, what, got,
                 (long long) json_integer_value(want));
    }
}


/* each fixture token gets the result it names, and its outputs */
void
test_verify_fixture_tokens(void **state)
{
    int                                   rc, n;
    json_t                               *t;
    const char                           *name, *expect;
    ngx_http_stytch_tat_verify_result_t   res;

    (void) state;

    n = 0;

    json_object_foreach(fx.tokens, name, t) {
        expect = fx_string(t, "expect");

        rc = run(fx_string(t, "token"), &fx.params, &res);

        if (strcmp(ngx_http_stytch_tat_verify_code_name(rc), expect) != 0) {
            fail_msg("token %s: %s (%s), expected %s", name,
                     ngx_http_stytch_tat_verify_code_name(rc), res.reason,
                     expect);
        }

        if (rc == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
            assert_non_null(res.sub.data);
            assert_non_null(res.session_id.data);
            assert_string_equal(res.reason, "ok");
            assert_true(res.exp > fx.params.now);
        }

        assert_out(name, "sub", &res.sub, json_object_get(t, "sub"));
        assert_out(name, "session id", &res.session_id,
                   json_object_get(t, "session_id"));
        assert_out(name, "organization id", &res.organization_id,
                   json_object_get(t, "organization_id"));
        assert_out(name, "claim", &res.claim, json_object_get(t, "claim"));
        assert_time(name, "exp", res.exp, json_object_get(t, "exp"));
        assert_time(name, "nbf", res.nbf, json_object_get(t, "nbf"));
        assert_time(name, "iat", res.iat, json_object_get(t, "iat"));

        if (json_object_get(t, "kid") != NULL) {
            assert_int_equal(res.kid_len, strlen(fx_string(t, "kid")));
            assert_string_equal(res.kid, fx_string(t, "kid"));
        }

        ngx_http_stytch_tat_verify_result_free(&res);
        assert_null(res.mem);
        assert_null(res.sub.data);

        /* twice is harmless */
        ngx_http_stytch_tat_verify_result_free(&res);

        n++;
    }

    assert_true(n >= 60);
}


void
test_verify_outputs(void **state)
{
    ngx_http_stytch_tat_verify_result_t  res;

    (void) state;

    /* a consumer token: no organization */
    assert_int_equal(run(fx_token("valid"), &fx.params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    assert_null(res.organization_id.data);
    assert_int_equal(res.organization_id.len, 0);
    assert_int_equal(res.claim.len, fx.params.expected.len);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* rejected before the signature: nothing but the kid comes out */
    assert_int_equal(run(fx_token("unknown_kid"), &fx.params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID);
    assert_null(res.mem);
    assert_null(res.sub.data);
    assert_int_equal(res.exp, 0);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(run(fx_token("wrong_signature_other_key"), &fx.params,
                         &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_SIGNATURE);
    assert_null(res.sub.data);
    assert_int_equal(res.exp, 0);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(run(fx_token("alg_none"), &fx.params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ALG);
    assert_int_equal(res.kid_len, 0);
    ngx_http_stytch_tat_verify_result_free(&res);
}


/* without an expected value the binding claim is only copied out */
void
test_verify_binding_optional(void **state)
{
    ngx_http_stytch_tat_verify_params_t  params;
    ngx_http_stytch_tat_verify_result_t  res;

    (void) state;

    params = fx.params;
    params.expected.data = NULL;
    params.expected.len = 0;

    assert_int_equal(run(fx_token("binding_missing"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    assert_null(res.claim.data);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(run(fx_token("binding_wrong"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    assert_string_equal(res.claim.data, "sha256:someone-else");
    ngx_http_stytch_tat_verify_result_free(&res);

    /* not a string: its compact JSON */
    assert_int_equal(run(fx_token("binding_not_string"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    assert_true(res.claim.len > 0 && res.claim.data[0] == '{');
    ngx_http_stytch_tat_verify_result_free(&res);

    /* no claim asked for at all */
    params.claim = NULL;
    params.claim_len = 0;

    assert_int_equal(run(fx_token("valid"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    assert_null(res.claim.data);
    assert_non_null(res.sub.data);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* a claim name that is a prefix of the real one is another claim */
    params = fx.params;
    params.claim_len--;

    assert_int_equal(run(fx_token("valid"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_BINDING);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* an expected value one byte short does not match either */
    params = fx.params;
    params.expected.len--;

    assert_int_equal(run(fx_token("valid"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_BINDING);
    ngx_http_stytch_tat_verify_result_free(&res);
}


/* exp and nbf at the edges of the leeway; valid: nbf = iat, exp = iat+300 */
void
test_verify_times(void **state)
{
    long long                            exp, nbf;
    ngx_http_stytch_tat_verify_params_t  params;
    ngx_http_stytch_tat_verify_result_t  res;

    (void) state;

    exp = fx_integer(json_object_get(fx.tokens, "valid"), "exp");
    nbf = fx_integer(json_object_get(fx.tokens, "valid"), "nbf");

    params = fx.params;

    static const struct {
        int        base_exp;   /* relative to exp, else to nbf */
        long long  delta;
        long long  leeway;
        int        rc;
    } cases[] = {
        { 1, -1, 30, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 1, 29, 30, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 1, 30, 30, NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED },
        { 1, 0, 0, NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED },
        { 1, -1, 0, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 1, 0, -5, NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED },   /* as 0 */
        { 1, 299, 100000, NGX_HTTP_STYTCH_TAT_VERIFY_OK },  /* as 300 */
        { 1, 300, 100000, NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED },
        { 1, 86400 * 365, 30, NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED },
        { 0, 0, 0, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 0, -1, 0, NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID },
        { 0, -30, 30, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 0, -31, 30, NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID },
        { 0, -300, 100000, NGX_HTTP_STYTCH_TAT_VERIFY_OK },
        { 0, -301, 100000, NGX_HTTP_STYTCH_TAT_VERIFY_NOT_YET_VALID },
    };

    size_t  i;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        params.now = (cases[i].base_exp ? exp : nbf) + cases[i].delta;
        params.leeway = cases[i].leeway;
        /* nbf (= iat) against the skew, exp against the leeway */
        params.skew = cases[i].leeway;

        if (run(fx_token("valid"), &params, &res) != cases[i].rc) {
            fail_msg("case %zu: now %lld, leeway %lld: %s", i, params.now,
                     params.leeway, res.reason);
        }

        ngx_http_stytch_tat_verify_result_free(&res);
    }

    /* a token without nbf is valid from its iat, less the skew */
    params.now = nbf - NGX_HTTP_STYTCH_TAT_VERIFY_SKEW;
    params.skew = NGX_HTTP_STYTCH_TAT_VERIFY_SKEW;
    params.leeway = NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY;
    assert_int_equal(run(fx_token("no_nbf"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    ngx_http_stytch_tat_verify_result_free(&res);
}


void
test_verify_other_project(void **state)
{
    ngx_http_stytch_tat_verify_params_t  params;
    ngx_http_stytch_tat_verify_result_t  res;

    (void) state;

    params = fx.params;

    /* one byte less: the iss no longer matches, nor would the aud */
    params.project_id_len--;
    assert_int_equal(run(fx_token("valid"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ISS);
    ngx_http_stytch_tat_verify_result_free(&res);

    params.project_id = "project-test-other";
    params.project_id_len = strlen(params.project_id);
    assert_int_equal(run(fx_token("valid"), &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ISS);
    ngx_http_stytch_tat_verify_result_free(&res);
}


void
test_verify_params(void **state)
{
    const char                           *token;
    ngx_http_stytch_tat_verify_params_t   params;
    ngx_http_stytch_tat_verify_result_t   res;

    (void) state;

    token = fx_token("valid");

    assert_int_equal(ngx_http_stytch_tat_verify(fx.keys, NULL, token,
                                                strlen(token), &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    params = fx.params;
    params.project_id_len = 0;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    params = fx.params;
    params.now = -1;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    params.now = 0x7fffffffffffffffLL;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* no bound on exp - iat, or one past 2^31 */
    params = fx.params;
    params.max_lifetime = 0;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    params.max_lifetime = (1LL << 31) + 1;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* an expected binding without a claim to compare it with */
    params = fx.params;
    params.claim = NULL;
    assert_int_equal(run(token, &params, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params, NULL, 0,
                                                &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params, NULL, 5,
                                                &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_ERROR);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* no JWKS yet: every kid is unknown, so the caller fetches one */
    assert_int_equal(ngx_http_stytch_tat_verify(NULL, &fx.params, token,
                                                strlen(token), &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID);
    assert_true(res.kid_len > 0);
    ngx_http_stytch_tat_verify_result_free(&res);
}


void
test_verify_size(void **state)
{
    char                                 *buf;
    size_t                                len;
    const char                           *token;
    ngx_http_stytch_tat_verify_result_t   res;

    (void) state;

    buf = malloc(NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX + 1);
    assert_non_null(buf);

    /* the bound is on the length alone, before anything is read */
    memset(buf, 'a', NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX + 1);

    assert_int_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params, buf,
                         NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX + 1, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG);
    ngx_http_stytch_tat_verify_result_free(&res);

    assert_int_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params, buf,
                         NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX, &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_MALFORMED);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* the oversized token's first 8192 bytes are no token either */
    token = fx_token("oversized");
    assert_true(strlen(token) > NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX);
    memcpy(buf, token, NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX);
    assert_int_not_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params, buf,
                             NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX, &res),
                         NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    ngx_http_stytch_tat_verify_result_free(&res);

    free(buf);

    /* no prefix of a valid token verifies, and none is read past its end */
    token = fx_token("valid");

    for (len = 0; len < strlen(token); len++) {
        buf = malloc(len + 1);
        assert_non_null(buf);
        memcpy(buf, token, len);

        assert_int_not_equal(ngx_http_stytch_tat_verify(fx.keys, &fx.params,
                                                        buf, len, &res),
                             NGX_HTTP_STYTCH_TAT_VERIFY_OK);
        ngx_http_stytch_tat_verify_result_free(&res);
        free(buf);
    }
}


/* any byte of a valid token changed to another base64url one: refused */
void
test_verify_every_byte(void **state)
{
    int                                   rc;
    char                                 *buf;
    size_t                                i, len;
    const char                           *token;
    ngx_http_stytch_tat_verify_result_t   res;

    (void) state;

    token = fx_token("valid");
    len = strlen(token);

    buf = malloc(len);
    assert_non_null(buf);

    for (i = 0; i < len; i++) {
        memcpy(buf, token, len);

        if (buf[i] == '.') {
            buf[i] = 'A';

        } else {
            buf[i] = (buf[i] == 'A') ? 'Q' : 'A';
        }

        rc = ngx_http_stytch_tat_verify(fx.keys, &fx.params, buf, len, &res);

        if (rc == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
            fail_msg("byte %zu changed: still verifies", i);
        }

        ngx_http_stytch_tat_verify_result_free(&res);
    }

    free(buf);
}


static int
keys_parse(const char *json, ngx_http_stytch_tat_verify_keys_t **keys,
    const char **reason)
{
    int             rc;
    size_t          len;
    unsigned char  *copy;

    len = strlen(json);
    copy = malloc(len + 1);
    assert_non_null(copy);
    memcpy(copy, json, len);

    rc = ngx_http_stytch_tat_verify_keys_parse(copy, len, keys, reason);

    free(copy);

    return rc;
}


void
test_verify_jwks(void **state)
{
    char                               *jwks;
    const char                         *reason;
    ngx_http_stytch_tat_verify_keys_t  *keys;
    ngx_http_stytch_tat_verify_result_t  res;

    (void) state;

    /* Stytch's keys kept, the EC, RS512 and encryption keys skipped */
    assert_int_equal(ngx_http_stytch_tat_verify_keys_count(fx.keys),
                     fx_integer(fx.root, "jwks_usable"));
    assert_int_equal(ngx_http_stytch_tat_verify_keys_skipped(fx.keys),
                     fx_integer(fx.root, "jwks_skipped"));

    jwks = fx_dump("jwks");
    assert_int_equal(keys_parse(jwks, &keys, &reason), 0);
    assert_string_equal(reason, "a key that is not RSA");
    ngx_http_stytch_tat_verify_keys_free(keys);
    free(jwks);

    /* a 1024-bit key is refused: alone, the document is */
    jwks = fx_dump("jwks_small");
    keys = (void *) 1;
    assert_int_equal(keys_parse(jwks, &keys, &reason), -1);
    assert_null(keys);
    assert_non_null(strstr(reason, "under 2048"));
    free(jwks);

    /* next to a good key, only the small one is skipped */
    jwks = fx_dump("jwks_mixed");
    assert_int_equal(keys_parse(jwks, &keys, &reason), 0);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_count(keys), 1);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_skipped(keys), 1);
    assert_non_null(strstr(reason, "under 2048"));

    assert_int_equal(ngx_http_stytch_tat_verify(keys, &fx.params,
                         fx_token("valid"), strlen(fx_token("valid")), &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_OK);
    ngx_http_stytch_tat_verify_result_free(&res);

    /* the second key's token: its kid is not in this set */
    assert_int_equal(ngx_http_stytch_tat_verify(keys, &fx.params,
                         fx_token("valid_second_key"),
                         strlen(fx_token("valid_second_key")), &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID);
    ngx_http_stytch_tat_verify_result_free(&res);

    ngx_http_stytch_tat_verify_keys_free(keys);
    free(jwks);

    ngx_http_stytch_tat_verify_keys_free(NULL);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_count(NULL), 0);
}


/* the fixture's first key, with members replaced: as a one-key JWKS */
static char *
jwks_with(const char *name, json_t *value, const char *name2, json_t *value2)
{
    char    *s;
    json_t  *jwk, *doc;

    jwk = json_deep_copy(json_array_get(json_object_get(
              json_object_get(fx.root, "jwks"), "keys"), 0));
    assert_non_null(jwk);

    if (name != NULL) {
        if (value == NULL) {
            json_object_del(jwk, name);

        } else {
            json_object_set_new(jwk, name, value);
        }
    }

    if (name2 != NULL) {
        if (value2 == NULL) {
            json_object_del(jwk, name2);

        } else {
            json_object_set_new(jwk, name2, value2);
        }
    }

    doc = json_pack("{s:[o]}", "keys", jwk);
    assert_non_null(doc);

    s = json_dumps(doc, JSON_COMPACT);
    assert_non_null(s);
    json_decref(doc);

    return s;
}


static void
expect_refused(char *jwks, const char *why)
{
    const char                         *reason;
    ngx_http_stytch_tat_verify_keys_t  *keys;

    if (keys_parse(jwks, &keys, &reason) != -1) {
        fail_msg("accepted: %.200s", jwks);
    }

    assert_null(keys);
    assert_non_null(reason);

    if (strstr(reason, why) == NULL) {
        fail_msg("refused for \"%s\", not \"%s\": %.200s", reason, why,
                 jwks);
    }

    free(jwks);
}


void
test_verify_jwks_refused(void **state)
{
    int                                   i;
    long                                  len;
    char                                 *s, *big, kid[32];
    json_t                               *doc, *arr, *jwk;
    unsigned char                        *raw;
    const char                           *n, *reason, *token;
    ngx_http_stytch_tat_verify_keys_t    *keys;
    ngx_http_stytch_tat_verify_result_t   res;

    (void) state;

    assert_int_equal(ngx_http_stytch_tat_verify_keys_parse(NULL, 0, &keys,
                                                           &reason), -1);
    expect_refused(strdup(""), "empty");
    expect_refused(strdup("not json"), "\"keys\" array");
    expect_refused(strdup("[]"), "\"keys\" array");
    expect_refused(strdup("{\"keys\":{}}"), "\"keys\" array");
    expect_refused(strdup("{\"keys\":[]}"), "without keys");
    expect_refused(strdup("{\"keys\":[],\"keys\":[]}"), "\"keys\" array");
    expect_refused(strdup("{\"keys\":[1,\"a\",null]}"), "not a JSON object");

    /* the members of one key */
    expect_refused(jwks_with("kty", json_string("EC"), NULL, NULL),
                   "not RSA");
    expect_refused(jwks_with("kty", NULL, NULL, NULL), "not RSA");
    expect_refused(jwks_with("alg", json_string("RS384"), NULL, NULL),
                   "not for RS256");
    expect_refused(jwks_with("alg", json_null(), NULL, NULL),
                   "not for RS256");
    expect_refused(jwks_with("use", json_string("enc"), NULL, NULL),
                   "not for RS256");
    expect_refused(jwks_with("kid", NULL, NULL, NULL), "without a kid");
    expect_refused(jwks_with("kid", json_string(""), NULL, NULL),
                   "without a kid");
    expect_refused(jwks_with("kid", json_integer(1), NULL, NULL),
                   "without a kid");

    big = malloc(NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX + 2);
    assert_non_null(big);
    memset(big, 'k', NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX + 1);
    big[NGX_HTTP_STYTCH_TAT_VERIFY_KID_MAX + 1] = '\0';
    expect_refused(jwks_with("kid", json_string(big), NULL, NULL),
                   "over 128");
    free(big);

    expect_refused(jwks_with("e", json_string("AQ"), NULL, NULL),
                   "exponent");                                 /* 1 */
    expect_refused(jwks_with("e", json_string("AQAA"), NULL, NULL),
                   "exponent");                                 /* even */
    expect_refused(jwks_with("e", json_string("AQAAAAAAAAAB"), NULL, NULL),
                   "exponent");                                 /* 72 bits */
    expect_refused(jwks_with("e", json_string("AQAB="), NULL, NULL),
                   "base64url");
    expect_refused(jwks_with("e", json_string(""), NULL, NULL), "base64url");
    expect_refused(jwks_with("e", NULL, NULL, NULL), "base64url");
    expect_refused(jwks_with("n", json_integer(3), NULL, NULL), "base64url");

    /* n in the standard alphabet, or with a character too many */
    n = json_string_value(json_object_get(json_array_get(json_object_get(
            json_object_get(fx.root, "jwks"), "keys"), 0), "n"));
    assert_non_null(n);

    s = strdup(n);
    assert_non_null(s);
    for (i = 0; s[i]; i++) {
        s[i] = (s[i] == '-') ? '+' : (s[i] == '_') ? '/' : s[i];
    }
    if (strcmp(s, n) != 0) {
        expect_refused(jwks_with("n", json_string(s), NULL, NULL),
                       "base64url");
    }
    free(s);

    /* 2048 bits less one byte */
    raw = malloc(1024);
    s = malloc(ngx_http_stytch_tat_b64url_len(1024));
    assert_non_null(raw);
    assert_non_null(s);
    len = b64url_decode(raw, 1024, n);
    assert_int_equal(len, 256);
    ngx_http_stytch_tat_b64url_encode((unsigned char *) s, raw + 1, 255);
    expect_refused(jwks_with("n", json_string(s), NULL, NULL), "under 2048");
    free(raw);
    free(s);

    /* 1367 characters, the last with 2 unused zero bits: 8200 bits */
    big = malloc(1367 + 1);
    assert_non_null(big);
    memset(big, 'w', 1367);
    big[1367] = '\0';
    expect_refused(jwks_with("n", json_string(big), NULL, NULL),
                   "over 8192");
    free(big);

    /*
     * A second key under the same kid is skipped and makes the kid
     * ambiguous, as for jose: the tokens naming it are refused.
     */
    s = fx_dump("jwks");
    doc = json_loads(s, 0, NULL);
    free(s);
    assert_non_null(doc);
    arr = json_object_get(doc, "keys");
    json_object_set(json_array_get(arr, 1), "kid",
                    json_object_get(json_array_get(arr, 0), "kid"));
    s = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(keys_parse(s, &keys, &reason), 0);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_count(keys), 2);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_skipped(keys), 6);
    assert_string_equal(reason, "two keys with one kid");
    token = fx_token("valid");
    assert_int_equal(ngx_http_stytch_tat_verify(keys, &fx.params, token,
                                                strlen(token), &res),
                     NGX_HTTP_STYTCH_TAT_VERIFY_KID_AMBIGUOUS);
    ngx_http_stytch_tat_verify_result_free(&res);
    ngx_http_stytch_tat_verify_keys_free(keys);
    free(s);

    /* 16 keys are accepted, 17 are not */
    jwk = json_incref(json_array_get(arr, 0));
    json_array_clear(arr);

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX; i++) {
        snprintf(kid, sizeof(kid), "kid-%d", i);
        json_object_set_new(jwk, "kid", json_string(kid));
        json_array_append_new(arr, json_deep_copy(jwk));
    }

    s = json_dumps(doc, JSON_COMPACT);
    assert_int_equal(keys_parse(s, &keys, &reason), 0);
    assert_int_equal(ngx_http_stytch_tat_verify_keys_count(keys),
                     NGX_HTTP_STYTCH_TAT_VERIFY_KEYS_MAX);
    assert_null(reason);
    ngx_http_stytch_tat_verify_keys_free(keys);
    free(s);

    json_array_append_new(arr, json_deep_copy(jwk));
    s = json_dumps(doc, JSON_COMPACT);
    expect_refused(s, "more than 16");

    json_decref(jwk);
    json_decref(doc);

    /* a document over 64 KB, whatever it holds */
    big = malloc(NGX_HTTP_STYTCH_TAT_VERIFY_JWKS_MAX + 2);
    assert_non_null(big);
    memset(big, ' ', NGX_HTTP_STYTCH_TAT_VERIFY_JWKS_MAX + 1);
    memcpy(big, "{\"keys\":[]}", 11);
    big[NGX_HTTP_STYTCH_TAT_VERIFY_JWKS_MAX + 1] = '\0';
    expect_refused(big, "over 64 KB");
}


void
test_verify_code_names(void **state)
{
    int          i, j;
    const char  *a;

    (void) state;

    assert_string_equal(ngx_http_stytch_tat_verify_code_name(
                            NGX_HTTP_STYTCH_TAT_VERIFY_OK), "ok");
    assert_string_equal(ngx_http_stytch_tat_verify_code_name(
                            NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID),
                        "unknown_kid");
    assert_string_equal(ngx_http_stytch_tat_verify_code_name(
                            NGX_HTTP_STYTCH_TAT_VERIFY_BINDING), "binding");
    assert_string_equal(ngx_http_stytch_tat_verify_code_name(
                            NGX_HTTP_STYTCH_TAT_VERIFY_ERROR), "error");
    assert_string_equal(ngx_http_stytch_tat_verify_code_name(-1), "unknown");
    assert_string_equal(ngx_http_stytch_tat_verify_code_name(
                            NGX_HTTP_STYTCH_TAT_VERIFY_NCODES), "unknown");

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_VERIFY_NCODES; i++) {
        a = ngx_http_stytch_tat_verify_code_name(i);
        assert_string_not_equal(a, "unknown");

        for (j = 0; j < i; j++) {
            assert_string_not_equal(a, ngx_http_stytch_tat_verify_code_name(j));
        }
    }
}


/*
 * The jose-made tokens also verify with OpenSSL alone, from the JWK's n
 * and e: the fixture is what it says, whatever the module does.
 */
void
test_verify_fixture_independent(void **state)
{
    long            n;
    json_t         *jwk;
    EVP_PKEY       *pkey;
    const char     *token, *dot;
    unsigned char   sig[1024];

    (void) state;

    jwk = json_array_get(json_object_get(json_object_get(fx.root, "jwks"),
                                         "keys"), 0);
    pkey = rsa_public_from_b64url(fx_string(jwk, "n"), fx_string(jwk, "e"));

    token = fx_token("valid");
    dot = strrchr(token, '.');
    n = b64url_decode(sig, sizeof(sig), dot + 1);
    assert_int_equal(n, 256);
    assert_true(verify(pkey, EVP_sha256(), (const unsigned char *) token,
                       (size_t) (dot - token), sig, (size_t) n));

    /* the non-canonical signature decodes to the same bytes elsewhere */
    token = fx_token("b64_nonzero_unused_bits");
    dot = strrchr(token, '.');
    assert_int_equal(b64url_decode(sig, sizeof(sig), dot + 1), -1);

    EVP_PKEY_free(pkey);
}

