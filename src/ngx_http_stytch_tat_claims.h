/*
 * The JWT claims set: validation of identity values and the payload JSON.
 * Free of nginx headers, like ngx_http_stytch_tat_jose.h.
 */

#ifndef _NGX_HTTP_STYTCH_TAT_CLAIMS_H_INCLUDED_
#define _NGX_HTTP_STYTCH_TAT_CLAIMS_H_INCLUDED_


#include <stddef.h>


/* one identity or claim value, before list splitting */
#define NGX_HTTP_STYTCH_TAT_VALUE_MAX     1024
/* the whole claims set as JSON: keeps the JWT within header limits */
#define NGX_HTTP_STYTCH_TAT_PAYLOAD_MAX   4096

#define NGX_HTTP_STYTCH_TAT_CLAIM_STRING  0
#define NGX_HTTP_STYTCH_TAT_CLAIM_LIST    1
#define NGX_HTTP_STYTCH_TAT_CLAIM_NUMBER  2

#define NGX_HTTP_STYTCH_TAT_CLAIM_OK          0
#define NGX_HTTP_STYTCH_TAT_CLAIM_TOO_LONG    1
#define NGX_HTTP_STYTCH_TAT_CLAIM_CONTROL     2
#define NGX_HTTP_STYTCH_TAT_CLAIM_UTF8        3
#define NGX_HTTP_STYTCH_TAT_CLAIM_OVERSIZED   4
#define NGX_HTTP_STYTCH_TAT_CLAIM_NOMEM       5


typedef struct {
    const char           *name;
    const unsigned char  *data;
    size_t                len;
    long long             number;
    int                   type;
    unsigned char         sep;
} ngx_http_stytch_tat_claim_t;


/* a value is at most VALUE_MAX bytes of UTF-8 without control characters */
int ngx_http_stytch_tat_value_check(const unsigned char *data, size_t len);

/*
 * Writes the claims as one compact JSON object into buf.  Empty string
 * values and empty list items are left out.  On failure *bad is the index
 * of the claim at fault (n for the whole set).
 */
int ngx_http_stytch_tat_claims_json(const ngx_http_stytch_tat_claim_t *claims,
    size_t n, unsigned char *buf, size_t size, size_t *len, size_t *bad);

const char *ngx_http_stytch_tat_claim_strerror(int rc);


#endif /* _NGX_HTTP_STYTCH_TAT_CLAIMS_H_INCLUDED_ */
