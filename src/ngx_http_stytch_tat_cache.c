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


#define NGX_HTTP_STYTCH_TAT_F_JWT            0
#define NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN  1
#define NGX_HTTP_STYTCH_TAT_F_SESSION_JWT    2
#define NGX_HTTP_STYTCH_TAT_F_USER_ID        3
#define NGX_HTTP_STYTCH_TAT_F_SESSION_ID     4
#define NGX_HTTP_STYTCH_TAT_F_ERROR          5
#define NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER    6
#define NGX_HTTP_STYTCH_TAT_FIELDS           7

/*
 * A node of a Stytch session JWT verified here (its digest is the token
 * signature's) keeps the token where a session keeps its JWT, its binding
 * claim where a session keeps the minted token, and the user and session
 * ids where a session does.
 */
#define NGX_HTTP_STYTCH_TAT_F_BINDING        NGX_HTTP_STYTCH_TAT_F_JWT

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


typedef struct {
    u_char                        color;
    u_char                        dummy;
    uint16_t                      status;        /* FAILED: the answer */
    uint16_t                      len[NGX_HTTP_STYTCH_TAT_FIELDS];
    uint32_t                      touched;       /* last to the LRU head */
    ngx_queue_t                   queue;
    u_char                        digest[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    ngx_http_stytch_tat_entry_t   entry;
    u_char                        data[1];
} ngx_http_stytch_tat_node_t;


static ngx_http_stytch_tat_zone_t *ngx_http_stytch_tat_cache_zone_add(
    ngx_conf_t *cf, ngx_str_t *name);
static ngx_int_t ngx_http_stytch_tat_cache_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_stytch_tat_cache_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
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
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_cache_find(
    ngx_http_stytch_tat_zone_t *zone, u_char *digest);
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_cache_alloc(
    ngx_http_stytch_tat_zone_t *zone, ngx_http_request_t *r, size_t len);
static void ngx_http_stytch_tat_cache_delete(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn);
static void ngx_http_stytch_tat_cache_expire(ngx_http_stytch_tat_zone_t *zone,
    ngx_uint_t force);
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_cache_replace(
    ngx_http_stytch_tat_zone_t *zone, ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *old, u_char *digest, ngx_str_t *fields);
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_cache_apply(
    ngx_http_request_t *r, ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static void ngx_http_stytch_tat_cache_touch(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn);
static ngx_int_t ngx_http_stytch_tat_cache_copy(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_decision_t *d);
static ngx_int_t ngx_http_stytch_tat_cache_copy_out(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_uint_t field, ngx_str_t *dst);
static ngx_int_t ngx_http_stytch_tat_cache_copy_session(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_http_stytch_tat_ctx_t *ctx);


char *
ngx_http_stytch_tat_cache_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_main_conf_t *mcf = conf;

    u_char                      *p;
    ssize_t                      size;
    ngx_str_t                   *value, name, s;
    ngx_http_stytch_tat_zone_t  *zone, **zp;

    value = cf->args->elts;

    if (ngx_strncmp(value[1].data, "zone=", 5) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected "
                           "\"zone=NAME:SIZE\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    name.data = value[1].data + 5;

    p = (u_char *) ngx_strchr(name.data, ':');

    if (p == NULL || p == name.data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone \"%V\", expected \"zone=NAME:SIZE\"",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    name.len = p - name.data;

    s.data = p + 1;
    s.len = value[1].data + value[1].len - s.data;

    size = ngx_parse_size(&s);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small, at least %uzk",
                           &name, 8 * ngx_pagesize / 1024);
        return NGX_CONF_ERROR;
    }

    zone = ngx_http_stytch_tat_cache_zone_add(cf, &name);
    if (zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (zone->declared) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    /* in place of the stand-in size a stytch_tat_cache may have given it */

    zone->shm_zone->shm.size = size;
    zone->declared = 1;

    zp = ngx_array_push(&mcf->zones);
    if (zp == NULL) {
        return NGX_CONF_ERROR;
    }

    *zp = zone;

    return NGX_CONF_OK;
}


char *
ngx_http_stytch_tat_cache(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t  *value;

    if (lcf->cache != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        lcf->cache = NULL;
        return NGX_CONF_OK;
    }

    /* like limit_req zone=, the zone may be declared further on */

    lcf->cache = ngx_http_stytch_tat_cache_zone_add(cf, &value[1]);
    if (lcf->cache == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * The zone of this name, made on its first mention, by stytch_tat_zone or
 * by stytch_tat_cache.  nginx refuses a zone of size 0 without naming the
 * directive that used it: an undeclared zone gets a stand-in size, so that
 * init_zone runs and names the stytch_tat_cache that wants it.
 */

static ngx_http_stytch_tat_zone_t *
ngx_http_stytch_tat_cache_zone_add(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_shm_zone_t              *shm_zone;
    ngx_http_stytch_tat_zone_t  *zone;

    shm_zone = ngx_shared_memory_add(cf, name, 0,
                                     &ngx_http_stytch_tat_module);
    if (shm_zone == NULL) {
        return NULL;
    }

    if (shm_zone->data) {
        return shm_zone->data;
    }

    zone = ngx_pcalloc(cf->pool, sizeof(ngx_http_stytch_tat_zone_t));
    if (zone == NULL) {
        return NULL;
    }

    zone->shm_zone = shm_zone;
    zone->file = cf->conf_file->file.name;
    zone->line = cf->conf_file->line;

    shm_zone->data = zone;
    shm_zone->init = ngx_http_stytch_tat_cache_init_zone;
    shm_zone->shm.size = 8 * ngx_pagesize;

    return zone;
}


static ngx_int_t
ngx_http_stytch_tat_cache_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_stytch_tat_zone_t  *ozone = data;

    size_t                       len;
    ngx_http_stytch_tat_zone_t  *zone;

    zone = shm_zone->data;

    if (!zone->declared) {
        ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                      "unknown zone \"%V\": declare it with "
                      "\"stytch_tat_zone zone=%V:SIZE;\" before in %V:%ui",
                      &shm_zone->shm.name, &shm_zone->shm.name, &zone->file,
                      zone->line);
        return NGX_ERROR;
    }

    if (ozone) {
        /* a reload: keep the entries of the zone of the same name and size */
        zone->sh = ozone->sh;
        zone->shpool = ozone->shpool;
        return NGX_OK;
    }

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;
        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_http_stytch_tat_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_stytch_tat_cache_rbtree_insert_value);

    ngx_queue_init(&zone->sh->queue);

    len = sizeof(" in stytch_tat_zone \"\"") + shm_zone->shm.name.len;

    zone->shpool->log_ctx = ngx_slab_alloc(zone->shpool, len);
    if (zone->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(zone->shpool->log_ctx, " in stytch_tat_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone evicts entries; it need not say so at crit level */
    zone->shpool->log_nomem = 0;

    return NGX_OK;
}


static void
ngx_http_stytch_tat_cache_rbtree_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t           **p;
    ngx_http_stytch_tat_node_t   *tn, *tnt;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else { /* node->key == temp->key */

            tn = (ngx_http_stytch_tat_node_t *) &node->color;
            tnt = (ngx_http_stytch_tat_node_t *) &temp->color;

            p = (ngx_memcmp(tn->digest, tnt->digest,
                            NGX_HTTP_STYTCH_TAT_DIGEST_LEN) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


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


static ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_cache_find(ngx_http_stytch_tat_zone_t *zone,
    u_char *digest)
{
    ngx_int_t                    rc;
    ngx_rbtree_key_t             key;
    ngx_rbtree_node_t           *node, *sentinel;
    ngx_http_stytch_tat_node_t  *tn;

    ngx_memcpy(&key, digest, sizeof(ngx_rbtree_key_t));

    node = zone->sh->rbtree.root;
    sentinel = zone->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (key < node->key) {
            node = node->left;
            continue;
        }

        if (key > node->key) {
            node = node->right;
            continue;
        }

        tn = (ngx_http_stytch_tat_node_t *) &node->color;

        rc = ngx_memcmp(digest, tn->digest, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

        if (rc == 0) {
            return tn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_cache_alloc(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_request_t *r, size_t len)
{
    size_t                       size;
    ngx_uint_t                   i;
    ngx_rbtree_node_t           *node;
    ngx_http_stytch_tat_node_t  *tn;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_stytch_tat_node_t, data) + len;

    ngx_http_stytch_tat_cache_expire(zone, 0);

    node = ngx_slab_alloc_locked(zone->shpool, size);

    /*
     * A full zone evicts the least recently used entries.  Entries come in
     * several slab size classes, and freeing small ones may free no slot
     * of the size needed: keep going, up to a bound.
     */

    for (i = 0; node == NULL && i < 64; i++) {
        if (ngx_queue_empty(&zone->sh->queue)) {
            break;
        }

        ngx_http_stytch_tat_cache_expire(zone, 1);
        node = ngx_slab_alloc_locked(zone->shpool, size);
    }

    if (node == NULL) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: an entry of %uz bytes does not fit in "
                      "stytch_tat_zone \"%V\": served uncached", size,
                      &zone->shm_zone->shm.name);
        ngx_atomic_fetch_add(&zone->sh->stats.uncached, 1);
        return NULL;
    }

    tn = (ngx_http_stytch_tat_node_t *) &node->color;

    ngx_memzero(tn, offsetof(ngx_http_stytch_tat_node_t, data));

    return tn;
}


static void
ngx_http_stytch_tat_cache_delete(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) tn - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&tn->queue);
    ngx_rbtree_delete(&zone->sh->rbtree, node);
    ngx_slab_free_locked(zone->shpool, node);

    zone->sh->entries--;
}


static void
ngx_http_stytch_tat_cache_expire(ngx_http_stytch_tat_zone_t *zone,
    ngx_uint_t force)
{
    time_t                       now;
    ngx_msec_t                   now_ms;
    ngx_uint_t                   n;
    ngx_queue_t                 *q;
    ngx_http_stytch_tat_node_t  *tn;

    now = ngx_time();
    now_ms = ngx_current_msec;

    /* at most two expired entries per insert, or one forced eviction */

    for (n = 0; n < 3; n++) {

        if (ngx_queue_empty(&zone->sh->queue)) {
            return;
        }

        q = ngx_queue_last(&zone->sh->queue);
        tn = ngx_queue_data(q, ngx_http_stytch_tat_node_t, queue);

        if (ngx_http_stytch_tat_cache_state_leased(&tn->entry, now_ms)) {
            /* a leader is at work on it: waiters depend on it */
            return;
        }

        if (!force) {
            if (!ngx_http_stytch_tat_cache_state_expired(&tn->entry, now,
                                                         now_ms))
            {
                return;
            }

            if (n == 2) {
                return;
            }

        } else {
            ngx_atomic_fetch_add(&zone->sh->stats.evictions, 1);
        }

        ngx_http_stytch_tat_cache_delete(zone, tn);

        if (force) {
            return;
        }
    }
}


/*
 * A new node in place of old (which may be NULL): the digest, the times and
 * state of old are kept unless the caller changes them after; fields[i]
 * with data == NULL keeps old's field.  Called with the zone locked.
 */

static ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_cache_replace(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_request_t *r, ngx_http_stytch_tat_node_t *old, u_char *digest,
    ngx_str_t *fields)
{
    u_char                      *p, *q;
    size_t                       len, flen[NGX_HTTP_STYTCH_TAT_FIELDS];
    ngx_uint_t                   i;
    ngx_rbtree_node_t           *node;
    ngx_http_stytch_tat_node_t  *tn;

    len = 0;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_FIELDS; i++) {
        flen[i] = (fields && fields[i].data) ? fields[i].len
                  : (old ? old->len[i] : 0);

        if (flen[i] > 65535) {
            return NULL;
        }

        len += flen[i];
    }

    /* the old node must not be evicted to make room for its successor */

    if (old) {
        ngx_queue_remove(&old->queue);
        ngx_queue_init(&old->queue);
    }

    tn = ngx_http_stytch_tat_cache_alloc(zone, r, len);

    if (old) {
        ngx_queue_insert_head(&zone->sh->queue, &old->queue);
    }

    if (tn == NULL) {
        return NULL;
    }

    if (old) {
        ngx_memcpy(tn, old, offsetof(ngx_http_stytch_tat_node_t, data));
    }

    ngx_memcpy(tn->digest, digest, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

    p = tn->data;
    q = old ? old->data : NULL;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_FIELDS; i++) {
        if (fields && fields[i].data) {
            ngx_memcpy(p, fields[i].data, flen[i]);

        } else if (old) {
            ngx_memcpy(p, q, flen[i]);
        }

        if (q) {
            q += old->len[i];
        }

        tn->len[i] = (uint16_t) flen[i];
        p += flen[i];
    }

    if (old) {
        ngx_http_stytch_tat_cache_delete(zone, old);
    }

    node = (ngx_rbtree_node_t *)
               ((u_char *) tn - offsetof(ngx_rbtree_node_t, color));

    ngx_memcpy(&node->key, digest, sizeof(ngx_rbtree_key_t));

    ngx_rbtree_insert(&zone->sh->rbtree, node);
    ngx_queue_insert_head(&zone->sh->queue, &tn->queue);
    tn->touched = (uint32_t) ngx_time();

    zone->sh->entries++;

    return tn;
}


static ngx_int_t
ngx_http_stytch_tat_cache_copy_out(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_uint_t field, ngx_str_t *dst)
{
    u_char      *p;
    ngx_uint_t   i;

    p = tn->data;

    for (i = 0; i < field; i++) {
        p += tn->len[i];
    }

    dst->len = tn->len[field];

    if (dst->len == 0) {
        dst->data = NULL;
        return NGX_OK;
    }

    /* a hit allocates from the request pool only */

    dst->data = ngx_pnalloc(r->pool, dst->len);
    if (dst->data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(dst->data, p, dst->len);

    return NGX_OK;
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_cache_touch(zone, tn);

        /*
         * A leader whose worker is gone (killed: no pool cleanup ran to
         * release its claim) leads no more: its waiters need not wait for
         * the lease to run out.
         */

        if (tn->entry.leased
            && ngx_http_stytch_tat_cache_state_leased(&tn->entry, lk.now_ms)
            && ngx_http_stytch_tat_cache_gone(tn->entry.pid))
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


/* whether a process holding a lease is gone; never this one */

ngx_uint_t
ngx_http_stytch_tat_cache_gone(ngx_pid_t pid)
{
    return pid > 0 && pid != ngx_pid && kill(pid, 0) == -1
           && ngx_errno == NGX_ESRCH;
}


/*
 * A node found goes to the LRU head at most once a second, like an
 * access-time "relatime": moving it writes its two neighbours' links, cold
 * lines of other identities when the zone holds many, and within a second
 * the order only decides between nodes that eviction should spare alike.
 * A node in use still moves at least once a second.
 */

static void
ngx_http_stytch_tat_cache_touch(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn)
{
    uint32_t  now;

    now = (uint32_t) ngx_time();

    if (tn->touched == now) {
        return;
    }

    tn->touched = now;

    ngx_queue_remove(&tn->queue);
    ngx_queue_insert_head(&zone->sh->queue, &tn->queue);
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
        tn = ngx_http_stytch_tat_cache_replace(zone, r, NULL, ctx->digest,
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

        if (ngx_http_stytch_tat_cache_copy_out(r, tn,
                                               NGX_HTTP_STYTCH_TAT_F_ERROR,
                                               &ctx->error)
            != NGX_OK
            || ngx_http_stytch_tat_cache_copy_out(r, tn,
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);
    tn = ngx_http_stytch_tat_cache_replace(zone, r, tn, ctx->digest, fields);

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
        tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_cache_delete(zone, tn);
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

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

    tn = ngx_http_stytch_tat_cache_replace(zone, r, tn, ctx->digest, fields);

    if (tn) {
        tn->entry = e;
        tn->status = (uint16_t) status;

    } else {
        /* no room: waiters must not wait on a node that will never fill */
        tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

        if (tn) {
            ngx_http_stytch_tat_cache_delete(zone, tn);
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

    if (tn) {
        ngx_http_stytch_tat_cache_delete(zone, tn);
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

    /* RELEASE_UNLEASE clears the lease of a session in place */

    if (tn
        && ngx_http_stytch_tat_cache_state_release(&tn->entry, ctx->cache_claim)
           == NGX_HTTP_STYTCH_TAT_RELEASE_DELETE)
    {
        ngx_http_stytch_tat_cache_delete(zone, tn);
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

    tn = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

    if (tn && tn->len[NGX_HTTP_STYTCH_TAT_F_JWT]
        && tn->entry.token_exp > ngx_time() + NGX_HTTP_STYTCH_TAT_JWT_LEEWAY)
    {
        ngx_http_stytch_tat_cache_touch(zone, tn);

        ctx->jwt_exp = tn->entry.token_exp;
        rc = ngx_http_stytch_tat_cache_copy_out(r, tn,
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

    old = ngx_http_stytch_tat_cache_find(zone, ctx->digest);

    ngx_atomic_fetch_add(&zone->sh->stats.jwt_misses, 1);

    tn = ngx_http_stytch_tat_cache_replace(zone, r, old, ctx->digest, fields);

    if (tn) {
        tn->entry.token_exp = ctx->jwt_exp;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);
}


void
ngx_http_stytch_tat_cache_count(ngx_http_stytch_tat_zone_t *zone,
    ngx_uint_t counter, ngx_msec_t latency)
{
    ngx_uint_t                    i;
    ngx_http_stytch_tat_stats_t  *st;

    static ngx_msec_t  buckets[] = NGX_HTTP_STYTCH_TAT_BUCKETS;

    st = &zone->sh->stats;

    switch (counter) {

    case NGX_HTTP_STYTCH_TAT_COUNT_MINT_RS256:
        ngx_atomic_fetch_add(&st->mints[0], 1);
        return;

    case NGX_HTTP_STYTCH_TAT_COUNT_MINT_ES256:
        ngx_atomic_fetch_add(&st->mints[1], 1);
        return;

    case NGX_HTTP_STYTCH_TAT_COUNT_MINT_EDDSA:
        ngx_atomic_fetch_add(&st->mints[2], 1);
        return;
    }

    ngx_atomic_fetch_add(&st->calls[counter], 1);

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NBUCKETS - 1; i++) {
        if (latency <= buckets[i]) {
            break;
        }
    }

    ngx_atomic_fetch_add(&st->latency[i], 1);
    ngx_atomic_fetch_add(&st->latency_sum, latency);
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

    tn = ngx_http_stytch_tat_cache_find(zone, digest);

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
        ngx_http_stytch_tat_cache_touch(zone, tn);

        rc = NGX_OK;

        if (ngx_http_stytch_tat_cache_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_USER_ID, &ctx->user_id)
            != NGX_OK
            || ngx_http_stytch_tat_cache_copy_out(r, tn,
                                NGX_HTTP_STYTCH_TAT_F_SESSION_ID,
                                &ctx->session_id)
               != NGX_OK
            || ngx_http_stytch_tat_cache_copy_out(r, tn,
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

    old = ngx_http_stytch_tat_cache_find(zone, digest);

    tn = ngx_http_stytch_tat_cache_replace(zone, r, old, digest, fields);

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
