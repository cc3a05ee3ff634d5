/*
 * JOSE primitives of ngx_http_stytch_tat_module: base64url, private key
 * loading, public JWKs with RFC 7638 thumbprints, JWS signing.
 *
 * Deliberately free of nginx headers so that the unit tests in t/unit
 * link it alone.  All cryptography goes through OpenSSL's EVP API and all
 * JSON through jansson.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_JOSE_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_JOSE_H_INCLUDED_


#include <stddef.h>
#include <openssl/evp.h>


#define NGX_HTTP_STYTCH_TAT_ALG_RS256   1
#define NGX_HTTP_STYTCH_TAT_ALG_ES256   2
#define NGX_HTTP_STYTCH_TAT_ALG_EDDSA   3

/* RSA keys are accepted up to 8192 bits: 1024 bytes of signature */
#define NGX_HTTP_STYTCH_TAT_SIG_MAX     1024

#define NGX_HTTP_STYTCH_TAT_ERR_LEN     256

/* enough for base64url of len bytes, plus a terminating NUL */
#define ngx_http_stytch_tat_b64url_len(len)  ((((len) + 2) / 3) * 4 + 1)

/* enough for the bytes of len characters of base64url, decoded */
#define ngx_http_stytch_tat_b64url_decoded_len(len)  ((((len) + 3) / 4) * 3)


size_t ngx_http_stytch_tat_b64url_encode(unsigned char *dst,
    const unsigned char *src, size_t len);

/*
 * The module's one base64url decoder, strict (RFC 7515 2): the url
 * alphabet only, no padding, no white space, and zero unused bits in the
 * last character, so that each byte string has one encoding and a token
 * one spelling.  dst must hold ngx_http_stytch_tat_b64url_decoded_len(len)
 * bytes.  Returns 0 and the decoded length in *n, or -1 (and *n 0) for
 * src[0..len) that is not that.
 */
int ngx_http_stytch_tat_b64url_decode(unsigned char *dst, size_t *n,
    const char *src, size_t len);

const char *ngx_http_stytch_tat_alg_name(int alg);

/*
 * Parses a PEM private key (PKCS#8 or traditional).  Encrypted keys, public
 * keys, RSA under 2048 bits and curves other than P-256 are refused with a
 * reason in err.  Returns 0 on success.
 */
int ngx_http_stytch_tat_key_load(const unsigned char *pem, size_t len,
    EVP_PKEY **pkey, int *alg, char *err);

/* the public JWK members RFC 7638 hashes, as a new jansson object */
void *ngx_http_stytch_tat_key_public_members(EVP_PKEY *pkey, int alg);

/* RFC 7638 thumbprint, base64url, into a buffer of at least 44 bytes */
int ngx_http_stytch_tat_key_thumbprint(EVP_PKEY *pkey, int alg,
    char *out);

/* the public JWK with kid, alg and use, as compact JSON (free() it) */
char *ngx_http_stytch_tat_key_jwk(EVP_PKEY *pkey, int alg, const char *kid);

/* the base64url JOSE header {"alg","typ":"JWT","kid"} (free() it) */
char *ngx_http_stytch_tat_jws_header(int alg, const char *kid);

/*
 * One-shot signing, without a prepared signer: the module signs through
 * ngx_http_stytch_tat_signer_sign(); this is the reference the unit tests
 * and bench/mint.c hold the signer to.
 *
 * JWS signature of in[0..len) in the JOSE form: RSASSA-PKCS1-v1_5 with
 * SHA-256, ECDSA P-256 as raw r||s (64 bytes), or Ed25519.  sig must hold
 * NGX_HTTP_STYTCH_TAT_SIG_MAX bytes.  Returns 0 on success.
 */
int ngx_http_stytch_tat_sign(EVP_PKEY *pkey, int alg,
    const unsigned char *in, size_t len, unsigned char *sig,
    size_t *siglen);

size_t ngx_http_stytch_tat_sig_size(EVP_PKEY *pkey, int alg);

/*
 * A signer prepared once per key (at configuration time), so that each
 * signature skips OpenSSL's per-operation setup: RSA and ECDSA sign a
 * SHA-256 digest with a reused EVP_PKEY_CTX, Ed25519 reuses its
 * EVP_MD_CTX.  Signatures are the same as ngx_http_stytch_tat_sign()'s.
 */
typedef struct ngx_http_stytch_tat_signer_s  ngx_http_stytch_tat_signer_t;

ngx_http_stytch_tat_signer_t *ngx_http_stytch_tat_signer_new(EVP_PKEY *pkey,
    int alg);
int ngx_http_stytch_tat_signer_sign(ngx_http_stytch_tat_signer_t *signer,
    const unsigned char *in, size_t len, unsigned char *sig, size_t *siglen);
void ngx_http_stytch_tat_signer_free(ngx_http_stytch_tat_signer_t *signer);


#endif /* _NGX_HTTP_STYTCH_TAT_JOSE_H_INCLUDED_ */
