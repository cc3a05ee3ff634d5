# Trust in the sessions clients bring, tried the way an attacker and an
# operator would (issue 21): stytch_tat_verify, the session JWKS and
# cluster mode.  One section per defect, each named after it; every token
# is a real attest's or one that npm's jose made (t/tools/forge-jwt.mjs),
# every foreign key one that jose made (t/tools/make-key.mjs), and every
# JWKS anomaly one that jose itself judges (t/tools/test).
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use File::Temp qw(tempdir);
use MIME::Base64 qw(encode_base64url);
use Time::HiRes qw(sleep);
use IO::Socket::INET;

$ENV{TEST_NGINX_PROJECT_ID} = $ProjectId;
$ENV{TEST_NGINX_ECHO_PORT} = free_port();
$ENV{TEST_NGINX_KEYS_PORT} = free_port();
my $keys_dir = tempdir(CLEANUP => 1);
chmod 0755, $keys_dir;
$ENV{TEST_NGINX_OWN_KEYS} = $keys_dir;

sub stop_here {
    my ($why) = @_;
    diag($why);
    done_testing();
    exit 1;
}

# a key pair of our own: {kid, private_pem, jwk}; its key file for forge
sub own_key {
    my ($kid, %jwk) = @_;
    my ($rc, $out, $err) = run_node(repo_root() . '/t/tools/make-key.mjs',
        '--kid', $kid, (%jwk ? ('--jwk', json_encode(\%jwk)) : ()));
    die "make-key.mjs: $err" if $rc;
    my $k = json_decode($out);
    my $file = "$keys_dir/$kid.key.json";
    open my $fh, '>', $file or die "$file: $!";
    print $fh $out;
    close $fh;
    $k->{file} = $file;
    return $k;
}

sub write_jwks {
    my ($name, @jwks) = @_;
    open my $fh, '>', "$keys_dir/$name.json" or die $!;
    print $fh json_encode({ keys => \@jwks });
    close $fh;
    chmod 0644, "$keys_dir/$name.json";
}

sub cookies_of {
    my ($h) = @_;
    my $c = $h->{'set-cookie'} // '';
    my %c = map { /^\s*(stytch_session(?:_jwt)?)=([^;]*)/ ? ($1 => $2) : () }
            split /,(?=\s*stytch_session)/, ref $c ? join(',', @$c) : $c;
    return \%c;
}

sub zone { json_decode((http_request('GET', '/status'))[2])->{zones}{$_[0]} }

my $http = $HttpConfig . <<'_EOC_';
stytch_tat_zone zone=tat:1m;
stytch_tat_zone zone=shared:1m;
stytch_tat_zone zone=own:1m;
stytch_tat_zone zone=odd:1m;
stytch_tat_zone zone=cluster:1m;
stytch_tat_zone zone=rel:1m;
stytch_tat_zone zone=ex:1m;

# what the upstream received, every header that matters here
server {
    listen 127.0.0.1:$TEST_NGINX_ECHO_PORT;
    location / {
        return 200 "user=$http_x_stytch_user_id
session=$http_x_stytch_session_id
roles=$http_x_roles
team=$http_x_team
cookie=$http_cookie
";
    }
}

# JWKS documents of the test's own keys
server {
    listen 127.0.0.1:$TEST_NGINX_KEYS_PORT;
    location /keys/ {
        alias $TEST_NGINX_OWN_KEYS/;
        default_type application/json;
    }
}
_EOC_

my $tls = <<'_EOC_';
    proxy_ssl_trusted_certificate $TEST_NGINX_STYTCH_CA;
    proxy_ssl_verify on;
    proxy_ssl_name localhost;
    proxy_connect_timeout 2s;
    proxy_read_timeout 2s;
_EOC_

my $config = $ServerConfig . <<"_EOC_";
large_client_header_buffers 4 32k;

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
location = /_own_jwks {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_KEYS_PORT/keys/own.json;
}
location = /_odd_jwks {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_KEYS_PORT/keys/odd.json;
}
location = /status { stytch_tat_status; }

location /api {
    stytch_tat_session_jwks /_stytch_jwks min_refetch=1s;
    stytch_tat_cache tat;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    add_header X-User \$stytch_user_id always;
    add_header X-Cache \$stytch_tat_cache_status always;
    add_header X-Team \$stytch_session_claim_teamname always;
    proxy_set_header X-Roles \$stytch_session_claim_roles;
    proxy_set_header X-Team \$stytch_session_claim_teamname;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# one zone, two leeways
location /lax {
    stytch_tat_session_jwks /_stytch_jwks leeway=5m;
    stytch_tat_cache shared;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}
location /strict {
    stytch_tat_session_jwks /_stytch_jwks leeway=0s;
    stytch_tat_cache shared;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# a JWKS of the test's own keys, and one with anomalies
location /own {
    stytch_tat_session_jwks /_own_jwks min_refetch=1s refresh=1h;
    stytch_tat_cache own;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}
location /odd {
    stytch_tat_session_jwks /_odd_jwks;
    stytch_tat_cache odd;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# a JWKS URI that a reload changes
location = /_rel_a_jwks {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_KEYS_PORT/keys/rel-a.json;
}
location = /_rel_b_jwks {
    internal;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_KEYS_PORT/keys/rel-b.json;
}
location /rel {
    stytch_tat_session_jwks /_rel_a_jwks min_refetch=1h refresh=1h;
    stytch_tat_cache rel;
    stytch_tat_verify \$http_authorization;
    add_header X-Error \$stytch_tat_error always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# the exchange, its session refreshed through sessions/authenticate
location /ex {
    stytch_tat /_stytch_attest;
    stytch_tat_cache ex;
    stytch_tat_refresh /_stytch_auth;
    stytch_tat_email \$http_x_email;
    add_header X-Cache \$stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# auth_request aimed at a verify location (a content handler: "return"
# would answer in the rewrite phase, before any check)
location = /_auth {
    internal;
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache tat;
    stytch_tat_verify \$http_authorization;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}
location /guarded {
    auth_request /_auth;
    auth_request_set \$guard_user \$stytch_user_id;
    add_header X-Guard-User \$guard_user always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}

# cluster mode, and a verify location in the same zone
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_cache cluster;
    stytch_tat_cookie on;
    stytch_tat_refresh /_stytch_auth;
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_email \$http_x_email;
    add_header X-Cache \$stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}
location /app-api {
    stytch_tat_session_jwks /_stytch_jwks;
    stytch_tat_cache cluster;
    stytch_tat_verify \$http_authorization;
    add_header X-Cache \$stytch_tat_cache_status always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_ECHO_PORT/;
}
_EOC_

emu_setup();
emu(POST => '/config', { session_jwt_lifetime_seconds => 300 });
emu(POST => '/clock', { offset_seconds => 0 });

my $own1 = own_key('own-1');
my $own2 = own_key('own-2');
write_jwks('own', $own1->{jwk});
my $signonly = own_key('sign-only', key_ops => ['sign']);
my $dup_a = own_key('dup');
my $dup_b = own_key('dup-b');
my $ok_key = own_key('plain');
my $rel_a = own_key('rel-a');
my $rel_b = own_key('rel-b');
write_jwks('rel-a', $rel_a->{jwk});
write_jwks('rel-b', $rel_b->{jwk});
write_jwks('odd', $signonly->{jwk}, $dup_a->{jwk}, { %{ $dup_b->{jwk} }, kid => 'dup' },
           $ok_key->{jwk});

ok(start_nginx({ http_config => $http, config => $config, workers => 2 }),
   'nginx starts') or stop_here(last_error());

sub bearer { my ($uri, $jwt, %h) = @_; http_request('GET', $uri, { Authorization => "Bearer $jwt", %h }) }

my ($st, $h, $body, $off);
my $now = time;

# --- 1. claims inject upstream headers ---------------------------------------
{
    my $jwt = forge_jwt('valid', claims => {
        roles => "reader\r\nX-Stytch-User-Id: user-victim", teamName => 'blue' });
    my $user = (jwt_parts($jwt))[1]{sub};
    $off = error_log_offset();
    ($st, $h, $body) = bearer('/api', $jwt);
    is($st, 200, '1: a validly signed token with CR LF in a claim: 200');
    like($body, qr/^user=\Q$user\E$/m, '1: the upstream reads the module\'s user id');
    unlike($body, qr/user-victim/, '1: no injected header reaches the upstream');
    like($body, qr/^roles=$/m, '1: the claim\'s variable is empty');
    like(scalar error_log_since($off),
         qr/\[warn\].*session claim "roles" has control characters/,
         '1: logged at warn, naming the claim');

    ($st, $h, $body) = bearer('/api', forge_jwt('valid',
        sub => "user-test-x\r\nX-Stytch-Session-Id: forged"));
    is("$st $h->{'x-error'}", '401 session_jwt_malformed',
       '1: a sub with CR LF: 401 session_jwt_malformed');
    unlike($body // '', qr/forged/, '1: and nothing of it upstream');
    ($st, $h) = bearer('/api', forge_jwt('valid',
        session_id => "session-test-x\nX-Forged: 1"));
    is("$st $h->{'x-error'}", '401 session_jwt_malformed', '1: a session id with LF: 401');
}

# --- 12. claim variable names are lower-cased by nginx -------------------------
{
    ($st, $h, $body) = bearer('/api', forge_jwt('valid', claims => { teamName => 'blue' }));
    is($h->{'x-team'}, 'blue', '12: $stytch_session_claim_teamname finds "teamName"');
    like($body, qr/^team=blue$/m, '12: and hands it upstream');
    $off = error_log_offset();
    ($st, $h, $body) = bearer('/api', forge_jwt('valid', claims => { teamName => 'blue', teamname => 'red' }));
    is($st, 200, '12: a token with "teamName" and "teamname": 200');
    ok(!defined $h->{'x-team'}, '12: the ambiguous name leaves the variable empty');
    like($body, qr/^team=$/m, '12: nothing upstream');
    like(scalar error_log_since($off), qr/\[warn\].*2 session claims are named "teamname"/,
         '12: logged at warn');
}

# --- 9. tokens Stytch's SDK rejects ---------------------------------------------
{
    for my $kind (qw(no_typ typ_other)) {
        ($st, $h) = bearer('/api', forge_jwt($kind));
        is("$st $h->{'x-error'}", '401 session_jwt_typ', "9: $kind: 401 session_jwt_typ");
    }
    ($st, $h) = bearer('/api', forge_jwt('iat_string'));
    is("$st $h->{'x-error'}", '401 session_jwt_malformed', '9: a string iat: 401');

    # a JWKS whose key excludes "verify", and a kid two keys share
    $off = error_log_offset();
    ($st, $h) = bearer('/odd', forge_jwt('valid', key => $signonly->{file}));
    is("$st $h->{'x-error'}", '401 session_jwt_unknown_kid',
       '9: a key whose key_ops exclude verify is not used');
    ($st, $h) = bearer('/odd', forge_jwt('valid', key => $dup_a->{file}));
    is("$st $h->{'x-error'}", '401 session_jwt_kid_ambiguous',
       '9: a kid two keys share: refused, not the first key taken');
    ($st, $h) = bearer('/odd', forge_jwt('valid', key => $ok_key->{file}));
    is($st, 200, '9: the document\'s good key still verifies');
    like(scalar error_log_since($off),
         qr/\[warn\].*session JWKS in stytch_tat_zone "odd": 2 key\(s\) not used/,
         '9: the JWKS anomalies are logged');
}

# --- 11. exp near INT64_MAX ----------------------------------------------------
{
    # exp + leeway would overflow a signed 64-bit integer
    my $jwt = forge_jwt('valid', lifetime => '9223372035000000000');
    my $exp = (jwt_parts($jwt))[1]{exp};
    ok($exp =~ /^9223372036\d{9}$/ && $exp + 0 < 9.2233720368547e18,
       "11: the token's exp is just under 2^63 ($exp)");
    ($st, $h) = bearer('/lax', $jwt);
    is("$st $h->{'x-error'}", '401 session_jwt_lifetime', '11: refused: exp - iat is bounded');
    ($st, $h) = bearer('/api', forge_jwt('valid', lifetime => 86400));
    is("$st $h->{'x-error'}", '401 session_jwt_lifetime', '4: a day-long token: 401');
}

# --- 5. a cached verification carries the first location's leeway --------------
{
    my $jwt = forge_jwt('valid', now => $now - 360, lifetime => 300);   # expired 60 s ago
    ($st, $h) = bearer('/lax', $jwt);
    is($st, 200, '5: expired 60 s ago, leeway=5m: 200');
    ($st, $h) = bearer('/strict', $jwt);
    is("$st $h->{'x-error'}", '401 session_jwt_expired',
       '5: the same token where leeway=0s, after the zone cached it: 401');
}

# --- leeway default: none on exp ------------------------------------------------
{
    ($st, $h) = bearer('/api', forge_jwt('valid', now => $now - 310, lifetime => 300));
    is("$st $h->{'x-error'}", '401 session_jwt_expired', 'leeway: a token expired 10 s ago: 401 by default');
    ($st, $h) = bearer('/api', forge_jwt('valid', now => $now + 20, lifetime => 300));
    is($st, 200, 'leeway: iat 20 s ahead (clock skew) is allowed');
}

# --- 4. a verified token outlives the removal of its key ------------------------
{
    my $t1 = forge_jwt('valid', key => $own1->{file});
    ($st, $h) = bearer('/own', $t1);
    is($st, 200, '4: a token of key own-1: 200');
    ($st, $h) = bearer('/own', $t1);
    is($st, 200, '4: and again, from the zone');

    # the JWKS drops own-1 for own-2: a token of own-2 refetches it
    write_jwks('own', $own2->{jwk});
    sleep 1.2;    # past min_refetch=1s since the first fetch
    ($st, $h) = bearer('/own', forge_jwt('valid', key => $own2->{file}));
    is($st, 200, '4: a token of the new key: the JWKS is refetched, 200');
    ($st, $h) = bearer('/own', $t1);
    is("$st $h->{'x-error'}", '401 session_jwt_unknown_kid',
       '4: the token verified before with the dropped key: 401');
    ($st, $h) = bearer('/own', forge_jwt('valid', key => $own1->{file}));
    is($st, 401, '4: a new token of the dropped key: 401');
}

# --- 8. stytch_tat_verify in subrequests ------------------------------------------
{
    ($st, $h, $body) = http_request('GET', '/guarded');
    is($st, 401, '8: auth_request to a verify location without a token: 401');
    unlike($body // '', qr/^user=/m, '8: the upstream is not reached');
    like($h->{'www-authenticate'} // '', qr/^Bearer realm="stytch"/, '8: the challenge is passed on');
    ($st, $h) = bearer('/guarded', forge_jwt('bad_signature'));
    is($st, 401, '8: with a forged token: 401');
    my $jwt = forge_jwt('valid');
    my $user = (jwt_parts($jwt))[1]{sub};
    ($st, $h, $body) = bearer('/guarded', $jwt);
    is($st, 200, '8: with a valid token: 200');
    is($h->{'x-guard-user'}, $user, '8: auth_request_set reads $stytch_user_id');
}

# --- cluster mode -------------------------------------------------------------------
my ($c, $binding, $session_jwt);
{
    ($st, $h, $body) = http_request('GET', '/app', { 'X-Email' => 'ada@example.com' });
    is($st, 200, 'cluster: a first session for ada');
    $c = cookies_of($h);
    $session_jwt = $c->{stytch_session_jwt};
    $binding = (jwt_parts($session_jwt))[1]{stytch_tat_identity};
    like($binding // '', qr/^[A-Za-z0-9_-]{43}$/, 'cluster: the session JWT is bound');
}

# --- 7. a verify location in the same zone breaks cluster binding ---------------------
{
    ($st, $h) = bearer('/app-api', $session_jwt);
    is("$st $h->{'x-cache'}", '200 CLIENT', '7: the verify location takes ada\'s JWT first');
    my $mark = emu_counts();
    ($st, $h) = http_request('GET', '/app', { 'X-Email' => 'ada@example.com',
        Cookie => "stytch_session_jwt=$session_jwt; stytch_session=$c->{stytch_session}" });
    is("$st $h->{'x-cache'}", '200 CLIENT', '7: then the cluster location still takes it as ada\'s');
    is(emu_counts($mark)->get('POST /v1/sessions/attest'), 0, '7: no second attest');
}

# --- 10. ignored cookies reach the upstream -----------------------------------------
{
    ($st, $h, $body) = http_request('GET', '/app', { 'X-Email' => 'bob@example.com',
        Cookie => "theme=dark; stytch_session_jwt=$session_jwt; "
                . "stytch_session=$c->{stytch_session}; lang=en" });
    is($st, 200, '10: bob with ada\'s cookies: 200');
    unlike($body, qr/\Q$session_jwt\E|\Q$c->{stytch_session}\E/,
           '10: ada\'s cookies do not reach the upstream');
    like($body, qr/^cookie=theme=dark; lang=en$/m, '10: the other cookies do');
}

# --- 3. a failed cluster refresh is never remembered ----------------------------
# --- 6. a non-UTF-8 stytch_session cookie ------------------------------------------
{
    my $user = (jwt_parts($session_jwt))[1]{sub};
    my $expired = forge_jwt('expired', sub => $user,
                            claims => { stytch_tat_identity => $binding });
    emu(DELETE => '/sessions');    # Stytch refuses the session from now on
    my $mark = emu_counts();
    my @st;
    for (1 .. 20) {
        ($st, $h) = http_request('GET', '/app', { 'X-Email' => 'ada@example.com',
            Cookie => "stytch_session_jwt=$expired; stytch_session=$c->{stytch_session}" });
        push @st, $st;
    }
    is(scalar(grep { $_ == 200 } @st), 20, '3: 20 requests with a refused refresh: all served');
    cmp_ok(emu_counts($mark)->get('POST /v1/sessions/authenticate'), '<=', 1,
           '3: at most one sessions/authenticate call for the same expired JWT');

    my $expired2 = forge_jwt('expired', sub => $user,
                             claims => { stytch_tat_identity => $binding });
    ($st, $h, $body) = http_request('GET', '/app', [ 'X-Email' => 'ada@example.com',
        Cookie => "stytch_session_jwt=$expired2; stytch_session=\xff\xfe-not-utf8" ]);
    is($st, 200, '6: a non-UTF-8 stytch_session cookie with an expired JWT: served from the zone');
}

# --- the session JWKS is public: fetched without the project's credentials --
{
    my @jwks = emu(GET => "/calls?path=/v1/sessions/jwks/$ProjectId")->{calls};
    @jwks = @{ $jwks[0] };
    ok(@jwks >= 1, 'jwks: fetched from the emulator');
    is(join(',', sort { $a cmp $b } keys %{{ map { $_->{auth} => 1 } @jwks }}), 'missing',
       'jwks: no Authorization header on any fetch');
}

# --- a refresh that fails: STALE, and no call per request for a while ------------
{
    emu(POST => '/config', { session_jwt_lifetime_seconds => 30 });  # always due
    ($st, $h) = http_request('GET', '/ex', { 'X-Email' => 'stale@example.com' });
    is("$st $h->{'x-cache'}", '200 MISS', 'stale: a first session');
    emu(POST => '/faults', { mode => 'status', status => 503,
                             path => '/v1/sessions/authenticate' });
    my $mark = emu_counts();
    my @cs;
    for (1 .. 5) {
        ($st, $h) = http_request('GET', '/ex', { 'X-Email' => 'stale@example.com' });
        push @cs, "$st $h->{'x-cache'}";
    }
    is("@cs", join(' ', ('200 STALE') x 5),
       'stale: the refresh fails, the JWT, valid still, serves as STALE');
    is(emu_counts($mark)->get('POST /v1/sessions/authenticate'), 1,
       'stale: one refresh call, not one per request');
    emu(DELETE => '/faults');
    emu(POST => '/config', { session_jwt_lifetime_seconds => 300 });
}

# --- 2. after a reload that changes the JWKS URI --------------------------------
{
    ($st, $h) = bearer('/rel', forge_jwt('valid', key => $rel_a->{file}));
    is($st, 200, '2: a token of the first URI\'s key: 200');
    (my $config2 = $config) =~ s{stytch_tat_session_jwks /_rel_a_jwks}{stytch_tat_session_jwks /_rel_b_jwks};
    ok(reload_nginx({ http_config => $http, config => $config2, workers => 2 }),
       '2: reload with another JWKS URI') or diag(last_error());
    ($st, $h) = bearer('/rel', forge_jwt('valid', key => $rel_b->{file}));
    is($st, 200, '2: a token of the new URI\'s key at once, no refresh= wait');
    ($st, $h) = bearer('/rel', forge_jwt('valid', key => $rel_a->{file}));
    is($st, 401, '2: the old URI\'s keys no longer verify');
}

# --- the identity binding is keyed --------------------------------------------------------
{
    http_request('GET', '/app', { 'X-Email' => 'keyed@example.com' });
    my $call = emu(GET => '/calls?path=/v1/sessions/attest')->{calls}[-1];
    my $b1 = $call->{body}{session_custom_claims}{stytch_tat_identity};
    like($b1 // '', qr/^[A-Za-z0-9_-]{43}$/, 'binding: the attest sends one');
    ok(stop_nginx(), 'nginx stops') or diag(last_error());

    # the same configuration with another secret: another binding
    open my $fh, '>', "$keys_dir/creds" or die $!;
    print $fh "$ProjectId:secret-test-another-secret-000000000000000\n";
    close $fh;
    chmod 0644, "$keys_dir/creds";
    (my $http2 = $http) =~ s{\$TEST_NGINX_KEYS/creds}{\$TEST_NGINX_OWN_KEYS/creds};
    ok(start_nginx({ http_config => $http2, config => $config }), 'nginx with another secret')
        or stop_here(last_error());
    http_request('GET', '/app', { 'X-Email' => 'keyed@example.com' });
    my $call2 = emu(GET => '/calls?path=/v1/sessions/attest')->{calls}[-1];
    my $b2 = $call2->{body}{session_custom_claims}{stytch_tat_identity};
    like($b2 // '', qr/^[A-Za-z0-9_-]{43}$/, 'binding: sent again');
    isnt($b2, $b1, 'binding: keyed by the secret, not a digest anyone can recompute');
}

ok(stop_nginx(), 'no alert, emerg or crash') or diag(last_error());

# --- a leader killed with SIGKILL: its lease passes on at once ------------------
{
    my $c2 = $config . "stytch_tat_cache_lock_timeout 30s;\n";
    ok(start_nginx({ http_config => $http, config => $c2, workers => 2 }),
       'kill: nginx with a 30 s lock timeout') or stop_here(last_error());
    emu(POST => '/faults', { mode => 'latency', latency_ms => 4000, count => 1,
                             path => '/v1/sessions/attest' });
    my $off = error_log_offset();
    my $sock = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => server_port())
        or die "connect: $!";
    print $sock "GET /app HTTP/1.1\r\nHost: localhost\r\nX-Email: killed\@example.com\r\n"
              . "Connection: close\r\n\r\n";
    my $leader;
    for (1 .. 200) {
        ($leader) = error_log_since($off) =~ /(\d+)#\d+: \*\d+ http subrequest "\/_stytch_attest/;
        last if $leader;
        sleep 0.05;
    }
    ok($leader, 'kill: the first request leads the attest') or stop_here('no leader');
    kill 'KILL', $leader;
    for (1 .. 200) { last unless kill 0, $leader; sleep 0.05 }
    close $sock;
    # the delay is the leader's alone, whether its call reached Stytch or not
    emu(DELETE => '/faults');
    $off = error_log_offset();
    ($st, $h) = http_request('GET', '/app', { 'X-Email' => 'killed@example.com' }, undef,
                             { timeout => 20 });
    is($st, 200, 'kill: the next request for the identity is served');
    like(scalar error_log_since($off),
         qr/\[warn\].*the worker process $leader leading an exchange in stytch_tat_zone "cluster" is gone/,
         'kill: it takes the lease over at once, and says so');
    ok(stop_nginx(ignore => qr/exited on signal 9/), 'kill: no other alert or crash')
        or diag(last_error());
}

run_tests();

__DATA__

=== TEST 1: two session JWKS URIs in one zone
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_jwks_a { internal; proxy_pass https://stytch_api/v1/sessions/jwks/a; }
location = /_jwks_b { internal; proxy_pass https://stytch_api/v1/b2b/sessions/jwks/a; }
location /a {
    stytch_tat_session_jwks /_jwks_a project_id=project-test-a;
    stytch_tat_cache tat;
    stytch_tat_verify $http_authorization;
    return 200;
}
location /b {
    stytch_tat_session_jwks /_jwks_b project_id=project-test-a;
    stytch_tat_cache tat;
    stytch_tat_verify $http_authorization;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/"stytch_tat_session_jwks \/_jwks_a" \(project "project-test-a"\) in \S+:\d+ and "stytch_tat_session_jwks \/_jwks_b" \(project "project-test-a"\) in \S+:\d+ use one stytch_tat_cache zone "tat"/



=== TEST 2: one URI, two projects in one zone
--- http_config eval: $::HttpConfig . "stytch_tat_zone zone=tat:1m;\n"
--- config eval
$::ServerConfig . <<'_EOC_'
location = /_jwks { internal; proxy_pass https://stytch_api/v1/sessions/jwks/a; }
location /a {
    stytch_tat_session_jwks /_jwks project_id=project-test-a;
    stytch_tat_cache tat;
    stytch_tat_verify $http_authorization;
    return 200;
}
location /b {
    stytch_tat_session_jwks /_jwks project_id=project-test-b;
    stytch_tat_cache tat;
    stytch_tat_verify $http_authorization;
    return 200;
}
_EOC_
--- must_die
--- error_log eval
qr/use one stytch_tat_cache zone "tat", which keeps one JWKS/
