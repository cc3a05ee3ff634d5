/*
 * base64url: RFC 4648 section 10 vectors in the url alphabet, unpadded
 * (RFC 7515 section 2), the two characters that differ from base64, and
 * the buffer size the module allocates; the strict decoder: the same
 * vectors, and what it refuses (padding, characters outside the url
 * alphabet, nonzero unused bits, a length of 1 modulo 4).
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


/*
 * The decoder, strict: src is a copy of exactly len bytes (ASan sees a
 * read past it), dst exactly the size the macro gives, guarded.  Returns
 * the decoded length, the bytes in out, or -1 (after checking that *n is
 * 0 then).
 */
static long
check_decode(const char *src, size_t len, unsigned char *out, size_t room)
{
    int             rc;
    char           *copy;
    size_t          n, size;
    unsigned char  *dst;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, src, len);

    size = ngx_http_stytch_tat_b64url_decoded_len(len);
    dst = guarded_alloc(size);

    n = 12345;
    rc = ngx_http_stytch_tat_b64url_decode(dst, &n, copy, len);

    guarded_check(dst, size);
    free(copy);

    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_int_equal(n, 0);
        free(dst);
        return -1;
    }

    assert_true(n <= size);
    assert_true(n <= room);
    memcpy(out, dst, n);
    free(dst);

    return (long) n;
}


static void
assert_refused(const char *src, size_t len)
{
    unsigned char  out[64];

    if (check_decode(src, len, out, sizeof(out)) != -1) {
        fail_msg("\"%.*s\" (%zu bytes) decoded", (int) len, src, len);
    }
}


void
test_b64url_decode_rfc4648(void **state)
{
    /* RFC 4648 section 10, padding removed; then the url alphabet */
    static const struct {
        const char  *in;
        const char  *out;
        size_t       len;
    } vectors[] = {
        { "",         "",               0 },
        { "Zg",       "f",              1 },
        { "Zm8",      "fo",             2 },
        { "Zm9v",     "foo",            3 },
        { "Zm9vYg",   "foob",           4 },
        { "Zm9vYmE",  "fooba",          5 },
        { "Zm9vYmFy", "foobar",         6 },
        { "-_8",      "\xfb\xff",       2 },
        { "----",     "\xfb\xef\xbe",   3 },
        { "____",     "\xff\xff\xff",   3 },
        { "-A",       "\xf8",           1 },
        { "AA",       "\0",             1 },
    };

    long           n;
    size_t         i;
    unsigned char  out[16];

    (void) state;

    for (i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        n = check_decode(vectors[i].in, strlen(vectors[i].in), out,
                         sizeof(out));
        assert_int_equal(n, (long) vectors[i].len);
        assert_memory_equal(out, vectors[i].out, vectors[i].len);
    }
}


void
test_b64url_decode_padding(void **state)
{
    static const char  *padded[] = {
        "Zg==", "Zm8=", "Zg=", "Zm9vYg==", "Zm9vYmE=", "=", "==", "===",
        "====", "Zm9v====", "Zm9v=", "Z=g", "Zm=9v"
    };

    size_t  i;

    (void) state;

    for (i = 0; i < sizeof(padded) / sizeof(padded[0]); i++) {
        assert_refused(padded[i], strlen(padded[i]));
    }
}


void
test_b64url_decode_alphabet(void **state)
{
    long           n, ref;
    size_t         i;
    unsigned int   c;
    unsigned char  out[16], back[16];
    char           s[sizeof("Zm9vYmFy")];

    /* base64's own characters, white space, a NUL, bytes over 0x7f */
    static const struct {
        const char  *in;
        size_t       len;
    } foreign[] = {
        { "Zm+v", 4 }, { "Zm/v", 4 }, { "+/8", 3 }, { " Zm9v", 5 },
        { "Zm9v ", 5 }, { "Zm9v\n", 5 }, { "Zm9v\r\n", 6 }, { "Zm\t9v", 5 },
        { "Zm9\0", 4 }, { "\0\0\0\0", 4 }, { "Zm9\x80", 4 }, { "Zm.v", 4 }
    };

    (void) state;

    for (i = 0; i < sizeof(foreign) / sizeof(foreign[0]); i++) {
        assert_refused(foreign[i].in, foreign[i].len);
    }

    /* every byte in every place: decoded exactly as the test's own reader */

    for (i = 0; i < sizeof(s) - 1; i++) {
        for (c = 0; c < 256; c++) {
            memcpy(s, "Zm9vYmFy", sizeof(s));
            s[i] = (char) c;

            n = check_decode(s, sizeof(s) - 1, out, sizeof(out));
            ref = (c == 0) ? -1 : b64url_decode(back, sizeof(back), s);

            if (n != ref) {
                fail_msg("byte 0x%02x at %zu: %ld, expected %ld", c, i, n,
                         ref);
            }

            if (n > 0) {
                assert_memory_equal(out, back, (size_t) n);
            }
        }
    }
}


void
test_b64url_decode_unused_bits(void **state)
{
    long           n;
    size_t         v;
    unsigned char  out[16];
    char           two[3], three[4];

    static const char  alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                    "abcdefghijklmnopqrstuvwxyz0123456789-_";

    (void) state;

    /* 2 characters carry 12 bits for 1 byte, 3 carry 18 for 2 */

    for (v = 0; v < 64; v++) {
        two[0] = 'Z';
        two[1] = alphabet[v];
        two[2] = '\0';

        n = check_decode(two, 2, out, sizeof(out));
        assert_int_equal(n, (v & 0x0f) ? -1 : 1);

        if (n == 1) {
            assert_int_equal(out[0], (0x19 << 2) | (v >> 4));
        }

        three[0] = 'Z';
        three[1] = 'm';
        three[2] = alphabet[v];
        three[3] = '\0';

        n = check_decode(three, 3, out, sizeof(out));
        assert_int_equal(n, (v & 0x03) ? -1 : 2);
    }

    /* the last character decides, after every whole group too */
    assert_refused("Zh", 2);
    assert_refused("Zm9", 3);
    assert_refused("Zm9vYh", 6);
    assert_refused("Zm9vYmF", 7);
    assert_int_equal(check_decode("Zm9vYmE", 7, out, sizeof(out)), 5);
}


void
test_b64url_decode_length(void **state)
{
    char           *s;
    size_t          len;
    unsigned char  *out;

    (void) state;

    /* 1 character over a group carries 6 bits: never a byte */

    assert_refused("Z", 1);
    assert_refused("Zm9vY", 5);
    assert_refused("AAAAA", 5);

    s = malloc(2049);
    out = malloc(ngx_http_stytch_tat_b64url_decoded_len(2049));
    assert_non_null(s);
    assert_non_null(out);
    memset(s, 'A', 2049);

    for (len = 0; len <= 2049; len++) {
        assert_int_equal(check_decode(s, len, out, 2049),
                         (len % 4 == 1) ? -1 : (long) (len * 6 / 8));
    }

    free(out);
    free(s);
}


void
test_b64url_decode_roundtrip(void **state)
{
    long            m;
    size_t          len, n;
    unsigned char  *dst, src[1200], back[1200];

    (void) state;

    /* the encoder's output decodes back, across the decoder's chunks */

    for (len = 0; len <= sizeof(src); len++) {
        assert_int_equal(RAND_bytes(src, (int) sizeof(src)), 1);

        dst = malloc(ngx_http_stytch_tat_b64url_len(len));
        assert_non_null(dst);

        n = ngx_http_stytch_tat_b64url_encode(dst, src, len);

        m = check_decode((char *) dst, n, back, sizeof(back));
        assert_int_equal(m, (long) len);
        assert_memory_equal(back, src, len);

        free(dst);
    }
}
