/*
 * Stytch's session JWKS (GET /v1/sessions/jwks/{project_id}, B2B
 * /v1/b2b/sessions/jwks/...), the keys that Stytch's session JWTs verify
 * against: fetched by a GET subrequest to the stytch_tat_session_jwks URI,
 * kept as text in the location's stytch_tat_zone for every worker, and
 * parsed by each worker once per document.
 *
 * One fetch at a time per zone (a lease, as the cache's single-flight), on
 * the refresh interval, and on a token whose kid no key has, at most once
 * per min_refetch: a client making up kids cannot make nginx hammer
 * Stytch.  A failed fetch is not retried for a few seconds either.
 */


#include "ngx_http_stytch_tat.h"


#define NGX_HTTP_STYTCH_TAT_JWKS_REFRESH      600
#define NGX_HTTP_STYTCH_TAT_JWKS_MIN_REFETCH  30


static ngx_int_t ngx_http_stytch_tat_stytch_jwks_kid_due(
    ngx_http_stytch_tat_jwks_shm_t *j, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_uint_t *limited);
static ngx_int_t ngx_http_stytch_tat_stytch_jwks_parse(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone);
static ngx_int_t ngx_http_stytch_tat_stytch_jwks_usable(
    ngx_http_stytch_tat_ctx_t *ctx, const char **reason);
static void ngx_http_stytch_tat_stytch_jwks_cleanup(void *data);
static void ngx_http_stytch_tat_stytch_jwks_inherit(
    ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf);
static char *ngx_http_stytch_tat_stytch_jwks_check(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf);
static char *ngx_http_stytch_tat_stytch_jwks_source(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf);
static char *ngx_http_stytch_tat_stytch_jwks_bind(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf);


char *
ngx_http_stytch_tat_stytch_jwks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    time_t      *t;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (lcf->jwks_uri.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&lcf->jwks_uri, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be the URI of an internal location "
                           "that proxies to Stytch's session JWKS, such as "
                           "\"/_stytch_jwks\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->jwks_uri = value[1];
    lcf->jwks_file = cf->conf_file->file.name;
    lcf->jwks_line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        t = NULL;

        if (ngx_strncmp(value[i].data, "refresh=", 8) == 0) {
            t = &lcf->jwks_refresh;
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

        } else if (ngx_strncmp(value[i].data, "min_refetch=", 12) == 0) {
            t = &lcf->jwks_min_refetch;
            s.data = value[i].data + 12;
            s.len = value[i].len - 12;

        } else if (ngx_strncmp(value[i].data, "leeway=", 7) == 0) {
            s.data = value[i].data + 7;
            s.len = value[i].len - 7;

            lcf->jwks_leeway = ngx_parse_time(&s, 1);

            if (lcf->jwks_leeway == (time_t) NGX_ERROR
                || lcf->jwks_leeway > NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid time in \"%V\", expected "
                                   "0s..%ds", &value[i],
                                   NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY_MAX);
                return NGX_CONF_ERROR;
            }

            continue;

        } else if (ngx_strncmp(value[i].data, "max_lifetime=", 13) == 0) {
            t = &lcf->jwks_max_lifetime;
            s.data = value[i].data + 13;
            s.len = value[i].len - 13;

        } else if (ngx_strncmp(value[i].data, "project_id=", 11) == 0
                   && value[i].len > 11)
        {
            lcf->jwks_project_id.data = value[i].data + 11;
            lcf->jwks_project_id.len = value[i].len - 11;
            continue;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *t = ngx_parse_time(&s, 1);

        if (*t == (time_t) NGX_ERROR || *t < 1 || *t > 86400) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\", expected 1s..1d",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* defaults, and what a location verifying session JWTs needs */

char *
ngx_http_stytch_tat_stytch_jwks_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev, ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_pool_cleanup_t  *cln;

    ngx_http_stytch_tat_stytch_jwks_inherit(prev, conf);

    if (conf->verify == NULL
        && (conf->uri.len == 0 || !conf->cookie || conf->jwks_uri.len == 0))
    {
        return NGX_CONF_OK;
    }

    /* stytch_tat_verify, or sessions bound and verified: cluster mode */

    if (ngx_http_stytch_tat_stytch_jwks_check(cf, conf) != NGX_CONF_OK
        || ngx_http_stytch_tat_stytch_jwks_source(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    conf->bind = (conf->verify == NULL);

    if (conf->bind
        && ngx_http_stytch_tat_stytch_jwks_bind(cf, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!conf->cache->keys_cleanup) {
        /* the worker's parse of the keys goes with the cycle */

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_stytch_tat_stytch_jwks_cleanup;
        cln->data = conf->cache;
        conf->cache->keys_cleanup = 1;
    }

    return NGX_CONF_OK;
}


/* the enclosing level's session JWKS and stytch_tat_verify, or defaults */

static void
ngx_http_stytch_tat_stytch_jwks_inherit(ngx_http_stytch_tat_loc_conf_t *prev,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    if (conf->jwks_uri.data == NULL) {
        conf->jwks_uri = prev->jwks_uri;
        conf->jwks_file = prev->jwks_file;
        conf->jwks_line = prev->jwks_line;
        conf->jwks_refresh = prev->jwks_refresh;
        conf->jwks_min_refetch = prev->jwks_min_refetch;
        conf->jwks_project_id = prev->jwks_project_id;
        conf->jwks_leeway = prev->jwks_leeway;
        conf->jwks_max_lifetime = prev->jwks_max_lifetime;
    }

    if (conf->jwks_leeway == NGX_CONF_UNSET) {
        conf->jwks_leeway = NGX_HTTP_STYTCH_TAT_VERIFY_LEEWAY;
    }

    if (conf->jwks_max_lifetime == 0) {
        conf->jwks_max_lifetime = NGX_HTTP_STYTCH_TAT_VERIFY_LIFETIME_MAX;
    }

    if (conf->jwks_refresh == 0) {
        conf->jwks_refresh = NGX_HTTP_STYTCH_TAT_JWKS_REFRESH;
    }

    if (conf->jwks_min_refetch == 0) {
        conf->jwks_min_refetch = NGX_HTTP_STYTCH_TAT_JWKS_MIN_REFETCH;
    }

    if (conf->verify == NGX_CONF_UNSET_PTR) {
        conf->verify = prev->verify;
        conf->verify_file = prev->verify_file;
        conf->verify_line = prev->verify_line;
    }

    if (conf->verify == NGX_CONF_UNSET_PTR) {
        conf->verify = NULL;
    }
}


/*
 * A location that verifies session JWTs: not also an exchange's, with a
 * session JWKS, a zone to keep its keys in and the project they are for.
 */

static char *
ngx_http_stytch_tat_stytch_jwks_check(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_http_stytch_tat_main_conf_t  *mcf;

    if (conf->verify && conf->uri.len) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_verify\" in %V:%ui and \"stytch_tat %V\" "
                      "in %V:%ui apply to the same location: choose one",
                      &conf->verify_file, conf->verify_line, &conf->uri,
                      &conf->uri_file, conf->uri_line);
        return NGX_CONF_ERROR;
    }

    if (conf->jwks_uri.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_verify\" in %V:%ui needs "
                      "\"stytch_tat_session_jwks\" where it applies",
                      &conf->verify_file, conf->verify_line);
        return NGX_CONF_ERROR;
    }

    if (conf->cache == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_session_jwks %V\" in %V:%ui needs a "
                      "\"stytch_tat_cache\" zone where it applies: Stytch's "
                      "keys are kept there", &conf->jwks_uri,
                      &conf->jwks_file, conf->jwks_line);
        return NGX_CONF_ERROR;
    }

    if (conf->jwks_project_id.len == 0) {
        mcf = ngx_http_conf_get_module_main_conf(cf,
                                                 ngx_http_stytch_tat_module);
        conf->jwks_project_id = mcf->project_id;
    }

    if (conf->jwks_project_id.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_session_jwks %V\" in %V:%ui needs the "
                      "project id: \"project_id=\", or "
                      "\"stytch_tat_credentials\"", &conf->jwks_uri,
                      &conf->jwks_file, conf->jwks_line);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* sessions bound to their identity: the key and the cookies it reads */

static char *
ngx_http_stytch_tat_stytch_jwks_bind(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_str_t                         name;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_stytch_tat_module);

    if (ngx_http_stytch_tat_key_binding_init(cf, mcf) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_session_jwks %V\" in %V:%ui: no "
                      "key to bind sessions with: set "
                      "\"stytch_tat_credentials\" or "
                      "\"stytch_tat_signing_key\"", &conf->jwks_uri,
                      &conf->jwks_file, conf->jwks_line);
        return NGX_CONF_ERROR;
    }

    /* the cookies that stytch_tat_cookie sets */

    ngx_str_set(&name, "cookie_stytch_session_jwt");
    conf->cookie_jwt_index = ngx_http_get_variable_index(cf, &name);

    ngx_str_set(&name, "cookie_stytch_session");
    conf->cookie_token_index = ngx_http_get_variable_index(cf, &name);

    if (conf->cookie_jwt_index == NGX_ERROR
        || conf->cookie_token_index == NGX_ERROR)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * One session JWKS per zone: the zone keeps one document, so every
 * location using the zone must name the same URI and project (two
 * projects, or consumer and B2B, need two zones).  The document records
 * where it came from: after a reload that names another source, the old
 * document is not used, and the new one is fetched at once.
 */

static char *
ngx_http_stytch_tat_stytch_jwks_source(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_http_stytch_tat_zone_t  *zone;

    zone = conf->cache;

    if (zone->jwks_uri.data == NULL) {
        zone->jwks_uri = conf->jwks_uri;
        zone->jwks_project_id = conf->jwks_project_id;
        zone->jwks_file = conf->jwks_file;
        zone->jwks_line = conf->jwks_line;

    } else if (zone->jwks_uri.len != conf->jwks_uri.len
               || ngx_strncmp(zone->jwks_uri.data, conf->jwks_uri.data,
                              conf->jwks_uri.len) != 0
               || zone->jwks_project_id.len != conf->jwks_project_id.len
               || ngx_strncmp(zone->jwks_project_id.data,
                              conf->jwks_project_id.data,
                              conf->jwks_project_id.len) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_session_jwks %V\" (project \"%V\") in "
                      "%V:%ui and \"stytch_tat_session_jwks %V\" (project "
                      "\"%V\") in %V:%ui use one stytch_tat_cache zone "
                      "\"%V\", which keeps one JWKS: give each its own zone",
                      &zone->jwks_uri, &zone->jwks_project_id,
                      &zone->jwks_file, zone->jwks_line, &conf->jwks_uri,
                      &conf->jwks_project_id, &conf->jwks_file,
                      conf->jwks_line, &zone->shm_zone->shm.name);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_stytch_tat_doc_source(&conf->jwks_uri,
                                       &conf->jwks_project_id,
                                       conf->jwks_source)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_stytch_tat_stytch_jwks_cleanup(void *data)
{
    ngx_http_stytch_tat_zone_t  *zone = data;

    if (zone->keys) {
        ngx_http_stytch_tat_verify_keys_free(zone->keys);
        zone->keys = NULL;
    }
}


/*
 * The keys to verify with.  NGX_OK: *keys is this worker's parse of the
 * zone's document, or NULL (none yet, or a kid that may not be refetched
 * yet).  NGX_AGAIN: this request is to fetch the document (it holds the
 * zone's lease); NGX_BUSY: another request fetches it and there are no
 * keys meanwhile.
 */

ngx_int_t
ngx_http_stytch_tat_stytch_jwks_keys(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t unknown_kid, ngx_http_stytch_tat_verify_keys_t **keys)
{
    ngx_int_t                        rc;
    ngx_uint_t                       limited, other;
    ngx_http_stytch_tat_zone_t      *zone;
    ngx_http_stytch_tat_jwks_shm_t  *j;

    zone = lcf->cache;
    j = &zone->sh->jwks;
    limited = 0;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* one fetch per request: the answer it got is the one there is */

    if (ctx->jwks_fetched) {
        rc = NGX_DECLINED;

    } else if (unknown_kid) {
        rc = ngx_http_stytch_tat_stytch_jwks_kid_due(j, lcf, &limited);

    } else {
        rc = ngx_http_stytch_tat_doc_due(&j->doc, lcf->jwks_source,
                                         lcf->jwks_refresh, lcf->lock_timeout);
    }

    /* a document from elsewhere (before a reload) verifies nothing here */

    other = (j->doc.doc != NULL
             && !ngx_http_stytch_tat_doc_ours(&j->doc, lcf->jwks_source));

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (limited) {
        ngx_atomic_fetch_add(&zone->sh->stats.jwks_refetch_limited, 1);
    }

    if (rc == NGX_OK) {
        ctx->jwks_leading = 1;
        ctx->zone = zone;
        return NGX_AGAIN;
    }

    if (zone->keys_generation != j->doc.generation
        && ngx_http_stytch_tat_stytch_jwks_parse(r, zone) != NGX_OK)
    {
        return NGX_ERROR;
    }

    *keys = other ? NULL : zone->keys;

    return (*keys == NULL && rc == NGX_BUSY) ? NGX_BUSY : NGX_OK;
}


/*
 * A token whose kid no key has: fetch now?  Under the zone's lock: NGX_OK
 * yes (the lease is taken), NGX_BUSY a fetch is in flight, NGX_DECLINED
 * not before min_refetch since the last (*limited: counted as held back).
 */

static ngx_int_t
ngx_http_stytch_tat_stytch_jwks_kid_due(ngx_http_stytch_tat_jwks_shm_t *j,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_uint_t *limited)
{
    if (ngx_http_stytch_tat_doc_busy(&j->doc)) {
        return NGX_BUSY;
    }

    if (ngx_time() - j->kid_at < lcf->jwks_min_refetch) {
        *limited = 1;
        return NGX_DECLINED;
    }

    ngx_http_stytch_tat_doc_take(&j->doc, lcf->lock_timeout);
    j->kid_at = ngx_time();

    return NGX_OK;
}


/* the zone's document, new to this worker, parsed into its keys */

static ngx_int_t
ngx_http_stytch_tat_stytch_jwks_parse(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone)
{
    u_char                             *doc;
    size_t                              len;
    ngx_uint_t                          generation;
    const char                         *reason;
    ngx_http_stytch_tat_verify_keys_t  *keys;

    ngx_shmtx_lock(&zone->shpool->mutex);

    generation = zone->sh->jwks.doc.generation;
    doc = ngx_http_stytch_tat_doc_copy(&zone->sh->jwks.doc, &len,
                                       r->connection->log);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (len && doc == NULL) {
        return NGX_ERROR;
    }

    keys = NULL;

    /* the document was checked before it was kept: this fails on memory */

    if (len
        && ngx_http_stytch_tat_verify_keys_parse(doc, len, &keys, &reason)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's session JWKS in "
                      "stytch_tat_zone \"%V\" is unusable: %s",
                      &zone->shm_zone->shm.name, reason);
        keys = NULL;
    }

    /* once per worker and document: what it leaves out, tokens will miss */

    if (keys && ngx_http_stytch_tat_verify_keys_skipped(keys)) {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "stytch_tat: Stytch's session JWKS in "
                      "stytch_tat_zone \"%V\": %uz key(s) not used, the "
                      "first for %s",
                      &zone->shm_zone->shm.name,
                      ngx_http_stytch_tat_verify_keys_skipped(keys), reason);
    }

    ngx_free(doc);

    if (zone->keys) {
        ngx_http_stytch_tat_verify_keys_free(zone->keys);
    }

    zone->keys = keys;
    zone->keys_generation = generation;

    return NGX_OK;
}


/*
 * The JWKS subrequest's answer is in: a usable key set is kept in the zone
 * for every worker.  NGX_OK when it was, NGX_DECLINED when the fetch
 * failed (logged; the keys kept before stay).
 */

ngx_int_t
ngx_http_stytch_tat_stytch_jwks_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t                        rc;
    ngx_uint_t                       same;
    const char                      *reason;
    ngx_http_stytch_tat_zone_t      *zone;
    ngx_http_stytch_tat_jwks_shm_t  *j;

    zone = ctx->zone;
    j = &zone->sh->jwks;
    same = 0;

    ctx->jwks_leading = 0;
    ctx->jwks_fetched = 1;

    if (ngx_http_stytch_tat_stytch_jwks_usable(ctx, &reason) != NGX_OK) {
        ngx_atomic_fetch_add(&zone->sh->stats.jwks_failures, 1);

        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's session JWKS not fetched "
                      "through \"%V\": %s (status %ui)", &ctx->sr_uri,
                      reason ? reason : "unusable", ctx->sr_status);

        ngx_shmtx_lock(&zone->shpool->mutex);
        ngx_http_stytch_tat_doc_failed(&j->doc);
        ngx_shmtx_unlock(&zone->shpool->mutex);

        return NGX_DECLINED;
    }

    ngx_atomic_fetch_add(&zone->sh->stats.jwks_fetches, 1);

    /*
     * The same document again (a refresh) keeps its generation, and so do
     * the verifications made with it.  A new one invalidates them all, a
     * key it no longer has among them.
     */

    ngx_shmtx_lock(&zone->shpool->mutex);

    rc = ngx_http_stytch_tat_doc_store(zone, &j->doc, lcf->jwks_source,
                                       &ctx->sr_body, &same);
    if (rc == NGX_OK) {
        j->kid_at = j->doc.fetched;
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's session JWKS (%uz bytes) does "
                      "not fit in stytch_tat_zone \"%V\"", ctx->sr_body.len,
                      &zone->shm_zone->shm.name);
        return NGX_DECLINED;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: Stytch's session JWKS fetched through \"%V\" "
                  "into stytch_tat_zone \"%V\"%s", &ctx->sr_uri,
                  &zone->shm_zone->shm.name, same ? ", unchanged" : "");

    return NGX_OK;
}


/*
 * Whether the subrequest brought a usable JWKS: NGX_OK, or NGX_DECLINED
 * and why not in *reason (which may also name a key skipped in a usable
 * one).  The keys are parsed here only to check them: every worker parses
 * the zone's document for itself.
 */

static ngx_int_t
ngx_http_stytch_tat_stytch_jwks_usable(ngx_http_stytch_tat_ctx_t *ctx,
    const char **reason)
{
    ngx_http_stytch_tat_verify_keys_t  *keys;

    *reason = NULL;

    if (ctx->sr_misrouted || !ctx->sr_checked) {
        *reason = "the URI reached no location that proxies to Stytch";
        return NGX_DECLINED;
    }

    if (ctx->sr_too_big) {
        *reason = "the answer is larger than stytch_tat_buffer_size";
        return NGX_DECLINED;
    }

    if (ctx->sr_failed || ctx->sr_status != NGX_HTTP_OK) {
        *reason = ctx->sr_status ? "an answer other than 200"
                                 : "no answer";
        return NGX_DECLINED;
    }

    if (ngx_http_stytch_tat_verify_keys_parse(ctx->sr_body.data,
                                              ctx->sr_body.len, &keys, reason)
        != 0)
    {
        return NGX_DECLINED;
    }

    ngx_http_stytch_tat_verify_keys_free(keys);

    return NGX_OK;
}


/* a fetching request that went away gives the lease up */

void
ngx_http_stytch_tat_stytch_jwks_release(ngx_http_stytch_tat_zone_t *zone)
{
    ngx_http_stytch_tat_doc_release(zone, &zone->sh->jwks.doc);
}
