/*
 * A session JWT the client brings, checked: known good in the zone (a
 * token verified before, found by its signature and compared whole), or
 * verified against this worker's parse of Stytch's JWKS
 * (ngx_http_stytch_tat_stytch_jwks.c, ngx_http_stytch_tat_verify.c) and
 * kept in the zone until it expires.  Its users: stytch_tat_verify
 * (ngx_http_stytch_tat_client.c) and cluster mode (_cluster.c).
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"


/* an empty value may have no data: memcpy() must not see it */
#define ngx_http_stytch_tat_verified_copy(dst, src, len)                      \
    ((len) ? ngx_cpymem(dst, src, len) : (u_char *) (dst))


static ngx_int_t ngx_http_stytch_tat_verified_key(
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_str_t *token, u_char *digest);
static ngx_int_t ngx_http_stytch_tat_verified_token(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *token, ngx_str_t *binding,
    ngx_int_t *code, ngx_str_t *claim);
static ngx_int_t ngx_http_stytch_tat_verified_names(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_verify_result_t *res,
    ngx_str_t *claim);
static void ngx_http_stytch_tat_verified_refused(ngx_http_request_t *r,
    int vrc, ngx_http_stytch_tat_verify_result_t *res);
static ngx_int_t ngx_http_stytch_tat_verified_lookup(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding, time_t leeway);
static void ngx_http_stytch_tat_verified_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding,
    ngx_uint_t generation);


/*
 * A token verified before is known good until it expires.  It is found
 * by its signature, a quarter of it (the digest of the whole token would
 * cost more than the rest of the request), and must then equal the token
 * kept, byte for byte.
 */

static ngx_int_t
ngx_http_stytch_tat_verified_key(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_str_t *token, u_char *digest)
{
    ngx_str_t  sig;

    sig.data = ngx_strlchr(token->data, token->data + token->len, '.');
    sig.data = sig.data ? ngx_strlchr(sig.data + 1, token->data + token->len,
                                      '.')
                        : NULL;
    sig.data = sig.data ? sig.data + 1 : token->data;
    sig.len = token->data + token->len - sig.data;

    return ngx_http_stytch_tat_verified_digest(lcf, "stytch_tat verified",
                                               &sig, digest);
}


/*
 * NGX_OK: the check is done, *code is its result (NGX_HTTP_STYTCH_TAT_
 * VERIFY_*); NGX_AGAIN: a JWKS fetch is under way; NGX_BUSY: another
 * request fetches the JWKS and there are no keys yet; NGX_DECLINED: no
 * keys can be had now.
 */

ngx_int_t
ngx_http_stytch_tat_verified_check(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token, ngx_str_t *binding, ngx_int_t *code)
{
    u_char                       digest[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    ngx_int_t                    rc;
    ngx_str_t                    claim;
    ngx_http_stytch_tat_stats_t *st;

    st = &lcf->cache->sh->stats;
    ngx_str_null(&claim);
    ngx_str_null(&ctx->rbac);

    if (token->len > NGX_HTTP_STYTCH_TAT_VERIFY_TOKEN_MAX) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: session JWT refused: too_big "
                      "(%uz bytes)", token->len);
        *code = NGX_HTTP_STYTCH_TAT_VERIFY_TOO_BIG;
        ngx_atomic_fetch_add(&st->verify_failed[*code], 1);
        return NGX_OK;
    }

    if (ngx_http_stytch_tat_verified_key(lcf, token, digest) != NGX_OK) {
        return NGX_ERROR;
    }

    rc = ngx_http_stytch_tat_verified_lookup(r, lcf->cache, digest, token, ctx,
                                            &claim, lcf->jwks_leeway);
    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_OK) {
        ngx_atomic_fetch_add(&st->verify_cached, 1);
        *code = NGX_HTTP_STYTCH_TAT_VERIFY_OK;

    } else {
        rc = ngx_http_stytch_tat_verified_token(r, lcf, ctx, token,
                                                     binding, code, &claim);
        if (rc != NGX_OK) {
            return rc;
        }

        if (*code == NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
            ngx_atomic_fetch_add(&st->verify_ok, 1);

            /* its roles and factors, read once, kept with it */

            if (lcf->cache->rbac
                && ngx_http_stytch_tat_authz_claims(r, ctx, token) != NGX_OK)
            {
                return NGX_ERROR;
            }

            /*
             * A good token, whoever it binds: known good until it ends
             * (each location applies its own leeway to its exp), while
             * the JWKS document it verified against is the zone's.
             */

            ngx_http_stytch_tat_verified_store(r, lcf->cache, digest,
                                    token, ctx, &claim,
                                    lcf->cache->keys_generation);
        }
    }

    /* an expired token is refreshed only for the identity it binds */

    if (binding
        && (*code == NGX_HTTP_STYTCH_TAT_VERIFY_OK
            || *code == NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED)
        && (claim.len != binding->len
            || ngx_memcmp(claim.data, binding->data, claim.len) != 0))
    {
        *code = NGX_HTTP_STYTCH_TAT_VERIFY_BINDING;
    }

    if (*code != NGX_HTTP_STYTCH_TAT_VERIFY_OK) {
        ngx_atomic_fetch_add(&st->verify_failed[*code], 1);
    }

    return NGX_OK;
}


/*
 * The signature and claims, against this worker's keys: a kid that none
 * has fetches the JWKS again (rate-limited) and tries once more.  The
 * identity the token names goes to ctx, its binding claim to *claim.
 */

static ngx_int_t
ngx_http_stytch_tat_verified_token(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *token, ngx_str_t *binding, ngx_int_t *code, ngx_str_t *claim)
{
    int                                   vrc;
    ngx_int_t                             rc;
    ngx_uint_t                            unknown_kid;
    ngx_http_stytch_tat_verify_keys_t    *keys;
    ngx_http_stytch_tat_verify_params_t   params;
    ngx_http_stytch_tat_verify_result_t   res;

    ngx_memzero(&params, sizeof(params));
    params.project_id = (char *) lcf->jwks_project_id.data;
    params.project_id_len = lcf->jwks_project_id.len;
    params.leeway = lcf->jwks_leeway;
    params.skew = ngx_max(lcf->jwks_leeway, NGX_HTTP_STYTCH_TAT_VERIFY_SKEW);
    params.max_lifetime = lcf->jwks_max_lifetime;

    /*
     * The binding claim is copied out whoever asks: a token is verified
     * once per zone, and a cluster location may find it there later.
     */

    params.claim = NGX_HTTP_STYTCH_TAT_BINDING_CLAIM;
    params.claim_len = sizeof(NGX_HTTP_STYTCH_TAT_BINDING_CLAIM) - 1;

    for (unknown_kid = 0; /* void */; unknown_kid = 1) {

        keys = NULL;

        rc = ngx_http_stytch_tat_stytch_jwks_keys(r, lcf, ctx, unknown_kid,
                                                  &keys);
        if (rc != NGX_OK) {
            return rc;
        }

        if (keys == NULL && !unknown_kid) {
            return NGX_DECLINED;
        }

        params.now = ngx_time();

        vrc = ngx_http_stytch_tat_verify(keys, &params, (char *) token->data,
                                         token->len, &res);

        if (vrc != NGX_HTTP_STYTCH_TAT_VERIFY_UNKNOWN_KID || unknown_kid) {
            break;
        }

        ngx_http_stytch_tat_verify_result_free(&res);
    }

    *code = vrc;
    rc = NGX_OK;

    if (vrc == NGX_HTTP_STYTCH_TAT_VERIFY_ERROR) {
        rc = NGX_ERROR;

    } else if (vrc == NGX_HTTP_STYTCH_TAT_VERIFY_OK
               || vrc == NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED)
    {
        rc = ngx_http_stytch_tat_verified_names(r, ctx, &res, claim);

        if (vrc == NGX_HTTP_STYTCH_TAT_VERIFY_EXPIRED) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "stytch_tat: session JWT refused: expired "
                          "(session \"%V\")", &ctx->session_id);
        }

    } else {
        ngx_http_stytch_tat_verified_refused(r, vrc, &res);
    }

    ngx_http_stytch_tat_verify_result_free(&res);

    return rc;
}


/*
 * A zone key for a token (a token verified, an expired one refreshed): the
 * domain, the project and the token.
 */

ngx_int_t
ngx_http_stytch_tat_verified_digest(ngx_http_stytch_tat_loc_conf_t *lcf,
    const char *domain, ngx_str_t *token, u_char *digest)
{
    int           ok;
    unsigned int  len;
    EVP_MD_CTX   *md;

    static EVP_MD  *sha256;

    if (sha256 == NULL) {
        /* fetched once per process: an implicit fetch per token costs */
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (sha256 == NULL) {
            return NGX_ERROR;
        }
    }

    md = EVP_MD_CTX_new();
    if (md == NULL) {
        return NGX_ERROR;
    }

    ok = EVP_DigestInit_ex2(md, sha256, NULL) == 1
         && EVP_DigestUpdate(md, domain, ngx_strlen(domain) + 1) == 1
         && EVP_DigestUpdate(md, lcf->jwks_project_id.data,
                             lcf->jwks_project_id.len) == 1
         && EVP_DigestUpdate(md, "", 1) == 1
         && EVP_DigestUpdate(md, token->data, token->len) == 1
         && EVP_DigestFinal_ex(md, digest, &len) == 1;

    EVP_MD_CTX_free(md);

    return ok ? NGX_OK : NGX_ERROR;
}


/* the token's own strings, copied into ctx and *claim: res goes now */

static ngx_int_t
ngx_http_stytch_tat_verified_names(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_verify_result_t *res,
    ngx_str_t *claim)
{
    ctx->user_id.data = ngx_pnalloc(r->pool, res->sub.len + 1);
    ctx->session_id.data = ngx_pnalloc(r->pool, res->session_id.len + 1);
    claim->data = ngx_pnalloc(r->pool, res->claim.len + 1);

    if (ctx->user_id.data == NULL || ctx->session_id.data == NULL
        || claim->data == NULL)
    {
        return NGX_ERROR;
    }

    ctx->user_id.len = res->sub.len;
    ctx->session_id.len = res->session_id.len;
    claim->len = res->claim.len;

    /* an expired token may lack any of them: no memcpy of NULL */

    (void) ngx_http_stytch_tat_verified_copy(ctx->user_id.data,
                                             res->sub.data, res->sub.len);
    (void) ngx_http_stytch_tat_verified_copy(ctx->session_id.data,
                                             res->session_id.data,
                                             res->session_id.len);
    (void) ngx_http_stytch_tat_verified_copy(claim->data, res->claim.data,
                                             res->claim.len);
    ctx->session_jwt_exp = (time_t) res->exp;

    return NGX_OK;
}


/* the kid is the sender's: printable ASCII only reaches the log */

static void
ngx_http_stytch_tat_verified_refused(ngx_http_request_t *r, int vrc,
    ngx_http_stytch_tat_verify_result_t *res)
{
    u_char  kid[64];
    size_t  i, n;

    n = ngx_min(res->kid_len, sizeof(kid));

    for (i = 0; i < n; i++) {
        kid[i] = (res->kid[i] >= 0x20 && res->kid[i] < 0x7f
                  && res->kid[i] != '"' && res->kid[i] != '\\')
                 ? (u_char) res->kid[i] : '?';
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: session JWT refused: %s (kid \"%*s\")",
                  ngx_http_stytch_tat_verify_code_name(vrc), n, kid);
}


/*
 * A Stytch session JWT verified before, until it expires: its user and
 * session ids in ctx, its binding claim in *binding.  NGX_DECLINED: not
 * known.
 */

static ngx_int_t
ngx_http_stytch_tat_verified_lookup(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding, time_t leeway)
{
    u_char                      *p;
    ngx_uint_t                   i;
    ngx_int_t                    rc;
    ngx_http_stytch_tat_node_t  *tn;

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, digest);

    /* the same signature is not enough: the same token, byte for byte */

    p = NULL;

    if (tn && tn->len[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] == token->len) {
        p = tn->data;

        for (i = 0; i < NGX_HTTP_STYTCH_TAT_F_SESSION_JWT; i++) {
            p += tn->len[i];
        }

        if (ngx_memcmp(p, token->data, token->len) != 0) {
            p = NULL;
        }
    }

    /*
     * Good for this location's leeway (locations sharing the zone may
     * differ), and verified with the JWKS document the zone has now: one
     * that dropped the token's key makes it verify again, and fail.
     */

    if (p && tn->entry.state == NGX_HTTP_STYTCH_TAT_NODE_SESSION
        && tn->entry.jwt_exp > ngx_time() - leeway
        && tn->entry.generation == zone->sh->jwks.doc.generation)
    {
        ngx_http_stytch_tat_zone_touch(zone, tn);

        rc = NGX_OK;

        if (ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_USER_ID, &ctx->user_id)
            != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_SESSION_ID,
                                &ctx->session_id)
               != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_BINDING, binding)
               != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_CLAIMS, &ctx->rbac)
               != NGX_OK)
        {
            rc = NGX_ERROR;
        }

        ctx->session_jwt_exp = tn->entry.jwt_exp;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    return rc;
}


/* a token that verified, known good until its exp (and a leeway) */

static void
ngx_http_stytch_tat_verified_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, u_char *digest, ngx_str_t *token,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *binding,
    ngx_uint_t generation)
{
    ngx_str_t                    fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_http_stytch_tat_node_t  *tn, *old;

    ngx_memzero(fields, sizeof(fields));
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] = *token;
    fields[NGX_HTTP_STYTCH_TAT_F_USER_ID] = ctx->user_id;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID] = ctx->session_id;
    fields[NGX_HTTP_STYTCH_TAT_F_BINDING] = *binding;
    fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS] = ctx->rbac;

    if (ctx->rbac.len == 0) {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS], "");
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    old = ngx_http_stytch_tat_zone_find(zone, digest);

    tn = ngx_http_stytch_tat_zone_replace(zone, r, old, digest, fields);

    if (tn) {
        /* kept while the laxest leeway might still take it */

        ngx_memzero(&tn->entry, sizeof(ngx_http_stytch_tat_entry_t));
        tn->entry.state = NGX_HTTP_STYTCH_TAT_NODE_SESSION;
        tn->entry.expires_at = ctx->session_jwt_exp
                               + NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX;
        tn->entry.jwt_exp = ctx->session_jwt_exp;
        tn->entry.generation = generation;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* what a client's session that is not taken left in ctx */

void
ngx_http_stytch_tat_verified_forget(ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_null(&ctx->session_token);
    ngx_str_null(&ctx->session_jwt);
    ngx_str_null(&ctx->user_id);
    ngx_str_null(&ctx->session_id);
    ngx_str_null(&ctx->rbac);
    ctx->expires_at = 0;
    ctx->session_jwt_exp = 0;
}
