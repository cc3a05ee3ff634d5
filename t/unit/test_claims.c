/*
 * The claims set: exact JSON output, list splitting, and what is refused.
 */

#include <stdlib.h>
#include <string.h>

#include "unit.h"


#define S(name, value)                                                       \
    { name, (const unsigned char *) value, sizeof(value) - 1, 0,             \
      NGX_HTTP_STYTCH_TAT_CLAIM_STRING, 0 }

#define L(name, value, sep)                                                  \
    { name, (const unsigned char *) value, sizeof(value) - 1, 0,             \
      NGX_HTTP_STYTCH_TAT_CLAIM_LIST, sep }

#define N(name, value)                                                       \
    { name, NULL, 0, value, NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER, 0 }

#define NCLAIMS(a)  (sizeof(a) / sizeof(a[0]))


/* builds the JSON into a guarded buffer of PAYLOAD_MAX bytes */
static int
claims_json(const ngx_http_stytch_tat_claim_t *claims, size_t n,
    char *out, size_t *bad)
{
    int             rc;
    size_t          len;
    unsigned char  *buf;

    buf = guarded_alloc(NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);

    len = (size_t) -1;
    *bad = (size_t) -1;

    rc = ngx_http_stytch_tat_claims_json(claims, n, buf,
                                         NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX,
                                         &len, bad);

    guarded_check(buf, NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);

    if (rc == NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        assert_uint_in_range(len, 2, NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);
        memcpy(out, buf, len);
        out[len] = '\0';

        /* the output is not NUL-terminated and need not be */
        assert_null(memchr(buf, '\0', len));

    } else {
        /* *len is left alone on failure */
        assert_int_equal(len, (size_t) -1);
    }

    free(buf);

    return rc;
}


static void
expect_json(const ngx_http_stytch_tat_claim_t *claims, size_t n,
    const char *expect)
{
    char    out[NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX + 1];
    size_t  bad;

    assert_int_equal(claims_json(claims, n, out, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_string_equal(out, expect);
}


static void
expect_error(const ngx_http_stytch_tat_claim_t *claims, size_t n, int rc,
    size_t bad_index)
{
    char    out[NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX + 1];
    size_t  bad;

    assert_int_equal(claims_json(claims, n, out, &bad), rc);
    assert_int_equal(bad, bad_index);
}


void
test_claims_seed_example(void **state)
{
    ngx_http_stytch_tat_claim_t  claims[] = {
        S("iss", "https://auth.example.com"),
        S("aud", "https://api.example.com"),
        S("sub", "user_123456"),
        S("email", "ada.lovelace@example.com"),
        S("jti", "3q2-7wAAAAAAAAAAAAAAAA"),
        N("iat", 1700000000),
        N("nbf", 1700000000),
        N("exp", 1700000300),
        L("assignments", "editor,reader", ','),
    };

    (void) state;

    expect_json(claims, NCLAIMS(claims),
        "{\"iss\":\"https://auth.example.com\","
        "\"aud\":\"https://api.example.com\","
        "\"sub\":\"user_123456\","
        "\"email\":\"ada.lovelace@example.com\","
        "\"jti\":\"3q2-7wAAAAAAAAAAAAAAAA\","
        "\"iat\":1700000000,"
        "\"nbf\":1700000000,"
        "\"exp\":1700000300,"
        "\"assignments\":[\"editor\",\"reader\"]}");
}


void
test_claims_escaping(void **state)
{
    ngx_http_stytch_tat_claim_t  name[] = {
        S("name", "Zo\xc3\xab \"x\" \\"),
    };
    ngx_http_stytch_tat_claim_t  many[] = {
        S("a", "/path?q=1&r=<b>"),
        S("b", "\xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5"),
        L("c", "\"q\",\\", ','),
    };
    ngx_http_stytch_tat_claim_t  key[] = {
        S("we\"ird", "v"),
    };

    (void) state;

    /* UTF-8 stays as it is; quote and backslash are escaped */
    expect_json(name, 1, "{\"name\":\"Zo\xc3\xab \\\"x\\\" \\\\\"}");

    expect_json(many, NCLAIMS(many),
        "{\"a\":\"/path?q=1&r=<b>\","
        "\"b\":\"\xe2\x82\xac \xf0\x9f\x98\x80 \xe6\x97\xa5\","
        "\"c\":[\"\\\"q\\\"\",\"\\\\\"]}");

    expect_json(key, 1, "{\"we\\\"ird\":\"v\"}");
}


void
test_claims_lists(void **state)
{
    ngx_http_stytch_tat_claim_t  spaced[] = {
        L("l", "a, b,,c,", ','),
    };
    ngx_http_stytch_tat_claim_t  empty[] = {
        L("l", "", ','),
    };
    ngx_http_stytch_tat_claim_t  blanks[] = {
        L("l", " , ,, ", ','),
    };
    ngx_http_stytch_tat_claim_t  inner[] = {
        L("l", "  two words ,x y", ','),
    };
    ngx_http_stytch_tat_claim_t  other_sep[] = {
        L("l", "a b  c", ' '),
        L("m", "x|y,z|", '|'),
    };
    ngx_http_stytch_tat_claim_t  single[] = {
        L("l", "only", ','),
    };
    ngx_http_stytch_tat_claim_t  dup[] = {
        L("l", "a,a", ','),
    };

    (void) state;

    expect_json(spaced, 1, "{\"l\":[\"a\",\"b\",\"c\"]}");
    expect_json(empty, 1, "{\"l\":[]}");
    expect_json(blanks, 1, "{\"l\":[]}");
    expect_json(inner, 1, "{\"l\":[\"two words\",\"x y\"]}");
    expect_json(other_sep, 2, "{\"l\":[\"a\",\"b\",\"c\"],\"m\":[\"x\",\"y,z\"]}");
    expect_json(single, 1, "{\"l\":[\"only\"]}");
    expect_json(dup, 1, "{\"l\":[\"a\",\"a\"]}");
}


void
test_claims_empty_omitted(void **state)
{
    ngx_http_stytch_tat_claim_t  claims[] = {
        S("iss", ""),
        S("sub", "u"),
        { "aud", NULL, 0, 0, NGX_HTTP_STYTCH_TAT_CLAIM_STRING, 0 },
        S("email", "e@x"),
        S("last", ""),
    };
    ngx_http_stytch_tat_claim_t  none[] = {
        S("iss", ""),
    };

    (void) state;

    expect_json(claims, NCLAIMS(claims), "{\"sub\":\"u\",\"email\":\"e@x\"}");
    expect_json(none, 1, "{}");
    expect_json(none, 0, "{}");
}


/*
 * A list claim with no data at all (data NULL, len 0), as the module
 * passes for unset string claims: memchr(NULL, ...) and NULL + 0 are
 * undefined behaviour, reported by UBSan (make run SANITIZE=1).
 */

static int
list_null_data(void *data)
{
    int                           rc;
    size_t                        len, bad;
    unsigned char                 buf[64];
    ngx_http_stytch_tat_claim_t   claims[] = {
        { "l", NULL, 0, 0, NGX_HTTP_STYTCH_TAT_CLAIM_LIST, ',' },
    };

    (void) data;

    rc = ngx_http_stytch_tat_claims_json(claims, 1, buf, sizeof(buf), &len,
                                         &bad);

    if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        return 1;
    }

    if (len != 8 || memcmp(buf, "{\"l\":[]}", 8) != 0) {
        return 2;
    }

    return 0;
}


void
test_claims_list_null_data(void **state)
{
    char  why[128];

    (void) state;

    if (in_child(list_null_data, NULL, why, sizeof(why)) != 0) {
        fail_msg("a list claim with data NULL and len 0: %s", why);
    }
}


void
test_claims_numbers(void **state)
{
    ngx_http_stytch_tat_claim_t  claims[] = {
        N("zero", 0),
        N("neg", -1),
        N("y2100", 4102444800LL),
        N("max", 9223372036854775807LL),
    };

    (void) state;

    expect_json(claims, NCLAIMS(claims),
        "{\"zero\":0,\"neg\":-1,\"y2100\":4102444800,"
        "\"max\":9223372036854775807}");
}


void
test_claims_control(void **state)
{
    size_t  i;

    static const char  *bad[] = {
        "a\rb", "a\nb", "\r\n", "tab\there", "del\x7f", "\x1b[31m", "\x01",
    };

    ngx_http_stytch_tat_claim_t  claims[3] = {
        S("sub", "fine"),
        S("email", "fine@example.com"),
        S("x", ""),
    };

    ngx_http_stytch_tat_claim_t  nul[] = {
        S("sub", "fine"),
        { "x", (const unsigned char *) "a\0b", 3, 0,
          NGX_HTTP_STYTCH_TAT_CLAIM_STRING, 0 },
    };
    ngx_http_stytch_tat_claim_t  list_nul[] = {
        { "x", (const unsigned char *) "a,b\0,c", 6, 0,
          NGX_HTTP_STYTCH_TAT_CLAIM_LIST, ',' },
    };
    ngx_http_stytch_tat_claim_t  list_lf[] = {
        S("a", "ok"),
        N("n", 1),
        L("x", "a,b\nc,d", ','),
    };
    ngx_http_stytch_tat_claim_t  list_tab[] = {
        L("x", "a,b\tc", ','),
    };
    ngx_http_stytch_tat_claim_t  list_cr_item[] = {
        L("x", "a,\r,b", ','),
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        claims[2].data = (const unsigned char *) bad[i];
        claims[2].len = strlen(bad[i]);
        claims[2].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;

        expect_error(claims, 3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 2);

        claims[2].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
        claims[2].sep = ',';

        expect_error(claims, 3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 2);

        /* the bad claim first: nothing after it matters */
        claims[0] = claims[2];
        expect_error(claims, 3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 0);
        claims[0].name = "sub";
        claims[0].data = (const unsigned char *) "fine";
        claims[0].len = 4;
        claims[0].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
    }

    expect_error(nul, NCLAIMS(nul), NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 1);
    expect_error(list_nul, 1, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 0);
    expect_error(list_lf, NCLAIMS(list_lf), NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL,
                 2);
    expect_error(list_tab, 1, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 0);
    expect_error(list_cr_item, 1, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL, 0);
}


void
test_claims_utf8(void **state)
{
    size_t  i;

    static const char  *bad[] = {
        "\xc3\x28",                 /* 2-byte lead, bad continuation */
        "\xc0\xaf",                 /* overlong "/" */
        "\xe0\x80\xaf",             /* overlong "/", 3 bytes */
        "\xed\xa0\x80",             /* lone high surrogate U+D800 */
        "\xed\xbf\xbf",             /* lone low surrogate U+DFFF */
        "\xf4\x90\x80\x80",         /* U+110000 */
        "\xe2\x82",                 /* truncated */
        "\x80",                     /* continuation alone */
        "\xff",
        "ok\xc3",
    };

    ngx_http_stytch_tat_claim_t  claims[2] = {
        S("sub", "Zo\xc3\xab"),
        S("x", ""),
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        claims[1].data = (const unsigned char *) bad[i];
        claims[1].len = strlen(bad[i]);
        claims[1].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;

        expect_error(claims, 2, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8, 1);

        claims[1].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
        claims[1].sep = ',';

        expect_error(claims, 2, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8, 1);

        assert_int_equal(ngx_http_stytch_tat_value_check(claims[1].data,
                                                         claims[1].len),
                         NGX_HTTP_STYTCH_TAT_CLAIM_UTF8);
    }

    /* the largest code points of each length are fine */
    claims[1].data = (const unsigned char *) "\xdf\xbf\xef\xbf\xbf"
                                             "\xf4\x8f\xbf\xbf";
    claims[1].len = 9;
    claims[1].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
    expect_json(claims, 2, "{\"sub\":\"Zo\xc3\xab\",\"x\":\"\xdf\xbf\xef\xbf\xbf"
                           "\xf4\x8f\xbf\xbf\"}");
}


void
test_claims_value_length(void **state)
{
    char                         *out;
    size_t                        bad;
    unsigned char                *v;
    ngx_http_stytch_tat_claim_t   claims[1];

    (void) state;

    v = malloc(NGX_HTTP_STYTCH_TAT_VALUE_MAX + 1);
    assert_non_null(v);
    memset(v, 'v', NGX_HTTP_STYTCH_TAT_VALUE_MAX + 1);

    out = malloc(NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX + 1);
    assert_non_null(out);

    memset(claims, 0, sizeof(claims));
    claims[0].name = "v";
    claims[0].data = v;

    /* exactly 1024 bytes: accepted, as a string and as a list */
    claims[0].len = NGX_HTTP_STYTCH_TAT_VALUE_MAX;
    claims[0].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
    assert_int_equal(claims_json(claims, 1, out, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(strlen(out), 1024 + 8);

    claims[0].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
    claims[0].sep = ',';
    assert_int_equal(claims_json(claims, 1, out, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(strlen(out), 1024 + 10);

    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1024),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);

    /* 1025: refused, a list before it is split */
    claims[0].len = NGX_HTTP_STYTCH_TAT_VALUE_MAX + 1;
    expect_error(claims, 1, NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG, 0);

    memset(v, ',', 10);
    expect_error(claims, 1, NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG, 0);

    claims[0].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
    expect_error(claims, 1, NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG, 0);

    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1025),
                     NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG);

    free(out);
    free(v);
}


/*
 * n claims named "a", "b", ... whose values add up to total bytes: the
 * JSON is total + 6 per claim + (n - 1) commas + 2 braces.
 */
static ngx_http_stytch_tat_claim_t *
sized_claims(size_t n, size_t total, unsigned char *v, char *names)
{
    size_t                        i, each;
    ngx_http_stytch_tat_claim_t  *claims;

    claims = calloc(n, sizeof(ngx_http_stytch_tat_claim_t));
    assert_non_null(claims);

    for (i = 0; i < n; i++) {
        names[i * 2] = (char) ('a' + i);
        names[i * 2 + 1] = '\0';

        each = total / (n - i);
        total -= each;

        claims[i].name = &names[i * 2];
        claims[i].data = v;
        claims[i].len = each;
        claims[i].type = NGX_HTTP_STYTCH_TAT_CLAIM_STRING;
    }

    return claims;
}


void
test_claims_payload_max(void **state)
{
    char                         *out, names[16];
    size_t                        bad;
    unsigned char                *v;
    ngx_http_stytch_tat_claim_t  *claims;

    (void) state;

    v = malloc(NGX_HTTP_STYTCH_TAT_VALUE_MAX);
    assert_non_null(v);
    memset(v, 'x', NGX_HTTP_STYTCH_TAT_VALUE_MAX);

    out = malloc(NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX + 1);
    assert_non_null(out);

    /* 4 claims: JSON = values + 24 + 3 + 2; 4067 bytes of values is 4096 */

    claims = sized_claims(4, 4067, v, names);
    assert_int_equal(claims_json(claims, 4, out, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(strlen(out), NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);
    free(claims);

    claims = sized_claims(4, 4068, v, names);
    expect_error(claims, 4, NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED, 4);
    free(claims);

    /* 5 claims of 1000 bytes: every value fine, the whole too big */
    claims = sized_claims(5, 5000, v, names);
    expect_error(claims, 5, NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED, 5);

    /* ... even given a buffer that would hold it */
    {
        size_t          len;
        unsigned char  *buf;

        buf = guarded_alloc(8192);
        bad = 0;
        assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 5, buf,
                             8192, &len, &bad),
                         NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED);
        assert_int_equal(bad, 5);
        guarded_check(buf, 8192);
        free(claims);

        /* 4096 bytes of JSON fit, 4097 not, whatever the buffer */
        claims = sized_claims(4, 4067, v, names);
        len = 0;
        assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 4, buf,
                             8192, &len, &bad),
                         NGX_HTTP_STYTCH_TAT_CLAIM_OK);
        assert_int_equal(len, 4096);
        free(claims);

        claims = sized_claims(4, 4068, v, names);
        bad = 0;
        assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 4, buf,
                             8192, &len, &bad),
                         NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED);
        assert_int_equal(bad, 4);

        free(buf);
    }

    free(claims);
    free(out);
    free(v);
}


void
test_claims_small_buffer(void **state)
{
    size_t                        size, len, bad;
    unsigned char                *buf;
    ngx_http_stytch_tat_claim_t   claims[] = {
        S("sub", "user_123456"),
        S("email", "ada.lovelace@example.com"),
    };
    static const char  expect[] =
        "{\"sub\":\"user_123456\",\"email\":\"ada.lovelace@example.com\"}";

    (void) state;

    /* exactly big enough: fine, and no NUL written past it */
    size = sizeof(expect) - 1;
    buf = guarded_alloc(size);
    assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 2, buf, size,
                                                     &len, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(len, size);
    assert_memory_equal(buf, expect, size);
    guarded_check(buf, size);
    free(buf);

    /* every smaller size: OVERSIZED, and nothing written past the end */
    for (size = 0; size < sizeof(expect) - 1; size++) {
        buf = guarded_alloc(size);
        bad = 0;
        len = 12345;

        assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 2, buf,
                                                         size, &len, &bad),
                         NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED);
        assert_int_equal(bad, 2);
        assert_int_equal(len, 12345);
        guarded_check(buf, size);
        free(buf);

        /* and with no guard at all: AddressSanitizer watches this one */
        buf = malloc(size ? size : 1);
        assert_non_null(buf);
        assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 2, buf,
                                                         size, &len, &bad),
                         NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED);
        free(buf);
    }
}


void
test_value_check(void **state)
{
    size_t          i;
    unsigned char  *v;

    static const struct {
        const char  *value;
        size_t       len;
        int          rc;
    } cases[] = {
        { "",                          0, NGX_HTTP_STYTCH_TAT_CLAIM_OK },
        { "ada.lovelace@example.com", 24, NGX_HTTP_STYTCH_TAT_CLAIM_OK },
        { "Zo\xc3\xab \"x\" \\",      10, NGX_HTTP_STYTCH_TAT_CLAIM_OK },
        { "\xf0\x9f\x98\x80",          4, NGX_HTTP_STYTCH_TAT_CLAIM_OK },
        { "a b,c",                     5, NGX_HTTP_STYTCH_TAT_CLAIM_OK },
        { "a\rb",                      3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "a\nb",                      3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "a\0b",                      3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "a\tb",                      3, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "\t",                        1, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "a\x7f",                     2, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "\x1f",                      1, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL },
        { "\xc3\x28",                  2, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8 },
        { "\xc0\xaf",                  2, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8 },
        { "\xed\xa0\x80",              3, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8 },
        { "\xf4\x90\x80\x80",          4, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8 },
        { "\xe2\x82",                  2, NGX_HTTP_STYTCH_TAT_CLAIM_UTF8 },
    };

    (void) state;

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (ngx_http_stytch_tat_value_check(
                (const unsigned char *) cases[i].value, cases[i].len)
            != cases[i].rc)
        {
            fail_msg("case %zu: value_check() is %d, expected %d", i,
                     ngx_http_stytch_tat_value_check(
                         (const unsigned char *) cases[i].value,
                         cases[i].len),
                     cases[i].rc);
        }
    }

    /* lengths: 1024 fine, 1025 too long whatever the content */
    v = malloc(NGX_HTTP_STYTCH_TAT_VALUE_MAX + 1);
    assert_non_null(v);

    memset(v, 'a', NGX_HTTP_STYTCH_TAT_VALUE_MAX + 1);
    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1024),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1025),
                     NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG);

    /* 512 two-byte characters are 1024 bytes */
    for (i = 0; i < 1024; i += 2) {
        v[i] = 0xc3;
        v[i + 1] = 0xab;
    }
    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1024),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);

    /* a character cut at the limit */
    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1023),
                     NGX_HTTP_STYTCH_TAT_CLAIM_UTF8);

    v[1000] = '\n';
    assert_int_equal(ngx_http_stytch_tat_value_check(v, 1024),
                     NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL);

    free(v);
}


void
test_claim_strerror(void **state)
{
    (void) state;

    assert_string_equal(ngx_http_stytch_tat_claim_strerror(
                            NGX_HTTP_STYTCH_TAT_CLAIM_OK), "ok");
    assert_non_null(strstr(ngx_http_stytch_tat_claim_strerror(
                        NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG), "1024"));
    assert_non_null(strstr(ngx_http_stytch_tat_claim_strerror(
                        NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL), "control"));
    assert_non_null(strstr(ngx_http_stytch_tat_claim_strerror(
                        NGX_HTTP_STYTCH_TAT_CLAIM_UTF8), "UTF-8"));
    assert_non_null(strstr(ngx_http_stytch_tat_claim_strerror(
                        NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED), "4096"));
    assert_string_equal(ngx_http_stytch_tat_claim_strerror(
                            NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM),
                        "out of memory");
}


/* spaces around list items are trimmed; a TAB is refused, even at an edge */
void
test_claims_list_tab_at_edge(void **state)
{
    int                           rc;
    size_t                        len, bad;
    unsigned char                 buf[256];
    ngx_http_stytch_tat_claim_t   claim;

    (void) state;

    memset(&claim, 0, sizeof(claim));
    claim.name = "groups";
    claim.type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
    claim.sep = ',';

    claim.data = (const unsigned char *) " a , b ";
    claim.len = 7;
    rc = ngx_http_stytch_tat_claims_json(&claim, 1, buf, sizeof(buf), &len,
                                         &bad);
    assert_int_equal(rc, NGX_HTTP_STYTCH_TAT_CLAIM_OK);
    assert_int_equal(len, sizeof("{\"groups\":[\"a\",\"b\"]}") - 1);
    assert_memory_equal(buf, "{\"groups\":[\"a\",\"b\"]}", len);

    claim.data = (const unsigned char *) "a,\tb";
    claim.len = 4;
    rc = ngx_http_stytch_tat_claims_json(&claim, 1, buf, sizeof(buf), &len,
                                         &bad);
    assert_int_equal(rc, NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL);
    assert_int_equal(bad, 0);
}
