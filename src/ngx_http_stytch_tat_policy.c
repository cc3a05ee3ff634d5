/*
 * Stytch's RBAC policy (GET /v1/rbac/policy, B2B /v1/b2b/rbac/policy),
 * which the permission requirements decide with
 * (ngx_http_stytch_tat_authz.c): fetched by a GET subrequest with the
 * project's credentials to the stytch_tat_rbac_policy URI, kept as text
 * in the location's zone for every worker (ngx_http_stytch_tat_doc.c) and
 * parsed by each worker once per document.
 *
 * One fetch at a time per zone, when the document is older than
 * refresh=; the request that finds it old fetches, the others decide with
 * the old one meanwhile.  A failed fetch keeps the old policy (logged) and
 * is not retried for a few seconds; a policy older than max_stale= is no
 * longer used: the request fails closed (503).
 */


#include "ngx_http_stytch_tat.h"


#define NGX_HTTP_STYTCH_TAT_POLICY_REFRESH    300
#define NGX_HTTP_STYTCH_TAT_POLICY_MAX_STALE  3600


static ngx_int_t ngx_http_stytch_tat_policy_parse(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone);
static void ngx_http_stytch_tat_policy_cleanup(void *data);


/* stytch_tat_rbac_policy URI [refresh=TIME] [max_stale=TIME] | off */

char *
ngx_http_stytch_tat_policy_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    time_t      *t;
    ngx_str_t   *value, s;
    ngx_uint_t   i;

    if (lcf->policy_uri.data != NULL) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        ngx_str_set(&lcf->policy_uri, "");
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '/') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must be the URI of an internal location "
                           "that proxies to Stytch's RBAC policy, such as "
                           "\"/_stytch_rbac_policy\"", &value[1]);
        return NGX_CONF_ERROR;
    }

    lcf->policy_uri = value[1];
    lcf->policy_file = cf->conf_file->file.name;
    lcf->policy_line = cf->conf_file->line;

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "refresh=", 8) == 0) {
            t = &lcf->policy_refresh;
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

        } else if (ngx_strncmp(value[i].data, "max_stale=", 10) == 0) {
            t = &lcf->policy_max_stale;
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *t = ngx_parse_time(&s, 1);

        if (*t == (time_t) NGX_ERROR || *t < 1 || *t > 7 * 86400) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid time in \"%V\", expected 1s..7d",
                               &value[i]);
            return NGX_CONF_ERROR;
        }
    }

    if (lcf->policy_max_stale && lcf->policy_refresh
        && lcf->policy_max_stale < lcf->policy_refresh)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"max_stale=\" is shorter than \"refresh=\": "
                           "the policy would be unusable before it is "
                           "fetched again");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/*
 * Inherited as a whole; where a permission is required, the policy must
 * be fetched from somewhere, into a zone: one policy per zone.
 */

char *
ngx_http_stytch_tat_policy_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev, ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_pool_cleanup_t               *cln;
    ngx_http_stytch_tat_zone_t       *zone;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    if (conf->policy_uri.data == NULL) {
        conf->policy_uri = prev->policy_uri;
        conf->policy_file = prev->policy_file;
        conf->policy_line = prev->policy_line;
        conf->policy_refresh = prev->policy_refresh;
        conf->policy_max_stale = prev->policy_max_stale;
    }

    if (conf->policy_refresh == 0) {
        conf->policy_refresh = NGX_HTTP_STYTCH_TAT_POLICY_REFRESH;
    }

    if (conf->policy_max_stale == 0) {
        conf->policy_max_stale = ngx_max(NGX_HTTP_STYTCH_TAT_POLICY_MAX_STALE,
                                         conf->policy_refresh);
    }

    /* requirements apply where a session is handed on */

    if (conf->permissions == NULL
        || (conf->uri.len == 0 && conf->verify == NULL))
    {
        return NGX_CONF_OK;
    }

    if (conf->policy_uri.len == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_require_permission\" in %V:%ui needs "
                      "\"stytch_tat_rbac_policy\" where it applies",
                      &conf->authz_file, conf->authz_line);
        return NGX_CONF_ERROR;
    }

    zone = conf->cache;

    if (zone == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_rbac_policy %V\" in %V:%ui needs a "
                      "\"stytch_tat_cache\" zone where it applies: the "
                      "policy is kept there", &conf->policy_uri,
                      &conf->policy_file, conf->policy_line);
        return NGX_CONF_ERROR;
    }

    if (zone->policy_uri.data == NULL) {
        zone->policy_uri = conf->policy_uri;
        zone->policy_file = conf->policy_file;
        zone->policy_line = conf->policy_line;

    } else if (zone->policy_uri.len != conf->policy_uri.len
               || ngx_strncmp(zone->policy_uri.data, conf->policy_uri.data,
                              conf->policy_uri.len) != 0)
    {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_rbac_policy %V\" in %V:%ui and "
                      "\"stytch_tat_rbac_policy %V\" in %V:%ui use one "
                      "stytch_tat_cache zone \"%V\", which keeps one policy: "
                      "give each its own zone", &zone->policy_uri,
                      &zone->policy_file, zone->policy_line,
                      &conf->policy_uri, &conf->policy_file,
                      conf->policy_line, &zone->shm_zone->shm.name);
        return NGX_CONF_ERROR;
    }

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_stytch_tat_module);

    if (ngx_http_stytch_tat_doc_source(&conf->policy_uri, &mcf->project_id,
                                       conf->policy_source)
        != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (!zone->policy_cleanup) {
        /* the worker's parse of the policy goes with the cycle */

        cln = ngx_pool_cleanup_add(cf->pool, 0);
        if (cln == NULL) {
            return NGX_CONF_ERROR;
        }

        cln->handler = ngx_http_stytch_tat_policy_cleanup;
        cln->data = zone;
        zone->policy_cleanup = 1;
    }

    return NGX_CONF_OK;
}


static void
ngx_http_stytch_tat_policy_cleanup(void *data)
{
    ngx_http_stytch_tat_zone_t  *zone = data;

    if (zone->policy) {
        ngx_http_stytch_tat_rbac_policy_free(zone->policy);
        zone->policy = NULL;
    }
}


/*
 * The policy to decide with.  NGX_OK: *policy is this worker's parse of
 * the zone's document, young enough.  NGX_AGAIN: this request is to fetch
 * it (it holds the zone's lease); NGX_BUSY: another request fetches it,
 * and there is none to use meanwhile; NGX_DECLINED: none can be had (no
 * document, or one older than max_stale=: logged).
 */

ngx_int_t
ngx_http_stytch_tat_policy_get(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_policy_t **policy)
{
    time_t                           age;
    ngx_int_t                        rc;
    ngx_uint_t                       ours;
    ngx_http_stytch_tat_zone_t      *zone;
    ngx_http_stytch_tat_doc_shm_t   *d;

    zone = lcf->cache;
    d = &zone->sh->policy;
    *policy = NULL;

    ngx_shmtx_lock(&zone->shpool->mutex);

    /* one fetch per request: the answer it got is the one there is */

    rc = ctx->policy_fetched
         ? NGX_DECLINED
         : ngx_http_stytch_tat_doc_due(d, lcf->policy_source,
                                       lcf->policy_refresh, lcf->lock_timeout);

    ours = ngx_http_stytch_tat_doc_ours(d, lcf->policy_source);
    age = ngx_time() - d->fetched;

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (rc == NGX_OK) {
        ctx->policy_leading = 1;
        ctx->zone = zone;
        return NGX_AGAIN;
    }

    if (zone->policy_generation != d->generation
        && ngx_http_stytch_tat_policy_parse(r, zone) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (!ours || zone->policy == NULL) {
        return (rc == NGX_BUSY) ? NGX_BUSY : NGX_DECLINED;
    }

    if (age >= lcf->policy_max_stale) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: the RBAC policy in stytch_tat_zone "
                      "\"%V\" is %T s old, past max_stale=%T: not used",
                      &zone->shm_zone->shm.name, age, lcf->policy_max_stale);
        return NGX_DECLINED;
    }

    *policy = zone->policy;

    return NGX_OK;
}


/* the zone's document, new to this worker, parsed into its policy */

static ngx_int_t
ngx_http_stytch_tat_policy_parse(ngx_http_request_t *r,
    ngx_http_stytch_tat_zone_t *zone)
{
    u_char                             *doc;
    size_t                              len;
    ngx_uint_t                          generation;
    const char                         *reason;
    ngx_http_stytch_tat_rbac_policy_t  *policy;

    ngx_shmtx_lock(&zone->shpool->mutex);

    generation = zone->sh->policy.generation;
    doc = ngx_http_stytch_tat_doc_copy(&zone->sh->policy, &len,
                                       r->connection->log);

    ngx_shmtx_unlock(&zone->shpool->mutex);

    if (len && doc == NULL) {
        return NGX_ERROR;
    }

    policy = NULL;

    /* the document was checked before it was kept: this fails on memory */

    if (len
        && ngx_http_stytch_tat_rbac_policy_parse(doc, len, &policy, &reason)
           != 0)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: the RBAC policy in stytch_tat_zone "
                      "\"%V\" is unusable: %s",
                      &zone->shm_zone->shm.name, reason);
        policy = NULL;
    }

    ngx_free(doc);

    if (zone->policy) {
        ngx_http_stytch_tat_rbac_policy_free(zone->policy);
    }

    zone->policy = policy;
    zone->policy_generation = generation;

    return NGX_OK;
}


/*
 * The policy subrequest's answer is in: a usable policy is kept in the
 * zone for every worker.  A failure is logged, counted, and leaves the
 * policy kept before.
 */

void
ngx_http_stytch_tat_policy_answered(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t                           rc;
    ngx_uint_t                          same;
    const char                         *reason;
    ngx_http_stytch_tat_zone_t         *zone;
    ngx_http_stytch_tat_rbac_policy_t  *policy;

    zone = ctx->zone;
    same = 0;

    ctx->policy_leading = 0;
    ctx->policy_fetched = 1;
    policy = NULL;
    reason = NULL;

    if (ctx->sr_misrouted || !ctx->sr_checked) {
        reason = "the URI reached no location that proxies to Stytch";

    } else if (ctx->sr_too_big) {
        reason = "the answer is larger than stytch_tat_buffer_size";

    } else if (ctx->sr_failed || ctx->sr_status != NGX_HTTP_OK) {
        reason = ctx->sr_status ? "an answer other than 200" : "no answer";

    } else if (ngx_http_stytch_tat_rbac_policy_parse(ctx->sr_body.data,
                                                     ctx->sr_body.len,
                                                     &policy, &reason)
               != 0)
    {
        policy = NULL;
    }

    ngx_http_stytch_tat_rbac_policy_free(policy);

    ngx_shmtx_lock(&zone->shpool->mutex);

    if (policy == NULL) {
        ngx_http_stytch_tat_doc_failed(&zone->sh->policy);
        rc = NGX_ERROR;

    } else {
        rc = ngx_http_stytch_tat_doc_store(zone, &zone->sh->policy,
                                           lcf->policy_source, &ctx->sr_body,
                                           &same);
        if (rc != NGX_OK) {
            reason = "it does not fit in the zone";
        }
    }

    ngx_shmtx_unlock(&zone->shpool->mutex);

    ngx_atomic_fetch_add((rc == NGX_OK) ? &zone->sh->stats.policy_fetches
                                        : &zone->sh->stats.policy_failures, 1);

    if (rc != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: Stytch's RBAC policy not fetched through "
                      "\"%V\" into stytch_tat_zone \"%V\": %s (status %ui); "
                      "the policy kept before, if any, stays in use",
                      &ctx->sr_uri, &zone->shm_zone->shm.name,
                      reason ? reason : "unusable", ctx->sr_status);
        return;
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: Stytch's RBAC policy fetched through \"%V\" "
                  "into stytch_tat_zone \"%V\"%s", &ctx->sr_uri,
                  &zone->shm_zone->shm.name, same ? ", unchanged" : "");
}


/* a fetching request that went away gives the lease up */

void
ngx_http_stytch_tat_policy_release(ngx_http_stytch_tat_zone_t *zone)
{
    ngx_http_stytch_tat_doc_release(zone, &zone->sh->policy);
}
