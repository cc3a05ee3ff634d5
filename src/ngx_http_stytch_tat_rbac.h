/*
 * Authorization at the edge: Stytch's RBAC policy, the session's roles,
 * factors and organization, and the decisions, made as Stytch's SDKs make
 * them (stytch-node lib/shared/rbac_local.ts, lib/b2b/rbac_local.ts;
 * stytch-go stytch/shared/rbac_local.go).  Free of nginx headers, like
 * ngx_http_stytch_tat_verify.h: no I/O, no clock, no global state.
 *
 * Three parts, each at its own pace:
 *
 * - the policy (GET /v1/rbac/policy, GET /v1/b2b/rbac/policy): parsed once
 *   per worker per document into a read-only heap object
 *   (ngx_http_stytch_tat_rbac_policy_parse);
 * - the session: the roles, authentication factors and organization of a
 *   session JWT's claims, read once per cached session into a compact,
 *   position-independent byte string (a "blob") to keep in the zone beside
 *   the session (ngx_http_stytch_tat_rbac_claims_*), and viewed in place
 *   per request, without copying (ngx_http_stytch_tat_rbac_session_view);
 * - the decisions: policy + session + check -> allow, tenancy_mismatch or
 *   permission_denied (ngx_http_stytch_tat_rbac_decide), and a required
 *   factor (ngx_http_stytch_tat_rbac_factor_check).
 */

#ifndef _NGX_HTTP_STYTCH_TAT_RBAC_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_RBAC_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "ngx_http_stytch_tat_response.h"


/*
 * Bounds of a policy document.  Stytch's policies are a few KB; a document
 * beyond one of these is refused whole, never cut.
 */
#define NGX_HTTP_STYTCH_TAT_RBAC_POLICY_MAX        (1024 * 1024)  /* bytes */
#define NGX_HTTP_STYTCH_TAT_RBAC_ROLES_MAX         1024
#define NGX_HTTP_STYTCH_TAT_RBAC_PERMISSIONS_MAX   1024  /* per role */
#define NGX_HTTP_STYTCH_TAT_RBAC_ACTIONS_MAX       256   /* per permission */

/*
 * Every id and string, in the policy and in the session: role_id,
 * resource_id, action, organization id and slug, factor type and delivery
 * method (a length byte in the blob).
 */
#define NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX            255

/* distinct usable roles of one session; more: the claims are refused */
#define NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX 64
/* distinct (type, delivery_method) factors of one session; more: dropped */
#define NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX       16

/* a session JWT's payload as the claims readers take it */
#define NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX        16384

/* the blob of the largest session the limits allow */
#define NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX                                    \
    (4 + 2 * (1 + NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX)                           \
     + NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX                            \
       * (1 + NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX)                               \
     + NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX                                  \
       * (8 + 2 * (1 + NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX)))


/* results of the claims readers */
#define NGX_HTTP_STYTCH_TAT_RBAC_OK              0
#define NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED      -1   /* deny every check */
#define NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL      -2   /* *len: the size needed */
#define NGX_HTTP_STYTCH_TAT_RBAC_NOMEM          -3

/* verdicts of ngx_http_stytch_tat_rbac_decide() */
#define NGX_HTTP_STYTCH_TAT_RBAC_ALLOW           0
#define NGX_HTTP_STYTCH_TAT_RBAC_DENY_TENANCY    1   /* tenancy_mismatch */
#define NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION 2   /* permission_denied */


typedef struct ngx_http_stytch_tat_rbac_policy_s
    ngx_http_stytch_tat_rbac_policy_t;

/* jansson's json_t, without its header */
struct json_t;


typedef struct {
    ngx_http_stytch_tat_field_t         type;
    ngx_http_stytch_tat_field_t         delivery_method;  /* len 0: none */
    long long                           last_authenticated_at; /* -1: none */
} ngx_http_stytch_tat_rbac_factor_t;


/*
 * A session as a view of its blob: every string points into the blob,
 * which must outlive the view; none is NUL-terminated.  An absent
 * organization id or slug has data NULL (an empty one: data not NULL,
 * len 0).  The roles are in the JWT's order, without duplicates; the
 * factors are one per (type, delivery_method), in the order first seen,
 * each with the latest last_authenticated_at of its kind.
 */

typedef struct {
    ngx_http_stytch_tat_field_t         organization_id;
    ngx_http_stytch_tat_field_t         organization_slug;

    size_t                              nroles;
    ngx_http_stytch_tat_field_t
                     role[NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX];

    size_t                              nfactors;
    ngx_http_stytch_tat_rbac_factor_t
                     factor[NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX];
} ngx_http_stytch_tat_rbac_session_t;


/* what a location asks: organization_id.data NULL for a consumer check */

typedef struct {
    ngx_http_stytch_tat_field_t         organization_id;
    ngx_http_stytch_tat_field_t         resource_id;
    ngx_http_stytch_tat_field_t         action;
} ngx_http_stytch_tat_rbac_check_t;


/* a required factor: delivery_method.data NULL for any, max_age < 0 any */

typedef struct {
    ngx_http_stytch_tat_field_t         type;
    ngx_http_stytch_tat_field_t         delivery_method;
    long long                           max_age;          /* seconds */
} ngx_http_stytch_tat_rbac_factor_req_t;


/*
 * Parses Stytch's answer to GET /v1/rbac/policy or /v1/b2b/rbac/policy:
 * {"policy": {"roles": [{"role_id", "permissions": [{"resource_id",
 * "actions": [...]}]}], "resources": [...], "scopes": [...]}}.
 *
 * Strict: the document is refused (-1, *reason set, static) when it is
 * not a JSON object, has duplicate names, is over POLICY_MAX bytes, has no
 * "policy" object or no "roles" array in it, has "resources" or "scopes"
 * that are not arrays, a role that is not an object, a role_id, a
 * resource_id or an action that is not a string, is empty, longer than
 * ID_MAX or holds a control character, "permissions" or "actions" that
 * are not arrays, or more than ROLES_MAX roles, PERMISSIONS_MAX
 * permissions in a role or ACTIONS_MAX actions in a permission.  Nothing
 * else is read: descriptions, resources and scopes are not used.
 *
 * Two roles with one role_id both count, as in the SDKs (they filter the
 * policy's roles by the session's): the role grants what either grants.
 *
 * Returns 0 and a policy to free with ngx_http_stytch_tat_rbac_policy_free().
 */
int ngx_http_stytch_tat_rbac_policy_parse(const unsigned char *json,
    size_t len, ngx_http_stytch_tat_rbac_policy_t **policy,
    const char **reason);

void ngx_http_stytch_tat_rbac_policy_free(
    ngx_http_stytch_tat_rbac_policy_t *policy);

/* role entries (duplicates counted), permissions and actions, for logs */
size_t ngx_http_stytch_tat_rbac_policy_roles(
    const ngx_http_stytch_tat_rbac_policy_t *policy);
size_t ngx_http_stytch_tat_rbac_policy_permissions(
    const ngx_http_stytch_tat_rbac_policy_t *policy);


/*
 * Reads a session JWT's claims into a blob of *len bytes in buf: from a
 * parsed claims object (_json), from the payload's JSON text (_payload),
 * or from a compact JWT whose payload is decoded without verifying it
 * (_jwt: for a JWT verified already, or received from Stytch over
 * verified TLS; strict base64url, as the verifier decodes it).  The text
 * forms refuse duplicate names, as the verifier does, and payloads over
 * CLAIMS_MAX bytes.
 *
 * What is read, and what is dropped rather than refused:
 *
 * - "https://stytch.com/session" must be an object (MALFORMED if not);
 *   its "roles", when present and not null, must be an array (MALFORMED
 *   if not).  A role that is not a string, is empty, longer than ID_MAX
 *   or holds a control character is dropped: the policy parser refuses
 *   such role ids, so it could grant nothing.  Duplicates are dropped.
 *   More than SESSION_ROLES_MAX roles left: MALFORMED.  No roles: none.
 * - its "authentication_factors": entries without a string "type", or
 *   whose type or delivery_method is empty (type only), longer than
 *   ID_MAX or holds a control character are dropped;
 *   last_authenticated_at is RFC 3339 UTC, else -1 (unknown).  Factors
 *   beyond FACTORS_MAX distinct ones are dropped (a requirement may then
 *   fail: the safe side).
 * - "https://stytch.com/organization" -> "organization_id" and "slug":
 *   each a string with no control character, at most ID_MAX bytes, or
 *   absent.
 *
 * Returns OK; MALFORMED with *reason (static); TOO_SMALL with *len the
 * size needed (call again with that much: 512 bytes hold a typical
 * session); NOMEM.
 */
int ngx_http_stytch_tat_rbac_claims_json(const struct json_t *claims,
    unsigned char *buf, size_t size, size_t *len, const char **reason);
int ngx_http_stytch_tat_rbac_claims_payload(const char *json, size_t n,
    unsigned char *buf, size_t size, size_t *len, const char **reason);
int ngx_http_stytch_tat_rbac_claims_jwt(const char *jwt, size_t n,
    unsigned char *buf, size_t size, size_t *len, const char **reason);

/*
 * A blob as a session view (strings pointing into the blob).  Returns -1
 * when the bytes are not a blob the readers write.
 */
int ngx_http_stytch_tat_rbac_session_view(const unsigned char *blob,
    size_t len, ngx_http_stytch_tat_rbac_session_t *s);

/* an empty session (no organization, roles or factors), cheaply */
void ngx_http_stytch_tat_rbac_session_clear(
    ngx_http_stytch_tat_rbac_session_t *s);


/*
 * The decision, as the SDKs' authenticateJwtLocal() with an
 * authorization_check makes it:
 *
 * - a B2B check (check->organization_id.data set) first compares the
 *   session's organization id with it, byte for byte, never the slug: a
 *   session without one, or with another, is DENY_TENANCY;
 * - then ALLOW when one of the session's roles is a role_id of the policy
 *   with a permission whose resource_id equals check->resource_id and
 *   whose actions hold check->action or "*"; else DENY_PERMISSION.  Roles
 *   the policy does not know grant nothing; no policy (NULL) grants
 *   nothing.
 *
 * *granted (may be NULL): bit i set for each session role s->role[i] that
 * grants the check (all of them, not only the first).
 */
int ngx_http_stytch_tat_rbac_decide(
    const ngx_http_stytch_tat_rbac_policy_t *policy,
    const ngx_http_stytch_tat_rbac_session_t *s,
    const ngx_http_stytch_tat_rbac_check_t *check, uint64_t *granted);

/* "allow", "tenancy_mismatch", "permission_denied" */
const char *ngx_http_stytch_tat_rbac_verdict_name(int verdict);

/*
 * 1 when the session has a factor of req->type (and of
 * req->delivery_method when given) whose last_authenticated_at is known and
 * at least now - req->max_age when req->max_age >= 0; else 0.
 */
int ngx_http_stytch_tat_rbac_factor_check(
    const ngx_http_stytch_tat_rbac_session_t *s,
    const ngx_http_stytch_tat_rbac_factor_req_t *req, long long now);

/*
 * The values of the session's variables, comma-separated: the roles whose
 * bit is set in mask (UINT64_MAX: every role; a decision's granted: the
 * granting ones), and the distinct factor types.  Each returns the length
 * of the whole value and writes into buf what fits in size bytes (no
 * NUL): the whole value when the length returned is at most size.  Call
 * with buf NULL to learn the length.
 */
size_t ngx_http_stytch_tat_rbac_roles_join(
    const ngx_http_stytch_tat_rbac_session_t *s, uint64_t mask, char *buf,
    size_t size);
size_t ngx_http_stytch_tat_rbac_factor_types_join(
    const ngx_http_stytch_tat_rbac_session_t *s, char *buf, size_t size);


#endif /* _NGX_HTTP_STYTCH_TAT_RBAC_H_INCLUDED_ */
