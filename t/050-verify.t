# stytch_tat_verify: Stytch session JWTs verified at the edge against the
# project's JWKS (stytch_tat_session_jwks), with no call to Stytch per
# request.  Tokens come from a real attest at the emulator and from
# t/tools/forge-jwt.mjs (npm's jose, the emulator's project key where a
# valid signature is needed): every forged one is refused with its own
# $stytch_tat_error and an info line, never a crash.  The JWKS: fetched
# once per zone, refetched for an unknown kid at most once per
# min_refetch, refreshed after refresh=, a key rotation at the emulator,
# a dead JWKS location.  The status endpoint's verify and jwks counters.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use Time::HiRes qw(time sleep);

my $JwksPath = "/v1/sessions/jwks/$ProjectId";
my $JwksRoute = "GET $JwksPath";
$ENV{TEST_NGINX_JWKS_PATH} = $JwksPath;
$ENV{TEST_NGINX_DEAD_PORT} = free_port();    # nothing listens there

my $http = $HttpConfig . <<'_EOC_';
stytch_tat_zone zone=tat:1m;
stytch_tat_zone zone=kid:1m;
stytch_tat_zone zone=rot:1m;
stytch_tat_zone zone=refresh:1m;
stytch_tat_zone zone=dead:1m;
stytch_tat_zone zone=down:1m;
_EOC_

# every protected location: the variables as response headers
my $vars = <<'_EOC_';
    add_header X-Error $stytch_tat_error always;
    add_header X-User $stytch_user_id always;
    add_header X-Session $stytch_session_id always;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Claim-Team $stytch_session_claim_team always;
    add_header X-Claim-Level $stytch_session_claim_level always;
    add_header X-Claim-Obj $stytch_session_claim_obj always;
    add_header X-Claim-Missing $stytch_session_claim_missing always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
_EOC_

my $tls = <<'_EOC_';
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_connect_timeout 2s;
    proxy_read_timeout 2s;
_EOC_

my $config = $ServerConfig . <<"_EOC_";
# forged tokens over 8 KB must reach the module, not nginx's 400
large_client_header_buffers 4 32k;

location = /_stytch_jwks {
    internal;
    proxy_pass https://stytch_api\$TEST_NGINX_JWKS_PATH;
$tls
}
location = /_dead_jwks {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_DEAD_PORT/jwks;
    proxy_connect_timeout 1s;
}

# a real session, for a real session JWT
location /login {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}

location /api {
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache tat;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location /bearer {
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache tat;
    stytch_tat_verify \$http_authorization;
$vars
}
location /kid {
    stytch_tat_session_jwks /_stytch_jwks min_refetch=3s;
    stytch_tat_cache kid;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location /rot {
    stytch_tat_session_jwks /_stytch_jwks min_refetch=1s;
    stytch_tat_cache rot;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location /refresh {
    stytch_tat_session_jwks /_stytch_jwks refresh=2s min_refetch=1s project_id=$ProjectId;
    stytch_tat_cache refresh;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location /dead {
    stytch_tat_session_jwks /_dead_jwks;
    stytch_tat_cache dead;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location /down {
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache down;
    stytch_tat_verify \$cookie_stytch_session_jwt;
$vars
}
location = /status { stytch_tat_status; }
_EOC_

# a failure that makes the rest pointless fails this file, not the suite
sub stop_here {
    my ($why) = @_;
    diag($why);
    done_testing();
    exit 1;
}

sub zone { json_decode((http_request('GET', '/status'))[2])->{zones}{$_[0]} }
sub get {
    my ($uri, $jwt, %h) = @_;
    $h{Cookie} = "stytch_session_jwt=$jwt" if defined $jwt;
    return http_request('GET', $uri, \%h);
}
sub jwks_fetches_since { emu_counts($_[0])->get($JwksRoute) }

emu_setup();
emu(POST => '/config', { session_jwt_lifetime_seconds => 300 });
emu(POST => '/clock', { offset_seconds => 0 });

ok(start_nginx({ http_config => $http, config => $config, workers => 2 }),
   'nginx with 2 workers') or stop_here(last_error());

# a real session JWT, from an attest at the emulator
my ($st, $h, $body) = http_request('GET', '/login', { 'X-Email' => 'edge@example.com' });
is($st, 200, 'a real attest') or diag($body);
my ($real_jwt) = $body =~ /^jwt=(\S+)$/m;
my ($real_user) = $body =~ /^user=(\S+)$/m;
my ($real_session) = $body =~ /^session=(\S+)$/m;
ok($real_jwt && $real_user && $real_session, 'the attest gave a session JWT, user and session')
    or stop_here("no session from the emulator");

# 1. no token
my $mark = emu_counts();
($st, $h, $body) = get('/api');
is($st, 401, 'no token: 401');
is($h->{'x-error'}, 'session_jwt_missing', 'no token: $stytch_tat_error');
is($h->{'www-authenticate'}, 'Bearer realm="stytch"', 'no token: WWW-Authenticate without an error');
unlike($body // '', qr/^jwt=/m, 'no token: the upstream is not reached');
($st, $h) = get('/api', '');
is("$st $h->{'x-error'}", '401 session_jwt_missing', 'an empty cookie is no token');

# 2. the real session JWT: the session goes upstream, no call to Stytch but
# the JWKS fetch
my $off = error_log_offset();
($st, $h, $body) = get('/api', $real_jwt, 'X-Stytch-User-Id' => 'forged-by-client',
                       'X-Stytch-Session-Id' => 'forged-too');
is($st, 200, 'a real session JWT: 200') or diag(explain $h);
is($h->{'x-user'}, $real_user, '$stytch_user_id is its sub');
is($h->{'x-session'}, $real_session, '$stytch_session_id is its session id');
is($h->{'x-cache'}, 'CLIENT', '$stytch_tat_cache_status is CLIENT');
ok(!exists $h->{'x-error'}, 'no $stytch_tat_error');
like($body, qr/^user=\Q$real_user\E$/m, 'X-Stytch-User-Id handed upstream');
like($body, qr/^session=\Q$real_session\E$/m, 'X-Stytch-Session-Id handed upstream');
like($body, qr/^jwt=\Q$real_jwt\E$/m, 'X-Stytch-Session-Jwt handed upstream');
unlike($body, qr/forged-by-client|forged-too/, "the client's own X-Stytch-* headers are not");
my $c = emu_counts($mark);
is($c->get($JwksRoute), 1, 'the first verification fetched the JWKS once');
is($c->get('POST /v1/sessions/attest') + $c->get('POST /v1/sessions/authenticate'), 0,
   'and nothing else was called at Stytch');

# 3. verified once, then cached: no call at all, the counters say so
my $z0 = zone('tat');
$mark = emu_counts();
for (1 .. 5) {
    ($st, $h) = get('/api', $real_jwt);
    is("$st $h->{'x-user'}", "200 $real_user", "request $_ with the same token");
}
is(scalar(grep { !/^_/ } keys %{ emu_counts($mark) }), 0, 'five requests: no call to Stytch at all');
my $z1 = zone('tat');
is($z1->{verify}{cached} - $z0->{verify}{cached}, 5, 'status: verify.cached counts them')
    or diag(explain [$z0->{verify}, $z1->{verify}]);
is($z1->{verify}{ok} - $z0->{verify}{ok}, 0, 'status: no new full verification');
is($z1->{jwks}{fetches}, 1, 'status: jwks.fetches 1');

# 4. Authorization: Bearer
($st, $h, $body) = http_request('GET', '/bearer', { Authorization => "Bearer $real_jwt" });
is("$st $h->{'x-user'}", "200 $real_user", 'Authorization: Bearer: 200');
like($body, qr/^session=\Q$real_session\E$/m, 'Bearer: the session goes upstream');
($st, $h) = http_request('GET', '/bearer');
is("$st $h->{'x-error'}", '401 session_jwt_missing', 'no Authorization: 401 session_jwt_missing');
# (nginx strips the header's trailing space: the module sees "Bearer")
($st, $h) = http_request('GET', '/bearer', { Authorization => 'Bearer ' });
is($st, 401, '"Bearer " alone: 401');
like($h->{'x-error'}, qr/^session_jwt_(?:missing|malformed)$/, '... missing or malformed');

# 5. forged tokens, each refused for its own reason
my $forged = forge_jwts(claims => { team => 'blue', level => 5, obj => { a => [1, 'x'] } });
my %want = (
    bad_signature      => 'signature',
    unknown_kid        => 'unknown_kid',
    alg_none           => 'alg',
    hs256_pubkey       => 'alg',
    wrong_iss          => 'iss',
    wrong_aud          => 'aud',
    expired            => 'expired',
    not_yet_valid      => 'not_yet_valid',
    malformed_base64   => 'malformed',
    malformed_header   => 'malformed',
    malformed_json     => 'malformed',
    oversized          => 'too_big',
    oversized_unsigned => 'too_big',
);
for my $kind (sort keys %want) {
    my $reason = $want{$kind};
    my $z = zone('tat');
    for my $form ([cookie => '/api'], [bearer => '/bearer']) {
        my $off = error_log_offset();
        ($st, $h, $body) = $form->[0] eq 'cookie'
            ? get('/api', $forged->{$kind})
            : http_request('GET', '/bearer', { Authorization => "Bearer $forged->{$kind}" });
        my $what = "$kind ($form->[0])";
        is($st, 401, "$what: 401") or diag($body);
        is($h->{'x-error'}, "session_jwt_$reason", "$what: \$stytch_tat_error session_jwt_$reason");
        is($h->{'www-authenticate'}, 'Bearer realm="stytch", error="invalid_token"',
           "$what: WWW-Authenticate");
        ok(!exists $h->{'x-user'}, "$what: no user id");
        unlike($body // '', qr/^jwt=/m, "$what: the upstream is not reached");
        like(error_log_since($off), qr/\[info\].*stytch_tat: session JWT refused: /,
             "$what: an info line");
    }
    is(zone('tat')->{verify}{failed}{$reason} - ($z->{verify}{failed}{$reason} // 0), 2,
       "$kind: status verify.failed.$reason counts both");
}

# a validly signed token is the session of whoever it names (no binding
# here: that is the cluster's business), and claims come out as variables
($st, $h, $body) = get('/api', $forged->{other_user});
my (undef, $oc) = jwt_parts($forged->{other_user});
is("$st $h->{'x-user'}", "200 $oc->{sub}", 'a forged-but-validly-signed token names its own user');
($st, $h) = get('/api', $forged->{valid});
is($st, 200, 'a valid token from the forge: 200');
is($h->{'x-user'}, $forged->{claims}{sub}, 'its sub');
is($h->{'x-session'}, $forged->{claims}{'https://stytch.com/session'}{id}, 'its session id');
is($h->{'x-claim-team'}, 'blue', '$stytch_session_claim_team: a string as it is');
is($h->{'x-claim-level'}, '5', '$stytch_session_claim_level: a number as JSON');
is($h->{'x-claim-obj'}, '{"a":[1,"x"]}', '$stytch_session_claim_obj: compact JSON');
ok(!exists $h->{'x-claim-missing'}, 'a claim the token has not: empty');

# 6. unknown kid: one refetch, then at most one per min_refetch (3 s), a
# flood of forged kids included
my @flood = forge_jwt('unknown_kid', count => 40);
is(scalar @flood, 40, '40 tokens with 40 unknown kids');
$mark = emu_counts();
($st, $h) = get('/kid', $real_jwt);
is($st, 200, 'kid zone: the first request fetches the JWKS');
is(jwks_fetches_since($mark), 1, 'kid zone: one fetch');
# past min_refetch since that fetch, even if the module counts whole
# seconds and wants more than 3 of them
sleep 4.2;
$mark = emu_counts();
my $t0 = time;
($st, $h) = get('/kid', $forged->{unknown_kid});
is("$st $h->{'x-error'}", '401 session_jwt_unknown_kid', 'kid zone: an unknown kid is refused');
is(jwks_fetches_since($mark), 1, 'kid zone: ... after one refetch of the JWKS');
my $z = zone('kid');
my %flood_status;
for my $jwt (@flood) {
    ($st, $h) = get('/kid', $jwt);
    $flood_status{"$st " . ($h->{'x-error'} // '')}++;
}
my $elapsed = time - $t0;
is_deeply(\%flood_status, { '401 session_jwt_unknown_kid' => 40 }, 'the flood right after: all refused');
# the refetch and the flood: fetches at least min_refetch apart (in whole
# seconds that may be 2.01 s)
my $fetched = jwks_fetches_since($mark);
my $bound = 1 + int($elapsed / 2);
ok($fetched <= $bound, "the refetch and the flood: $fetched JWKS fetches in "
   . sprintf('%.1f', $elapsed) . " s, at most one per min_refetch ($bound)");
$fetched -= 1;    # the flood's own
my $z2 = zone('kid');
is($z2->{jwks}{refetch_limited} - $z->{jwks}{refetch_limited}, 40 - $fetched,
   'status: jwks.refetch_limited counts the others');
($st, $h) = get('/kid', $real_jwt);
is($st, 200, 'the known kid still verifies after the flood');

# 7. a key rotation at the emulator: a new kid is fetched and accepted, the
# old one still verifies while the JWKS serves it
$mark = emu_counts();
($st) = get('/rot', $real_jwt);
is($st, 200, 'rot zone: primed with the old kid');
my $rot = emu(POST => '/project_keys/rotate', {});
my $new_jwt = forge_jwt('valid');
my ($nh) = jwt_parts($new_jwt);
is($nh->{kid}, $rot->{current}, 'a token of the new key');
sleep 2.2;    # past min_refetch (1 s) since the priming fetch, in whole seconds too
my $mark2 = emu_counts();
($st, $h) = get('/rot', $new_jwt);
is("$st " . ($h->{'x-error'} // ''), '200 ', 'the new kid is accepted after a refetch');
is(jwks_fetches_since($mark2), 1, 'one refetch for it');
($st) = get('/rot', $real_jwt);
is($st, 200, 'the old kid still verifies');
# a session JWT the emulator signs now carries the new kid
($st, undef, $body) = http_request('GET', '/login', { 'X-Email' => 'rotated@example.com' });
my ($rot_jwt) = $body =~ /^jwt=(\S+)$/m;
my ($rh) = jwt_parts($rot_jwt);
is($rh->{kid}, $rot->{current}, 'the emulator signs with the new key');
($st, $h) = get('/rot', $rot_jwt);
is($st, 200, 'a real session JWT of the new key verifies');
is(jwks_fetches_since($mark2), 1, 'without another fetch');
emu(POST => '/project_keys/retire', {});

# 8. refresh=2s: the document is fetched again once it is older, when a
# token needs the keys (a token verified before does not: it is cached)
my @fresh = forge_jwt('valid', count => 6);
$mark = emu_counts();
($st) = get('/refresh', shift @fresh);
is($st, 200, 'refresh zone: first fetch');
is(jwks_fetches_since($mark), 1, 'refresh zone: one fetch');
sleep 4.2;    # past refresh (2 s), in whole seconds too
$mark = emu_counts();
$t0 = time;
for (1 .. 5) {
    ($st) = get('/refresh', shift @fresh);
    is($st, 200, "refresh zone: new token $_ after 4.2 s");
}
$elapsed = time - $t0;
# the refresh may run beside the request: wait for it (no luck involved:
# the test fails only if it never comes)
my $deadline = time + 5;
sleep 0.1 while jwks_fetches_since($mark) < 1 && time < $deadline;
$fetched = jwks_fetches_since($mark);
ok($fetched >= 1, 'refresh zone: the document was fetched again');
$bound = 1 + int($elapsed / 1);
ok($fetched <= $bound, "refresh zone: $fetched fetches for 5 requests in ${\ sprintf '%.1f', $elapsed} s, "
   . "at most one per refresh period ($bound)");

# 9. the JWKS cannot be had: 502 jwks_unavailable, a line naming the location
$off = error_log_offset();
($st, $h) = get('/dead', $real_jwt);
is($st, 502, 'a dead JWKS location: 502');
is($h->{'x-error'}, 'jwks_unavailable', '$stytch_tat_error jwks_unavailable');
like(error_log_since($off), qr/^\S+ \S+ \[(?:error|crit|warn)\].*\/_dead_jwks/m,
     'an error line names the JWKS location');
ok(zone('dead')->{jwks}{failures} >= 1, 'status: jwks.failures');
emu(POST => '/faults', { path => $JwksPath, mode => 'status', status => 503 });
($st, $h) = get('/down', $real_jwt);
is("$st $h->{'x-error'}", '502 jwks_unavailable', 'Stytch answering 503 for the JWKS: 502');
emu(DELETE => '/faults');

my $tat = zone('tat');
ok($tat->{verify}{ok} >= 1 && $tat->{jwks}{fetches} >= 1, 'status: the zone has verify and jwks counters')
    or diag(explain $tat);

ok(stop_nginx(), 'no alert, emerg or crash') or diag(last_error());

# configurations nginx -t refuses
run_tests();

__DATA__

=== TEST 1: stytch_tat_verify and stytch_tat in one location
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_stytch_jwks { internal; proxy_pass https://stytch_api/v1/sessions/jwks/x; }
location /api {
    stytch_tat /_stytch_attest;
    stytch_tat_email $http_x_email;
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache tat;
    stytch_tat_verify $cookie_stytch_session_jwt;
    return 200;
}
_EOC_
--- must_die
--- no_error_log
unknown directive
--- error_log eval
qr/stytch_tat_verify/



=== TEST 2: stytch_tat_verify without a zone for the JWKS
--- http_config eval: $::HttpConfig
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_stytch_jwks { internal; proxy_pass https://stytch_api/v1/sessions/jwks/x; }
location /api {
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_verify $cookie_stytch_session_jwt;
    return 200;
}
_EOC_
--- must_die
--- no_error_log
unknown directive
--- error_log eval
qr/stytch_tat_(?:cache|verify|session_jwks)/



=== TEST 3: stytch_tat_verify without stytch_tat_session_jwks
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location /api {
    stytch_tat_cache tat;
    stytch_tat_verify $cookie_stytch_session_jwt;
    return 200;
}
_EOC_
--- must_die
--- no_error_log
unknown directive
--- error_log eval
qr/stytch_tat_(?:verify|session_jwks)/
