/*
 * The module's side of the RBAC differential test: reads what
 * rbac-oracle.mjs wrote (one JSON object a line: {"case": {"id", "kind",
 * "policy", "check"}, "jwt", ...}) and decides each case with the
 * module's own code, as the nginx side will:
 *
 *   the policy  {"policy": case.policy} through
 *               ngx_http_stytch_tat_rbac_policy_parse();
 *   the session the very JWT the SDK was given, through
 *               ngx_http_stytch_tat_rbac_claims_jwt(), into a blob, then
 *               ngx_http_stytch_tat_rbac_session_view() of a copy of it;
 *   the check   organization_id for B2B only, as the SDKs use it.
 *
 * Prints one line per case: {"id", "verdict", "granted"} with verdict
 * "allow", "tenancy_mismatch", "permission_denied", or "error" with
 * "reason" when the policy or the claims are refused (every check of the
 * session is then denied).
 *
 *   cc -Isrc t/tools/rbac-cases.c src/ngx_http_stytch_tat_rbac.c \
 *       src/ngx_http_stytch_tat_response.c src/ngx_http_stytch_tat_jose.c \
 *       -ljansson -lcrypto
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "ngx_http_stytch_tat_rbac.h"


static void
field(ngx_http_stytch_tat_field_t *f, json_t *v)
{
    f->data = json_string_value(v);
    f->len = (f->data == NULL) ? 0 : json_string_length(v);
}


static void
print(json_t *out)
{
    char  *s;

    s = json_dumps(out, JSON_COMPACT | JSON_ENSURE_ASCII);
    if (s == NULL) {
        exit(2);
    }

    printf("%s\n", s);
    free(s);
    json_decref(out);
}


static void
decide_case(json_t *line)
{
    int                                  rc, v;
    char                                *doc, names[4096];
    json_t                              *c, *wrap, *check, *out;
    size_t                               len;
    uint64_t                             granted;
    const char                          *jwt, *reason;
    unsigned char                        buf[512], *blob, *copy;
    ngx_http_stytch_tat_rbac_check_t     chk;
    ngx_http_stytch_tat_rbac_policy_t   *policy;
    ngx_http_stytch_tat_rbac_session_t   s;

    c = json_object_get(line, "case");
    jwt = json_string_value(json_object_get(line, "jwt"));
    check = json_object_get(c, "check");

    out = json_object();
    json_object_set(out, "id", json_object_get(c, "id"));

    if (jwt == NULL || !json_is_object(check)) {
        fprintf(stderr, "rbac-cases: a line without a case or a jwt\n");
        exit(2);
    }

    /* the policy as Stytch's answer carries it */

    wrap = json_pack("{sO}", "policy", json_object_get(c, "policy"));
    doc = json_dumps(wrap, JSON_COMPACT);
    json_decref(wrap);

    if (doc == NULL) {
        exit(2);
    }

    rc = ngx_http_stytch_tat_rbac_policy_parse((unsigned char *) doc,
                                               strlen(doc), &policy, &reason);
    free(doc);

    if (rc != 0) {
        json_object_set_new(out, "verdict", json_string("error"));
        json_object_set_new(out, "reason", json_string(reason));
        print(out);
        return;
    }

    /* the claims, as the zone would keep them: a small buffer first */

    blob = buf;

    rc = ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt), buf,
                                             sizeof(buf), &len, &reason);

    if (rc == NGX_HTTP_STYTCH_TAT_RBAC_TOO_SMALL) {
        blob = malloc(len);
        if (blob == NULL) {
            exit(2);
        }

        rc = ngx_http_stytch_tat_rbac_claims_jwt(jwt, strlen(jwt), blob, len,
                                                 &len, &reason);
    }

    if (rc != NGX_HTTP_STYTCH_TAT_RBAC_OK) {
        json_object_set_new(out, "verdict", json_string("error"));
        json_object_set_new(out, "reason", json_string(reason));
        goto done;
    }

    /* another place in memory, as a copy out of the zone would be */

    copy = malloc(len);
    if (copy == NULL) {
        exit(2);
    }

    memcpy(copy, blob, len);

    if (ngx_http_stytch_tat_rbac_session_view(copy, len, &s) != 0) {
        fprintf(stderr, "rbac-cases: the reader wrote a blob the view "
                "refuses\n");
        exit(2);
    }

    memset(&chk, 0, sizeof(chk));

    if (strcmp(json_string_value(json_object_get(c, "kind")), "b2b") == 0) {
        field(&chk.organization_id,
              json_object_get(check, "organization_id"));

        if (chk.organization_id.data == NULL) {
            fprintf(stderr, "rbac-cases: a B2B check without an "
                    "organization_id\n");
            exit(2);
        }
    }

    field(&chk.resource_id, json_object_get(check, "resource_id"));
    field(&chk.action, json_object_get(check, "action"));

    v = ngx_http_stytch_tat_rbac_decide(policy, &s, &chk, &granted);

    len = ngx_http_stytch_tat_rbac_roles_join(&s, granted, names,
                                              sizeof(names));
    if (len > sizeof(names)) {
        len = 0;
    }

    json_object_set_new(out, "verdict",
                        json_string(ngx_http_stytch_tat_rbac_verdict_name(v)));
    json_object_set_new(out, "granted", json_stringn(names, len));

    free(copy);

done:

    if (blob != buf) {
        free(blob);
    }

    ngx_http_stytch_tat_rbac_policy_free(policy);
    print(out);
}


int
main(void)
{
    char          *line;
    size_t         size;
    ssize_t        n;
    json_t        *j;
    json_error_t   err;

    line = NULL;
    size = 0;

    while ((n = getline(&line, &size, stdin)) > 0) {
        if (n == 1) {
            continue;
        }

        j = json_loadb(line, (size_t) n, 0, &err);
        if (!json_is_object(j)) {
            fprintf(stderr, "rbac-cases: not JSON: %s\n", err.text);
            return 2;
        }

        decide_case(j);
        json_decref(j);
    }

    free(line);

    return 0;
}
