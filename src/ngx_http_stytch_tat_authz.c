/*
 * Authorization at the edge: what a location requires of the session the
 * module hands upstream, whatever gave it (the exchange, the zone, the
 * client's session JWT, cluster mode), decided in the worker with no call
 * to Stytch, and final.  The session JWT's claims are the one source: its
 * roles, factors and organization, read once per session into the zone
 * (ngx_http_stytch_tat_rbac.c makes and reads that blob, and decides).
 *
 *   stytch_tat_require_permission RESOURCE ACTION [organization=ID]
 *                                 [error=403|401];
 *   stytch_tat_require_factor TYPE [delivery_method=M] [max_age=TIME];
 *   stytch_tat_require VALUE ... [error=401|403];
 *
 * Permissions are Stytch RBAC, decided as Stytch's SDKs decide them
 * (tenancy first, then the roles the policy knows); the policy is
 * ngx_http_stytch_tat_policy.c's.  A missing factor answers as RFC 9470
 * (step-up) asks.  Also the session's variables: its roles, factor types,
 * organization id and slug, and the roles that granted a permission.
 */


#include "ngx_http_stytch_tat.h"


/* a session's blob usually fits here; a larger one is allocated */
#define NGX_HTTP_STYTCH_TAT_AUTHZ_BLOB_STACK  512

#define NGX_HTTP_STYTCH_TAT_DENY_TENANCY      0
#define NGX_HTTP_STYTCH_TAT_DENY_PERMISSION   1
#define NGX_HTTP_STYTCH_TAT_DENY_FACTOR       2
#define NGX_HTTP_STYTCH_TAT_DENY_CONDITION    3


typedef struct {
    ngx_http_complex_value_t    resource;
    ngx_http_complex_value_t    action;
    ngx_http_complex_value_t   *organization;    /* B2B, or NULL */
    ngx_uint_t                  status;
} ngx_http_stytch_tat_permission_t;


typedef struct {
    ngx_str_t                   type;
    ngx_str_t                   delivery_method; /* empty: any */
    time_t                      max_age;         /* -1: any */
} ngx_http_stytch_tat_factor_t;


typedef struct {
    ngx_array_t                *values;          /* complex values */
    ngx_uint_t                  status;
} ngx_http_stytch_tat_require_t;


static ngx_int_t ngx_http_stytch_tat_authz_compile(ngx_conf_t *cf,
    ngx_str_t *value, ngx_http_complex_value_t *cv);
static ngx_int_t ngx_http_stytch_tat_authz_status(ngx_conf_t *cf,
    ngx_str_t *value, ngx_uint_t *status);
static ngx_int_t ngx_http_stytch_tat_authz_view(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_rbac_session_t *s);
static ngx_int_t ngx_http_stytch_tat_authz_permissions(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_session_t *s);
static ngx_int_t ngx_http_stytch_tat_authz_permission(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_permission_t *p,
    ngx_http_stytch_tat_rbac_policy_t *policy,
    ngx_http_stytch_tat_rbac_session_t *s);
static ngx_int_t ngx_http_stytch_tat_authz_factors(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_session_t *s);
static ngx_int_t ngx_http_stytch_tat_authz_conditions(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_authz_deny(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t reason, ngx_uint_t status);
static ngx_int_t ngx_http_stytch_tat_authz_challenge(ngx_http_request_t *r,
    ngx_http_stytch_tat_factor_t *f);
static void ngx_http_stytch_tat_authz_printable(ngx_str_t *s);


static ngx_str_t  ngx_http_stytch_tat_authz_reasons[] = {
    ngx_string("tenancy_mismatch"),
    ngx_string("permission_denied"),
    ngx_string("factor_required"),
    ngx_string("condition_failed")
};


/* stytch_tat_require_permission RESOURCE ACTION [organization=] [error=] */

char *
ngx_http_stytch_tat_authz_permission_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t                         *value, org;
    ngx_uint_t                         i;
    ngx_http_stytch_tat_permission_t  *p;

    value = cf->args->elts;

    if (lcf->permissions == NGX_CONF_UNSET_PTR) {
        lcf->permissions = ngx_array_create(cf->pool, 2,
                                    sizeof(ngx_http_stytch_tat_permission_t));
        if (lcf->permissions == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    p = ngx_array_push(lcf->permissions);
    if (p == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(p, sizeof(ngx_http_stytch_tat_permission_t));
    p->status = NGX_HTTP_FORBIDDEN;
    ngx_str_null(&org);

    for (i = 3; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "organization=", 13) == 0
            && value[i].len > 13)
        {
            org.data = value[i].data + 13;
            org.len = value[i].len - 13;
            continue;
        }

        if (ngx_strncmp(value[i].data, "error=", 6) == 0) {
            if (ngx_http_stytch_tat_authz_status(cf, &value[i], &p->status)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_stytch_tat_authz_compile(cf, &value[1], &p->resource)
        != NGX_OK)
    {
        return "has an empty or invalid resource";
    }

    if (ngx_http_stytch_tat_authz_compile(cf, &value[2], &p->action)
        != NGX_OK)
    {
        return "has an empty or invalid action";
    }

    if (org.len) {
        p->organization = ngx_palloc(cf->pool,
                                     sizeof(ngx_http_complex_value_t));

        if (p->organization == NULL
            || ngx_http_stytch_tat_authz_compile(cf, &org, p->organization)
               != NGX_OK)
        {
            return "has an invalid organization";
        }
    }

    lcf->authz_file = cf->conf_file->file.name;
    lcf->authz_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/*
 * A value of a requirement: non-empty, with variables or without; one
 * without is checked here, once, not per request.
 */

static ngx_int_t
ngx_http_stytch_tat_authz_compile(ngx_conf_t *cf, ngx_str_t *value,
    ngx_http_complex_value_t *cv)
{
    ngx_http_compile_complex_value_t  ccv;

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (value->len == 0 || ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_ERROR;
    }

    if (cv->lengths == NULL
        && ngx_http_stytch_tat_value_check(value->data, value->len)
           != NGX_HTTP_STYTCH_TAT_CLAIM_OK)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/* stytch_tat_require_factor TYPE [delivery_method=M] [max_age=TIME] */

char *
ngx_http_stytch_tat_authz_factor_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t                     *value, s;
    ngx_uint_t                     i;
    ngx_http_stytch_tat_factor_t  *f;

    value = cf->args->elts;

    if (lcf->factors == NGX_CONF_UNSET_PTR) {
        lcf->factors = ngx_array_create(cf->pool, 2,
                                        sizeof(ngx_http_stytch_tat_factor_t));
        if (lcf->factors == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    f = ngx_array_push(lcf->factors);
    if (f == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(f, sizeof(ngx_http_stytch_tat_factor_t));
    f->type = value[1];
    f->max_age = -1;

    if (f->type.len == 0
        || f->type.len > NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX)
    {
        return "has an empty or too long factor type";
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "delivery_method=", 16) == 0
            && value[i].len > 16)
        {
            f->delivery_method.data = value[i].data + 16;
            f->delivery_method.len = value[i].len - 16;
            continue;
        }

        if (ngx_strncmp(value[i].data, "max_age=", 8) == 0) {
            s.data = value[i].data + 8;
            s.len = value[i].len - 8;

            f->max_age = ngx_parse_time(&s, 1);

            if (f->max_age == (time_t) NGX_ERROR || f->max_age > 366 * 86400)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid time in \"%V\"", &value[i]);
                return NGX_CONF_ERROR;
            }

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    lcf->authz_file = cf->conf_file->file.name;
    lcf->authz_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* stytch_tat_require VALUE ... [error=401|403], as NGINX's auth_jwt_require */

char *
ngx_http_stytch_tat_authz_require_directive(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_str_t                         *value;
    ngx_uint_t                         i, n;
    ngx_http_complex_value_t          *cv;
    ngx_http_stytch_tat_require_t     *rq;
    ngx_http_compile_complex_value_t   ccv;

    value = cf->args->elts;
    n = cf->args->nelts;

    if (lcf->requires == NGX_CONF_UNSET_PTR) {
        lcf->requires = ngx_array_create(cf->pool, 2,
                                       sizeof(ngx_http_stytch_tat_require_t));
        if (lcf->requires == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    rq = ngx_array_push(lcf->requires);
    if (rq == NULL) {
        return NGX_CONF_ERROR;
    }

    rq->status = NGX_HTTP_UNAUTHORIZED;

    if (ngx_strncmp(value[n - 1].data, "error=", 6) == 0) {
        if (ngx_http_stytch_tat_authz_status(cf, &value[n - 1], &rq->status)
            != NGX_OK)
        {
            return NGX_CONF_ERROR;
        }

        n--;
    }

    if (n < 2) {
        return "needs a value";
    }

    rq->values = ngx_array_create(cf->pool, n - 1,
                                  sizeof(ngx_http_complex_value_t));
    if (rq->values == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < n; i++) {
        cv = ngx_array_push(rq->values);
        if (cv == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));
        ccv.cf = cf;
        ccv.value = &value[i];
        ccv.complex_value = cv;

        if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    lcf->authz_file = cf->conf_file->file.name;
    lcf->authz_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_stytch_tat_authz_status(ngx_conf_t *cf, ngx_str_t *value,
    ngx_uint_t *status)
{
    if (value->len == 9 && ngx_strncmp(value->data, "error=401", 9) == 0) {
        *status = NGX_HTTP_UNAUTHORIZED;
        return NGX_OK;
    }

    if (value->len == 9 && ngx_strncmp(value->data, "error=403", 9) == 0) {
        *status = NGX_HTTP_FORBIDDEN;
        return NGX_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\", expected \"error=401\" or "
                       "\"error=403\"", value);

    return NGX_ERROR;
}


/*
 * Each list inherited whole, as NGINX's auth_jwt_require; requirements
 * apply where the module hands a session on (stytch_tat, stytch_tat_verify)
 */

char *
ngx_http_stytch_tat_authz_merge(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev, ngx_http_stytch_tat_loc_conf_t *conf)
{
    if (conf->permissions == NGX_CONF_UNSET_PTR
        && conf->factors == NGX_CONF_UNSET_PTR
        && conf->requires == NGX_CONF_UNSET_PTR)
    {
        conf->authz_file = prev->authz_file;
        conf->authz_line = prev->authz_line;
    }

    ngx_conf_merge_ptr_value(conf->permissions, prev->permissions, NULL);
    ngx_conf_merge_ptr_value(conf->factors, prev->factors, NULL);
    ngx_conf_merge_ptr_value(conf->requires, prev->requires, NULL);

    conf->authz = (conf->permissions || conf->factors || conf->requires);

    /* where requirements apply, sessions keep their roles and factors */

    if (conf->authz && conf->cache && (conf->uri.len || conf->verify)) {
        conf->cache->rbac = 1;
    }

    return ngx_http_stytch_tat_policy_merge(cf, prev, conf);
}


/*
 * The session's claims as a blob, once per session: from its JWT, kept
 * with the session in the zone by whoever stores it.  An unreadable JWT
 * leaves none (every requirement then fails).
 */

ngx_int_t
ngx_http_stytch_tat_authz_claims(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_str_t *jwt)
{
    int          rc;
    u_char       stack[NGX_HTTP_STYTCH_TAT_AUTHZ_BLOB_STACK], *buf;
    size_t       len;
    const char  *reason;

    if (ctx->rbac.len || jwt->len == 0) {
        return NGX_OK;
    }

    buf = stack;

    rc = ngx_http_stytch_tat_rbac_claims_jwt((char *) jwt->data, jwt->len,
                                             buf, sizeof(stack), &len,
                                             &reason);

    if (rc == NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL) {
        buf = ngx_pnalloc(r->pool, len);
        if (buf == NULL) {
            return NGX_ERROR;
        }

        rc = ngx_http_stytch_tat_rbac_claims_jwt((char *) jwt->data,
                                                 jwt->len, buf, len, &len,
                                                 &reason);
    }

    if (rc == NGX_HTTP_STYTCH_TAT_RBAC_NOMEM) {
        return NGX_ERROR;
    }

    if (rc != NGX_HTTP_STYTCH_TAT_RBAC_OK) {
        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: the session's roles and factors are "
                      "unreadable (session \"%V\"): %s; every requirement "
                      "fails", &ctx->session_id, reason);
        return NGX_OK;
    }

    ctx->rbac.data = (buf == stack) ? ngx_pnalloc(r->pool, len) : buf;
    if (ctx->rbac.data == NULL) {
        return NGX_ERROR;
    }

    if (buf == stack) {
        ngx_memcpy(ctx->rbac.data, stack, len);
    }

    ctx->rbac.len = len;

    return NGX_OK;
}


/*
 * What the location requires, decided: NGX_OK (the session goes on),
 * NGX_AGAIN (the policy is being fetched: by this request when
 * ctx->policy_leading, else by another), or a status (denied, or no
 * policy to decide with).
 */

ngx_int_t
ngx_http_stytch_tat_authz(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_int_t                            rc;
    ngx_http_stytch_tat_rbac_session_t   s;

    if (!lcf->authz) {
        return NGX_OK;
    }

    if (lcf->permissions || lcf->factors) {
        if (ngx_http_stytch_tat_authz_view(r, ctx, &s) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        if (lcf->permissions) {
            rc = ngx_http_stytch_tat_authz_permissions(r, lcf, ctx, &s);
            if (rc != NGX_OK) {
                return rc;
            }
        }

        if (lcf->factors) {
            rc = ngx_http_stytch_tat_authz_factors(r, lcf, ctx, &s);
            if (rc != NGX_OK) {
                return rc;
            }
        }
    }

    if (lcf->requires) {
        rc = ngx_http_stytch_tat_authz_conditions(r, lcf, ctx);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (lcf->cache) {
        ngx_atomic_fetch_add(&lcf->cache->sh->stats.authz_allowed, 1);
    }

    return NGX_OK;
}


/* the session as a view of its blob; none readable: an empty session */

static ngx_int_t
ngx_http_stytch_tat_authz_view(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_rbac_session_t *s)
{
    if (ngx_http_stytch_tat_authz_claims(r, ctx, &ctx->session_jwt)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->rbac.len == 0) {
        ngx_http_stytch_tat_rbac_session_clear(s);
        return NGX_OK;
    }

    /* a blob the view refuses is an empty session: it is cleared */

    (void) ngx_http_stytch_tat_rbac_session_view(ctx->rbac.data,
                                                 ctx->rbac.len, s);

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_authz_permissions(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_session_t *s)
{
    ngx_int_t                           rc;
    ngx_uint_t                          i;
    ngx_http_stytch_tat_permission_t   *p;
    ngx_http_stytch_tat_rbac_policy_t  *policy;

    rc = ngx_http_stytch_tat_policy_get(r, lcf, ctx, &policy);

    switch (rc) {

    case NGX_OK:
        break;

    case NGX_AGAIN:
        return NGX_AGAIN;

    case NGX_BUSY:

        /* another request fetches the policy: wait for it, as for a lease */

        if (ngx_http_stytch_tat_ctx_waiting(&ctx->policy_wait_started,
                                            lcf->lock_timeout))
        {
            return NGX_AGAIN;
        }

        /* fall through */

    case NGX_DECLINED:
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: no RBAC policy to decide with: "
                      "\"stytch_tat_rbac_policy %V\" has not answered with "
                      "a usable one; failing closed", &lcf->policy_uri);
        ngx_atomic_fetch_add(&lcf->cache->sh->stats.policy_unavailable, 1);
        ngx_str_set(&ctx->error, "rbac_policy_unavailable");
        return NGX_HTTP_SERVICE_UNAVAILABLE;

    default:
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    p = lcf->permissions->elts;

    for (i = 0; i < lcf->permissions->nelts; i++) {
        rc = ngx_http_stytch_tat_authz_permission(r, ctx, &p[i], policy, s);
        if (rc != NGX_OK) {
            return rc;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_authz_permission(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx, ngx_http_stytch_tat_permission_t *p,
    ngx_http_stytch_tat_rbac_policy_t *policy,
    ngx_http_stytch_tat_rbac_session_t *s)
{
    int                                verdict;
    uint64_t                           granted;
    ngx_str_t                          v[3];
    ngx_uint_t                         i, bad;
    ngx_http_complex_value_t          *cv[3];
    ngx_http_stytch_tat_loc_conf_t    *lcf;
    ngx_http_stytch_tat_rbac_check_t   check;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);

    ngx_str_null(&v[2]);

    if (ngx_http_complex_value(r, &p->resource, &v[0]) != NGX_OK
        || ngx_http_complex_value(r, &p->action, &v[1]) != NGX_OK
        || (p->organization
            && ngx_http_complex_value(r, p->organization, &v[2]) != NGX_OK))
    {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* values from variables can be the client's: only plausible ids */

    bad = 0;
    cv[0] = &p->resource;
    cv[1] = &p->action;
    cv[2] = p->organization;

    for (i = 0; i < 3; i++) {
        if (cv[i] && cv[i]->lengths
            && ngx_http_stytch_tat_value_check(v[i].data, v[i].len)
               != NGX_HTTP_STYTCH_TAT_CLAIM_OK)
        {
            bad = 1;
        }
    }

    check.resource_id.data = (char *) v[0].data;
    check.resource_id.len = v[0].len;
    check.action.data = (char *) v[1].data;
    check.action.len = v[1].len;
    check.organization_id.data = p->organization ? (char *) v[2].data : NULL;
    check.organization_id.len = v[2].len;

    /* an empty organization is no B2B check: it matches no session */

    if (p->organization && check.organization_id.data == NULL) {
        check.organization_id.data = "";
    }

    granted = 0;
    verdict = (bad || v[0].len == 0 || v[1].len == 0)
              ? NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION
              : ngx_http_stytch_tat_rbac_decide(policy, s, &check, &granted);

    if (verdict == NGX_HTTP_STYTCH_TAT_RBAC_ALLOW) {
        ctx->granted |= granted;
        return NGX_OK;
    }

    for (i = 0; i < 3; i++) {
        ngx_http_stytch_tat_authz_printable(&v[i]);
    }

    ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                  "stytch_tat: access denied: %s (user \"%V\", resource "
                  "\"%V\", action \"%V\"%s%V%s)",
                  ngx_http_stytch_tat_rbac_verdict_name(verdict),
                  &ctx->user_id, &v[0], &v[1],
                  p->organization ? ", organization \"" : "", &v[2],
                  p->organization ? "\"" : "");

    return ngx_http_stytch_tat_authz_deny(r, lcf, ctx,
                        (verdict == NGX_HTTP_STYTCH_TAT_RBAC_DENY_TENANCY)
                        ? NGX_HTTP_STYTCH_TAT_DENY_TENANCY
                        : NGX_HTTP_STYTCH_TAT_DENY_PERMISSION,
                        p->status);
}


static ngx_int_t
ngx_http_stytch_tat_authz_factors(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_http_stytch_tat_rbac_session_t *s)
{
    ngx_uint_t                             i;
    ngx_http_stytch_tat_factor_t          *f;
    ngx_http_stytch_tat_rbac_factor_req_t  req;

    f = lcf->factors->elts;

    for (i = 0; i < lcf->factors->nelts; i++) {
        req.type.data = (char *) f[i].type.data;
        req.type.len = f[i].type.len;
        req.delivery_method.data = f[i].delivery_method.len
                                   ? (char *) f[i].delivery_method.data
                                   : NULL;
        req.delivery_method.len = f[i].delivery_method.len;
        req.max_age = f[i].max_age;

        if (ngx_http_stytch_tat_rbac_factor_check(s, &req, ngx_time())) {
            continue;
        }

        ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                      "stytch_tat: access denied: factor_required (user "
                      "\"%V\", factor \"%V\"%s%V%s, max_age %T)",
                      &ctx->user_id, &f[i].type,
                      f[i].delivery_method.len ? " by \"" : "",
                      &f[i].delivery_method,
                      f[i].delivery_method.len ? "\"" : "", f[i].max_age);

        if (ngx_http_stytch_tat_authz_challenge(r, &f[i]) != NGX_OK) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }

        return ngx_http_stytch_tat_authz_deny(r, lcf, ctx,
                                              NGX_HTTP_STYTCH_TAT_DENY_FACTOR,
                                              NGX_HTTP_UNAUTHORIZED);
    }

    return NGX_OK;
}


/* every value non-empty and not "0", as NGINX's auth_jwt_require */

static ngx_int_t
ngx_http_stytch_tat_authz_conditions(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_str_t                       v;
    ngx_uint_t                      i, j;
    ngx_http_complex_value_t       *cv;
    ngx_http_stytch_tat_require_t  *rq;

    rq = lcf->requires->elts;

    for (i = 0; i < lcf->requires->nelts; i++) {
        cv = rq[i].values->elts;

        for (j = 0; j < rq[i].values->nelts; j++) {
            if (ngx_http_complex_value(r, &cv[j], &v) != NGX_OK) {
                return NGX_HTTP_INTERNAL_SERVER_ERROR;
            }

            if (v.len == 0 || (v.len == 1 && v.data[0] == '0')) {
                ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                              "stytch_tat: access denied: condition_failed "
                              "(user \"%V\", \"stytch_tat_require\" value "
                              "%ui of %V:%ui)", &ctx->user_id, j + 1,
                              &lcf->authz_file, lcf->authz_line);

                return ngx_http_stytch_tat_authz_deny(r, lcf, ctx,
                                         NGX_HTTP_STYTCH_TAT_DENY_CONDITION,
                                         rq[i].status);
            }
        }
    }

    return NGX_OK;
}


/* a deny is final: the reason in $stytch_tat_error, counted */

static ngx_int_t
ngx_http_stytch_tat_authz_deny(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx,
    ngx_uint_t reason, ngx_uint_t status)
{
    ctx->error = ngx_http_stytch_tat_authz_reasons[reason];

    if (lcf->cache) {
        ngx_atomic_fetch_add(&lcf->cache->sh->stats.authz_denied[reason], 1);
    }

    return status;
}


/*
 * RFC 9470 (OAuth 2.0 Step Up Authentication Challenge): the error, and
 * max_age where the factor must be recent; error_page 401 = @step_up can
 * then send the user to authenticate again.
 */

static ngx_int_t
ngx_http_stytch_tat_authz_challenge(ngx_http_request_t *r,
    ngx_http_stytch_tat_factor_t *f)
{
    u_char     *p;
    size_t      len;
    ngx_str_t   value;

    len = sizeof("Bearer realm=\"stytch\", "
                 "error=\"insufficient_user_authentication\", "
                 "error_description=\"A  factor is required\", "
                 "max_age=") - 1 + f->type.len + NGX_TIME_T_LEN;

    p = ngx_pnalloc(r->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    value.data = p;

    p = ngx_sprintf(p, "Bearer realm=\"stytch\", "
                    "error=\"insufficient_user_authentication\", "
                    "error_description=\"A %V factor is required\"",
                    &f->type);

    if (f->max_age >= 0) {
        p = ngx_sprintf(p, ", max_age=%T", f->max_age);
    }

    value.len = p - value.data;

    return ngx_http_stytch_tat_headers_challenge(r, &value);
}


/* a value for the log: control characters and quotes replaced */

static void
ngx_http_stytch_tat_authz_printable(ngx_str_t *s)
{
    u_char     *p;
    ngx_uint_t  i;

    if (s->len > 128) {
        s->len = 128;
    }

    p = s->data;

    for (i = 0; i < s->len; i++) {
        if (p[i] < 0x20 || p[i] == 0x7f || p[i] == '"' || p[i] == '\\') {
            p[i] = '?';
        }
    }
}


/*
 * $stytch_session_roles, $stytch_session_factors,
 * $stytch_session_organization_id, $stytch_session_organization_slug and
 * $stytch_tat_granted_roles: data says which
 */

ngx_int_t
ngx_http_stytch_tat_authz_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    size_t                               len;
    ngx_http_stytch_tat_ctx_t           *ctx;
    ngx_http_stytch_tat_field_t         *f;
    ngx_http_stytch_tat_rbac_session_t   s;

    v->not_found = 1;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || ctx->session_jwt.len == 0) {
        return NGX_OK;
    }

    if (ngx_http_stytch_tat_authz_view(r, ctx, &s) != NGX_OK) {
        return NGX_ERROR;
    }

    f = NULL;

    switch (data) {

    case NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_ID:
        f = &s.organization_id;
        break;

    case NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_SLUG:
        f = &s.organization_slug;
        break;

    case NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_FACTORS:
        len = ngx_http_stytch_tat_rbac_factor_types_join(&s, NULL, 0);
        v->data = ngx_pnalloc(r->pool, len + 1);
        if (v->data == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_http_stytch_tat_rbac_factor_types_join(&s,
                                                (char *) v->data, len);
        break;

    default: /* the roles: all, or those that granted a permission */
        len = ngx_http_stytch_tat_rbac_roles_join(&s,
                               (data == NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ROLES)
                               ? UINT64_MAX : ctx->granted, NULL, 0);
        v->data = ngx_pnalloc(r->pool, len + 1);
        if (v->data == NULL) {
            return NGX_ERROR;
        }

        v->len = ngx_http_stytch_tat_rbac_roles_join(&s,
                               (data == NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ROLES)
                               ? UINT64_MAX : ctx->granted,
                               (char *) v->data, len);
        break;
    }

    if (f) {
        if (f->data == NULL) {
            return NGX_OK;
        }

        /* the blob is the request's (copied out of the zone, or made) */

        v->data = (u_char *) f->data;
        v->len = f->len;
    }

    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;

    return NGX_OK;
}
