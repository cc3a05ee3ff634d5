# A real scrape: Debian's Prometheus, on a free loopback port with a temp
# dir of its own, scrapes "stytch_tat_status prometheus" of a module that
# served real traffic (two hits, two misses, one of them refused); through
# Prometheus's HTTP API, the series arrived with the types of their # TYPE
# lines and the values the module counted.  Prometheus is stopped by PID.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use File::Temp qw(tempdir);
use HTTP::Tiny;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my $prometheus = $ENV{TEST_PROMETHEUS} || '/usr/bin/prometheus';
-x $prometheus
    or BAIL_OUT("$prometheus not found: make test installs Debian's "
                . "prometheus package (or set TEST_PROMETHEUS)");

my $config = $ServerConfig . <<'_EOC_';
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_cache tat;
    stytch_tat_email $http_x_email;
    add_header X-Cache $stytch_tat_cache_status always;
    add_header X-Error $stytch_tat_error always;
    proxy_pass http://127.0.0.1:$TEST_NGINX_BACKEND_PORT/backend/;
}
location = /status { stytch_tat_status; }
location = /metrics { stytch_tat_status prometheus; }
_EOC_

emu_setup();

ok(start_nginx({ http_config => $HttpConfig . "stytch_tat_zone zone=tat:1m;\n",
                 config => $config }),
   'nginx starts') or BAIL_OUT(last_error());

# ---------------------------------------------------------------- traffic

sub get {
    my ($email) = @_;
    my ($st, $h) = http_request('GET', '/app', { 'X-Email' => $email });
    return join ' ', $st, $h->{'x-cache'} // '', $h->{'x-error'} // '';
}

emu(DELETE => '/faults');
is(get('ada@example.com'), '200 MISS ', 'a miss');
is(get('ada@example.com'), '200 HIT ', 'a hit');
is(get('ada@example.com'), '200 HIT ', 'another hit');
emu(POST => '/faults', { path => '/v1/sessions/attest', mode => 'status', status => 404,
                         error_type => 'user_not_found', count => 1 });
is(get('bob@example.com'), '403 MISS user_not_found', 'a refusal');
emu(DELETE => '/faults');

# what the module counted, and the types it declares
my $json = json_decode((http_request('GET', '/status'))[2]);
my $status = $json->{zones}{tat};
my %declared = (http_request('GET', '/metrics'))[2] =~ /^# TYPE (\S+) (\S+)$/mg;
ok(keys %declared >= 10, 'the families the module declares');

# ---------------------------------------------------------------- Prometheus

my $dir = tempdir('stytch-tat-prom.XXXXXX', TMPDIR => 1, CLEANUP => 1);
my $http = HTTP::Tiny->new(timeout => 5);
my ($pid, $port);

sub stop_prometheus {
    return 1 unless $pid;
    kill 'TERM', $pid;
    my $deadline = time + 30;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            undef $pid;
            return 1;
        }
        sleep 0.05;
    }
    kill 'KILL', $pid;
    waitpid($pid, 0);
    undef $pid;
    return 0;
}

END { stop_prometheus() }

sub api {
    my ($path, %query) = @_;
    my $url = "http://127.0.0.1:$port/api/v1/$path"
              . (%query ? '?' . $http->www_form_urlencode(\%query) : '');
    my $r = $http->get($url);
    return undef unless $r->{success};
    my $j = eval { json_decode($r->{content}) };
    return ($j && $j->{status} eq 'success') ? $j->{data} : undef;
}

sub query {
    my ($q) = @_;
    my $d = api('query', query => $q) or return ();
    return map { [ $_->{metric}, $_->{value}[1] ] } @{ $d->{result} };
}

# Started like the emulator: a free port, a temp dir; a port taken between
# free_port() and Prometheus's bind makes it exit, and another is tried.
my $scrape = 'http://127.0.0.1:' . server_port() . '/metrics';
my $up;
for my $attempt (1 .. 3) {
    $port = free_port();
    my $data = "$dir/data-$attempt";
    open my $fh, '>', "$dir/prometheus.yml" or die $!;
    print $fh <<"_EOY_";
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: stytch_tat
    metrics_path: /metrics
    static_configs:
      - targets: ['127.0.0.1:${\ server_port()}']
_EOY_
    close $fh;

    $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', "$dir/prometheus-$attempt.log";
        open STDERR, '>&', \*STDOUT;
        exec $prometheus, "--config.file=$dir/prometheus.yml",
             "--storage.tsdb.path=$data",
             "--web.listen-address=127.0.0.1:$port",
             '--log.level=warn'
            or POSIX::_exit(127);
    }

    # ready once a scrape of the module is in: up == 1
    my $deadline = time + 60;
    while (time < $deadline) {
        if (waitpid($pid, WNOHANG) == $pid) {
            undef $pid;
            last;
        }
        my @up = query('up{job="stytch_tat"}');
        if (@up && $up[0][1] eq '1') {
            $up = 1;
            last;
        }
        sleep 0.2;
    }
    last if $up;
    diag("Prometheus, attempt $attempt:\n"
         . do { local $/; open my $l, '<', "$dir/prometheus-$attempt.log"; <$l> // '' });
    stop_prometheus();
}
ok($up, "Prometheus scraped $scrape") or BAIL_OUT('no scrape');

# the types, as Prometheus recorded them from the # TYPE lines
my $meta = api('targets/metadata', match_target => '{job="stytch_tat"}') || [];
my %type = map { $_->{metric} => $_->{type} } @$meta;
is_deeply({ map { $_ => $type{$_} } keys %declared }, \%declared,
          'every family arrived with its declared type');
is($type{stytch_tat_calls_total}, 'counter', 'calls: a counter');
is($type{stytch_tat_cache_total}, 'counter', 'cache lookups: a counter');
is($type{stytch_tat_call_duration_seconds}, 'histogram', 'call durations: a histogram');
is($type{stytch_tat_zone_size_bytes}, 'gauge', 'zone size: a gauge');
ok((grep { $_->{metric} eq 'stytch_tat_calls_total' && length $_->{help} } @$meta),
   'with its help text');

# the values, as Prometheus stored them
sub value {
    my ($q) = @_;
    my @r = query($q);
    return @r == 1 ? $r[0][1] : 'series: ' . scalar(@r);
}
is(value('stytch_tat_cache_total{zone="tat",status="hit"}'), 2, 'two hits');
is(value('stytch_tat_cache_total{zone="tat",status="miss"}'), 2, 'two misses');
is(value('stytch_tat_calls_total{zone="tat",call="attest",result="ok"}'), 1,
   'one attest call gave a session');
is(value('stytch_tat_calls_total{zone="tat",call="attest",result="refused"}'), 1,
   'one was refused');
is(value('sum(stytch_tat_call_failures_total{zone="tat"})'), 0,
   'no call failed (a refused identity is no failure)');
is(value('stytch_tat_call_duration_seconds_count{zone="tat"}'), 2, 'two durations');
is(value('stytch_tat_call_duration_seconds_bucket{zone="tat",le="+Inf"}'), 2,
   '... in the +Inf bucket');
is(value('stytch_tat_call_duration_seconds_sum{zone="tat"}') + 0,
   $status->{latency_ms}{sum} / 1000, '... their sum in seconds');
my $q = value('histogram_quantile(0.5, stytch_tat_call_duration_seconds_bucket{zone="tat"})');
ok($q > 0 && $q <= 5, "histogram_quantile works on it: $q s");
is(value('stytch_tat_zone_size_bytes{zone="tat"}'), 1048576, 'the zone size');
my @info = query('stytch_tat_info');
is(scalar @info, 1, 'stytch_tat_info');
is($info[0][0]{version}, $json->{version}, '... with the version label');

ok(stop_prometheus(), 'Prometheus stopped by its PID');
ok(stop_nginx(), 'nginx stops cleanly');

done_testing();
