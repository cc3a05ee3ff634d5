# Trust under the configurations operators run: the stock error_page,
# underscores_in_headers, try_files and error_page redirects, HTTP/2,
# keepalive, clients that hang up, key rotation, typos.  One section per
# defect of the trust review (issue 9), each named after it.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use IO::Socket::INET;
use MIME::Base64 qw(decode_base64);

$ENV{TEST_NGINX_H2_PORT} = free_port();
$ENV{TEST_NGINX_WAYOUT_PORT} = free_port();
$ENV{TEST_NGINX_DEAD_PORT} = free_port();    # nothing listens here
$ENV{TEST_NGINX_SRV_PORT} = free_port();

my $h2 = `curl --version 2>/dev/null` =~ /\bHTTP2\b/;

my $backend = 'proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;';

# examples/stytch_attest.conf as shipped, pointed at the emulator's CA
my $snippet = do {
    local $/;
    open my $fh, '<', repo_root() . '/examples/stytch_attest.conf' or die $!;
    <$fh>;
};
$snippet =~ s{/etc/ssl/certs/ca-certificates\.crt}{\$TEST_NGINX_STYTCH_CA};

my $http = $HttpConfig . <<"_EOC_";
underscores_in_headers on;
stytch_tat_zone zone=trust:1m;

# a server that uses the exchange and opts out of dropping client headers
server {
    listen 127.0.0.1:\$TEST_NGINX_WAYOUT_PORT;
    stytch_tat_drop_client_headers off;

    location = /uses-it {
        stytch_tat /_stytch_attest;
        stytch_tat_email \$http_x_email;
    }
    location /plain { $backend }
}
_EOC_

my $config = $ServerConfig . <<"_EOC_";
listen 127.0.0.1:\$TEST_NGINX_H2_PORT http2;
error_page 500 502 503 504 /50x.html;
location = /50x.html { root \$TEST_NGINX_HTML_DIR; }

location = /_stytch_dead {
    internal;
    proxy_pass https://127.0.0.1:\$TEST_NGINX_DEAD_PORT/v1/sessions/attest;
}
location = /_stytch_slow {
    internal;
    proxy_pass https://stytch_api/v1/sessions/attest;
    proxy_ssl_trusted_certificate \$TEST_NGINX_STYTCH_CA;
    proxy_ssl_name localhost;
    proxy_read_timeout 500ms;
}
location = /_stytch_example {
    internal;
    set \$stytch_host localhost;
    proxy_pass https://stytch_api/v1/sessions/attest;
$snippet
}

location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    $backend
}
location /open-dead {
    stytch_tat /_stytch_dead;
    stytch_tat_fail open;
    stytch_tat_email \$http_x_email;
    $backend
}
location /dead {
    stytch_tat /_stytch_dead;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    $backend
}
location /slow {
    stytch_tat /_stytch_slow;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    $backend
}
location /hang {
    stytch_tat /_stytch_attest;
    stytch_tat_cache trust;
    # long: a leader that leaves must hand over at once, not at the lease's end
    stytch_tat_cache_lock_timeout 30s;
    stytch_tat_email \$http_x_email;
    add_header X-Cache \$stytch_tat_cache_status always;
    $backend
}
location /step-up {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    stytch_tat_token_id \$http_x_validation_id;
    add_header X-Error \$stytch_tat_error always;
    try_files /nonexistent \@app;
}
location \@app {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    stytch_tat_token_id \$http_x_validation_id;
    add_header X-Error \$stytch_tat_error always;
    rewrite ^ /backend/ break;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT;
}
location /intercepted {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    proxy_intercept_errors on;
    error_page 404 = \@app;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/missing/;
}
location /rewritten {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    rewrite ^ /app last;
}
location /example {
    stytch_tat /_stytch_example;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    $backend
}
location /rotate {
    stytch_tat_cache trust;
    stytch_tat_email \$http_x_email;
    return 200 "\$stytch_tat_jwt";
}
location /long {
    stytch_tat /_stytch_attest;
    stytch_tat_cache trust;
    stytch_tat_session_duration 24h;
    stytch_tat_email \$http_x_email;
    add_header X-Cache \$stytch_tat_cache_status always;
    add_header X-Expires \$stytch_session_id always;
    $backend
}
location /short {
    stytch_tat /_stytch_attest;
    stytch_tat_cache trust;
    stytch_tat_session_duration 5m;
    stytch_tat_email \$http_x_email;
    add_header X-Cache \$stytch_tat_cache_status always;
    $backend
}
location /typo {
    stytch_tat /_stytch_atest;
    stytch_tat_email \$http_x_email;
    add_header X-Error \$stytch_tat_error always;
    $backend
}
# regex locations: only the request can tell where these URIs lead, so
# "nginx -t" lets them be (t/003-config.t has the cases it refuses)
location ~ ^/_stytch_static\$ {
    internal;
    return 200 "{}";
}
location ~ ^/_stytch_atest {
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT;
}
location /static-attest {
    stytch_tat /_stytch_static;
    stytch_tat_email \$http_x_email;
    $backend
}
location /plain { $backend }
location / {
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_

# stytch_tat at server level: the module's own endpoints still answer
my $server_level = <<"_EOC_";
stytch_tat /_stytch_attest;
stytch_tat_email \$http_x_email;
location = /srv-jwks { stytch_tat_jwks; }
location = /srv-status { stytch_tat_status; }
_EOC_

emu_setup();

ok(start_nginx({ http_config => $http,
                 config => $config . "}\nserver {\n"
                           . "listen 127.0.0.1:\$TEST_NGINX_SRV_PORT;\n"
                           . $ServerConfig . $server_level,
                 workers => 1 }),
   'nginx starts') or BAIL_OUT(last_error());

# the stock nginx.conf's error page, at server level, inherited by the
# internal locations
{
    open my $fh, '>', html_dir() . '/50x.html' or die $!;
    print $fh "the stock error page\n";
    close $fh;
    chmod 0644, html_dir() . '/50x.html';
}

sub attests { scalar emu_calls('/v1/sessions/attest') }
my %id = ('X-Email' => 'ada.lovelace@example.com');

sub h2_get {   # -> (status, body, curl exit code)
    my ($uri, %h) = @_;
    my @args = ('curl', '-s', '--http2-prior-knowledge', '-o', '-',
                '-w', '\n%{http_code}', '--max-time', '10');
    push @args, '-H', "$_: $h{$_}" for sort keys %h;
    push @args, "http://127.0.0.1:$ENV{TEST_NGINX_H2_PORT}$uri";
    open my $fh, '-|', @args or die "curl: $!";
    local $/;
    my $out = <$fh>;
    close $fh;
    my $rc = $? >> 8;
    my ($body, $st) = $out =~ /\A(.*)\n(\d+)\z/s ? ($1, $2) : ($out, 0);
    return ($st, $body, $rc);
}

# two requests on one keepalive connection: both responses well-formed
sub keepalive_pair {
    my ($uri, %h) = @_;
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port(), Timeout => 10)
        or die "connect: $!";
    my $hdrs = join '', map { "$_: $h{$_}\r\n" } sort keys %h;
    print $s "GET $uri HTTP/1.1\r\nHost: localhost\r\n$hdrs\r\n"
           . "GET /plain HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";
    local $/;
    my $all = <$s>;
    close $s;
    return $all;
}

# -- 1. forged identity through underscores --------------------------------
{
    my %forged = (%id, 'X_Stytch_User_Id' => 'victim', 'X-Stytch-Forged' => 'x');
    my ($st, undef, $body) = http_request('GET', '/app', \%forged);
    is($st, 200, 'underscores: the exchange succeeds');
    like($body, qr/^user=user-test-/m, 'underscores: the upstream gets the real user id');
    unlike($body, qr/victim/, 'underscores: X_Stytch_User_Id never reaches the upstream');

    ($st, undef, $body) = http_request('GET', '/open-dead', \%forged);
    is($st, 200, 'underscores, failing open: passed without a session');
    like($body, qr/^user=$/m, 'underscores, failing open: no user id upstream at all');

    SKIP: {
        skip 'curl without HTTP/2', 3 unless $h2;
        my ($st2, $b2) = h2_get('/open-dead', %forged);
        is($st2, 200, 'underscores over HTTP/2: passed without a session');
        like($b2, qr/^user=$/m, 'underscores over HTTP/2: no forged user id');
        unlike($b2, qr/victim/, 'underscores over HTTP/2: nothing forged');
    }
}

# -- 2. error_page on the internal location ---------------------------------
{
    my $off = error_log_offset();
    my $all = keepalive_pair('/dead', %id);
    like($all, qr{\AHTTP/1\.1 502 }, 'error_page: the first bytes are the 502 status line');
    my @status = $all =~ m{^HTTP/1\.1 (\d+)}mg;
    is("@status", '502 200', 'error_page: a keepalive connection stays in step');
    my $log = error_log_since($off);
    like($log, qr{\[error\].*Stytch unreachable.*"/_stytch_dead"},
         'error_page: the log names the configured internal location');
    unlike($log, qr{stytch_tat.*"/50x\.html"}, 'error_page: ... not the error page');

    my ($st, $h, $body) = http_request('GET', '/open-dead', \%id);
    is($st, 200, 'error_page, failing open: 200');
    unlike($body, qr/stock error page/, 'error_page, failing open: no error page in the body');
    like($body, qr/\Ajwt=/, 'error_page, failing open: only the upstream\'s answer');

    emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'latency',
                             latency_ms => 2000, count => 1 });
    $off = error_log_offset();
    ($st, $h) = http_request('GET', '/slow', \%id);
    is($st, 504, 'error_page: a Stytch timeout is still 504');
    like(error_log_since($off), qr{\[error\].*Stytch timed out \("/_stytch_slow"\)},
         'error_page: ... logged as a timeout of the configured location');
    emu(DELETE => '/faults');

    SKIP: {
        skip 'curl without HTTP/2', 3 unless $h2;
        my ($st2, $b2, $rc) = h2_get('/dead', %id);
        is($rc, 0, 'error_page over HTTP/2: the stream is not reset');
        is($st2, 502, 'error_page over HTTP/2: 502');
        my ($st3, $b3) = h2_get('/open-dead', %id);
        unlike($b3, qr/stock error page/, 'error_page over HTTP/2, failing open: upstream only');
    }
}

# -- 3. a leader whose client hangs up --------------------------------------
{
    emu(DELETE => '/calls');
    emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'latency',
                             latency_ms => 1000, count => 1 });
    my %hang = ('X-Email' => 'hang@example.com');
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1',
                                  PeerPort => server_port(), Timeout => 10)
        or die "connect: $!";
    print $s "GET /hang HTTP/1.1\r\nHost: localhost\r\nX-Email: hang\@example.com\r\n\r\n";
    # the leader's attest has reached Stytch: then its client goes
    my $seen = 0;
    for (1 .. 200) { $seen = attests(); last if $seen; select(undef, undef, undef, 0.02) }
    is($seen, 1, 'hang-up: the leader attests');
    close $s;
    # whether the followers arrive before or after nginx notices the close,
    # one of them takes over at once and the others wait for it
    my @res = concurrent_requests(8, ['GET', '/hang', \%hang], { timeout => 10 });
    my %st; $st{$_->{status} // 'none'}++ for @res;
    is($st{200}, 8, 'hang-up: all 8 followers served') or diag explain \%st;
    is(attests(), 2, 'hang-up: one takeover, not one attest per follower');
    my %cache; $cache{$_->{headers}{'x-cache'} // ''}++ for @res;
    is($cache{MISS}, 1, 'hang-up: one follower leads') or diag explain \%cache;
    is($cache{HIT}, 7, 'hang-up: the others get its session') or diag explain \%cache;
    emu(DELETE => '/faults');
}

# -- 4. an internal redirect after the exchange -----------------------------
{
    emu(DELETE => '/calls');
    my $off = error_log_offset();
    my ($st, $h, $body) = http_request('GET', '/step-up',
        { %id, 'X-Validation-Id' => 'validation-redirect-1' });
    is($st, 200, 'try_files to a named location: 200, no replayed token id');
    like($body, qr/^user=user-test-/m, 'try_files: the session reached the upstream');
    is(attests(), 1, 'try_files: one attest call');
    unlike(error_log_since($off), qr/dropped \d+ client header/,
           'try_files: the module\'s own headers are not taken for forgeries');

    emu(DELETE => '/calls');
    ($st, $h, $body) = http_request('GET', '/intercepted',
        { %id, 'X-Validation-Id' => 'validation-redirect-2' });
    is($st, 200, 'error_page after the upstream answered: 200');
    like($body, qr/^user=user-test-/m, 'error_page redirect: the session still upstream');
    is(attests(), 1, 'error_page redirect: one attest call');

    emu(DELETE => '/calls');
    ($st, $h, $body) = http_request('GET', '/rewritten', \%id);
    is($st, 200, 'rewrite ... last into another stytch_tat location: 200');
    is(attests(), 1, 'rewrite: one attest call');

    SKIP: {
        skip 'curl without HTTP/2', 3 unless $h2;
        emu(DELETE => '/calls');
        my ($st2, $b2) = h2_get('/step-up', %id, 'X-Validation-Id' => 'validation-redirect-3');
        is($st2, 200, 'try_files over HTTP/2: 200');
        like($b2, qr/^user=user-test-/m, 'try_files over HTTP/2: the session upstream');
        is(attests(), 1, 'try_files over HTTP/2: one attest call');
    }
}

# -- 5. the shipped snippet never replays a token Stytch may have read ------
{
    # a kept-alive connection to Stytch first: nginx retries a failure on
    # a cached connection, which is the case that matters
    my ($st0) = http_request('GET', '/example', \%id);
    is($st0, 200, 'examples/stytch_attest.conf: works');
    emu(DELETE => '/calls');
    emu(POST => '/faults', { path => '/v1/sessions/attest',
                             mode => 'reset_after_processing', count => 1 });
    my $off = error_log_offset();
    my ($st, $h) = http_request('GET', '/example', \%id);
    is($st, 502, 'examples/stytch_attest.conf: a dropped connection after Stytch read the token is 502');
    my $log = error_log_since($off);
    like($log, qr/\[error\].*Stytch unreachable/, '... logged as Stytch unreachable');
    unlike($log, qr/refused the identity/, '... not as a refusal');
    my @calls = emu_calls('/v1/sessions/attest');
    is(scalar @calls, 1, '... and the token was sent once');
    emu(DELETE => '/faults');
}

# -- 6. a cached $stytch_tat_jwt and key rotation ---------------------------
sub kid_of {
    my ($jwt) = @_;
    my ($h) = split /\./, $jwt;
    $h =~ tr{-_}{+/};
    $h .= '=' x ((4 - length($h) % 4) % 4);
    return json_decode(decode_base64($h))->{kid};
}
my ($kid1, $kid2);
{
    my (undef, undef, $t1) = http_request('GET', '/rotate', \%id);
    $kid1 = kid_of($t1);
    my (undef, undef, $again) = http_request('GET', '/rotate', \%id);
    is($again, $t1, 'rotation: the token is cached');
}

# -- 7. stytch_tat_session_duration is part of the cache key ----------------
{
    my %d = ('X-Email' => 'duration@example.com');
    my ($st, $h) = http_request('GET', '/long', \%d);
    is("$st $h->{'x-cache'}", '200 MISS', 'duration: a 24h session');
    ($st, $h) = http_request('GET', '/long', \%d);
    is("$st $h->{'x-cache'}", '200 HIT', 'duration: ... cached');
    ($st, $h) = http_request('GET', '/short', \%d);
    is("$st $h->{'x-cache'}", '200 MISS', 'duration: a 5m location never gets the 24h session');
}

# -- 8. a mistyped stytch_tat URI never sends the secret --------------------
{
    emu(DELETE => '/calls');
    my $off = error_log_offset();
    my ($st, $h, $body) = http_request('GET', '/typo', \%id);
    is($st, 500, 'typo: 500');
    unlike($body, qr/Basic|secret/, 'typo: nothing of the credentials in the answer');
    like(error_log_since($off),
         qr{\[error\].*"/_stytch_atest" reached a location that is not "internal"; the credentials were not sent},
         'typo: the log names the URI and the reason');
    is(attests(), 0, 'typo: nothing reached Stytch');

    $off = error_log_offset();
    ($st) = http_request('GET', '/static-attest', \%id);
    is($st, 500, 'an internal location that answers itself: 500');
    like(error_log_since($off), qr{\[error\].*"/_stytch_static" answered without proxying},
         '... with a log line naming it');
}

# -- 9. stytch_tat at server level and the module's endpoints ---------------
{
    my ($st, $h, $body) = http_request('GET', '/srv-jwks', {},
                                       undef, { port => $ENV{TEST_NGINX_SRV_PORT} });
    is($st, 200, 'stytch_tat at server level: the JWKS answers');
    like($body, qr/"keys"/, '... with the keys');
    ($st) = http_request('GET', '/srv-status', {}, undef, { port => $ENV{TEST_NGINX_SRV_PORT} });
    is($st, 200, 'stytch_tat at server level: the status endpoint answers');
}

# -- 10. client X-Stytch-* headers are dropped in every location ------------
{
    my ($st, undef, $body) = http_request('GET', '/plain', { 'X-Stytch-User-Id' => 'victim' });
    is($st, 200, 'a location without stytch_tat');
    like($body, qr/^user=$/m, '... forwards no client X-Stytch-User-Id');
    (undef, undef, $body) = http_request('GET', '/plain', { 'X_Stytch_User_Id' => 'victim' });
    like($body, qr/^user=$/m, '... nor its underscore spelling');
    (undef, undef, $body) = http_request('GET', '/plain', { 'X-Stytch-User-Id' => 'legit' },
                                         undef, { port => $ENV{TEST_NGINX_WAYOUT_PORT} });
    like($body, qr/^user=legit$/m,
         'stytch_tat_drop_client_headers off: the documented way out');
}

# -- 6, after a reload with another key --------------------------------------
{
    (my $rotated = $http) =~ s{rsa\.pem;}{rsa2.pem;};
    ok(reload_nginx({ http_config => $rotated,
                      config => $config . "}\nserver {\n"
                                . "listen 127.0.0.1:\$TEST_NGINX_SRV_PORT;\n"
                                . $ServerConfig . $server_level,
                      workers => 1 }), 'rotation: reload with a new key')
        or diag(last_error());
    my (undef, undef, $t2) = http_request('GET', '/rotate', \%id);
    $kid2 = kid_of($t2);
    isnt($kid2, $kid1, 'rotation: the token is signed by the new key');
    my (undef, undef, $jwks) = http_request('GET', '/jwks');
    my @kids = map { $_->{kid} } @{ json_decode($jwks)->{keys} };
    ok((grep { $_ eq $kid2 } @kids), 'rotation: its kid is in the JWKS');
}

# -- extra: waiters behind a rate-limited leader get its Retry-After -----
{
    emu(DELETE => '/calls');
    emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'rate_limit',
                             retry_after => 42, latency_ms => 1000, count => 1 });
    my @res = concurrent_requests(10, ['GET', '/hang', { 'X-Email' => 'limited@example.com' }],
                                  { timeout => 10 });
    my %st; $st{$_->{status} // 'none'}++ for @res;
    is($st{503}, 10, 'rate limit: the leader and its waiters answer 503') or diag explain \%st;
    is(scalar(grep { ($_->{headers}{'retry-after'} // '') eq '42' } @res), 10,
       'rate limit: every one of them with Stytch\'s Retry-After');
    is(attests(), 1, 'rate limit: one call to Stytch');
    emu(DELETE => '/faults');
}

ok(stop_nginx(), 'nginx stops cleanly');

done_testing();
