/*
 * stytch_tat_status [json | prometheus]: the counters and the use of every
 * stytch_tat_zone, read without locking (each counter is atomic; a reading
 * is a snapshot that may be a request apart between counters).
 *
 * Both formats are written from one table of metric families below.  A new
 * counter is a field in ngx_http_stytch_tat_stats_t, then either a series
 * in a family's list (its labels, its JSON member, its offset) or a family
 * of its own (ngx_http_stytch_tat_family(), or for an array of counters
 * named by a function ngx_http_stytch_tat_family_array()), and a row in
 * the table of docs/directives.md (t/060-metrics.t holds the two to each
 * other).  Nothing else changes.  Prometheus's text format wants the lines
 * of a family together: it is written family by family, each over every
 * zone; JSON zone by zone, each with every family.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_version.h"


#define NGX_HTTP_STYTCH_TAT_STATUS_JSON        0
#define NGX_HTTP_STYTCH_TAT_STATUS_PROMETHEUS  1

#define NGX_HTTP_STYTCH_TAT_COUNTER            0
#define NGX_HTTP_STYTCH_TAT_GAUGE              1
#define NGX_HTTP_STYTCH_TAT_HISTOGRAM          2

/* a line's room besides its names, labels and value */
#define NGX_HTTP_STYTCH_TAT_LINE_MAX           64


typedef ngx_atomic_uint_t (*ngx_http_stytch_tat_status_value_pt)(
    ngx_http_stytch_tat_zone_t *zone);
typedef const char *(*ngx_http_stytch_tat_status_name_pt)(int i);


/* one counter of a family */
typedef struct {
    char                                *labels;  /* a="x",b="y" or "" */
    char                                *json;    /* its JSON member */
    size_t                               offset;  /* in the stats */
} ngx_http_stytch_tat_series_t;


typedef struct {
    char                                *name;    /* stytch_tat_... */
    ngx_uint_t                           type;
    char                                *help;
    /* its members' JSON object in a zone's: "" the zone's, "a", "a/b" */
    char                                *json;

    /* its counters, ended by a NULL json ... */
    ngx_http_stytch_tat_series_t        *series;

    /* ... or counters first..last-1 of an array at offset, label="name" */
    char                                *label;
    ngx_http_stytch_tat_status_name_pt   name_of;
    ngx_uint_t                           first;
    ngx_uint_t                           last;
    size_t                               offset;

    /* a gauge kept elsewhere than in the stats, for its one series */
    ngx_http_stytch_tat_status_value_pt  value;
} ngx_http_stytch_tat_family_t;


/* one series of a family in one zone, as the writers see it */
typedef struct {
    char                                *labels;
    char                                *label;   /* label="label_value" */
    u_char                              *label_value;
    char                                *json;    /* or label_value */
    ngx_atomic_uint_t                    count;
} ngx_http_stytch_tat_sample_t;


#define ngx_http_stytch_tat_stat(field)                                       \
    offsetof(ngx_http_stytch_tat_stats_t, field)

#define ngx_http_stytch_tat_family(name, type, help, json, series)            \
    { name, type, help, json, series, NULL, NULL, 0, 0, 0, NULL }

#define ngx_http_stytch_tat_family_array(name, help, json, label, name_of,    \
                                         first, last, field)                  \
    { name, NGX_HTTP_STYTCH_TAT_COUNTER, help, json, NULL, label, name_of,    \
      first, last, ngx_http_stytch_tat_stat(field), NULL }

#define ngx_http_stytch_tat_family_gauge(name, help, series, value)           \
    { name, NGX_HTTP_STYTCH_TAT_GAUGE, help, "", series, NULL, NULL, 0, 0, 0, \
      value }


static ngx_int_t ngx_http_stytch_tat_status_handler(ngx_http_request_t *r);
static size_t ngx_http_stytch_tat_status_size(
    ngx_http_stytch_tat_main_conf_t *mcf);
static u_char *ngx_http_stytch_tat_status_json(u_char *p,
    ngx_http_stytch_tat_zone_t *zone);
static u_char *ngx_http_stytch_tat_status_json_move(u_char *p,
    char *from, char *to, ngx_uint_t *sep);
static char *ngx_http_stytch_tat_status_component(char *path);
static u_char *ngx_http_stytch_tat_status_json_histogram(u_char *p,
    ngx_http_stytch_tat_stats_t *st, ngx_uint_t *sep);
static u_char *ngx_http_stytch_tat_status_prometheus(u_char *p,
    ngx_http_stytch_tat_main_conf_t *mcf);
static u_char *ngx_http_stytch_tat_status_prometheus_histogram(u_char *p,
    ngx_http_stytch_tat_family_t *f, ngx_http_stytch_tat_zone_t *zone);
static u_char *ngx_http_stytch_tat_status_line(u_char *p, char *name,
    char *suffix, ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_sample_t *s, char *le);
static u_char *ngx_http_stytch_tat_status_escape(u_char *p, u_char *src,
    size_t len, ngx_uint_t quote);
static u_char *ngx_http_stytch_tat_status_seconds(u_char *p,
    ngx_atomic_uint_t ms);
static ngx_int_t ngx_http_stytch_tat_status_sample(
    ngx_http_stytch_tat_family_t *f, ngx_uint_t i,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_sample_t *s);
static ngx_atomic_uint_t ngx_http_stytch_tat_status_zone_size(
    ngx_http_stytch_tat_zone_t *zone);
static ngx_atomic_uint_t ngx_http_stytch_tat_status_zone_free(
    ngx_http_stytch_tat_zone_t *zone);
static ngx_atomic_uint_t ngx_http_stytch_tat_status_zone_entries(
    ngx_http_stytch_tat_zone_t *zone);


static char  *ngx_http_stytch_tat_types[] = {
    "counter", "gauge", "histogram"
};


/* the gauges' JSON members (their values are read by a function) */

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_size_series[] = {
    { "", "size", 0 },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_free_series[] = {
    { "", "free", 0 },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_entries_series[] = {
    { "", "entries", 0 },
    { NULL, NULL, 0 }
};


static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_cache_series[] = {
    { "status=\"hit\"", "hits", ngx_http_stytch_tat_stat(hits) },
    { "status=\"miss\"", "misses", ngx_http_stytch_tat_stat(misses) },
    { "status=\"expired\"", "expired", ngx_http_stytch_tat_stat(expired) },
    { "status=\"stale\"", "stale", ngx_http_stytch_tat_stat(stale) },
    { "status=\"bypass\"", "bypass", ngx_http_stytch_tat_stat(bypass) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_waits_series[] = {
    { "", "waits", ngx_http_stytch_tat_stat(waits) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_evictions_series[] = {
    { "", "evictions", ngx_http_stytch_tat_stat(evictions) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_uncached_series[] = {
    { "", "uncached", ngx_http_stytch_tat_stat(uncached) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_jwt_series[] = {
    { "status=\"hit\"", "jwt_hits", ngx_http_stytch_tat_stat(jwt_hits) },
    { "status=\"miss\"", "jwt_misses", ngx_http_stytch_tat_stat(jwt_misses) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_mints_series[] = {
    { "alg=\"RS256\"", "RS256", ngx_http_stytch_tat_stat(mints[0]) },
    { "alg=\"ES256\"", "ES256", ngx_http_stytch_tat_stat(mints[1]) },
    { "alg=\"EdDSA\"", "EdDSA", ngx_http_stytch_tat_stat(mints[2]) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_calls_series[] = {
    { "call=\"attest\",result=\"ok\"", "attest_ok",
      ngx_http_stytch_tat_stat(
          calls[NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_OK]) },
    { "call=\"attest\",result=\"refused\"", "attest_refused",
      ngx_http_stytch_tat_stat(
          calls[NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_REFUSED]) },
    { "call=\"attest\",result=\"failed\"", "attest_failed",
      ngx_http_stytch_tat_stat(
          calls[NGX_HTTP_STYTCH_TAT_COUNT_ATTEST_FAILED]) },
    { "call=\"refresh\",result=\"ok\"", "refresh_ok",
      ngx_http_stytch_tat_stat(
          calls[NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_OK]) },
    { "call=\"refresh\",result=\"failed\"", "refresh_failed",
      ngx_http_stytch_tat_stat(
          calls[NGX_HTTP_STYTCH_TAT_COUNT_REFRESH_FAILED]) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_failures_series[] = {
    { "reason=\"invalid_trusted_auth_token\"", "invalid_trusted_auth_token",
      ngx_http_stytch_tat_stat(
          call_failures[NGX_HTTP_STYTCH_TAT_FAIL_TOKEN_REFUSED]) },
    { "reason=\"configuration\"", "configuration",
      ngx_http_stytch_tat_stat(
          call_failures[NGX_HTTP_STYTCH_TAT_FAIL_CONFIGURATION]) },
    { "reason=\"rate_limited\"", "rate_limited",
      ngx_http_stytch_tat_stat(
          call_failures[NGX_HTTP_STYTCH_TAT_FAIL_RATE_LIMITED]) },
    { "reason=\"error\"", "error",
      ngx_http_stytch_tat_stat(
          call_failures[NGX_HTTP_STYTCH_TAT_FAIL_ERROR]) },
    { "reason=\"timeout\"", "timeout",
      ngx_http_stytch_tat_stat(
          call_failures[NGX_HTTP_STYTCH_TAT_FAIL_TIMEOUT]) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_verify_series[] = {
    { "result=\"ok\"", "ok", ngx_http_stytch_tat_stat(verify_ok) },
    { "result=\"cached\"", "cached", ngx_http_stytch_tat_stat(verify_cached) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_jwks_series[] = {
    { "outcome=\"ok\"", "fetches", ngx_http_stytch_tat_stat(jwks_fetches) },
    { "outcome=\"failed\"", "failures",
      ngx_http_stytch_tat_stat(jwks_failures) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_limited_series[] = {
    { "", "refetch_limited", ngx_http_stytch_tat_stat(jwks_refetch_limited) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_authz_series[] = {
    { "result=\"allowed\"", "allowed",
      ngx_http_stytch_tat_stat(authz_allowed) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_denied_series[] = {
    { "reason=\"tenancy_mismatch\"", "tenancy_mismatch",
      ngx_http_stytch_tat_stat(authz_denied[0]) },
    { "reason=\"permission_denied\"", "permission_denied",
      ngx_http_stytch_tat_stat(authz_denied[1]) },
    { "reason=\"factor_required\"", "factor_required",
      ngx_http_stytch_tat_stat(authz_denied[2]) },
    { "reason=\"condition_failed\"", "condition_failed",
      ngx_http_stytch_tat_stat(authz_denied[3]) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_policy_series[] = {
    { "outcome=\"ok\"", "policy_fetches",
      ngx_http_stytch_tat_stat(policy_fetches) },
    { "outcome=\"failed\"", "policy_failures",
      ngx_http_stytch_tat_stat(policy_failures) },
    { NULL, NULL, 0 }
};

static ngx_http_stytch_tat_series_t  ngx_http_stytch_tat_unavailable_series[]
    = {
    { "", "policy_unavailable", ngx_http_stytch_tat_stat(policy_unavailable) },
    { NULL, NULL, 0 }
};


/*
 * The families, in the order of both formats; every one is in the table
 * of docs/directives.md, and t/060-metrics.t holds the two to each other.
 * Help texts have no backslash and no newline.
 */

static ngx_http_stytch_tat_family_t  ngx_http_stytch_tat_families[] = {

    ngx_http_stytch_tat_family_gauge("stytch_tat_zone_size_bytes",
        "Size of the stytch_tat_zone shared memory.",
        ngx_http_stytch_tat_size_series,
        ngx_http_stytch_tat_status_zone_size),

    ngx_http_stytch_tat_family_gauge("stytch_tat_zone_free_bytes",
        "Free pages of the zone, in bytes.",
        ngx_http_stytch_tat_free_series,
        ngx_http_stytch_tat_status_zone_free),

    ngx_http_stytch_tat_family_gauge("stytch_tat_zone_entries",
        "Entries in the zone: sessions, tokens, verified session JWTs.",
        ngx_http_stytch_tat_entries_series,
        ngx_http_stytch_tat_status_zone_entries),

    ngx_http_stytch_tat_family("stytch_tat_cache_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Session lookups in the zone, by $stytch_tat_cache_status.",
        "", ngx_http_stytch_tat_cache_series),

    ngx_http_stytch_tat_family("stytch_tat_cache_waits_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Requests that waited on the exchange of another request for the "
        "same identity.", "", ngx_http_stytch_tat_waits_series),

    ngx_http_stytch_tat_family("stytch_tat_cache_evictions_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Entries evicted before they expired, to make room: the zone is "
        "too small.", "", ngx_http_stytch_tat_evictions_series),

    ngx_http_stytch_tat_family("stytch_tat_cache_uncached_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Entries that did not fit in the zone, served uncached.",
        "", ngx_http_stytch_tat_uncached_series),

    ngx_http_stytch_tat_family("stytch_tat_jwt_cache_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Tokens for $stytch_tat_jwt reused from the zone (hit) or minted "
        "(miss).", "", ngx_http_stytch_tat_jwt_series),

    ngx_http_stytch_tat_family("stytch_tat_mints_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Tokens minted, by signing algorithm.", "mints",
        ngx_http_stytch_tat_mints_series),

    ngx_http_stytch_tat_family("stytch_tat_calls_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Calls to Stytch: attest or refresh (authenticate), by result.",
        "calls", ngx_http_stytch_tat_calls_series),

    ngx_http_stytch_tat_family("stytch_tat_call_failures_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Calls to Stytch that gave no session, a refused identity aside, "
        "by reason.", "call_failures", ngx_http_stytch_tat_failures_series),

    ngx_http_stytch_tat_family("stytch_tat_call_duration_seconds",
        NGX_HTTP_STYTCH_TAT_HISTOGRAM,
        "Duration of the calls to Stytch, whatever their result.",
        "latency_ms", NULL),

    ngx_http_stytch_tat_family("stytch_tat_verify_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Stytch session JWTs accepted here: verified, or known good from "
        "the zone (cached).", "verify", ngx_http_stytch_tat_verify_series),

    ngx_http_stytch_tat_family_array("stytch_tat_verify_failures_total",
        "Stytch session JWTs refused here, by reason.", "verify/failed",
        "reason", ngx_http_stytch_tat_verify_code_name,
        NGX_HTTP_STYTCH_TAT_VERIFY_OK + 1, NGX_HTTP_STYTCH_TAT_VERIFY_NCODES,
        verify_failed),

    ngx_http_stytch_tat_family("stytch_tat_jwks_fetches_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Fetches of Stytch's session JWKS, by outcome.", "jwks",
        ngx_http_stytch_tat_jwks_series),

    ngx_http_stytch_tat_family("stytch_tat_jwks_refetch_limited_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Refetches of the session JWKS for an unknown kid held back by "
        "min_refetch.", "jwks", ngx_http_stytch_tat_limited_series),

    ngx_http_stytch_tat_family("stytch_tat_authz_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Requests whose session met every requirement of its location "
        "(permissions, factors, conditions).", "rbac",
        ngx_http_stytch_tat_authz_series),

    ngx_http_stytch_tat_family("stytch_tat_authz_denied_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Requests denied by a requirement of their location, by reason.",
        "rbac/denied", ngx_http_stytch_tat_denied_series),

    ngx_http_stytch_tat_family("stytch_tat_rbac_policy_fetches_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Fetches of Stytch's RBAC policy, by outcome.", "rbac",
        ngx_http_stytch_tat_policy_series),

    ngx_http_stytch_tat_family("stytch_tat_rbac_policy_unavailable_total",
        NGX_HTTP_STYTCH_TAT_COUNTER,
        "Requests refused with 503: no RBAC policy, or one past max_stale.",
        "rbac", ngx_http_stytch_tat_unavailable_series),

    ngx_http_stytch_tat_family(NULL, 0, NULL, NULL, NULL)
};


#define NGX_HTTP_STYTCH_TAT_INFO                                              \
    "# HELP stytch_tat_info The module's version, always 1.\n"                \
    "# TYPE stytch_tat_info gauge\n"                                          \
    "stytch_tat_info{version=\"" NGX_HTTP_STYTCH_TAT_VERSION "\"} 1\n"

#define NGX_HTTP_STYTCH_TAT_JSON_HEAD                                         \
    "{\"version\":\"" NGX_HTTP_STYTCH_TAT_VERSION "\",\"zones\":{"


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
    ngx_int_t                         rc;
    ngx_buf_t                        *b;
    ngx_uint_t                        i, n, prom;
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

    b = ngx_create_temp_buf(r->pool, ngx_http_stytch_tat_status_size(mcf));
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = b->last;

    if (prom) {
        p = ngx_http_stytch_tat_status_prometheus(p, mcf);

    } else {
        p = ngx_cpymem(p, NGX_HTTP_STYTCH_TAT_JSON_HEAD,
                       sizeof(NGX_HTTP_STYTCH_TAT_JSON_HEAD) - 1);

        zones = mcf->zones.elts;

        for (i = 0, n = 0; i < mcf->zones.nelts; i++) {
            if (zones[i]->sh == NULL) {
                continue;
            }

            if (n++) {
                *p++ = ',';
            }

            p = ngx_http_stytch_tat_status_json(p, zones[i]);
        }

        p = ngx_cpymem(p, "}}\n", 3);
    }

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    if (prom) {
        ngx_str_set(&r->headers_out.content_type,
                    "text/plain; version=0.0.4; charset=utf-8");

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


/*
 * Room for either format: once per family its help, and per zone its JSON
 * objects and a line per series, where the zone's name and a label value
 * may be escaped to 6 times their length (JSON's \u00XX).
 */

static size_t
ngx_http_stytch_tat_status_size(ngx_http_stytch_tat_main_conf_t *mcf)
{
    size_t                         len, per_zone, line;
    ngx_uint_t                     i, names;
    ngx_http_stytch_tat_zone_t   **zones;
    ngx_http_stytch_tat_family_t  *f;
    ngx_http_stytch_tat_sample_t   s;

    len = sizeof(NGX_HTTP_STYTCH_TAT_INFO NGX_HTTP_STYTCH_TAT_JSON_HEAD
                 "}}\n");
    per_zone = NGX_HTTP_STYTCH_TAT_LINE_MAX;
    names = 1;

    for (f = ngx_http_stytch_tat_families; f->name; f++) {
        len += 2 * ngx_strlen(f->name) + 2 * ngx_strlen(f->help)
               + NGX_HTTP_STYTCH_TAT_LINE_MAX;

        per_zone += 2 * ngx_strlen(f->json) + NGX_HTTP_STYTCH_TAT_LINE_MAX;

        line = ngx_strlen(f->name) + sizeof("_bucket") + NGX_ATOMIC_T_LEN
               + NGX_HTTP_STYTCH_TAT_LINE_MAX;

        if (f->type == NGX_HTTP_STYTCH_TAT_HISTOGRAM) {
            per_zone += (NGX_HTTP_STYTCH_TAT_NBUCKETS + 2) * line;
            names += NGX_HTTP_STYTCH_TAT_NBUCKETS + 2;
            continue;
        }

        for (i = 0;
             ngx_http_stytch_tat_status_sample(f, i, NULL, &s) == NGX_OK;
             i++)
        {
            per_zone += line + ngx_strlen(s.labels) + ngx_strlen(s.json)
                        + 6 * ngx_strlen(s.label_value);
            names++;
        }
    }

    zones = mcf->zones.elts;

    for (i = 0; i < mcf->zones.nelts; i++) {
        len += per_zone + names * 6 * zones[i]->shm_zone->shm.name.len;
    }

    return len;
}


/*
 * The i-th series of a family in a zone (NULL: its names alone).
 * NGX_DONE: no more.
 */

static ngx_int_t
ngx_http_stytch_tat_status_sample(ngx_http_stytch_tat_family_t *f,
    ngx_uint_t i, ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_sample_t *s)
{
    size_t        offset;
    u_char       *stats;
    const char   *name;

    s->labels = "";
    s->label = NULL;
    s->label_value = (u_char *) "";
    s->json = "";

    if (f->series) {
        if (f->series[i].json == NULL) {
            return NGX_DONE;
        }

        s->labels = f->series[i].labels;
        s->json = f->series[i].json;
        offset = f->series[i].offset;

    } else if (f->name_of) {
        if (f->first + i >= f->last) {
            return NGX_DONE;
        }

        name = f->name_of((int) (f->first + i));

        s->label = f->label;
        s->label_value = (u_char *) name;
        offset = f->offset + (f->first + i) * sizeof(ngx_atomic_t);

    } else {
        return NGX_DONE;
    }

    if (zone == NULL) {
        s->count = 0;
        return NGX_OK;
    }

    if (f->value) {
        s->count = f->value(zone);
        return NGX_OK;
    }

    stats = (u_char *) &zone->sh->stats;
    s->count = *(ngx_atomic_t *) (stats + offset);

    return NGX_OK;
}


static u_char *
ngx_http_stytch_tat_status_json(u_char *p, ngx_http_stytch_tat_zone_t *zone)
{
    ngx_str_t                     *name;
    ngx_uint_t                     i, sep;
    ngx_http_stytch_tat_family_t  *f;
    ngx_http_stytch_tat_sample_t   s;
    char                          *path;

    name = &zone->shm_zone->shm.name;

    *p++ = '"';
    p = (u_char *) ngx_escape_json(p, name->data, name->len);
    p = ngx_cpymem(p, "\":{", 3);

    path = "";
    sep = 0;

    for (f = ngx_http_stytch_tat_families; f->name; f++) {
        p = ngx_http_stytch_tat_status_json_move(p, path, f->json, &sep);
        path = f->json;

        if (f->type == NGX_HTTP_STYTCH_TAT_HISTOGRAM) {
            p = ngx_http_stytch_tat_status_json_histogram(p,
                                                          &zone->sh->stats,
                                                          &sep);
            continue;
        }

        for (i = 0;
             ngx_http_stytch_tat_status_sample(f, i, zone, &s) == NGX_OK;
             i++)
        {
            if (sep) {
                *p++ = ',';
            }

            *p++ = '"';

            if (s.label) {
                p = (u_char *) ngx_escape_json(p, s.label_value,
                                               ngx_strlen(s.label_value));

            } else {
                p = ngx_cpymem(p, s.json, ngx_strlen(s.json));
            }

            p = ngx_sprintf(p, "\":%uA", s.count);
            sep = 1;
        }
    }

    p = ngx_http_stytch_tat_status_json_move(p, path, "", &sep);

    *p++ = '}';

    return p;
}


/*
 * From the JSON object at path "from" to the one at "to" ("a/b": member b
 * of member a of the zone's object): close what they do not share, open
 * the rest of "to".
 */

static u_char *
ngx_http_stytch_tat_status_json_move(u_char *p, char *from, char *to,
    ngx_uint_t *sep)
{
    char  *fe, *te;

    for ( ;; ) {
        fe = ngx_http_stytch_tat_status_component(from);
        te = ngx_http_stytch_tat_status_component(to);

        if (*from == '\0' || *to == '\0' || fe - from != te - to
            || ngx_strncmp(from, to, fe - from) != 0)
        {
            break;
        }

        from = *fe ? fe + 1 : fe;
        to = *te ? te + 1 : te;
    }

    while (*from) {
        *p++ = '}';
        *sep = 1;

        fe = ngx_http_stytch_tat_status_component(from);
        from = *fe ? fe + 1 : fe;
    }

    while (*to) {
        te = ngx_http_stytch_tat_status_component(to);

        p = ngx_sprintf(p, "%s\"%*s\":{", *sep ? "," : "",
                        (size_t) (te - to), to);
        *sep = 0;

        to = *te ? te + 1 : te;
    }

    return p;
}


/* the end of a path's first component: its '/' or its end */

static char *
ngx_http_stytch_tat_status_component(char *path)
{
    while (*path && *path != '/') {
        path++;
    }

    return path;
}


/* the calls' durations, ms: each bucket's own count, as it always was */

static u_char *
ngx_http_stytch_tat_status_json_histogram(u_char *p,
    ngx_http_stytch_tat_stats_t *st, ngx_uint_t *sep)
{
    ngx_uint_t  i;

    static ngx_msec_t  buckets[] = NGX_HTTP_STYTCH_TAT_BUCKETS;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NBUCKETS; i++) {
        if (*sep) {
            *p++ = ',';
        }

        if (i == NGX_HTTP_STYTCH_TAT_NBUCKETS - 1) {
            p = ngx_sprintf(p, "\"inf\":%uA", st->latency[i]);

        } else {
            p = ngx_sprintf(p, "\"%M\":%uA", buckets[i], st->latency[i]);
        }

        *sep = 1;
    }

    return ngx_sprintf(p, ",\"sum\":%uA", st->latency_sum);
}


static u_char *
ngx_http_stytch_tat_status_prometheus(u_char *p,
    ngx_http_stytch_tat_main_conf_t *mcf)
{
    ngx_uint_t                     i, j, n;
    ngx_http_stytch_tat_zone_t   **zones;
    ngx_http_stytch_tat_family_t  *f;
    ngx_http_stytch_tat_sample_t   s;

    p = ngx_cpymem(p, NGX_HTTP_STYTCH_TAT_INFO,
                   sizeof(NGX_HTTP_STYTCH_TAT_INFO) - 1);

    zones = mcf->zones.elts;

    for (i = 0, n = 0; i < mcf->zones.nelts; i++) {
        if (zones[i]->sh) {
            n++;
        }
    }

    if (n == 0) {
        return p;
    }

    for (f = ngx_http_stytch_tat_families; f->name; f++) {

        p = ngx_sprintf(p, "# HELP %s ", f->name);
        p = ngx_http_stytch_tat_status_escape(p, (u_char *) f->help,
                                              ngx_strlen(f->help), 0);
        p = ngx_sprintf(p, "\n# TYPE %s %s\n", f->name,
                        ngx_http_stytch_tat_types[f->type]);

        for (i = 0; i < mcf->zones.nelts; i++) {
            if (zones[i]->sh == NULL) {
                continue;
            }

            if (f->type == NGX_HTTP_STYTCH_TAT_HISTOGRAM) {
                p = ngx_http_stytch_tat_status_prometheus_histogram(p, f,
                                                                    zones[i]);
                continue;
            }

            for (j = 0;
                 ngx_http_stytch_tat_status_sample(f, j, zones[i], &s)
                 == NGX_OK;
                 j++)
            {
                p = ngx_http_stytch_tat_status_line(p, f->name, "", zones[i],
                                                    &s, NULL);
            }
        }
    }

    return p;
}


/* seconds, Prometheus's base unit: le and _sum from the milliseconds */

static u_char *
ngx_http_stytch_tat_status_prometheus_histogram(u_char *p,
    ngx_http_stytch_tat_family_t *f, ngx_http_stytch_tat_zone_t *zone)
{
    u_char                        le[NGX_ATOMIC_T_LEN + 8], *last;
    ngx_uint_t                    i;
    ngx_http_stytch_tat_stats_t  *st;
    ngx_http_stytch_tat_sample_t  s;

    static ngx_msec_t  buckets[] = NGX_HTTP_STYTCH_TAT_BUCKETS;

    st = &zone->sh->stats;

    s.labels = "";
    s.label = NULL;
    s.count = 0;

    for (i = 0; i < NGX_HTTP_STYTCH_TAT_NBUCKETS; i++) {
        s.count += st->latency[i];

        if (i == NGX_HTTP_STYTCH_TAT_NBUCKETS - 1) {
            last = ngx_cpymem(le, "+Inf", 4);

        } else {
            last = ngx_http_stytch_tat_status_seconds(le, buckets[i]);
        }

        *last = '\0';

        p = ngx_http_stytch_tat_status_line(p, f->name, "_bucket", zone, &s,
                                            (char *) le);
    }

    p = ngx_sprintf(p, "%s_sum{zone=\"", f->name);
    p = ngx_http_stytch_tat_status_escape(p, zone->shm_zone->shm.name.data,
                                          zone->shm_zone->shm.name.len, 1);
    p = ngx_cpymem(p, "\"} ", 3);
    p = ngx_http_stytch_tat_status_seconds(p, st->latency_sum);
    *p++ = LF;

    return ngx_http_stytch_tat_status_line(p, f->name, "_count", zone, &s,
                                           NULL);
}


/* name{zone="...",labels[,le="..."]} count */

static u_char *
ngx_http_stytch_tat_status_line(u_char *p, char *name, char *suffix,
    ngx_http_stytch_tat_zone_t *zone, ngx_http_stytch_tat_sample_t *s,
    char *le)
{
    p = ngx_sprintf(p, "%s%s{zone=\"", name, suffix);
    p = ngx_http_stytch_tat_status_escape(p, zone->shm_zone->shm.name.data,
                                          zone->shm_zone->shm.name.len, 1);
    *p++ = '"';

    if (s->labels[0]) {
        p = ngx_sprintf(p, ",%s", s->labels);
    }

    if (s->label) {
        p = ngx_sprintf(p, ",%s=\"", s->label);
        p = ngx_http_stytch_tat_status_escape(p, s->label_value,
                                              ngx_strlen(s->label_value), 1);
        *p++ = '"';
    }

    if (le) {
        p = ngx_sprintf(p, ",le=\"%s\"", le);
    }

    return ngx_sprintf(p, "} %uA\n", s->count);
}


/*
 * The text format's escapes: a backslash and a newline in help texts and
 * label values, a double quote in label values.
 */

static u_char *
ngx_http_stytch_tat_status_escape(u_char *p, u_char *src, size_t len,
    ngx_uint_t quote)
{
    while (len--) {
        if (*src == '\\' || (quote && *src == '"')) {
            *p++ = '\\';
            *p++ = *src;

        } else if (*src == LF) {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = *src;
        }

        src++;
    }

    return p;
}


/* milliseconds as seconds: 2500 -> "2.5", 10 -> "0.01", 0 -> "0" */

static u_char *
ngx_http_stytch_tat_status_seconds(u_char *p, ngx_atomic_uint_t ms)
{
    p = ngx_sprintf(p, "%uA", ms / 1000);

    if (ms % 1000 == 0) {
        return p;
    }

    p = ngx_sprintf(p, ".%03uA", ms % 1000);

    while (p[-1] == '0') {
        p--;
    }

    return p;
}


static ngx_atomic_uint_t
ngx_http_stytch_tat_status_zone_size(ngx_http_stytch_tat_zone_t *zone)
{
    return zone->shm_zone->shm.size;
}


static ngx_atomic_uint_t
ngx_http_stytch_tat_status_zone_free(ngx_http_stytch_tat_zone_t *zone)
{
    return zone->shpool->pfree * ngx_pagesize;
}


static ngx_atomic_uint_t
ngx_http_stytch_tat_status_zone_entries(ngx_http_stytch_tat_zone_t *zone)
{
    return zone->sh->entries;
}
