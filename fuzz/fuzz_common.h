/*
 * Helpers shared by the fuzz targets: independent reference checks the
 * module's outputs are compared with.
 */

#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H


#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>


/* an oracle failure: a crash libFuzzer records, with the reason */
#define FUZZ_CHECK(cond)                                                     \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: check failed: %s\n",                     \
                    __FILE__, __LINE__, #cond);                              \
            abort();                                                         \
        }                                                                    \
    } while (0)


/* an exact-size heap copy, so ASan sees any read past the end */
static inline unsigned char *
fuzz_dup(const unsigned char *data, size_t size, int nul)
{
    unsigned char  *p;

    p = malloc(size + (nul ? 1 : 0) + (size == 0 && !nul));
    if (p == NULL) {
        abort();
    }

    if (size) {
        memcpy(p, data, size);
    }

    if (nul) {
        p[size] = '\0';
    }

    return p;
}


/* RFC 3629 UTF-8: shortest form, no surrogates, at most U+10FFFF */
static inline int
fuzz_utf8_valid(const unsigned char *s, size_t len)
{
    size_t        i, n, k;
    unsigned int  c, min;

    for (i = 0; i < len; i += n) {
        c = s[i];

        if (c < 0x80) {
            n = 1;
            continue;

        } else if ((c & 0xe0) == 0xc0) {
            n = 2; c &= 0x1f; min = 0x80;

        } else if ((c & 0xf0) == 0xe0) {
            n = 3; c &= 0x0f; min = 0x800;

        } else if ((c & 0xf8) == 0xf0) {
            n = 4; c &= 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (i + n > len) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            c = (c << 6) | (s[i + k] & 0x3f);
        }

        if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


/* a JSON string of at least one byte */
static inline int
fuzz_nonempty(json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}


/* base64url without padding; returns the decoded length or -1 */
static inline long
fuzz_b64url_decode_n(const char *in, size_t len, unsigned char *out,
    size_t room)
{
    size_t        i, n;
    unsigned int  acc, bits;
    int           v;

    n = 0;
    acc = 0;
    bits = 0;

    if (len % 4 == 1) {
        return -1;
    }

    for (i = 0; i < len; i++) {
        char c = in[i];

        if (c >= 'A' && c <= 'Z') {
            v = c - 'A';
        } else if (c >= 'a' && c <= 'z') {
            v = c - 'a' + 26;
        } else if (c >= '0' && c <= '9') {
            v = c - '0' + 52;
        } else if (c == '-') {
            v = 62;
        } else if (c == '_') {
            v = 63;
        } else {
            return -1;
        }

        acc = (acc << 6) | (unsigned int) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;
            if (n >= room) {
                return -1;
            }
            out[n++] = (unsigned char) (acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }

    /* the leftover bits of the last character must be zero */
    if (acc != 0) {
        return -1;
    }

    return (long) n;
}


static inline long
fuzz_b64url_decode(const char *in, unsigned char *out, size_t room)
{
    return fuzz_b64url_decode_n(in, strlen(in), out, room);
}


#endif /* FUZZ_COMMON_H */
