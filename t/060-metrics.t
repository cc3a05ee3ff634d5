# stytch_tat_status to Prometheus's conventions, and the log line: a status
# location that has seen every kind of outcome (hits, a miss, refusals, each
# kind of Stytch failure, evictions, session JWTs verified and refused, a
# dead session JWKS), then
#   - promtool check metrics on its output, with nothing to report;
#   - HELP and TYPE for every family, each family's lines together, counters
#     in _total, the call durations in seconds, zone names escaped;
#   - the JSON format carrying the same numbers, series by series;
#   - the families table of docs/directives.md and the names the rules of
#     examples/prometheus/ use, held to the output;
#   - the log_format recipes of examples/nginx.conf, as written: a JSON line
#     that parses for a hit, a miss, a refusal and Stytch failures.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use File::Temp qw(tempdir);
use Time::HiRes qw(time sleep);

my $root = repo_root();

sub slurp {
    my ($file) = @_;
    open my $fh, '<', $file or die "$file: $!\n";
    local $/;
    return scalar <$fh>;
}

my $promtool = $ENV{TEST_PROMTOOL} || '/usr/bin/promtool';
-x $promtool
    or BAIL_OUT("$promtool not found: make test installs Debian's "
                . "prometheus package (or set TEST_PROMTOOL)");

# the log formats of examples/nginx.conf, exactly as written there
my @formats = slurp("$root/examples/nginx.conf")
    =~ /^\s*(log_format\s+stytch(?:_json)?\s.*?;)[ \t]*$/msg;
is(scalar @formats, 2, 'examples/nginx.conf: the plain and the JSON log_format')
    or BAIL_OUT('no log_format recipes in examples/nginx.conf');

# ... and the same recipes in the README and docs/directives.md
sub recipes {
    my ($text) = @_;
    my %r = map { (/^log_format\s+(\w+)/)[0] => join ' ', split ' ', $_ }
            $text =~ /^\s*(log_format\s+stytch(?:_json)?\s.*?;)[ \t]*$/msg;
    return \%r;
}
my $example = recipes(join "\n", @formats);
is(recipes(slurp("$root/README.md"))->{stytch_json}, $example->{stytch_json},
   'README.md: the JSON recipe of examples/nginx.conf');
is_deeply(recipes(slurp("$root/docs/directives.md")), $example,
          'docs/directives.md: both recipes of examples/nginx.conf');

my $dead = free_port();    # nothing listens here
$ENV{TEST_NGINX_PROJECT_ID} = $ProjectId;

my $http = $HttpConfig . join("\n", @formats) . <<'_EOC_';

stytch_tat_zone zone=tat:1m;
stytch_tat_zone zone=tiny:32k;
stytch_tat_zone "zone=we\"ird\\z:64k";
_EOC_

my $app = <<'_EOC_';
        stytch_tat /_stytch_attest;
        stytch_tat_email $http_x_email;
        add_header X-Cache $stytch_tat_cache_status always;
        add_header X-Error $stytch_tat_error always;
        access_log logs/stytch.log stytch;
        access_log logs/stytch.json stytch_json;
        proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
_EOC_

my $config = $ServerConfig . <<"_EOC_";
    location = /_stytch_jwks {
        internal;
        proxy_pass https://stytch_api/v1/sessions/jwks/\$TEST_NGINX_PROJECT_ID;
        proxy_ssl_trusted_certificate \$TEST_NGINX_STYTCH_CA;
        proxy_ssl_verify on;
        proxy_ssl_name localhost;
    }
    location = /_stytch_jwks_dead {
        internal;
        proxy_pass https://127.0.0.1:$dead/v1/sessions/jwks/x;
    }
    location /app {
        stytch_tat_cache tat;
$app    }
    location /tiny {
        stytch_tat_cache tiny;
$app    }
    location /assert {
        stytch_tat_cache tat;
        stytch_tat_email \$http_x_email;
        return 200 "\$stytch_tat_jwt\\n";
    }
    location /api {
        stytch_tat_verify \$http_authorization;
        stytch_tat_cache tat;
        stytch_tat_session_jwks /_stytch_jwks;
        add_header X-Error \$stytch_tat_error always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
    }
    location /api-dead {
        stytch_tat_verify \$http_authorization;
        stytch_tat_cache "we\\"ird\\\\z";
        stytch_tat_session_jwks /_stytch_jwks_dead;
        add_header X-Error \$stytch_tat_error always;
        proxy_pass http://127.0.0.1:\$TEST_NGINX_BACKEND_PORT/backend/;
    }
    location = /status { stytch_tat_status; }
    location = /metrics { stytch_tat_status prometheus; }
_EOC_

emu_setup();

ok(start_nginx({ http_config => $http, config => $config }), 'nginx starts')
    or BAIL_OUT(last_error());

sub get {
    my ($uri, $email, %h) = @_;
    my ($st, $h, $body) = http_request('GET', $uri,
                                       { ($email ? ('X-Email' => $email) : ()),
                                         %h });
    return ($st, $h->{'x-cache'} // '', $h->{'x-error'} // '', $body);
}

sub fault { emu(DELETE => '/faults'); emu(POST => '/faults', { path => '/v1/sessions/attest', count => 1, @_ }) }

# ---------------------------------------------------------------- traffic

my @outcomes = (
    # [what, email, fault, status, cache, error]
    ['miss', 'ada@example.com', undef, 200, 'MISS', ''],
    ['hit', 'ada@example.com', undef, 200, 'HIT', ''],
    ['refusal', 'bob@example.com',
     { mode => 'status', status => 404, error_type => 'user_not_found' },
     403, 'MISS', 'user_not_found'],
    ['token refused', 'carol@example.com',
     { mode => 'status', status => 400, error_type => 'invalid_trusted_auth_token' },
     403, 'MISS', 'invalid_trusted_auth_token'],
    ['credentials refused', 'dave@example.com',
     { mode => 'status', status => 401, error_type => 'unauthorized_credentials' },
     500, 'MISS', 'unauthorized_credentials'],
    ['rate limited', 'erin@example.com', { mode => 'rate_limit' },
     503, 'MISS', 'too_many_requests'],
    ['Stytch failure', 'frank@example.com', { mode => 'status', status => 500 },
     502, 'MISS', 'internal_server_error'],
    ['timeout', 'grace@example.com', { mode => 'stall' },
     504, 'MISS', 'stytch_timeout'],
);

my $jwt;
for my $o (@outcomes) {
    my ($what, $email, $fault, $want, $cache, $error) = @$o;
    $fault ? fault(%$fault) : emu(DELETE => '/faults');
    my ($st, $cs, $err, $body) = get('/app', $email);
    is("$st $cs $err", "$want $cache $error", "$what: $want $cache $error");
    ($jwt) = $body =~ /^jwt=(\S+)$/m if $what eq 'miss';
}
emu(DELETE => '/faults');
ok($jwt, 'the session JWT of the miss');

# $stytch_tat_jwt minted, then reused
get('/assert', 'ada@example.com') for 1 .. 2;

# session JWTs: verified, known good, refused; a session JWKS that is down
my ($st, undef, $err) = get('/api', undef, Authorization => "Bearer $jwt");
is("$st $err", '200 ', 'a session JWT verified');
($st, undef, $err) = get('/api', undef, Authorization => "Bearer $jwt");
is("$st $err", '200 ', '... and known good');
($st, undef, $err) = get('/api', undef, Authorization => 'Bearer not.a.jwt');
is("$st $err", '401 session_jwt_malformed', 'a session JWT refused');
($st, undef, $err) = get('/api-dead', undef, Authorization => "Bearer $jwt");
is("$st $err", '502 jwks_unavailable', 'the session JWKS unreachable');

# a zone too small for its identities evicts
my $served = 0;
for my $i (1 .. 60) {
    my ($st, $cs) = get('/tiny', "evict$i\@example.com");
    $served++ if $st == 200 && $cs eq 'MISS';
}
is($served, 60, '60 identities through a 32k zone');

# ---------------------------------------------------------------- JSON

my $json = json_decode((http_request('GET', '/status'))[2]);
my $z = $json->{zones}{tat};
is_deeply($z->{call_failures},
          { invalid_trusted_auth_token => 1, configuration => 1,
            rate_limited => 1, error => 1, timeout => 1 },
          'json: one call failure of each kind');
is_deeply($z->{calls},
          { attest_ok => 1, attest_refused => 2, attest_failed => 4,
            refresh_ok => 0, refresh_failed => 0 },
          'json: the calls by result (the token refusal is a refusal too)');
is($z->{hits}, 1, 'json: one hit');
is($z->{misses}, 7, 'json: seven misses');
ok($z->{latency_ms}{sum} >= 2000, 'json: the timeout took the 2 s of proxy_read_timeout');
is_deeply([ @{ $z->{jwks} }{qw(fetches failures)} ], [1, 0], 'json: one JWKS fetch');
is($json->{zones}{'we"ird\z'}{jwks}{failures}, 1,
   'json: a failed JWKS fetch, in a zone whose name needs escaping');
is($z->{verify}{ok}, 1, 'json: one session JWT verified');
is($z->{verify}{cached}, 1, '... one known good');
is($z->{verify}{failed}{malformed}, 1, '... one malformed');
is_deeply([ @$z{qw(jwt_hits jwt_misses)} ], [1, 1], 'json: one token reused, one minted');
ok($json->{zones}{tiny}{evictions} > 0, "json: $json->{zones}{tiny}{evictions} evictions");

# ---------------------------------------------------------------- Prometheus

my ($mst, $mh, $metrics) = http_request('GET', '/metrics');
is($mst, 200, 'prometheus: 200');
like($mh->{'content-type'}, qr{^text/plain; version=0\.0\.4}, 'prometheus: the text format');

# promtool, Prometheus's own linter: parse errors and lint problems alike
my $dir = tempdir(CLEANUP => 1);
open my $fh, '>', "$dir/metrics" or die $!;
print $fh $metrics;
close $fh;
my $out = `$promtool check metrics < $dir/metrics 2>&1`;
is($? >> 8, 0, 'promtool check metrics: exit 0');
is($out, '', 'promtool check metrics: nothing to report') or diag($out);

# the families: HELP, then TYPE, then their samples, together
my (%type, %help, %samples, @order, %labels, $cur);
my $dup = 0;
my $stray = 0;
for my $line (split /\n/, $metrics) {
    if ($line =~ /^# HELP (\S+) (.+)$/) {
        $dup++ if exists $help{$1};
        $help{$1} = $2;
        $cur = $1;
        push @order, $1;
    } elsif ($line =~ /^# TYPE (\S+) (\S+)$/) {
        $stray++ unless defined $cur && $1 eq $cur;
        $type{$1} = $2;
    } elsif ($line =~ /^(\w+)\{(.*)\} (\S+)$/) {
        my ($name, $l, $v) = ($1, $2, $3);
        my $family = $name;
        $family =~ s/_(?:bucket|sum|count)$// if ($type{$cur // ''} // '') eq 'histogram';
        $stray++ unless defined $cur && $family eq $cur;
        my %l;
        while ($l =~ /\G(\w+)="((?:[^"\\]|\\.)*)",?/gc) { $l{$1} = $2 }
        $stray++ if (pos($l) // 0) != length $l;
        $labels{$family}{$_} = 1 for grep { $_ ne 'le' } keys %l;
        my $key = $name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}';
        $samples{$key} = $v;
    } else {
        $stray++;
        diag("unexpected line: $line");
    }
}
is($dup, 0, 'prometheus: one HELP per family');
is($stray, 0, "prometheus: every line after its family's HELP and TYPE");
is_deeply([ sort keys %type ], [ sort keys %help ], 'prometheus: a TYPE for every HELP');
is_deeply([ grep { $type{$_} eq 'counter' && !/_total$/ } keys %type ], [],
          'prometheus: every counter ends in _total');
is_deeply([ grep { $type{$_} ne 'counter' && /_total$/ } keys %type ], [],
          'prometheus: nothing else does');
is_deeply([ grep { /_ms\b|latency/ } keys %type ], [], 'prometheus: no milliseconds');
is($type{stytch_tat_call_duration_seconds}, 'histogram', 'prometheus: the durations, a histogram');
is(join(' ', map { /le="([^"]+)"/ ? $1 : () }
             grep { /^stytch_tat_call_duration_seconds_bucket\{zone="tat"/ }
             split /\n/, $metrics),
   '0.01 0.025 0.05 0.1 0.25 0.5 1 2.5 5 +Inf', 'prometheus: le in seconds');
like($metrics, qr/^stytch_tat_zone_entries\{zone="we\\"ird\\\\z"\} \d+$/m,
     'prometheus: a zone name escaped as the text format says');
is($samples{'stytch_tat_call_failures_total{reason=invalid_trusted_auth_token,zone=tat}'}, 1,
   'prometheus: the token refused');
is($samples{'stytch_tat_calls_total{call=attest,result=ok,zone=tat}'}, 1,
   'prometheus: the attest call that gave a session');

# the same numbers as the JSON, series by series
sub from_json {
    my ($zone, $z) = @_;
    my %s;
    my $put = sub {
        my ($name, $v, %l) = @_;
        $l{zone} = $zone;
        $s{$name . '{' . join(',', map { "$_=$l{$_}" } sort keys %l) . '}'} = $v;
    };
    $put->('stytch_tat_zone_size_bytes', $z->{size});
    $put->('stytch_tat_zone_free_bytes', $z->{free});
    $put->('stytch_tat_zone_entries', $z->{entries});
    $put->('stytch_tat_cache_total', $z->{$_->[1]}, status => $_->[0])
        for [hit => 'hits'], [miss => 'misses'], [expired => 'expired'],
            [stale => 'stale'], [bypass => 'bypass'];
    $put->('stytch_tat_cache_waits_total', $z->{waits});
    $put->('stytch_tat_cache_evictions_total', $z->{evictions});
    $put->('stytch_tat_cache_uncached_total', $z->{uncached});
    $put->('stytch_tat_jwt_cache_total', $z->{jwt_hits}, status => 'hit');
    $put->('stytch_tat_jwt_cache_total', $z->{jwt_misses}, status => 'miss');
    $put->('stytch_tat_mints_total', $z->{mints}{$_}, alg => $_) for keys %{ $z->{mints} };
    for my $k (keys %{ $z->{calls} }) {
        my ($call, $result) = split /_/, $k;
        $put->('stytch_tat_calls_total', $z->{calls}{$k}, call => $call, result => $result);
    }
    $put->('stytch_tat_call_failures_total', $z->{call_failures}{$_}, reason => $_)
        for keys %{ $z->{call_failures} };
    my $n = 0;
    for my $le (qw(10 25 50 100 250 500 1000 2500 5000 inf)) {
        $n += $z->{latency_ms}{$le};
        $put->('stytch_tat_call_duration_seconds_bucket', $n,
               le => $le eq 'inf' ? '+Inf' : $le / 1000);
    }
    $put->('stytch_tat_call_duration_seconds_sum', $z->{latency_ms}{sum} / 1000);
    $put->('stytch_tat_call_duration_seconds_count', $n);
    $put->('stytch_tat_verify_total', $z->{verify}{$_}, result => $_) for qw(ok cached);
    $put->('stytch_tat_verify_failures_total', $z->{verify}{failed}{$_}, reason => $_)
        for keys %{ $z->{verify}{failed} };
    $put->('stytch_tat_jwks_fetches_total', $z->{jwks}{fetches}, outcome => 'ok');
    $put->('stytch_tat_jwks_fetches_total', $z->{jwks}{failures}, outcome => 'failed');
    $put->('stytch_tat_jwks_refetch_limited_total', $z->{jwks}{refetch_limited});
    return %s;
}
$json = json_decode((http_request('GET', '/status'))[2]);
my %want;
for my $zone (keys %{ $json->{zones} }) {
    (my $esc = $zone) =~ s/(["\\])/\\$1/g;
    %want = (%want, from_json($esc, $json->{zones}{$zone}));
}
my %got = map { $_ => $samples{$_} } keys %want;
is_deeply(\%got, \%want, 'prometheus and json: the same series, the same numbers');

# and whatever family is added to the table later: per zone, as many
# numbers in the JSON (the histogram aside) as series in Prometheus, equal
sub leaves {
    my ($v) = @_;
    return ref $v eq 'HASH' ? map { leaves($v->{$_}) } keys %$v : ($v);
}
for my $zone (sort keys %{ $json->{zones} }) {
    (my $esc = $zone) =~ s/(["\\])/\\$1/g;
    my %z = %{ $json->{zones}{$zone} };
    delete $z{latency_ms};
    my @j = sort { $a <=> $b } leaves(\%z);
    my @p = sort { $a <=> $b }
            map { $samples{$_} }
            grep { /[{,]zone=\Q$esc\E[,}]/ && !/^stytch_tat_call_duration_seconds_/ }
            keys %samples;
    is_deeply(\@p, \@j, "zone $zone: the same numbers in both formats (" . @j . ')');
}
my ($version) = slurp("$root/src/ngx_http_stytch_tat_version.h")
    =~ /^#define\s+NGX_HTTP_STYTCH_TAT_VERSION\s+"([^"]+)"/m;
is($samples{"stytch_tat_info{version=$version}"}, 1, 'prometheus: stytch_tat_info');

# docs/directives.md: the families table, as exposed
my %doc;
for (split /\n/, slurp("$root/docs/directives.md")) {
    my ($name, $type, $labels) =
        /^\| `(stytch_tat_\w+)` \| (counter|gauge|histogram) \| ([^|]*) \|/
        or next;
    $doc{$name} = { type => $type, labels => join(',', sort($labels =~ /`(\w+)`/g)) };
}
is_deeply({ map { $_ => $doc{$_}{type} } keys %doc }, \%type,
          'docs/directives.md: every family, with its type');
is_deeply({ map { $_ => $doc{$_}{labels} } keys %doc },
          { map { $_ => join(',', sort keys %{ $labels{$_} }) } keys %type },
          'docs/directives.md: every family, with its labels');

# examples/prometheus/: every name its rules read is exposed
my @rules = glob("$root/examples/prometheus/*.rules.yml");
ok(@rules, 'examples/prometheus: rules');
my %used;
for my $file (@rules) {
    # the expressions only: the annotations name directives too
    my ($indent, @expr);
    for (split /\n/, slurp($file)) {
        if (defined $indent && /^(\s*)\S/ && length $1 > $indent) {
            push @expr, $_;
            next;
        }
        undef $indent;
        if (/^(\s*)(?:- )?expr: (.*)$/) {
            $indent = length $1;
            push @expr, $2;
        }
    }
    $used{$_} = 1 for map { /\b(stytch_tat_[a-z_]+)/g } @expr;
}
ok(keys %used >= 6, 'examples/prometheus: the families the rules read: ' . join(' ', sort keys %used));
my @unknown = grep { my $n = $_; !grep { $n eq $_ || $n =~ /^\Q$_\E_(?:bucket|sum|count)$/ } keys %type }
              sort keys %used;
is_deeply(\@unknown, [], 'examples/prometheus: the rules read only exposed families');

# ---------------------------------------------------------------- the log line

# the log phase follows the response: wait for the line, do not race it
sub log_lines {
    my ($file, $n) = @_;
    my $deadline = time + 10;
    my @l;
    while (1) {
        @l = -e $file ? split(/\n/, slurp($file)) : ();
        last if @l >= $n || time > $deadline;
        sleep 0.05;
    }
    return @l;
}

my @json_lines = log_lines(servroot() . '/logs/stytch.json', 68);
my @plain = log_lines(servroot() . '/logs/stytch.log', 68);
is(scalar @json_lines, 68, 'one JSON line per request of /app and /tiny');
my @parsed = map { my $l = $_; eval { json_decode($l) } // { unparsed => $l } } @json_lines;
is_deeply([ map { $_->{unparsed} // () } @parsed ], [], 'every JSON line parses');

my %by = map { ($_->[0] => $parsed[$_->[1]]) } map { [$outcomes[$_][0], $_] } 0 .. $#outcomes;
my $ada = $by{miss}{stytch_user_id};
like($ada, qr/^user-test-/, 'miss: the user id');
like($by{miss}{stytch_session_id}, qr/^session-test-/, 'miss: the session id');
like($by{miss}{stytch_call_time}, qr/^\d+\.\d{3}$/, "miss: Stytch's time, $by{miss}{stytch_call_time} s");
is("$by{miss}{status} $by{miss}{stytch_cache} $by{miss}{stytch_error}", '200 MISS ', 'miss: status, cache');
is("$by{hit}{status} $by{hit}{stytch_cache} $by{hit}{stytch_error}", '200 HIT ', 'hit: status, cache');
is($by{hit}{stytch_user_id}, $ada, 'hit: the same user');
is($by{hit}{stytch_call_time}, '', 'hit: no call to Stytch, no time');
is("$by{refusal}{status} $by{refusal}{stytch_error} $by{refusal}{stytch_user_id}",
   '403 user_not_found ', 'refusal: status, error, no user');
like($by{refusal}{stytch_call_time}, qr/^\d+\.\d{3}$/, 'refusal: a call');
is("$by{'Stytch failure'}{status} $by{'Stytch failure'}{stytch_error}",
   '502 internal_server_error', "Stytch failure: status, Stytch's error_type");
is("$by{timeout}{status} $by{timeout}{stytch_error}", '504 stytch_timeout', 'timeout: status, error');
ok($by{timeout}{stytch_call_time} >= 2, "timeout: Stytch's time, $by{timeout}{stytch_call_time} s");
is($parsed[$_]{request}, "GET /app HTTP/1.1", "line $_: the request") for 0 .. 1;

like($plain[1], qr/"GET \/app HTTP\/1\.1" 200 [\d.]+ cache=HIT error=- user=\Q$ada\E session=session-test-\S+ stytch_time=-$/,
     'plain: the hit');
like($plain[0], qr/ 200 [\d.]+ cache=MISS error=- user=\Q$ada\E session=\S+ stytch_time=\d+\.\d{3}$/,
     'plain: the miss');
like($plain[2], qr/ 403 [\d.]+ cache=MISS error=user_not_found user=- session=- stytch_time=\d+\.\d{3}$/,
     'plain: the refusal');

ok(stop_nginx(), 'nginx stops cleanly');

done_testing();
