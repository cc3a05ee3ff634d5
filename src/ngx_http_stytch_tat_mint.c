/*
 * Minting: the Trusted Auth Token for a request's identity, signed with the
 * first stytch_tat_signing_key, and the $stytch_tat_jwt variable, whose
 * token the zone keeps for reuse while it is fresh.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"

#include <openssl/rand.h>


/* 128 bits of CSPRNG output per jti, 22 characters of base64url */
#define NGX_HTTP_STYTCH_TAT_JTI_BYTES     16

/* reuse a minted token for $stytch_tat_jwt until this long before exp */
#define NGX_HTTP_STYTCH_TAT_JWT_LEEWAY    30


static ngx_int_t ngx_http_stytch_tat_mint_random_jti(ngx_http_request_t *r,
    ngx_str_t *jti);
static ngx_int_t ngx_http_stytch_tat_mint_jwt_cached(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx);
static void ngx_http_stytch_tat_mint_jwt_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_mint_sign_jwt(ngx_http_request_t *r,
    ngx_http_stytch_tat_key_t *key, u_char *payload, size_t len,
    ngx_str_t *jwt);


ngx_int_t
ngx_http_stytch_tat_mint(ngx_http_request_t *r, ngx_http_stytch_tat_ctx_t *ctx)
{
    int                               rc;
    time_t                            now;
    u_char                           *payload;
    size_t                            len, bad;
    ngx_int_t                         irc;
    ngx_http_stytch_tat_key_t        *key;
    ngx_http_stytch_tat_claim_t      *c;
    ngx_http_stytch_tat_loc_conf_t   *lcf;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    if (ctx->minted) {
        return ctx->mint_rc;
    }

    irc = ngx_http_stytch_tat_identity_evaluate(r, ctx);
    if (irc != NGX_OK) {
        return irc;
    }

    /* once per request, whatever the outcome */

    ctx->minted = 1;
    ctx->mint_rc = NGX_ERROR;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    if (ctx->jti.len == 0
        && ngx_http_stytch_tat_mint_random_jti(r, &ctx->jti) != NGX_OK)
    {
        return NGX_ERROR;
    }

    c = ctx->claims;
    now = ngx_time();

    c[NGX_HTTP_STYTCH_TAT_JTI].data = ctx->jti.data;
    c[NGX_HTTP_STYTCH_TAT_JTI].len = ctx->jti.len;
    c[NGX_HTTP_STYTCH_TAT_IAT].number = now;
    c[NGX_HTTP_STYTCH_TAT_NBF].number = now;
    c[NGX_HTTP_STYTCH_TAT_EXP].number = now + lcf->token_ttl;

    ctx->jwt_exp = now + lcf->token_ttl;

    payload = ngx_pnalloc(r->pool, NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX);
    if (payload == NULL) {
        return NGX_ERROR;
    }

    rc = ngx_http_stytch_tat_claims_json(c, ctx->nclaims, payload,
                                         NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX,
                                         &len, &bad);

    if (rc == NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM) {
        return NGX_ERROR;
    }

    if (rc != NGX_HTTP_STYTCH_TAT_CLAIM_OK) {
        /* the value itself is the client's: name the claim, not its value */
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: no token minted: claim \"%s\": %s",
                      bad < ctx->nclaims ? c[bad].name : "*",
                      ngx_http_stytch_tat_claim_strerror(rc));
        ctx->mint_rc = NGX_HTTP_BAD_REQUEST;
        return NGX_HTTP_BAD_REQUEST;
    }

    key = mcf->keys.elts;

    if (ngx_http_stytch_tat_mint_sign_jwt(r, &key[0], payload, len, &ctx->jwt)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    ctx->mint_alg = key[0].alg;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "stytch_tat: minted %s token, jti \"%V\"",
                   ngx_http_stytch_tat_alg_name(key[0].alg), &ctx->jti);

    ctx->mint_rc = NGX_OK;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_mint_random_jti(ngx_http_request_t *r, ngx_str_t *jti)
{
    u_char  rnd[NGX_HTTP_STYTCH_TAT_JTI_BYTES];

    if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "stytch_tat: RAND_bytes() failed");
        return NGX_ERROR;
    }

    jti->data = ngx_pnalloc(r->pool,
                            ngx_http_stytch_tat_b64url_len(sizeof(rnd)));
    if (jti->data == NULL) {
        return NGX_ERROR;
    }

    jti->len = ngx_http_stytch_tat_b64url_encode(jti->data, rnd, sizeof(rnd));

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_mint_sign_jwt(ngx_http_request_t *r,
    ngx_http_stytch_tat_key_t *key, u_char *payload, size_t len,
    ngx_str_t *jwt)
{
    u_char  *p;
    size_t   siglen;
    u_char   sig[NGX_HTTP_STYTCH_TAT_SIG_MAX];

    /* header "." payload "." signature, all base64url, one allocation */

    p = ngx_pnalloc(r->pool, key->header.len + 1
                             + ngx_http_stytch_tat_b64url_len(len) + 1
                             + ngx_http_stytch_tat_b64url_len(key->sig_len));
    if (p == NULL) {
        return NGX_ERROR;
    }

    jwt->data = p;

    p = ngx_cpymem(p, key->header.data, key->header.len);
    *p++ = '.';
    p += ngx_http_stytch_tat_b64url_encode(p, payload, len);

    if (ngx_http_stytch_tat_signer_sign(key->signer, jwt->data,
                                        p - jwt->data, sig, &siglen)
        != 0)
    {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "stytch_tat: signing with key \"%V\" failed",
                      &key->kid);
        return NGX_ERROR;
    }

    *p++ = '.';
    p += ngx_http_stytch_tat_b64url_encode(p, sig, siglen);

    jwt->len = p - jwt->data;

    return NGX_OK;
}


ngx_int_t
ngx_http_stytch_tat_mint_jwt_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                        extra[2];
    ngx_http_stytch_tat_ctx_t       *ctx;
    ngx_http_stytch_tat_loc_conf_t  *lcf;

    ctx = ngx_http_stytch_tat_ctx_get(r);
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);

    if (ctx->jwt.len == 0 && lcf->cache
        && ngx_http_stytch_tat_identity_evaluate(r, ctx) == NGX_OK
        && !ctx->explicit_jti)
    {
        /* with a cache, one token per identity until shortly before exp */

        if (!ctx->keyed) {
            /* the signing key and ttl are in the fingerprint: a rotation
             * or a new ttl finds no old token */

            ngx_str_set(&extra[0], "$stytch_tat_jwt");
            extra[1].data = lcf->fingerprint;
            extra[1].len = NGX_HTTP_STYTCH_TAT_DIGEST_LEN;

            if (ngx_http_stytch_tat_key_digest(r, ctx, extra, 2) != NGX_OK) {
                return NGX_ERROR;
            }
        }

        if (ngx_http_stytch_tat_mint_jwt_cached(r, lcf->cache, ctx) == NGX_DECLINED
            && ngx_http_stytch_tat_mint(r, ctx) == NGX_OK)
        {
            ngx_http_stytch_tat_mint_jwt_store(r, lcf->cache, ctx);
            ngx_http_stytch_tat_zone_count(lcf->cache,
                                          NGX_HTTP_STYTCH_TAT_COUNT_MINT_RS256
                                          + ctx->mint_alg - 1, 0);
        }
    }

    if (ctx->jwt.len == 0 && ngx_http_stytch_tat_mint(r, ctx) != NGX_OK) {
        /* no identity or bad input: an empty value, never a broken token */
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->jwt.len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = ctx->jwt.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_mint_jwt_cached(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t                    rc;
    ngx_http_stytch_tat_node_t  *tn;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn && tn->len[NGX_HTTP_STYTCH_TAT_F_JWT]
        && tn->entry.token_exp > ngx_time() + NGX_HTTP_STYTCH_TAT_JWT_LEEWAY)
    {
        ngx_http_stytch_tat_zone_touch(zone, tn);

        ctx->jwt_exp = tn->entry.token_exp;
        rc = ngx_http_stytch_tat_zone_copy_out(r, tn,
                                                NGX_HTTP_STYTCH_TAT_F_JWT,
                                                &ctx->jwt);

        /* a token reused is no session hit: counted apart */
        ngx_atomic_fetch_add(&zone->sh->stats.jwt_hits, 1);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


static void
ngx_http_stytch_tat_mint_jwt_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_t                    fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_http_stytch_tat_node_t  *tn, *old;

    ngx_memzero(fields, sizeof(fields));
    fields[NGX_HTTP_STYTCH_TAT_F_JWT] = ctx->jwt;

    ngx_shmtx_lock(&zone->shpool->mutex);

    old = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    ngx_atomic_fetch_add(&zone->sh->stats.jwt_misses, 1);

    tn = ngx_http_stytch_tat_zone_replace(zone, r, old, ctx->digest, fields);

    if (tn) {
        tn->entry.token_exp = ctx->jwt_exp;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}
