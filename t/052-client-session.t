# The session the client brings, on one nginx: cluster mode's cookie
# (bound to the identity, verified locally, another identity's ignored)
# and stytch_tat_verify; the status counters.  The three-node test and
# every forged token are in t/050 and t/051.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;

emu_setup();
$ENV{TEST_NGINX_PROJECT_ID} = $ProjectId;

my $http = $HttpConfig . "stytch_tat_zone zone=tat:1m;\n";
my $conf = $ServerConfig . <<'_EOC_';
    location = /_stytch_jwks {
        internal;
        proxy_pass https://stytch_api/v1/sessions/jwks/$TEST_NGINX_PROJECT_ID;
        proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
    }
    location = /_stytch_auth {
        internal;
        proxy_pass https://stytch_api/v1/sessions/authenticate;
        proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
    }
    location = /status { stytch_tat_status; }
    location /app {
        stytch_tat /_stytch_attest;
        stytch_tat_cache tat;
        stytch_tat_cookie on;
        stytch_tat_refresh /_stytch_auth;
        stytch_tat_session_jwks /_stytch_jwks;
        stytch_tat_email $http_x_email;
        add_header X-Cache $stytch_tat_cache_status always;
        add_header X-Error $stytch_tat_error always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
    }
    location /api {
        stytch_tat_verify $http_authorization;
        stytch_tat_cache tat;
        stytch_tat_session_jwks /_stytch_jwks;
        add_header X-Cache $stytch_tat_cache_status always;
        add_header X-Error $stytch_tat_error always;
        add_header X-Claim $stytch_session_claim_stytch_tat_identity always;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
    }
_EOC_

ok(start_nginx({http_config => $http, config => $conf}), 'nginx starts')
    or diag(last_error());

sub cookies_of {
    my ($h) = @_;
    my $c = $h->{'set-cookie'} // '';
    my %c = map { /^\s*(stytch_session(?:_jwt)?)=([^;]*)/ ? ($1 => $2) : () }
            split /,(?=\s*stytch_session)/, ref $c ? join(',', @$c) : $c;
    return \%c;
}

# a first request: the zone and Stytch, a session bound to ada
my ($st, $h, $body) = http_request(GET => '/app',
                                   {'X-Email' => 'ada@example.com'});
is($st, 200, 'first request: 200');
is($h->{'x-cache'}, 'MISS', 'first request: MISS');
my $c = cookies_of($h);
ok($c->{stytch_session_jwt} && $c->{stytch_session}, 'both cookies set');
my $v = verify_jwt($c->{stytch_session_jwt}, jwks => session_jwks_url(),
                   alg => 'RS256', iss => "stytch.com/$ProjectId",
                   aud => $ProjectId);
like($v->{payload}{stytch_tat_identity}, qr/^[A-Za-z0-9_-]{43}$/,
     'the session JWT carries the identity binding');
my ($session) = $body =~ /^session=(.*)$/m;

my $attests = () = emu_calls('/v1/sessions/attest');

# the cookie, for the same identity: the client's session, no attest
($st, $h, $body) = http_request(GET => '/app',
    {'X-Email' => 'ada@example.com',
     Cookie => "stytch_session_jwt=$c->{stytch_session_jwt}; "
             . "stytch_session=$c->{stytch_session}"});
is($st, 200, 'with the cookie: 200');
is($h->{'x-cache'}, 'CLIENT', 'with the cookie: CLIENT');
like($body, qr/^session=\Q$session\E$/m, 'the same session upstream');
like($body, qr/^jwt=\Q$c->{stytch_session_jwt}\E$/m, 'its JWT upstream');
like($body, qr/^token=$/m, 'no session token upstream');
ok(!$h->{'set-cookie'}, 'no cookie set again');

# ada's cookie with bob's identity: ignored, bob gets his own session
my $off = error_log_offset();
($st, $h, $body) = http_request(GET => '/app',
    {'X-Email' => 'bob@example.com',
     Cookie => "stytch_session_jwt=$c->{stytch_session_jwt}"});
is($h->{'x-cache'}, 'MISS', 'another identity\'s cookie: MISS');
unlike($body, qr/^session=\Q$session\E$/m, 'not ada\'s session');
like(scalar error_log_since($off),
     qr/\[info\].*session cookie of another identity ignored/,
     'logged at info');
my $bob = cookies_of($h);
ok($bob->{stytch_session_jwt}
   && $bob->{stytch_session_jwt} ne $c->{stytch_session_jwt},
   'bob gets his own cookies');
is(scalar(() = emu_calls('/v1/sessions/attest')), $attests + 1,
   'one attest, bob\'s');

# stytch_tat_verify: Bearer, missing, broken
($st, $h, $body) = http_request(GET => '/api',
    {Authorization => "Bearer $c->{stytch_session_jwt}"});
is($st, 200, 'verify: a valid session JWT passes');
is($h->{'x-cache'}, 'CLIENT', 'verify: CLIENT');
is($h->{'x-claim'}, $v->{payload}{stytch_tat_identity},
   'verify: $stytch_session_claim_NAME');
like($body, qr/^session=\Q$session\E$/m, 'verify: session id upstream');

# a client's own X-Stytch-* headers never reach the upstream here either
($st, $h, $body) = http_request(GET => '/api',
    [Authorization => "Bearer $c->{stytch_session_jwt}",
     'X-Stytch-User-Id' => 'user-forged', 'X-Stytch-Forged' => 'yes',
     'X_Stytch_Session_Id' => 'session-forged']);
like($body, qr/^user=\Q$v->{payload}{sub}\E$/m,
     'verify: the forged user id is dropped');
like($body, qr/^forged=$/m, 'verify: other client X-Stytch-* dropped');
like($body, qr/^session=\Q$session\E$/m,
     'verify: the underscored forgery is dropped');

($st, $h, $body) = http_request(GET => '/api', {});
is($st, 401, 'verify: no token: 401');
is($h->{'x-error'}, 'session_jwt_missing', 'verify: session_jwt_missing');
is($h->{'www-authenticate'}, 'Bearer realm="stytch"', 'verify: challenge');

my ($hd, $pl, $sg) = split /\./, $c->{stytch_session_jwt};
my $flipped = $sg =~ /^A/ ? "B" . substr($sg, 1) : "A" . substr($sg, 1);
$off = error_log_offset();
($st, $h, $body) = http_request(GET => '/api',
    {Authorization => "Bearer $hd.$pl.$flipped"});
is($st, 401, 'verify: a bad signature: 401');
is($h->{'x-error'}, 'session_jwt_signature', 'verify: session_jwt_signature');
like($h->{'www-authenticate'}, qr/error="invalid_token"/,
     'verify: invalid_token');
like(scalar error_log_since($off),
     qr/\[info\].*session JWT refused: signature/, 'verify: logged at info');

($st, $h, $body) = http_request(GET => '/status', {});
my $s = json_decode($body)->{zones}{tat};
is($s->{jwks}{fetches}, 1, 'status: one JWKS fetch');
is($s->{verify}{failed}{signature}, 1, 'status: one bad signature');
is($s->{verify}{failed}{binding}, 1, 'status: one binding mismatch');
ok($s->{verify}{ok} >= 1 && $s->{verify}{cached} >= 1,
   'status: verified once, then known good');

# a kid is the sender's: control characters never reach the log as such
{
    use MIME::Base64 qw(encode_base64url);
    my $hdr = encode_base64url('{"alg":"RS256","kid":"evil\n2026/11/30 [warn] forged","typ":"JWT"}');
    $off = error_log_offset();
    ($st, $h, $body) = http_request(GET => '/api',
        {Authorization => "Bearer $hdr.e30.AAAA"});
    is($st, 401, 'a kid with a newline: 401');
    my $log = error_log_since($off);
    like($log, qr/session JWT refused: \w+ \(kid "evil\?2026\/11\/30 \[warn\] forged"\)/,
         'the kid is logged with the newline replaced');
    unlike($log, qr/^2026\/11\/30 \[warn\] forged/m, 'no forged log line');
}

ok(stop_nginx(), 'nginx stops cleanly');
done_testing();
