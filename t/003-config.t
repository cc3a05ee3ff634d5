# nginx -t refuses bad configuration, naming the directive, file and reason.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;

run_tests();

__DATA__

=== TEST 1: unreadable key file
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/no-such-key.pem;
--- must_die
--- error_log eval
qr/open\(\) ".*no-such-key\.pem" failed .* in .*nginx\.conf:\d+/



=== TEST 2: encrypted key
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/enc.pem;
--- must_die
--- error_log eval
qr/invalid key ".*enc\.pem": the key is encrypted.* in .*nginx\.conf:\d+/



=== TEST 3: a public key
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa-pub.pem;
--- must_die
--- error_log eval
qr/invalid key ".*rsa-pub\.pem": a public key or certificate, not a private key in .*nginx\.conf:\d+/



=== TEST 4: RSA under 2048 bits
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa1024.pem;
--- must_die
--- error_log eval
qr/RSA key of 1024 bits; RS256 needs 2048 to 8192 bits in .*nginx\.conf:\d+/



=== TEST 5: another curve
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/p384.pem;
--- must_die
--- error_log eval
qr/EC key on curve "secp384r1"; ES256 needs P-256 in .*nginx\.conf:\d+/



=== TEST 6: another key type
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ed448.pem;
--- must_die
--- error_log eval
qr/unsupported key type.* in .*nginx\.conf:\d+/



=== TEST 7: not a key at all
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/garbage.pem;
--- must_die
--- error_log eval
qr/invalid key ".*garbage\.pem": not a PEM private key in .*nginx\.conf:\d+/



=== TEST 8: duplicate kid
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem kid=k1;
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem kid=k1;
--- must_die
--- error_log eval
qr/duplicate kid "k1" .* in .*nginx\.conf:\d+/



=== TEST 9: the same key twice has the same thumbprint: a duplicate too
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa-trad.pem;
--- must_die
--- error_log eval
qr/duplicate kid/



=== TEST 10: a claim that collides with a registered claim
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_claim exp 0;
--- must_die
--- error_log eval
qr/claim "exp" is set by the module itself.* in .*nginx\.conf:\d+/



=== TEST 11: email is a registered claim here too
--- http_config
stytch_tat_claim email x@example.com;
--- must_die
--- error_log eval
qr/claim "email" is set by the module itself/



=== TEST 12: issuer missing where minting is used
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_audience https://api.example.com;
--- config
location = /t { stytch_tat_email $http_x_email; return 200; }
--- must_die
--- error_log eval
qr/"stytch_tat_email" in .*nginx\.conf:\d+ needs "stytch_tat_issuer" and "stytch_tat_audience"/



=== TEST 13: audience missing where minting is used
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_email $http_x_email;
--- must_die
--- error_log eval
qr/"stytch_tat_email" in .*nginx\.conf:\d+ needs "stytch_tat_issuer" and "stytch_tat_audience"/



=== TEST 14: minting without any signing key
--- http_config
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_email $http_x_email;
--- must_die
--- error_log eval
qr/"stytch_tat_email" in .*nginx\.conf:\d+ needs a "stytch_tat_signing_key"/



=== TEST 15: list= takes one separator character
--- http_config
stytch_tat_claim roles $http_x_roles list=;
--- must_die
--- error_log eval
qr/invalid parameter "list=", expected "list=" and one separator character in .*nginx\.conf:\d+/



=== TEST 16: a bad kid
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem kid=a"b;
--- must_die
--- error_log eval
qr/kid "a"b" must be printable ASCII/



=== TEST 17: env: names an unset variable
--- http_config
stytch_tat_signing_key env:STYTCH_TAT_NO_SUCH_VARIABLE;
--- must_die
--- error_log eval
qr/environment variable "STYTCH_TAT_NO_SUCH_VARIABLE" is not set in .*nginx\.conf:\d+/



=== TEST 18: signing key outside the http block
--- config
location / { stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem; }
--- must_die
--- error_log eval
qr/"stytch_tat_signing_key" directive is not allowed here in .*nginx\.conf:\d+/



=== TEST 19: a readable key file works, with a warning naming it
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa-readable.pem;
--- config
location = /jwks { stytch_tat_jwks; }
--- request
GET /jwks
--- error_code: 200
--- error_log eval
qr/\[warn\] .*private key file ".*rsa-readable\.pem" is accessible by group or others/



=== TEST 20: token ttl bounds
--- http_config
stytch_tat_token_ttl 0s;
--- must_die
--- error_log eval
qr/"stytch_tat_token_ttl" directive must be between 1s and 1d in .*nginx\.conf:\d+/



=== TEST 21: refused status bounds
--- http_config
stytch_tat_refused_status 200;
--- must_die
--- error_log eval
qr/"stytch_tat_refused_status" directive must be a status between 400 and 599 in .*nginx\.conf:\d+/



=== TEST 22: trusted addresses must be addresses
--- http_config
stytch_tat_trusted_addresses 10.0.0.0/8 not-an-address;
--- must_die
--- error_log eval
qr/invalid address or network "not-an-address" in .*nginx\.conf:\d+/



=== TEST 23: an unknown cache zone
--- config
location / { stytch_tat_cache nowhere; }
--- must_die
--- error_log eval
qr/unknown zone "nowhere": declare it with "stytch_tat_zone zone=nowhere:SIZE;" before in .*nginx\.conf:\d+/



=== TEST 24: a zone too small
--- http_config
stytch_tat_zone zone=z:8k;
--- must_die
--- error_log eval
qr/zone "z" is too small, at least 32k in .*nginx\.conf:\d+/



=== TEST 25: a zone without a size
--- http_config
stytch_tat_zone zone=z;
--- must_die
--- error_log eval
qr/invalid zone "zone=z", expected "zone=NAME:SIZE" in .*nginx\.conf:\d+/



=== TEST 26: the exchange without a profile
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location / { stytch_tat /_attest; stytch_tat_email $http_x_email; }
--- must_die
--- error_log eval
qr/"stytch_tat \/_attest" needs "stytch_tat_profile_id" where it applies/



=== TEST 27: the exchange without an identity
--- config
location / { stytch_tat /_attest; }
--- must_die
--- error_log eval
qr/"stytch_tat \/_attest" needs "stytch_tat_email" where it applies/



=== TEST 28: a credentials file without a colon
--- http_config
stytch_tat_credentials $TEST_NGINX_KEYS/garbage.pem;
--- must_die
--- error_log eval
qr/credentials file ".*garbage\.pem" must hold one line "project_id:secret" in .*nginx\.conf:\d+/



=== TEST 29: session duration bounds
--- http_config
stytch_tat_session_duration 1m;
--- must_die
--- error_log eval
qr/"stytch_tat_session_duration" directive must be between 5m and 366d in .*nginx\.conf:\d+/



=== TEST 30: a readable credentials file works, with a warning naming it
--- http_config
stytch_tat_credentials $TEST_NGINX_KEYS/creds-readable;
--- config
location = /t { return 200 "ok"; }
--- request
GET /t
--- response_body: ok
--- error_log eval
qr/\[warn\] .*credentials file ".*creds-readable" is accessible by group or others/



=== TEST 31: a key whose halves disagree
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/inconsistent.pem;
--- must_die
--- error_log eval
qr/invalid key ".*inconsistent\.pem": the key is inconsistent: its signatures do not verify with its own public key in .*nginx\.conf:\d+/



=== TEST 32: $stytch_tat_authorization is retired: no variable holds the secret
--- http_config
stytch_tat_credentials $TEST_NGINX_KEYS/creds;
--- config
location = /t { return 200 "[$stytch_tat_authorization]"; }
--- must_die
--- error_log eval
qr/unknown "stytch_tat_authorization" variable/



=== TEST 33: a mistyped stytch_tat URI that falls into the application's location
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_profile_id profile-1;
--- config
location = /_stytch_attest {
    internal;
    proxy_pass http://127.0.0.1:1/v1/sessions/attest;
}
location /app {
    stytch_tat /_stytch_atest;
    stytch_tat_email $http_x_email;
}
location / {
    proxy_pass http://127.0.0.1:1;
}
--- must_die
--- error_log eval
qr{"stytch_tat /_stytch_atest" in .*nginx\.conf:\d+ leads to location "/", which is not "internal"}



=== TEST 34: a stytch_tat URI whose internal location does not proxy
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_profile_id profile-1;
--- config
location = /_stytch_attest {
    internal;
    return 200 "{}";
}
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
}
--- must_die
--- error_log eval
qr{"stytch_tat /_stytch_attest" in .*nginx\.conf:\d+ leads to location "/_stytch_attest", which has no proxy_pass}



=== TEST 35: stytch_tat_organization_id claim= names a claim the module sets
--- http_config
stytch_tat_organization_id organization-test-1 claim=sub;
--- must_die
--- error_log eval
qr/claim "sub" is set by the module itself.* in .*nginx\.conf:\d+/



=== TEST 36: stytch_tat_organization_id takes claim=NAME only
--- http_config
stytch_tat_organization_id organization-test-1 org;
--- must_die
--- error_log eval
qr/invalid parameter "org", expected "claim=" and the claim's name in .*nginx\.conf:\d+/



=== TEST 37: the organization's claim may not be a stytch_tat_claim too
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_claim org $http_x_org;
--- config
location /org {
    stytch_tat_organization_id organization-test-1 claim=org;
    stytch_tat_email $http_x_email;
    return 200;
}
--- must_die
--- error_log eval
qr/"stytch_tat_organization_id" in .*nginx\.conf:\d+: claim "org" is a "stytch_tat_claim" too/



=== TEST 38: a session claim Stytch reserves
--- http_config
stytch_tat_session_claim exp 0;
--- must_die
--- error_log eval
qr/session claim "exp" is reserved: Stytch refuses it in .*nginx\.conf:\d+/



=== TEST 39: a session claim in Stytch's namespace, in any case
--- http_config
stytch_tat_session_claim HTTPS://Stytch.com/session x;
--- must_die
--- error_log eval
qr{session claim "HTTPS://Stytch.com/session" is in Stytch's namespace "https://stytch.com/": Stytch refuses it in .*nginx\.conf:\d+}



=== TEST 40: session claims: list= and duplicates as stytch_tat_claim's
--- http_config
stytch_tat_session_claim groups $http_x_groups list=,;
stytch_tat_session_claim groups $http_x_other;
--- must_die
--- error_log eval
qr/duplicate claim "groups" in .*nginx\.conf:\d+/
