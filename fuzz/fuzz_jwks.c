/*
 * The JWK writer and the JOSE header with fuzz-chosen kids (the input as a
 * C string: any bytes up to the first NUL) over three fixed keys (RS256,
 * ES256, EdDSA).  Whatever comes out must be valid JSON; when the kid is
 * valid UTF-8 it must come out, with exactly that kid and the key's
 * members unchanged.  The three JWKs are also put together the way the
 * module builds its JWKS document.
 */

#include <stdint.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "fuzz_common.h"
#include "fixed_keys.h"


#define NKEYS  3

static EVP_PKEY  *keys[NKEYS];
static int        algs[NKEYS];
static json_t    *base[NKEYS];    /* each JWK with kid "base" */


static void
init_keys(void)
{
    int          i;
    char         err[NGX_HTTP_STYTCH_TAT_ERR_LEN], *s;
    const char  *pem[NKEYS] = { fixed_key_rsa, fixed_key_ec, fixed_key_ed };
    const int    want[NKEYS] = { NGX_HTTP_STYTCH_TAT_ALG_RS256,
                                 NGX_HTTP_STYTCH_TAT_ALG_ES256,
                                 NGX_HTTP_STYTCH_TAT_ALG_EDDSA };

    for (i = 0; i < NKEYS; i++) {
        if (ngx_http_stytch_tat_key_load((const unsigned char *) pem[i],
                                         strlen(pem[i]), &keys[i], &algs[i],
                                         err)
            != 0)
        {
            fprintf(stderr, "fixed key %d: %s\n", i, err);
            abort();
        }

        FUZZ_CHECK(algs[i] == want[i]);

        s = ngx_http_stytch_tat_key_jwk(keys[i], algs[i], "base");
        FUZZ_CHECK(s != NULL);
        base[i] = json_loads(s, JSON_REJECT_DUPLICATES, NULL);
        FUZZ_CHECK(json_is_object(base[i]));
        free(s);
    }
}


/* the JWK equals the base one except for its kid */
static void
check_members(json_t *jwk, json_t *want)
{
    const char  *name;
    json_t      *v;

    FUZZ_CHECK(json_object_size(jwk) == json_object_size(want));

    json_object_foreach(want, name, v) {
        if (strcmp(name, "kid") != 0) {
            FUZZ_CHECK(json_equal(json_object_get(jwk, name), v));
        }
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             i, valid, nok;
    long            n;
    char           *kid, *jwk[NKEYS], *hdr, *doc, *p;
    size_t          kidlen, len;
    json_t         *j, *h, *set;
    unsigned char  *dec;

    if (keys[0] == NULL) {
        init_keys();
    }

    kid = (char *) fuzz_dup(data, size, 1);
    kidlen = strlen(kid);
    /* a C string from here on: the exact-size copy ends at the first NUL */
    if (kidlen < size) {
        char  *t = (char *) fuzz_dup((unsigned char *) kid, kidlen, 1);
        free(kid);
        kid = t;
    }

    valid = fuzz_utf8_valid((unsigned char *) kid, kidlen);
    nok = 0;
    len = 0;

    for (i = 0; i < NKEYS; i++) {
        jwk[i] = ngx_http_stytch_tat_key_jwk(keys[i], algs[i], kid);

        if (valid) {
            FUZZ_CHECK(jwk[i] != NULL);
        }

        if (jwk[i] != NULL) {
            j = json_loads(jwk[i], JSON_REJECT_DUPLICATES, NULL);
            FUZZ_CHECK(json_is_object(j));
            FUZZ_CHECK(json_is_string(json_object_get(j, "kid")));
            FUZZ_CHECK(json_string_length(json_object_get(j, "kid"))
                       == kidlen);
            FUZZ_CHECK(memcmp(json_string_value(json_object_get(j, "kid")),
                              kid, kidlen) == 0);
            check_members(j, base[i]);
            json_decref(j);

            len += strlen(jwk[i]) + 1;
            nok++;
        }

        hdr = ngx_http_stytch_tat_jws_header(algs[i], kid);

        if (valid) {
            FUZZ_CHECK(hdr != NULL);
        }

        if (hdr != NULL) {
            dec = malloc(strlen(hdr) + 1);
            n = fuzz_b64url_decode(hdr, dec, strlen(hdr) + 1);
            FUZZ_CHECK(n > 0);
            h = json_loadb((char *) dec, (size_t) n, JSON_REJECT_DUPLICATES,
                           NULL);
            FUZZ_CHECK(json_is_object(h) && json_object_size(h) == 3);
            FUZZ_CHECK(strcmp(json_string_value(json_object_get(h, "alg")),
                              ngx_http_stytch_tat_alg_name(algs[i])) == 0);
            FUZZ_CHECK(strcmp(json_string_value(json_object_get(h, "typ")),
                              "JWT") == 0);
            FUZZ_CHECK(json_string_length(json_object_get(h, "kid"))
                       == kidlen);
            FUZZ_CHECK(memcmp(json_string_value(json_object_get(h, "kid")),
                              kid, kidlen) == 0);
            json_decref(h);
            free(dec);
            free(hdr);
        }
    }

    /* the JWKS document, put together as ngx_http_stytch_tat_keys_jwks() */

    if (nok > 0) {
        doc = malloc(len + sizeof("{\"keys\":[]}"));
        p = doc;
        p += sprintf(p, "{\"keys\":[");

        for (i = 0; i < NKEYS; i++) {
            if (jwk[i] != NULL) {
                p += sprintf(p, "%s%s", p[-1] == '[' ? "" : ",", jwk[i]);
            }
        }

        p += sprintf(p, "]}");

        set = json_loadb(doc, (size_t) (p - doc), JSON_REJECT_DUPLICATES,
                         NULL);
        FUZZ_CHECK(json_is_object(set));
        FUZZ_CHECK(json_array_size(json_object_get(set, "keys"))
                   == (size_t) nok);
        json_decref(set);
        free(doc);
    }

    for (i = 0; i < NKEYS; i++) {
        free(jwk[i]);
    }

    free(kid);

    return 0;
}
