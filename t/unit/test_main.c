/*
 * The unit test runner: one cmocka group, so one summary line for CI.
 */

#include "unit.h"


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_b64url_rfc4648),
        cmocka_unit_test(test_b64url_url_alphabet),
        cmocka_unit_test(test_b64url_empty),
        cmocka_unit_test(test_b64url_len_macro),
        cmocka_unit_test(test_b64url_roundtrip),

        cmocka_unit_test(test_alg_name),
        cmocka_unit_test(test_rfc7638_rsa_thumbprint),
        cmocka_unit_test(test_rfc7638_rsa_public_members),
        cmocka_unit_test(test_rfc8037_ed25519_thumbprint),
        cmocka_unit_test(test_rfc8037_ed25519_signature),
        cmocka_unit_test(test_rfc8037_ed25519_signer),
        cmocka_unit_test(test_thumbprint_fits_44_bytes),
        cmocka_unit_test(test_thumbprint_ec_independent),
        cmocka_unit_test(test_jwk_rsa),
        cmocka_unit_test(test_jwk_ec),
        cmocka_unit_test(test_jwk_ec_coordinates_padded),
        cmocka_unit_test(test_jwk_okp),
        cmocka_unit_test(test_jwk_bad_alg),
        cmocka_unit_test(test_jwk_rsa_over_8192_bits),
        cmocka_unit_test(test_jws_header),
        cmocka_unit_test(test_jws_header_escapes_kid),

        cmocka_unit_test(test_sig_size),
        cmocka_unit_test(test_sign_es256),
        cmocka_unit_test(test_sign_es256_leading_zeros),
        cmocka_unit_test(test_sign_rs256),
        cmocka_unit_test(test_sign_eddsa),
        cmocka_unit_test(test_sign_wrong_key),
        cmocka_unit_test(test_sign_full_jwt),
        cmocka_unit_test(test_signer_rs256),
        cmocka_unit_test(test_signer_es256),
        cmocka_unit_test(test_signer_eddsa),
        cmocka_unit_test(test_signer_wrong_key),

        cmocka_unit_test(test_keyload_rsa_pkcs8),
        cmocka_unit_test(test_keyload_rsa_traditional),
        cmocka_unit_test(test_keyload_rsa_small),
        cmocka_unit_test(test_keyload_p256_pkcs8),
        cmocka_unit_test(test_keyload_p256_traditional),
        cmocka_unit_test(test_keyload_p256_with_params),
        cmocka_unit_test(test_keyload_other_curves),
        cmocka_unit_test(test_keyload_ed25519),
        cmocka_unit_test(test_keyload_unsupported_types),
        cmocka_unit_test(test_keyload_encrypted),
        cmocka_unit_test(test_keyload_public),
        cmocka_unit_test(test_keyload_certificate),
        cmocka_unit_test(test_keyload_garbage),
        cmocka_unit_test(test_keyload_empty),

        cmocka_unit_test(test_claims_seed_example),
        cmocka_unit_test(test_claims_escaping),
        cmocka_unit_test(test_claims_lists),
        cmocka_unit_test(test_claims_empty_omitted),
        cmocka_unit_test(test_claims_list_null_data),
        cmocka_unit_test(test_claims_numbers),
        cmocka_unit_test(test_claims_control),
        cmocka_unit_test(test_claims_utf8),
        cmocka_unit_test(test_claims_value_length),
        cmocka_unit_test(test_claims_payload_max),
        cmocka_unit_test(test_claims_small_buffer),
        cmocka_unit_test(test_value_check),
        cmocka_unit_test(test_claim_strerror),

        cmocka_unit_test(test_claims_list_tab_at_edge),

        cmocka_unit_test(test_response_consumer),
        cmocka_unit_test(test_response_b2b),
        cmocka_unit_test(test_response_authenticate_without_top_user_id),
        cmocka_unit_test(test_response_b2b_authenticate_without_top_member_id),
        cmocka_unit_test(test_response_error),
        cmocka_unit_test(test_response_malformed),
        cmocka_unit_test(test_response_rfc3339),
        cmocka_unit_test(test_response_jwt_exp),

        cmocka_unit_test(test_cache_state_new_entry),
        cmocka_unit_test(test_cache_state_pending_lease),
        cmocka_unit_test(test_cache_state_session_hit),
        cmocka_unit_test(test_cache_state_refresh_one_leader),
        cmocka_unit_test(test_cache_state_refresh_jwt_past_exp),
        cmocka_unit_test(test_cache_state_session_ending),
        cmocka_unit_test(test_cache_state_session_ended),
        cmocka_unit_test(test_cache_state_failed_negative),
        cmocka_unit_test(test_cache_state_failed_waiters),
        cmocka_unit_test(test_cache_state_clock_wraps),
        cmocka_unit_test(test_cache_state_fail),
        cmocka_unit_test(test_cache_state_release),
        cmocka_unit_test(test_cache_state_expired),
    };

    return cmocka_run_group_tests_name("ngx_http_stytch_tat unit", tests,
                                       setup_keys, teardown_keys);
}
