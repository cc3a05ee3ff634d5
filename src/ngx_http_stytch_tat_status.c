/*
 * stytch_tat_status [json | prometheus]: the counters and the use of every
 * stytch_tat_zone, read without locking (each counter is atomic; a reading
 * is a snapshot that may be a request apart between counters).
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_version.h"


#define NGX_HTTP_STYTCH_TAT_STATUS_JSON        0
#define NGX_HTTP_STYTCH_TAT_STATUS_PROMETHEUS  1

/* one zone's output is well under this, plus its name 64 times at most */
#define NGX_HTTP_STYTCH_TAT_ZONE_OUT_MAX       8192


static ngx_int_t ngx_http_stytch_tat_status_handler(ngx_http_request_t *r);
static u_char *ngx_http_stytch_tat_status_json(u_char *p,
    ngx_http_stytch_tat_zone_t *zone);
static u_char *ngx_http_stytch_tat_status_prometheus(u_char *p,
    ngx_http_stytch_tat_zone_t *zone);


static const char  *ngx_http_stytch_tat_call_names[] = {
    "attest_ok", "attest_refused", "attest_failed",
    "refresh_ok", "refresh_failed"
};

static const char  *ngx_http_stytch_tat_alg_names[] = {
    "RS256", "ES256", "EdDSA"
};


char *
ngx_http_stytch_tat_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    value = cf->args->elts;

    lcf->status_format = NGX_HTTP_STYTCH_TAT_STATUS_JSON;

    if (cf->args->nelts == 2) {
        if (ngx_strcmp(value[1].data, "prometheus") == 0) {
            lcf->status_format = NGX_HTTP_STYTCH_TAT_STATUS_PROMETHEUS;

        } else if (ngx_strcmp(value[1].data, "json") != 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid format \"%V\", expected \"json\" or "
                               "\"prometheus\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_stytch_tat_status_handler;

    /* an inherited stytch_tat does not guard the module's own endpoint */
    lcf->endpoint = 1;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_stytch_tat_status_handler(ngx_http_request_t *r)
{
    u_char                           *p;
    size_t                            len;
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_uint_t                        i, prom;
    ngx_chain_t                       out;
    ngx_http_stytch_tat_zone_t      **zones;
    ngx_http_stytch_tat_loc_conf_t   *lcf;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    prom = (lcf->status_format == NGX_HTTP_STYTCH_TAT_STATUS_PROMETHEUS);
    zones = mcf->zones.elts;

    len = sizeof("{\"version\":\"" NGX_HTTP_STYTCH_TAT_VERSION "\","
                 "\"zones\":{}}\n")
          + sizeof("stytch_tat_info{version=\"" NGX_HTTP_STYTCH_TAT_VERSION
                   "\"} 1\n");

    for (i = 0; i < mcf->zones.nelts; i++) {
        len += NGX_HTTP_STYTCH_TAT_ZONE_OUT_MAX
               + 64 * zones[i]->shm_zone->shm.name.len;
    }

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    if (prom) {
        p = ngx_cpymem(p, "stytch_tat_info{version=\""
                       NGX_HTTP_STYTCH_TAT_VERSION "\"} 1\n",
                       sizeof("stytch_tat_info{version=\""
                              NGX_HTTP_STYTCH_TAT_VERSION "\"} 1\n") - 1);

    } else {
        p = ngx_cpymem(p, "{\"version\":\"" NGX_HTTP_STYTCH_TAT_VERSION
                       "\",\"zones\":{",
                       sizeof("{\"version\":\"" NGX_HTTP_STYTCH_TAT_VERSION
                              "\",\"zones\":{") - 1);
    }

    for (i = 0; i < mcf->zones.nelts; i++) {
        if (zones[i]->sh == NULL) {
            continue;
        }

        if (prom) {
            p = ngx_http_stytch_tat_status_prometheus(p, zones[i]);

        } else {
            if (i) {
                *p++ = ',';
            }

            p = ngx_http_stytch_tat_status_json(p, zones[i]);
        }
    }

    if (!prom) {
        p = ngx_cpymem(p, "}}\n", 3);
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (prom) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4");

    } else {
        ngx_str_set(&r->headers_out.content_type, "application/json");
    }

    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    if (r->method == NGX_HTTP_HEAD) {
        r->header_only = 1;
    }

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_stytch_tat_status_json(u_char *p, ngx_http_stytch_tat_zone_t *zone)
{
    ngx_uint_t                    i;
    ngx_http_stytch_tat_stats_t  *st;

    static ngx_msec_t  buckets[] = NGX_HTTP_STYTCH_TAT_BUCKETS;

    st = &zone->sh->stats;

    /* zone names are nginx tokens: no quotes or backslashes to escape */

    p = ngx_sprintf(p, "\"%V\":{\"size\":%uz,\"free\":%uz,\"entries\":%ui,"
                    "\"hits\":%uA,\"misses\":%uA,\"expired\":%uA,"
                    "\"stale\":%uA,\"bypass\":%uA,\"waits\":%uA,"
                    "\"evictions\":%uA,\"uncached\":%uA,"
                    "\"jwt_hits\":%uA,\"jwt_misses\":%uA,\"mints\":{",
                    &zone->shm_zone->shm.name, zone->shm_zone->shm.size,
                    zone->shpool->pfree * ngx_pagesize, zone->sh->entries,
                    st->hits, st->misses, st->expired, st->stale, st->bypass,
                    st->waits, st->evictions, st->uncached, st->jwt_hits,
                    st->jwt_misses);

    for (i = 0; i < 3; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "",
                        ngx_http_stytch_tat_alg_names[i], st->mints[i]);
    }

    p = ngx_cpymem(p, "},\"calls\":{", sizeof("},\"calls\":{") - 1);

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NCALLS; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", i ? "," : "",
                        ngx_http_stytch_tat_call_names[i], st->calls[i]);
    }

    p = ngx_cpymem(p, "},\"latency_ms\":{",
                   sizeof("},\"latency_ms\":{") - 1);

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NBUCKETS; i++) {
        if (i == NGX_HTTP_STYTCH_TAT_NBUCKETS - 1) {
            p = ngx_sprintf(p, ",\"inf\":%uA", st->latency[i]);

        } else {
            p = ngx_sprintf(p, "%s\"%M\":%uA", i ? "," : "", buckets[i],
                            st->latency[i]);
        }
    }

    p = ngx_sprintf(p, ",\"sum\":%uA},\"verify\":{\"ok\":%uA,"
                    "\"cached\":%uA,\"failed\":{",
                    st->latency_sum, st->verify_ok, st->verify_cached);

    /* the failures by reason: "malformed" ... (0 is "ok") */

    for (i = 1; i < NGX_HTTP_STYTCH_TAT_VERIFY_NCODES; i++) {
        p = ngx_sprintf(p, "%s\"%s\":%uA", (i > 1) ? "," : "",
                        ngx_http_stytch_tat_verify_code_name(i),
                        st->verify_failed[i]);
    }

    p = ngx_sprintf(p, "}},\"jwks\":{\"fetches\":%uA,\"failures\":%uA,"
                    "\"refetch_limited\":%uA}}",
                    st->jwks_fetches, st->jwks_failures,
                    st->jwks_refetch_limited);

    return p;
}


static u_char *
ngx_http_stytch_tat_status_prometheus(u_char *p,
    ngx_http_stytch_tat_zone_t *zone)
{
    ngx_str_t                    *name;
    ngx_uint_t                    i;
    ngx_atomic_uint_t             cumulative, count;
    ngx_http_stytch_tat_stats_t  *st;

    static ngx_msec_t  buckets[] = NGX_HTTP_STYTCH_TAT_BUCKETS;

    st = &zone->sh->stats;
    name = &zone->shm_zone->shm.name;

    p = ngx_sprintf(p,
            "stytch_tat_zone_size_bytes{zone=\"%V\"} %uz\n"
            "stytch_tat_zone_free_bytes{zone=\"%V\"} %uz\n"
            "stytch_tat_zone_entries{zone=\"%V\"} %ui\n"
            "stytch_tat_cache_total{zone=\"%V\",status=\"hit\"} %uA\n"
            "stytch_tat_cache_total{zone=\"%V\",status=\"miss\"} %uA\n"
            "stytch_tat_cache_total{zone=\"%V\",status=\"expired\"} %uA\n"
            "stytch_tat_cache_total{zone=\"%V\",status=\"stale\"} %uA\n"
            "stytch_tat_cache_total{zone=\"%V\",status=\"bypass\"} %uA\n"
            "stytch_tat_cache_waits_total{zone=\"%V\"} %uA\n"
            "stytch_tat_cache_evictions_total{zone=\"%V\"} %uA\n"
            "stytch_tat_cache_uncached_total{zone=\"%V\"} %uA\n"
            "stytch_tat_jwt_cache_total{zone=\"%V\",status=\"hit\"} %uA\n"
            "stytch_tat_jwt_cache_total{zone=\"%V\",status=\"miss\"} %uA\n",
            name, zone->shm_zone->shm.size,
            name, zone->shpool->pfree * ngx_pagesize,
            name, zone->sh->entries,
            name, st->hits, name, st->misses, name, st->expired,
            name, st->stale, name, st->bypass, name, st->waits,
            name, st->evictions, name, st->uncached,
            name, st->jwt_hits, name, st->jwt_misses);

    for (i = 0; i < 3; i++) {
        p = ngx_sprintf(p, "stytch_tat_mints_total{zone=\"%V\",alg=\"%s\"} "
                        "%uA\n", name, ngx_http_stytch_tat_alg_names[i],
                        st->mints[i]);
    }

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NCALLS; i++) {
        p = ngx_sprintf(p, "stytch_tat_calls_total{zone=\"%V\",outcome=\"%s\"}"
                        " %uA\n", name, ngx_http_stytch_tat_call_names[i],
                        st->calls[i]);
    }

    cumulative = 0;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NBUCKETS; i++) {
        count = st->latency[i];
        cumulative += count;

        if (i == NGX_HTTP_STYTCH_TAT_NBUCKETS - 1) {
            p = ngx_sprintf(p, "stytch_tat_call_latency_ms_bucket{zone=\"%V\","
                            "le=\"+Inf\"} %uA\n", name, cumulative);

        } else {
            p = ngx_sprintf(p, "stytch_tat_call_latency_ms_bucket{zone=\"%V\","
                            "le=\"%M\"} %uA\n", name, buckets[i], cumulative);
        }
    }

    p = ngx_sprintf(p, "stytch_tat_call_latency_ms_sum{zone=\"%V\"} %uA\n"
                    "stytch_tat_call_latency_ms_count{zone=\"%V\"} %uA\n",
                    name, st->latency_sum, name, cumulative);

    p = ngx_sprintf(p,
            "stytch_tat_verify_total{zone=\"%V\",result=\"ok\"} %uA\n"
            "stytch_tat_verify_total{zone=\"%V\",result=\"cached\"} %uA\n",
            name, st->verify_ok, name, st->verify_cached);

    for (i = 1; i < NGX_HTTP_STYTCH_TAT_VERIFY_NCODES; i++) {
        p = ngx_sprintf(p, "stytch_tat_verify_total{zone=\"%V\","
                        "result=\"%s\"} %uA\n", name,
                        ngx_http_stytch_tat_verify_code_name(i),
                        st->verify_failed[i]);
    }

    p = ngx_sprintf(p,
            "stytch_tat_jwks_fetches_total{zone=\"%V\",outcome=\"ok\"} %uA\n"
            "stytch_tat_jwks_fetches_total{zone=\"%V\",outcome=\"failed\"} "
            "%uA\n"
            "stytch_tat_jwks_refetch_limited_total{zone=\"%V\"} %uA\n",
            name, st->jwks_fetches, name, st->jwks_failures,
            name, st->jwks_refetch_limited);

    return p;
}
