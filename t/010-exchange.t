# The exchange against the emulator over verified TLS: consumer and B2B
# sessions handed to the upstream, what Stytch sees, identity from
# auth_request, cookies, custom factors.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;

$ENV{TEST_NGINX_B2B_PROFILE} = $B2bProfileId;

# the README's Google IAP recipe, exactly as written there: its two maps
our $IapMaps = do {
    open my $fh, '<', 'README.md' or die "README.md: $!\n";
    local $/;
    my $readme = <$fh>;
    my ($block) = $readme =~ /```nginx\n(\s*# Google IAP: .*?)```/s
        or die "no Google IAP recipe in README.md\n";
    my @maps = $block =~ /^(\s*map .*?^\s*\})/msg;
    @maps == 2 or die "the IAP recipe has no two maps\n";
    join "\n", @maps;
};
$ENV{TEST_NGINX_ORG} = $OrgId;
emu_setup();

# the backend's echo, as a hash
sub echo { my %h = $_[0] =~ /^(\w+)=(.*)$/mg; \%h }

# the session JWT the upstream got verifies with jose against Stytch's JWKS
sub session_ok {
    my ($b2b) = @_;
    return sub {
        my $e = echo($_[0]);
        my $v = verify_jwt($e->{jwt}, jwks => session_jwks_url($b2b),
                           alg => 'RS256', iss => "stytch.com/$ProjectId",
                           aud => $ProjectId);
        $v->{payload}{sub} eq $e->{user}
            or die "sub $v->{payload}{sub} is not the user $e->{user}\n";
        my $claim = $v->{payload}{'https://stytch.com/session'}
            or die "no session claim\n";
        $claim->{id} eq $e->{session} or die "session id differs\n";
        $e->{forged} eq '' or die "a forged header reached the upstream\n";
        $e->{token} eq '' or die "the session token went upstream unasked\n";
        1;
    };
}

run_tests();

# what Stytch saw of all these requests
my @calls = (emu_calls('/v1/sessions/attest'),
             emu_calls('/v1/b2b/sessions/attest'));
ok(@calls >= 5, 'the attest calls are in the emulator\'s log');
my %allowed = map { $_ => 1 }
    qw(host connection content-length content-type user-agent authorization);
my @extra = grep { !$allowed{$_} } map { keys %{ $_->{headers} } } @calls;
is("@extra", '', 'no client header or cookie reached Stytch');
my @bodies = grep { ref $_->{body} ne 'HASH' || !$_->{body}{token} } @calls;
is(scalar @bodies, 0, 'every attest body is the module\'s JSON');
my %seen;
my @replayed = grep { defined $_ && $seen{$_}++ } map { $_->{token_id} } @calls;
my @explicit = grep { /^validation-/ } @replayed;
is(scalar(@replayed) - scalar(@explicit), 0,
   'no token id was sent twice unless set explicitly');
is(scalar(grep { $_->{auth} ne 'ok' } @calls), 0,
   'every call carried the credentials');
my ($version) = do {
    open my $fh, '<', repo_root() . '/src/ngx_http_stytch_tat_version.h' or die $!;
    map { /^#define NGX_HTTP_STYTCH_TAT_VERSION\s+"([^"]+)"/ ? $1 : () } <$fh>;
};
my @ua = grep { $_ ne "ngx_http_stytch_tat_module/$version" }
         map { $_->{headers}{'user-agent'} // '' } @calls;
is("@ua", '', "every call's User-Agent names the release, $version");

__DATA__

=== TEST 1: consumer: the upstream gets a session Stytch signed
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_subject $http_x_user;
    stytch_tat_claim assignments $http_x_groups list=,;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app/page
--- more_headers
X-Email: ada.lovelace@example.com
X-User: user_123456
X-Groups: editor,reader
X-Stytch-Forged: evil
X-Stytch-Session-Jwt: forged.jwt.value
Cookie: stytch_session=client-cookie
--- error_code: 200
--- response_body_check eval
main::session_ok(0)
--- error_log
dropped 2 client header(s) named X-Stytch-*
--- no_error_log
[error]



=== TEST 2: the variables carry the session
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    add_header X-User $stytch_user_id;
    add_header X-Session $stytch_session_id;
    add_header X-Token $stytch_session_token;
    add_header X-Jwt $stytch_session_jwt;
    add_header X-Error "[$stytch_tat_error]";
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: grace.hopper@example.com
--- error_code: 200
--- response_body_check eval
sub {
    my $h = $_[1];
    my $e = { map { $_ => $h->{"x-$_"} } qw(user session token jwt error) };
    $e->{error} =~ s/^\[(.*)\]$/$1/;
    $e->{user} =~ /^user-test-/ or die "user $e->{user}\n";
    $e->{session} =~ /^session-test-/ or die "session\n";
    length($e->{token}) == 44 or die "session token length\n";
    $e->{jwt} =~ /^ey[\w-]+\.[\w-]+\.[\w-]+$/ or die "jwt\n";
    $e->{error} eq '' or die "error $e->{error}\n";
    1;
}



=== TEST 3: identity from auth_request_set (an oauth2-proxy style source)
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location = /oauth2/auth {
    internal;
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/idp;
    proxy_pass_request_body off;
    proxy_set_header Content-Length "";
}
location = /idp {
    add_header X-Auth-Request-Email "linus@example.com" always;
    add_header X-Auth-Request-User "u-linus" always;
    return 202;
}
location /app {
    auth_request /oauth2/auth;
    auth_request_set $email $upstream_http_x_auth_request_email;
    auth_request_set $user $upstream_http_x_auth_request_user;
    stytch_tat /_stytch_attest;
    stytch_tat_email $email;
    stytch_tat_subject $user;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- error_code: 200
--- response_body_check eval
sub {
    main::session_ok(0)->($_[0]);
    my ($call) = reverse emu_calls();
    my (undef, $c) = jwt_parts($call->{body}{token});
    $c->{email} eq 'linus@example.com' or die "email $c->{email}\n";
    $c->{sub} eq 'u-linus' or die "sub $c->{sub}\n";
    1;
}



=== TEST 4: no identity: 401, nothing sent to Stytch
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- error_code: 401
--- response_headers
X-Error: identity_missing
--- no_error_log
subrequest



=== TEST 5: bad identity: 400 and a log line, nothing sent to Stytch
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers eval
"X-Email: \xc3\x28\@example.com"
--- error_code: 400
--- response_headers
X-Error: identity_invalid
--- error_log
claim "email": value is not valid UTF-8
--- no_error_log
http subrequest



=== TEST 6: cookies for Stytch's frontend SDKs
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_cookie on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: ada.lovelace@example.com
--- error_code: 200
--- response_headers_like
Set-Cookie: ^stytch_session=[\w-]{44}; Path=/; Max-Age=3[56]\d\d; Secure; HttpOnly; SameSite=Lax, stytch_session_jwt=ey[\w.-]+; Path=/; Max-Age=3[56]\d\d; Secure; HttpOnly; SameSite=Lax$



=== TEST 7: the session token goes upstream only when asked
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_pass_session_token on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: ada.lovelace@example.com
--- error_code: 200
--- response_body_like: (?m)^token=[\w-]{44}$



=== TEST 8: a custom factor: the attest adds it to the client's session
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /login {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_pass_session_token on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /step-up {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_session_token $cookie_stytch_session;
    stytch_tat_token_id $http_x_validation_id;
    stytch_tat_pass_session_token on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /step-up-timed {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_session_token $cookie_stytch_session;
    stytch_tat_token_id $http_x_validation_id;
    stytch_tat_session_duration 24h;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /login
--- more_headers
X-Email: mfa.user@example.com
--- error_code: 200
--- response_body_check eval
sub {
    my $first = main::echo($_[0]);
    my ($token, $sid) = @$first{qw(token session)};
    my ($st, undef, $body) = http_request('GET', '/step-up', {
        'X-Email' => 'mfa.user@example.com',
        'X-Validation-Id' => 'validation-pin-8812',
        'Cookie' => "stytch_session=$token",
    });
    $st == 200 or die "step-up status $st\n";
    my $sid2 = main::echo($body)->{session};
    $sid2 eq $sid or die "a new session $sid2, not $sid\n";
    my ($call) = reverse emu_calls();
    $call->{body}{session_token} eq $token or die "no session_token sent\n";
    $call->{token_id} eq 'validation-pin-8812' or die "token id\n";
    # Stytch applies a duration from now: a step-up must not cut it short
    exists $call->{body}{session_duration_minutes}
        and die "a step-up sent session_duration_minutes unasked\n";
    my ($first_call) = grep { !$_->{body}{session_token} } emu_calls();
    $first_call->{body}{session_duration_minutes} == 60
        or die "a new session gets the default 60 minutes\n";
    ($st) = http_request('GET', '/step-up-timed', {
        'X-Email' => 'mfa.user@example.com',
        'X-Validation-Id' => 'validation-pin-8813',
        'Cookie' => "stytch_session=$token",
    });
    $st == 200 or die "timed step-up status $st\n";
    ($call) = reverse emu_calls();
    ($call->{body}{session_duration_minutes} // 0) == 1440
        or die "an explicit duration on a step-up is sent\n";
    1;
}



=== TEST 9: B2B: organization id switches to member sessions; under JIT provisioning the organization is a claim (the profile maps organization_id to "org")
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest_b2b;
    stytch_tat_profile_id $TEST_NGINX_B2B_PROFILE;
    stytch_tat_organization_id $TEST_NGINX_ORG claim=org;
    stytch_tat_email $http_x_email;
    stytch_tat_claim assignments $http_x_groups list=,;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: member@example.com
X-Groups: reader
--- error_code: 200
--- response_body_check eval
sub {
    my $e = main::echo($_[0]);
    $e->{user} =~ /^member-test-/ or die "member id $e->{user}\n";
    $e->{session} =~ /^member-session-test-|^session-test-/
        or die "member session $e->{session}\n";
    my $v = verify_jwt($e->{jwt}, jwks => session_jwks_url(1),
                       alg => 'RS256', aud => $ProjectId);
    $v->{payload}{'https://stytch.com/organization'}{organization_id}
        eq $OrgId or die "organization claim\n";
    my ($call) = reverse emu_calls('/v1/b2b/sessions/attest');
    $call->{body}{organization_id} eq $OrgId or die "no organization_id\n";
    my (undef, $c) = jwt_parts($call->{body}{token});
    ($c->{org} // '') eq $OrgId or die "no organization claim in the token\n";
    "@{$c->{assignments}}" eq 'reader' or die "the other claims are kept\n";
    1;
}



=== TEST 9b: B2B under JIT provisioning with the organization only in the body: Stytch refuses it
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest_b2b;
    stytch_tat_profile_id $TEST_NGINX_B2B_PROFILE;
    stytch_tat_organization_id $TEST_NGINX_ORG;
    stytch_tat_email $http_x_email;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: new.member@example.com
--- error_code: 403
--- response_headers
X-Error: token_missing_organization_id_claim
--- error_log eval
qr/\[warn\].*Stytch refused the identity: status 400, error_type "token_missing_organization_id_claim"/



=== TEST 10: identity only from trusted addresses: others get 403
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat_trusted_addresses 10.0.0.0/8 192.168.0.0/16;
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request
GET /app
--- more_headers
X-Email: ada.lovelace@example.com
--- error_code: 403
--- response_headers
X-Error: untrusted_address
--- error_log
stytch_tat: identity refused from 127.0.0.1: not in "stytch_tat_trusted_addresses"
--- no_error_log
http subrequest



=== TEST 11: a trusted address passes
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat_trusted_addresses 10.0.0.0/8 127.0.0.0/8;
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /assert {
    stytch_tat_trusted_addresses 10.0.0.0/8;
    stytch_tat_email $http_x_email;
    return 200 "[$stytch_tat_jwt]\n";
}
_EOC_
--- request eval
["GET /app", "GET /assert"]
--- more_headers
X-Email: ada.lovelace@example.com
--- error_code eval
[200, 200]
--- response_body_like eval
[qr/^user=user-test-/m, qr/^\[\]$/]



=== TEST 12: the organization and its claim are inherited together, the claims apart
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
stytch_tat_organization_id org-server claim=org;
stytch_tat_email $http_x_email;
location /own-claims {
    stytch_tat_claim dept sales;
    return 200 $stytch_tat_jwt;
}
location /inherited {
    return 200 $stytch_tat_jwt;
}
location /own-organization {
    stytch_tat_organization_id org-location;
    return 200 $stytch_tat_jwt;
}
location /own-claim-name {
    stytch_tat_organization_id org-location claim=tenant;
    return 200 $stytch_tat_jwt;
}
_EOC_
--- request eval
["GET /own-claims", "GET /inherited", "GET /own-organization", "GET /own-claim-name"]
--- more_headers
X-Email: ada.lovelace@example.com
--- error_code eval
[200, 200, 200, 200]
--- response_body_check eval
[map { my $want = $_; sub {
    my (undef, $c) = jwt_parts($_[0]) or die "no token\n";
    my $got = join ',', map { "$_=" . ($c->{$_} // '-') } qw(org tenant dept);
    $got eq $want or die "claims $got, not $want\n";
    1;
} } ('org=org-server,tenant=-,dept=sales', 'org=org-server,tenant=-,dept=-',
     'org=-,tenant=-,dept=-', 'org=-,tenant=org-location,dept=-')]



=== TEST 13: session claims: sent as session_custom_claims, at the top level of the session JWT the upstream gets
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_session_claim department $http_x_department;
    stytch_tat_session_claim groups $http_x_groups list=,;
    stytch_tat_session_claim email $http_x_email;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request eval
["GET /app", "GET /app"]
--- more_headers eval
["X-Email: claims\@example.com\nX-Department: engineering\nX-Groups: editor, reader",
 "X-Email: no-claims\@example.com"]
--- error_code eval
[200, 200]
--- response_body_check eval
[sub {
    main::session_ok(0)->($_[0]);
    my $e = main::echo($_[0]);
    my $v = verify_jwt($e->{jwt}, jwks => session_jwks_url(0), alg => 'RS256',
                       iss => "stytch.com/$ProjectId", aud => $ProjectId);
    my $p = $v->{payload};
    ($p->{department} // '') eq 'engineering' or die "no department claim\n";
    json_encode($p->{groups}) eq '["editor","reader"]' or die "groups\n";
    ($p->{email} // '') eq 'claims@example.com' or die "email claim\n";
    my ($call) = grep { ($_->{body}{session_custom_claims}{email} // '')
                        eq 'claims@example.com' } emu_calls();
    json_encode($call->{body}{session_custom_claims})
        eq '{"department":"engineering","email":"claims@example.com","groups":["editor","reader"]}'
        or die "session_custom_claims " . json_encode($call->{body}{session_custom_claims}) . "\n";
    1;
}, sub {
    # empty values are left out, an empty list is a list
    my ($call) = grep { ($_->{body}{session_custom_claims}{email} // '')
                        eq 'no-claims@example.com' } emu_calls();
    json_encode($call->{body}{session_custom_claims})
        eq '{"email":"no-claims@example.com","groups":[]}'
        or die "session_custom_claims " . json_encode($call->{body}{session_custom_claims}) . "\n";
    1;
}]



=== TEST 14: session claims: a bad value or more than 4096 bytes of JSON is a 400, nothing sent
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_session_claim a $http_x_a;
    stytch_tat_session_claim b $http_x_a;
    stytch_tat_session_claim c $http_x_a;
    stytch_tat_session_claim d $http_x_a;
    stytch_tat_session_claim e $http_x_b;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request eval
["GET /app", "GET /app", "GET /app"]
--- more_headers eval
["X-Email: big\@example.com\nX-A: " . ('x' x 1000) . "\nX-B: " . ('y' x 61),
 "X-Email: big\@example.com\nX-A: " . ('x' x 1000) . "\nX-B: " . ('y' x 60),
 "X-Email: bad\@example.com\nX-B: \xc3\x28"]
--- error_code eval
[400, 200, 400]
--- response_headers eval
["X-Error: identity_invalid", "!X-Error", "X-Error: identity_invalid"]
--- error_log eval
[qr/\[error\].*stytch_tat: no exchange: session claim "\*": claims exceed 4096 bytes of JSON/,
 qr/\[error\].*stytch_tat: no exchange: session claim "e": value is not valid UTF-8/]
--- response_body_check eval
[sub { 1 },
 sub {
    # 4096 bytes of JSON pass; the other two requests reached no Stytch
    my @calls = grep { my $c = (jwt_parts($_->{body}{token}))[1];
                       $c && $c->{email} =~ /^(big|bad)\@/ } emu_calls();
    @calls == 1 or die scalar(@calls) . " attest calls\n";
    length(json_encode($calls[0]{body}{session_custom_claims})) == 4096
        or die "not 4096 bytes\n";
    1;
 },
 sub { 1 }]



=== TEST 15: session claims are part of the cache key
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=claims:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_cache claims;
    stytch_tat_email $http_x_email;
    stytch_tat_session_claim department $http_x_department;
    add_header X-Cache $stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request eval
["GET /app", "GET /app", "GET /app"]
--- more_headers eval
["X-Email: keyed\@example.com\nX-Department: sales",
 "X-Email: keyed\@example.com\nX-Department: sales",
 "X-Email: keyed\@example.com\nX-Department: legal"]
--- error_code eval
[200, 200, 200]
--- response_headers eval
["X-Cache: MISS", "X-Cache: HIT", "X-Cache: MISS"]
--- response_body_check eval
[sub { 1 }, sub { 1 }, sub {
    my $p = (jwt_parts(main::echo($_[0])->{jwt}))[1];
    ($p->{department} // '') eq 'legal' or die "another department's session\n";
    1;
}]



=== TEST 16: Google IAP: the README's recipe strips "accounts.google.com:"; without it Stytch refuses the email
--- http_config eval: $::HttpConfig . $::IapMaps
--- config eval
$::ServerConfig . <<'_EOC_'
location /app {
    stytch_tat_trusted_addresses 127.0.0.0/8;
    stytch_tat /_stytch_attest;
    stytch_tat_email $iap_email;
    stytch_tat_subject $iap_user;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /raw {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_goog_authenticated_user_email;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_
--- request eval
["GET /app", "GET /app", "GET /raw"]
--- more_headers eval
["X-Goog-Authenticated-User-Email: accounts.google.com:iap.user\@example.com\nX-Goog-Authenticated-User-Id: accounts.google.com:1234567890",
 "X-Goog-Authenticated-User-Email: iap.user\@example.com",
 "X-Goog-Authenticated-User-Email: accounts.google.com:iap.raw\@example.com"]
--- error_code eval
[200, 401, 403]
--- response_headers eval
["!X-Error", "X-Error: identity_missing", "X-Error: invalid_email"]
--- response_body_check eval
[sub {
    main::session_ok(0)->($_[0]);
    my ($call) = grep { my $c = (jwt_parts($_->{body}{token}))[1];
                        $c && $c->{email} eq 'iap.user@example.com' } emu_calls();
    $call or die "no attest for iap.user\@example.com\n";
    my $c = (jwt_parts($call->{body}{token}))[1];
    $c->{sub} eq '1234567890' or die "sub $c->{sub}\n";
    1;
}, sub { 1 }, sub { 1 }]

