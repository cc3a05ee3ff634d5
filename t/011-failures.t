# Every way Stytch can fail or refuse, mapped to a documented status, a
# $stytch_tat_error and one error-log line; fail open; a dead Stytch; and a
# stalled exchange that does not block the worker.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use IO::Socket::INET;
use IO::Select;

my $dead = free_port();    # nothing listens here

my $config = $ServerConfig . <<"_EOC_";
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location /open {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    stytch_tat_fail open;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location /refused-401 {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    stytch_tat_refused_status 401;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location /small {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    stytch_tat_buffer_size 512;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location /dead {
    stytch_tat /_stytch_dead;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location = /_stytch_dead {
    internal;
    proxy_pass https://127.0.0.1:$dead/v1/sessions/attest;
}
location = /fast { return 200 "fast\\n"; }
location /cfg {
    stytch_tat /_stytch_attest;
    stytch_tat_cache cfg;
    stytch_tat_cache_refusals 30s;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    add_header X-Cache \$stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
# a JWKS without the module's key: Stytch's view after a rotation it missed
location = /jwks-old { default_type application/json; return 200 '{"keys":[]}'; }
_EOC_

emu_setup();

ok(start_nginx({ http_config => $HttpConfig . "stytch_tat_zone zone=cfg:1m;\n",
                 config => $config }),
   'nginx starts') or BAIL_OUT(last_error());

my %id = ('X-Email' => 'ada.lovelace@example.com');

# [fault, expected status, $stytch_tat_error, a regex for the log line]
my @cases = (
    [{ mode => 'status', status => 500 }, 502, 'internal_server_error',
     qr/\[error\].*Stytch failed through "\/_stytch_attest": status 500, error_type "internal_server_error"/],
    [{ mode => 'status', status => 503 }, 502, 'server_unavailable',
     qr/\[error\].*Stytch failed through "\/_stytch_attest": status 503/],
    [{ mode => 'rate_limit', retry_after => 42 }, 503, 'too_many_requests',
     qr/\[error\].*Stytch rate-limited the exchange: "too_many_requests"/],
    [{ mode => 'rate_limit' }, 503, 'too_many_requests',
     qr/rate-limited/],
    [{ mode => 'malformed_json' }, 502, 'stytch_bad_response',
     qr/\[error\].*unusable answer from Stytch through "\/_stytch_attest": status 200, not a JSON object/],
    [{ mode => 'truncated' }, 502, 'stytch_bad_response',
     qr/\[error\].*(unusable answer|unreachable)/],
    [{ mode => 'oversized' }, 502, 'stytch_bad_response',
     qr/\[error\].*exceeds "stytch_tat_buffer_size" 32768/],
    [{ mode => 'reset_before_headers' }, 502, 'stytch_unavailable',
     qr/\[error\].*Stytch unreachable or its answer unreadable/],
    [{ mode => 'reset_after_headers' }, 502, 'stytch_bad_response',
     qr/\[error\].*(unusable answer|unreachable)/],
    [{ mode => 'stall' }, 504, 'stytch_timeout',
     qr/\[error\].*Stytch timed out/],
    [{ mode => 'status', status => 401, error_type => 'unauthorized_credentials' },
     500, 'unauthorized_credentials',
     qr/\[error\].*refused the module's own configuration: "unauthorized_credentials"; check "stytch_tat_credentials"/],
    [{ mode => 'status', status => 404, error_type => 'trusted_token_profile_not_found' },
     500, 'trusted_token_profile_not_found',
     qr/\[error\].*check "stytch_tat_profile_id"/],
    [{ mode => 'status', status => 400, error_type => 'invalid_trusted_auth_token' },
     403, 'invalid_trusted_auth_token',
     qr/\[error\].*Stytch refused the module's token: "invalid_trusted_auth_token", "Emulated invalid_trusted_auth_token\.", request_id "request-id-test-[0-9a-f-]{36}"; the token had kid "[\w-]+", iat \d+, exp \d+ \(this host's clock\): likely a configuration fault, not the user/],
    [{ mode => 'status', status => 400, error_type => 'user_not_found' },
     403, 'user_not_found',
     qr/\[warn\].*Stytch refused the identity: status 400, error_type "user_not_found", "Emulated user_not_found\.", request_id "request-id-test-[0-9a-f-]{36}"/],
    [{ mode => 'status', status => 404, error_type => 'session_not_found' },
     403, 'session_not_found', qr/refused the identity: status 404/],
    [{ mode => 'latency', latency_ms => 300 }, 200, '', undef],
);

for my $c (@cases) {
    my ($fault, $want, $error, $log) = @$c;
    my $name = $fault->{mode} . ($fault->{status} ? " $fault->{status}" : '')
             . ($fault->{error_type} ? " $fault->{error_type}" : '')
             . (exists $fault->{retry_after} ? ' with Retry-After' : '');
    emu(DELETE => '/faults');
    emu(POST => '/faults', { path => '/v1/sessions/attest', %$fault });
    my $off = error_log_offset();
    my ($st, $h, $body) = http_request('GET', '/app', \%id);
    is($st, $want, "$name: status $want");
    is($h->{'x-error'} // '', $error, "$name: \$stytch_tat_error");
    if ($fault->{mode} eq 'rate_limit') {
        is($h->{'retry-after'}, $fault->{retry_after},
           "$name: Retry-After " . ($fault->{retry_after} // 'absent'));
    }
    if ($want == 200) {
        like($body, qr/^user=user-test-/m, "$name: the session reached the upstream");
    } else {
        unlike($body, qr/user=|stytch|error_type/i, "$name: the client learns nothing of Stytch");
    }
    like(error_log_since($off), $log, "$name: log line") if $log;
}
emu(DELETE => '/faults');

# Stytch refuses an unknown user when JIT provisioning is off
emu_setup(jit => JSON::PP::false);
{
    my $off = error_log_offset();
    my ($st, $h) = http_request('GET', '/app', { 'X-Email' => 'stranger@example.com' });
    is($st, 403, 'unknown user without JIT: 403');
    is($h->{'x-error'}, 'user_not_found', 'unknown user: error_type');
    like(error_log_since($off), qr/refused the identity: status 404, error_type "user_not_found"/,
         'unknown user: log line');
    ($st) = http_request('GET', '/refused-401', { 'X-Email' => 'stranger@example.com' });
    is($st, 401, 'stytch_tat_refused_status 401');
}
emu_setup();

# fail open: through, without a session, logged at warn
for my $mode (qw(stall reset_before_headers malformed_json)) {
    emu(DELETE => '/faults');
    emu(POST => '/faults', { path => '/v1/sessions/attest', mode => $mode });
    my $off = error_log_offset();
    my ($st, $h, $body) = http_request('GET', '/open', \%id);
    is($st, 200, "fail open on $mode: 200");
    like($body, qr/^user=$/m, "fail open on $mode: no session headers upstream");
    ok(length $h->{'x-error'}, "fail open on $mode: \$stytch_tat_error is $h->{'x-error'}");
    like(error_log_since($off), qr/\[warn\].*failing open: request passed without a session/,
         "fail open on $mode: warn line");
}
emu(DELETE => '/faults');

# refusals are not failures: fail open does not let them through
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status',
                         status => 400, error_type => 'invalid_trusted_auth_token' });
is((http_request('GET', '/open', \%id))[0], 403, 'fail open still refuses a refused identity');
emu(DELETE => '/faults');

# a dead Stytch
{
    my $off = error_log_offset();
    my ($st, $h) = http_request('GET', '/dead', \%id);
    is($st, 502, 'dead Stytch: 502');
    is($h->{'x-error'}, 'stytch_unavailable', 'dead Stytch: error');
    like(error_log_since($off), qr/connect\(\) failed .*Connection refused/, 'dead Stytch: nginx says why');
}

# a normal answer over a small stytch_tat_buffer_size
{
    my $off = error_log_offset();
    my ($st) = http_request('GET', '/small', \%id);
    is($st, 502, 'answer over stytch_tat_buffer_size: 502');
    like(error_log_since($off), qr/exceeds "stytch_tat_buffer_size" 512/, 'buffer size named');
}

# while one exchange stalls, the same worker serves others
{
    emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'stall', count => 1 });
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port())
        or die $!;
    print $s "GET /app HTTP/1.1\r\nHost: localhost\r\nX-Email: ada.lovelace\@example.com\r\n"
           . "Connection: close\r\n\r\n";
    select(undef, undef, undef, 0.3);    # the stalled attest is under way
    my ($st, undef, $body) = http_request('GET', '/fast');
    is("$st $body", "200 fast\n", 'another request completes during a stalled exchange');
    ok(!IO::Select->new($s)->can_read(0), '... while the stalled one is still waiting');
    ok(IO::Select->new($s)->can_read(10), 'the stalled one ends');
    my $resp = do { local $/; <$s> };
    like($resp, qr{^HTTP/1\.1 504}, '... with 504');
    emu(DELETE => '/faults');
}

# Configuration faults Stytch answers invalid_trusted_auth_token, as a
# refused user would be: the log tells them apart (Stytch's message and
# request id, the kid and iat sent), and nothing is remembered for the
# identity, even with stytch_tat_cache_refusals
{
    my $port = server_port();
    my @faults = (
        ['an unreachable JWKS URL', sub { emu_setup(jwks => "http://127.0.0.1:$dead/jwks") },
         qr/Could not fetch the profile's JWKS/],
        ['a kid Stytch does not know (a rotation it missed)',
         sub { emu_setup(jwks => "http://127.0.0.1:$port/jwks-old") },
         qr/No key with kid '[\w-]+' in the profile's JWKS/],
        ['clock skew: this host 5 minutes ahead of Stytch',
         sub { emu_setup(); emu(POST => '/clock', { offset_seconds => -300 }) },
         qr/not valid yet \(nbf is in the future\)|issued in the future \(iat\)/],
    );
    for my $f (@faults) {
        my ($name, $setup, $msg) = @$f;
        $setup->();
        my $off = error_log_offset();
        my ($st, $h) = http_request('GET', '/cfg', { 'X-Email' => 'operator@example.com' });
        is("$st $h->{'x-error'}", '403 invalid_trusted_auth_token', "$name: 403");
        my $log = error_log_since($off);
        like($log, qr/\[error\].*Stytch refused the module's token: "invalid_trusted_auth_token", "[^"]*$msg[^"]*", request_id "request-id-test-[0-9a-f-]{36}"; the token had kid "[\w-]+", iat \d+, exp \d+ \(this host's clock\): likely a configuration fault/,
             "$name: the log line says what Stytch said and what the module sent");
        unlike($log, qr/\[warn\].*refused the identity/, "$name: not logged as a refused identity");
        my $before = scalar emu_calls();
        ($st, $h) = http_request('GET', '/cfg', { 'X-Email' => 'operator@example.com' });
        is("$st $h->{'x-cache'}", '403 MISS', "$name: not remembered for the identity");
        is(scalar emu_calls(), $before + 1, "$name: ... Stytch was asked again");
        emu(POST => '/clock', { offset_seconds => 0 });
    }
    emu_setup();
    my ($st, $h) = http_request('GET', '/cfg', { 'X-Email' => 'operator@example.com' });
    is("$st $h->{'x-cache'}", '200 MISS', 'the fault fixed: a session at once');
}

ok(stop_nginx(), 'nginx stops cleanly: no crash, no alert');

done_testing();
