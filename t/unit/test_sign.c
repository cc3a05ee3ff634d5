/*
 * JWS signatures: ES256 as raw r||s (RFC 7518 3.4), RS256 PKCS#1 v1.5,
 * EdDSA; each verified with OpenSSL's EVP_DigestVerify.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/rand.h>

#include "unit.h"


static const unsigned char  input[] =
    "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0."
    "eyJzdWIiOiJ1c2VyXzEyMzQ1NiJ9";


void
test_sig_size(void **state)
{
    (void) state;

    assert_int_equal(ngx_http_stytch_tat_sig_size(keys.rsa2048,
                         NGX_HTTP_STYTCH_TAT_ALG_RS256), 256);
    assert_int_equal(ngx_http_stytch_tat_sig_size(keys.p256,
                         NGX_HTTP_STYTCH_TAT_ALG_ES256), 64);
    assert_int_equal(ngx_http_stytch_tat_sig_size(keys.ed25519,
                         NGX_HTTP_STYTCH_TAT_ALG_EDDSA), 64);
}


/*
 * sign in with the one-shot ngx_http_stytch_tat_sign(), or with signer when
 * one is given; check it is 64 raw bytes that verify as DER
 */
static void
es256_sign(ngx_http_stytch_tat_signer_t *signer, const unsigned char *in,
    size_t len, unsigned char *sig)
{
    size_t          siglen, derlen;
    unsigned char   der[80];
    unsigned char   buf[NGX_HTTP_STYTCH_TAT_SIG_MAX + GUARD_LEN];

    memset(buf, GUARD_BYTE, sizeof(buf));

    siglen = 0;

    if (signer == NULL) {
        assert_int_equal(ngx_http_stytch_tat_sign(keys.p256,
                             NGX_HTTP_STYTCH_TAT_ALG_ES256, in, len, buf,
                             &siglen), 0);

    } else {
        assert_int_equal(ngx_http_stytch_tat_signer_sign(signer, in, len, buf,
                                                         &siglen), 0);
    }

    assert_int_equal(siglen, 64);

    /* nothing written past the 64 bytes */
    assert_int_equal(buf[64], GUARD_BYTE);

    /* as DER: at most 72 bytes, shorter when r or s is small */
    derlen = jose_to_der(buf, der, sizeof(der));
    assert_uint_in_range(derlen, 8, 72);

    assert_true(verify(keys.p256, EVP_sha256(), in, len, der, derlen));

    memcpy(sig, buf, 64);
}


static void
es256_round(const unsigned char *in, size_t len, unsigned char *sig)
{
    es256_sign(NULL, in, len, sig);
}


void
test_sign_es256(void **state)
{
    int            i, bit;
    size_t         derlen;
    unsigned char  sig[64], sig2[64], der[80], msg[100];

    (void) state;

    es256_round(input, sizeof(input) - 1, sig);

    /* any flipped bit of r or s, or of the input, fails verification */
    for (i = 0; i < 64; i++) {
        bit = i * 8 + (i % 8);

        memcpy(sig2, sig, 64);
        sig2[bit / 8] ^= (unsigned char) (1 << (bit % 8));

        derlen = jose_to_der(sig2, der, sizeof(der));
        assert_false(verify(keys.p256, EVP_sha256(), input,
                            sizeof(input) - 1, der, derlen));
    }

    memcpy(msg, input, sizeof(input) - 1);
    msg[5] ^= 0x20;

    derlen = jose_to_der(sig, der, sizeof(der));
    assert_false(verify(keys.p256, EVP_sha256(), msg, sizeof(input) - 1,
                        der, derlen));

    /* ECDSA is randomised: two signatures of the same input differ */
    es256_round(input, sizeof(input) - 1, sig2);
    assert_true(memcmp(sig, sig2, 64) != 0);

    /* the empty input is signed too */
    es256_round((const unsigned char *) "", 0, sig2);
}


/*
 * r under 2^248 (a leading zero byte, a shorter DER) comes about once in
 * 256 signatures, and so does s: sign at least 300 times and until each
 * has turned up, so the padding of both is always exercised.
 */
static void
es256_leading_zeros(ngx_http_stytch_tat_signer_t *signer)
{
    int            i, short_r, short_s;
    size_t         derlen;
    unsigned char  sig[64], der[80], msg[32];

    short_r = 0;
    short_s = 0;

    for (i = 0; i < 300 || (!(short_r && short_s) && i < 30000); i++) {
        assert_int_equal(RAND_bytes(msg, sizeof(msg)), 1);

        es256_sign(signer, msg, sizeof(msg), sig);

        if (sig[0] == 0 || sig[32] == 0) {
            short_r |= sig[0] == 0;
            short_s |= sig[32] == 0;

            /* and a flipped bit still fails */
            sig[63] ^= 0x80;
            derlen = jose_to_der(sig, der, sizeof(der));
            assert_false(verify(keys.p256, EVP_sha256(), msg, sizeof(msg),
                                der, derlen));
        }
    }

    assert_true(short_r);
    assert_true(short_s);
}


void
test_sign_es256_leading_zeros(void **state)
{
    (void) state;

    es256_leading_zeros(NULL);
}


void
test_sign_rs256(void **state)
{
    size_t         siglen, siglen2;
    unsigned char  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char  sig2[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    (void) state;

    siglen = 0;
    assert_int_equal(ngx_http_stytch_tat_sign(keys.rsa2048,
                         NGX_HTTP_STYTCH_TAT_ALG_RS256, input,
                         sizeof(input) - 1, sig, &siglen), 0);

    assert_int_equal(siglen, (size_t) EVP_PKEY_get_size(keys.rsa2048));
    assert_int_equal(siglen, 256);

    /* EVP_DigestVerify defaults to PKCS#1 v1.5 padding for RSA keys */
    assert_true(verify(keys.rsa2048, EVP_sha256(), input, sizeof(input) - 1,
                       sig, siglen));

    /* SHA-256, not another digest */
    assert_false(verify(keys.rsa2048, EVP_sha384(), input, sizeof(input) - 1,
                        sig, siglen));

    /* RSASSA-PKCS1-v1_5 is deterministic */
    siglen2 = 0;
    assert_int_equal(ngx_http_stytch_tat_sign(keys.rsa2048,
                         NGX_HTTP_STYTCH_TAT_ALG_RS256, input,
                         sizeof(input) - 1, sig2, &siglen2), 0);
    assert_int_equal(siglen2, siglen);
    assert_memory_equal(sig, sig2, siglen);

    sig[100] ^= 0x04;
    assert_false(verify(keys.rsa2048, EVP_sha256(), input, sizeof(input) - 1,
                        sig, siglen));
}


void
test_sign_eddsa(void **state)
{
    size_t         siglen, siglen2;
    unsigned char  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char  sig2[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    (void) state;

    siglen = 0;
    assert_int_equal(ngx_http_stytch_tat_sign(keys.ed25519,
                         NGX_HTTP_STYTCH_TAT_ALG_EDDSA, input,
                         sizeof(input) - 1, sig, &siglen), 0);
    assert_int_equal(siglen, 64);

    assert_true(verify(keys.ed25519, NULL, input, sizeof(input) - 1,
                       sig, siglen));

    siglen2 = 0;
    assert_int_equal(ngx_http_stytch_tat_sign(keys.ed25519,
                         NGX_HTTP_STYTCH_TAT_ALG_EDDSA, input,
                         sizeof(input) - 1, sig2, &siglen2), 0);
    assert_int_equal(siglen2, 64);
    assert_memory_equal(sig, sig2, 64);

    sig[0] ^= 0x01;
    assert_false(verify(keys.ed25519, NULL, input, sizeof(input) - 1,
                        sig, siglen));
}


void
test_sign_wrong_key(void **state)
{
    size_t         siglen;
    unsigned char  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    (void) state;

    /* a key that cannot make the alg's signature fails, leaving no error */

    assert_int_equal(ngx_http_stytch_tat_sign(keys.ed25519,
                         NGX_HTTP_STYTCH_TAT_ALG_ES256, input,
                         sizeof(input) - 1, sig, &siglen), -1);
    assert_int_equal(ERR_peek_error(), 0);

    assert_int_equal(ngx_http_stytch_tat_sign(keys.ed25519,
                         NGX_HTTP_STYTCH_TAT_ALG_RS256, input,
                         sizeof(input) - 1, sig, &siglen), -1);
    assert_int_equal(ERR_peek_error(), 0);

    /* an RSA signature does not fit ES256's DER buffer */
    assert_int_equal(ngx_http_stytch_tat_sign(keys.rsa2048,
                         NGX_HTTP_STYTCH_TAT_ALG_ES256, input,
                         sizeof(input) - 1, sig, &siglen), -1);
    assert_int_equal(ERR_peek_error(), 0);
}


/* a whole JWT put together as ngx_http_stytch_tat_mint.c does */

void
test_sign_full_jwt(void **state)
{
    char           *header, *dot1, *dot2;
    long            n;
    size_t          len, siglen, i, derlen;
    unsigned char   payload[NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX];
    unsigned char   jwt[8192], sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char   raw[NGX_HTTP_STYTCH_TAT_SIG_MAX], der[80];
    size_t          bad;
    unsigned char  *p;

    static const int  algs[3] = {
        NGX_HTTP_STYTCH_TAT_ALG_RS256,
        NGX_HTTP_STYTCH_TAT_ALG_ES256,
        NGX_HTTP_STYTCH_TAT_ALG_EDDSA
    };

    ngx_http_stytch_tat_claim_t  claims[2];
    EVP_PKEY                    *pkeys[3];

    (void) state;

    pkeys[0] = keys.rsa2048;
    pkeys[1] = keys.p256;
    pkeys[2] = keys.ed25519;

    memset(claims, 0, sizeof(claims));
    claims[0].name = "sub";
    claims[0].data = (const unsigned char *) "user_123456";
    claims[0].len = 11;
    claims[1].name = "exp";
    claims[1].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    claims[1].number = 1700000300;

    assert_int_equal(ngx_http_stytch_tat_claims_json(claims, 2, payload,
                         sizeof(payload), &len, &bad),
                     NGX_HTTP_STYTCH_TAT_CLAIM_OK);

    for (i = 0; i < 3; i++) {
        header = ngx_http_stytch_tat_jws_header(algs[i], "kid-1");
        assert_non_null(header);

        p = jwt;
        memcpy(p, header, strlen(header));
        p += strlen(header);
        *p++ = '.';
        p += ngx_http_stytch_tat_b64url_encode(p, payload, len);

        assert_int_equal(ngx_http_stytch_tat_sign(pkeys[i], algs[i], jwt,
                             (size_t) (p - jwt), sig, &siglen), 0);

        *p++ = '.';
        p += ngx_http_stytch_tat_b64url_encode(p, sig, siglen);
        *p = '\0';

        /* three base64url parts */
        dot1 = strchr((char *) jwt, '.');
        assert_non_null(dot1);
        dot2 = strchr(dot1 + 1, '.');
        assert_non_null(dot2);
        assert_null(strchr(dot2 + 1, '.'));
        assert_b64url_alphabet(dot2 + 1, strlen(dot2 + 1));

        n = b64url_decode(raw, sizeof(raw), dot2 + 1);
        assert_int_equal(n, (long) siglen);

        if (algs[i] == NGX_HTTP_STYTCH_TAT_ALG_ES256) {
            derlen = jose_to_der(raw, der, sizeof(der));
            assert_true(verify(pkeys[i], EVP_sha256(), jwt,
                               (size_t) (dot2 - (char *) jwt), der, derlen));

        } else {
            assert_true(verify(pkeys[i],
                               algs[i] == NGX_HTTP_STYTCH_TAT_ALG_EDDSA
                               ? NULL : EVP_sha256(),
                               jwt, (size_t) (dot2 - (char *) jwt),
                               raw, (size_t) n));
        }

        free(header);
    }
}


/*
 * The signer prepared once per key, which the module signs with: the
 * same signatures as ngx_http_stytch_tat_sign(), however often it is used.
 */

void
test_signer_rs256(void **state)
{
    int                            i;
    size_t                         siglen, siglen2;
    unsigned char                  msg[64];
    unsigned char                  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char                  sig2[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    ngx_http_stytch_tat_signer_t  *signer;

    (void) state;

    signer = ngx_http_stytch_tat_signer_new(keys.rsa2048,
                                            NGX_HTTP_STYTCH_TAT_ALG_RS256);
    assert_non_null(signer);

    for (i = 0; i < 20; i++) {
        assert_int_equal(RAND_bytes(msg, sizeof(msg)), 1);

        siglen = 0;
        assert_int_equal(ngx_http_stytch_tat_signer_sign(signer, msg,
                             (size_t) i * 3, sig, &siglen), 0);
        assert_int_equal(siglen, 256);

        /* PKCS#1 v1.5 is deterministic: byte for byte the one-shot's */
        siglen2 = 0;
        assert_int_equal(ngx_http_stytch_tat_sign(keys.rsa2048,
                             NGX_HTTP_STYTCH_TAT_ALG_RS256, msg,
                             (size_t) i * 3, sig2, &siglen2), 0);
        assert_int_equal(siglen2, siglen);
        assert_memory_equal(sig, sig2, siglen);

        assert_true(verify(keys.rsa2048, EVP_sha256(), msg, (size_t) i * 3,
                           sig, siglen));
    }

    assert_int_equal(ERR_peek_error(), 0);

    ngx_http_stytch_tat_signer_free(signer);
}


void
test_signer_es256(void **state)
{
    unsigned char                  sig[64], sig2[64];
    ngx_http_stytch_tat_signer_t  *signer;

    (void) state;

    signer = ngx_http_stytch_tat_signer_new(keys.p256,
                                            NGX_HTTP_STYTCH_TAT_ALG_ES256);
    assert_non_null(signer);

    es256_sign(signer, input, sizeof(input) - 1, sig);
    es256_sign(signer, input, sizeof(input) - 1, sig2);
    assert_true(memcmp(sig, sig2, 64) != 0);

    es256_leading_zeros(signer);

    assert_int_equal(ERR_peek_error(), 0);

    ngx_http_stytch_tat_signer_free(signer);
}


void
test_signer_eddsa(void **state)
{
    int                            i;
    size_t                         siglen, siglen2;
    unsigned char                  msg[100];
    unsigned char                  sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    unsigned char                  sig2[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    ngx_http_stytch_tat_signer_t  *signer;

    (void) state;

    signer = ngx_http_stytch_tat_signer_new(keys.ed25519,
                                            NGX_HTTP_STYTCH_TAT_ALG_EDDSA);
    assert_non_null(signer);

    /*
     * Every signature, not only the first: OpenSSL 3.2 and later refuse a
     * second EVP_DigestSign() on the same EVP_MD_CTX.
     */
    for (i = 0; i < 20; i++) {
        assert_int_equal(RAND_bytes(msg, sizeof(msg)), 1);

        siglen = 0;
        if (ngx_http_stytch_tat_signer_sign(signer, msg, (size_t) i * 5, sig,
                                            &siglen)
            != 0)
        {
            fail_msg("EdDSA signature %d with one signer failed", i + 1);
        }

        assert_int_equal(siglen, 64);

        siglen2 = 0;
        assert_int_equal(ngx_http_stytch_tat_sign(keys.ed25519,
                             NGX_HTTP_STYTCH_TAT_ALG_EDDSA, msg,
                             (size_t) i * 5, sig2, &siglen2), 0);
        assert_memory_equal(sig, sig2, 64);

        assert_true(verify(keys.ed25519, NULL, msg, (size_t) i * 5, sig, 64));
    }

    assert_int_equal(ERR_peek_error(), 0);

    ngx_http_stytch_tat_signer_free(signer);
}


void
test_signer_wrong_key(void **state)
{
    int                            i, made;
    ngx_http_stytch_tat_signer_t  *signer;

    static const struct {
        EVP_PKEY  **key;
        int         alg;
    } wrong[] = {
        { &keys.ed25519, NGX_HTTP_STYTCH_TAT_ALG_ES256 },
        { &keys.ed25519, NGX_HTTP_STYTCH_TAT_ALG_RS256 },
        { &keys.p256, NGX_HTTP_STYTCH_TAT_ALG_RS256 },
        { &keys.p256, NGX_HTTP_STYTCH_TAT_ALG_EDDSA },
        { &keys.rsa2048, NGX_HTTP_STYTCH_TAT_ALG_ES256 },
        { &keys.rsa2048, NGX_HTTP_STYTCH_TAT_ALG_EDDSA },
    };

    (void) state;

    /* refused up front, whatever this OpenSSL would set up for the key */

    for (i = 0; i < (int) (sizeof(wrong) / sizeof(wrong[0])); i++) {
        signer = ngx_http_stytch_tat_signer_new(*wrong[i].key, wrong[i].alg);
        made = (signer != NULL);

        /* freed first: a failed assertion does not return */
        ngx_http_stytch_tat_signer_free(signer);
        assert_false(made);
        assert_int_equal(ERR_peek_error(), 0);
    }

    ngx_http_stytch_tat_signer_free(NULL);
}
