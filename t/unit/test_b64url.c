/*
 * base64url: RFC 4648 section 10 vectors in the url alphabet, unpadded
 * (RFC 7515 section 2), the two characters that differ from base64, and
 * the buffer size the module allocates.
 */

#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "unit.h"


static void
check_encode(const unsigned char *src, size_t len, const char *expect)
{
    size_t          n, size;
    unsigned char  *dst;

    size = ngx_http_stytch_tat_b64url_len(len);
    dst = guarded_alloc(size);

    n = ngx_http_stytch_tat_b64url_encode(dst, src, len);

    assert_int_equal(n, strlen(expect));
    assert_string_equal((char *) dst, expect);
    guarded_check(dst, size);

    free(dst);
}


void
test_b64url_rfc4648(void **state)
{
    /* RFC 4648 section 10, padding removed */
    static const struct {
        const char  *in;
        const char  *out;
    } vectors[] = {
        { "",       ""         },
        { "f",      "Zg"       },
        { "fo",     "Zm8"      },
        { "foo",    "Zm9v"     },
        { "foob",   "Zm9vYg"   },
        { "fooba",  "Zm9vYmE"  },
        { "foobar", "Zm9vYmFy" },
    };

    size_t  i;

    (void) state;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        check_encode((const unsigned char *) vectors[i].in,
                     strlen(vectors[i].in), vectors[i].out);
    }
}


void
test_b64url_url_alphabet(void **state)
{
    /* base64 "+/8=" and "+/+/" and "////" */
    static const unsigned char  fbff[] = { 0xfb, 0xff };
    static const unsigned char  fbeffb[] = { 0xfb, 0xef, 0xbe };
    static const unsigned char  ffffff[] = { 0xff, 0xff, 0xff };
    static const unsigned char  f8[] = { 0xf8 };

    (void) state;

    check_encode(fbff, sizeof(fbff), "-_8");
    check_encode(fbeffb, sizeof(fbeffb), "----");
    check_encode(ffffff, sizeof(ffffff), "____");
    check_encode(f8, sizeof(f8), "-A");
}


void
test_b64url_empty(void **state)
{
    size_t         n;
    unsigned char  dst[1 + GUARD_LEN];

    (void) state;

    memset(dst, GUARD_BYTE, sizeof(dst));

    n = ngx_http_stytch_tat_b64url_encode(dst, (const unsigned char *) "", 0);

    assert_int_equal(n, 0);
    assert_int_equal(dst[0], '\0');
    guarded_check(dst, 1);
}


void
test_b64url_len_macro(void **state)
{
    (void) state;

    /* base64 length with padding, plus the NUL */
    assert_int_equal(ngx_http_stytch_tat_b64url_len(0), 1);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(1), 5);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(2), 5);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(3), 5);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(4), 9);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(16), 25);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(32), 45);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(64), 89);
    assert_int_equal(ngx_http_stytch_tat_b64url_len(256), 345);
}


void
test_b64url_roundtrip(void **state)
{
    long            m;
    size_t          len, n, size;
    unsigned char  *dst, src[600], back[600];

    (void) state;

    /* every byte value, every length modulo 3, many buffer ends */

    for (len = 0; len <= sizeof(src); len++) {
        if (len < 256) {
            for (n = 0; n < len; n++) {
                src[n] = (unsigned char) (255 - n);
            }

        } else {
            assert_int_equal(RAND_bytes(src, (int) len), 1);
        }

        size = ngx_http_stytch_tat_b64url_len(len);
        dst = guarded_alloc(size);

        n = ngx_http_stytch_tat_b64url_encode(dst, src, len);

        /* unpadded: ceil(8 * len / 6) characters */
        assert_int_equal(n, (len * 8 + 5) / 6);
        assert_int_equal(strlen((char *) dst), n);
        assert_b64url_alphabet((char *) dst, n);
        guarded_check(dst, size);

        m = b64url_decode(back, sizeof(back), (char *) dst);
        assert_int_equal(m, (long) len);
        assert_memory_equal(back, src, len);

        free(dst);
    }
}
