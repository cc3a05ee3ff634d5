/*
 * Stytch's answers to attest and authenticate, consumer and B2B, read with
 * jansson.  Free of nginx headers, like ngx_http_stytch_tat_jose.h, whose
 * base64url decoder it uses.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_RESPONSE_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_RESPONSE_H_INCLUDED_


#include <stddef.h>


#define NGX_HTTP_STYTCH_TAT_RESPONSE_SESSION    0  /* a usable session */
#define NGX_HTTP_STYTCH_TAT_RESPONSE_ERROR      1  /* Stytch's error body */
#define NGX_HTTP_STYTCH_TAT_RESPONSE_MALFORMED  2  /* neither */


typedef struct {
    const char  *data;
    size_t       len;
} ngx_http_stytch_tat_field_t;


typedef struct {
    ngx_http_stytch_tat_field_t   session_token;
    ngx_http_stytch_tat_field_t   session_jwt;
    ngx_http_stytch_tat_field_t   user_id;      /* member_id for B2B */
    ngx_http_stytch_tat_field_t   session_id;   /* member_session_id */
    ngx_http_stytch_tat_field_t   error_type;
    ngx_http_stytch_tat_field_t   error_message;
    ngx_http_stytch_tat_field_t   request_id;
    long long                     expires_at;   /* session expiry, epoch */
    long long                     jwt_exp;      /* session JWT "exp", or 0 */
    const char                   *reason;       /* why MALFORMED */
    void                         *root;         /* owns the fields */
} ngx_http_stytch_tat_response_t;


/*
 * Reads an answer of the given HTTP status.  A 2xx must carry a session
 * token, a session JWT, a user (member) id, a session id and a session
 * expiry; anything else must carry Stytch's error_type.  The fields point
 * into resp->root: release it with ngx_http_stytch_tat_response_free().
 */
int ngx_http_stytch_tat_response_parse(const unsigned char *body, size_t len,
    int status, ngx_http_stytch_tat_response_t *resp);

void ngx_http_stytch_tat_response_free(ngx_http_stytch_tat_response_t *resp);

/*
 * The "exp" of a JWT, read without verifying it: Stytch's session JWT comes
 * over verified TLS, and its expiry only bounds how long it is cached.
 * Returns -1 when the token has no readable exp (its payload not strict
 * base64url of a JSON object with a positive integer exp).
 */
long long ngx_http_stytch_tat_jwt_exp(const char *jwt, size_t len);

/* RFC 3339 UTC ("2026-11-28T20:31:40Z", fraction optional); -1 if not */
long long ngx_http_stytch_tat_parse_rfc3339(const char *s);


#endif /* _NGX_HTTP_STYTCH_TAT_RESPONSE_H_INCLUDED_ */
