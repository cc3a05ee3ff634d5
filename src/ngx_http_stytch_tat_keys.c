/*
 * Signing keys: the stytch_tat_signing_key directive and the JWKS document.
 */


#include "ngx_http_stytch_tat.h"

#include <jansson.h>


static ngx_int_t ngx_http_stytch_tat_keys_kid(ngx_conf_t *cf, ngx_str_t *arg,
    ngx_str_t *kid);
static ngx_int_t ngx_http_stytch_tat_keys_read(ngx_conf_t *cf,
    ngx_str_t *source, ngx_str_t *pem);
static ngx_int_t ngx_http_stytch_tat_keys_env(ngx_conf_t *cf,
    ngx_str_t *source, ngx_str_t *pem);
static ngx_int_t ngx_http_stytch_tat_keys_setup(ngx_conf_t *cf,
    ngx_http_stytch_tat_key_t *key);
static void ngx_http_stytch_tat_keys_cleanup(void *data);
static void ngx_http_stytch_tat_keys_signer_cleanup(void *data);


char *
ngx_http_stytch_tat_keys_signing_key(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_main_conf_t *mcf = conf;

    int                         alg;
    char                        err[NGX_HTTP_STYTCH_TAT_ERR_LEN];
    ngx_str_t                  *value, pem, kid;
    ngx_uint_t                  i;
    ngx_pool_cleanup_t         *cln;
    ngx_http_stytch_tat_key_t  *key, *keys;

    value = cf->args->elts;

    ngx_str_null(&kid);

    if (cf->args->nelts == 3
        && ngx_http_stytch_tat_keys_kid(cf, &value[2], &kid) != NGX_OK)
    {
        return NGX_CONF_ERROR;
    }

    if (value[1].len > 4 && ngx_strncmp(value[1].data, "env:", 4) == 0) {
        if (ngx_http_stytch_tat_keys_env(cf, &value[1], &pem) != NGX_OK) {
            return NGX_CONF_ERROR;
        }

    } else if (ngx_http_stytch_tat_keys_read(cf, &value[1], &pem) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    key = ngx_array_push(&mcf->keys);
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(key, sizeof(ngx_http_stytch_tat_key_t));

    key->file = value[1];

    /* the cleanup is registered first so that no failure leaks the key */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_stytch_tat_keys_cleanup;
    cln->data = NULL;

    if (ngx_http_stytch_tat_key_load(pem.data, pem.len, &key->pkey, &alg,
                                     err)
        != 0)
    {
        ngx_explicit_memzero(pem.data, pem.len);
        mcf->keys.nelts--;
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid key \"%V\": %s", &value[1], err);
        return NGX_CONF_ERROR;
    }

    ngx_explicit_memzero(pem.data, pem.len);

    cln->data = key->pkey;
    key->alg = alg;
    key->kid = kid;

    if (ngx_http_stytch_tat_keys_setup(cf, key) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    keys = mcf->keys.elts;

    for (i = 0; i < mcf->keys.nelts - 1; i++) {
        if (keys[i].kid.len == key->kid.len
            && ngx_strncmp(keys[i].kid.data, key->kid.data, key->kid.len) == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate kid \"%V\" (keys \"%V\" and "
                               "\"%V\")", &key->kid, &keys[i].file,
                               &value[1]);
            return NGX_CONF_ERROR;
        }
    }

    return NGX_CONF_OK;
}


/* "kid=ID": printable, short enough for any header, safe inside JSON */

static ngx_int_t
ngx_http_stytch_tat_keys_kid(ngx_conf_t *cf, ngx_str_t *arg, ngx_str_t *kid)
{
    u_char  *p;

    if (ngx_strncmp(arg->data, "kid=", 4) != 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", arg);
        return NGX_ERROR;
    }

    kid->data = arg->data + 4;
    kid->len = arg->len - 4;

    if (kid->len == 0 || kid->len > NGX_HTTP_STYTCH_TAT_KID_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "kid must be 1 to %d characters",
                           NGX_HTTP_STYTCH_TAT_KID_MAX);
        return NGX_ERROR;
    }

    for (p = kid->data; p < kid->data + kid->len; p++) {
        if (*p <= 0x20 || *p >= 0x7f || *p == '"' || *p == '\\') {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "kid \"%V\" must be printable ASCII "
                               "without quotes or backslashes", kid);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_keys_read(ngx_conf_t *cf, ngx_str_t *source,
    ngx_str_t *pem)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_str_t        name;
    ngx_file_info_t  fi;

    name = *source;

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", &name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", &name);
        goto failed;
    }

    if (ngx_file_size(&fi) <= 0 || ngx_file_size(&fi) > 64 * 1024) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%V\" is empty or over 64k", &name);
        goto failed;
    }

    if (fi.st_mode & (S_IRWXG | S_IRWXO)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "private key file \"%V\" is accessible by group "
                           "or others; chmod 600 it", &name);
    }

    pem->len = (size_t) ngx_file_size(&fi);
    pem->data = ngx_pnalloc(cf->temp_pool, pem->len);
    if (pem->data == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, pem->data, pem->len);

    if (n != (ssize_t) pem->len) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%V\" failed", &name);
        goto failed;
    }

    ngx_close_file(fd);

    return NGX_OK;

failed:

    ngx_close_file(fd);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_stytch_tat_keys_env(ngx_conf_t *cf, ngx_str_t *source,
    ngx_str_t *pem)
{
    char       *env;
    u_char     *name;
    ngx_str_t   b64;

    name = ngx_pnalloc(cf->temp_pool, source->len - 4 + 1);
    if (name == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn(name, source->data + 4, source->len - 4 + 1);

    /* configuration is read by the master, which has the whole env */

    env = getenv((char *) name);

    if (env == NULL || env[0] == '\0') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "environment variable \"%s\" is not set", name);
        return NGX_ERROR;
    }

    b64.data = (u_char *) env;
    b64.len = ngx_strlen(env);

    if (ngx_strstr(env, "-----BEGIN") != NULL) {
        pem->len = b64.len;
        pem->data = ngx_pnalloc(cf->temp_pool, pem->len);
        if (pem->data == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(pem->data, b64.data, b64.len);
        return NGX_OK;
    }

    /* base64 of the PEM, the form that fits on one line of a .env file */

    pem->data = ngx_pnalloc(cf->temp_pool, ngx_base64_decoded_length(b64.len));
    if (pem->data == NULL) {
        return NGX_ERROR;
    }

    if (ngx_decode_base64(pem, &b64) != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "environment variable \"%s\" holds neither PEM "
                           "nor base64 of PEM", name);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_stytch_tat_keys_setup(ngx_conf_t *cf, ngx_http_stytch_tat_key_t *key)
{
    char                *s, tp[64];
    size_t               len;
    ngx_pool_cleanup_t  *cln;

    if (key->kid.len == 0) {
        if (ngx_http_stytch_tat_key_thumbprint(key->pkey, key->alg, tp)
            != 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "cannot compute the key thumbprint of \"%V\"",
                               &key->file);
            return NGX_ERROR;
        }

        len = ngx_strlen(tp);

        key->kid.data = ngx_pstrdup(cf->pool,
                                    &(ngx_str_t) { len, (u_char *) tp });
        if (key->kid.data == NULL) {
            return NGX_ERROR;
        }

        key->kid.len = len;
    }

    /* kids are NUL-terminated for jansson */

    s = (char *) ngx_pnalloc(cf->pool, key->kid.len + 1);
    if (s == NULL) {
        return NGX_ERROR;
    }

    ngx_cpystrn((u_char *) s, key->kid.data, key->kid.len + 1);
    key->kid.data = (u_char *) s;

    s = ngx_http_stytch_tat_jws_header(key->alg, (char *) key->kid.data);
    if (s == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(s);
    key->header.data = ngx_pnalloc(cf->pool, len);
    if (key->header.data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(key->header.data, s, len);
    key->header.len = len;
    free(s);

    s = ngx_http_stytch_tat_key_jwk(key->pkey, key->alg,
                                    (char *) key->kid.data);
    if (s == NULL) {
        return NGX_ERROR;
    }

    len = ngx_strlen(s);
    key->jwk.data = ngx_pnalloc(cf->pool, len);
    if (key->jwk.data == NULL) {
        free(s);
        return NGX_ERROR;
    }

    ngx_memcpy(key->jwk.data, s, len);
    key->jwk.len = len;
    free(s);

    key->sig_len = ngx_http_stytch_tat_sig_size(key->pkey, key->alg);

    /* only the first key signs, but any may be moved first on a reload */

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    key->signer = ngx_http_stytch_tat_signer_new(key->pkey, key->alg);
    if (key->signer == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "cannot prepare a signer for \"%V\"", &key->file);
        return NGX_ERROR;
    }

    cln->handler = ngx_http_stytch_tat_keys_signer_cleanup;
    cln->data = key->signer;

    return NGX_OK;
}


static void
ngx_http_stytch_tat_keys_signer_cleanup(void *data)
{
    ngx_http_stytch_tat_signer_free(data);
}


static void
ngx_http_stytch_tat_keys_cleanup(void *data)
{
    EVP_PKEY  *pkey = data;

    /* the key array may have moved since: the cleanup holds the key itself */

    if (pkey) {
        EVP_PKEY_free(pkey);
    }
}


ngx_int_t
ngx_http_stytch_tat_keys_jwks(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf)
{
    u_char                     *p;
    size_t                      len;
    ngx_uint_t                  i;
    ngx_http_stytch_tat_key_t  *keys;

    keys = mcf->keys.elts;

    len = sizeof("{\"keys\":[]}") - 1;

    for (i = 0; i < mcf->keys.nelts; i++) {
        len += keys[i].jwk.len + 1;
    }

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    mcf->jwks.data = p;

    p = ngx_cpymem(p, "{\"keys\":[", sizeof("{\"keys\":[") - 1);

    for (i = 0; i < mcf->keys.nelts; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_cpymem(p, keys[i].jwk.data, keys[i].jwk.len);
    }

    p = ngx_cpymem(p, "]}", 2);

    mcf->jwks.len = p - mcf->jwks.data;

    return NGX_OK;
}
