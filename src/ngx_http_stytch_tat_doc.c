/*
 * A document that Stytch serves and every worker needs (the RBAC policy,
 * and the same way the session JWKS), kept as text in a zone: who may
 * fetch it when (one fetch at a time per zone, by a lease that passes on
 * when its holder's process is gone; a refresh interval; a backoff after
 * a failure), and storing a fetched one (the same text again keeps its
 * generation, so the workers' parses of it stand).  Each worker parses
 * the text itself when the generation moves on.  The callers lock the
 * zone around all of it.
 */


#include "ngx_http_stytch_tat.h"


/*
 * Whether to fetch now: NGX_OK yes (and the lease is taken for ms), NGX_BUSY
 * a fetch is in flight, NGX_DECLINED no.  A document from another source
 * (a reload that names another URI or project) is due at once.
 */

ngx_int_t
ngx_http_stytch_tat_doc_due(ngx_http_stytch_tat_doc_shm_t *d, u_char *source,
    time_t refresh, ngx_msec_t lease)
{
    time_t  now;

    now = ngx_time();

    if (ngx_http_stytch_tat_doc_busy(d)) {
        return NGX_BUSY;
    }

    if (now < d->retry_at) {
        return NGX_DECLINED;
    }

    if (d->doc != NULL && now - d->fetched < refresh
        && ngx_memcmp(d->source, source, NGX_HTTP_STYTCH_TAT_SOURCE_LEN) == 0)
    {
        return NGX_DECLINED;
    }

    ngx_http_stytch_tat_doc_take(d, lease);

    return NGX_OK;
}


/* a fetch in flight, unless the process fetching is gone (SIGKILL) */

ngx_uint_t
ngx_http_stytch_tat_doc_busy(ngx_http_stytch_tat_doc_shm_t *d)
{
    return d->fetch_until
           && (ngx_msec_int_t) (d->fetch_until - ngx_current_msec) > 0
           && !ngx_http_stytch_tat_zone_gone(d->fetch_pid);
}


/* this process fetches, for ms at the most */

void
ngx_http_stytch_tat_doc_take(ngx_http_stytch_tat_doc_shm_t *d,
    ngx_msec_t lease)
{
    d->fetch_until = ngx_current_msec + lease;
    d->fetch_pid = ngx_pid;
}


/* a fetching request that went away gives the lease up */

void
ngx_http_stytch_tat_doc_release(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_doc_shm_t *d)
{
    ngx_shmtx_lock(&zone->shpool->mutex);
    d->fetch_until = 0;
    ngx_shmtx_unlock(&zone->shpool->mutex);
}


/* whether the zone's document is this source's */

ngx_uint_t
ngx_http_stytch_tat_doc_ours(ngx_http_stytch_tat_doc_shm_t *d, u_char *source)
{
    return d->doc != NULL
           && ngx_memcmp(d->source, source, NGX_HTTP_STYTCH_TAT_SOURCE_LEN)
              == 0;
}


/*
 * A fetched document, checked by the caller, into the zone.  NGX_OK: kept
 * (*same: it is the text kept already); NGX_DECLINED: no room in the zone
 * (the old one stays, and a backoff starts).
 */

ngx_int_t
ngx_http_stytch_tat_doc_store(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_doc_shm_t *d, u_char *source, ngx_str_t *text,
    ngx_uint_t *same)
{
    u_char  *doc;

    d->fetch_until = 0;

    *same = (d->doc != NULL && d->len == text->len
             && ngx_memcmp(d->doc, text->data, text->len) == 0
             && ngx_memcmp(d->source, source, NGX_HTTP_STYTCH_TAT_SOURCE_LEN)
                == 0);

    if (!*same) {
        doc = ngx_slab_alloc_locked(zone->shpool, text->len);

        if (doc == NULL) {
            d->retry_at = ngx_time() + NGX_HTTP_STYTCH_TAT_DOC_BACKOFF;
            return NGX_DECLINED;
        }

        ngx_memcpy(doc, text->data, text->len);

        if (d->doc) {
            ngx_slab_free_locked(zone->shpool, d->doc);
        }

        d->doc = doc;
        d->len = text->len;
        d->generation++;
        ngx_memcpy(d->source, source, NGX_HTTP_STYTCH_TAT_SOURCE_LEN);
    }

    d->fetched = ngx_time();
    d->retry_at = 0;

    return NGX_OK;
}


/* a failed fetch: the old document stays, no fetch for a while */

void
ngx_http_stytch_tat_doc_failed(ngx_http_stytch_tat_doc_shm_t *d)
{
    d->fetch_until = 0;
    d->retry_at = ngx_time() + NGX_HTTP_STYTCH_TAT_DOC_BACKOFF;
}


/*
 * A copy of the zone's document for this worker to parse, outside the
 * lock (ngx_alloc()ed, to ngx_free()); NULL with *len 0 when there is
 * none.  The zone must be locked.
 */

u_char *
ngx_http_stytch_tat_doc_copy(ngx_http_stytch_tat_doc_shm_t *d, size_t *len,
    ngx_log_t *log)
{
    u_char  *doc;

    *len = d->len;

    if (d->doc == NULL || d->len == 0) {
        *len = 0;
        return NULL;
    }

    doc = ngx_alloc(d->len, log);

    if (doc) {
        ngx_memcpy(doc, d->doc, d->len);
    }

    return doc;
}


/* the SHA-256 prefix that names a document's source: a URI and a project */

ngx_int_t
ngx_http_stytch_tat_doc_source(ngx_str_t *uri, ngx_str_t *project,
    u_char *source)
{
    u_char         md[EVP_MAX_MD_SIZE];
    unsigned int   len;
    EVP_MD_CTX    *ctx;

    ctx = EVP_MD_CTX_new();
    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1
        || EVP_DigestUpdate(ctx, uri->data, uri->len) != 1
        || EVP_DigestUpdate(ctx, "", 1) != 1
        || EVP_DigestUpdate(ctx, project->data, project->len) != 1
        || EVP_DigestFinal_ex(ctx, md, &len) != 1)
    {
        EVP_MD_CTX_free(ctx);
        return NGX_ERROR;
    }

    EVP_MD_CTX_free(ctx);

    ngx_memcpy(source, md, NGX_HTTP_STYTCH_TAT_SOURCE_LEN);

    return NGX_OK;
}
