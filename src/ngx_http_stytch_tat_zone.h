/*
 * A node of the zone, as its users see it (ngx_http_stytch_tat_zone.c).
 */

#ifndef _NGX_HTTP_STYTCH_TAT_ZONE_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_ZONE_H_INCLUDED_


#include "ngx_http_stytch_tat.h"


/* a node's variable-length fields, in this order */
#define NGX_HTTP_STYTCH_TAT_F_JWT            0
#define NGX_HTTP_STYTCH_TAT_F_SESSION_TOKEN  1
#define NGX_HTTP_STYTCH_TAT_F_SESSION_JWT    2
#define NGX_HTTP_STYTCH_TAT_F_USER_ID        3
#define NGX_HTTP_STYTCH_TAT_F_SESSION_ID     4
#define NGX_HTTP_STYTCH_TAT_F_ERROR          5
#define NGX_HTTP_STYTCH_TAT_F_RETRY_AFTER    6
/*
 * The session's roles, factors and organization (a blob, see _rbac.h):
 * in a small slot of its own, not in the node's data, so that it never
 * pushes a node of about 2 KB into a whole 4 KB page of the slab.
 */
#define NGX_HTTP_STYTCH_TAT_F_CLAIMS         7
#define NGX_HTTP_STYTCH_TAT_FIELDS           8

/*
 * A node of a Stytch session JWT verified here (its digest is the token
 * signature's) keeps the token where a session keeps its JWT, its binding
 * claim where a session keeps the minted token, and the user and session
 * ids where a session does.
 */
#define NGX_HTTP_STYTCH_TAT_F_BINDING        NGX_HTTP_STYTCH_TAT_F_JWT


typedef struct {
    u_char                        color;
    u_char                        dummy;
    uint16_t                      status;        /* FAILED: the answer */
    uint16_t                      len[NGX_HTTP_STYTCH_TAT_FIELDS];
    uint32_t                      touched;       /* last to the LRU head */
    u_char                       *claims;        /* F_CLAIMS, or NULL */
    ngx_queue_t                   queue;
    u_char                        digest[NGX_HTTP_STYTCH_TAT_DIGEST_LEN];
    ngx_http_stytch_tat_entry_t   entry;
    u_char                        data[1];
} ngx_http_stytch_tat_node_t;


ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_zone_find(
    ngx_http_stytch_tat_zone_t *zone, u_char *digest);
void ngx_http_stytch_tat_zone_delete(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn);
ngx_http_stytch_tat_node_t *ngx_http_stytch_tat_zone_replace(
    ngx_http_stytch_tat_zone_t *zone, ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *old, u_char *digest, ngx_str_t *fields);
void ngx_http_stytch_tat_zone_touch(ngx_http_stytch_tat_zone_t *zone,
    ngx_http_stytch_tat_node_t *tn);
ngx_int_t ngx_http_stytch_tat_zone_copy_out(ngx_http_request_t *r,
    ngx_http_stytch_tat_node_t *tn, ngx_uint_t field, ngx_str_t *dst);


#endif /* _NGX_HTTP_STYTCH_TAT_ZONE_H_INCLUDED_ */
