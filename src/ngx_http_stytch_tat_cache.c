/*
 * The cache: a shared-memory zone (stytch_tat_zone) holding, per identity,
 * the minted token and the Stytch session, across workers and reloads.
 * This file owns the zone's directives, its memory and its locking: the
 * rbtree and LRU, finding, inserting, evicting, and copying entries out.
 * What a lookup decides is ngx_http_stytch_tat_cache_state.c's.
 *
 * Modelled on ngx_http_limit_req_module's zone: a slab pool, an rbtree
 * keyed by a SHA-256 digest of everything that makes a session different
 * (the full digest is compared), an LRU queue, expiry of a few stale nodes
 * per insert and forced eviction when the slab is full.  As there, a
 * lookup decides under the lock, then acts: writes the entry back, counts,
 * copies out.
 *
 * A node is also the single-flight lock: the first request for an identity
 * leaves a PENDING node with a lease and talks to Stytch; the others wait on
 * a timer until the node holds a session or a failure.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"


/* a Retry-After is delta-seconds or an HTTP-date: longer is not one */
#define NGX_HTTP_STYTCH_TAT_RETRY_AFTER_MAX  64

/* refresh Stytch's 5-minute session JWT this long before it expires */
#define NGX_HTTP_STYTCH_TAT_REFRESH_AHEAD    60
/* reuse a minted token for $stytch_tat_jwt until this long before exp */
#define NGX_HTTP_STYTCH_TAT_JWT_LEEWAY       30
/* the longest negative caching, s: see ngx_http_stytch_tat_cache_fail() */
#define NGX_HTTP_STYTCH_TAT_NEGATIVE_MAX     (24 * 86400)
/* a cache key's input up to this size is built on the stack */
#define NGX_HTTP_STYTCH_TAT_KEY_STACK        1024

/* the claims that are the same in every token for one identity */
#define ngx_http_stytch_tat_cache_keyed_claim(i)                              \
    ((i) < NGX_HTTP_STYTCH_TAT_JTI || (i) > NGX_HTTP_STYTCH_TAT_EXP)

/* an empty value may have no data: memcpy() must not see it */
#define ngx_http_stytch_tat_cache_key_bytes(p, data, len)                     \
    ((len) ? ngx_cpymem(p, data, len) : (p))

/* the same value: configuration text is never copied, so the same bytes */
#define ngx_http_stytch_tat_cache_key_same(a, b)                              \
    ((a)->len == (b)->len && ((a)->len == 0 || (a)->data == (b)->data))




static ngx_int_t ngx_http_stytch_tat_cache_key_init(EVP_MD_CTX **proto,
    EVP_MD_CTX **md);
static ngx_uint_t ngx_http_stytch_tat_cache_key_prefixed(
    ngx_http_stytch_tat_key_prefix_t *pre, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_str_t *extra, ngx_uint_t nextra);
static u_char *ngx_http_stytch_tat_cache_key_field(u_char *p,
    ngx_str_t *value);
static u_char *ngx_http_stytch_tat_cache_key_claim(u_char *p,
    ngx_http_stytch_tat_claim_t *c);
static void ngx_http_stytch_tat_cache_key_cleanup(void *data);
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_cache_apply(
    ngx_http_request_t *r, ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static ngx_int_t ngx_http_stytch_tat_cache_copy(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static ngx_int_t ngx_http_stytch_tat_cache_copy_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_ctx_t *ctx);


ngx_int_t
ngx_http_stytch_tat_cache_key(ngx_http_request_t *r,
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

    if (md == NULL && ngx_http_stytch_tat_cache_key_init(&proto, &md)
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

    if (ngx_http_stytch_tat_cache_key_prefixed(pre, ctx, extra, nextra)) {
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
        if (ngx_http_stytch_tat_cache_keyed_claim(i)) {
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
        p = ngx_http_stytch_tat_cache_key_field(p, &extra[j]);
    }

    for (i = first; i < ctx->nclaims; i++) {
        if (ngx_http_stytch_tat_cache_keyed_claim(i)) {
            p = ngx_http_stytch_tat_cache_key_claim(p, &c[i]);
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
ngx_http_stytch_tat_cache_key_field(u_char *p, ngx_str_t *value)
{
    uint32_t  n;

    n = (uint32_t) value->len;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));

    return ngx_http_stytch_tat_cache_key_bytes(p, value->data, value->len);
}


/* a claim's part of the key: its name, length, type, separator, value */

static u_char *
ngx_http_stytch_tat_cache_key_claim(u_char *p, ngx_http_stytch_tat_claim_t *c)
{
    uint32_t  n;

    p = ngx_cpymem(p, c->name, ngx_strlen(c->name) + 1);

    n = (uint32_t) c->len;
    p = ngx_cpymem(p, &n, sizeof(uint32_t));
    *p++ = (u_char) c->type;
    *p++ = c->sep;

    return ngx_http_stytch_tat_cache_key_bytes(p, c->data, c->len);
}


/* whether a key's first fields are those its location hashed already */

static ngx_uint_t
ngx_http_stytch_tat_cache_key_prefixed(ngx_http_stytch_tat_key_prefix_t *pre,
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
        if (!ngx_http_stytch_tat_cache_key_same(&extra[i], &pre->extra[i])) {
            return 0;
        }
    }

    c = ctx->claims;

    for (i = 0; i < pre->nclaims; i++) {
        v.data = (u_char *) c[i].data;
        v.len = c[i].len;

        if (c[i].type != NGX_HTTP_STYTCH_TAT_CLAIM_STRING || c[i].sep
            || !ngx_http_stytch_tat_cache_key_same(&v, &pre->claim[i]))
        {
            return 0;
        }
    }

    return 1;
}


/*
 * At configuration time, a location's key prefix: the fields its session
 * keys start with that no request changes, as exchange_evaluate() passes
 * them (the fingerprint, profile and organization), then iss and aud.
 * The bytes are those ngx_http_stytch_tat_cache_key() would hash.
 */

ngx_int_t
ngx_http_stytch_tat_cache_key_prefix(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *lcf)
{
    u_char                            *buf, *p;
    size_t                             len;
    ngx_uint_t                         i;
    EVP_MD                            *sha256;
    ngx_pool_cleanup_t                *cln;
    ngx_http_complex_value_t          *cv[2];
    ngx_http_stytch_tat_claim_t        c;
    ngx_http_stytch_tat_key_prefix_t  *pre;

    static char                       *names[2] = { "iss", "aud" };

    pre = &lcf->key_prefix;
    ngx_memzero(pre, sizeof(ngx_http_stytch_tat_key_prefix_t));

    pre->extra[0].data = lcf->fingerprint;
    pre->extra[0].len = NGX_HTTP_STYTCH_TAT_DIGEST_LEN;
    pre->nextra = 1;

    /* a value without variables is the configuration's text itself */

    cv[0] = lcf->profile_id;
    cv[1] = lcf->organization_id;

    for (i = 0; i < 2; i++) {
        if (cv[i] && cv[i]->lengths) {
            break;
        }

        if (cv[i]) {
            pre->extra[pre->nextra] = cv[i]->value;
        }

        pre->nextra++;
    }

    if (pre->nextra == NGX_HTTP_STYTCH_TAT_KEY_EXTRAS) {
        cv[0] = lcf->issuer;
        cv[1] = lcf->audience;

        for (i = 0; i < 2 && cv[i] && cv[i]->lengths == NULL; i++) {
            pre->claim[i] = cv[i]->value;
            pre->nclaims++;
        }
    }

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
        p = ngx_http_stytch_tat_cache_key_field(p, &pre->extra[i]);
    }

    ngx_memzero(&c, sizeof(ngx_http_stytch_tat_claim_t));

    for (i = 0; i < pre->nclaims; i++) {
        c.name = names[i];
        c.data = pre->claim[i].data;
        c.len = pre->claim[i].len;

        p = ngx_http_stytch_tat_cache_key_claim(p, &c);
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    pre->md = EVP_MD_CTX_new();

    cln->handler = ngx_http_stytch_tat_cache_key_cleanup;
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
ngx_http_stytch_tat_cache_key_cleanup(void *data)
{
    EVP_MD_CTX_free(data);
}


/* a worker's SHA-256 context, ready for input, and one to copy it into */

static ngx_int_t
ngx_http_stytch_tat_cache_key_init(EVP_MD_CTX **proto, EVP_MD_CTX **md)
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


static ngx_int_t
ngx_http_stytch_tat_cache_copy_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_ctx_t *ctx)
{
    u_char      *p, *q;
    size_t       len;
    ngx_str_t   *dst[4];
    ngx_uint_t   i, field;

    ctx->expires_at = tn->entry.expires_at;
    ctx->session_jwt_exp = tn->entry.jwt_exp;

    /* in the order of the fields, from F_SESSION_TOKEN on */

    dst[0] = &ctx->session_token;
    dst[1] = &ctx->session_jwt;
    dst[2] = &ctx->user_id;
    dst[3] = &ctx->session_id;

    q = tn->data;
    len = 0;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN; i++) {
        q += tn->len[i];
    }

    for (i = 0; i < 4; i++) {
        len += tn->len[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN + i];
    }

    /* one allocation from the request pool for the four, on a hit */

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < 4; i++) {
        field = NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN + i;

        dst[i]->len = tn->len[field];
        dst[i]->data = dst[i]->len ? p : NULL;

        p = ngx_cpymem(p, q, tn->len[field]);
        q += tn->len[field];
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_stytch_tat_cache_lookup(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_msec_t lease)
{
    ngx_int_t                        rc;
    ngx_pid_t                        gone;
    ngx_http_stytch_tat_node_t      *tn;
    ngx_http_stytch_tat_lookup_t     lk;
    ngx_http_stytch_tat_decision_t   d;

    ngx_memzero(&lk, sizeof(ngx_http_stytch_tat_lookup_t));

    lk.now = ngx_time();
    lk.now_ms = ngx_current_msec;
    lk.lease = lease;
    lk.ahead = NGX_HTTP_STYTCH_TAT_REFRESH_AHEAD;
    lk.waited = ctx->cache_waited;

    gone = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_zone_touch(zone, tn);

        /*
         * A leader whose worker is gone (killed: no pool cleanup ran to
         * release its claim) leads no more: its waiters need not wait for
         * the lease to run out.
         */

        if (tn->entry.leased
            && ngx_http_stytch_tat_cache_state_leased(&tn->entry, lk.now_ms)
            && ngx_http_stytch_tat_zone_gone(tn->entry.pid))
        {
            gone = tn->entry.pid;
            tn->entry.leased = 0;
        }
    }

    ngx_http_stytch_tat_cache_state_decide(tn ? &tn->entry : NULL, &lk, &d);

    tn = ngx_http_stytch_tat_cache_apply(r, zone, ctx, tn, &d);

    rc = tn ? ngx_http_stytch_tat_cache_copy(r, ctx, tn, &d)
            : NGX_HTTP_STYTCH_TAT_CACHE_BYPASS;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (gone) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: the worker process %P leading an "
                      "exchange in stytch_tat_zone \"%V\" is gone, its "
                      "lease passes on", gone, &zone->shm_zone->shm.name);
    }

    return rc;
}


/*
 * The decision's effects on the zone and the request: a new node for a
 * new leader, the entry written back, the cache status, the counters.
 * NULL when there is no room for a new node: the request goes alone.
 */

static ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_cache_apply(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_decision_t *d)
{
    ngx_http_stytch_tat_stats_t  *st;

    st = &zone->sh->stats;

    if (d->create) {
        tn = ngx_http_stytch_tat_zone_replace(zone, r, NULL, ctx->digest,
                                               NULL);
        if (tn == NULL) {
            ctx->cache_status = NGX_HTTP_STYTCH_TAT_BYPASS;
            return NULL;
        }
    }

    if (d->update) {
        /* this request leads: its lease is its claim, see release() */
        tn->entry = d->entry;
        tn->entry.pid = ngx_pid;
        ctx->cache_claim = d->entry.lease_until;
        ctx->cache_claimed = 1;
    }

    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_WAIT) {
        if (!ctx->cache_waited) {
            ctx->cache_waited = 1;
            ngx_atomic_fetch_add(&st->waits, 1);
        }

        return tn;
    }

    ctx->cache_status = d->status;

    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_FAILED) {
        return tn;
    }

    switch (d->status) {

    case NGX_HTTP_STYTCH_TAT_HIT:
        ngx_atomic_fetch_add(&st->hits, 1);
        break;

    case NGX_HTTP_STYTCH_TAT_STALE:
        ngx_atomic_fetch_add(&st->stale, 1);
        break;

    case NGX_HTTP_STYTCH_TAT_EXPIRED:
        ngx_atomic_fetch_add(&st->expired, 1);
        break;

    default: /* NGX_HTTP_STYTCH_TAT_MISS */
        ngx_atomic_fetch_add(&st->misses, 1);
        break;
    }

    return tn;
}


/* what the request takes from the node, while the zone is locked */

static ngx_int_t
ngx_http_stytch_tat_cache_copy(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d)
{
    if (d->action == NGX_HTTP_STYTCH_TAT_CACHE_FAILED) {

        /* the leader's outcome, for those who waited on it */

        ctx->status = tn->status;

        if (ngx_http_stytch_tat_zone_copy_out(r, tn,
                                               NGX_HTTP_STYTCH_TAT_F_ERROR,
                                               &ctx->error)
            != NGX_OK
            || ngx_http_stytch_tat_zone_copy_out(r, tn,
                                            NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER,
                                            &ctx->retry_after)
               != NGX_OK)
        {
            return NGX_ERROR;
        }

        return NGX_HTTP_STYTCH_TAT_CACHE_FAILED;
    }

    if (d->copy
        && ngx_http_stytch_tat_cache_copy_session(r, tn, ctx) != NGX_OK)
    {
        return NGX_ERROR;
    }

    return d->action;
}


void
ngx_http_stytch_tat_cache_store(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_t                    fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_http_stytch_tat_node_t  *tn;

    ngx_memzero(fields, sizeof(fields));

    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN] = ctx->session_token;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT] = ctx->session_jwt;
    fields[NGX_HTTP_STYTCH_TAT_F_USER_ID] = ctx->user_id;
    fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID] = ctx->session_id;
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_ERROR], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER], "");

    /*
     * The token sent to Stytch is not kept: it is never sent again, and
     * without it an entry fits a 2 KB slab class instead of a page.
     */

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);
    tn = ngx_http_stytch_tat_zone_replace(zone, r, tn, ctx->digest, fields);

    if (tn) {
        tn->entry.state = NGX_HTTP_STYTCH_TAT_NODE_SESSION;
        tn->entry.leased = 0;
        tn->entry.refreshing = 0;
        tn->entry.negative = 0;
        tn->entry.refresh_failed = 0;
        tn->entry.expires_at = ctx->expires_at;
        tn->entry.jwt_exp = ctx->session_jwt_exp;

    } else {
        /* no room: waiters must not wait on a node that will never fill */
        tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_zone_delete(zone, tn);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_stytch_tat_cache_fail(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t status, time_t negative)
{
    ngx_str_t                     fields[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_msec_t                    negative_ms;
    ngx_http_stytch_tat_node_t   *tn;
    ngx_http_stytch_tat_entry_t   e;

    /* a monotonic time 32 bits wide spans 24 days either way */

    negative_ms = (ngx_msec_t) ngx_min(negative,
                                       NGX_HTTP_STYTCH_TAT_NEGATIVE_MAX)
                  * 1000;

    ngx_memzero(fields, sizeof(fields));

    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_JWT], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_USER_ID], "");
    ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_SESSION_ID], "");
    fields[NGX_HTTP_STYTCH_TAT_F_ERROR] = ctx->error;
    fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER] = ctx->retry_after;

    if (fields[NGX_HTTP_STYTCH_TAT_F_ERROR].data == NULL) {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_ERROR], "");
    }

    /* waiters behind a rate-limited leader get its Retry-After */

    if (fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER].data == NULL
        || ctx->retry_after.len > NGX_HTTP_STYTCH_TAT_RETRY_AFTER_MAX)
    {
        ngx_str_set(&fields[NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER], "");
    }

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        e = tn->entry;

    } else {
        ngx_memzero(&e, sizeof(ngx_http_stytch_tat_entry_t));
    }

    if (ngx_http_stytch_tat_cache_state_fail(&e, ngx_current_msec,
                                             negative_ms))
    {
        /* a failed refresh of the session in tn: it stays, its lease goes */
        tn->entry = e;
        ngx_shmtx_unlock(&zone->shpool->mutex);
        return;
    }

    tn = ngx_http_stytch_tat_zone_replace(zone, r, tn, ctx->digest, fields);

    if (tn) {
        tn->entry = e;
        tn->status = (uint16_t) status;

    } else {
        /* no room: waiters must not wait on a node that will never fill */
        tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_zone_delete(zone, tn);
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_stytch_tat_cache_drop(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_http_stytch_tat_node_t  *tn;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_zone_delete(zone, tn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/*
 * A leader whose request ends before it records an outcome (its client
 * went away) gives up its claim at once, so that its waiters need not wait
 * for the lease to run out: the next request leads.  Nothing happens when
 * the outcome is in, or the claim was taken over.
 */

void
ngx_http_stytch_tat_cache_release(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_http_stytch_tat_node_t  *tn;

    if (!ctx->cache_claimed) {
        return;
    }

    ctx->cache_claimed = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    tn = ngx_http_stytch_tat_zone_find(zone, ctx->digest);

    /* RELEASE_UNLEASE clears the lease of a session in place */

    if (tn
        && ngx_http_stytch_tat_cache_state_release(&tn->entry, ctx->cache_claim)
           == NGX_HTTP_STYTCH_TAT_RELEASE_DELETE)
    {
        ngx_http_stytch_tat_zone_delete(zone, tn);
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


ngx_int_t
ngx_http_stytch_tat_cache_jwt(ngx_http_request_t *r,
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


void
ngx_http_stytch_tat_cache_store_jwt(ngx_http_request_t *r,
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


/*
 * A Stytch session JWT verified before, until it expires: its user and
 * session ids in ctx, its binding claim in *binding.  NGX_DECLINED: not
 * known.
 */

ngx_int_t
ngx_http_stytch_tat_cache_verified(ngx_http_request_t *r,
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
        && tn->entry.generation == zone->sh->jwks.generation)
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

void
ngx_http_stytch_tat_cache_store_verified(ngx_http_request_t *r,
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
