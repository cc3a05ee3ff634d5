# Minting: $stytch_tat_jwt for RS256, ES256 and EdDSA, verified by npm's
# jose against the module's own JWKS, and the claims Stytch's example builds.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;

our $Port = server_port();
our $Jwks = "http://127.0.0.1:$Port/jwks";

# the token must verify with jose, for this algorithm, iss and aud
sub verified {
    my ($alg) = @_;
    return sub {
        my ($body) = @_;
        chomp $body;
        my $v = verify_jwt($body, jwks => $Jwks, alg => $alg,
                           iss => 'https://auth.example.com',
                           aud => 'https://api.example.com');
        die "typ is not JWT\n" unless $v->{header}{typ} eq 'JWT';
        die "no kid\n" unless length $v->{header}{kid};
        return 1;
    };
}

run_tests();

__DATA__

=== TEST 1: the seed example gives exactly Stytch's claims plus nbf
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    stytch_tat_subject user_123456;
    stytch_tat_claim assignments editor,reader list=,;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- error_code: 200
--- response_body_check eval
sub {
    my ($body) = @_;
    chomp $body;
    my ($h, $c, $sig) = jwt_parts($body) or die "not a JWS: $body\n";
    my @names = sort keys %$c;
    die "claims: @names\n" unless "@names" eq
        "assignments aud email exp iat iss jti nbf sub";
    die "iss\n" unless $c->{iss} eq 'https://auth.example.com';
    die "aud\n" unless $c->{aud} eq 'https://api.example.com';
    die "sub\n" unless $c->{sub} eq 'user_123456';
    die "email\n" unless $c->{email} eq 'ada.lovelace@example.com';
    die "assignments\n" unless json_encode($c->{assignments})
                               eq '["editor","reader"]';
    die "exp is not iat + 5m\n" unless $c->{exp} - $c->{iat} == 300;
    die "nbf\n" unless $c->{nbf} == $c->{iat};
    die "iat is not now\n" unless abs($c->{iat} - time) < 5;
    die "jti under 128 bits\n" unless $c->{jti} =~ /^[A-Za-z0-9_-]{22,}$/;
    die "header\n" unless $h->{alg} eq 'RS256' && $h->{typ} eq 'JWT';
    die "signature length\n" unless length $sig == 256;
    1;
}
--- no_error_log
[error]



=== TEST 2: RS256 verifies with jose through the JWKS
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email $http_x_email;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- more_headers
X-Email: ada.lovelace@example.com
--- response_body_check eval
main::verified('RS256')



=== TEST 3: ES256 (PKCS#8) verifies with jose: raw r||s, not DER
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ec.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request eval
[map { "GET /t" } 1 .. 5]
--- response_body_check eval
main::verified('ES256')



=== TEST 4: ES256 from a traditional "EC PRIVATE KEY" file
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ec-sec1.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
main::verified('ES256')



=== TEST 5: EdDSA verifies with jose
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
main::verified('EdDSA')



=== TEST 6: a traditional "RSA PRIVATE KEY" file signs too
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa-trad.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
main::verified('RS256')



=== TEST 7: rotation: the first key signs, jose finds it among all published
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa2.pem kid=next;
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem kid=current;
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
sub {
    my ($body) = @_;
    chomp $body;
    my ($h) = jwt_parts($body);
    die "signed by $h->{kid}\n" unless $h->{kid} eq 'next';
    main::verified('RS256')->($body);
}



=== TEST 8: key from an environment variable, as base64 of PEM
--- main_config
env STYTCH_TAT_TEST_KEY;
--- env
STYTCH_TAT_TEST_KEY=$TEST_NGINX_KEY_B64
--- http_config
stytch_tat_signing_key env:STYTCH_TAT_TEST_KEY;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /jwks { stytch_tat_jwks; }
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
main::verified('RS256')



=== TEST 9: token id from a variable, claims and values from variables
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience $http_x_aud;
--- config
location = /t {
    stytch_tat_email $http_x_email;
    stytch_tat_subject $http_x_user;
    stytch_tat_token_id $http_x_validation;
    stytch_tat_claim groups "$http_x_groups" list=|;
    stytch_tat_claim department $http_x_dept;
    stytch_tat_claim note "Zoë \"quoted\" \\ done";
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- more_headers
X-Email: grace@example.com
X-User: u-42
X-Aud: https://other.example.com
X-Validation: validation-7f3a
X-Groups: a | b ||c|
--- response_body_check eval
sub {
    my ($body) = @_;
    chomp $body;
    my (undef, $c) = jwt_parts($body) or die "not a JWS\n";
    die "jti $c->{jti}\n" unless $c->{jti} eq 'validation-7f3a';
    die "aud\n" unless $c->{aud} eq 'https://other.example.com';
    die "groups\n" unless json_encode($c->{groups}) eq '["a","b","c"]';
    die "an empty claim is left out\n" if exists $c->{department};
    die "note: $c->{note}\n" unless $c->{note} eq "Zo\x{eb} \"quoted\" \\ done";
    1;
}



=== TEST 10: every request gets a fresh jti; one request mints once
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
--- config
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt $stytch_tat_jwt\n";
}
--- request eval
["GET /t", "GET /t"]
--- response_body_check eval
sub {
    my ($body, undef, undef, undef, $i) = @_;
    chomp $body;
    my ($a, $b) = split / /, $body;
    die "minted twice in one request\n" unless $a eq $b;
    my (undef, $c) = jwt_parts($a);
    die "jti reused across requests\n" if $main::SeenJti{$c->{jti}}++;
    1;
}



=== TEST 11: token ttl
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_token_ttl 90s;
--- config
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t
--- response_body_check eval
sub {
    my ($body) = @_;
    chomp $body;
    my (undef, $c) = jwt_parts($body);
    $c->{exp} - $c->{iat} == 90 or die "exp - iat = ", $c->{exp} - $c->{iat}, "\n";
}



=== TEST 12: the most claims there can be, and the organization's claim after them
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_zone zone=many:1m;
--- config
location = /t {
    stytch_tat_email ada.lovelace@example.com;
    stytch_tat_subject $arg_v;
    stytch_tat_organization_id organization-test-1 claim=org;
    stytch_tat_cache many;
    stytch_tat_claim c0 $arg_v;
    stytch_tat_claim c1 $arg_v;
    stytch_tat_claim c2 $arg_v;
    stytch_tat_claim c3 $arg_v;
    stytch_tat_claim c4 $arg_v;
    stytch_tat_claim c5 $arg_v;
    stytch_tat_claim c6 $arg_v;
    stytch_tat_claim c7 $arg_v;
    stytch_tat_claim c8 $arg_v;
    stytch_tat_claim c9 $arg_v;
    stytch_tat_claim c10 $arg_v;
    stytch_tat_claim c11 $arg_v;
    stytch_tat_claim c12 $arg_v;
    stytch_tat_claim c13 $arg_v;
    stytch_tat_claim c14 $arg_v;
    stytch_tat_claim c15 $arg_v;
    stytch_tat_claim c16 $arg_v;
    stytch_tat_claim c17 $arg_v;
    stytch_tat_claim c18 $arg_v;
    stytch_tat_claim c19 $arg_v;
    stytch_tat_claim c20 $arg_v;
    stytch_tat_claim c21 $arg_v;
    stytch_tat_claim c22 $arg_v;
    stytch_tat_claim c23 $arg_v;
    stytch_tat_claim c24 $arg_v;
    stytch_tat_claim c25 $arg_v;
    stytch_tat_claim c26 $arg_v;
    stytch_tat_claim c27 $arg_v;
    stytch_tat_claim c28 $arg_v;
    stytch_tat_claim c29 $arg_v;
    stytch_tat_claim c30 $arg_v;
    stytch_tat_claim c31 $arg_v;
    return 200 "$stytch_tat_jwt\n";
}
--- request
GET /t?v=x
--- response_body_check eval
sub {
    my ($body) = @_;
    chomp $body;
    my (undef, $c) = jwt_parts($body);
    $c->{org} eq 'organization-test-1' or die "org claim\n";
    $c->{c31} eq 'x' && $c->{c0} eq 'x' && $c->{sub} eq 'x' or die "claims\n";
    1;
}
