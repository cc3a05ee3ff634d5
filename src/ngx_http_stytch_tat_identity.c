/*
 * The identity: the directives that say where it comes from (its email,
 * the claims and the organization minted with it, the addresses it is
 * accepted from), checked when the configuration loads, and its values
 * read per request, once, into the request's context, for the token
 * minted (ngx_http_stytch_tat_mint.c) and the cache key (_key.c).
 */


#include "ngx_http_stytch_tat.h"

/* the identity's values, in the order of lcf->reads */
#define NGX_HTTP_STYTCH_TAT_READ_EMAIL    0
#define NGX_HTTP_STYTCH_TAT_READ_ISS      1
#define NGX_HTTP_STYTCH_TAT_READ_AUD      2
#define NGX_HTTP_STYTCH_TAT_READ_SUB      3
#define NGX_HTTP_STYTCH_TAT_READ_JTI      4
#define NGX_HTTP_STYTCH_TAT_READ_CLAIMS   5
/* every stytch_tat_claim, and the organization's claim=NAME after them */
#define NGX_HTTP_STYTCH_TAT_READS                                             \
    (NGX_HTTP_STYTCH_TAT_READ_CLAIMS + NGX_HTTP_STYTCH_TAT_CLAIMS_MAX + 1)

#define NGX_HTTP_STYTCH_TAT_STYTCH_NAMESPACE  "https://stytch.com/"


/* the module sets these itself: a client's copy is never believed */
static const char  *ngx_http_stytch_tat_reserved_claims[] = {
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti", "email", NULL
};


/* Stytch refuses these in session_custom_claims, and its own namespace */
static const char  *ngx_http_stytch_tat_reserved_session_claims[] = {
    "iss", "sub", "aud", "exp", "nbf", "iat", "jti",
    NGX_HTTP_STYTCH_TAT_BINDING_CLAIM, NULL
};


static char *ngx_http_stytch_tat_identity_claim_name(ngx_conf_t *cf,
    ngx_str_t *name, ngx_uint_t session);
static ngx_uint_t ngx_http_stytch_tat_identity_values(
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_complex_value_t **cv);
static ngx_uint_t ngx_http_stytch_tat_identity_one_variable(ngx_str_t *text,
    ngx_str_t *name);
static ngx_int_t ngx_http_stytch_tat_identity_claims(
    ngx_http_request_t *r, ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_stytch_tat_ctx_t *ctx);
static ngx_int_t ngx_http_stytch_tat_identity_read(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_http_stytch_tat_read_t *rd,
    ngx_str_t *done, ngx_str_t *value);


char *
ngx_http_stytch_tat_identity_email(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    char  *rv;

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    lcf->email_file = cf->conf_file->file.name;
    lcf->email_line = cf->conf_file->line;

    return NGX_CONF_OK;
}


/* stytch_tat_claim and stytch_tat_session_claim: NAME VALUE [list=SEP] */

char *
ngx_http_stytch_tat_identity_claim(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t                          *value;
    ngx_uint_t                          i;
    ngx_array_t                       **a;
    ngx_http_stytch_tat_claim_conf_t   *claim, *claims;
    ngx_http_compile_complex_value_t    ccv;

    value = cf->args->elts;
    a = (ngx_array_t **) ((char *) conf + cmd->offset);

    if (ngx_http_stytch_tat_identity_claim_name(cf, &value[1],
                              cmd->offset
                              == offsetof(ngx_http_stytch_tat_loc_conf_t,
                                          session_claims))
        != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (*a == NGX_CONF_UNSET_PTR) {
        *a = ngx_array_create(cf->pool, 4,
                              sizeof(ngx_http_stytch_tat_claim_conf_t));
        if (*a == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    claims = (*a)->elts;

    for (i = 0; i < (*a)->nelts; i++) {
        if (ngx_strcmp(claims[i].name.data, value[1].data) == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate claim \"%V\"", &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    if ((*a)->nelts == NGX_HTTP_STYTCH_TAT_CLAIMS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "too many claims, at most %d",
                           NGX_HTTP_STYTCH_TAT_CLAIMS_MAX);
        return NGX_CONF_ERROR;
    }

    claim = ngx_array_push(*a);
    if (claim == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(claim, sizeof(ngx_http_stytch_tat_claim_conf_t));

    /* configuration arguments are NUL-terminated, as jansson needs */
    claim->name = value[1];

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[2];
    ccv.complex_value = &claim->value;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 4) {
        if (value[3].len != sizeof("list=X") - 1
            || ngx_strncmp(value[3].data, "list=", 5) != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\", expected "
                               "\"list=\" and one separator character",
                               &value[3]);
            return NGX_CONF_ERROR;
        }

        claim->sep = value[3].data[5];
    }

    return NGX_CONF_OK;
}


/*
 * A claim's name: printable ASCII, short, none the module sets itself; a
 * session claim's: none Stytch reserves, nothing in Stytch's namespace.
 */

static char *
ngx_http_stytch_tat_identity_claim_name(ngx_conf_t *cf, ngx_str_t *name,
    ngx_uint_t session)
{
    u_char        *p;
    size_t         n;
    const char   **reserved;

    if (name->len == 0 || name->len > 64) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "claim name must be 1 to 64 characters");
        return NGX_CONF_ERROR;
    }

    for (p = name->data; p < name->data + name->len; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "claim name \"%V\" must be printable ASCII "
                               "without quotes or backslashes", name);
            return NGX_CONF_ERROR;
        }
    }

    reserved = session ? ngx_http_stytch_tat_reserved_session_claims
                       : ngx_http_stytch_tat_reserved_claims;

    for ( /* void */ ; *reserved; reserved++) {
        if (name->len != ngx_strlen(*reserved)
            || ngx_strncmp(name->data, *reserved, name->len) != 0)
        {
            continue;
        }

        if (session) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "session claim \"%V\" is reserved: Stytch "
                               "refuses it", name);

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "claim \"%V\" is set by the module itself; "
                               "use the stytch_tat_issuer, _audience, "
                               "_subject, _email or _token_id directives",
                               name);
        }

        return NGX_CONF_ERROR;
    }

    n = sizeof(NGX_HTTP_STYTCH_TAT_STYTCH_NAMESPACE) - 1;

    if (session && name->len >= n
        && ngx_strncasecmp(name->data,
                           (u_char *) NGX_HTTP_STYTCH_TAT_STYTCH_NAMESPACE, n)
           == 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "session claim \"%V\" is in Stytch's namespace "
                           "\"" NGX_HTTP_STYTCH_TAT_STYTCH_NAMESPACE "\": "
                           "Stytch refuses it", name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* stytch_tat_organization_id VALUE [claim=NAME] */

char *
ngx_http_stytch_tat_identity_organization_id(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    char       *rv;
    ngx_str_t  *value, name;

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    lcf->organization_file = cf->conf_file->file.name;
    lcf->organization_line = cf->conf_file->line;

    if (cf->args->nelts == 2) {
        return NGX_CONF_OK;
    }

    value = cf->args->elts;

    if (value[2].len <= sizeof("claim=") - 1
        || ngx_strncmp(value[2].data, "claim=", sizeof("claim=") - 1) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\", expected "
                           "\"claim=\" and the claim\'s name", &value[2]);
        return NGX_CONF_ERROR;
    }

    /* configuration arguments are NUL-terminated, as jansson needs */

    name.data = value[2].data + sizeof("claim=") - 1;
    name.len = value[2].len - (sizeof("claim=") - 1);

    if (ngx_http_stytch_tat_identity_claim_name(cf, &name, 0) != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    lcf->organization_claim = name;

    return NGX_CONF_OK;
}


/*
 * The claims minted: those of stytch_tat_claim, and the organization as a
 * claim where stytch_tat_organization_id has claim=NAME.  The organization
 * and its claim are inherited together, the claims apart.
 */

char *
ngx_http_stytch_tat_identity_merge_claims(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *prev, ngx_http_stytch_tat_loc_conf_t *conf)
{
    ngx_uint_t                         i;
    ngx_http_stytch_tat_claim_conf_t  *c, *org;

    ngx_conf_merge_ptr_value(conf->claims_conf, prev->claims_conf, NULL);

    if (conf->organization_id == NGX_CONF_UNSET_PTR) {
        conf->organization_id = prev->organization_id;
        conf->organization_claim = prev->organization_claim;
        conf->organization_file = prev->organization_file;
        conf->organization_line = prev->organization_line;
    }

    if (conf->organization_id == NGX_CONF_UNSET_PTR) {
        conf->organization_id = NULL;
    }

    conf->claims = conf->claims_conf;

    if (conf->organization_id == NULL || conf->organization_claim.len == 0) {
        return NGX_CONF_OK;
    }

    conf->claims = ngx_array_create(cf->pool,
                             (conf->claims_conf ? conf->claims_conf->nelts
                                                : 0) + 1,
                             sizeof(ngx_http_stytch_tat_claim_conf_t));
    if (conf->claims == NULL) {
        return NGX_CONF_ERROR;
    }

    if (conf->claims_conf) {
        c = conf->claims_conf->elts;

        for (i = 0; i < conf->claims_conf->nelts; i++) {
            if (ngx_strcmp(c[i].name.data, conf->organization_claim.data)
                == 0)
            {
                ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                              "\"stytch_tat_organization_id\" in %V:%ui: "
                              "claim \"%V\" is a \"stytch_tat_claim\" "
                              "too", &conf->organization_file,
                              conf->organization_line,
                              &conf->organization_claim);
                return NGX_CONF_ERROR;
            }
        }

        c = ngx_array_push_n(conf->claims, conf->claims_conf->nelts);
        if (c == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_memcpy(c, conf->claims_conf->elts,
                   conf->claims_conf->nelts
                   * sizeof(ngx_http_stytch_tat_claim_conf_t));
    }

    org = ngx_array_push(conf->claims);
    if (org == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(org, sizeof(ngx_http_stytch_tat_claim_conf_t));

    org->name = conf->organization_claim;
    org->value = *conf->organization_id;

    return NGX_CONF_OK;
}


char *
ngx_http_stytch_tat_identity_trusted(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_stytch_tat_loc_conf_t *lcf = conf;

    ngx_int_t    rc;
    ngx_str_t   *value;
    ngx_uint_t   i;
    ngx_cidr_t  *cidr;

    if (lcf->trusted != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2 && ngx_strcmp(value[1].data, "off") == 0) {
        lcf->trusted = NULL;
        return NGX_CONF_OK;
    }

    lcf->trusted = ngx_array_create(cf->pool, cf->args->nelts - 1,
                                    sizeof(ngx_cidr_t));
    if (lcf->trusted == NULL) {
        return NGX_CONF_ERROR;
    }

    for (i = 1; i < cf->args->nelts; i++) {
        cidr = ngx_array_push(lcf->trusted);
        if (cidr == NULL) {
            return NGX_CONF_ERROR;
        }

        rc = ngx_ptocidr(&value[i], cidr);

        if (rc == NGX_ERROR) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid address or network \"%V\"",
                               &value[i]);
            return NGX_CONF_ERROR;
        }

        if (rc == NGX_DONE) {
            ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                               "low address bits of %V are meaningless",
                               &value[i]);
        }
    }

    return NGX_CONF_OK;
}


/*
 * At configuration time, how each identity value will be read: see
 * ngx_http_stytch_tat_read_t.  "stytch_tat_email $http_x_user;" with
 * "stytch_tat_subject $http_x_user;" reads the header once, in place.
 */

ngx_int_t
ngx_http_stytch_tat_identity_prepare(ngx_conf_t *cf,
    ngx_http_stytch_tat_loc_conf_t *lcf)
{
    ngx_str_t                    name;
    ngx_uint_t                   i, j, n;
    ngx_http_complex_value_t    *cv[NGX_HTTP_STYTCH_TAT_READS];
    ngx_http_stytch_tat_read_t  *rd;

    n = ngx_http_stytch_tat_identity_values(lcf, cv);

    rd = ngx_pcalloc(cf->pool, n * sizeof(ngx_http_stytch_tat_read_t));
    if (rd == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < n; i++) {
        rd[i].index = NGX_ERROR;

        /* a constant costs nothing to evaluate */

        if (cv[i] == NULL || cv[i]->lengths == NULL) {
            continue;
        }

        for (j = 0; j < i; j++) {
            if (cv[j] && cv[j]->lengths
                && cv[j]->value.len == cv[i]->value.len
                && ngx_strncmp(cv[j]->value.data, cv[i]->value.data,
                               cv[i]->value.len)
                   == 0)
            {
                rd[i].same = j + 1;
                break;
            }
        }

        if (rd[i].same == 0
            && ngx_http_stytch_tat_identity_one_variable(&cv[i]->value, &name))
        {
            /* the index the complex value's own code already uses */

            rd[i].index = ngx_http_get_variable_index(cf, &name);
            if (rd[i].index == NGX_ERROR) {
                return NGX_ERROR;
            }
        }
    }

    lcf->reads = rd;

    return NGX_OK;
}


/* the identity's complex values in the order of lcf->reads: how many */

static ngx_uint_t
ngx_http_stytch_tat_identity_values(ngx_http_stytch_tat_loc_conf_t *lcf,
    ngx_http_complex_value_t **cv)
{
    ngx_uint_t                         i, n;
    ngx_http_stytch_tat_claim_conf_t  *cc;

    cv[NGX_HTTP_STYTCH_TAT_READ_EMAIL] = lcf->email;
    cv[NGX_HTTP_STYTCH_TAT_READ_ISS] = lcf->issuer;
    cv[NGX_HTTP_STYTCH_TAT_READ_AUD] = lcf->audience;
    cv[NGX_HTTP_STYTCH_TAT_READ_SUB] = lcf->subject;
    cv[NGX_HTTP_STYTCH_TAT_READ_JTI] = lcf->token_id;

    n = NGX_HTTP_STYTCH_TAT_READ_CLAIMS;

    if (lcf->claims) {
        cc = lcf->claims->elts;

        for (i = 0; i < lcf->claims->nelts; i++) {
            cv[n++] = &cc[i].value;
        }
    }

    return n;
}


/* "$name" or "${name}" and nothing else: name, as the script engine reads */

static ngx_uint_t
ngx_http_stytch_tat_identity_one_variable(ngx_str_t *text, ngx_str_t *name)
{
    u_char  *p, *last;

    if (text->len < 2 || text->data[0] != '$') {
        return 0;
    }

    p = text->data + 1;
    last = text->data + text->len;

    if (*p == '{') {
        if (last[-1] != '}') {
            return 0;
        }

        p++;
        last--;
    }

    /* $1 ... $9 are regex captures, compiled apart */

    if (p == last || (*p >= '0' && *p <= '9')) {
        return 0;
    }

    name->data = p;
    name->len = last - p;

    for ( /* void */ ; p < last; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '_'))
        {
            return 0;
        }
    }

    return 1;
}


ngx_int_t
ngx_http_stytch_tat_identity_evaluate(ngx_http_request_t *r,
    ngx_http_stytch_tat_ctx_t *ctx)
{
    size_t                             n;
    ngx_http_stytch_tat_loc_conf_t    *lcf;
    ngx_http_stytch_tat_main_conf_t   *mcf;

    if (ctx->identified) {
        return ctx->identity_rc;
    }

    /* the variables are evaluated once per request, whatever the outcome */

    ctx->identified = 1;
    ctx->identity_rc = NGX_ERROR;

    lcf = ngx_http_get_module_loc_conf(r, ngx_http_stytch_tat_module);
    mcf = ngx_http_get_module_main_conf(r, ngx_http_stytch_tat_module);

    if (lcf->email == NULL || mcf->keys.nelts == 0) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: no token minted: \"stytch_tat_email\" "
                      "and \"stytch_tat_signing_key\" are needed here");
        return NGX_ERROR;
    }

    /* identity from a client-controlled header is only as good as its path */

    if (lcf->trusted
        && ngx_cidr_match(r->connection->sockaddr, lcf->trusted) != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "stytch_tat: identity refused from %V: not in "
                      "\"stytch_tat_trusted_addresses\"",
                      &r->connection->addr_text);
        ctx->identity_rc = NGX_HTTP_FORBIDDEN;
        return NGX_HTTP_FORBIDDEN;
    }

    n = NGX_HTTP_STYTCH_TAT_FIXED_CLAIMS + (lcf->claims ? lcf->claims->nelts
                                                         : 0);

    ctx->claims = ngx_pcalloc(r->pool, n * sizeof(ngx_http_stytch_tat_claim_t));
    if (ctx->claims == NULL) {
        return NGX_ERROR;
    }

    ctx->nclaims = n;

    ctx->identity_rc = ngx_http_stytch_tat_identity_claims(r, lcf, ctx);

    return ctx->identity_rc;
}


/* the claims of the identity, from the request's variables */

static ngx_int_t
ngx_http_stytch_tat_identity_claims(ngx_http_request_t *r,
    ngx_http_stytch_tat_loc_conf_t *lcf, ngx_http_stytch_tat_ctx_t *ctx)
{
    ngx_uint_t                         i, n;
    ngx_str_t                         *v, value[NGX_HTTP_STYTCH_TAT_READS];
    ngx_http_complex_value_t          *cv[NGX_HTTP_STYTCH_TAT_READS];
    ngx_http_stytch_tat_claim_t       *c;
    ngx_http_stytch_tat_read_t        *rd;
    ngx_http_stytch_tat_claim_conf_t  *cc;

    c = ctx->claims;
    rd = lcf->reads;
    v = value;

    c[NGX_HTTP_STYTCH_TAT_ISS].name = "iss";
    c[NGX_HTTP_STYTCH_TAT_AUD].name = "aud";
    c[NGX_HTTP_STYTCH_TAT_SUB].name = "sub";
    c[NGX_HTTP_STYTCH_TAT_EMAIL].name = "email";
    c[NGX_HTTP_STYTCH_TAT_JTI].name = "jti";
    c[NGX_HTTP_STYTCH_TAT_IAT].name = "iat";
    c[NGX_HTTP_STYTCH_TAT_NBF].name = "nbf";
    c[NGX_HTTP_STYTCH_TAT_EXP].name = "exp";

    c[NGX_HTTP_STYTCH_TAT_IAT].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    c[NGX_HTTP_STYTCH_TAT_NBF].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;
    c[NGX_HTTP_STYTCH_TAT_EXP].type = NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER;

    n = ngx_http_stytch_tat_identity_values(lcf, cv);

    for (i = 0; i < n; i++) {
        if (ngx_http_stytch_tat_identity_read(r, cv[i], &rd[i], v, &v[i])
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (i == NGX_HTTP_STYTCH_TAT_READ_EMAIL && v[i].len == 0) {
            ngx_log_error(NGX_LOG_INFO, r->connection->log, 0,
                          "stytch_tat: no identity: \"stytch_tat_email\" "
                          "is empty");
            return NGX_DECLINED;
        }
    }

    c[NGX_HTTP_STYTCH_TAT_EMAIL].data = v[NGX_HTTP_STYTCH_TAT_READ_EMAIL].data;
    c[NGX_HTTP_STYTCH_TAT_EMAIL].len = v[NGX_HTTP_STYTCH_TAT_READ_EMAIL].len;
    c[NGX_HTTP_STYTCH_TAT_ISS].data = v[NGX_HTTP_STYTCH_TAT_READ_ISS].data;
    c[NGX_HTTP_STYTCH_TAT_ISS].len = v[NGX_HTTP_STYTCH_TAT_READ_ISS].len;
    c[NGX_HTTP_STYTCH_TAT_AUD].data = v[NGX_HTTP_STYTCH_TAT_READ_AUD].data;
    c[NGX_HTTP_STYTCH_TAT_AUD].len = v[NGX_HTTP_STYTCH_TAT_READ_AUD].len;
    c[NGX_HTTP_STYTCH_TAT_SUB].data = v[NGX_HTTP_STYTCH_TAT_READ_SUB].data;
    c[NGX_HTTP_STYTCH_TAT_SUB].len = v[NGX_HTTP_STYTCH_TAT_READ_SUB].len;

    /* an explicit token id names a validation event: never cached */

    ctx->jti = v[NGX_HTTP_STYTCH_TAT_READ_JTI];
    ctx->explicit_jti = ctx->jti.len ? 1 : 0;

    if (lcf->claims) {
        cc = lcf->claims->elts;
        c += NGX_HTTP_STYTCH_TAT_FIXED_CLAIMS;
        v += NGX_HTTP_STYTCH_TAT_READ_CLAIMS;

        for (i = 0; i < lcf->claims->nelts; i++) {
            c[i].name = (char *) cc[i].name.data;
            c[i].data = v[i].data;
            c[i].len = v[i].len;

            if (cc[i].sep) {
                c[i].type = NGX_HTTP_STYTCH_TAT_CLAIM_LIST;
                c[i].sep = cc[i].sep;
            }
        }
    }

    return NGX_OK;
}


/* one identity value, as ngx_http_stytch_tat_identity_prepare() planned */

static ngx_int_t
ngx_http_stytch_tat_identity_read(ngx_http_request_t *r,
    ngx_http_complex_value_t *cv, ngx_http_stytch_tat_read_t *rd,
    ngx_str_t *done, ngx_str_t *value)
{
    ngx_http_variable_value_t  *vv;

    if (cv == NULL) {
        ngx_str_null(value);
        return NGX_OK;
    }

    if (rd->same) {
        *value = done[rd->same - 1];
        return NGX_OK;
    }

    if (rd->index == NGX_ERROR) {
        return ngx_http_complex_value(r, cv, value);
    }

    /* as the complex value would: a non-cacheable variable is read anew */

    vv = ngx_http_get_flushed_variable(r, rd->index);
    if (vv == NULL) {
        return NGX_ERROR;
    }

    if (vv->not_found) {
        ngx_str_set(value, "");
        return NGX_OK;
    }

    value->data = vv->data;
    value->len = vv->len;

    return NGX_OK;
}
