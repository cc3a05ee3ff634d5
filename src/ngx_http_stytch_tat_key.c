/*
 * The identity's key: what makes one cached session different from
 * another.  A location's fingerprint (its signing key, times, URI and
 * project, computed when the configuration loads) and its constant first
 * fields (hashed once), then per request the identity's own values: the
 * SHA-256 digest that keys the zone's rbtree.  In cluster mode, the
 * binding that a session carries is a keyed digest of that key.
 */


#include "ngx_http_stytch_tat.h"

#include <openssl/core_names.h>


/* a cache key's input up to this size is built on the stack */
#define NGX_HTTP_STYTCH_TAT_KEY_STACK        1024

/* the claims that are the same in every token for one identity */
#define ngx_http_stytch_tat_key_keyed_claim(i)                                \
    ((i) < NGX_HTTP_STYTCH_TAT_JTI || (i) > NGX_HTTP_STYTCH_TAT_EXP)

/* an empty value may have no data: memcpy() must not see it */
#define ngx_http_stytch_tat_key_bytes(p, data, len)                           \
    ((len) ? ngx_cpymem(p, data, len) : (p))

/* the same value: configuration text is never copied, so the same bytes */
#define ngx_http_stytch_tat_key_same(a, b)                                    \
    ((a)->len == (b)->len && ((a)->len == 0 || (a)->data == (b)->data))


static u_char *ngx_http_stytch_tat_key_field(u_char *p,
    ngx_str_t *value);
static u_char *ngx_http_stytch_tat_key_claim(u_char *p,
    ngx_http_stytch_tat_claim_t *c);
static ngx_uint_t ngx_http_stytch_tat_key_prefixed(
    ngx_http_stytch_tat_key_prefix_t *pre, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *extra, ngx_uint_t nextra);
static void ngx_http_stytch_tat_key_constant(
    ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_key_prefix_t *pre);
static void ngx_http_stytch_tat_key_cleanup(void *data);
static ngx_int_t ngx_http_stytch_tat_key_init(EVP_MD_CTX **proto,
    EVP_MD_CTX **md);
static void ngx_http_stytch_tat_key_binding_cleanup(void *data);


ngx_int_t
ngx_http_stytch_tat_key_digest(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *extra, ngx_uint_t nextra)
{
    u_char                            *buf, *p;
    size_t                             i, len;
    ngx_uint_t                         j, from, first;
    EVP_MD_CTX                        *start;
    unsigned int                       dlen;
    ngx_http_stytch_tat_claim_t       *c;
    ngx_http_stytch_tat_loc_conf_t    *lcf;
    ngx_http_stytch_tat_key_prefix_t  *pre;
    u_char                             stack[NGX_HTTP_STYTCH_TAT_KEY_STACK];

    /*
     * One prepared context per worker, copied for each key, and the whole
     * input in one update: this is the hit path, and each update and
     * each EVP_DigestInit_ex() costs more than the copy.
     */

    static EVP_MD_CTX                 *proto, *md;

    if (md == NULL && ngx_http_stytch_tat_key_init(&proto, &md)
                      != NGX_OK)
    {
        goto failed;
    }

    /*
     * Every value that makes a session different, each with its length so
     * that no two different sets hash alike: the exchange's URI, profile
     * and organization (extra), and every claim but jti, iat, nbf, exp.
     * Where the location hashed the first of them already, from there.
     */

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);
    pre = &lcf->key_prefix;

    if (ngx_http_stytch_tat_key_prefixed(pre, ctx, extra, nextra)) {
        start = pre->md;
        from = pre->nextra;
        first = pre->nclaims;

    } else {
        start = proto;
        from = 0;
        first = 0;
    }

    c = ctx->claims;
    len = 0;

    for (j = from; j < nextra; j++) {
        len += sizeof(uint32_t) + extra[j].len;
    }

    for (i = first; i < ctx->nclaims; i++) {
        if (ngx_http_stytch_tat_key_keyed_claim(i)) {
            len += ngx_strlen(c[i].name) + 1 + sizeof(uint32_t) + 2
                   + c[i].len;
        }
    }

    /* a value is a header's at most: the pool takes what is unusually long */

    buf = (len <= sizeof(stack)) ? stack : ngx_pnalloc(r->pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = buf;

    for (j = from; j < nextra; j++) {
        p = ngx_http_stytch_tat_key_field(p, &extra[j]);
    }

    for (i = first; i < ctx->nclaims; i++) {
        if (ngx_http_stytch_tat_key_keyed_claim(i)) {
            p = ngx_http_stytch_tat_key_claim(p, &c[i]);
        }
    }

    if (EVP_MD_CTX_copy_ex(md, start) != 1
        || EVP_DigestUpdate(md, buf, p - buf) != 1
        || EVP_DigestFinal_ex(md, ctx->digest, &dlen) != 1)
    {
        goto failed;
    }

    ctx->keyed = 1;

    return NGX_OK;

failed:

    ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                  "stytch_tat: cache key digest failed");

    return NGX_ERROR;
}


/* an extra's part of the key: its length, its value */

static u_char *
ngx_http_stytch_tat_key_field(u_char *p, ngx_str_t *value)
{
    uint32_t  n;

    n = (uint32_t) value->len;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));

    return ngx_http_stytch_tat_key_bytes(p, value->data, value->len);
}


/* a claim's part of the key: its name, length, type, separator, value */

static u_char *
ngx_http_stytch_tat_key_claim(u_char *p, ngx_http_stytch_tat_claim_t *c)
{
    uint32_t  n;

    p = ngx_cpymem(p, c->name, ngx_strlen(c->name) + 1);

    n = (uint32_t) c->len;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));
    *p++ = (u_char) c->type;
    *p++ = c->sep;

    return ngx_http_stytch_tat_key_bytes(p, c->data, c->len);
}


/* whether a key's first fields are those its location hashed already */

static ngx_uint_t
ngx_http_stytch_tat_key_prefixed(ngx_http_stytch_tat_key_prefix_t *pre,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *extra, ngx_uint_t nextra)
{
    ngx_str_t                     v;
    ngx_uint_t                    i;
    ngx_http_stytch_tat_claim_t  *c;

    if (pre->md == NULL || nextra < pre->nextra
        || (pre->nclaims && nextra != pre->nextra)
        || ctx->nclaims < pre->nclaims)
    {
        return 0;
    }

    for (i = 0; i < pre->nextra; i++) {
        if (!ngx_http_stytch_tat_key_same(&extra[i], &pre->extra[i])) {
            return 0;
        }
    }

    c = ctx->claims;

    for (i = 0; i < pre->nclaims; i++) {
        v.data = (u_char *) c[i].data;
        v.len = c[i].len;

        if (c[i].type != NGX_HTTP_STYTCH_TAT_CLAIM_STRING || c[i].sep
            || !ngx_http_stytch_tat_key_same(&v, &pre->claim[i]))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * The first fields of a location's key that its configuration fixes: the
 * fingerprint, then the profile and organization, then iss and aud, as
 * far as each is written without variables (the configuration's text
 * itself).
 */

static void
ngx_http_stytch_tat_key_constant(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_key_prefix_t *pre)
{
    ngx_uint_t                 i;
    ngx_http_complex_value_t  *cv[2];

    ngx_memzero(pre, sizeof(ngx_http_stytch_tat_key_prefix_t));

    pre->extra[0].data = lcf->fingerprint;
    pre->extra[0].len = NGX_HTTP_STYTCH_TAT_DIGEST_LEN;
    pre->nextra = 1;

    cv[0] = lcf->profile_id;
    cv[1] = lcf->organization_id;

    for (i = 0; i < 2; i++) {
        if (cv[i] && cv[i]->lengths) {
            return;
        }

        if (cv[i]) {
            pre->extra[pre->nextra] = cv[i]->value;
        }

        pre->nextra++;
    }

    cv[0] = lcf->issuer;
    cv[1] = lcf->audience;

    for (i = 0; i < 2 && cv[i] && cv[i]->lengths == NULL; i++) {
        pre->claim[i] = cv[i]->value;
        pre->nclaims++;
    }
}


/*
 * At configuration time, a location's key prefix: the fields its session
 * keys start with that no request changes, as exchange_evaluate() passes
 * them (the fingerprint, profile and organization), then iss and aud.
 * The bytes are those ngx_http_stytch_tat_key_digest() would hash.
 */

ngx_int_t
ngx_http_stytch_tat_key_prefix(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *lcf)
{
    u_char                            *buf, *p;
    size_t                             len;
    ngx_uint_t                         i;
    EVP_MD                            *sha256;
    ngx_pool_cleanup_t                *cln;
    ngx_http_stytch_tat_claim_t        c;
    ngx_http_stytch_tat_key_prefix_t  *pre;

    static char                       *names[2] = { "iss", "aud" };

    pre = &lcf->key_prefix;

    ngx_http_stytch_tat_key_constant(lcf, pre);

    len = 0;

    for (i = 0; i < pre->nextra; i++) {
        len += sizeof(uint32_t) + pre->extra[i].len;
    }

    for (i = 0; i < pre->nclaims; i++) {
        len += ngx_strlen(names[i]) + 1 + sizeof(uint32_t) + 2
               + pre->claim[i].len;
    }

    buf = ngx_pnalloc(cf->temp_pool, len);
    if (buf == NULL) {
        return NGX_ERROR;
    }

    p = buf;

    for (i = 0; i < pre->nextra; i++) {
        p = ngx_http_stytch_tat_key_field(p, &pre->extra[i]);
    }

    ngx_memzero(&c, sizeof(ngx_http_stytch_tat_claim_t));

    for (i = 0; i < pre->nclaims; i++) {
        c.name = names[i];
        c.data = pre->claim[i].data;
        c.len = pre->claim[i].len;

        p = ngx_http_stytch_tat_key_claim(p, &c);
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    pre->md = EVP_MD_CTX_new();

    cln->handler = ngx_http_stytch_tat_key_cleanup;
    cln->data = pre->md;

    if (sha256 == NULL || pre->md == NULL
        || EVP_DigestInit_ex2(pre->md, sha256, NULL) != 1
        || EVP_DigestUpdate(pre->md, buf, p - buf) != 1)
    {
        EVP_MD_free(sha256);
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "stytch_tat: cache key digest failed");
        return NGX_ERROR;
    }

    EVP_MD_free(sha256);

    return NGX_OK;
}


static void
ngx_http_stytch_tat_key_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


/* a worker's SHA-256 context, ready for input, and one to copy it into */

static ngx_int_t
ngx_http_stytch_tat_key_init(EVP_MD_CTX **proto, EVP_MD_CTX **md)
{
    ngx_int_t   rc;
    EVP_MD     *sha256;

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);

    *proto = EVP_MD_CTX_new();
    *md = EVP_MD_CTX_new();

    rc = (sha256 && *proto && *md
          && EVP_DigestInit_ex2(*proto, sha256, NULL) == 1)
         ? NGX_OK : NGX_ERROR;

    /* the context holds its own reference */
    EVP_MD_free(sha256);

    if (rc != NGX_OK) {
        EVP_MD_CTX_free(*proto);
        EVP_MD_CTX_free(*md);
        *proto = NULL;
        *md = NULL;
    }

    return rc;
}


/*
 * The cache key's share of the configuration: everything that changes a
 * token or what Stytch is asked for, but is not a claim or a body value
 * evaluated per request (those are keyed per request).  A reload that
 * rotates the key or changes a ttl or duration then finds no old entry.
 */

ngx_int_t
ngx_http_stytch_tat_key_fingerprint(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf, ngx_http_stytch_tat_loc_conf_t *conf)
{
    u_char                      buf[NGX_TIME_T_LEN * 2 + NGX_INT_T_LEN + 8];
    u_char                     *p;
    ngx_uint_t                  i;
    unsigned int                len;
    EVP_MD_CTX                 *md;
    ngx_str_t                   part[6];
    ngx_http_stytch_tat_key_t  *key;

    key = mcf->keys.elts;

    p = ngx_sprintf(buf, "%T:%T:%ui", conf->token_ttl,
                    conf->session_duration, conf->refused_status);

    part[0] = key[0].kid;
    part[1] = key[0].jwk;
    part[2].data = buf;
    part[2].len = p - buf;
    part[3] = conf->uri;
    part[4] = mcf->project_id;
    ngx_str_set(&part[5], "stytch_tat 1");

    md = EVP_MD_CTX_new();

    if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        goto failed;
    }

    for (i = 0; i < 6; i++) {
        len = (unsigned int) part[i].len;

        /* each with its length: no two different sets hash alike */

        if (EVP_DigestUpdate(md, &len, sizeof(len)) != 1
            || EVP_DigestUpdate(md, part[i].data, part[i].len) != 1)
        {
            goto failed;
        }
    }

    if (EVP_DigestFinal_ex(md, conf->fingerprint, &len) != 1) {
        goto failed;
    }

    EVP_MD_CTX_free(md);

    return NGX_OK;

failed:

    EVP_MD_CTX_free(md);

    ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                  "stytch_tat: cache key digest failed");

    return NGX_ERROR;
}


/*
 * The binding claim's value for an identity: an HMAC-SHA-256 of its
 * digest, base64url, under a key that every node of a cluster shares and
 * no client has.  Unkeyed, anyone holding a session JWT and the
 * configuration could confirm a guessed email offline.
 */

ngx_int_t
ngx_http_stytch_tat_key_binding(ngx_http_stytch_tat_main_conf_t *mcf,
    u_char *digest, u_char *out)
{
    int           ok;
    u_char        mac[EVP_MAX_MD_SIZE];
    size_t        len;
    ngx_str_t     src, dst;
    EVP_MAC_CTX  *ctx;

    ctx = EVP_MAC_CTX_dup(mcf->binding_mac);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    len = 0;

    ok = EVP_MAC_update(ctx, digest, NGX_HTTP_STYTCH_TAT_DIGEST_LEN) == 1
         && EVP_MAC_final(ctx, mac, &len, sizeof(mac)) == 1
         && len == NGX_HTTP_STYTCH_TAT_DIGEST_LEN;

    EVP_MAC_CTX_free(ctx);

    if (!ok) {
        return NGX_ERROR;
    }

    src.data = mac;
    src.len = NGX_HTTP_STYTCH_TAT_DIGEST_LEN;
    dst.data = out;

    ngx_encode_base64url(&dst, &src);

    return NGX_OK;
}


/*
 * The binding's key, once per configuration: derived from the Stytch
 * secret (every node of a cluster has the same credentials), or without
 * stytch_tat_credentials from the first signing key, which every node
 * signs with too.  A rotation of the signing keys then leaves bound
 * sessions bound; a new secret starts them over.
 */

ngx_int_t
ngx_http_stytch_tat_key_binding_init(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf)
{
    int                         len;
    u_char                     *der, *p, key[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    EVP_MAC                    *hmac;
    ngx_int_t                   rc;
    unsigned int                klen;
    OSSL_PARAM                  params[2];
    EVP_MD_CTX                 *md;
    ngx_pool_cleanup_t         *cln;
    ngx_http_stytch_tat_key_t  *keys;

    static char  label[] = "ngx_http_stytch_tat_module binding v1";

    if (mcf->binding_mac) {
        return NGX_OK;
    }

    der = NULL;
    len = 0;

    if (mcf->authorization.len == 0) {
        if (mcf->keys.nelts == 0) {
            return NGX_DECLINED;
        }

        keys = mcf->keys.elts;
        len = i2d_PrivateKey(keys[0].pkey, &der);

        if (len <= 0) {
            return NGX_ERROR;
        }
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        OPENSSL_clear_free(der, len > 0 ? len : 0);
        return NGX_ERROR;
    }

    p = der ? der : mcf->authorization.data;

    rc = (EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1
          && EVP_DigestUpdate(md, label, sizeof(label)) == 1
          && EVP_DigestUpdate(md, p, der ? (size_t) len
                                         : mcf->authorization.len) == 1
          && EVP_DigestFinal_ex(md, key, &klen) == 1)
         ? NGX_OK : NGX_ERROR;

    EVP_MD_CTX_free(md);
    OPENSSL_clear_free(der, len > 0 ? len : 0);

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    mcf->binding_mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
    EVP_MAC_free(hmac);

    if (mcf->binding_mac == NULL) {
        OPENSSL_cleanse(key, sizeof(key));
        return NGX_ERROR;
    }

    cln->handler = ngx_http_stytch_tat_key_binding_cleanup;
    cln->data = mcf;

    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                 (char *) "SHA256", 0);
    params[1] = OSSL_PARAM_construct_end();

    rc = (EVP_MAC_init(mcf->binding_mac, key, sizeof(key), params) == 1)
         ? NGX_OK : NGX_ERROR;

    OPENSSL_cleanse(key, sizeof(key));

    return rc;
}


static void
ngx_http_stytch_tat_key_binding_cleanup(void *data)
{
    ngx_http_stytch_tat_main_conf_t  *mcf = data;

    EVP_MAC_CTX_free(mcf->binding_mac);
    mcf->binding_mac = NULL;
}
