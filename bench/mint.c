/*
 * Mint throughput: the work ngx_http_stytch_tat_module does per token
 * (claims JSON, a random jti, base64url, the JWS signature with the key's
 * prepared ngx_http_stytch_tat_signer_t), on one core, for RS256 (RSA
 * 2048), ES256 (P-256) and EdDSA (Ed25519).
 *
 *   mint [-s SECONDS] [-a ALG] [--breakdown]
 *
 * Prints "mint ALG MINTS_PER_SECOND" and "ref ALG SIGNS_PER_SECOND" per
 * algorithm, the reference being what "openssl speed" times (ref_sign()),
 * run in alternating slices with the mints (interleaved()); with
 * --breakdown also "part ALG NAME OPS_PER_SECOND MICROSECONDS" for the
 * pieces of a mint and for other ways of signing: the one-shot
 * ngx_http_stytch_tat_sign(), and a copy of a prepared EVP_MD_CTX (an
 * experiment, not in the module: see bench/README.md).
 *
 * Built by bench/mint.sh with the module's own sources, -O2.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_claims.h"


#define JTI_BYTES  16
#define N_PARTS    9
#define JWT_MAX    (8192 + NGX_HTTP_STYTCH_TAT_SIG_MAX * 2)


typedef struct bench_key_s  bench_key_t;

typedef int (*bench_sign_pt)(bench_key_t *k, const unsigned char *in,
    size_t len, unsigned char *sig, size_t *siglen);

struct bench_key_s {
    const char     *name;
    const char     *type;
    const char     *param;
    int             alg;

    EVP_PKEY       *pkey;
    char           *header;
    size_t          header_len;
    size_t          sig_len;

    ngx_http_stytch_tat_signer_t  *signer;     /* the module's */

    /* the experiment: a context prepared once, copied per signature */
    EVP_MD_CTX     *proto;          /* EVP_DigestSignInit() done */
    EVP_MD_CTX     *work;           /* copied into from proto */

    /* the reference: what "openssl speed" 3.0 times, see ref_sign() */
    EVP_PKEY_CTX   *ref_pctx;       /* RSA, ECDSA: EVP_PKEY_sign_init() */
    EVP_MD_CTX     *ref_mdctx;      /* Ed25519: EVP_DigestSignInit() */
};


static bench_key_t  keys[] = {
    { "RS256", "RSA", NULL, NGX_HTTP_STYTCH_TAT_ALG_RS256,
      NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL },
    { "ES256", "EC", "P-256", NGX_HTTP_STYTCH_TAT_ALG_ES256,
      NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL },
    { "EdDSA", "ED25519", NULL, NGX_HTTP_STYTCH_TAT_ALG_EDDSA,
      NULL, NULL, 0, 0, NULL, NULL, NULL, NULL, NULL },
};

static const EVP_MD  *sha256;

/* results of the last operation, kept so that nothing is optimised out */
static unsigned char  jwt[JWT_MAX];
static size_t         jwt_len;
static unsigned long  sink;


static void
die(const char *what)
{
    fprintf(stderr, "mint: %s\n", what);
    ERR_print_errors_fp(stderr);
    exit(1);
}


static double
now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}


/* the module's path: generate, write PKCS#8 PEM, key_load(), header */

static void
key_init(bench_key_t *k)
{
    int        alg;
    BIO       *bio;
    char      *pem, err[NGX_HTTP_STYTCH_TAT_ERR_LEN], kid[64];
    long       len;
    EVP_PKEY  *gen;

    if (strcmp(k->type, "RSA") == 0) {
        gen = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t) 2048);

    } else if (strcmp(k->type, "EC") == 0) {
        gen = EVP_PKEY_Q_keygen(NULL, NULL, "EC", k->param);

    } else {
        gen = EVP_PKEY_Q_keygen(NULL, NULL, k->type);
    }

    if (gen == NULL) {
        die("key generation failed");
    }

    bio = BIO_new(BIO_s_mem());
    if (bio == NULL
        || PEM_write_bio_PrivateKey(bio, gen, NULL, NULL, 0, NULL, NULL) != 1)
    {
        die("PEM output failed");
    }

    len = BIO_get_mem_data(bio, &pem);

    if (ngx_http_stytch_tat_key_load((unsigned char *) pem, (size_t) len,
                                     &k->pkey, &alg, err)
        != 0)
    {
        fprintf(stderr, "mint: %s: %s\n", k->name, err);
        exit(1);
    }

    BIO_free(bio);
    EVP_PKEY_free(gen);

    if (alg != k->alg) {
        die("key_load() gave another alg");
    }

    if (ngx_http_stytch_tat_key_thumbprint(k->pkey, k->alg, kid) != 0) {
        die("thumbprint failed");
    }

    k->header = ngx_http_stytch_tat_jws_header(k->alg, kid);
    if (k->header == NULL) {
        die("header failed");
    }

    k->header_len = strlen(k->header);
    k->sig_len = ngx_http_stytch_tat_sig_size(k->pkey, k->alg);

    /* as ngx_http_stytch_tat_keys_setup() prepares it */
    k->signer = ngx_http_stytch_tat_signer_new(k->pkey, k->alg);
    if (k->signer == NULL) {
        die("ngx_http_stytch_tat_signer_new() failed");
    }

    /* experiment state */

    k->proto = EVP_MD_CTX_new();
    k->work = EVP_MD_CTX_new();

    if (k->proto == NULL || k->work == NULL
        || EVP_DigestSignInit(k->proto, NULL,
                              k->alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA
                              ? NULL : sha256, NULL, k->pkey) != 1)
    {
        die("EVP_DigestSignInit() failed");
    }

    if (k->alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA) {
        k->ref_mdctx = EVP_MD_CTX_new();

        if (k->ref_mdctx == NULL
            || EVP_DigestSignInit(k->ref_mdctx, NULL, NULL, NULL, k->pkey)
               != 1)
        {
            die("EVP_DigestSignInit() failed");
        }

    } else {
        k->ref_pctx = EVP_PKEY_CTX_new(k->pkey, NULL);

        if (k->ref_pctx == NULL || EVP_PKEY_sign_init(k->ref_pctx) != 1) {
            die("EVP_PKEY_sign_init() failed");
        }
    }
}


/* ECDSA DER to JOSE r || s, as the module does it */

static int
der_to_jose(const unsigned char *der, size_t n, unsigned char *sig,
    size_t *siglen)
{
    int                   rc;
    ECDSA_SIG            *ecsig;
    const BIGNUM         *r, *s;
    const unsigned char  *p;

    p = der;
    ecsig = d2i_ECDSA_SIG(NULL, &p, (long) n);
    if (ecsig == NULL) {
        return -1;
    }

    ECDSA_SIG_get0(ecsig, &r, &s);

    rc = (BN_bn2binpad(r, sig, 32) == 32 && BN_bn2binpad(s, sig + 32, 32) == 32)
         ? 0 : -1;

    ECDSA_SIG_free(ecsig);

    *siglen = 64;

    return rc;
}


/* signer 1: the module's, the key's prepared ngx_http_stytch_tat_signer_t */

static int
sign_module(bench_key_t *k, const unsigned char *in, size_t len,
    unsigned char *sig, size_t *siglen)
{
    return ngx_http_stytch_tat_signer_sign(k->signer, in, len, sig, siglen);
}


/* signer 0: the one-shot ngx_http_stytch_tat_sign(), set up per signature */

static int
sign_oneshot(bench_key_t *k, const unsigned char *in, size_t len,
    unsigned char *sig, size_t *siglen)
{
    return ngx_http_stytch_tat_sign(k->pkey, k->alg, in, len, sig, siglen);
}


/* signer 2: EVP_MD_CTX_copy_ex() of a context initialised once */

static int
sign_copy(bench_key_t *k, const unsigned char *in, size_t len,
    unsigned char *sig, size_t *siglen)
{
    size_t         n;
    unsigned char  der[160];

    if (EVP_MD_CTX_copy_ex(k->work, k->proto) != 1) {
        return -1;
    }

    if (k->alg != NGX_HTTP_STYTCH_TAT_ALG_ES256) {
        n = NGX_HTTP_STYTCH_TAT_SIG_MAX;
        if (EVP_DigestSign(k->work, sig, &n, in, len) != 1) {
            return -1;
        }

        *siglen = n;
        return 0;
    }

    n = sizeof(der);
    if (EVP_DigestSign(k->work, der, &n, in, len) != 1) {
        return -1;
    }

    return der_to_jose(der, n, sig, siglen);
}


/*
 * The reference, as "openssl speed" 3.0 signs: RSA a 36-byte buffer with
 * EVP_PKEY_sign() (PKCS#1 padding, no DigestInfo), ECDSA a 20-byte buffer
 * with EVP_PKEY_sign() (DER out), Ed25519 20 bytes with EVP_DigestSign()
 * again and again on one context: no hashing, no setup, no encoding.
 */

static int
ref_sign(bench_key_t *k, unsigned char *sig, size_t *siglen)
{
    size_t                n;
    static unsigned char  buf[36] = "openssl speed signs these bytes....";

    n = NGX_HTTP_STYTCH_TAT_SIG_MAX;

    switch (k->alg) {

    case NGX_HTTP_STYTCH_TAT_ALG_RS256:
        if (EVP_PKEY_sign(k->ref_pctx, sig, &n, buf, 36) != 1) {
            return -1;
        }
        break;

    case NGX_HTTP_STYTCH_TAT_ALG_ES256:
        if (EVP_PKEY_sign(k->ref_pctx, sig, &n, buf, 20) != 1) {
            return -1;
        }
        break;

    default:
        if (EVP_DigestSign(k->ref_mdctx, sig, &n, buf, 20) != 1) {
            return -1;
        }
    }

    *siglen = n;

    return 0;
}


/* the claims JSON and the "header.payload" signing input */

static size_t
mint_input(bench_key_t *k)
{
    int                          rc;
    size_t                       len, bad;
    time_t                       t;
    unsigned char                rnd[JTI_BYTES], *p;
    unsigned char                jti[ngx_http_stytch_tat_b64url_len(JTI_BYTES)];
    unsigned char                payload[NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX];
    ngx_http_stytch_tat_claim_t  claims[9];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        die("RAND_bytes() failed");
    }

    memset(claims, 0, sizeof(claims));

    claims[0].name = "iss";
    claims[0].data = (const unsigned char *) "https://auth.example.com";
    claims[0].len = sizeof("https://auth.example.com") - 1;

    claims[1].name = "aud";
    claims[1].data = (const unsigned char *) "https://api.example.com";
    claims[1].len = sizeof("https://api.example.com") - 1;

    claims[2].name = "sub";
    claims[2].data = (const unsigned char *) "user_123456";
    claims[2].len = sizeof("user_123456") - 1;

    claims[3].name = "email";
    claims[3].data = (const unsigned char *) "ada.lovelace@example.com";
    claims[3].len = sizeof("ada.lovelace@example.com") - 1;

    claims[4].name = "jti";
    claims[4].data = jti;
    claims[4].len = ngx_http_stytch_tat_b64url_encode(jti, rnd, sizeof(rnd));

    t = time(NULL);

    claims[5].name = "iat";
    claims[5].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    claims[5].number = t;

    claims[6].name = "nbf";
    claims[6].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    claims[6].number = t;

    claims[7].name = "exp";
    claims[7].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    claims[7].number = t + 300;

    claims[8].name = "assignments";
    claims[8].data = (const unsigned char *) "editor,reader";
    claims[8].len = sizeof("editor,reader") - 1;
    claims[8].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
    claims[8].sep = ',';

    rc = ngx_http_stytch_tat_claims_json(claims, 9, payload, sizeof(payload),
                                         &len, &bad);
    if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        die("claims_json() failed");
    }

    p = jwt;
    memcpy(p, k->header, k->header_len);
    p += k->header_len;
    *p++ = '.';
    p += ngx_http_stytch_tat_b64url_encode(p, payload, len);

    return (size_t) (p - jwt);
}


/* one whole token into jwt[] */

static void
mint(bench_key_t *k, bench_sign_pt sign)
{
    size_t          len, siglen;
    unsigned char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    len = mint_input(k);

    if (sign(k, jwt, len, sig, &siglen) != 0) {
        die("signing failed");
    }

    jwt[len++] = '.';
    len += ngx_http_stytch_tat_b64url_encode(jwt + len, sig, siglen);

    jwt_len = len;
}


/* the token in jwt[] verifies with OpenSSL: the signers are right */

static void
check_token(bench_key_t *k, const char *what)
{
    int             ok;
    long            n;
    char           *dot;
    size_t          i, siglen, derlen;
    EVP_MD_CTX     *ctx;
    unsigned char  *der, *p;
    unsigned char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];
    ECDSA_SIG      *ecsig;
    unsigned char   tmp[NGX_HTTP_STYTCH_TAT_SIG_MAX * 2];

    jwt[jwt_len] = '\0';

    dot = strrchr((char *) jwt, '.');
    if (dot == NULL) {
        die("no signature");
    }

    /* base64url back to base64 for EVP_DecodeBlock() */
    n = (long) strlen(dot + 1);
    memcpy(tmp, dot + 1, (size_t) n);
    for (i = 0; i < (size_t) n; i++) {
        tmp[i] = tmp[i] == '-' ? '+' : tmp[i] == '_' ? '/' : tmp[i];
    }
    while (n % 4) {
        tmp[n++] = '=';
    }

    n = EVP_DecodeBlock(sig, tmp, (int) n);
    siglen = k->sig_len;
    if (n < (long) siglen) {
        die("signature too short");
    }

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL
        || EVP_DigestVerifyInit(ctx, NULL,
                                k->alg == NGX_HTTP_STYTCH_TAT_ALG_EDDSA
                                ? NULL : sha256, NULL, k->pkey) != 1)
    {
        die("EVP_DigestVerifyInit() failed");
    }

    if (k->alg == NGX_HTTP_STYTCH_TAT_ALG_ES256) {
        ecsig = ECDSA_SIG_new();
        if (ecsig == NULL
            || ECDSA_SIG_set0(ecsig, BN_bin2bn(sig, 32, NULL),
                              BN_bin2bn(sig + 32, 32, NULL)) != 1)
        {
            die("ECDSA_SIG failed");
        }

        der = tmp;
        p = der;
        derlen = (size_t) i2d_ECDSA_SIG(ecsig, &p);
        ECDSA_SIG_free(ecsig);

        ok = EVP_DigestVerify(ctx, der, derlen, jwt,
                              (size_t) (dot - (char *) jwt));

    } else {
        ok = EVP_DigestVerify(ctx, sig, siglen, jwt,
                              (size_t) (dot - (char *) jwt));
    }

    EVP_MD_CTX_free(ctx);

    if (ok != 1) {
        fprintf(stderr, "mint: %s %s: the token does not verify\n", k->name,
                what);
        exit(1);
    }
}


/* the operations timed */

typedef enum {
    OP_MINT_MODULE,
    OP_MINT_ONESHOT,
    OP_MINT_COPY,
    OP_INPUT,
    OP_SIGN_MODULE,
    OP_SIGN_ONESHOT,
    OP_SIGN_COPY,
    OP_RAND_JTI,
    OP_REF
} op_t;


static void
op_run(bench_key_t *k, op_t op, size_t input_len)
{
    size_t          siglen;
    unsigned char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX], rnd[JTI_BYTES];

    switch (op) {

    case OP_MINT_MODULE:
        mint(k, sign_module);
        break;

    case OP_MINT_COPY:
        mint(k, sign_copy);
        break;

    case OP_MINT_ONESHOT:
        mint(k, sign_oneshot);
        break;

    case OP_INPUT:
        sink += mint_input(k);
        break;

    case OP_SIGN_MODULE:
        if (sign_module(k, jwt, input_len, sig, &siglen) != 0) {
            die("signing failed");
        }
        sink += sig[0];
        break;

    case OP_SIGN_COPY:
        if (sign_copy(k, jwt, input_len, sig, &siglen) != 0) {
            die("signing failed");
        }
        sink += sig[0];
        break;

    case OP_SIGN_ONESHOT:
        if (sign_oneshot(k, jwt, input_len, sig, &siglen) != 0) {
            die("signing failed");
        }
        sink += sig[0];
        break;

    case OP_REF:
        if (ref_sign(k, sig, &siglen) != 0) {
            die("reference signing failed");
        }
        sink += sig[0];
        break;

    case OP_RAND_JTI:
        if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
            die("RAND_bytes() failed");
        }
        sink += rnd[0];
        break;
    }
}


/*
 * The operations ops[0..n) in turn, in slices of 50 ms, until each has run
 * for seconds: whatever else runs on the machine slows all of them alike,
 * so their ratios hold up better than those of separate runs.  rates[i]
 * is ops[i] per second.
 */

static void
interleaved(bench_key_t *k, const op_t *ops, size_t n, double seconds,
    double *rates)
{
    int            more;
    size_t         i, j, input_len;
    double         spent[16], start, end, t;
    unsigned long  count[16];

    if (n > 16) {
        die("too many operations");
    }

    input_len = mint_input(k);

    for (i = 0; i < n; i++) {
        spent[i] = 0;
        count[i] = 0;

        /* warm up: caches, lazily fetched algorithms */
        for (j = 0; j < 20; j++) {
            op_run(k, ops[i], input_len);
        }
    }

    do {
        more = 0;

        for (i = 0; i < n; i++) {
            if (spent[i] >= seconds) {
                continue;
            }

            start = now();
            end = start + 0.05;

            do {
                op_run(k, ops[i], input_len);
                count[i]++;
                t = now();
            } while (t < end);

            spent[i] += t - start;
            more = 1;
        }

    } while (more);

    for (i = 0; i < n; i++) {
        rates[i] = (double) count[i] / spent[i];
    }
}


static void
usage(void)
{
    fprintf(stderr, "usage: mint [-s SECONDS] [-a RS256|ES256|EdDSA] "
                    "[--breakdown]\n");
    exit(2);
}


int
main(int argc, char **argv)
{
    int            i, breakdown;
    char          *end;
    double         seconds, rates[16];
    size_t         j, p;
    const char    *only;

    static const op_t   main_ops[2] = { OP_MINT_MODULE, OP_REF };
    static const op_t   part_ops[] = {
        OP_INPUT, OP_RAND_JTI, OP_SIGN_MODULE, OP_SIGN_ONESHOT, OP_SIGN_COPY,
        OP_REF, OP_MINT_MODULE, OP_MINT_ONESHOT, OP_MINT_COPY
    };
    static const char  *part_names[] = {
        "input", "rand_jti", "sign_module", "sign_oneshot", "sign_copy",
        "ref", "mint_module", "mint_oneshot", "mint_copy"
    };

    seconds = 3;
    only = NULL;
    breakdown = 0;

    end = getenv("BENCH_SECONDS");
    if (end != NULL && *end != '\0') {
        seconds = strtod(end, &end);
    }

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-s") == 0 && i + 1 < argc) {
            errno = 0;
            seconds = strtod(argv[++i], &end);
            if (errno || *end != '\0') {
                usage();
            }

        } else if (strcmp(argv[i], "-a") == 0 && i + 1 < argc) {
            only = argv[++i];

        } else if (strcmp(argv[i], "--breakdown") == 0) {
            breakdown = 1;

        } else {
            usage();
        }
    }

    if (!(seconds > 0)) {
        usage();
    }

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (sha256 == NULL) {
        die("no SHA-256");
    }

    for (j = 0; j < sizeof(keys) / sizeof(keys[0]); j++) {
        if (only != NULL && strcmp(only, keys[j].name) != 0) {
            continue;
        }

        key_init(&keys[j]);

        /* every signer makes tokens that verify */
        mint(&keys[j], sign_module);
        check_token(&keys[j], "module");
        mint(&keys[j], sign_copy);
        check_token(&keys[j], "copy");
        mint(&keys[j], sign_oneshot);
        check_token(&keys[j], "one-shot");

        interleaved(&keys[j], main_ops, 2, seconds, rates);

        printf("mint %s %.1f\n", keys[j].name, rates[0]);
        printf("ref %s %.1f\n", keys[j].name, rates[1]);
        fflush(stdout);

        if (!breakdown) {
            continue;
        }

        /* the pieces, and the other ways of signing, half the time each */

        interleaved(&keys[j], part_ops, N_PARTS, seconds / 2, rates);

        for (p = 0; p < N_PARTS; p++) {
            printf("part %s %s %.1f %.2f\n", keys[j].name, part_names[p],
                   rates[p], 1e6 / rates[p]);
        }

        fflush(stdout);
    }

    if (sink == 42) {
        printf("\n");
    }

    return 0;
}
