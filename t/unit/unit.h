/*
 * Shared declarations of the unit tests: cmocka, the module's pure C
 * headers, and the helpers in test_util.c.
 */

#ifndef _UNIT_H_INCLUDED_
#define _UNIT_H_INCLUDED_


#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

/* cmocka 2.0 deprecates assert_in_range() (-Werror), 1.1 lacks this one */
#ifndef assert_uint_in_range
#define assert_uint_in_range(value, minimum, maximum)                        \
    assert_in_range(value, minimum, maximum)
#endif

#include <openssl/evp.h>

#include "ngx_http_stytch_tat_jose.h"
#include "ngx_http_stytch_tat_claims.h"


/* a heap buffer followed by a guard region that must stay untouched */
#define GUARD_LEN   64
#define GUARD_BYTE  0xa5

unsigned char *guarded_alloc(size_t size);
void guarded_check(const unsigned char *buf, size_t size);

/* strict base64url decoding (no padding, url alphabet); -1 on bad input */
long b64url_decode(unsigned char *dst, size_t size, const char *src);

/* asserts that s is made of the base64url alphabet only */
void assert_b64url_alphabet(const char *s, size_t len);

/* keys generated once for the whole run */
typedef struct {
    EVP_PKEY  *rsa2048;
    EVP_PKEY  *p256;
    EVP_PKEY  *ed25519;
} test_keys_t;

extern test_keys_t  keys;

EVP_PKEY *gen_key(const char *type, const char *param, size_t bits);

/* PEM of a key in the given form: see test_util.c; free() it */
typedef enum {
    PEM_PKCS8,
    PEM_TRADITIONAL,
    PEM_PKCS8_ENCRYPTED,
    PEM_TRADITIONAL_ENCRYPTED,
    PEM_PUBLIC,
    PEM_CERTIFICATE
} pem_form_t;

char *pem_of(EVP_PKEY *pkey, pem_form_t form, size_t *len);

EVP_PKEY *rsa_public_from_b64url(const char *n, const char *e);

/* JOSE r||s to DER ECDSA-Sig-Value; returns the DER length */
size_t jose_to_der(const unsigned char *rs, unsigned char *der, size_t size);

/* EVP_DigestVerify of sig over in, md NULL for Ed25519; 1 when valid */
int verify(EVP_PKEY *pkey, const EVP_MD *md, const unsigned char *in,
    size_t len, const unsigned char *sig, size_t siglen);

/*
 * Runs fn(data) in a child process, for code whose failure mode is memory
 * corruption or a sanitizer abort: -1 with the reason in why when the
 * child dies or fn returns non-zero (the number of the check that failed).
 */
int in_child(int (*fn)(void *data), void *data, char *why, size_t size);

int setup_keys(void **state);
int teardown_keys(void **state);


/* the tests, by file */

void test_b64url_rfc4648(void **state);
void test_b64url_url_alphabet(void **state);
void test_b64url_empty(void **state);
void test_b64url_len_macro(void **state);
void test_b64url_roundtrip(void **state);
void test_b64url_decode_rfc4648(void **state);
void test_b64url_decode_padding(void **state);
void test_b64url_decode_alphabet(void **state);
void test_b64url_decode_unused_bits(void **state);
void test_b64url_decode_length(void **state);
void test_b64url_decode_roundtrip(void **state);

void test_alg_name(void **state);
void test_rfc7638_rsa_thumbprint(void **state);
void test_rfc7638_rsa_public_members(void **state);
void test_rfc8037_ed25519_thumbprint(void **state);
void test_rfc8037_ed25519_signature(void **state);
void test_rfc8037_ed25519_signer(void **state);
void test_thumbprint_fits_44_bytes(void **state);
void test_thumbprint_ec_independent(void **state);
void test_jwk_rsa(void **state);
void test_jwk_ec(void **state);
void test_jwk_ec_coordinates_padded(void **state);
void test_jwk_okp(void **state);
void test_jwk_bad_alg(void **state);
void test_jwk_rsa_over_8192_bits(void **state);
void test_jws_header(void **state);
void test_jws_header_escapes_kid(void **state);

void test_sig_size(void **state);
void test_sign_es256(void **state);
void test_sign_es256_leading_zeros(void **state);
void test_sign_rs256(void **state);
void test_sign_eddsa(void **state);
void test_sign_wrong_key(void **state);
void test_sign_full_jwt(void **state);
void test_signer_rs256(void **state);
void test_signer_es256(void **state);
void test_signer_eddsa(void **state);
void test_signer_wrong_key(void **state);

void test_keyload_rsa_pkcs8(void **state);
void test_keyload_rsa_traditional(void **state);
void test_keyload_rsa_small(void **state);
void test_keyload_p256_pkcs8(void **state);
void test_keyload_p256_traditional(void **state);
void test_keyload_p256_with_params(void **state);
void test_keyload_other_curves(void **state);
void test_keyload_ed25519(void **state);
void test_keyload_unsupported_types(void **state);
void test_keyload_encrypted(void **state);
void test_keyload_public(void **state);
void test_keyload_certificate(void **state);
void test_keyload_garbage(void **state);
void test_keyload_empty(void **state);

void test_claims_seed_example(void **state);
void test_claims_escaping(void **state);
void test_claims_lists(void **state);
void test_claims_empty_omitted(void **state);
void test_claims_list_null_data(void **state);
void test_claims_numbers(void **state);
void test_claims_control(void **state);
void test_claims_utf8(void **state);
void test_claims_value_length(void **state);
void test_claims_payload_max(void **state);
void test_claims_small_buffer(void **state);
void test_value_check(void **state);
void test_claim_strerror(void **state);

void test_claims_list_tab_at_edge(void **state);

/* test_response.c */
void test_response_consumer(void **state);
void test_response_b2b(void **state);
void test_response_authenticate_without_top_user_id(void **state);
void test_response_b2b_authenticate_without_top_member_id(void **state);
void test_response_error(void **state);
void test_response_malformed(void **state);
void test_response_rfc3339(void **state);
void test_response_jwt_exp(void **state);
void test_response_jwt_exp_strict(void **state);

/* test_cache_state.c */
void test_cache_state_new_entry(void **state);
void test_cache_state_pending_lease(void **state);
void test_cache_state_session_hit(void **state);
void test_cache_state_refresh_one_leader(void **state);
void test_cache_state_refresh_jwt_past_exp(void **state);
void test_cache_state_session_ending(void **state);
void test_cache_state_session_ended(void **state);
void test_cache_state_failed_negative(void **state);
void test_cache_state_failed_waiters(void **state);
void test_cache_state_clock_wraps(void **state);
void test_cache_state_fail(void **state);
void test_cache_state_release(void **state);
void test_cache_state_expired(void **state);
void test_cache_state_refresh_backoff(void **state);

/* test_verify.c: each test with the fixture loaded and freed */
int test_verify_setup(void **state);
int test_verify_teardown(void **state);
void test_verify_fixture_tokens(void **state);
void test_verify_outputs(void **state);
void test_verify_binding_optional(void **state);
void test_verify_times(void **state);
void test_verify_other_project(void **state);
void test_verify_params(void **state);
void test_verify_size(void **state);
void test_verify_every_byte(void **state);
void test_verify_jwks(void **state);
void test_verify_jwks_refused(void **state);
void test_verify_code_names(void **state);
void test_verify_fixture_independent(void **state);

/* test_rbac.c */
void test_rbac_policy_parse(void **state);
void test_rbac_policy_refused(void **state);
void test_rbac_policy_bounds(void **state);
void test_rbac_decide_consumer(void **state);
void test_rbac_decide_b2b(void **state);
void test_rbac_duplicate_roles(void **state);
void test_rbac_claims(void **state);
void test_rbac_claims_dropped(void **state);
void test_rbac_claims_malformed(void **state);
void test_rbac_claims_forms(void **state);
void test_rbac_claims_jwt_strict(void **state);
void test_rbac_session_view(void **state);
void test_rbac_blob_size(void **state);
void test_rbac_factor_check(void **state);
void test_rbac_join(void **state);
void test_rbac_verdict_names(void **state);


#endif /* _UNIT_H_INCLUDED_ */
