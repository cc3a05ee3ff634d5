/*
 * Stytch RBAC: ngx_http_stytch_tat_rbac_policy_parse(), the claims readers,
 * ngx_http_stytch_tat_rbac_session_view() and the decision, each checked
 * against a reference written here from the documented rules
 * (ngx_http_stytch_tat_rbac.h) and the SDKs' semantics, reading the same
 * JSON with jansson.
 *
 * Byte 0 selects:
 *   0  the rest is a policy document: taken exactly when the reference
 *      validation takes it; then every (role, resource, action) the
 *      document names, plus "*", "" and a stranger, decided for a session
 *      of each of its roles and compared with the reference decision;
 *   1  the rest is a session JWT's claims (JSON): the blob read when the
 *      reference says so, its view equal to a reference reading, the same
 *      blob through a small buffer (byte 1 of the rest: its size) and from
 *      a JWT of the same payload;
 *   2  the rest is a blob: viewed, and every view field inside it;
 *   3  policy 0xff claims 0xff organization 0xff resource 0xff action
 *      (an empty organization: a consumer check): decided, and compared
 *      with the reference on the raw JSON, with the granting roles.
 */

#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "ngx_http_stytch_tat_rbac.h"
#include "fuzz_common.h"


#define ID_MAX  NGX_HTTP_STYTCH_TAT_RBAC_ID_MAX


/* ---- the reference -------------------------------------------------- */

static int
ref_id(json_t *v)
{
    size_t                i, n;
    const unsigned char  *s;

    if (!json_is_string(v)) {
        return 0;
    }

    n = json_string_length(v);
    s = (const unsigned char *) json_string_value(v);

    if (n == 0 || n > ID_MAX) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] == 0x7f) {
            return 0;
        }
    }

    return 1;
}


/* a string of 0..ID_MAX bytes without control characters */
static int
ref_string(json_t *v)
{
    return json_is_string(v)
           && (json_string_length(v) == 0 || ref_id(v));
}


static int
ref_policy_valid(json_t *root)
{
    size_t   i, j, k;
    json_t  *doc, *roles, *role, *perms, *perm, *actions, *a, *v;

    doc = json_object_get(root, "policy");
    roles = json_object_get(doc, "roles");

    if (!json_is_object(root) || !json_is_object(doc)
        || !json_is_array(roles)
        || json_array_size(roles) > NGX_HTTP_STYTCH_TAT_RBAC_ROLES_MAX)
    {
        return 0;
    }

    v = json_object_get(doc, "resources");
    if (v != NULL && !json_is_array(v)) {
        return 0;
    }

    v = json_object_get(doc, "scopes");
    if (v != NULL && !json_is_array(v)) {
        return 0;
    }

    json_array_foreach(roles, i, role) {
        perms = json_object_get(role, "permissions");

        if (!json_is_object(role) || !ref_id(json_object_get(role, "role_id"))
            || !json_is_array(perms)
            || json_array_size(perms)
               > NGX_HTTP_STYTCH_TAT_RBAC_PERMISSIONS_MAX)
        {
            return 0;
        }

        json_array_foreach(perms, j, perm) {
            actions = json_object_get(perm, "actions");

            if (!json_is_object(perm)
                || !ref_id(json_object_get(perm, "resource_id"))
                || !json_is_array(actions)
                || json_array_size(actions)
                   > NGX_HTTP_STYTCH_TAT_RBAC_ACTIONS_MAX)
            {
                return 0;
            }

            json_array_foreach(actions, k, a) {
                if (!ref_id(a)) {
                    return 0;
                }
            }
        }
    }

    return 1;
}


static int
str_eq(json_t *v, const char *s, size_t n)
{
    return json_is_string(v) && json_string_length(v) == n
           && (n == 0 || memcmp(json_string_value(v), s, n) == 0);
}


/* the SDKs' performBaseRoleAuthorizationCheck() for one subject role */
static int
ref_role_grants(json_t *policy_root, const char *role, size_t role_len,
    const char *res, size_t res_len, const char *act, size_t act_len)
{
    size_t   i, j, k;
    json_t  *roles, *r, *perm, *a;
    int      action;

    roles = json_object_get(json_object_get(policy_root, "policy"), "roles");

    json_array_foreach(roles, i, r) {
        if (!str_eq(json_object_get(r, "role_id"), role, role_len)) {
            continue;
        }

        json_array_foreach(json_object_get(r, "permissions"), j, perm) {
            action = 0;

            json_array_foreach(json_object_get(perm, "actions"), k, a) {
                if (str_eq(a, act, act_len) || str_eq(a, "*", 1)) {
                    action = 1;
                }
            }

            if (action && str_eq(json_object_get(perm, "resource_id"), res,
                                 res_len))
            {
                return 1;
            }
        }
    }

    return 0;
}


/*
 * The session roles as the reader keeps them (usable, distinct, in
 * order); -1 when the claims are refused.
 */
static int
ref_roles(json_t *claims, json_t **out)
{
    size_t   i, k, n;
    json_t  *session, *roles, *v, *kept;

    *out = NULL;

    if (!json_is_object(claims)) {
        return -1;
    }

    session = json_object_get(claims, "https://stytch.com/session");
    if (!json_is_object(session)) {
        return -1;
    }

    roles = json_object_get(session, "roles");

    if (roles != NULL && !json_is_null(roles) && !json_is_array(roles)) {
        return -1;
    }

    kept = json_array();
    n = 0;

    json_array_foreach(roles, i, v) {
        if (!ref_id(v)) {
            continue;
        }

        for (k = 0; k < json_array_size(kept); k++) {
            if (json_equal(json_array_get(kept, k), v)) {
                break;
            }
        }

        if (k < json_array_size(kept)) {
            continue;
        }

        if (++n > NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX) {
            json_decref(kept);
            return -1;
        }

        json_array_append(kept, v);
    }

    *out = kept;

    return 0;
}


static void
check_value(const ngx_http_stytch_tat_field_t *f, json_t *want)
{
    if (want == NULL) {
        FUZZ_CHECK(f->data == NULL);
        return;
    }

    FUZZ_CHECK(f->data != NULL);
    FUZZ_CHECK(f->len == json_string_length(want));
    FUZZ_CHECK(f->len == 0
               || memcmp(f->data, json_string_value(want), f->len) == 0);
}


static void
check_inside(const ngx_http_stytch_tat_field_t *f, const unsigned char *blob,
    size_t len)
{
    size_t         i;
    volatile char  c;

    if (f->data == NULL) {
        FUZZ_CHECK(f->len == 0);
        return;
    }

    FUZZ_CHECK(f->len <= ID_MAX);
    FUZZ_CHECK((const unsigned char *) f->data >= blob
               && (const unsigned char *) f->data + f->len <= blob + len);

    for (i = 0; i < f->len; i++) {
        c = f->data[i];
        (void) c;
    }
}


static void
check_view(const ngx_http_stytch_tat_rbac_session_t *s,
    const unsigned char *blob, size_t len)
{
    size_t  i;

    FUZZ_CHECK(s->nroles <= NGX_HTTP_STYTCH_TAT_RBAC_SESSION_ROLES_MAX);
    FUZZ_CHECK(s->nfactors <= NGX_HTTP_STYTCH_TAT_RBAC_FACTORS_MAX);

    check_inside(&s->organization_id, blob, len);
    check_inside(&s->organization_slug, blob, len);

    for (i = 0; i < s->nroles; i++) {
        check_inside(&s->role[i], blob, len);
    }

    for (i = 0; i < s->nfactors; i++) {
        check_inside(&s->factor[i].type, blob, len);
        check_inside(&s->factor[i].delivery_method, blob, len);
        FUZZ_CHECK(s->factor[i].delivery_method.data != NULL);
    }

    /* the joins stay in their buffers and agree with themselves */
    {
        char    buf[64];
        size_t  n;

        n = ngx_http_stytch_tat_rbac_roles_join(s, UINT64_MAX, NULL, 0);
        FUZZ_CHECK(ngx_http_stytch_tat_rbac_roles_join(s, UINT64_MAX, buf,
                                                       sizeof(buf))
                   == n);
        n = ngx_http_stytch_tat_rbac_factor_types_join(s, NULL, 0);
        FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_types_join(s, buf,
                                                              sizeof(buf))
                   == n);
    }
}


/* ---- the modes ------------------------------------------------------- */

static void
decide_one(ngx_http_stytch_tat_rbac_policy_t *p, json_t *policy_root,
    json_t *role, const char *res, size_t res_len, const char *act,
    size_t act_len)
{
    int                                 v, want;
    uint64_t                            granted;
    ngx_http_stytch_tat_rbac_check_t    c;
    ngx_http_stytch_tat_rbac_session_t  s;

    memset(&s, 0, sizeof(s));
    s.nroles = 1;
    s.role[0].data = json_string_value(role);
    s.role[0].len = json_string_length(role);

    memset(&c, 0, sizeof(c));
    c.resource_id.data = res;
    c.resource_id.len = res_len;
    c.action.data = act;
    c.action.len = act_len;

    v = ngx_http_stytch_tat_rbac_decide(p, &s, &c, &granted);
    want = ref_role_grants(policy_root, s.role[0].data, s.role[0].len,
                           res, res_len, act, act_len);

    FUZZ_CHECK(v == (want ? NGX_HTTP_STYTCH_TAT_RBAC_ALLOW
                          : NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION));
    FUZZ_CHECK(granted == (want ? 1u : 0u));
}


static void
mode_policy(const unsigned char *data, size_t size)
{
    int                                 rc;
    size_t                              i, j, k, m;
    json_t                             *root, *roles, *r, *perm, *a, *res;
    const char                         *reason;
    unsigned char                      *copy;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    copy = fuzz_dup(data, size, 0);

    rc = ngx_http_stytch_tat_rbac_policy_parse(copy, size, &p, &reason);

    root = json_loadb((const char *) copy, size, JSON_REJECT_DUPLICATES, NULL);

    if (size == 0 || size > NGX_HTTP_STYTCH_TAT_RBAC_POLICY_MAX
        || !ref_policy_valid(root))
    {
        FUZZ_CHECK(rc == -1 && p == NULL && reason != NULL);
        goto done;
    }

    FUZZ_CHECK(rc == 0 && p != NULL && reason == NULL);

    roles = json_object_get(json_object_get(root, "policy"), "roles");
    FUZZ_CHECK(ngx_http_stytch_tat_rbac_policy_roles(p)
               == json_array_size(roles));

    /* every role against every resource and action the document names */

    m = 0;

    json_array_foreach(roles, i, r) {
        json_array_foreach(json_object_get(r, "permissions"), j, perm) {
            res = json_object_get(perm, "resource_id");

            json_array_foreach(json_object_get(perm, "actions"), k, a) {
                size_t  n;
                json_t *other;

                json_array_foreach(roles, n, other) {
                    if (m++ > 4096) {
                        goto enough;
                    }

                    decide_one(p, root, json_object_get(other, "role_id"),
                               json_string_value(res),
                               json_string_length(res),
                               json_string_value(a), json_string_length(a));
                }
            }

            decide_one(p, root, json_object_get(r, "role_id"),
                       json_string_value(res), json_string_length(res),
                       "*", 1);
            decide_one(p, root, json_object_get(r, "role_id"),
                       json_string_value(res), json_string_length(res),
                       "", 0);
            decide_one(p, root, json_object_get(r, "role_id"),
                       json_string_value(res), json_string_length(res),
                       "fuzz-stranger", 13);
        }
    }

enough:

    ngx_http_stytch_tat_rbac_policy_free(p);

done:

    json_decref(root);
    free(copy);
}


static char *
b64url(const unsigned char *in, size_t len)
{
    char    *out;
    size_t   i, n;

    out = malloc(len / 3 * 4 + 8);
    FUZZ_CHECK(out != NULL);

    n = (size_t) EVP_EncodeBlock((unsigned char *) out, in, (int) len);

    while (n && out[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < n; i++) {
        out[i] = (out[i] == '+') ? '-' : (out[i] == '/') ? '_' : out[i];
    }

    out[n] = '\0';

    return out;
}


static void
mode_claims(const unsigned char *data, size_t size)
{
    int                                 rc, ref;
    char                               *jwt, *enc;
    size_t                              i, len, len2, small;
    json_t                             *root, *kept, *org, *v;
    const char                         *reason;
    unsigned char                      *copy, *blob, *blob2, *sbuf;
    ngx_http_stytch_tat_rbac_session_t  s;

    if (size < 1) {
        return;
    }

    small = data[0];
    data++;
    size--;

    copy = fuzz_dup(data, size, 0);
    blob = malloc(NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX);
    blob2 = malloc(NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX);
    FUZZ_CHECK(blob != NULL && blob2 != NULL);

    reason = NULL;
    rc = ngx_http_stytch_tat_rbac_claims_payload((const char *) copy, size,
                 blob, NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX, &len, &reason);

    root = json_loadb((const char *) copy, size, JSON_REJECT_DUPLICATES, NULL);

    ref = (size == 0 || size > NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX) ? -1
          : ref_roles(root, &kept);

    if (ref != 0) {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
        FUZZ_CHECK(reason != NULL);
        goto done;
    }

    FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_RBAC_OK);
    FUZZ_CHECK(len >= 4 && len <= NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX);
    FUZZ_CHECK(len <= size + 64);

    FUZZ_CHECK(ngx_http_stytch_tat_rbac_session_view(blob, len, &s) == 0);
    check_view(&s, blob, len);

    FUZZ_CHECK(s.nroles == json_array_size(kept));

    for (i = 0; i < s.nroles; i++) {
        check_value(&s.role[i], json_array_get(kept, i));
    }

    json_decref(kept);

    org = json_object_get(root, "https://stytch.com/organization");
    v = json_object_get(org, "organization_id");
    check_value(&s.organization_id, ref_string(v) ? v : NULL);
    v = json_object_get(org, "slug");
    check_value(&s.organization_slug, ref_string(v) ? v : NULL);

    for (i = 0; i < s.nfactors; i++) {
        long long                              at;
        ngx_http_stytch_tat_rbac_factor_req_t  req;

        at = s.factor[i].last_authenticated_at;

        FUZZ_CHECK(s.factor[i].type.len > 0);
        FUZZ_CHECK(at >= -1);

        /* each factor satisfies its own kind; its age decides freshness */

        req.type = s.factor[i].type;
        req.delivery_method = s.factor[i].delivery_method;
        req.max_age = -1;
        FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_check(&s, &req, 0));

        req.max_age = INT64_MAX;
        FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_check(&s, &req, INT64_MAX)
                   == (at >= 0));
        FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_check(&s, &req, -5)
                   == (at >= 0));

        if (at >= 0) {
            req.max_age = 10;
            FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_check(&s, &req,
                                                             at + 10));
            req.delivery_method.data = NULL;
            FUZZ_CHECK(ngx_http_stytch_tat_rbac_factor_check(&s, &req, at));
        }
    }

    /* a small buffer: refused with the size, or the same blob */

    sbuf = malloc(small ? small : 1);
    FUZZ_CHECK(sbuf != NULL);

    rc = ngx_http_stytch_tat_rbac_claims_payload((const char *) copy, size,
                                                 sbuf, small, &len2, &reason);
    FUZZ_CHECK(len2 == len);

    if (len > small) {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL);

    } else {
        FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_RBAC_OK);
        FUZZ_CHECK(memcmp(sbuf, blob, len) == 0);
    }

    free(sbuf);

    /* the same payload as a JWT */

    enc = b64url(copy, size);
    jwt = malloc(strlen(enc) + 16);
    FUZZ_CHECK(jwt != NULL);
    sprintf(jwt, "e30.%s.c2ln", enc);

    rc = ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt), blob2,
                                             NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX,
                                             &len2, &reason);
    FUZZ_CHECK(rc == NGX_HTTP_STYTCH_TAT_RBAC_OK);
    FUZZ_CHECK(len2 == len && memcmp(blob, blob2, len) == 0);

    free(jwt);
    free(enc);

done:

    json_decref(root);
    free(blob);
    free(blob2);
    free(copy);
}


static void
mode_blob(const unsigned char *data, size_t size)
{
    unsigned char                      *copy;
    ngx_http_stytch_tat_rbac_session_t  s;

    copy = fuzz_dup(data, size, 0);

    if (ngx_http_stytch_tat_rbac_session_view(copy, size, &s) == 0) {
        check_view(&s, copy, size);

    } else {
        FUZZ_CHECK(s.nroles == 0 && s.nfactors == 0);
    }

    free(copy);
}


static void
mode_decide(const unsigned char *data, size_t size)
{
    int                                 rc, v, want, tenancy;
    size_t                              i, n, start, len;
    json_t                             *proot, *croot, *org;
    uint64_t                            granted, want_granted;
    const char                         *reason;
    unsigned char                      *part[5], blob[8192];
    ngx_http_stytch_tat_rbac_check_t    c;
    ngx_http_stytch_tat_rbac_policy_t  *p;
    ngx_http_stytch_tat_rbac_session_t  s;
    size_t                              plen[5];

    n = 0;
    start = 0;

    for (i = 0; i <= size && n < 5; i++) {
        if (i < size && data[i] != 0xff) {
            continue;
        }

        part[n] = fuzz_dup(data + start, i - start, 0);
        plen[n] = i - start;
        n++;
        start = i + 1;
    }

    if (n < 5) {
        goto free;
    }

    if (ngx_http_stytch_tat_rbac_policy_parse(part[0], plen[0], &p, &reason)
        != 0)
    {
        goto free;
    }

    rc = ngx_http_stytch_tat_rbac_claims_payload((const char *) part[1],
                                                 plen[1], blob, sizeof(blob),
                                                 &len, &reason);
    if (rc != NGX_HTTP_STYTCH_TAT_RBAC_OK) {
        ngx_http_stytch_tat_rbac_policy_free(p);
        goto free;
    }

    FUZZ_CHECK(ngx_http_stytch_tat_rbac_session_view(blob, len, &s) == 0);

    memset(&c, 0, sizeof(c));
    c.organization_id.data = plen[2] ? (const char *) part[2] : NULL;
    c.organization_id.len = plen[2];
    c.resource_id.data = (const char *) part[3];
    c.resource_id.len = plen[3];
    c.action.data = (const char *) part[4];
    c.action.len = plen[4];

    v = ngx_http_stytch_tat_rbac_decide(p, &s, &c, &granted);

    /* the reference, on the raw JSON */

    proot = json_loadb((const char *) part[0], plen[0], 0, NULL);
    croot = json_loadb((const char *) part[1], plen[1], 0, NULL);
    FUZZ_CHECK(proot != NULL && croot != NULL);

    tenancy = 1;

    if (c.organization_id.data != NULL) {
        org = json_object_get(json_object_get(croot,
                                  "https://stytch.com/organization"),
                              "organization_id");
        tenancy = ref_string(org)
                  && str_eq(org, c.organization_id.data, c.organization_id.len);
    }

    want_granted = 0;

    for (i = 0; i < s.nroles; i++) {
        if (ref_role_grants(proot, s.role[i].data, s.role[i].len,
                            c.resource_id.data, c.resource_id.len,
                            c.action.data, c.action.len))
        {
            want_granted |= (uint64_t) 1 << i;
        }
    }

    want = !tenancy ? NGX_HTTP_STYTCH_TAT_RBAC_DENY_TENANCY
           : want_granted ? NGX_HTTP_STYTCH_TAT_RBAC_ALLOW
           : NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION;

    FUZZ_CHECK(v == want);
    FUZZ_CHECK(granted == (tenancy ? want_granted : 0));
    FUZZ_CHECK(strcmp(ngx_http_stytch_tat_rbac_verdict_name(v), "unknown")
               != 0);

    json_decref(proot);
    json_decref(croot);
    ngx_http_stytch_tat_rbac_policy_free(p);

free:

    for (i = 0; i < n; i++) {
        free(part[i]);
    }
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }

    switch (data[0] % 4) {

    case 0:
        mode_policy(data + 1, size - 1);
        break;

    case 1:
        mode_claims(data + 1, size - 1);
        break;

    case 2:
        mode_blob(data + 1, size - 1);
        break;

    default:
        mode_decide(data + 1, size - 1);
        break;
    }

    return 0;
}
