/*
 * Stytch RBAC at the edge: the policy parser (what it takes, what it
 * refuses, its bounds), the session claims reader and its blob, the
 * decision as Stytch's SDKs make it (tenancy first, unknown roles, "*",
 * exact resource ids, duplicate roles), the factor check and the
 * variables' values.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "unit.h"
#include "ngx_http_stytch_tat_rbac.h"


#define ORG   "organization-test-00000000-0000-0000-0000-000000000000"
#define ORG2  "organization-test-11111111-1111-1111-1111-111111111111"

/* in the shape of Stytch's answer, with duplicates and a "*" */
#define POLICY                                                               \
    "{\"request_id\":\"request-id-test-1\",\"status_code\":200,"             \
    "\"policy\":{\"resources\":[{\"resource_id\":\"documents\","              \
    "\"description\":\"\",\"actions\":[\"read\",\"write\",\"delete\"]}],"     \
    "\"roles\":["                                                            \
    "{\"role_id\":\"stytch_member\",\"description\":\"\",\"permissions\":["  \
    "{\"resource_id\":\"documents\",\"actions\":[\"read\"]}]},"              \
    "{\"role_id\":\"editor\",\"description\":\"\",\"permissions\":["         \
    "{\"resource_id\":\"documents\",\"actions\":[\"read\",\"write\"]},"      \
    "{\"resource_id\":\"images\",\"actions\":[\"upload\"]}]},"               \
    "{\"role_id\":\"admin\",\"description\":\"\",\"permissions\":["          \
    "{\"resource_id\":\"documents\",\"actions\":[\"*\"]},"                   \
    "{\"resource_id\":\"*\",\"actions\":[\"audit\"]}]},"                     \
    "{\"role_id\":\"editor\",\"description\":\"the same id again\","         \
    "\"permissions\":[{\"resource_id\":\"reports\","                          \
    "\"actions\":[\"export\"]}]},"                                            \
    "{\"role_id\":\"nobody\",\"description\":\"\",\"permissions\":[]},"      \
    "{\"role_id\":\"blank\",\"description\":\"\",\"permissions\":["          \
    "{\"resource_id\":\"documents\",\"actions\":[]}]}"                       \
    "],\"scopes\":[]}}"

#define FACTOR(type, method, at)                                             \
    "{\"type\":\"" type "\",\"delivery_method\":\"" method "\","             \
    "\"last_authenticated_at\":\"" at "\",\"created_at\":\"" at "\"}"

#define CLAIMS_B2B                                                           \
    "{\"sub\":\"member-test-1\",\"iss\":\"stytch.com/project-test-1\","     \
    "\"https://stytch.com/session\":{\"id\":\"member-session-test-1\","     \
    "\"started_at\":\"2026-11-28T19:31:40Z\","                               \
    "\"roles\":[\"stytch_member\",\"editor\",\"ghost\",\"editor\"],"         \
    "\"authentication_factors\":["                                           \
    FACTOR("trusted_auth_token", "trusted_token_exchange",                  \
           "2026-11-28T19:31:40Z") ","                                       \
    FACTOR("totp", "authenticator_app", "2026-11-28T20:00:00Z") ","          \
    FACTOR("trusted_auth_token", "trusted_token_exchange",                  \
           "2026-11-28T20:30:00Z") ","                                       \
    FACTOR("trusted_auth_token", "trusted_token_exchange",                  \
           "2026-11-28T20:10:00Z")                                           \
    "]},"                                                                    \
    "\"https://stytch.com/organization\":{\"organization_id\":\"" ORG "\"," \
    "\"slug\":\"example\"}}"

/* 2026-11-28T20:30:00Z */
#define T2030  1795897800LL


typedef struct {
    unsigned char                       blob[4096];
    size_t                              len;
    ngx_http_stytch_tat_rbac_session_t  s;
} session_t;


static ngx_http_stytch_tat_rbac_policy_t *
policy_of(const char *json)
{
    const char                         *reason;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    reason = "unset";

    if (ngx_http_stytch_tat_rbac_policy_parse((const unsigned char *) json,
                                              strlen(json), &p, &reason)
        != 0)
    {
        fail_msg("policy refused: %s", reason);
    }

    assert_null(reason);

    return p;
}


/* the reason a document is refused for, or NULL when it is taken */
static const char *
refusal(const char *json, size_t len)
{
    const char                         *reason;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    p = (ngx_http_stytch_tat_rbac_policy_t *) &reason;

    if (ngx_http_stytch_tat_rbac_policy_parse((const unsigned char *) json,
                                              len, &p, &reason)
        == 0)
    {
        assert_non_null(p);
        assert_null(reason);
        ngx_http_stytch_tat_rbac_policy_free(p);
        return NULL;
    }

    assert_null(p);
    assert_non_null(reason);

    return reason;
}


static void
session_of(const char *claims, session_t *ss)
{
    int          rc;
    const char  *reason;

    reason = NULL;

    rc = ngx_http_stytch_tat_rbac_claims_payload(claims, strlen(claims),
                                                 ss->blob, sizeof(ss->blob),
                                                 &ss->len, &reason);
    if (rc != NGX_HTTP_STYTCH_TAT_RBAC_OK) {
        fail_msg("claims refused (%d): %s", rc, reason);
    }

    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(ss->blob, ss->len,
                                                           &ss->s),
                     0);
}


/* a session of the given roles (a JSON array's inside) and organization */
static void
session_with(const char *roles, const char *org, session_t *ss)
{
    char  claims[2048];

    snprintf(claims, sizeof(claims),
             "{\"https://stytch.com/session\":{\"id\":\"s\",\"roles\":[%s]}"
             "%s%s%s}",
             roles,
             org ? ",\"https://stytch.com/organization\":"
                   "{\"organization_id\":\"" : "",
             org ? org : "", org ? "\",\"slug\":\"slug\"}" : "");

    session_of(claims, ss);
}


static int
ruling(ngx_http_stytch_tat_rbac_policy_t *p, session_t *ss, const char *org,
    const char *resource, const char *action, uint64_t *granted)
{
    ngx_http_stytch_tat_rbac_check_t  c;

    c.organization_id.data = org;
    c.organization_id.len = org ? strlen(org) : 0;
    c.resource_id.data = resource;
    c.resource_id.len = strlen(resource);
    c.action.data = action;
    c.action.len = strlen(action);

    return ngx_http_stytch_tat_rbac_decide(p, &ss->s, &c, granted);
}


static void
assert_str(const ngx_http_stytch_tat_field_t *f, const char *want)
{
    if (want == NULL) {
        assert_null(f->data);
        return;
    }

    assert_non_null(f->data);
    assert_int_equal(f->len, strlen(want));
    assert_memory_equal(f->data, want, f->len);
}


#define ALLOW    NGX_HTTP_STYTCH_TAT_RBAC_ALLOW
#define TENANCY  NGX_HTTP_STYTCH_TAT_RBAC_DENY_TENANCY
#define DENIED   NGX_HTTP_STYTCH_TAT_RBAC_DENY_PERMISSION


void
test_rbac_policy_parse(void **state)
{
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    p = policy_of(POLICY);

    /* both "editor" entries stay, as the SDKs' filter keeps both */
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_roles(p), 6);
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_permissions(p), 7);

    ngx_http_stytch_tat_rbac_policy_free(p);

    /* the least Stytch could send; what is not used is not read */
    p = policy_of("{\"policy\":{\"roles\":[]}}");
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_roles(p), 0);
    ngx_http_stytch_tat_rbac_policy_free(p);

    p = policy_of("{\"policy\":{\"roles\":[{\"role_id\":\"r\",\"permissions\":"
                  "[],\"description\":null,\"x\":{}}],\"resources\":[1],"
                  "\"scopes\":[{}]},\"extra\":true}");
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_roles(p), 1);
    ngx_http_stytch_tat_rbac_policy_free(p);

    ngx_http_stytch_tat_rbac_policy_free(NULL);
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_roles(NULL), 0);
}


void
test_rbac_policy_refused(void **state)
{
    size_t  i;

    static const char  *bad[] = {
        "",
        "not json",
        "[]",
        "\"policy\"",
        "{}",
        "{\"policy\":null}",
        "{\"policy\":[]}",
        "{\"policy\":{}}",
        "{\"policy\":{\"roles\":{}}}",
        "{\"policy\":{\"roles\":null}}",
        "{\"policy\":{\"roles\":[]},\"policy\":{\"roles\":[]}}",
        "{\"policy\":{\"roles\":[],\"resources\":{}}}",
        "{\"policy\":{\"roles\":[],\"scopes\":\"\"}}",
        "{\"policy\":{\"roles\":[\"admin\"]}}",
        "{\"policy\":{\"roles\":[null]}}",
        "{\"policy\":{\"roles\":[{\"permissions\":[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":7,\"permissions\":[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"\",\"permissions\":[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\\nb\",\"permissions\":[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\\u0000\",\"permissions\":"
            "[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\\u007f\",\"permissions\":"
            "[]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\"}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":null}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":{}}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":[1]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"actions\":[]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":[\"d\"],\"actions\":[]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"\",\"actions\":[]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"d\"}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"d\",\"actions\":\"*\"}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"d\",\"actions\":[\"read\",null]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"d\",\"actions\":[\"\"]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"permissions\":"
            "[{\"resource_id\":\"d\",\"actions\":[\"re\\tad\"]}]}]}}",
        "{\"policy\":{\"roles\":[{\"role_id\":\"a\",\"role_id\":\"b\","
            "\"permissions\":[]}]}}",
        "{\"policy\":{\"roles\":[]}} trailing",
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (refusal(bad[i], strlen(bad[i])) == NULL) {
            fail_msg("document %zu taken: %s", i, bad[i]);
        }
    }

    /* NULL and an empty length */
    assert_non_null(refusal("{\"policy\":{\"roles\":[]}}", 0));
}


/* a policy of n roles, or of one role with n permissions or n actions */
static char *
big_policy(size_t roles, size_t perms, size_t actions, size_t id_len)
{
    char    *buf, *p, id[512];
    size_t   i, size;

    size = 64 + roles * (id_len + 64) + perms * 64 + actions * 16;
    buf = malloc(size);
    assert_non_null(buf);

    memset(id, 'r', id_len);
    id[id_len] = '\0';

    p = buf + sprintf(buf, "{\"policy\":{\"roles\":[");

    for (i = 0; i < roles; i++) {
        p += sprintf(p, "%s{\"role_id\":\"%s%zu\",\"permissions\":[]}",
                     i ? "," : "", id, i);
    }

    if (perms || actions) {
        p += sprintf(p, "%s{\"role_id\":\"x\",\"permissions\":[",
                     roles ? "," : "");

        for (i = 0; i < perms; i++) {
            p += sprintf(p, "%s{\"resource_id\":\"d%zu\",\"actions\":[]}",
                         i ? "," : "", i);
        }

        if (actions) {
            p += sprintf(p, "%s{\"resource_id\":\"d\",\"actions\":[",
                         perms ? "," : "");

            for (i = 0; i < actions; i++) {
                p += sprintf(p, "%s\"a%zu\"", i ? "," : "", i);
            }

            p += sprintf(p, "]}");
        }

        p += sprintf(p, "]}");
    }

    sprintf(p, "]}}");

    assert_true(strlen(buf) < size);

    return buf;
}


void
test_rbac_policy_bounds(void **state)
{
    char                               *doc, *big;
    size_t                              len;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    /* 1024 roles are taken, 1025 are not (one more role "x") */
    doc = big_policy(1024, 0, 0, 1);
    p = policy_of(doc);
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_roles(p), 1024);
    ngx_http_stytch_tat_rbac_policy_free(p);
    free(doc);

    doc = big_policy(1024, 1, 0, 1);
    assert_string_equal(refusal(doc, strlen(doc)),
                        "policy with more than 1024 roles");
    free(doc);

    doc = big_policy(0, 1024, 0, 1);
    p = policy_of(doc);
    assert_int_equal(ngx_http_stytch_tat_rbac_policy_permissions(p), 1024);
    ngx_http_stytch_tat_rbac_policy_free(p);
    free(doc);

    doc = big_policy(0, 1024, 1, 1);
    assert_string_equal(refusal(doc, strlen(doc)),
                        "a role with more than 1024 permissions");
    free(doc);

    doc = big_policy(0, 0, 256, 1);
    ngx_http_stytch_tat_rbac_policy_free(policy_of(doc));
    free(doc);

    doc = big_policy(0, 0, 257, 1);
    assert_string_equal(refusal(doc, strlen(doc)),
                        "a permission with more than 256 actions");
    free(doc);

    /* ids of 255 bytes are taken, of 256 refused ("r..r" and the index) */
    doc = big_policy(1, 0, 0, 254);
    ngx_http_stytch_tat_rbac_policy_free(policy_of(doc));
    free(doc);

    doc = big_policy(1, 0, 0, 255);
    assert_non_null(refusal(doc, strlen(doc)));
    free(doc);

    /* 1 MB of document at most, whatever it holds */
    len = NGX_HTTP_STYTCH_TAT_RBAC_POLICY_MAX + 1;
    big = malloc(len);
    assert_non_null(big);
    memset(big, ' ', len);
    memcpy(big, "{\"policy\":{\"roles\":[]}}", 23);
    assert_string_equal(refusal(big, len), "policy document over 1 MB");
    assert_null(refusal(big, len - 1));
    free(big);
}


void
test_rbac_decide_consumer(void **state)
{
    uint64_t                            g;
    session_t                           ss;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    p = policy_of(POLICY);

    /* roles 0..3: stytch_member, editor, ghost (unknown), admin */
    session_with("\"stytch_member\",\"editor\",\"ghost\",\"admin\"", NULL,
                 &ss);

    assert_int_equal(ruling(p, &ss, NULL, "documents", "read", &g), ALLOW);
    assert_int_equal(g, 0x1 | 0x2 | 0x8);

    assert_int_equal(ruling(p, &ss, NULL, "documents", "write", &g), ALLOW);
    assert_int_equal(g, 0x2 | 0x8);

    /* "*" is every action, an empty one and the literal "*" included */
    assert_int_equal(ruling(p, &ss, NULL, "documents", "purge", &g), ALLOW);
    assert_int_equal(g, 0x8);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "", &g), ALLOW);
    assert_int_equal(g, 0x8);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "*", &g), ALLOW);
    assert_int_equal(g, 0x8);

    /* the second "editor" entry grants too */
    assert_int_equal(ruling(p, &ss, NULL, "reports", "export", &g), ALLOW);
    assert_int_equal(g, 0x2);

    /* resource ids match exactly: no wildcard, no prefix, no case folding */
    assert_int_equal(ruling(p, &ss, NULL, "images", "upload", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, NULL, "image", "upload", &g), DENIED);
    assert_int_equal(g, 0);
    assert_int_equal(ruling(p, &ss, NULL, "images/1", "upload", &g), DENIED);
    assert_int_equal(ruling(p, &ss, NULL, "Documents", "read", &g), DENIED);
    assert_int_equal(ruling(p, &ss, NULL, "anything", "audit", &g), DENIED);
    assert_int_equal(ruling(p, &ss, NULL, "*", "audit", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, NULL, "images", "*", &g), DENIED);
    assert_int_equal(ruling(p, &ss, NULL, "images", "Upload", &g), DENIED);

    /* a consumer check ignores the organization the session may have */
    session_with("\"editor\"", ORG2, &ss);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "write", &g), ALLOW);

    /* unknown roles, a role without permissions, no roles: nothing */
    session_with("\"ghost\",\"nobody\",\"blank\",\"EDITOR\"", NULL, &ss);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "read", &g), DENIED);
    assert_int_equal(g, 0);

    session_with("", NULL, &ss);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "read", &g), DENIED);

    /* granted may be NULL; no policy grants nothing */
    session_with("\"admin\"", NULL, &ss);
    assert_int_equal(ruling(p, &ss, NULL, "documents", "x", NULL), ALLOW);
    assert_int_equal(ruling(NULL, &ss, NULL, "documents", "x", &g), DENIED);
    assert_int_equal(g, 0);

    ngx_http_stytch_tat_rbac_policy_free(p);
}


void
test_rbac_decide_b2b(void **state)
{
    uint64_t                            g;
    session_t                           ss;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    p = policy_of(POLICY);

    session_with("\"stytch_member\",\"admin\"", ORG, &ss);

    assert_int_equal(ruling(p, &ss, ORG, "documents", "delete", &g), ALLOW);
    assert_int_equal(g, 0x2);
    assert_int_equal(ruling(p, &ss, ORG, "images", "upload", &g), DENIED);

    /* another organization: tenancy, before any permission is looked at */
    g = 42;
    assert_int_equal(ruling(p, &ss, ORG2, "documents", "read", &g), TENANCY);
    assert_int_equal(g, 0);
    assert_int_equal(ruling(NULL, &ss, ORG2, "documents", "read", &g),
                     TENANCY);

    /* by id, never the slug ("slug" here), exactly */
    assert_int_equal(ruling(p, &ss, "slug", "documents", "read", &g), TENANCY);
    assert_int_equal(ruling(p, &ss, ORG "x", "documents", "read", &g),
                     TENANCY);
    assert_int_equal(ruling(p, &ss, "", "documents", "read", &g), TENANCY);

    /* no organization claim: never in the check's organization */
    session_with("\"admin\"", NULL, &ss);
    assert_int_equal(ruling(p, &ss, ORG, "documents", "read", &g), TENANCY);
    assert_int_equal(ruling(p, &ss, "", "documents", "read", &g), TENANCY);

    /* an empty organization id equals an empty one, as in JavaScript */
    session_with("\"admin\"", "", &ss);
    assert_int_equal(ruling(p, &ss, "", "documents", "read", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, ORG, "documents", "read", &g), TENANCY);

    /* tenancy passes, no permission */
    session_with("\"ghost\"", ORG, &ss);
    assert_int_equal(ruling(p, &ss, ORG, "documents", "read", &g), DENIED);

    ngx_http_stytch_tat_rbac_policy_free(p);
}


void
test_rbac_duplicate_roles(void **state)
{
    uint64_t                            g;
    session_t                           ss;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    /* the same id three times, sorted among others: all three count */
    p = policy_of("{\"policy\":{\"roles\":["
                  "{\"role_id\":\"m\",\"permissions\":[{\"resource_id\":\"a\","
                  "\"actions\":[\"1\"]}]},"
                  "{\"role_id\":\"z\",\"permissions\":[]},"
                  "{\"role_id\":\"m\",\"permissions\":[{\"resource_id\":\"b\","
                  "\"actions\":[\"2\"]}]},"
                  "{\"role_id\":\"a\",\"permissions\":[]},"
                  "{\"role_id\":\"m\",\"permissions\":[{\"resource_id\":\"c\","
                  "\"actions\":[\"*\"]}]}]}}");

    session_with("\"m\"", NULL, &ss);

    assert_int_equal(ruling(p, &ss, NULL, "a", "1", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, NULL, "b", "2", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, NULL, "c", "3", &g), ALLOW);
    assert_int_equal(ruling(p, &ss, NULL, "a", "2", &g), DENIED);

    session_with("\"a\",\"z\",\"m0\",\"\"", NULL, &ss);
    assert_int_equal(ruling(p, &ss, NULL, "a", "1", &g), DENIED);

    ngx_http_stytch_tat_rbac_policy_free(p);
}


void
test_rbac_claims(void **state)
{
    session_t                                 ss;
    const ngx_http_stytch_tat_rbac_factor_t  *f;

    (void) state;

    session_of(CLAIMS_B2B, &ss);

    assert_str(&ss.s.organization_id, ORG);
    assert_str(&ss.s.organization_slug, "example");

    /* the JWT's order, duplicates once; unknown ones kept (the policy may
     * learn them) */
    assert_int_equal(ss.s.nroles, 3);
    assert_str(&ss.s.role[0], "stytch_member");
    assert_str(&ss.s.role[1], "editor");
    assert_str(&ss.s.role[2], "ghost");

    /* one per kind, with its latest time */
    assert_int_equal(ss.s.nfactors, 2);
    f = &ss.s.factor[0];
    assert_str(&f->type, "trusted_auth_token");
    assert_str(&f->delivery_method, "trusted_token_exchange");
    assert_int_equal(f->last_authenticated_at, T2030);
    f = &ss.s.factor[1];
    assert_str(&f->type, "totp");
    assert_str(&f->delivery_method, "authenticator_app");
    assert_int_equal(f->last_authenticated_at, T2030 - 1800);

    /* 4 + 1+55 + 1+7 + roles 14+7+6 + factors 8+19+23 + 8+5+18 */
    assert_int_equal(ss.len, 4 + 55 + 8 + 27 + 50 + 31);
}


void
test_rbac_claims_dropped(void **state)
{
    char           claims[4096], *p;
    size_t         i, len;
    session_t      ss;
    const char    *reason;
    unsigned char  buf[64];

    (void) state;

    /* roles that could never match a policy role are dropped */
    session_of("{\"https://stytch.com/session\":{\"roles\":[\"a\",1,null,"
               "\"\",\"b\\nc\",\"d\\u001f\",{\"role_id\":\"x\"},[\"y\"],"
               "\"e\\u007f\",\"caf\\u00e9\",\"a\"]}}", &ss);
    assert_int_equal(ss.s.nroles, 2);
    assert_str(&ss.s.role[0], "a");
    assert_str(&ss.s.role[1], "caf\xc3\xa9");
    assert_null(ss.s.organization_id.data);
    assert_null(ss.s.organization_slug.data);
    assert_int_equal(ss.s.nfactors, 0);

    /* a NUL inside a string (jansson's text reader refuses it, a json_t
     * built in code may hold it) is a control character */
    {
        json_t  *c, *sess, *roles, *factors, *f;

        c = json_object();
        sess = json_object();
        roles = json_array();
        factors = json_array();
        f = json_object();
        json_array_append_new(roles, json_stringn("d\0", 2));
        json_array_append_new(roles, json_stringn("ok", 2));
        json_object_set_new(f, "type", json_string("otp"));
        json_object_set_new(f, "last_authenticated_at",
                            json_stringn("2026-11-28T20:30:00Z\0x", 22));
        json_array_append_new(factors, f);
        json_object_set_new(sess, "roles", roles);
        json_object_set_new(sess, "authentication_factors", factors);
        json_object_set_new(c, "https://stytch.com/session", sess);

        assert_int_equal(ngx_http_stytch_tat_rbac_claims_json(c, ss.blob,
                             sizeof(ss.blob), &ss.len, &reason),
                         NGX_HTTP_STYTCH_TAT_RBAC_OK);
        json_decref(c);

        assert_int_equal(ngx_http_stytch_tat_rbac_session_view(ss.blob,
                             ss.len, &ss.s), 0);
        assert_int_equal(ss.s.nroles, 1);
        assert_str(&ss.s.role[0], "ok");
        assert_int_equal(ss.s.nfactors, 1);
        assert_int_equal(ss.s.factor[0].last_authenticated_at, -1);
    }

    /* a role of 255 bytes is kept, of 256 dropped */
    p = claims + sprintf(claims, "{\"https://stytch.com/session\":{\"roles\""
                         ":[\"");
    memset(p, 'r', 255);
    p += 255;
    p += sprintf(p, "\",\"s");
    memset(p, 's', 255);
    p += 255;
    sprintf(p, "\"]}}");
    session_of(claims, &ss);
    assert_int_equal(ss.s.nroles, 1);
    assert_int_equal(ss.s.role[0].len, 255);

    /* no roles, null roles: none */
    session_of("{\"https://stytch.com/session\":{}}", &ss);
    assert_int_equal(ss.s.nroles, 0);
    assert_int_equal(ss.len, 4);
    session_of("{\"https://stytch.com/session\":{\"roles\":null}}", &ss);
    assert_int_equal(ss.s.nroles, 0);

    /* 64 distinct roles (and duplicates) are taken */
    p = claims + sprintf(claims, "{\"https://stytch.com/session\":{"
                         "\"roles\":[");
    for (i = 0; i < 64; i++) {
        p += sprintf(p, "\"role%zu\",\"role%zu\",", i, i);
    }
    sprintf(p, "\"role0\"]}}");
    session_of(claims, &ss);
    assert_int_equal(ss.s.nroles, 64);
    assert_str(&ss.s.role[63], "role63");

    /* factors without a usable type or method are dropped, times unknown */
    session_of("{\"https://stytch.com/session\":{\"authentication_factors\":["
               "1,{},{\"type\":7},{\"type\":\"\"},{\"type\":\"a\\nb\"},"
               "{\"type\":\"otp\",\"delivery_method\":\"s\\u0001ms\"},"
               "{\"type\":\"otp\",\"delivery_method\":5},"
               "{\"type\":\"otp\",\"delivery_method\":\"sms\","
               "\"last_authenticated_at\":\"yesterday\"},"
               "{\"type\":\"otp\",\"delivery_method\":null,"
               "\"last_authenticated_at\":\"2026-11-28T20:30:00\"},"
               "{\"type\":\"totp\",\"last_authenticated_at\":"
               "\"2026-11-28T20:30:00.5Z\"},"
               "{\"type\":\"totp\",\"delivery_method\":\"\","
               "\"last_authenticated_at\":1795897800}]},"
               "\"https://stytch.com/organization\":{\"organization_id\":7,"
               "\"slug\":\"a\\tb\"}}", &ss);
    assert_int_equal(ss.s.nfactors, 3);
    assert_str(&ss.s.factor[0].type, "otp");
    assert_str(&ss.s.factor[0].delivery_method, "sms");
    assert_int_equal(ss.s.factor[0].last_authenticated_at, -1);
    assert_str(&ss.s.factor[1].type, "otp");
    assert_int_equal(ss.s.factor[1].delivery_method.len, 0);
    assert_int_equal(ss.s.factor[1].last_authenticated_at, -1);
    assert_str(&ss.s.factor[2].type, "totp");
    assert_int_equal(ss.s.factor[2].last_authenticated_at, T2030);
    assert_null(ss.s.organization_id.data);
    assert_null(ss.s.organization_slug.data);

    /* more than 16 kinds of factor: the first 16 */
    p = claims + sprintf(claims, "{\"https://stytch.com/session\":{"
                         "\"authentication_factors\":[");
    for (i = 0; i < 20; i++) {
        p += sprintf(p, "%s{\"type\":\"t%zu\"}", i ? "," : "", i);
    }
    sprintf(p, "]}}");
    session_of(claims, &ss);
    assert_int_equal(ss.s.nfactors, 16);
    assert_str(&ss.s.factor[15].type, "t15");

    /* an organization claim that is not an object has no id */
    session_of("{\"https://stytch.com/session\":{},"
               "\"https://stytch.com/organization\":\"" ORG "\"}", &ss);
    assert_null(ss.s.organization_id.data);

    /* an empty one is one */
    session_of("{\"https://stytch.com/session\":{},"
               "\"https://stytch.com/organization\":{\"organization_id\":\"\","
               "\"slug\":\"\"}}", &ss);
    assert_non_null(ss.s.organization_id.data);
    assert_int_equal(ss.s.organization_id.len, 0);
    assert_non_null(ss.s.organization_slug.data);

    /* a buffer too small says how much is needed, and nothing is lost */
    reason = NULL;
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(CLAIMS_B2B,
                         strlen(CLAIMS_B2B), buf, sizeof(buf), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL);
    assert_int_equal(len, 175);
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(CLAIMS_B2B,
                         strlen(CLAIMS_B2B), NULL, 0, &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL);
    assert_int_equal(len, 175);
}


void
test_rbac_claims_malformed(void **state)
{
    char           *claims, *p;
    size_t          i, len;
    const char     *reason;
    unsigned char   buf[256];

    static const char  *bad[] = {
        "",
        "[]",
        "null",
        "{\"sub\":\"x\"}",
        "{\"https://stytch.com/session\":null}",
        "{\"https://stytch.com/session\":[]}",
        "{\"https://stytch.com/session\":{\"roles\":\"admin\"}}",
        "{\"https://stytch.com/session\":{\"roles\":{\"0\":\"admin\"}}}",
        "{\"https://stytch.com/session\":{\"roles\":true}}",
        "{\"https://stytch.com/session\":{},\"https://stytch.com/session\":{}}",
        "{\"https://stytch.com/session\":{} ",
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        reason = NULL;

        if (ngx_http_stytch_tat_rbac_claims_payload(bad[i], strlen(bad[i]),
                                                    buf, sizeof(buf), &len,
                                                    &reason)
            != NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED)
        {
            fail_msg("claims %zu taken: %s", i, bad[i]);
        }

        assert_non_null(reason);
    }

    /* 65 distinct roles */
    claims = malloc(4096);
    assert_non_null(claims);
    p = claims + sprintf(claims, "{\"https://stytch.com/session\":{"
                         "\"roles\":[");
    for (i = 0; i < 65; i++) {
        p += sprintf(p, "%s\"role%zu\"", i ? "," : "", i);
    }
    sprintf(p, "]}}");

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(claims,
                         strlen(claims), buf, sizeof(buf), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
    assert_string_equal(reason, "a session with more than 64 roles");

    free(claims);

    /* over 16 KB */
    claims = malloc(NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX + 1);
    assert_non_null(claims);
    memset(claims, ' ', NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX + 1);
    memcpy(claims, "{\"https://stytch.com/session\":{}}", 33);

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(claims,
                         NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX, buf,
                         sizeof(buf), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_OK);
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(claims,
                         NGX_HTTP_STYTCH_TAT_RBAC_CLAIMS_MAX + 1, buf,
                         sizeof(buf), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);

    free(claims);

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_json(NULL, buf,
                         sizeof(buf), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
}


/* base64url without padding, for the payload of a test JWT */
static char *
jwt_of(const char *claims)
{
    char    *jwt, *b64;
    size_t   i, n, len;

    len = strlen(claims);
    b64 = malloc(len * 2 + 8);
    assert_non_null(b64);

    n = EVP_EncodeBlock((unsigned char *) b64, (const unsigned char *) claims,
                        (int) len);

    while (n && b64[n - 1] == '=') {
        n--;
    }

    for (i = 0; i < n; i++) {
        b64[i] = (b64[i] == '+') ? '-' : (b64[i] == '/') ? '_' : b64[i];
    }

    b64[n] = '\0';

    jwt = malloc(n + 64);
    assert_non_null(jwt);
    sprintf(jwt, "eyJhbGciOiJSUzI1NiJ9.%s.c2ln", b64);

    free(b64);

    return jwt;
}


void
test_rbac_claims_forms(void **state)
{
    char           *jwt, *dot, bad[256];
    size_t          len1, len2, len3, i;
    json_t         *claims;
    const char     *reason;
    unsigned char   b1[512], b2[512], b3[512];

    static const char  *broken[] = {
        "", "abc", "a.", "a..c", "a.e.c", "a.bm90IGpzb24.c", "a.e30.c"
    };

    /* where the payload goes wrong: at its start, its end, a character */
    static const char  *mutation[] = { "=", "+", "/", " ", "\n", "." };

    (void) state;

    /* the three forms give the same blob */

    claims = json_loads(CLAIMS_B2B, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(claims);
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_json(claims, b1,
                         sizeof(b1), &len1, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_OK);
    json_decref(claims);

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_payload(CLAIMS_B2B,
                         strlen(CLAIMS_B2B), b2, sizeof(b2), &len2, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_OK);

    jwt = jwt_of(CLAIMS_B2B);
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt), b3,
                         sizeof(b3), &len3, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_OK);
    free(jwt);

    assert_int_equal(len1, len2);
    assert_int_equal(len1, len3);
    assert_memory_equal(b1, b2, len1);
    assert_memory_equal(b1, b3, len1);

    /* payloads of each length modulo 3 decode */
    for (i = 0; i < 3; i++) {
        char  c[64];

        sprintf(c, "{\"https://stytch.com/session\":{}%.*s}", (int) i, "   ");
        jwt = jwt_of(c);
        assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt),
                             b3, sizeof(b3), &len3, &reason),
                         NGX_HTTP_STYTCH_TAT_RBAC_OK);
        assert_int_equal(len3, 4);

        /* what is not strict base64url is refused, not skipped */

        assert_true(strlen(jwt) + 2 < sizeof(bad));

        for (len1 = 0; len1 < sizeof(mutation) / sizeof(mutation[0]); len1++) {
            dot = strchr(jwt, '.');
            snprintf(bad, sizeof(bad), "%.*s%s%s", (int) (dot + 1 - jwt), jwt,
                    mutation[len1], dot + 1);
            reason = NULL;
            assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(bad,
                                 strlen(bad), b3, sizeof(b3), &len3, &reason),
                             NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
            assert_non_null(reason);

            dot = strchr(dot + 1, '.');
            snprintf(bad, sizeof(bad), "%.*s%s%s", (int) (dot - jwt), jwt,
                    mutation[len1], dot);
            reason = NULL;
            assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(bad,
                                 strlen(bad), b3, sizeof(b3), &len3, &reason),
                             NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
            assert_non_null(reason);
        }

        free(jwt);
    }

    for (i = 0; i < sizeof(broken) / sizeof(broken[0]); i++) {
        reason = NULL;

        if (ngx_http_stytch_tat_rbac_claims_jwt(broken[i], strlen(broken[i]),
                                                b3, sizeof(b3), &len3, &reason)
            != NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED)
        {
            fail_msg("JWT %zu taken: %s", i, broken[i]);
        }

        assert_non_null(reason);
    }

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(NULL, 0, b3,
                         sizeof(b3), &len3, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
}



/*
 * The JWT form decodes the payload as strictly as the verifier: its last
 * character's unused bits zero, the url alphabet only.
 */
void
test_rbac_claims_jwt_strict(void **state)
{
    char           *jwt, *dot, *last;
    size_t          i, len;
    const char     *reason;
    unsigned char   blob[NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX];

    (void) state;

    /* payloads of 2 and 3 characters past a group: 4 and 2 unused bits */

    for (i = 1; i <= 2; i++) {
        char  c[64];

        sprintf(c, "{\"https://stytch.com/session\":{}%.*s}", (int) i, "  ");
        jwt = jwt_of(c);

        dot = strchr(jwt, '.');
        last = strchr(dot + 1, '.') - 1;
        assert_int_not_equal((last - dot) % 4, 0);

        assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt),
                             blob, sizeof(blob), &len, &reason),
                         NGX_HTTP_STYTCH_TAT_RBAC_OK);

        /* the same bytes, but 1 in the lowest unused bit */
        (*last)++;
        reason = NULL;
        assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt),
                             blob, sizeof(blob), &len, &reason),
                         NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
        assert_string_equal(reason, "a JWT payload that is not base64url");

        free(jwt);
    }

    /* base64's own alphabet: {"a":"~~~"} is e30 with "-" in base64url */
    jwt = jwt_of("{\"https://stytch.com/session\":{},\"a\":\"~~~\"}");
    dot = strchr(jwt, '-');
    assert_non_null(dot);

    assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt),
                         blob, sizeof(blob), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_OK);

    *dot = '+';
    reason = NULL;
    assert_int_equal(ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt),
                         blob, sizeof(blob), &len, &reason),
                     NGX_HTTP_STYTCH_TAT_RBAC_MALFORMED);
    assert_non_null(reason);

    free(jwt);
}

void
test_rbac_session_view(void **state)
{
    size_t                              i;
    session_t                           ss;
    unsigned char                       blob[512];
    ngx_http_stytch_tat_rbac_session_t  s;

    (void) state;

    session_of(CLAIMS_B2B, &ss);

    /* position-independent: a copy elsewhere reads the same */
    memcpy(blob, ss.blob, ss.len);
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, ss.len, &s),
                     0);
    assert_int_equal(s.nroles, ss.s.nroles);
    assert_memory_equal(s.role[1].data, "editor", 6);
    assert_true(s.role[1].data >= (char *) blob
                && s.role[1].data < (char *) blob + ss.len);
    assert_int_equal(s.factor[0].last_authenticated_at, T2030);

    /* every truncation, and a byte more, are refused */
    for (i = 0; i < ss.len; i++) {
        assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, i, &s),
                         -1);
        assert_int_equal(s.nroles, 0);
    }

    blob[ss.len] = 0;
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, ss.len + 1,
                                                           &s),
                     -1);

    /* another version, unknown flags, counts beyond the bounds */
    memcpy(blob, ss.blob, ss.len);
    blob[0] = 2;
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, ss.len, &s),
                     -1);
    memcpy(blob, ss.blob, ss.len);
    blob[1] |= 0x04;
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, ss.len, &s),
                     -1);
    memcpy(blob, "\x01\x00\x41\x00", 4);
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, 4, &s), -1);
    memcpy(blob, "\x01\x00\x00\x11", 4);
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, 4, &s), -1);
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(NULL, 4, &s), -1);

    /* negative times survive the trip (unknown is -1) */
    memcpy(blob, "\x01\x00\x00\x01" "\xff\xff\xff\xff\xff\xff\xff\xff"
           "\x01t\x00", 15);
    assert_int_equal(ngx_http_stytch_tat_rbac_session_view(blob, 15, &s), 0);
    assert_int_equal(s.factor[0].last_authenticated_at, -1);
    assert_non_null(s.factor[0].delivery_method.data);
    assert_int_equal(s.factor[0].delivery_method.len, 0);
}


void
test_rbac_blob_size(void **state)
{
    session_t  ss;

    (void) state;

    /*
     * The bound: 256 bytes for a session with 8 roles, as Stytch
     * would issue it (a B2B organization, a factor or two).
     */

    session_of("{\"https://stytch.com/session\":{\"id\":\"member-session-live-"
               "0000\",\"roles\":[\"stytch_member\",\"stytch_admin\","
               "\"editor\",\"reader\",\"writer\",\"billing-admin\","
               "\"support\",\"auditor\"],\"authentication_factors\":["
               FACTOR("trusted_auth_token", "trusted_token_exchange",
                      "2026-11-28T19:31:40Z") ","
               FACTOR("email_otp", "email", "2026-11-28T19:31:40Z")
               "]},\"https://stytch.com/organization\":{\"organization_id\":"
               "\"organization-live-00000000-0000-0000-0000-000000000000\","
               "\"slug\":\"example-corp\"}}", &ss);

    assert_int_equal(ss.s.nroles, 8);
    assert_true(ss.len <= 256);

    assert_true(NGX_HTTP_STYTCH_TAT_RBAC_BLOB_MAX >= 4 + 2 * 256 + 64 * 256
                                                     + 16 * (8 + 2 * 256));
}


void
test_rbac_factor_check(void **state)
{
    session_t                              ss;
    ngx_http_stytch_tat_rbac_factor_req_t  r;

    (void) state;

    session_of(CLAIMS_B2B, &ss);

    memset(&r, 0, sizeof(r));

    r.type.data = "totp";
    r.type.len = 4;
    r.max_age = -1;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));

    r.delivery_method.data = "authenticator_app";
    r.delivery_method.len = 17;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));

    r.delivery_method.data = "sms";
    r.delivery_method.len = 3;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));

    /* totp at 20:00: fresh for 1800 s at 20:30, not for 1799 */
    r.delivery_method.data = NULL;
    r.delivery_method.len = 0;
    r.max_age = 1800;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));
    r.max_age = 1799;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030 - 1));

    /* a time ahead of now is fresh; max_age 0: this very second */
    r.max_age = 0;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r,
                                                      T2030 - 1800));
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r,
                                                      T2030 - 3600));
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r,
                                                       T2030 - 1799));

    /* the latest trusted_auth_token (20:30) of the three counts */
    r.type.data = "trusted_auth_token";
    r.type.len = 18;
    r.max_age = 60;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030 + 60));
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r,
                                                       T2030 + 61));

    /* no overflow at the ends of the clock */
    r.max_age = INT64_MAX;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, INT64_MAX));
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, INT64_MIN));
    r.max_age = 0;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, INT64_MAX));

    /* types match exactly */
    r.type.data = "trusted_auth";
    r.type.len = 12;
    r.max_age = -1;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));
    r.type.data = "TOTP";
    r.type.len = 4;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));

    /* an unknown time satisfies a type, never an age */
    session_of("{\"https://stytch.com/session\":{\"authentication_factors\":"
               "[{\"type\":\"sso\",\"delivery_method\":\"sso_saml\"}]}}", &ss);
    r.type.data = "sso";
    r.type.len = 3;
    r.max_age = -1;
    assert_true(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));
    r.max_age = 1LL << 40;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));

    /* no factors */
    session_of("{\"https://stytch.com/session\":{}}", &ss);
    r.max_age = -1;
    assert_false(ngx_http_stytch_tat_rbac_factor_check(&ss.s, &r, T2030));
}


void
test_rbac_join(void **state)
{
    char                                buf[128];
    size_t                              n;
    uint64_t                            g;
    session_t                           ss;
    ngx_http_stytch_tat_rbac_policy_t  *p;

    (void) state;

    session_of(CLAIMS_B2B, &ss);

    n = ngx_http_stytch_tat_rbac_roles_join(&ss.s, UINT64_MAX, NULL, 0);
    assert_int_equal(n, strlen("stytch_member,editor,ghost"));
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(ngx_http_stytch_tat_rbac_roles_join(&ss.s, UINT64_MAX,
                                                         buf, n),
                     n);
    assert_memory_equal(buf, "stytch_member,editor,ghost", n);
    assert_int_equal(buf[n], 'x');

    /* a buffer too small is not overrun */
    memset(buf, 'x', sizeof(buf));
    assert_int_equal(ngx_http_stytch_tat_rbac_roles_join(&ss.s, UINT64_MAX,
                                                         buf, 16),
                     n);
    assert_int_equal(buf[16], 'x');

    p = policy_of(POLICY);
    assert_int_equal(ruling(p, &ss, ORG, "documents", "read", &g), ALLOW);
    n = ngx_http_stytch_tat_rbac_roles_join(&ss.s, g, buf, sizeof(buf));
    assert_int_equal(n, strlen("stytch_member,editor"));
    assert_memory_equal(buf, "stytch_member,editor", n);
    ngx_http_stytch_tat_rbac_policy_free(p);

    assert_int_equal(ngx_http_stytch_tat_rbac_roles_join(&ss.s, 0, buf,
                                                         sizeof(buf)),
                     0);

    n = ngx_http_stytch_tat_rbac_factor_types_join(&ss.s, buf, sizeof(buf));
    assert_int_equal(n, strlen("trusted_auth_token,totp"));
    assert_memory_equal(buf, "trusted_auth_token,totp", n);

    /* a type with two delivery methods is named once */
    session_of("{\"https://stytch.com/session\":{\"authentication_factors\":["
               "{\"type\":\"otp\",\"delivery_method\":\"sms\"},"
               "{\"type\":\"otp\",\"delivery_method\":\"email\"},"
               "{\"type\":\"sso\"}]}}", &ss);
    assert_int_equal(ss.s.nfactors, 3);
    n = ngx_http_stytch_tat_rbac_factor_types_join(&ss.s, buf, sizeof(buf));
    assert_int_equal(n, 7);
    assert_memory_equal(buf, "otp,sso", 7);

    session_of("{\"https://stytch.com/session\":{}}", &ss);
    assert_int_equal(ngx_http_stytch_tat_rbac_factor_types_join(&ss.s, buf,
                                                                sizeof(buf)),
                     0);
}


void
test_rbac_verdict_names(void **state)
{
    (void) state;

    assert_string_equal(ngx_http_stytch_tat_rbac_verdict_name(ALLOW), "allow");
    assert_string_equal(ngx_http_stytch_tat_rbac_verdict_name(TENANCY),
                        "tenancy_mismatch");
    assert_string_equal(ngx_http_stytch_tat_rbac_verdict_name(DENIED),
                        "permission_denied");
    assert_string_equal(ngx_http_stytch_tat_rbac_verdict_name(3), "unknown");
    assert_string_equal(ngx_http_stytch_tat_rbac_verdict_name(-1), "unknown");
}
