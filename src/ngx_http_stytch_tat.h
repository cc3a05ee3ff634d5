/*
 * ngx_http_stytch_tat_module: types shared by the module's files.
 *
 *   ngx_http_stytch_tat_module.c    directives, configuration, variables
 *   src/ngx_http_stytch_tat_keys.c  signing keys and the JWKS document
 *   src/ngx_http_stytch_tat_mint.c  minting the JWT for a request
 *   src/ngx_http_stytch_tat_jwks.c  the JWKS content handler
 *   src/ngx_http_stytch_tat_exchange.c  the attest subrequest, hand-off
 *   src/ngx_http_stytch_tat_credentials.c  stytch_tat_credentials
 *   src/ngx_http_stytch_tat_response.c  Stytch's answers (no nginx)
 *   src/ngx_http_stytch_tat_jose.c  JOSE primitives (no nginx)
 *   src/ngx_http_stytch_tat_claims.c  claims JSON (no nginx)
 */

#ifndef _NGX_HTTP_STYTCH_TAT_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_claims.h"


/* a kid is printable ASCII, short enough for any header */
#define NGX_HTTP_STYTCH_TAT_KID_MAX     128
#define NGX_HTTP_STYTCH_TAT_CLAIMS_MAX  32


typedef struct {
    EVP_PKEY                   *pkey;
    ngx_int_t                   alg;
    ngx_str_t                   kid;
    ngx_str_t                   header;      /* base64url JOSE header */
    ngx_str_t                   jwk;         /* public JWK, JSON */
    size_t                      sig_len;
    ngx_str_t                   file;        /* for log lines */
} ngx_http_stytch_tat_key_t;


typedef struct {
    ngx_str_t                   name;        /* NUL-terminated */
    ngx_http_complex_value_t    value;
    u_char                      sep;         /* list=SEP, 0 for a string */
} ngx_http_stytch_tat_claim_conf_t;


typedef struct {
    ngx_array_t                 keys;        /* ngx_http_stytch_tat_key_t */
    ngx_str_t                   jwks;        /* {"keys":[...]} */
    ngx_str_t                   authorization;  /* "Basic ..." */
} ngx_http_stytch_tat_main_conf_t;


typedef struct {
    ngx_http_complex_value_t   *issuer;
    ngx_http_complex_value_t   *audience;
    ngx_http_complex_value_t   *email;
    ngx_http_complex_value_t   *subject;
    ngx_http_complex_value_t   *token_id;
    ngx_array_t                *claims;      /* claim_conf_t */
    time_t                      token_ttl;

    ngx_str_t                   uri;         /* stytch_tat URI */
    ngx_http_complex_value_t   *profile_id;
    ngx_http_complex_value_t   *organization_id;
    ngx_http_complex_value_t   *session_token;
    ngx_http_complex_value_t   *session_jwt;
    time_t                      session_duration;
    ngx_uint_t                  refused_status;
    ngx_flag_t                  fail_open;
    ngx_flag_t                  cookie;
    ngx_flag_t                  pass_session_token;
    size_t                      buffer_size;

    /* where minting was configured, for errors found at merge time */
    ngx_str_t                   email_file;
    ngx_uint_t                  email_line;
} ngx_http_stytch_tat_loc_conf_t;


#define NGX_HTTP_STYTCH_TAT_STATE_NEW       0
#define NGX_HTTP_STYTCH_TAT_STATE_WAIT      1   /* subrequest in flight */
#define NGX_HTTP_STYTCH_TAT_STATE_ANSWERED  2   /* its answer is in */
#define NGX_HTTP_STYTCH_TAT_STATE_DONE      3


/* the claims the module owns, first in every token, in this order */
#define NGX_HTTP_STYTCH_TAT_ISS           0
#define NGX_HTTP_STYTCH_TAT_AUD           1
#define NGX_HTTP_STYTCH_TAT_SUB           2
#define NGX_HTTP_STYTCH_TAT_EMAIL         3
#define NGX_HTTP_STYTCH_TAT_JTI           4
#define NGX_HTTP_STYTCH_TAT_IAT           5
#define NGX_HTTP_STYTCH_TAT_NBF           6
#define NGX_HTTP_STYTCH_TAT_EXP           7
#define NGX_HTTP_STYTCH_TAT_FIXED_CLAIMS  8


/* per request, never in configuration (see nginx-notes.md, trap 3) */
typedef struct {
    ngx_http_stytch_tat_claim_t *claims;     /* the identity, evaluated */
    size_t                      nclaims;
    ngx_int_t                   identity_rc;

    ngx_str_t                   jwt;
    ngx_str_t                   jti;
    time_t                      jwt_exp;
    ngx_int_t                   mint_rc;
    ngx_int_t                   mint_alg;

    ngx_uint_t                  state;
    ngx_int_t                   status;      /* the phase handler's answer */
    ngx_str_t                   error;       /* $stytch_tat_error */
    ngx_str_t                   error_message;   /* Stytch's, for the log */

    ngx_http_request_t         *subrequest;
    ngx_msec_t                  started;
    ngx_uint_t                  sr_status;
    ngx_str_t                   sr_body;     /* Stytch's answer */
    size_t                      sr_size;     /* room in sr_body */

    ngx_str_t                   session_token;
    ngx_str_t                   session_jwt;
    ngx_str_t                   user_id;
    ngx_str_t                   session_id;
    time_t                      expires_at;

    unsigned                    identified:1;
    unsigned                    explicit_jti:1;
    unsigned                    minted:1;
    unsigned                    sr_failed:1;
    unsigned                    sr_too_big:1;
    unsigned                    attached:1;  /* adds a factor to a session */
} ngx_http_stytch_tat_ctx_t;


ngx_http_stytch_tat_ctx_t *ngx_http_stytch_tat_get_ctx(ngx_http_request_t *r);

char *ngx_http_stytch_tat_signing_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_stytch_tat_keys_jwks(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf);

ngx_int_t ngx_http_stytch_tat_identity(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_mint(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx);
ngx_int_t ngx_http_stytch_tat_jwt_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);

char *ngx_http_stytch_tat_jwks(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

char *ngx_http_stytch_tat_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

ngx_int_t ngx_http_stytch_tat_exchange_handler(ngx_http_request_t *r);
ngx_int_t ngx_http_stytch_tat_exchange_init(ngx_conf_t *cf);


extern ngx_module_t  ngx_http_stytch_tat_module;


#endif /* _NGX_HTTP_STYTCH_TAT_H_INCLUDED_ */
