/*
 * Stytch RBAC and the session's factors: see ngx_http_stytch_tat_rbac.h.
 * No nginx headers here; jansson for the JSON, the strict base64url
 * decoder of ngx_http_stytch_tat_jose.h for a JWT's payload.
 */


#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_rbac.h"


#define NGX_HTTP_STYTCH_TAT_RBAC_SESSION  "https://stytch.com/session"
#define NGX_HTTP_STYTCH_TAT_RBAC_ORG      "https://stytch.com/organization"

/*
 * The blob: a version byte, a flags byte, the number of roles and of
 * factors; then the organization id and the slug when their flag is set,
 * each a length byte and its bytes; the roles, likewise; the factors, each
 * last_authenticated_at (8 bytes, little-endian two's complement), the
 * type and the delivery method (a length byte and the bytes).  Lengths, no
 * pointers: the zone may map it anywhere.
 */
#define NGX_HTTP_STYTCH_TAT_RBAC_BLOB_VERSION   1
#define NGX_HTTP_STYTCH_TAT_RBAC_HAS_ORG        0x01
#define NGX_HTTP_STYTCH_TAT_RBAC_HAS_SLUG       0x02


typedef struct {
    ngx_http_stytch_tat_field_t         id;
    size_t                              perm;       /* its first one */
    size_t                              nperms;
} ngx_http_stytch_tat_rbac_role_t;


typedef struct {
    ngx_http_stytch_tat_field_t         resource_id;
    size_t                              action;     /* its first one */
    size_t                              nactions;
    unsigned                            any:1;      /* "*" among them */
} ngx_http_stytch_tat_rbac_perm_t;


/* one allocation: this header, the three arrays, then the strings */

struct ngx_http_stytch_tat_rbac_policy_s {
    size_t                              nroles;
    size_t                              nperms;
    size_t                              nactions;
    ngx_http_stytch_tat_rbac_role_t    *roles;      /* sorted by id */
    ngx_http_stytch_tat_rbac_perm_t    *perms;
    ngx_http_stytch_tat_field_t        *actions;
};


/* what a policy document holds, counted before anything is copied */

typedef struct {
    size_t                              nperms;
    size_t                              nactions;
    size_t                              bytes;      /* of the strings */
} ngx_http_stytch_tat_rbac_count_t;


static const char *ngx_http_stytch_tat_rbac_id(const json_t *v, size_t *len);
static int ngx_http_stytch_tat_rbac_string(const json_t *v,
    ngx_http_stytch_tat_field_t *f);
static int ngx_http_stytch_tat_rbac_eq(const ngx_http_stytch_tat_field_t *a,
    const ngx_http_stytch_tat_field_t *b);
static int ngx_http_stytch_tat_rbac_cmp(const ngx_http_stytch_tat_field_t *a,
    const ngx_http_stytch_tat_field_t *b);
static int ngx_http_stytch_tat_rbac_role_cmp(const void *one,
    const void *two);
static json_t *ngx_http_stytch_tat_rbac_doc_roles(const json_t *root,
    const char **reason);
static int ngx_http_stytch_tat_rbac_count_role(const json_t *role,
    ngx_http_stytch_tat_rbac_count_t *count, const char **reason);
static char *ngx_http_stytch_tat_rbac_copy(ngx_http_stytch_tat_field_t *dst,
    const json_t *v, char *p);
static ngx_http_stytch_tat_rbac_policy_t *ngx_http_stytch_tat_rbac_alloc(
    size_t nroles, const ngx_http_stytch_tat_rbac_count_t *count);
static void ngx_http_stytch_tat_rbac_fill(
    ngx_http_stytch_tat_rbac_policy_t *policy, const json_t *roles, char *p);
static int ngx_http_stytch_tat_rbac_gather(const json_t *claims,
    ngx_http_stytch_tat_rbac_session_t *s, const char **reason);
static void ngx_http_stytch_tat_rbac_factor_add(
    ngx_http_stytch_tat_rbac_session_t *s, const json_t *f);
static int ngx_http_stytch_tat_rbac_serialize(
    const ngx_http_stytch_tat_rbac_session_t *s, unsigned char *buf,
    size_t size, size_t *len);
static unsigned char *ngx_http_stytch_tat_rbac_put(unsigned char *p,
    const ngx_http_stytch_tat_field_t *f);
static int ngx_http_stytch_tat_rbac_get(const unsigned char **p,
    const unsigned char *end, ngx_http_stytch_tat_field_t *f);
static int ngx_http_stytch_tat_rbac_grants(
    const ngx_http_stytch_tat_rbac_policy_t *policy,
    const ngx_http_stytch_tat_field_t *role,
    const ngx_http_stytch_tat_rbac_check_t *check);
static size_t ngx_http_stytch_tat_rbac_join(char *buf, size_t size,
    size_t at, const ngx_http_stytch_tat_field_t *f);


static const char *const  ngx_http_stytch_tat_rbac_verdicts[] = {
    "allow",
    "tenancy_mismatch",
    "permission_denied"
};


/*
 * A role_id, resource_id or action as the policy must have it, and a role
 * as a session may usefully carry it: a non-empty string of at most ID_MAX
 * bytes without a control character (jansson has checked the UTF-8).
 * NULL if not.
 */

static const char *
ngx_http_stytch_tat_rbac_id(const json_t *v, size_t *len)
{
    ngx_http_stytch_tat_field_t  f;

    if (ngx_http_stytch_tat_rbac_string(v, &f) != 0 || f.len == 0) {
        return NULL;
    }

    *len = f.len;

    return f.data;
}


/* any string of at most ID_MAX bytes without a control character */

static int
ngx_http_stytch_tat_rbac_string(const json_t *v, ngx_http_stytch_tat_field_t *f)
{
    size_t                i, n;
    const unsigned char  *s;

    if (!json_is_string(v)) {
        return -1;
    }

    n = json_string_length(v);
    s = (const unsigned char *) json_string_value(v);

    if (n > NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX) {
        return -1;
    }

    /* NUL included: jansson keeps "\u0000" inside a string */

    for (i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return -1;
        }
    }

    f->data = (const char *) s;
    f->len = n;

    return 0;
}


static int
ngx_http_stytch_tat_rbac_eq(const ngx_http_stytch_tat_field_t *a,
    const ngx_http_stytch_tat_field_t *b)
{
    return a->len == b->len
           && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}


/* bytes, then length: any total order will do for the binary search */

static int
ngx_http_stytch_tat_rbac_cmp(const ngx_http_stytch_tat_field_t *a,
    const ngx_http_stytch_tat_field_t *b)
{
    int  rc;

    rc = memcmp(a->data, b->data, (a->len < b->len) ? a->len : b->len);

    if (rc != 0) {
        return rc;
    }

    return (a->len < b->len) ? -1 : (a->len > b->len);
}


static int
ngx_http_stytch_tat_rbac_role_cmp(const void *one, const void *two)
{
    const ngx_http_stytch_tat_rbac_role_t  *a = one, *b = two;

    return ngx_http_stytch_tat_rbac_cmp(&a->id, &b->id);
}


/* pass 1 over a role: checks it, and counts what copying it takes */

static int
ngx_http_stytch_tat_rbac_count_role(const json_t *role,
    ngx_http_stytch_tat_rbac_count_t *count, const char **reason)
{
    size_t   i, k, n;
    json_t  *perms, *perm, *actions, *action;

    if (!json_is_object(role)) {
        *reason = "a role that is not an object";
        return -1;
    }

    if (ngx_http_stytch_tat_rbac_id(json_object_get(role, "role_id"), &n)
        == NULL)
    {
        *reason = "a role_id that is not a string of 1 to 255 bytes "
                  "without control characters";
        return -1;
    }

    count->bytes += n;

    perms = json_object_get(role, "permissions");

    if (!json_is_array(perms)) {
        *reason = "a role without a \"permissions\" array";
        return -1;
    }

    if (json_array_size(perms) > NGX_HTTP_STYTCH_TAT_RBAC_PERMISSIONS_MAX) {
        *reason = "a role with more than 1024 permissions";
        return -1;
    }

    json_array_foreach(perms, i, perm) {

        if (!json_is_object(perm)) {
            *reason = "a permission that is not an object";
            return -1;
        }

        if (ngx_http_stytch_tat_rbac_id(json_object_get(perm, "resource_id"),
                                        &n)
            == NULL)
        {
            *reason = "a resource_id that is not a string of 1 to 255 bytes "
                      "without control characters";
            return -1;
        }

        count->bytes += n;

        actions = json_object_get(perm, "actions");

        if (!json_is_array(actions)) {
            *reason = "a permission without an \"actions\" array";
            return -1;
        }

        if (json_array_size(actions) > NGX_HTTP_STYTCH_TAT_RBAC_ACTIONS_MAX) {
            *reason = "a permission with more than 256 actions";
            return -1;
        }

        json_array_foreach(actions, k, action) {

            if (ngx_http_stytch_tat_rbac_id(action, &n) == NULL) {
                *reason = "an action that is not a string of 1 to 255 bytes "
                          "without control characters";
                return -1;
            }

            count->bytes += n;
        }

        count->nactions += json_array_size(actions);
    }

    count->nperms += json_array_size(perms);

    return 0;
}


static char *
ngx_http_stytch_tat_rbac_copy(ngx_http_stytch_tat_field_t *dst,
    const json_t *v, char *p)
{
    size_t  n;

    n = json_string_length(v);

    memcpy(p, json_string_value(v), n);

    dst->data = p;
    dst->len = n;

    return p + n;
}


/* pass 2: the checked roles into the policy's arrays, strings at p */

static void
ngx_http_stytch_tat_rbac_fill(ngx_http_stytch_tat_rbac_policy_t *policy,
    const json_t *roles, char *p)
{
    size_t                            i, j, k, np, na;
    json_t                           *role, *perms, *perm, *actions, *action;
    ngx_http_stytch_tat_rbac_perm_t  *pm;
    ngx_http_stytch_tat_rbac_role_t  *r;

    np = 0;
    na = 0;

    json_array_foreach(roles, i, role) {
        r = &policy->roles[i];

        p = ngx_http_stytch_tat_rbac_copy(&r->id,
                                          json_object_get(role, "role_id"), p);

        perms = json_object_get(role, "permissions");

        r->perm = np;
        r->nperms = json_array_size(perms);

        json_array_foreach(perms, j, perm) {
            pm = &policy->perms[np++];

            p = ngx_http_stytch_tat_rbac_copy(&pm->resource_id,
                                      json_object_get(perm, "resource_id"), p);

            actions = json_object_get(perm, "actions");

            pm->action = na;
            pm->nactions = json_array_size(actions);
            pm->any = 0;

            json_array_foreach(actions, k, action) {
                p = ngx_http_stytch_tat_rbac_copy(&policy->actions[na++],
                                                  action, p);

                if (json_string_length(action) == 1
                    && json_string_value(action)[0] == '*')
                {
                    pm->any = 1;
                }
            }
        }
    }
}


/* the document's shape: {"policy": {"roles": [...], ...}}, its roles */

static json_t *
ngx_http_stytch_tat_rbac_doc_roles(const json_t *root, const char **reason)
{
    json_t  *doc, *roles, *v;

    if (!json_is_object(root)) {
        *reason = "policy document is not a JSON object";
        return NULL;
    }

    doc = json_object_get(root, "policy");
    roles = json_object_get(doc, "roles");

    if (!json_is_object(doc) || !json_is_array(roles)) {
        *reason = "no \"policy\" object with a \"roles\" array";
        return NULL;
    }

    v = json_object_get(doc, "resources");

    if (v != NULL && !json_is_array(v)) {
        *reason = "policy \"resources\" that are not an array";
        return NULL;
    }

    v = json_object_get(doc, "scopes");

    if (v != NULL && !json_is_array(v)) {
        *reason = "policy \"scopes\" that are not an array";
        return NULL;
    }

    if (json_array_size(roles) > NGX_HTTP_STYTCH_TAT_RBAC_ROLES_MAX) {
        *reason = "policy with more than 1024 roles";
        return NULL;
    }

    return roles;
}


/* the policy's one allocation, its arrays laid out, its strings to come */

static ngx_http_stytch_tat_rbac_policy_t *
ngx_http_stytch_tat_rbac_alloc(size_t nroles,
    const ngx_http_stytch_tat_rbac_count_t *count)
{
    size_t                              size;
    ngx_http_stytch_tat_rbac_policy_t  *pol;

    /* all counts are bounded by the 1 MB document: no overflow here */

    size = sizeof(ngx_http_stytch_tat_rbac_policy_t)
           + nroles * sizeof(ngx_http_stytch_tat_rbac_role_t)
           + count->nperms * sizeof(ngx_http_stytch_tat_rbac_perm_t)
           + count->nactions * sizeof(ngx_http_stytch_tat_field_t)
           + count->bytes + 1;

    pol = calloc(1, size);
    if (pol == NULL) {
        return NULL;
    }

    pol->nroles = nroles;
    pol->nperms = count->nperms;
    pol->nactions = count->nactions;

    pol->roles = (ngx_http_stytch_tat_rbac_role_t *) (pol + 1);
    pol->perms = (ngx_http_stytch_tat_rbac_perm_t *)
                     (pol->roles + pol->nroles);
    pol->actions = (ngx_http_stytch_tat_field_t *) (pol->perms + pol->nperms);

    return pol;
}


int
ngx_http_stytch_tat_rbac_policy_parse(const unsigned char *json, size_t len,
    ngx_http_stytch_tat_rbac_policy_t **policy, const char **reason)
{
    size_t                              i;
    json_t                             *root, *roles, *role;
    ngx_http_stytch_tat_rbac_count_t    count;
    ngx_http_stytch_tat_rbac_policy_t  *pol;

    *policy = NULL;
    *reason = NULL;

    if (json == NULL || len == 0) {
        *reason = "empty policy document";
        return -1;
    }

    if (len > NGX_HTTP_STYTCH_TAT_RBAC_POLICY_MAX) {
        *reason = "policy document over 1 MB";
        return -1;
    }

    /* duplicate names: the SDK's JSON.parse() takes the last, Go the first */

    root = json_loadb((const char *) json, len, JSON_REJECT_DUPLICATES, NULL);

    roles = ngx_http_stytch_tat_rbac_doc_roles(root, reason);

    if (roles == NULL) {
        json_decref(root);
        return -1;
    }

    memset(&count, 0, sizeof(ngx_http_stytch_tat_rbac_count_t));

    json_array_foreach(roles, i, role) {
        if (ngx_http_stytch_tat_rbac_count_role(role, &count, reason) != 0) {
            json_decref(root);
            return -1;
        }
    }

    pol = ngx_http_stytch_tat_rbac_alloc(json_array_size(roles), &count);
    if (pol == NULL) {
        json_decref(root);
        *reason = "out of memory";
        return -1;
    }

    ngx_http_stytch_tat_rbac_fill(pol, roles,
                                  (char *) (pol->actions + pol->nactions));

    json_decref(root);

    /* duplicates end up side by side, and the search visits them all */

    if (pol->nroles > 1) {
        qsort(pol->roles, pol->nroles, sizeof(ngx_http_stytch_tat_rbac_role_t),
              ngx_http_stytch_tat_rbac_role_cmp);
    }

    *policy = pol;

    return 0;
}


void
ngx_http_stytch_tat_rbac_policy_free(ngx_http_stytch_tat_rbac_policy_t *policy)
{
    free(policy);
}


size_t
ngx_http_stytch_tat_rbac_policy_roles(
    const ngx_http_stytch_tat_rbac_policy_t *policy)
{
    return (policy == NULL) ? 0 : policy->nroles;
}


size_t
ngx_http_stytch_tat_rbac_policy_permissions(
    const ngx_http_stytch_tat_rbac_policy_t *policy)
{
    return (policy == NULL) ? 0 : policy->nperms;
}


/* the claims, read into a view whose strings point into the JSON */

static int
ngx_http_stytch_tat_rbac_gather(const json_t *claims,
    ngx_http_stytch_tat_rbac_session_t *s, const char **reason)
{
    size_t                        i, k, n;
    json_t                       *session, *roles, *factors, *v, *org;
    const char                   *id;
    ngx_http_stytch_tat_field_t  *role;

    memset(s, 0, sizeof(ngx_http_stytch_tat_rbac_session_t));

    if (!json_is_object(claims)) {
        *reason = "claims are not a JSON object";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    session = json_object_get(claims, NGX_HTTP_STYTCH_TAT_RBAC_SESSION);

    if (!json_is_object(session)) {
        *reason = "no https://stytch.com/session object";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    roles = json_object_get(session, "roles");

    if (roles != NULL && !json_is_null(roles) && !json_is_array(roles)) {
        *reason = "session roles that are not an array";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    json_array_foreach(roles, i, v) {
        id = ngx_http_stytch_tat_rbac_id(v, &n);

        if (id == NULL) {
            continue;
        }

        for (k = 0; k < s->nroles; k++) {
            if (s->role[k].len == n && memcmp(s->role[k].data, id, n) == 0) {
                break;
            }
        }

        if (k < s->nroles) {
            continue;
        }

        if (s->nroles == NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX) {
            *reason = "a session with more than 64 roles";
            return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
        }

        role = &s->role[s->nroles++];
        role->data = id;
        role->len = n;
    }

    factors = json_object_get(session, "authentication_factors");

    json_array_foreach(factors, i, v) {
        ngx_http_stytch_tat_rbac_factor_add(s, v);
    }

    org = json_object_get(claims, NGX_HTTP_STYTCH_TAT_RBAC_ORG);

    if (json_is_object(org)) {
        (void) ngx_http_stytch_tat_rbac_string(
                   json_object_get(org, "organization_id"),
                   &s->organization_id);
        (void) ngx_http_stytch_tat_rbac_string(json_object_get(org, "slug"),
                                               &s->organization_slug);
    }

    return NGX_HTTP_STYTCH_TAT_RBAC_OK;
}


static void
ngx_http_stytch_tat_rbac_factor_add(ngx_http_stytch_tat_rbac_session_t *s,
    const json_t *f)
{
    size_t                              i;
    json_t                             *v;
    long long                           at;
    const char                         *t;
    ngx_http_stytch_tat_rbac_factor_t   fa, *e;

    if (!json_is_object(f)) {
        return;
    }

    fa.type.data = ngx_http_stytch_tat_rbac_id(json_object_get(f, "type"),
                                               &fa.type.len);
    if (fa.type.data == NULL) {
        return;
    }

    v = json_object_get(f, "delivery_method");

    if (v == NULL || json_is_null(v)) {
        fa.delivery_method.data = "";
        fa.delivery_method.len = 0;

    } else if (ngx_http_stytch_tat_rbac_string(v, &fa.delivery_method) != 0)
    {
        return;
    }

    v = json_object_get(f, "last_authenticated_at");
    t = json_string_value(v);
    at = -1;

    /* a NUL inside the string would end it early for the parser */

    if (t != NULL && strlen(t) == json_string_length(v)) {
        at = ngx_http_stytch_tat_parse_rfc3339(t);
    }

    fa.last_authenticated_at = at;

    /* one entry per kind, the latest time: all a requirement looks at */

    for (i = 0; i < s->nfactors; i++) {
        e = &s->factor[i];

        if (ngx_http_stytch_tat_rbac_eq(&e->type, &fa.type)
            && ngx_http_stytch_tat_rbac_eq(&e->delivery_method,
                                           &fa.delivery_method))
        {
            if (at > e->last_authenticated_at) {
                e->last_authenticated_at = at;
            }

            return;
        }
    }

    if (s->nfactors < NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX) {
        s->factor[s->nfactors++] = fa;
    }
}


static unsigned char *
ngx_http_stytch_tat_rbac_put(unsigned char *p,
    const ngx_http_stytch_tat_field_t *f)
{
    *p++ = (unsigned char) f->len;

    if (f->len) {
        memcpy(p, f->data, f->len);
    }

    return p + f->len;
}


static int
ngx_http_stytch_tat_rbac_serialize(const ngx_http_stytch_tat_rbac_session_t *s,
    unsigned char *buf, size_t size, size_t *len)
{
    int                                       k;
    size_t                                    i, need;
    uint64_t                                  at;
    unsigned char                            *p;
    const ngx_http_stytch_tat_rbac_factor_t  *f;

    need = 4;

    if (s->organization_id.data != NULL) {
        need += 1 + s->organization_id.len;
    }

    if (s->organization_slug.data != NULL) {
        need += 1 + s->organization_slug.len;
    }

    for (i = 0; i < s->nroles; i++) {
        need += 1 + s->role[i].len;
    }

    for (i = 0; i < s->nfactors; i++) {
        need += 8 + 1 + s->factor[i].type.len
                + 1 + s->factor[i].delivery_method.len;
    }

    *len = need;

    if (buf == NULL || need > size) {
        return NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL;
    }

    p = buf;

    *p++ = NGX_HTTP_STYTCH_TAT_RBAC_BLOB_VERSION;
    *p++ = ((s->organization_id.data != NULL)
            ? NGX_HTTP_STYTCH_TAT_RBAC_HAS_ORG : 0)
           | ((s->organization_slug.data != NULL)
              ? NGX_HTTP_STYTCH_TAT_RBAC_HAS_SLUG : 0);
    *p++ = (unsigned char) s->nroles;
    *p++ = (unsigned char) s->nfactors;

    if (s->organization_id.data != NULL) {
        p = ngx_http_stytch_tat_rbac_put(p, &s->organization_id);
    }

    if (s->organization_slug.data != NULL) {
        p = ngx_http_stytch_tat_rbac_put(p, &s->organization_slug);
    }

    for (i = 0; i < s->nroles; i++) {
        p = ngx_http_stytch_tat_rbac_put(p, &s->role[i]);
    }

    for (i = 0; i < s->nfactors; i++) {
        f = &s->factor[i];
        at = (uint64_t) f->last_authenticated_at;

        for (k = 0; k < 8; k++) {
            *p++ = (unsigned char) (at >> (8 * k));
        }

        p = ngx_http_stytch_tat_rbac_put(p, &f->type);
        p = ngx_http_stytch_tat_rbac_put(p, &f->delivery_method);
    }

    return NGX_HTTP_STYTCH_TAT_RBAC_OK;
}


int
ngx_http_stytch_tat_rbac_claims_json(const json_t *claims, unsigned char *buf,
    size_t size, size_t *len, const char **reason)
{
    int                                 rc;
    ngx_http_stytch_tat_rbac_session_t  s;

    *len = 0;
    *reason = NULL;

    rc = ngx_http_stytch_tat_rbac_gather(claims, &s, reason);

    if (rc != NGX_HTTP_STYTCH_TAT_RBAC_OK) {
        return rc;
    }

    rc = ngx_http_stytch_tat_rbac_serialize(&s, buf, size, len);

    if (rc == NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL) {
        *reason = "buffer too small";
    }

    return rc;
}


int
ngx_http_stytch_tat_rbac_claims_payload(const char *json, size_t n,
    unsigned char *buf, size_t size, size_t *len, const char **reason)
{
    int      rc;
    json_t  *claims;

    *len = 0;

    if (json == NULL || n == 0 || n > NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX) {
        *reason = "claims empty or over 16 KB";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    claims = json_loadb(json, n, JSON_REJECT_DUPLICATES, NULL);

    if (!json_is_object(claims)) {
        json_decref(claims);
        *reason = "claims are not a JSON object without duplicate names";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    rc = ngx_http_stytch_tat_rbac_claims_json(claims, buf, size, len, reason);

    json_decref(claims);

    return rc;
}


int
ngx_http_stytch_tat_rbac_claims_jwt(const char *jwt, size_t n,
    unsigned char *buf, size_t size, size_t *len, const char **reason)
{
    int             rc;
    size_t          plen, d;
    const char     *p, *dot;
    unsigned char  *raw;

    *len = 0;

    p = (jwt == NULL) ? NULL : memchr(jwt, '.', n);
    dot = (p == NULL) ? NULL : memchr(p + 1, '.', n - (p + 1 - jwt));

    if (dot == NULL || memchr(dot + 1, '.', n - (dot + 1 - jwt)) != NULL) {
        *reason = "not a compact JWT";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    p++;
    plen = dot - p;

    if (plen == 0 || plen % 4 == 1
        || plen > (NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX / 3 + 1) * 4)
    {
        *reason = "a JWT payload empty, truncated or over 16 KB";
        return NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;
    }

    raw = malloc(ngx_http_stytch_tat_b64url_decoded_len(plen) + 1);

    if (raw == NULL) {
        *reason = "out of memory";
        return NGX_HTTP_STYTCH_TAT_RBAC_NOMEM;
    }

    /* strict, as the verifier reads it */

    if (ngx_http_stytch_tat_b64url_decode(raw, &d, p, plen) != 0) {
        *reason = "a JWT payload that is not base64url";
        rc = NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED;

    } else {
        rc = ngx_http_stytch_tat_rbac_claims_payload((const char *) raw, d,
                                                     buf, size, len, reason);
    }

    free(raw);

    return rc;
}


static int
ngx_http_stytch_tat_rbac_get(const unsigned char **p, const unsigned char *end,
    ngx_http_stytch_tat_field_t *f)
{
    size_t  n;

    if (*p >= end) {
        return -1;
    }

    n = *(*p)++;

    if ((size_t) (end - *p) < n) {
        return -1;
    }

    f->data = (const char *) *p;
    f->len = n;

    *p += n;

    return 0;
}


int
ngx_http_stytch_tat_rbac_session_view(const unsigned char *blob, size_t len,
    ngx_http_stytch_tat_rbac_session_t *s)
{
    int                                 k;
    size_t                              i;
    uint64_t                            at;
    unsigned                            flags;
    const unsigned char                *p, *end;
    ngx_http_stytch_tat_rbac_factor_t  *f;

    /*
     * Per request: what the view's readers look at is set, not the whole
     * view (1.7 KB); the roles and factors past nroles and nfactors are
     * never read.
     */

    ngx_http_stytch_tat_rbac_session_clear(s);

    if (blob == NULL || len < 4
        || blob[0] != NGX_HTTP_STYTCH_TAT_RBAC_BLOB_VERSION
        || (blob[1] & ~(NGX_HTTP_STYTCH_TAT_RBAC_HAS_ORG
                        | NGX_HTTP_STYTCH_TAT_RBAC_HAS_SLUG)) != 0
        || blob[2] > NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX
        || blob[3] > NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX)
    {
        return -1;
    }

    flags = blob[1];
    s->nroles = blob[2];
    s->nfactors = blob[3];

    p = blob + 4;
    end = blob + len;

    if ((flags & NGX_HTTP_STYTCH_TAT_RBAC_HAS_ORG)
        && ngx_http_stytch_tat_rbac_get(&p, end, &s->organization_id) != 0)
    {
        goto failed;
    }

    if ((flags & NGX_HTTP_STYTCH_TAT_RBAC_HAS_SLUG)
        && ngx_http_stytch_tat_rbac_get(&p, end, &s->organization_slug) != 0)
    {
        goto failed;
    }

    for (i = 0; i < s->nroles; i++) {
        if (ngx_http_stytch_tat_rbac_get(&p, end, &s->role[i]) != 0) {
            goto failed;
        }
    }

    for (i = 0; i < s->nfactors; i++) {
        f = &s->factor[i];

        if (end - p < 8) {
            goto failed;
        }

        at = 0;

        for (k = 0; k < 8; k++) {
            at |= (uint64_t) *p++ << (8 * k);
        }

        f->last_authenticated_at = (long long) at;

        if (ngx_http_stytch_tat_rbac_get(&p, end, &f->type) != 0
            || ngx_http_stytch_tat_rbac_get(&p, end, &f->delivery_method)
               != 0)
        {
            goto failed;
        }
    }

    if (p == end) {
        return 0;
    }

failed:

    ngx_http_stytch_tat_rbac_session_clear(s);

    return -1;
}


/* an empty session: no organization, no role, no factor */

void
ngx_http_stytch_tat_rbac_session_clear(ngx_http_stytch_tat_rbac_session_t *s)
{
    s->organization_id.data = NULL;
    s->organization_id.len = 0;
    s->organization_slug.data = NULL;
    s->organization_slug.len = 0;
    s->nroles = 0;
    s->nfactors = 0;
}


/* does the role grant the check: the SDKs' filter, flatMap and some */

static int
ngx_http_stytch_tat_rbac_grants(const ngx_http_stytch_tat_rbac_policy_t *policy,
    const ngx_http_stytch_tat_field_t *role,
    const ngx_http_stytch_tat_rbac_check_t *check)
{
    size_t                                  lo, hi, mid, j, k;
    const ngx_http_stytch_tat_field_t      *actions;
    const ngx_http_stytch_tat_rbac_perm_t  *pm;
    const ngx_http_stytch_tat_rbac_role_t  *r;

    /* the first of the roles with this id */

    lo = 0;
    hi = policy->nroles;

    while (lo < hi) {
        mid = lo + (hi - lo) / 2;

        if (ngx_http_stytch_tat_rbac_cmp(&policy->roles[mid].id, role) < 0) {
            lo = mid + 1;

        } else {
            hi = mid;
        }
    }

    for ( /* void */ ; lo < policy->nroles; lo++) {
        r = &policy->roles[lo];

        if (!ngx_http_stytch_tat_rbac_eq(&r->id, role)) {
            break;
        }

        for (j = 0; j < r->nperms; j++) {
            pm = &policy->perms[r->perm + j];

            if (!ngx_http_stytch_tat_rbac_eq(&pm->resource_id,
                                             &check->resource_id))
            {
                continue;
            }

            if (pm->any) {
                return 1;
            }

            actions = &policy->actions[pm->action];

            for (k = 0; k < pm->nactions; k++) {
                if (ngx_http_stytch_tat_rbac_eq(&actions[k], &check->action)) {
                    return 1;
                }
            }
        }
    }

    return 0;
}


int
ngx_http_stytch_tat_rbac_decide(const ngx_http_stytch_tat_rbac_policy_t *policy,
    const ngx_http_stytch_tat_rbac_session_t *s,
    const ngx_http_stytch_tat_rbac_check_t *check, uint64_t *granted)
{
    size_t    i;
    uint64_t  mask;

    if (granted != NULL) {
        *granted = 0;
    }

    /* tenancy first: a mismatch is denied before any permission is seen */

    if (check->organization_id.data != NULL
        && (s->organization_id.data == NULL
            || !ngx_http_stytch_tat_rbac_eq(&s->organization_id,
                                            &check->organization_id)))
    {
        return NGX_HTTP_STYTCH_TAT_RBAC_DENY_TENANCY;
    }

    if (policy == NULL) {
        return NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION;
    }

    mask = 0;

    for (i = 0; i < s->nroles; i++) {
        if (ngx_http_stytch_tat_rbac_grants(policy, &s->role[i], check)) {
            mask |= (uint64_t) 1 << i;
        }
    }

    if (granted != NULL) {
        *granted = mask;
    }

    return mask ? NGX_HTTP_STYTCH_TAT_RBAC_ALLOW
                : NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION;
}


const char *
ngx_http_stytch_tat_rbac_verdict_name(int verdict)
{
    if (verdict < 0 || verdict > NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION) {
        return "unknown";
    }

    return ngx_http_stytch_tat_rbac_verdicts[verdict];
}


int
ngx_http_stytch_tat_rbac_factor_check(
    const ngx_http_stytch_tat_rbac_session_t *s,
    const ngx_http_stytch_tat_rbac_factor_req_t *req, long long now)
{
    size_t                                    i;
    const ngx_http_stytch_tat_rbac_factor_t  *f;

    /* now - max_age cannot overflow then */

    if (now < 0) {
        now = 0;
    }

    for (i = 0; i < s->nfactors; i++) {
        f = &s->factor[i];

        if (!ngx_http_stytch_tat_rbac_eq(&f->type, &req->type)) {
            continue;
        }

        if (req->delivery_method.data != NULL
            && !ngx_http_stytch_tat_rbac_eq(&f->delivery_method,
                                            &req->delivery_method))
        {
            continue;
        }

        if (req->max_age < 0) {
            return 1;
        }

        /* a time ahead of now (the clocks differ) is fresh */

        if (f->last_authenticated_at >= 0
            && f->last_authenticated_at >= now - req->max_age)
        {
            return 1;
        }
    }

    return 0;
}


static size_t
ngx_http_stytch_tat_rbac_join(char *buf, size_t size, size_t at,
    const ngx_http_stytch_tat_field_t *f)
{
    size_t  n;

    n = (at ? 1 : 0) + f->len;

    if (buf != NULL && at + n <= size) {
        if (at) {
            buf[at] = ',';
        }

        if (f->len) {
            memcpy(buf + at + (at ? 1 : 0), f->data, f->len);
        }
    }

    return at + n;
}


size_t
ngx_http_stytch_tat_rbac_roles_join(const ngx_http_stytch_tat_rbac_session_t *s,
    uint64_t mask, char *buf, size_t size)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < s->nroles; i++) {
        if (mask & ((uint64_t) 1 << i)) {
            n = ngx_http_stytch_tat_rbac_join(buf, size, n, &s->role[i]);
        }
    }

    return n;
}


size_t
ngx_http_stytch_tat_rbac_factor_types_join(
    const ngx_http_stytch_tat_rbac_session_t *s, char *buf, size_t size)
{
    size_t  i, k, n;

    n = 0;

    for (i = 0; i < s->nfactors; i++) {

        /* a type seen with another delivery method is named once */

        for (k = 0; k < i; k++) {
            if (ngx_http_stytch_tat_rbac_eq(&s->factor[k].type,
                                            &s->factor[i].type))
            {
                break;
            }
        }

        if (k == i) {
            n = ngx_http_stytch_tat_rbac_join(buf, size, n,
                                              &s->factor[i].type);
        }
    }

    return n;
}
