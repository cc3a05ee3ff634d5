# stytch_tat_jwks: the published keys, their members, methods and headers.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;

run_tests();

__DATA__

=== TEST 1: one key of each type, every member a JWK needs
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_signing_key $TEST_NGINX_KEYS/ec.pem kid=ec-2026;
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
--- config
location = /.well-known/jwks.json { stytch_tat_jwks; }
--- request
GET /.well-known/jwks.json
--- error_code: 200
--- response_headers
Content-Type: application/jwk-set+json
Cache-Control: max-age=300
--- response_body_check eval
sub {
    my $jwks = json_decode($_[0]);
    my @k = @{ $jwks->{keys} };
    die "3 keys expected\n" unless @k == 3;
    my ($rsa, $ec, $ed) = @k;
    die "rsa\n" unless $rsa->{kty} eq 'RSA' && $rsa->{alg} eq 'RS256'
        && $rsa->{e} eq 'AQAB' && length($rsa->{n}) == 342
        && $rsa->{use} eq 'sig' && !exists $rsa->{d};
    die "rsa kid is not a thumbprint\n" unless $rsa->{kid} =~ /^[A-Za-z0-9_-]{43}$/;
    die "ec\n" unless $ec->{kty} eq 'EC' && $ec->{crv} eq 'P-256'
        && $ec->{alg} eq 'ES256' && $ec->{kid} eq 'ec-2026'
        && length($ec->{x}) == 43 && length($ec->{y}) == 43 && !exists $ec->{d};
    die "ed\n" unless $ed->{kty} eq 'OKP' && $ed->{crv} eq 'Ed25519'
        && $ed->{alg} eq 'EdDSA' && length($ed->{x}) == 43 && !exists $ed->{d};
    1;
}



=== TEST 2: the default kid is the RFC 7638 thumbprint, as openssl computes it
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ec.pem;
--- config
location = /jwks { stytch_tat_jwks; }
--- request
GET /jwks
--- response_body_check eval
sub {
    my ($k) = @{ json_decode($_[0])->{keys} };
    # the thumbprint input per RFC 7638 3.2, hashed by openssl, not by us
    my $input = sprintf '{"crv":"P-256","kty":"EC","x":"%s","y":"%s"}',
                        $k->{x}, $k->{y};
    my $digest = `printf '%s' '$input' | openssl dgst -sha256 -binary | base64 -w0`;
    $digest =~ tr{+/=}{-_}d;
    $k->{kid} eq $digest or die "kid $k->{kid} is not $digest\n";
}



=== TEST 3: HEAD answers headers only
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
--- config
location = /jwks { stytch_tat_jwks; }
--- request
HEAD /jwks
--- error_code: 200
--- response_headers
Content-Type: application/jwk-set+json
--- response_body:



=== TEST 4: other methods get 405
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/ed.pem;
--- config
location = /jwks { stytch_tat_jwks; }
--- request
POST /jwks
{"keys":[]}
--- error_code: 405



=== TEST 5: no signing key: 404 and a log line that says why
--- config
location = /jwks { stytch_tat_jwks; }
--- request
GET /jwks
--- error_code: 404
--- error_log
stytch_tat_jwks: no "stytch_tat_signing_key" is configured



=== TEST 6: private key material never appears in the JWKS
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
--- config
location = /jwks { stytch_tat_jwks; }
--- request
GET /jwks
--- response_body_check eval
sub {
    my ($k) = @{ json_decode($_[0])->{keys} };
    my @private = grep { exists $k->{$_} } qw(d p q dp dq qi);
    die "private members: @private\n" if @private;
    1;
}
