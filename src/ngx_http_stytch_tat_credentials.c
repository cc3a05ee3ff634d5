/*
 * stytch_tat_credentials FILE: Stytch's project id and secret, kept out of
 * nginx.conf, turned once into the "Basic ..." value that the exchange adds
 * to its own subrequests, and only to an internal location.  No variable
 * holds it, and neither part is ever logged.
 */


#include "ngx_http_stytch_tat.h"


#define NGX_HTTP_STYTCH_TAT_CREDENTIALS_MAX  1024


static ssize_t ngx_http_stytch_tat_credentials_read(ngx_conf_t *cf,
    ngx_str_t *name, u_char *buf);
static ngx_int_t ngx_http_stytch_tat_credentials_parse(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf, ngx_str_t *name, u_char *p,
    u_char *last);


char *
ngx_http_stytch_tat_credentials(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_stytch_tat_main_conf_t *mcf = conf;

    u_char     *buf;
    ssize_t     n;
    ngx_int_t   rc;
    ngx_str_t  *value, name;

    if (mcf->authorization.len) {
        return "is duplicate";
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    buf = ngx_pnalloc(cf->temp_pool, NGX_HTTP_STYTCH_TAT_CREDENTIALS_MAX);
    if (buf == NULL) {
        return NGX_CONF_ERROR;
    }

    n = ngx_http_stytch_tat_credentials_read(cf, &name, buf);

    rc = (n < 0) ? NGX_ERROR
         : ngx_http_stytch_tat_credentials_parse(cf, mcf, &name, buf, buf + n);

    /* the secret stays nowhere but in the "Basic ..." value */

    ngx_explicit_memzero(buf, NGX_HTTP_STYTCH_TAT_CREDENTIALS_MAX);

    return (rc == NGX_OK) ? NGX_CONF_OK : NGX_CONF_ERROR;
}


static ssize_t
ngx_http_stytch_tat_credentials_read(ngx_conf_t *cf, ngx_str_t *name,
    u_char *buf)
{
    ssize_t          n;
    ngx_fd_t         fd;
    ngx_file_info_t  fi;

    fd = ngx_open_file(name->data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);
    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%V\" failed", name);
        return NGX_ERROR;
    }

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%V\" failed", name);
        ngx_close_file(fd);
        return NGX_ERROR;
    }

    if (fi.st_mode & (S_IRWXG | S_IRWXO)) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "credentials file \"%V\" is accessible by group "
                           "or others; chmod 600 it", name);
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_STYTCH_TAT_CREDENTIALS_MAX);
    ngx_close_file(fd);

    if (n <= 0 || n == NGX_HTTP_STYTCH_TAT_CREDENTIALS_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials file \"%V\" is empty, unreadable "
                           "or over 1k", name);
        return NGX_ERROR;
    }

    return n;
}


/* one line, "project_id:secret", surrounding white space ignored */

static ngx_int_t
ngx_http_stytch_tat_credentials_parse(ngx_conf_t *cf,
    ngx_http_stytch_tat_main_conf_t *mcf, ngx_str_t *name, u_char *p,
    u_char *last)
{
    u_char     *colon;
    ngx_str_t   b64, raw;

    while (p < last && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')) {
        p++;
    }

    while (last > p
           && (last[-1] == ' ' || last[-1] == '\t' || last[-1] == '\r'
               || last[-1] == '\n'))
    {
        last--;
    }

    colon = ngx_strlchr(p, last, ':');

    if (colon == NULL || colon == p || colon + 1 == last
        || ngx_strlchr(p, last, '\n') != NULL)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "credentials file \"%V\" must hold one line "
                           "\"project_id:secret\"", name);
        return NGX_ERROR;
    }

    /* the project id alone, for the cache key: another project, no hit */

    mcf->project_id.len = colon - p;
    mcf->project_id.data = ngx_pnalloc(cf->pool, mcf->project_id.len);
    if (mcf->project_id.data == NULL) {
        return NGX_ERROR;
    }

    ngx_memcpy(mcf->project_id.data, p, mcf->project_id.len);

    raw.data = p;
    raw.len = last - p;

    b64.len = ngx_base64_encoded_length(raw.len);
    mcf->authorization.data = ngx_pnalloc(cf->pool,
                                          sizeof("Basic ") - 1 + b64.len);
    if (mcf->authorization.data == NULL) {
        return NGX_ERROR;
    }

    b64.data = ngx_cpymem(mcf->authorization.data, "Basic ",
                          sizeof("Basic ") - 1);

    ngx_encode_base64(&b64, &raw);

    mcf->authorization.len = sizeof("Basic ") - 1 + b64.len;

    return NGX_OK;
}
