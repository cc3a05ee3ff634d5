/*
 * ngx_http_stytch_tat_module: turns the identity an edge single-sign-on
 * layer hands to nginx into a signed Stytch Trusted Auth Token.
 *
 * This file holds the directives, the configuration and the variables;
 * src/ngx_http_stytch_tat.h maps the other concerns to their files.
 */


#include "ngx_http_stytch_tat.h"
#include "ngx_http_stytch_tat_version.h"


static ngx_int_t ngx_http_stytch_tat_add_variables(ngx_conf_t *cf);
static ngx_int_t ngx_http_stytch_tat_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_stytch_tat_init_module(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_stytch_tat_init_process(ngx_cycle_t *cycle);
static ngx_int_t ngx_http_stytch_tat_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static void *ngx_http_stytch_tat_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_stytch_tat_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_stytch_tat_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_stytch_tat_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_stytch_tat_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static ngx_int_t ngx_http_stytch_tat_check_uris(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf);
static char *ngx_http_stytch_tat_check_loc_conf(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf);
static ngx_int_t ngx_http_stytch_tat_cache_status_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_stytch_tat_call_time_variable(
    ngx_http_request_t *r, ngx_http_variable_value_t *v, uintptr_t data);


static char *ngx_http_stytch_tat_check_bounds(ngx_conf_t *cf, void *post,
    void *data);


/* nginx's own bounds check names no directive: this one does */
static ngx_conf_num_bounds_t  ngx_http_stytch_tat_ttl_bounds = {
    ngx_http_stytch_tat_check_bounds, 1, 86400
};


/* Stytch accepts session_duration_minutes from 5 to 527040 */
static ngx_conf_num_bounds_t  ngx_http_stytch_tat_duration_bounds = {
    ngx_http_stytch_tat_check_bounds, 5 * 60, 527040 * 60
};


static ngx_conf_num_bounds_t  ngx_http_stytch_tat_status_bounds = {
    ngx_http_stytch_tat_check_bounds, 400, 599
};


static ngx_conf_enum_t  ngx_http_stytch_tat_fail_modes[] = {
    { ngx_string("closed"), 0 },
    { ngx_string("open"), 1 },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_stytch_tat_commands[] = {

    { ngx_string("stytch_tat"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_exchange_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_zone_directive,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_cache"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_zone_cache_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_refresh"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_exchange_refresh_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_cache_lock_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, lock_timeout),
      NULL },

    { ngx_string("stytch_tat_cache_refusals"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, cache_refusals),
      NULL },

    { ngx_string("stytch_tat_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_status,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_credentials"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_credentials,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_profile_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, profile_id),
      NULL },

    { ngx_string("stytch_tat_organization_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE12,
      ngx_http_stytch_tat_identity_organization_id,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, organization_id),
      NULL },

    { ngx_string("stytch_tat_session_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, session_token),
      NULL },

    { ngx_string("stytch_tat_session_jwt"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, session_jwt),
      NULL },

    { ngx_string("stytch_tat_session_duration"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, session_duration),
      &ngx_http_stytch_tat_duration_bounds },

    { ngx_string("stytch_tat_refused_status"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, refused_status),
      &ngx_http_stytch_tat_status_bounds },

    { ngx_string("stytch_tat_fail"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_enum_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, fail_open),
      &ngx_http_stytch_tat_fail_modes },

    { ngx_string("stytch_tat_cookie"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, cookie),
      NULL },

    { ngx_string("stytch_tat_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, buffer_size),
      NULL },

    { ngx_string("stytch_tat_pass_session_token"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, pass_session_token),
      NULL },

    { ngx_string("stytch_tat_drop_client_headers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, drop_client_headers),
      NULL },

    { ngx_string("stytch_tat_signing_key"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE12,
      ngx_http_stytch_tat_keys_signing_key,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_issuer"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, issuer),
      NULL },

    { ngx_string("stytch_tat_audience"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, audience),
      NULL },

    { ngx_string("stytch_tat_token_ttl"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_sec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, token_ttl),
      &ngx_http_stytch_tat_ttl_bounds },

    { ngx_string("stytch_tat_email"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_identity_email,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, email),
      NULL },

    { ngx_string("stytch_tat_subject"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, subject),
      NULL },

    { ngx_string("stytch_tat_token_id"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, token_id),
      NULL },

    { ngx_string("stytch_tat_trusted_addresses"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_stytch_tat_identity_trusted,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_stytch_tat_identity_claim,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, claims_conf),
      NULL },

    { ngx_string("stytch_tat_session_claim"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE23,
      ngx_http_stytch_tat_identity_claim,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_stytch_tat_loc_conf_t, session_claims),
      NULL },

    { ngx_string("stytch_tat_session_jwks"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_stytch_tat_stytch_jwks,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_stytch_tat_client_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_rbac_policy"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_stytch_tat_policy_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_require_permission"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_2MORE,
      ngx_http_stytch_tat_authz_permission_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_require_factor"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_stytch_tat_authz_factor_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_require"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_stytch_tat_authz_require_directive,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("stytch_tat_jwks"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_stytch_tat_jwks,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_stytch_tat_module_ctx = {
    ngx_http_stytch_tat_add_variables,     /* preconfiguration */
    ngx_http_stytch_tat_init,              /* postconfiguration */

    ngx_http_stytch_tat_create_main_conf,  /* create main configuration */
    ngx_http_stytch_tat_init_main_conf,    /* init main configuration */

    ngx_http_stytch_tat_create_srv_conf,   /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_stytch_tat_create_loc_conf,   /* create location configuration */
    ngx_http_stytch_tat_merge_loc_conf     /* merge location configuration */
};


ngx_module_t  ngx_http_stytch_tat_module = {
    NGX_MODULE_V1,
    &ngx_http_stytch_tat_module_ctx,       /* module context */
    ngx_http_stytch_tat_commands,          /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    ngx_http_stytch_tat_init_module,       /* init module */
    ngx_http_stytch_tat_init_process,      /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_variable_t  ngx_http_stytch_tat_vars[] = {

    { ngx_string("stytch_tat_jwt"), NULL,
      ngx_http_stytch_tat_mint_jwt_variable, 0, 0, 0 },

    { ngx_string("stytch_session_token"), NULL,
      ngx_http_stytch_tat_ctx_variable,
      offsetof(ngx_http_stytch_tat_ctx_t, session_token),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_jwt"), NULL,
      ngx_http_stytch_tat_ctx_variable,
      offsetof(ngx_http_stytch_tat_ctx_t, session_jwt),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_user_id"), NULL,
      ngx_http_stytch_tat_ctx_variable,
      offsetof(ngx_http_stytch_tat_ctx_t, user_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_id"), NULL,
      ngx_http_stytch_tat_ctx_variable,
      offsetof(ngx_http_stytch_tat_ctx_t, session_id),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_tat_error"), NULL,
      ngx_http_stytch_tat_ctx_variable,
      offsetof(ngx_http_stytch_tat_ctx_t, error),
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_tat_cache_status"), NULL,
      ngx_http_stytch_tat_cache_status_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_tat_call_time"), NULL,
      ngx_http_stytch_tat_call_time_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_roles"), NULL,
      ngx_http_stytch_tat_authz_variable,
      NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ROLES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_factors"), NULL,
      ngx_http_stytch_tat_authz_variable,
      NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_FACTORS, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_organization_id"), NULL,
      ngx_http_stytch_tat_authz_variable,
      NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_organization_slug"), NULL,
      ngx_http_stytch_tat_authz_variable,
      NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_ORG_SLUG, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_tat_granted_roles"), NULL,
      ngx_http_stytch_tat_authz_variable,
      NGX_HTTP_STYTCH_TAT_AUTHZ_VAR_GRANTED, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("stytch_session_claim_"), NULL,
      ngx_http_stytch_tat_client_claim_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE|NGX_HTTP_VAR_PREFIX, 0 },

      ngx_http_null_variable
};


static ngx_int_t
ngx_http_stytch_tat_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_stytch_tat_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_ctx_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t                  *s;
    ngx_http_stytch_tat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    s = (ngx_str_t *) ((char *) ctx + data);

    if (s->len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = s->len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = s->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_cache_status_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_stytch_tat_ctx_t  *ctx;

    static ngx_str_t  names[] = {
        ngx_null_string,
        ngx_string("HIT"),
        ngx_string("MISS"),
        ngx_string("EXPIRED"),
        ngx_string("STALE"),
        ngx_string("BYPASS"),
        ngx_string("CLIENT")
    };

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || ctx->cache_status == NGX_HTTP_STYTCH_TAT_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = names[ctx->cache_status].len;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = names[ctx->cache_status].data;

    return NGX_OK;
}


/* seconds with millisecond resolution, as $upstream_response_time */

static ngx_int_t
ngx_http_stytch_tat_call_time_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                     *p;
    ngx_http_stytch_tat_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_stytch_tat_module);

    if (ctx == NULL || !ctx->called) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_TIME_T_LEN + 4);
    if (p == NULL) {
        return NGX_ERROR;
    }

    v->len = ngx_sprintf(p, "%T.%03M", (time_t) (ctx->call_time / 1000),
                         ctx->call_time % 1000)
             - p;
    v->valid = 1;
    v->no_cacheable = 0;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt        *h;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    /*
     * The precontent phase follows the whole access phase, so identity
     * from auth_request_set is there, whatever the module load order.
     */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_PRECONTENT_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_stytch_tat_exchange_handler;

    /* client X-Stytch-* headers go before anything can read them */

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_POST_READ_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_stytch_tat_headers_drop;

    if (ngx_http_stytch_tat_subrequest_check_uris(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    return ngx_http_stytch_tat_capture_init(cf);
}


/*
 * Which build is loaded, once per configuration (start, reload, -t): here
 * the configured error_log is already open, unlike while parsing.  Worded
 * like nginx's own "nginx/1.22.1", without the "stytch_tat" that tests
 * look for to see whether the module acted on a request.
 */

static ngx_int_t
ngx_http_stytch_tat_init_module(ngx_cycle_t *cycle)
{
    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "stytch-tat module/" NGX_HTTP_STYTCH_TAT_VERSION);

    return NGX_OK;
}


/*
 * glibc gives the top of the heap back to the kernel whenever 128 KB of it
 * are free, and a busy worker's request pools and keepalive buffers,
 * allocated and freed by the thousand a second, can cross that line back
 * and forth: each crossing shrinks the heap, and the next requests fault
 * its pages in again (up to hundreds of minor faults per 1000 requests,
 * with or without this module, depending on where the heap's top falls;
 * bench/README.md).  glibc raises the line itself, to twice the block's
 * size, the first time it frees a block it had to mmap ("dynamic mmap
 * threshold" in mallopt(3)): free such a block at worker start, and the
 * worker keeps up to 8 MB of free heap instead (and serves blocks under
 * 4 MB from the heap, as glibc would after its first such free anyway).
 * Thresholds tuned explicitly (mallopt, GLIBC_TUNABLES) are kept: glibc
 * then ignores the free.
 */

#define NGX_HTTP_STYTCH_TAT_HEAP_SLACK  (4 * 1024 * 1024)

static ngx_int_t
ngx_http_stytch_tat_init_process(ngx_cycle_t *cycle)
{
#if (defined __GLIBC__)
    void                             *p;
    ngx_http_stytch_tat_main_conf_t  *mcf;

    mcf = ngx_http_cycle_get_module_main_conf(cycle,
                                              ngx_http_stytch_tat_module);

    if (mcf == NULL || mcf->keys.nelts == 0) {
        return NGX_OK;
    }

    /* ngx_alloc(), not malloc(): the compiler may elide a malloc/free pair */

    p = ngx_alloc(NGX_HTTP_STYTCH_TAT_HEAP_SLACK, cycle->log);

    if (p) {
        ngx_free(p);
    }
#endif

    return NGX_OK;
}


static void *
ngx_http_stytch_tat_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_stytch_tat_main_conf_t  *mcf;

    mcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_stytch_tat_main_conf_t));
    if (mcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&mcf->keys, cf->pool, 2,
                       sizeof(ngx_http_stytch_tat_key_t))
        != NGX_OK
        || ngx_array_init(&mcf->zones, cf->pool, 2,
                          sizeof(ngx_http_stytch_tat_zone_t *))
           != NGX_OK)
    {
        return NULL;
    }

    return mcf;
}


static char *
ngx_http_stytch_tat_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_stytch_tat_main_conf_t  *mcf = conf;

    if (mcf->keys.nelts && ngx_http_stytch_tat_keys_jwks(cf, mcf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_stytch_tat_create_srv_conf(ngx_conf_t *cf)
{
    /* set at merge time: does a location of this server use the exchange */
    return ngx_pcalloc(cf->pool, sizeof(ngx_http_stytch_tat_srv_conf_t));
}


static void *
ngx_http_stytch_tat_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_stytch_tat_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_stytch_tat_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->uri = { 0, NULL };
     *     conf->refresh_uri = { 0, NULL };
     *     conf->email_file = { 0, NULL };
     *     conf->email_line = 0;
     */

    conf->issuer = NGX_CONF_UNSET_PTR;
    conf->audience = NGX_CONF_UNSET_PTR;
    conf->email = NGX_CONF_UNSET_PTR;
    conf->subject = NGX_CONF_UNSET_PTR;
    conf->token_id = NGX_CONF_UNSET_PTR;
    conf->claims_conf = NGX_CONF_UNSET_PTR;
    conf->session_claims = NGX_CONF_UNSET_PTR;
    conf->trusted = NGX_CONF_UNSET_PTR;
    conf->token_ttl = NGX_CONF_UNSET;
    conf->profile_id = NGX_CONF_UNSET_PTR;
    conf->organization_id = NGX_CONF_UNSET_PTR;
    conf->session_token = NGX_CONF_UNSET_PTR;
    conf->session_jwt = NGX_CONF_UNSET_PTR;
    conf->session_duration = NGX_CONF_UNSET;
    conf->session_duration_set = NGX_CONF_UNSET;
    conf->refused_status = NGX_CONF_UNSET_UINT;
    conf->fail_open = NGX_CONF_UNSET;
    conf->cookie = NGX_CONF_UNSET;
    conf->pass_session_token = NGX_CONF_UNSET;
    conf->buffer_size = NGX_CONF_UNSET_SIZE;
    conf->cache = NGX_CONF_UNSET_PTR;
    conf->lock_timeout = NGX_CONF_UNSET_MSEC;
    conf->cache_refusals = NGX_CONF_UNSET;
    conf->status_format = NGX_CONF_UNSET_UINT;
    conf->drop_client_headers = NGX_CONF_UNSET;
    conf->verify = NGX_CONF_UNSET_PTR;
    conf->jwks_leeway = NGX_CONF_UNSET;
    conf->permissions = NGX_CONF_UNSET_PTR;
    conf->factors = NGX_CONF_UNSET_PTR;
    conf->requires = NGX_CONF_UNSET_PTR;
    conf->cookie_jwt_index = NGX_ERROR;
    conf->cookie_token_index = NGX_ERROR;

    return conf;
}


static char *
ngx_http_stytch_tat_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_stytch_tat_loc_conf_t *prev = parent;
    ngx_http_stytch_tat_loc_conf_t *conf = child;

    ngx_conf_merge_ptr_value(conf->issuer, prev->issuer, NULL);
    ngx_conf_merge_ptr_value(conf->audience, prev->audience, NULL);
    ngx_conf_merge_ptr_value(conf->subject, prev->subject, NULL);
    ngx_conf_merge_ptr_value(conf->token_id, prev->token_id, NULL);
    ngx_conf_merge_ptr_value(conf->trusted, prev->trusted, NULL);
    ngx_conf_merge_sec_value(conf->token_ttl, prev->token_ttl, 300);

    if (conf->uri.data == NULL) {
        conf->uri = prev->uri;
        conf->uri_file = prev->uri_file;
        conf->uri_line = prev->uri_line;
    }

    ngx_conf_merge_ptr_value(conf->profile_id, prev->profile_id, NULL);
    ngx_conf_merge_ptr_value(conf->session_claims, prev->session_claims,
                             NULL);

    if (ngx_http_stytch_tat_identity_merge_claims(cf, prev, conf)
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_ptr_value(conf->session_token, prev->session_token, NULL);
    ngx_conf_merge_ptr_value(conf->session_jwt, prev->session_jwt, NULL);
    /*
     * Whether the duration was set here or above: a step-up sends one only
     * then.  The http level's configuration is never merged itself, so
     * there "set" is whether it has a value.
     */

    if (conf->session_duration != NGX_CONF_UNSET) {
        conf->session_duration_set = 1;

    } else if (prev->session_duration_set != NGX_CONF_UNSET) {
        conf->session_duration_set = prev->session_duration_set;

    } else {
        conf->session_duration_set = (prev->session_duration
                                      != NGX_CONF_UNSET);
    }

    ngx_conf_merge_sec_value(conf->session_duration, prev->session_duration,
                             3600);
    ngx_conf_merge_uint_value(conf->refused_status, prev->refused_status,
                              NGX_HTTP_FORBIDDEN);
    ngx_conf_merge_value(conf->fail_open, prev->fail_open, 0);
    ngx_conf_merge_value(conf->cookie, prev->cookie, 0);
    ngx_conf_merge_value(conf->pass_session_token, prev->pass_session_token,
                         0);
    ngx_conf_merge_size_value(conf->buffer_size, prev->buffer_size,
                              32 * 1024);

    if (conf->refresh_uri.data == NULL) {
        conf->refresh_uri = prev->refresh_uri;
    }

    ngx_conf_merge_value(conf->drop_client_headers,
                         prev->drop_client_headers, 1);

    ngx_conf_merge_ptr_value(conf->cache, prev->cache, NULL);
    ngx_conf_merge_msec_value(conf->lock_timeout, prev->lock_timeout, 5000);
    ngx_conf_merge_sec_value(conf->cache_refusals, prev->cache_refusals, 0);

    if (conf->email == NGX_CONF_UNSET_PTR) {
        conf->email = prev->email;
        conf->email_file = prev->email_file;
        conf->email_line = prev->email_line;
    }

    if (conf->email == NGX_CONF_UNSET_PTR) {
        conf->email = NULL;
    }

    if (ngx_http_stytch_tat_stytch_jwks_merge(cf, prev, conf)
        != NGX_CONF_OK
        || ngx_http_stytch_tat_authz_merge(cf, prev, conf) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    return ngx_http_stytch_tat_check_loc_conf(cf, conf);
}


/*
 * The internal locations this location's subrequests go to, for nginx -t
 * to check once every server is known; a server where the module hands
 * sessions on drops clients' X-Stytch-* headers.
 */

static ngx_int_t
ngx_http_stytch_tat_check_uris(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_http_stytch_tat_srv_conf_t  *sscf;

    if (conf->uri.len) {
        /* merged with cf->ctx set to the server's: this server uses it */
        sscf = ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_stytch_tat_module);
        sscf->exchange_used = 1;

        if (ngx_http_stytch_tat_subrequest_add_uri(cf, sscf, "stytch_tat",
                                        &conf->uri, &conf->uri_file,
                                        conf->uri_line)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (conf->verify || conf->bind) {
        /* stytch_tat_verify sets the same headers: clients' copies go */
        sscf = ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_stytch_tat_module);
        sscf->exchange_used = 1;

        if (ngx_http_stytch_tat_subrequest_add_uri(cf, sscf,
                                        "stytch_tat_session_jwks",
                                        &conf->jwks_uri, &conf->jwks_file,
                                        conf->jwks_line)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (conf->permissions && (conf->uri.len || conf->verify)) {
        sscf = ngx_http_conf_get_module_srv_conf(cf,
                                                 ngx_http_stytch_tat_module);

        if (ngx_http_stytch_tat_subrequest_add_uri(cf, sscf,
                                        "stytch_tat_rbac_policy",
                                        &conf->policy_uri, &conf->policy_file,
                                        conf->policy_line)
            != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/* what a location needs for what it is configured to do */

static char *
ngx_http_stytch_tat_check_loc_conf(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_http_stytch_tat_main_conf_t  *mcf;

    mcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_stytch_tat_module);

    if (ngx_http_stytch_tat_check_uris(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->email == NULL) {
        if (conf->uri.len) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "\"stytch_tat %V\" needs \"stytch_tat_email\" "
                          "where it applies", &conf->uri);
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    if (conf->uri.len && conf->profile_id == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat %V\" needs \"stytch_tat_profile_id\" "
                      "where it applies", &conf->uri);
        return NGX_CONF_ERROR;
    }

    /* minting is configured here: everything it needs must be too */

    if (mcf->keys.nelts == 0) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_email\" in %V:%ui needs a "
                      "\"stytch_tat_signing_key\" in the http block",
                      &conf->email_file, conf->email_line);
        return NGX_CONF_ERROR;
    }

    if (conf->issuer == NULL || conf->audience == NULL) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"stytch_tat_email\" in %V:%ui needs "
                      "\"stytch_tat_issuer\" and \"stytch_tat_audience\" "
                      "where it applies",
                      &conf->email_file, conf->email_line);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_stytch_tat_identity_prepare(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (conf->cache
        && (ngx_http_stytch_tat_key_fingerprint(cf, mcf, conf) != NGX_OK
            || ngx_http_stytch_tat_key_prefix(cf, conf) != NGX_OK))
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_stytch_tat_check_bounds(ngx_conf_t *cf, void *post, void *data)
{
    ngx_conf_num_bounds_t  *bounds = post;
    ngx_int_t              *np = data;

    if (*np >= bounds->low && *np <= bounds->high) {
        return NGX_CONF_OK;
    }

    /* nginx prints it as "\"DIRECTIVE\" directive must be ... in FILE:LINE" */

    if (bounds == &ngx_http_stytch_tat_ttl_bounds) {
        return "must be between 1s and 1d";
    }

    if (bounds == &ngx_http_stytch_tat_duration_bounds) {
        return "must be between 5m and 366d";
    }

    return "must be a status between 400 and 599";
}
