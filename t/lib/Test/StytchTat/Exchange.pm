package Test::StytchTat::Exchange;

# Shared configuration for the tests of the exchange: an nginx server with
# the module, its JWKS, an internal location to the emulator over verified
# TLS, and a backend server that echoes what the upstream received.

use strict;
use warnings;

use Exporter 'import';
use Test::StytchTat qw(server_port free_port);
use Test::StytchTat::Util;

our @EXPORT = qw($HttpConfig $ServerConfig $ProjectId $ProfileId
                 $B2bProfileId $OrgId emu_setup session_jwks_url);

our $ProjectId = 'project-test-00000000-0000-0000-0000-000000000000';
our $ProfileId =
    'trusted-auth-token-profile-test-00000000-0000-0000-0000-000000000000';
our $B2bProfileId =
    'trusted-auth-token-profile-test-b2b00000-0000-0000-0000-000000000000';
our $OrgId = 'organization-test-00000000-0000-0000-0000-000000000000';

our $HttpConfig = <<"_EOC_";
stytch_tat_signing_key \$TEST_NGINX_KEYS/rsa.pem;
stytch_tat_credentials \$TEST_NGINX_KEYS/creds;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_profile_id $ProfileId;

upstream stytch_api {
    server 127.0.0.1:\$TEST_NGINX_STYTCH_PORT;
    keepalive 4;
}

# the application, a server of its own as in production: the front
# server drops client X-Stytch-* headers, so a backend location there
# would see none of the module's either
server {
    listen 127.0.0.1:\$TEST_NGINX_BACKEND_PORT;

    location /backend/ {
        return 200 "jwt=\$http_x_stytch_session_jwt
user=\$http_x_stytch_user_id
session=\$http_x_stytch_session_id
token=\$http_x_stytch_session_token
forged=\$http_x_stytch_forged
cookie=\$http_cookie
";
    }
}
_EOC_

$ENV{TEST_NGINX_BACKEND_PORT} ||= free_port();

our $Internal = <<'_EOC_';
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_ssl_session_reuse on;
    proxy_connect_timeout 2s;
    proxy_read_timeout 2s;
_EOC_

# every server: the JWKS Stytch's profile points at and the internal
# locations
our $ServerConfig = <<"_EOC_";
location = /jwks { stytch_tat_jwks; }

location = /_stytch_attest {
    internal;
    proxy_pass https://stytch_api/v1/sessions/attest;
$Internal
}

location = /_stytch_attest_b2b {
    internal;
    proxy_pass https://stytch_api/v1/b2b/sessions/attest;
$Internal
}
_EOC_

# the emulator's profiles point at this test file's nginx for the JWKS
sub emu_setup {
    my (%o) = @_;
    my $jwks = $o{jwks} // 'http://127.0.0.1:' . server_port() . '/jwks';
    my %mapping = (email => 'email', token_id => 'jti',
                   external_user_id => 'sub', role_ids => 'assignments');
    emu(POST => '/reset');
    emu(POST => '/config', {
        profiles => [
            { profile_id => $ProfileId,
              issuer => 'https://auth.example.com',
              audience => 'https://api.example.com',
              jwks_url => $jwks,
              attribute_mapping => \%mapping,
              jit_provisioning => $o{jit} // JSON::PP::true,
              algorithms => ['RS256', 'ES256', 'EdDSA'] },
            { profile_id => $B2bProfileId,
              issuer => 'https://auth.example.com',
              audience => 'https://api.example.com',
              jwks_url => $jwks,
              attribute_mapping => { %mapping, external_member_id => 'sub',
                                     organization_id => 'org' },
              jit_provisioning => JSON::PP::true,
              algorithms => ['RS256'],
              b2b => JSON::PP::true },
        ],
        organizations => [
            { organization_id => $OrgId, organization_slug => 'example',
              organization_name => 'Example' },
        ],
    });
}

sub session_jwks_url {
    my ($b2b) = @_;
    return 'https://localhost:' . $ENV{TEST_NGINX_STYTCH_PORT}
        . ($b2b ? '/v1/b2b/sessions/jwks/' : '/v1/sessions/jwks/')
        . $ProjectId;
}

1;
