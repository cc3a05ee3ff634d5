# Authorization at the edge: Stytch RBAC (permissions, B2B tenancy),
# required factors with freshness (RFC 9470 step-up) and conditions on the
# session, decided in the worker for every session the module hands on
# (the exchange, a zone hit, stytch_tat_verify, cluster mode), against the
# policy the emulator serves; the policy fetched, kept, refreshed, its
# failures and its staleness bound.  The verdicts themselves are held to
# Stytch's SDK by t/tools/test/rbac-differential.test.mjs.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use Time::HiRes qw(sleep);

$ENV{TEST_NGINX_PROJECT_ID} = $ProjectId;
$ENV{TEST_NGINX_ORG} = $OrgId;
$ENV{TEST_NGINX_ECHO_PORT} = free_port();

sub stop_here {
    my ($why) = @_;
    diag($why);
    done_testing();
    exit 1;
}

my %Policy = (
    resources => [
        { resource_id => 'documents', description => '', actions => [qw(read write delete)] },
        { resource_id => 'billing', description => '', actions => [qw(read)] },
    ],
    roles => [
        { role_id => 'stytch_user', description => '', permissions => [] },
        { role_id => 'reader', description => '',
          permissions => [{ resource_id => 'documents', actions => ['read'] }] },
        { role_id => 'writer', description => '',
          permissions => [{ resource_id => 'documents', actions => [qw(read write)] }] },
        { role_id => 'admin', description => '',
          permissions => [{ resource_id => 'documents', actions => ['*'] },
                          { resource_id => 'billing', actions => ['*'] }] },
    ],
    scopes => [],
);
my %B2bPolicy = (
    resources => $Policy{resources},
    roles => [
        { role_id => 'stytch_member', description => '',
          permissions => [{ resource_id => 'documents', actions => ['read'] }] },
        { role_id => 'stytch_admin', description => '', permissions => [] },
        @{ $Policy{roles} }[1 .. 3],
    ],
    scopes => [],
);

my $tls = <<'_EOC_';
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_connect_timeout 2s;
    proxy_read_timeout 2s;
_EOC_

my $http = $HttpConfig . <<'_EOC_';
stytch_tat_zone zone=authz:1m;
stytch_tat_zone zone=b2b:1m;
stytch_tat_zone zone=stale:1m;
stytch_tat_zone zone=client:1m;

map $request_method $doc_action {
    GET      read;
    DELETE   delete;
    default  write;
}

map $stytch_session_roles $is_admin {
    ~(^|,)admin(,|$)  1;
    default           0;
}

server {
    listen 127.0.0.1:$TEST_NGINX_ECHO_PORT;
    location / {
        return 200 "user=$http_x_stytch_user_id
jwt=$http_x_stytch_session_jwt
granted=$http_x_granted
";
    }
}
_EOC_

my $common = <<'_EOC_';
    add_header X-Error $stytch_tat_error always;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Granted $stytch_tat_granted_roles always;
    add_header X-Roles $stytch_session_roles always;
    add_header X-Factors $stytch_session_factors always;
    add_header X-Org $stytch_session_organization_id always;
    add_header X-Slug $stytch_session_organization_slug always;
    proxy_set_header X-Granted $stytch_tat_granted_roles;
    proxy_pass http://127.0.0.1:$TEST_NGINX_ECHO_PORT;
_EOC_

my $exchange = <<'_EOC_';
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_claim assignments $http_x_roles list=,;
_EOC_

my $config = $ServerConfig . <<"_EOC_";
location = /_stytch_rbac {
    internal;
    proxy_pass https://stytch_api/v1/rbac/policy;
$tls
}
location = /_stytch_rbac_b2b {
    internal;
    proxy_pass https://stytch_api/v1/b2b/rbac/policy;
$tls
}
location = /_stytch_jwks {
    internal;
    proxy_pass https://stytch_api/v1/sessions/jwks/\$TEST_NGINX_PROJECT_ID;
$tls
}
location = /_stytch_auth {
    internal;
    proxy_pass https://stytch_api/v1/sessions/authenticate;
$tls
}
location = /status { stytch_tat_status; }

stytch_tat_rbac_policy /_stytch_rbac refresh=1s;

location /docs {
$exchange
    stytch_tat_cache authz;
    stytch_tat_require_permission documents \$doc_action;
$common
}
location /billing {
$exchange
    stytch_tat_cache authz;
    stytch_tat_require_permission billing read;
    stytch_tat_require_permission documents read;
$common
}
location /fresh {
$exchange
    stytch_tat_cache authz;
    stytch_tat_require_factor trusted_auth_token delivery_method=trusted_token_exchange max_age=5s;
$common
}
location /totp {
$exchange
    stytch_tat_cache authz;
    stytch_tat_require_factor totp max_age=10m;
    error_page 401 = \@step_up;
$common
}
location \@step_up {
    return 302 /login?step_up=1;
}
location /admin-only {
$exchange
    stytch_tat_cache authz;
    stytch_tat_require \$is_admin error=403;
$common
}
location /stale {
$exchange
    stytch_tat_cache stale;
    stytch_tat_rbac_policy /_stytch_rbac refresh=1s max_stale=2s;
    stytch_tat_require_permission documents read;
$common
}
location ~ ^/org/(?<org>[^/]+)/docs {
    stytch_tat /_stytch_attest_b2b;
    stytch_tat_email \$http_x_email;
    stytch_tat_claim assignments \$http_x_roles list=,;
    stytch_tat_organization_id \$TEST_NGINX_ORG claim=org;
    stytch_tat_profile_id $B2bProfileId;
    stytch_tat_cache b2b;
    stytch_tat_rbac_policy /_stytch_rbac_b2b refresh=1h;
    stytch_tat_require_permission documents \$doc_action organization=\$org;
$common
}
location /api {
    stytch_tat_verify \$http_authorization;
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache client;
    stytch_tat_require_permission documents \$doc_action;
$common
}
location /app {
$exchange
    stytch_tat_cache client;
    stytch_tat_cookie on;
    stytch_tat_refresh /_stytch_auth;
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_require_permission documents \$doc_action;
$common
}
_EOC_

emu_setup();
emu(POST => '/config', { session_jwt_lifetime_seconds => 300,
                         rbac_roles => [qw(reader writer admin)],
                         rbac_policy => \%Policy, b2b_rbac_policy => \%B2bPolicy });

ok(start_nginx({ http_config => $http, config => $config, workers => 2 }),
   'nginx starts') or stop_here(last_error());

sub req {
    my ($method, $uri, $email, $roles, %h) = @_;
    return http_request($method, $uri, { 'X-Email' => $email,
                                         (defined $roles ? ('X-Roles' => $roles) : ()), %h });
}
sub zone { json_decode((http_request('GET', '/status'))[2])->{zones}{$_[0]} }

my ($st, $h, $body, $off);

# --- permissions: the exchange, then a zone hit ---------------------------------
$off = error_log_offset();
($st, $h, $body) = req(GET => '/docs', 'reader@example.com', 'reader');
is("$st $h->{'x-cache'}", '200 MISS', 'reader reads documents (a new session)');
is($h->{'x-roles'}, 'stytch_user,reader', '$stytch_session_roles: the session JWT\'s roles');
is($h->{'x-granted'}, 'reader', '$stytch_tat_granted_roles: the role that granted it');
like($body, qr/^granted=reader$/m, 'and it can go upstream');
is($h->{'x-factors'}, 'trusted_auth_token', '$stytch_session_factors');
my ($reader_jwt) = $body =~ /^jwt=(\S+)$/m;

($st, $h) = req(POST => '/docs', 'reader@example.com', 'reader');
is("$st $h->{'x-cache'} $h->{'x-error'}", '403 HIT permission_denied',
   'reader may not write: 403 on a zone hit, permission_denied');
like(scalar error_log_since($off),
     qr/\[info\].*access denied: permission_denied \(user "user-[^"]+", resource "documents", action "write"\)/,
     'an info line names the user, the resource, the action and the reason');

($st, $h) = req(DELETE => '/docs', 'admin@example.com', 'admin');
is("$st $h->{'x-granted'}", '200 admin', 'admin deletes documents: "*" is every action');
($st, $h) = req(POST => '/docs', 'both@example.com', 'reader,writer');
is("$st $h->{'x-granted'}", '200 writer', 'of two roles, the one that grants it');
($st, $h) = req(GET => '/docs', 'nobody@example.com');
is("$st $h->{'x-error'}", '403 permission_denied',
   'stytch_user alone: the policy gives it nothing');

($st, $h) = req(GET => '/billing', 'writer@example.com', 'writer');
is("$st $h->{'x-error'}", '403 permission_denied', 'two requirements: both must hold');
($st, $h) = req(GET => '/billing', 'admin@example.com', 'admin');
is($st, 200, 'two requirements: admin holds both');

# --- conditions on the session, the nginx way ----------------------------------
($st, $h) = req(GET => '/admin-only', 'admin@example.com', 'admin');
is($st, 200, 'stytch_tat_require with a map on $stytch_session_roles: admin');
($st, $h) = req(GET => '/admin-only', 'writer@example.com', 'writer');
is("$st $h->{'x-error'}", '403 condition_failed', 'and anyone else: 403 condition_failed');

# --- factors: step-up ----------------------------------------------------------
($st, $h) = req(GET => '/totp', 'reader@example.com', 'reader');
is($st, 302, 'a missing factor: 401, which error_page sends to the step-up flow');
like($h->{location} // '', qr{/login\?step_up=1$}, 'the step-up location');

($st, $h) = req(GET => '/fresh', 'fresh@example.com', 'reader');
is($st, 200, 'a factor of the right type and delivery, fresh');
sleep 6.2;   # past max_age=5s since the attest
($st, $h) = req(GET => '/fresh', 'fresh@example.com', 'reader');
is("$st $h->{'x-error'}", '401 factor_required', 'the same factor, too old: 401 factor_required');
like($h->{'www-authenticate'} // '',
     qr/^Bearer realm="stytch", error="insufficient_user_authentication", error_description="[^"]+", max_age=5$/,
     'the RFC 9470 challenge, with max_age');

# --- B2B: tenancy first -----------------------------------------------------------
($st, $h, $body) = req(GET => "/org/$OrgId/docs", 'member@example.com', 'reader');
is("$st $h->{'x-org'}", "200 $OrgId", 'B2B: a member reads in their organization');
is($h->{'x-slug'}, 'example', '$stytch_session_organization_slug');
($st, $h) = req(GET => '/org/organization-test-other/docs', 'member@example.com', 'reader');
is("$st $h->{'x-error'}", '403 tenancy_mismatch', 'another organization: tenancy_mismatch');
($st, $h) = req(GET => '/org/example/docs', 'member@example.com', 'reader');
is("$st $h->{'x-error'}", '403 tenancy_mismatch', 'the slug is no organization id');
($st, $h) = req(POST => "/org/$OrgId/docs", 'member@example.com', 'reader');
is("$st $h->{'x-error'}", '403 permission_denied', 'B2B: the right organization, not the permission');
($st, $h) = req(POST => "/org/$OrgId/docs", 'wmember@example.com', 'writer');
is($st, 200, 'B2B: a writer writes');

# --- stytch_tat_verify and cluster mode ------------------------------------------
($st, $h) = http_request(GET => '/api', { Authorization => "Bearer $reader_jwt" });
is("$st $h->{'x-cache'} $h->{'x-granted'}", '200 CLIENT reader',
   'stytch_tat_verify: the session JWT the client brings, allowed');
($st, $h) = http_request(POST => '/api', { Authorization => "Bearer $reader_jwt" });
is("$st $h->{'x-error'}", '403 permission_denied', 'stytch_tat_verify: denied (from the zone)');

($st, $h) = req(GET => '/app', 'cluster@example.com', 'reader');
is($st, 200, 'cluster mode: a first session');
my %c = map { /^\s*(stytch_session(?:_jwt)?)=([^;]*)/ ? ($1 => $2) : () }
        split /,(?=\s*stytch_session)/, join(',', ref $h->{'set-cookie'} ? @{ $h->{'set-cookie'} }
                                                                         : ($h->{'set-cookie'} // ''));
my $cookie = "stytch_session_jwt=$c{stytch_session_jwt}; stytch_session=$c{stytch_session}";
($st, $h) = req(GET => '/app', 'cluster@example.com', 'reader', Cookie => $cookie);
is("$st $h->{'x-cache'}", '200 CLIENT', 'cluster mode: the bound cookie, allowed');
($st, $h) = req(POST => '/app', 'cluster@example.com', 'reader', Cookie => $cookie);
is("$st $h->{'x-cache'} $h->{'x-error'}", '403 CLIENT permission_denied',
   'cluster mode: the bound cookie, denied');

# --- the policy: refresh, failures, staleness ------------------------------------
my $z0 = zone('authz');
ok($z0->{rbac}{policy_fetches} >= 1, 'status: the policy was fetched')
    or diag(explain $z0);

# a refresh that changes a verdict: readers may now write
my %p2 = %Policy;
$p2{roles} = [ map { $_->{role_id} eq 'reader'
                     ? { %$_, permissions => [{ resource_id => 'documents', actions => [qw(read write)] }] }
                     : $_ } @{ $Policy{roles} } ];
emu(POST => '/config', { rbac_policy => \%p2 });
sleep 1.2;   # past refresh=1s
($st, $h) = req(POST => '/docs', 'reader@example.com', 'reader');
is($st, 200, 'a refreshed policy changes the verdict: reader writes');

# a failed refresh keeps the old policy
emu(POST => '/faults', { mode => 'status', status => 500, path => '/v1/rbac/policy' });
sleep 1.2;
$off = error_log_offset();
($st, $h) = req(POST => '/docs', 'reader@example.com', 'reader');
is($st, 200, 'a failed refresh: the policy kept before decides');
like(scalar error_log_since($off),
     qr/\[error\].*RBAC policy not fetched through "\/_stytch_rbac".*kept before/,
     'the failed refresh is logged at error');
emu(DELETE => '/faults');

# a malformed and an oversized document: refused, the old policy kept
for my $mode (qw(malformed_json oversized)) {
    emu(POST => '/faults', { mode => $mode, path => '/v1/rbac/policy' });
    sleep 5.5;   # past the 5 s backoff after a failure, and refresh=1s
    $off = error_log_offset();
    ($st, $h) = req(POST => '/docs', 'reader@example.com', 'reader');
    is($st, 200, "a $mode policy: the old one decides");
    like(scalar error_log_since($off), qr/\[error\].*RBAC policy not fetched/,
         "a $mode policy: logged");
    emu(DELETE => '/faults');
}

# past max_stale=: no policy, fail closed
emu(POST => '/config', { rbac_policy => \%Policy });
($st, $h) = req(GET => '/stale', 'stale@example.com', 'reader');
is($st, 200, 'max_stale: a first policy');
emu(POST => '/faults', { mode => 'status', status => 503, path => '/v1/rbac/policy' });
sleep 3.2;   # past max_stale=2s
$off = error_log_offset();
($st, $h) = req(GET => '/stale', 'stale@example.com', 'reader');
is("$st $h->{'x-error'}", '503 rbac_policy_unavailable',
   'a policy past max_stale is not used: 503');
like(scalar error_log_since($off), qr/\[error\].*past max_stale=2: not used/,
     'and a log line says why');
emu(DELETE => '/faults');

my $z = zone('authz');
ok($z->{rbac}{allowed} >= 8, 'status: allowed counted') or diag(explain $z->{rbac});
ok($z->{rbac}{denied}{permission_denied} >= 3 && $z->{rbac}{denied}{factor_required} >= 1
   && $z->{rbac}{denied}{condition_failed} >= 1, 'status: denials by reason');
ok($z->{rbac}{policy_failures} >= 1, 'status: failed policy fetches');
is(zone('b2b')->{rbac}{denied}{tenancy_mismatch}, 2, 'status: tenancy_mismatch counted');

ok(stop_nginx(), 'no alert, emerg or crash') or diag(last_error());

run_tests();

__DATA__

=== TEST 1: a permission without a policy where it applies
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location /docs {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_cache tat;
    stytch_tat_require_permission documents read;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/"stytch_tat_require_permission" in \S+:\d+ needs "stytch_tat_rbac_policy" where it applies/



=== TEST 2: two policies in one zone
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_a { internal; proxy_pass https://stytch_api/v1/rbac/policy; }
location = /_b { internal; proxy_pass https://stytch_api/v1/b2b/rbac/policy; }
location /a {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_cache tat;
    stytch_tat_rbac_policy /_a;
    stytch_tat_require_permission documents read;
    return 200;
}
location /b {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_cache tat;
    stytch_tat_rbac_policy /_b;
    stytch_tat_require_permission documents read;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/use one stytch_tat_cache zone "tat", which keeps one policy/



=== TEST 3: the policy URI must reach an internal location that proxies
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_policy { return 200 "{}"; }
location /docs {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_cache tat;
    stytch_tat_rbac_policy /_policy;
    stytch_tat_require_permission documents read;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/stytch_tat_rbac_policy/



=== TEST 4: bad parameters
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location /docs {
    stytch_tat_require_factor totp max_age=forever;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/invalid time in "max_age=forever"/



=== TEST 5: stytch_tat_require's error= is 401 or 403
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /docs {
    stytch_tat_require $arg_x error=500;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/invalid parameter "error=500", expected "error=401" or "error=403"/
