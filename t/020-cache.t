# The shared-memory cache, observed through the emulator's call log:
# single-flight across workers, hits, refresh, isolation, eviction, reload,
# a failing leader, and the status endpoint.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;

my $http = $HttpConfig . <<'_EOC_';
stytch_tat_zone zone=tat:1m;
stytch_tat_zone zone=tiny:32k;
_EOC_

my $config = $ServerConfig . <<'_EOC_';
location = /_stytch_authenticate {
    internal;
    proxy_pass https://stytch_api/v1/sessions/authenticate;
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_read_timeout 2s;
}
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_refresh /_stytch_authenticate;
    stytch_tat_cache tat;
    stytch_tat_email $http_x_email;
    stytch_tat_claim assignments $http_x_groups list=,;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /other-profile {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_profile_id $TEST_NGINX_OTHER_PROFILE;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /tiny {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tiny;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /step-up {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_email $http_x_email;
    stytch_tat_token_id $http_x_validation_id;
    add_header X-Cache $stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /assert {
    stytch_tat_cache tat;
    stytch_tat_email $http_x_email;
    return 200 "$stytch_tat_jwt\n";
}
location /negative {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_cache_refusals 30s;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /impatient {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_cache_lock_timeout 500ms;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location = /_stytch_authenticate_b2b {
    internal;
    proxy_pass https://stytch_api/v1/b2b/sessions/authenticate;
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_ssl_server_name on;
    proxy_read_timeout 2s;
}
location /b2b {
    stytch_tat /_stytch_attest_b2b;
    stytch_tat_refresh /_stytch_authenticate_b2b;
    stytch_tat_cache tat;
    stytch_tat_profile_id $TEST_NGINX_B2B_PROFILE;
    stytch_tat_organization_id $TEST_NGINX_ORG claim=org;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location = /status { stytch_tat_status; }
location = /metrics { stytch_tat_status prometheus; }
_EOC_

$ENV{TEST_NGINX_OTHER_PROFILE} = 'trusted-auth-token-profile-test-other';
$ENV{TEST_NGINX_B2B_PROFILE} = $B2bProfileId;
$ENV{TEST_NGINX_ORG} = $OrgId;

sub attests { scalar emu_calls('/v1/sessions/attest') }
sub status { json_decode((http_request('GET', '/status'))[2])->{zones}{tat} }
sub get {
    my ($uri, $email, %h) = @_;
    my ($st, $h, $body) = http_request('GET', $uri, { 'X-Email' => $email, %h });
    return ($st, $h->{'x-cache'} // '', $body, $h);
}

emu_setup();

ok(start_nginx({ http_config => $http, config => $config, workers => 2 }),
   'nginx with 2 workers') or BAIL_OUT(last_error());

# 1. single-flight: a burst for a new identity causes one attest
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'latency',
                         latency_ms => 300, count => 1 });
my @res = concurrent_requests(200, ['GET', '/app', { 'X-Email' => 'burst@example.com' }]);
is(scalar(grep { ($_->{status} // 0) == 200 } @res), 200, '200 concurrent requests all succeed');
is(attests(), 1, '... and cause exactly one attest call');
my %sessions = map { ($_->{body} =~ /^session=(.*)$/m)[0] => 1 } @res;
is(scalar keys %sessions, 1, '... and all get the same session');
my %cache; $cache{$_->{headers}{'x-cache'} // ''}++ for @res;
is($cache{MISS}, 1, 'the leader reports MISS') or diag explain \%cache;
is($cache{HIT}, 199, 'its waiters report HIT') or diag explain \%cache;
emu(DELETE => '/faults');

# 2. repeated requests cause none
emu(DELETE => '/calls');
my ($st, $cs, $body) = get('/app', 'burst@example.com');
is("$st $cs", '200 HIT', 'a repeated request is a HIT');
like($body, qr/^user=user-test-/m, 'a HIT hands the session upstream');
for (1 .. 20) { get('/app', 'burst@example.com') }
is(attests(), 0, '21 repeated requests cause no attest call');

# 3. different profiles or claims never share an entry
emu(POST => '/config', { profiles => [
    map { +{ profile_id => $_, issuer => 'https://auth.example.com',
             audience => 'https://api.example.com',
             jwks_url => 'http://127.0.0.1:' . server_port() . '/jwks',
             attribute_mapping => { email => 'email', token_id => 'jti',
                                    role_ids => 'assignments' },
             jit_provisioning => JSON::PP::true } }
    ($ProfileId, $ENV{TEST_NGINX_OTHER_PROFILE}) ] });
emu(DELETE => '/calls');
($st, $cs) = get('/other-profile', 'burst@example.com');
is("$st $cs", '200 MISS', 'the same email under another profile is a MISS');
($st, $cs) = get('/app', 'burst@example.com', 'X-Groups' => 'admin');
is("$st $cs", '200 MISS', 'the same email with other claims is a MISS');
($st, $cs) = get('/app', 'burst@example.com', 'X-Groups' => 'admin');
is("$st $cs", '200 HIT', '... and a HIT the second time');
is(attests(), 2, 'two attest calls for two different keys');

# 4. custom factors bypass the cache
emu(DELETE => '/calls');
($st, $cs) = get('/step-up', 'burst@example.com', 'X-Validation-Id' => 'validation-cache-1');
is("$st $cs", '200 BYPASS', 'an explicit token id bypasses the cache');
($st, $cs) = get('/step-up', 'burst@example.com', 'X-Validation-Id' => 'validation-cache-2');
is("$st $cs", '200 BYPASS', '... every time');
is(attests(), 2, '... each one an attest call');

# 5. a session JWT near its expiry is refreshed once, others get STALE.
# The emulator's clock runs 250 s behind, so the session JWT it signs
# expires 50 s from nginx's now: inside the 60 s refresh window.
# (its skew allowance grows to match, or nginx's iat looks future to it)
sub authenticates { scalar emu_calls('/v1/sessions/authenticate') }
emu(POST => '/config', { clock_skew_seconds => 400 });
emu(DELETE => '/calls');
emu(POST => '/clock', { offset_seconds => -250 });
($st, $cs) = get('/app', 'refresh@example.com');
is("$st $cs", '200 MISS', 'refresh: the first request attests');
emu(POST => '/clock', { offset_seconds => 0 });
emu(POST => '/faults', { path => '/v1/sessions/authenticate', mode => 'latency',
                         latency_ms => 300, count => 1 });
@res = concurrent_requests(20, ['GET', '/app', { 'X-Email' => 'refresh@example.com' }]);
%cache = (); $cache{$_->{headers}{'x-cache'} // ''}++ for @res;
is(scalar(grep { ($_->{status} // 0) == 200 } @res), 20, 'refresh: all 20 served');
is($cache{EXPIRED}, 1, 'refresh: one request refreshes (EXPIRED)') or diag explain \%cache;
is($cache{STALE}, 19, 'refresh: the others get the still-valid JWT (STALE)')
    or diag explain \%cache;
is(authenticates(), 1, 'refresh: one authenticate call');
is(attests(), 1, 'refresh: no new attest');
($st, $cs) = get('/app', 'refresh@example.com');
is("$st $cs", '200 HIT', 'refresh: then a HIT with the new JWT');
emu(DELETE => '/faults');

# a JWT already past its exp is never handed out: all wait for the refresh
emu(DELETE => '/calls');
emu(POST => '/clock', { offset_seconds => -305 });
($st, $cs) = get('/app', 'expired-jwt@example.com');
is("$st $cs", '200 MISS', 'an entry whose JWT is already expired');
emu(POST => '/clock', { offset_seconds => 0 });
emu(POST => '/faults', { path => '/v1/sessions/authenticate', mode => 'latency',
                         latency_ms => 300, count => 1 });
@res = concurrent_requests(10, ['GET', '/app', { 'X-Email' => 'expired-jwt@example.com' }]);
%cache = (); $cache{$_->{headers}{'x-cache'} // ''}++ for @res;
is(scalar(grep { ($_->{status} // 0) == 200 } @res), 10, 'expired JWT: all 10 served');
ok(!$cache{STALE}, 'expired JWT: none served STALE') or diag explain \%cache;
is(authenticates(), 1, 'expired JWT: one authenticate call');
emu(DELETE => '/faults');

# a refresh that finds the session gone drops the entry and attests anew
emu(DELETE => '/calls');
emu(POST => '/clock', { offset_seconds => -250 });
my (undef, undef, $first) = get('/app', 'revoked@example.com');
emu(POST => '/clock', { offset_seconds => 0 });
emu(DELETE => '/sessions');
my (undef, undef, $second, $h2) = get('/app', 'revoked@example.com');
my ($sid1) = $first =~ /^session=(.*)$/m;
my ($sid2) = $second =~ /^session=(.*)$/m;
ok($sid2 && $sid1 ne $sid2, 'session_not_found on refresh: a new session');
is(authenticates(), 1, '... after one authenticate call');
is(attests(), 2, '... and one new attest');
emu(POST => '/config', { clock_skew_seconds => 60 });

# 5b. B2B: a member session is cached and its JWT refreshed through the B2B
# authenticate endpoint
emu_setup();
emu(POST => '/config', { clock_skew_seconds => 400 });
emu(POST => '/clock', { offset_seconds => -250 });
my (undef, $b2b1, $e1);
($st, $b2b1, $e1) = get('/b2b', 'member@example.com');
is("$st $b2b1", '200 MISS', 'B2B: a member session');
my ($member1) = $e1 =~ /^user=(member-test-\S+)$/m;
ok($member1, 'B2B: the upstream got the member id');
emu(POST => '/clock', { offset_seconds => 0 });
my $e2;
($st, $b2b1, $e2) = get('/b2b', 'member@example.com');
is("$st $b2b1", '200 EXPIRED', 'B2B: its JWT near expiry is refreshed');
is(scalar emu_calls('/v1/b2b/sessions/authenticate'), 1,
   'B2B: through the B2B authenticate endpoint');
my ($member2) = $e2 =~ /^user=(\S+)$/m;
is($member2, $member1, 'B2B: the same member');
($st, $b2b1) = get('/b2b', 'member@example.com');
is("$st $b2b1", '200 HIT', 'B2B: then a HIT');
emu(POST => '/config', { clock_skew_seconds => 60 });

# 6. a failing leader releases its waiters promptly with its outcome
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status',
                         status => 500, latency_ms => 0, count => 1 });
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'latency',
                         latency_ms => 0 });
my @failed = concurrent_requests(30, ['GET', '/app', { 'X-Email' => 'failing@example.com' }]);
my %st; $st{$_->{status} // 'none'}++ for @failed;
ok(($st{502} // 0) >= 1, 'the leader answers 502') or diag explain \%st;
is(($st{502} // 0) + ($st{200} // 0), 30, 'every request answered 502 or 200, none hung')
    or diag explain \%st;
ok(attests() <= 2, 'at most one retry after the failed leader, never a herd: '
                   . attests() . ' calls');
emu(DELETE => '/faults');

# 7. the status endpoint
my $s = status();
ok($s->{entries} >= 4, "status: $s->{entries} entries");
ok($s->{hits} >= 21, "status: $s->{hits} hits");
ok($s->{misses} >= 3, "status: $s->{misses} misses");
ok($s->{waits} >= 1, "status: $s->{waits} single-flight waits");
ok($s->{bypass} >= 2, "status: $s->{bypass} bypasses");
ok($s->{calls}{attest_ok} >= 4, "status: $s->{calls}{attest_ok} attest calls ok");
ok($s->{calls}{attest_failed} >= 1, 'status: a failed attest counted');
ok($s->{mints}{RS256} >= 5, "status: $s->{mints}{RS256} RS256 mints");
is($s->{size}, 1048576, 'status: zone size');
ok($s->{free} > 0 && $s->{free} < $s->{size}, 'status: zone free bytes');
my $metrics = (http_request('GET', '/metrics'))[2];
like($metrics, qr/^stytch_tat_cache_total\{zone="tat",status="hit"\} (\d+)$/m,
     'prometheus: hits');
like($metrics, qr/^stytch_tat_call_duration_seconds_bucket\{zone="tat",le="\+Inf"\} \d+$/m,
     'prometheus: the calls\' durations, a histogram');
like($metrics, qr/^stytch_tat_zone_entries\{zone="tiny"\} 0$/m, 'prometheus: every zone');
is($s->{jwt_hits}, 0, 'status: no $stytch_tat_jwt reused yet, none counted as a token hit');
like($metrics, qr/^stytch_tat_jwt_cache_total\{zone="tat",status="hit"\} 0$/m,
     'prometheus: token hits apart from session hits');
like($metrics, qr/^stytch_tat_jwt_cache_total\{zone="tat",status="miss"\} \d+$/m,
     'prometheus: token misses');

# 8. $stytch_tat_jwt is reused per identity while fresh
my $before = status();
my ($a) = (http_request('GET', '/assert', { 'X-Email' => 'assert@example.com' }))[2];
my ($b) = (http_request('GET', '/assert', { 'X-Email' => 'assert@example.com' }))[2];
my ($c) = (http_request('GET', '/assert', { 'X-Email' => 'other@example.com' }))[2];
ok(length($a) > 100 && $a eq $b, 'the same identity gets the cached token');
isnt($a, $c, 'another identity gets its own');
my $after = status();
is($after->{hits}, $before->{hits}, 'a reused $stytch_tat_jwt is no session hit');
is($after->{misses}, $before->{misses}, 'a minted $stytch_tat_jwt is no session miss');
is($after->{jwt_hits} - $before->{jwt_hits}, 1, '... but a token hit');
is($after->{jwt_misses} - $before->{jwt_misses}, 2, '... and two token misses');

# 9. a small zone evicts and keeps serving
emu(DELETE => '/calls');
my $ok = 0;
for my $i (1 .. 60) {
    my ($st, $cs) = get('/tiny', "evict$i\@example.com");
    $ok++ if $st == 200 && $cs eq 'MISS';
}
is($ok, 60, '60 identities through a 32k zone: all served');
my $tiny = json_decode((http_request('GET', '/status'))[2])->{zones}{tiny};
ok($tiny->{evictions} > 0, "the small zone evicted $tiny->{evictions} entries");
ok($tiny->{entries} < 60, "and holds $tiny->{entries}");

# 9b. negative caching: a refusal is remembered, when asked, and only then
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status', status => 404,
                         error_type => 'user_not_found', count => 1 });
my (undef, $h1);
($st, $cs, undef, $h1) = get('/negative', 'refused@example.com');
is("$st $cs $h1->{'x-error'}", '403 MISS user_not_found', 'a refusal');
($st, $cs, undef, $h1) = get('/negative', 'refused@example.com');
is("$st $cs $h1->{'x-error'}", '403 HIT user_not_found',
   'stytch_tat_cache_refusals: the same refusal from the cache');
is(attests(), 1, '... without asking Stytch again');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status', status => 404,
                         error_type => 'user_not_found', count => 1 });
($st) = get('/app', 'refused-once@example.com');
is($st, 403, 'without it a refusal ...');
($st, $cs) = get('/app', 'refused-once@example.com');
is("$st $cs", '200 MISS', '... is not remembered');

# 9b'. Stytch refusing the module's own token (invalid_trusted_auth_token:
# a JWKS it cannot fetch, an unknown kid, clock skew) is no refusal of the
# identity: never remembered, even with stytch_tat_cache_refusals; those
# waiting on the leader get its 403 once
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status', status => 400,
                         error_type => 'invalid_trusted_auth_token', count => 1 });
($st, $cs, undef, $h1) = get('/negative', 'token-refused@example.com');
is("$st $cs $h1->{'x-error'}", '403 MISS invalid_trusted_auth_token', 'the token refused');
($st, $cs) = get('/negative', 'token-refused@example.com');
is("$st $cs", '200 MISS', '... is not remembered for the identity: Stytch is asked again');
is(attests(), 2, '... two attest calls');
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status', status => 400,
                         error_type => 'invalid_trusted_auth_token', latency_ms => 1000,
                         count => 1 });
@res = concurrent_requests(8, ['GET', '/negative', { 'X-Email' => 'token-burst@example.com' }]);
my %burst; $burst{($_->{status} // 'none') . ' ' . ($_->{headers}{'x-error'} // '')}++ for @res;
ok(($burst{'403 invalid_trusted_auth_token'} // 0) >= 1, 'a burst: the leader\'s 403')
    or diag explain \%burst;
is(($burst{'403 invalid_trusted_auth_token'} // 0) + ($burst{'200 '} // 0), 8,
   'a burst: every request got the leader\'s 403 or, after it, a session')
    or diag explain \%burst;
ok(attests() <= 2, 'a burst: one attest, at most one retry after the failure, never a herd: '
                   . attests() . ' calls');
($st, $cs) = get('/negative', 'token-burst@example.com');
like("$st $cs", qr/^200 (MISS|HIT)$/, 'a burst: then a session, nothing remembered');

# 9c. waiters are bounded: past stytch_tat_cache_lock_timeout they go on alone.
# Every attest is slow, not only the leader's: a waiter that takes over the
# expired lease must not finish (and store a session the others would HIT)
# before the others' own timeout, whatever the two workers' scheduling.
emu(DELETE => '/calls');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'latency',
                         latency_ms => 1500 });
@res = concurrent_requests(5, ['GET', '/impatient', { 'X-Email' => 'slow@example.com' }]);
%cache = (); $cache{$_->{headers}{'x-cache'} // ''}++ for @res;
is(scalar(grep { ($_->{status} // 0) == 200 } @res), 5, 'slow leader: all 5 served');
ok($cache{BYPASS} >= 1, 'slow leader: waiters gave up after 500ms and went alone')
    or diag explain \%cache;
is(($cache{MISS} // 0) + ($cache{BYPASS} // 0), 5,
   'slow leader: each either led (its lease expired with the timeout) or went alone')
    or diag explain \%cache;
ok(!$cache{HIT}, 'slow leader: no waiter saw a session before its timeout')
    or diag explain \%cache;
is(attests(), 5, 'slow leader: 5 attest calls');
emu(DELETE => '/faults');

# 10. a reload keeps the zone and its entries
emu(DELETE => '/calls');
ok(reload_nginx(), 'reload') or diag(last_error());
($st, $cs) = get('/app', 'burst@example.com');
is("$st $cs", '200 HIT', 'an entry survives a reload');
is(attests(), 0, '... without an attest call');

ok(stop_nginx(), 'nginx stops cleanly');

done_testing();
