/*
 * The zone: a shared-memory zone (stytch_tat_zone) that every worker and
 * every reload shares, and what any of its users does with its nodes:
 * the directives that declare and use it, its slab memory, the rbtree
 * keyed by a SHA-256 digest (the full digest is compared), the LRU queue,
 * expiry of a few stale nodes per insert and forced eviction when the
 * slab is full, copying a node's field out, and its counters.  What the
 * nodes hold is their users': sessions (ngx_http_stytch_tat_session.c),
 * minted tokens (_mint.c), verified session JWTs (_verified.c).
 *
 * Modelled on ngx_http_limit_req_module's zone.  The callers lock the
 * zone (shpool->mutex) around everything here but the directives.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_zone.h"


static ngx_http_stytch_tat_zone_t *ngx_http_stytch_tat_zone_add(
    ngx_conf_t *cf, ngx_str_t *name);
static void ngx_http_stytch_tat_zone_fill(ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_node_t *old, ngx_str_t *fields, size_t *flen);
static u_char *ngx_http_stytch_tat_zone_claims(
    ngx_http_stytch_tat_zone_t *zone, ngx_str_t *value);
static ngx_int_t ngx_http_stytch_tat_zone_init(ngx_shm_zone_t *shm_zone,
    void *data);
static void ngx_http_stytch_tat_zone_rbtree_insert_value(
    ngx_rbtree_node_t *temp, ngx_rbtree_node_t *node,
    ngx_rbtree_node_t *sentinel);
static ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_zone_alloc(
    ngx_http_stytch_tat_zone_t *zone, ngx_http_request_t *r, size_t len);
static void ngx_http_stytch_tat_zone_expire(ngx_http_stytch_tat_zone_t *zone,
    ngx_uint_t force);


char *
ngx_http_stytch_tat_zone_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
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

    zone = ngx_http_stytch_tat_zone_add(cf, &name);
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
ngx_http_stytch_tat_zone_cache_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
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

    lcf->cache = ngx_http_stytch_tat_zone_add(cf, &value[1]);
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
ngx_http_stytch_tat_zone_add(ngx_conf_t *cf, ngx_str_t *name)
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
    shm_zone->init = ngx_http_stytch_tat_zone_init;
    shm_zone->shm.size = 8 * ngx_pagesize;

    return zone;
}


static ngx_int_t
ngx_http_stytch_tat_zone_init(ngx_shm_zone_t *shm_zone, void *data)
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

    zone->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    /*
     * A reload keeps the entries of the zone of the same name and size.
     * The zone is read through its own memory, never the old cycle's
     * structures: a reload may load another build of the module, whose
     * zone layout differs, and such a zone cannot be read.
     */

    if (ozone || shm_zone->shm.exists) {
        zone->sh = zone->shpool->data;

        if (zone->sh->layout != NGX_HTTP_STYTCH_TAT_LAYOUT
            || zone->sh->size != sizeof(ngx_http_stytch_tat_shctx_t))
        {
            ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                          "stytch_tat_zone \"%V\" was made by another "
                          "version of ngx_http_stytch_tat_module, which "
                          "keeps its entries differently: restart nginx "
                          "rather than reload it, or rename the zone",
                          &shm_zone->shm.name);
            return NGX_ERROR;
        }

        return NGX_OK;
    }

    zone->sh = ngx_slab_calloc(zone->shpool,
                               sizeof(ngx_http_stytch_tat_shctx_t));
    if (zone->sh == NULL) {
        return NGX_ERROR;
    }

    zone->shpool->data = zone->sh;
    zone->sh->layout = NGX_HTTP_STYTCH_TAT_LAYOUT;
    zone->sh->size = sizeof(ngx_http_stytch_tat_shctx_t);

    ngx_rbtree_init(&zone->sh->rbtree, &zone->sh->sentinel,
                    ngx_http_stytch_tat_zone_rbtree_insert_value);

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
ngx_http_stytch_tat_zone_rbtree_insert_value(ngx_rbtree_node_t *temp,
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


ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_zone_find(ngx_http_stytch_tat_zone_t *zone,
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
ngx_http_stytch_tat_zone_alloc(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_request_t *r, size_t len)
{
    size_t                       size;
    ngx_uint_t                   i;
    ngx_rbtree_node_t           *node;
    ngx_http_stytch_tat_node_t  *tn;

    size = offsetof(ngx_rbtree_node_t, color)
           + offsetof(ngx_http_stytch_tat_node_t, data) + len;

    ngx_http_stytch_tat_zone_expire(zone, 0);

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

        ngx_http_stytch_tat_zone_expire(zone, 1);
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


void
ngx_http_stytch_tat_zone_delete(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn)
{
    ngx_rbtree_node_t  *node;

    node = (ngx_rbtree_node_t *)
               ((u_char *) tn - offsetof(ngx_rbtree_node_t, color));

    ngx_queue_remove(&tn->queue);
    ngx_rbtree_delete(&zone->sh->rbtree, node);

    if (tn->claims) {
        ngx_slab_free_locked(zone->shpool, tn->claims);
    }

    ngx_slab_free_locked(zone->shpool, node);

    zone->sh->entries--;
}


static void
ngx_http_stytch_tat_zone_expire(ngx_http_stytch_tat_zone_t *zone,
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

        ngx_http_stytch_tat_zone_delete(zone, tn);

        if (force) {
            return;
        }
    }
}


/*
 * A node's claims in a slot of their own (a power of two: 256 bytes for
 * most sessions), evicting as a node's allocation does; NULL when they do
 * not fit (the session is kept without, its requirements then read its
 * JWT per request).
 */

static u_char *
ngx_http_stytch_tat_zone_claims(ngx_http_stytch_tat_zone_t *zone,
    ngx_str_t *value)
{
    u_char      *p;
    ngx_uint_t   i;

    if (value->len == 0) {
        return NULL;
    }

    p = ngx_slab_alloc_locked(zone->shpool, value->len);

    for (i = 0; p == NULL && i < 16; i++) {
        if (ngx_queue_empty(&zone->sh->queue)) {
            break;
        }

        ngx_http_stytch_tat_zone_expire(zone, 1);
        p = ngx_slab_alloc_locked(zone->shpool, value->len);
    }

    if (p) {
        ngx_memcpy(p, value->data, value->len);
    }

    return p;
}


/* the new node's fields: those given, else old's (the claims aside) */

static void
ngx_http_stytch_tat_zone_fill(ngx_http_stytch_tat_node_t *tn,
    ngx_http_stytch_tat_node_t *old, ngx_str_t *fields, size_t *flen)
{
    u_char      *p, *q;
    ngx_uint_t   i;

    p = tn->data;
    q = old ? old->data : NULL;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_FIELDS; i++) {
        tn->len[i] = (uint16_t) flen[i];

        if (i == NGX_HTTP_STYTCH_TAT_F_CLAIMS) {
            continue;
        }

        if (fields && fields[i].data) {
            ngx_memcpy(p, fields[i].data, flen[i]);

        } else if (old) {
            ngx_memcpy(p, q, flen[i]);
        }

        if (q) {
            q += old->len[i];
        }

        p += flen[i];
    }
}


/*
 * A new node in place of old (which may be NULL): the digest, the times and
 * state of old are kept unless the caller changes them after; fields[i]
 * with data == NULL keeps old's field.  Called with the zone locked.
 */

ngx_http_stytch_tat_node_t *
ngx_http_stytch_tat_zone_replace(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_request_t *r, ngx_http_stytch_tat_node_t *old, u_char *digest,
    ngx_str_t *fields)
{
    u_char                      *claims;
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

        len += (i == NGX_HTTP_STYTCH_TAT_F_CLAIMS) ? 0 : flen[i];
    }

    /* the old node must not be evicted to make room for its successor */

    if (old) {
        ngx_queue_remove(&old->queue);
        ngx_queue_init(&old->queue);
    }

    tn = ngx_http_stytch_tat_zone_alloc(zone, r, len);

    claims = (tn && fields && fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS].data)
             ? ngx_http_stytch_tat_zone_claims(zone,
                                     &fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS])
             : NULL;

    if (old) {
        ngx_queue_insert_head(&zone->sh->queue, &old->queue);
    }

    if (tn == NULL) {
        return NULL;
    }

    if (old) {
        ngx_memcpy(tn, old, offsetof(ngx_http_stytch_tat_node_t, data));
    }

    /* the claims given, or old's: its slot passes to the new node */

    if (fields && fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS].data) {
        tn->claims = claims;
        flen[NGX_HTTP_STYTCH_TAT_F_CLAIMS] = claims
                                 ? fields[NGX_HTTP_STYTCH_TAT_F_CLAIMS].len : 0;

    } else if (old) {
        tn->claims = old->claims;
        old->claims = NULL;
    }

    ngx_memcpy(tn->digest, digest, NGX_HTTP_STYTCH_TAT_DIGEST_LEN);

    ngx_http_stytch_tat_zone_fill(tn, old, fields, flen);

    if (old) {
        ngx_http_stytch_tat_zone_delete(zone, old);
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


/*
 * A node found goes to the LRU head at most once a second, like an
 * access-time "relatime": moving it writes its two neighbours' links, cold
 * lines of other identities when the zone holds many, and within a second
 * the order only decides between nodes that eviction should spare alike.
 * A node in use still moves at least once a second.
 */

void
ngx_http_stytch_tat_zone_touch(ngx_http_stytch_tat_zone_t *zone,
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


ngx_int_t
ngx_http_stytch_tat_zone_copy_out(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_uint_t field, ngx_str_t *dst)
{
    u_char      *p;
    ngx_uint_t   i;

    p = tn->data;

    for (i = 0; i < field; i++) {
        p += tn->len[i];
    }

    if (field == NGX_HTTP_STYTCH_TAT_F_CLAIMS) {
        p = tn->claims;
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


/* whether a process holding a lease is gone; never this one */

ngx_uint_t
ngx_http_stytch_tat_zone_gone(ngx_pid_t pid)
{
    return pid > 0 && pid != ngx_pid && kill(pid, 0) == -1
           && ngx_errno == NGX_ESRCH;
}


void
ngx_http_stytch_tat_zone_count(ngx_http_stytch_tat_zone_t *zone,
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
