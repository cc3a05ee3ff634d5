# No secret reaches a log line at any level: the Stytch secret (raw or as
# Basic credentials), private key material, the minted tokens, the session
# token. The whole suite logs at debug; this file checks the debug log of a
# full exchange with a cache, a refresh and failures.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use MIME::Base64 qw(encode_base64);

my $keys = $ENV{TEST_NGINX_KEYS};
my $creds = do { local (@ARGV, $/) = "$keys/creds"; <> };
chomp $creds;
my ($project, $secret) = split /:/, $creds, 2;
my $basic = encode_base64($creds, '');
my @pem = grep { !/-----/ } split /\n/, do { local (@ARGV, $/) = "$keys/rsa.pem"; <> };

my $http = $HttpConfig . "stytch_tat_zone zone=tat:1m;\n";
my $config = $ServerConfig . <<'_EOC_';
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_email $http_x_email;
    stytch_tat_cookie on;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location /assert {
    stytch_tat_email $http_x_email;
    proxy_set_header X-Assertion $stytch_tat_jwt;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
_EOC_

emu_setup();
ok(start_nginx({ http_config => $http, config => $config }), 'nginx starts')
    or BAIL_OUT(last_error());
my $off = error_log_offset();

my (@tokens, @jwts);
for my $email (qw(a@example.com b@example.com a@example.com)) {
    my ($st, $h) = http_request('GET', '/app', { 'X-Email' => $email });
    is($st, 200, "exchange for $email");
    push @tokens, $h->{'set-cookie'} =~ /stytch_session=([^;]+)/;
    push @jwts, $h->{'set-cookie'} =~ /stytch_session_jwt=([^;]+)/;
}
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status',
                         status => 400, error_type => 'invalid_trusted_auth_token',
                         count => 1 });
is((http_request('GET', '/app', { 'X-Email' => 'c@example.com' }))[0], 403,
   'a refused identity');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'malformed_json',
                         count => 1 });
is((http_request('GET', '/app', { 'X-Email' => 'd@example.com' }))[0], 502,
   'a malformed answer');
is((http_request('GET', '/assert', { 'X-Email' => 'e@example.com' }))[0], 200,
   'an assertion for the upstream');

my @minted = map { $_->{body}{token} } grep { ref $_->{body} } emu_calls();
ok(@minted >= 3, scalar(@minted) . ' tokens were minted and sent to Stytch');

ok(stop_nginx(), 'nginx stops');
my $log = error_log_since($off);
ok(length($log) > 10000, 'the debug log is there (' . length($log) . ' bytes)');
like($log, qr/\[debug\]/, 'it is a debug log');

unlike($log, qr/\Q$secret\E/, 'no Stytch secret in the log');
unlike($log, qr/\Q$basic\E/, 'no Basic credentials in the log');
unlike($log, qr/\Q$_\E/, 'no line of the private key in the log') for @pem[0 .. 2];
my @leaked = grep { index($log, $_) >= 0 } @minted;
is(scalar @leaked, 0, 'no minted token sent to Stytch appears whole in the log');
# The session is handed on in headers and cookies by design, and nginx's
# own debug lines dump every header it receives and sends ("http header",
# "http proxy header", the response header block): those carry it, as they
# carry any client's cookies (README, "Secrets and logs").  The module's own
# lines never do.
my $lines = join "\n", grep { /stytch_tat/ } split /\n/, $log;
ok(length $lines, 'the module logged at debug');
@leaked = grep { index($lines, $_) >= 0 } @tokens, @jwts;
is(scalar @leaked, 0, 'no session token or session JWT in the module\'s lines');
like($log, qr/^Set-Cookie: stytch_session=/m,
     '(nginx\'s dump of the response headers does carry the cookie)');

done_testing();
