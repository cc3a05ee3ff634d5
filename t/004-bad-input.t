# Bad identity input: no token, an empty $stytch_tat_jwt and a log line
# naming the claim; never a malformed or truncated token.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;

our $Http = <<'_EOC_';
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
_EOC_

our $Config = <<'_EOC_';
location = /t {
    stytch_tat_email $http_x_email;
    stytch_tat_subject $http_x_user;
    stytch_tat_claim groups $http_x_groups list=,;
    stytch_tat_claim a $http_x_a;
    stytch_tat_claim b $http_x_b;
    stytch_tat_claim c $http_x_c;
    stytch_tat_claim d $http_x_d;
    stytch_tat_claim e $http_x_e;
    return 200 "[$stytch_tat_jwt]\n";
}
_EOC_

run_tests();

__DATA__

=== TEST 1: no identity: no token, an info line, no error
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- response_body
[]
--- error_log
stytch_tat: no identity: "stytch_tat_email" is empty
--- no_error_log
[error]



=== TEST 2: CR and LF in the email (from configuration: clients cannot send them)
--- http_config eval: $::Http
--- config
location = /t {
    set $email "ada\r\nX-Injected: 1@example.com";
    stytch_tat_email $email;
    return 200 "[$stytch_tat_jwt]\n";
}
--- request
GET /t
--- response_body
[]
--- error_log
stytch_tat: no token minted: claim "email": value contains a control character



=== TEST 3: a tab in the subject
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: ada\@example.com\r\nX-User: user\t1"
--- response_body
[]
--- error_log
claim "sub": value contains a control character



=== TEST 4: DEL in a claim
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: ada\@example.com\r\nX-A: a\x7fb"
--- response_body
[]
--- error_log
claim "a": value contains a control character



=== TEST 5: invalid UTF-8 in the email
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: \xc3\x28\@example.com"
--- response_body
[]
--- error_log
claim "email": value is not valid UTF-8



=== TEST 6: an overlong encoding in a list item
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: ada\@example.com\r\nX-Groups: ok,\xc0\xaf"
--- response_body
[]
--- error_log
claim "groups": value is not valid UTF-8



=== TEST 7: a value of exactly 1024 bytes is fine
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: " . ("a" x 1012) . "\@example.com"
--- response_body_like: ^\[ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\]$
--- no_error_log
[error]



=== TEST 8: 1025 bytes is too long
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: " . ("a" x 1013) . "\@example.com"
--- response_body
[]
--- error_log
claim "email": value longer than 1024 bytes



=== TEST 9: all claims together over 4096 bytes
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
join "\r\n", "X-Email: ada\@example.com",
    map { "X-$_: " . ("v" x 1000) } qw(A B C D E)
--- response_body
[]
--- error_log
claim "*": claims exceed 4096 bytes of JSON



=== TEST 10: just under the total bound still mints
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
join "\r\n", "X-Email: ada\@example.com",
    map { "X-$_: " . ("v" x 700) } qw(A B C D E)
--- response_body_like: ^\[ey[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\]$



=== TEST 11: the module never logs the bad value (nginx's debug lines aside)
--- http_config eval: $::Http
--- config eval: $::Config
--- request
GET /t
--- more_headers eval
"X-Email: ada\@example.com\r\nX-User: secret-ish\tvalue"
--- response_body
[]
--- error_log
claim "sub": value contains a control character
--- no_error_log eval
qr/^(?!.*\[debug\]).*secret-ish/



=== TEST 12: malformed request headers never reach the module
--- http_config eval: $::Http
--- config eval: $::Config
--- raw_request eval
"GET /t HTTP/1.1\r\nHost: localhost\r\nX-Email: a\0b\@example.com\r\nConnection: close\r\n\r\n"
--- error_code: 400
--- no_error_log
stytch_tat
