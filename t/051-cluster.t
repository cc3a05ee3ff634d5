# Several nginx nodes as one: three nodes on loopback (the same signing key
# and credentials, each its own zone) behind a fourth nginx, against the
# emulator.
#
#  A. A browser-like client with a cookie jar through a round-robin
#     balancer, across at least four session-JWT lifetimes: exactly one
#     attest, at most one authenticate per JWT lifetime, one session id
#     throughout, and the upstream always gets a session JWT that jose
#     verifies against the emulator's JWKS, for the right user and bound to
#     the identity.
#  B. Another user's cookies (valid, expired, forged with another binding)
#     presented with the first user's identity are never accepted.
#  C. Cookieless clients: behind the README's `hash $http_x_user
#     consistent;` balancer one attest per identity for the whole cluster;
#     behind round robin, one per node.
#
# Time: the emulator signs session JWTs that live L = 3 s, and the nodes
# allow no leeway on exp (stytch_tat_session_jwks leeway=0s; the default
# 30 s would keep a 3-second JWT valid for 33), so a JWT is expired for the
# module at most L seconds after it was issued (at least L - 1: whole
# seconds).  Waits for a JWT to expire are real sleeps of L + 1.2 s; every
# count is bounded from the times measured, never from hoped-for speed.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use Time::HiRes qw(time sleep);

my $L = 3;
my $LEEWAY = 0;    # the nodes' leeway= on exp and nbf
my $ISS = "stytch.com/$ProjectId";
my $ATTEST = 'POST /v1/sessions/attest';
my $AUTHN = 'POST /v1/sessions/authenticate';
my $Internal = $Test::StytchTat::Exchange::Internal;

my @ports = map { free_port() } 1 .. 3;
$ENV{TEST_NGINX_JWKS_PATH} = "/v1/sessions/jwks/$ProjectId";

my $node_http = <<"_EOC_";
stytch_tat_signing_key \$TEST_NGINX_KEYS/rsa.pem;
stytch_tat_credentials \$TEST_NGINX_KEYS/creds;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_profile_id $ProfileId;
stytch_tat_zone zone=tat:1m;

upstream stytch_api {
    server 127.0.0.1:\$TEST_NGINX_STYTCH_PORT;
    keepalive 4;
}
_EOC_

my $node_config = <<"_EOC_";
location = /_stytch_attest {
    internal;
    proxy_pass https://stytch_api/v1/sessions/attest;
$Internal
}
location = /_stytch_authenticate {
    internal;
    proxy_pass https://stytch_api/v1/sessions/authenticate;
$Internal
}
location = /_stytch_jwks {
    internal;
    proxy_pass https://stytch_api\$TEST_NGINX_JWKS_PATH;
$Internal
}
location / {
    stytch_tat /_stytch_attest;
    stytch_tat_refresh /_stytch_authenticate;
    stytch_tat_cache tat;
    stytch_tat_cookie on;
    stytch_tat_session_jwks /_stytch_jwks leeway=${LEEWAY}s;
    stytch_tat_email \$http_x_user;
    add_header X-Node \$TEST_NGINX_INSTANCE_NAME always;
    add_header X-Cache \$stytch_tat_cache_status always;
    add_header X-Error \$stytch_tat_error always;
    add_header X-User \$stytch_user_id always;
    add_header X-Session \$stytch_session_id always;
    add_header X-Session-Token "[\$stytch_session_token]" always;
    proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
}
location = /status { stytch_tat_status; }
_EOC_

my $servers = join "\n", map { "    server 127.0.0.1:$_;" } @ports;

# the block's nginx: the round-robin balancer, the echo backend and the
# JWKS of the signing key for the emulator's profile
my $lb_http = $HttpConfig . <<"_EOC_";
upstream cluster {
$servers
}
_EOC_
my $lb_config = $ServerConfig . <<'_EOC_';
location /app { proxy_pass http://cluster; }
_EOC_

# the README's recipe for clients without cookies
my $hash_http = <<"_EOC_";
upstream cluster {
    hash \$http_x_user consistent;
$servers
}
_EOC_

# ---------------------------------------------------------------- helpers

# a failure that makes the rest pointless fails this file, not the suite
sub stop_here {
    my ($why) = @_;
    diag($why);
    done_testing();
    exit 1;
}

sub restore_emulator {
    emu(POST => '/clock', { offset_seconds => 0 });
    emu(POST => '/config', { session_jwt_lifetime_seconds => 300, clock_skew_seconds => 60 });
}
END { eval { restore_emulator() } if $ENV{TEST_NGINX_STYTCH_CONTROL} }

# a cookie jar of our own: Secure cookies are kept for this plain-HTTP test
sub new_jar { return {} }
sub cookie_header {
    my ($jar) = @_;
    return join '; ', map { "$_=$jar->{$_}" } sort keys %$jar;
}
sub set_cookies {
    my ($pairs) = @_;
    my %set;
    for (my $i = 0; $i < @$pairs; $i += 2) {
        next unless lc $pairs->[$i] eq 'set-cookie';
        my ($nv, @attrs) = split /;\s*/, $pairs->[$i + 1];
        my ($n, $v) = split /=/, $nv, 2;
        my ($max_age) = map { /^max-age=(-?\d+)$/i ? $1 : () } @attrs;
        $set{$n} = defined $max_age && $max_age <= 0 ? undef : $v;
    }
    return \%set;
}

# one request; returns a record of what happened
sub call {
    my (%o) = @_;
    my %h = ('X-User' => $o{user});
    my $cookie = $o{cookie} // ($o{jar} ? cookie_header($o{jar}) : '');
    $h{Cookie} = $cookie if length $cookie;
    my $mark = emu_counts();
    my $t = time;
    my ($st, $hd, $body, $pairs) = $o{via}
        ? $o{via}->request(GET => '/app', \%h)
        : http_request('GET', '/app', \%h);
    my $c = emu_counts($mark);
    my $set = set_cookies($pairs // []);
    if ($o{jar}) {
        for my $n (keys %$set) {
            if (defined $set->{$n}) { $o{jar}{$n} = $set->{$n} } else { delete $o{jar}{$n} }
        }
    }
    my %r = (status => $st // 0, t => $t, set => $set, body => $body // '',
             attests => $c->get($ATTEST), authenticates => $c->get($AUTHN),
             map { ($_ => $hd->{"x-$_"} // '') } qw(node cache error user session));
    $r{token} = $hd->{'x-session-token'} // '';
    ($r{up_jwt}) = $r{body} =~ /^jwt=(\S*)$/m;
    ($r{up_user}) = $r{body} =~ /^user=(\S*)$/m;
    ($r{up_session}) = $r{body} =~ /^session=(\S*)$/m;
    $r{$_} //= '' for qw(up_jwt up_user up_session);
    return \%r;
}

sub desc { my ($r) = @_; "$r->{status} $r->{node} $r->{cache} err=$r->{error} user=$r->{user}" }

# the JWT the upstream got, checked by jose against the emulator's JWKS as
# at the time the request was sent, with the module's leeway and one second
# more: time() has whole seconds, and a JWT refreshed during the request
# may have an nbf one second later than the second the request began in
sub upstream_jwt_ok {
    my ($r, $user, $session, $binding, $what) = @_;
    my $v = eval {
        verify_jwt($r->{up_jwt}, jwks => session_jwks_url(), iss => $ISS, aud => $ProjectId,
                   alg => 'RS256', sub => $user, now => int($r->{t}), clock_tolerance => $LEEWAY + 1);
    };
    ok($v, "$what: the upstream's session JWT verifies with jose, sub $user") or diag($@);
    return unless $v;
    is($v->{payload}{'https://stytch.com/session'}{id}, $session, "$what: ... of session $session");
    is($v->{payload}{stytch_tat_identity}, $binding, "$what: ... bound to the identity") if defined $binding;
    return $v;
}

# ---------------------------------------------------------------- start

emu_setup();
emu(POST => '/clock', { offset_seconds => 0 });
emu(POST => '/config', { session_jwt_lifetime_seconds => $L });

ok(start_nginx({ http_config => $lb_http, config => $lb_config, workers => 1 }),
   'the balancer (round robin), the echo backend and the JWKS') or stop_here(last_error());
my @nodes;
for my $i (1 .. 3) {
    my $n = start_instance(name => "n$i", port => $ports[$i - 1], http_config => $node_http,
                           config => $node_config, workers => 2);
    ok($n, "node n$i") or stop_here(last_error());
    push @nodes, $n;
}
my %node = map { ($_->name => $_) } @nodes;

# ---------------------------------------------------------------- A

my $ada = 'ada@example.com';
my $jar = new_jar();
my @log;                  # every request of the cookie client

my $first = call(user => $ada, jar => $jar);
push @log, $first;
is($first->{status}, 200, 'A: the first request') or diag(desc($first), $first->{body});
is($first->{cache}, 'MISS', 'A: ... attests (MISS)');
is($first->{attests}, 1, 'A: ... one attest call');
ok(defined $jar->{stytch_session} && defined $jar->{stytch_session_jwt},
   'A: ... and gives the client both cookies') or diag(explain $first->{set});
my $U = $first->{user};
my $S = $first->{session};
like($U, qr/^user-test-/, 'A: the user id');
like($S, qr/^session-test-/, 'A: the session id');
my (undef, $claims) = jwt_parts($jar->{stytch_session_jwt});
my $D = $claims->{stytch_tat_identity} // '';
like($D, qr/^[A-Za-z0-9_-]{43}$/, 'A: the session JWT carries stytch_tat_identity, a base64url SHA-256');
is($claims->{exp} - $claims->{iat}, $L, "A: the emulator's JWTs live $L s");

my $lifetimes = 4;
for my $k (1 .. $lifetimes) {
    sleep $L + 1.2;    # the client's JWT is expired now, for certain
    my $prev_jwt = $jar->{stytch_session_jwt};
    my $r = call(user => $ada, jar => $jar);
    push @log, $r;
    $r->{refresh} = 1;
    is($r->{status}, 200, "A$k: after the JWT expired") or diag(desc($r));
    is($r->{authenticates}, 1, "A$k: ... one authenticate call refreshes it");
    is($r->{attests}, 0, "A$k: ... no attest");
    is($r->{cache}, 'CLIENT', "A$k: ... the session is the client's (CLIENT)");
    is($r->{session}, $S, "A$k: ... the same session");
    ok(defined $r->{set}{stytch_session_jwt} && $r->{set}{stytch_session_jwt} ne $prev_jwt,
       "A$k: ... and the client gets the new JWT");
    # a burst right away: the new JWT is the session, on every node
    my @burst;
    for (1 .. 5) { push @burst, call(user => $ada, jar => $jar) }
    push @log, @burst;
    my $t_end = time;
    is(scalar(grep { $_->{status} == 200 && $_->{cache} eq 'CLIENT' && $_->{session} eq $S } @burst), 5,
       "A$k: a burst of 5: all 200, CLIENT, the same session")
        or diag(join "\n", map { desc($_) } @burst);
    is(scalar(grep { $_->{attests} } @burst), 0, "A$k: ... no attest");
    my $refreshes = 0;
    $refreshes += $_->{authenticates} for @burst;
    # a JWT issued at or after $r->{t} lives at least L - 1 s (whole seconds)
    my $bound = int(($t_end - $r->{t}) / ($L - 1));
    ok($refreshes <= $bound, "A$k: ... $refreshes authenticate calls in "
       . sprintf('%.1f', $t_end - $r->{t}) . " s, at most one per JWT lifetime ($bound)");
    for my $b (grep { !$_->{authenticates} } @burst) {
        is($b->{token}, '[]', "A$k: \$stytch_session_token is empty when the session is the client's JWT");
        last;
    }
}

my $t_total = $log[-1]{t} - $log[0]{t};
my ($attests, $authenticates) = (0, 0);
for (@log) { $attests += $_->{attests}; $authenticates += $_->{authenticates} }
is($attests, 1, 'A: exactly one attest call in ' . scalar(@log) . ' requests over '
   . sprintf('%.1f', $t_total) . ' s');
ok($authenticates >= $lifetimes, "A: $authenticates authenticate calls: one per lifetime at least");
my $max = 1 + int($t_total / ($L - 1));
ok($authenticates <= $max, "A: ... and at most one per JWT lifetime ($max)");
is(scalar(grep { $_->{session} ne $S } @log), 0, 'A: one session id throughout');
is(scalar(grep { $_->{user} ne $U || $_->{up_user} ne $U } @log), 0,
   'A: one user, and the upstream always got it');
my %client_nodes;
$client_nodes{$_->{node}}++ for grep { $_->{cache} eq 'CLIENT' } @log;
is(scalar(keys %client_nodes), 3, 'A: every node served the session from the client')
    or diag(explain \%client_nodes);
is(scalar(grep { $_->{up_session} ne $S } @log), 0, 'A: the upstream always got the session id');
for my $i (0 .. $#log) {
    upstream_jwt_ok($log[$i], $U, $S, $D, "A request " . ($i + 1) . " ($log[$i]{node} $log[$i]{cache})");
}

# one node, ten concurrent requests with the same expired JWT: one refresh
sleep $L + 1.2;
my $cmark = emu_counts();
my @conc = concurrent_requests(10, ['GET', '/app', { 'X-User' => $ada, Cookie => cookie_header($jar) }],
                               { port => $node{n1}->port });
my $cc = emu_counts($cmark);
is(scalar(grep { ($_->{status} // 0) == 200 && ($_->{headers}{'x-cache'} // '') eq 'CLIENT'
                 && ($_->{headers}{'x-session'} // '') eq $S } @conc), 10,
   'A: 10 concurrent requests with one expired JWT on one node: all CLIENT, the same session')
    or diag(explain [map { [$_->{status}, $_->{headers}{'x-cache'}, $_->{error}] } @conc]);
is($cc->get($AUTHN), 1, 'A: ... one authenticate call for them all');
is($cc->get($ATTEST), 0, 'A: ... no attest');

# ---------------------------------------------------------------- B

# Stytch's 5-minute JWTs again: the zone path as in production; an expired
# JWT is made by the forge
restore_emulator();

my $bob = 'bob@example.com';
my $bjar = new_jar();
my $b1 = call(user => $bob, jar => $bjar);
is("$b1->{status} $b1->{cache}", '200 MISS', 'B: bob attests') or diag(desc($b1));
my ($Ub, $Sb) = ($b1->{user}, $b1->{session});
isnt($Ub, $U, 'B: bob is another user');
my (undef, $bclaims) = jwt_parts($bjar->{stytch_session_jwt});
isnt($bclaims->{stytch_tat_identity}, $D, "B: bob's session is bound to another identity");

# bob's valid cookies with ada's identity, on every node in turn
my %offsets = map { ($_->name => $_->log_offset) } @nodes;
my @wrong;
for (1 .. 3) { push @wrong, call(user => $ada, cookie => cookie_header($bjar)) }
for my $r (@wrong) {
    my $w = "B: bob's valid cookies with ada's identity ($r->{node})";
    is($r->{status}, 200, "$w: 200") or diag(desc($r));
    is($r->{user}, $U, "$w: the session is ada's");
    isnt($r->{session}, $Sb, "$w: never bob's session");
    is($r->{up_user}, $U, "$w: the upstream gets ada");
    isnt($r->{cache}, 'CLIENT', "$w: not taken from the client");
    my $set = $r->{set}{stytch_session_jwt};
    my (undef, $sc) = jwt_parts($set // '');
    is($sc->{sub} // '', $U, "$w: the client gets ada's session JWT");
    is($sc->{stytch_tat_identity} // '', $D, "$w: ... bound to ada's identity");
}
upstream_jwt_ok($wrong[0], $U, $wrong[0]{session}, $D, "B: the upstream's JWT");
for my $n (@nodes) {
    my $log = $n->log_since($offsets{ $n->name });
    like($log, qr/\[info\].*stytch_tat: session cookie of another identity ignored/,
         'B: ' . $n->name . ' logs the cookie it ignored, at info');
}

# ... and the reverse: ada's cookies with bob's identity
my $rev = call(user => $bob, cookie => cookie_header($jar));
is("$rev->{status} $rev->{user}", "200 $Ub", "B: ada's cookies with bob's identity: bob's session");

# bob's session JWT, expired (signed with the project key by the forge,
# with bob's claims), beside his real session token
my $bob_expired = forge_jwt('expired', sub => $Ub, session_id => $Sb,
                            claims => { stytch_tat_identity => $bclaims->{stytch_tat_identity} });
my $bob_cookie = "stytch_session=$bjar->{stytch_session}; stytch_session_jwt=$bob_expired";
# the control: with bob's identity it is refreshed into his session
my $ctl = call(user => $bob, cookie => $bob_cookie);
is("$ctl->{status} $ctl->{cache} $ctl->{session}", "200 CLIENT $Sb",
   "B: bob's expired JWT with bob's identity: refreshed, his session (CLIENT)") or diag(desc($ctl));
is($ctl->{authenticates}, 1, 'B: ... by one authenticate call');
is($ctl->{attests}, 0, 'B: ... and no attest');
# with ada's identity: never bob's session
my @expired;
for (1 .. 3) { push @expired, call(user => $ada, cookie => $bob_cookie) }
for my $r (@expired) {
    my $w = "B: bob's expired JWT and session token with ada's identity ($r->{node})";
    is("$r->{status} $r->{user}", "200 $U", "$w: ada's session");
    isnt($r->{session}, $Sb, "$w: never bob's");
    is($r->{up_user}, $U, "$w: the upstream gets ada");
}

# a validly signed JWT (the project key) for another user, bound to
# another identity: ignored
my $other = forge_jwt('other_user');
my $fr = call(user => $ada, cookie => "stytch_session_jwt=$other");
is("$fr->{status} $fr->{user}", "200 $U", "B: a forged cookie of another binding: ada's session");
is($fr->{up_user}, $U, 'B: ... and the upstream gets ada');

# ---------------------------------------------------------------- C

my $lbhash = start_instance(name => 'lbhash', http_config => $hash_http,
                            config => 'location /app { proxy_pass http://cluster; }');
ok($lbhash, 'C: a balancer with hash $http_x_user consistent') or diag(last_error());
my @users = map { "api-client-$_\@example.com" } 1 .. 6;
my (%by_user, $c_attests);
for my $round (1 .. 4) {
    for my $u (@users) {
        my $r = call(user => $u, via => $lbhash);
        $c_attests += $r->{attests};
        push @{ $by_user{$u} }, $r;
    }
}
is($c_attests, scalar @users, 'C: hash consistent: one attest per identity for the cluster');
for my $u (@users) {
    my @r = @{ $by_user{$u} };
    my %n = map { ($_->{node} => 1) } @r;
    is(scalar(keys %n), 1, "C: $u always reaches the same node");
    is(join(' ', map { "$_->{status} $_->{cache}" } @r), '200 MISS 200 HIT 200 HIT 200 HIT',
       "C: $u: MISS, then zone hits");
    is(scalar(grep { $_->{session} ne $r[0]{session} } @r), 0, "C: $u: one session");
}

# for comparison, round robin without cookies: one attest per node
my $rr = 0;
for (1 .. 6) { $rr += call(user => 'roaming@example.com')->{attests} }
is($rr, 3, 'C: round robin without cookies: one attest per node (3)');

# ---------------------------------------------------------------- end

for my $n (@nodes) {
    my $s = json_decode(($n->request(GET => '/status'))[2])->{zones}{tat};
    ok(($s->{verify}{ok} // 0) + ($s->{verify}{cached} // 0) >= 1, $n->name . ': status counts its verifications')
        or diag(explain $s);
}
ok(stop_instances(), 'no node or balancer logged an alert or crashed') or diag(last_error());
ok(stop_nginx(), 'the balancer stopped cleanly') or diag(last_error());
