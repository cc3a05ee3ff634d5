# Self-test of the Test::StytchTat harness against plain nginx (no module).
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use File::Temp qw(tempdir);
use Time::HiRes ();

$ENV{TEST_NGINX_NO_MODULE} = 1 unless exists $ENV{TEST_NGINX_NO_MODULE};
$ENV{TEST_NGINX_GREETING} = 'hi from env';

our $Node = -x '/usr/bin/node' || grep { -x "$_/node" } split /:/, $ENV{PATH};

run_tests();

# ------------------------------------------------------------------ helpers

# variable substitution
is(subst_vars('x $TEST_NGINX_GREETING y'), 'x hi from env y', 'subst_vars: env variable');
is(subst_vars('$TEST_NGINX_SERVER_PORT'), server_port(), 'subst_vars: server port');
eval { subst_vars('listen $TEST_NGINX_NO_SUCH_VAR;') };
like($@, qr/unknown variable \$TEST_NGINX_NO_SUCH_VAR/, 'subst_vars: unknown variable dies');

# start / request / reload / concurrent / stop
ok(start_nginx({
    workers => 2,
    config  => 'location = /v { return 200 "version-1 $pid\n"; }
                location = /slow { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/v; }',
}), 'start_nginx') or diag(last_error());
my ($master, @kids) = nginx_pids();
is(scalar @kids, 2, 'two workers running');

my ($st, $h, $body) = http_request('GET', '/v');
is($st, 200, 'http_request status');
like($body, qr/^version-1 (\d+)\n\z/, 'http_request body');
is($h->{'content-type'}, 'text/plain', 'http_request headers are lower-cased');

my $off = error_log_offset();
ok(reload_nginx({
    workers => 2,
    config  => 'location = /v { return 200 "version-2 $pid\n"; }
                location = /slow { proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/v; }',
}), 'reload_nginx with new config') or diag(last_error());
my ($master2, @kids2) = nginx_pids();
is($master2, $master, 'same master after reload');
is(scalar @kids2, 2, 'two new workers');
ok(!(grep { my $k = $_; grep { $_ == $k } @kids } @kids2), 'workers replaced');
($st, $h, $body) = http_request('GET', '/v');
like($body, qr/^version-2 /, 'new config active after reload');
like(error_log_since($off), qr/signal 1 \(SIGHUP\) received/, 'error_log_since sees reload');

# a bad config must make reload_nginx fail and keep the old workers serving
ok(!reload_nginx('location = /v { no_such_directive; }'), 'reload with bad config fails');
like(last_error(), qr/unknown directive "no_such_directive"/, 'reload failure reason');
($st, undef, $body) = http_request('GET', '/v');
like($body, qr/^version-2 /, 'old config still served after failed reload');

my @res = concurrent_requests(50, "GET /v");
is(scalar @res, 50, '50 concurrent responses');
is(scalar(grep { defined $_->{status} && $_->{status} == 200 } @res), 50, 'all 50 are 200');
is(scalar(grep { $_->{body} =~ /^version-2 \d+\n\z/ } @res), 50, 'all 50 bodies ok');
my %seen = map { ($_->{body} =~ /(\d+)/)[0] => 1 } @res;
cmp_ok(scalar keys %seen, '<=', 2, 'served by at most the 2 workers');

# client timeout: a body that never arrives (proxy_pass reads the body first)
my $t0 = time;
($st) = http_request('POST', '/slow', { 'Content-Length' => 100 }, 'abc', { timeout => 1 });
ok(!defined $st, 'http_request times out');
like(last_error(), qr/timeout/, 'timeout reported');
cmp_ok(time - $t0, '<', 5, 'timeout honoured');

ok(stop_nginx(ignore => qr/unknown directive "no_such_directive"/),
   'stop_nginx: graceful, no alerts') or diag(last_error());
is(scalar(() = nginx_pids()), 0, 'no nginx after stop');

# crash detection: SIGSEGV a worker, stop_nginx must report it
ok(start_nginx('location / { return 204; }'), 'start_nginx (crash test)');
my (undef, $w) = nginx_pids();
kill 'SEGV', $w;
sleep 1;
ok(!stop_nginx(), 'stop_nginx reports a crashed worker');
like(last_error(), qr/exited on signal 11/, 'crash line reported');

# more instances: a balancer in front of two nodes, beside the block's nginx
{
    ok(start_nginx('location = /main { return 200 "main\n"; }'), 'start_nginx beside instances')
        or diag(last_error());
    my ($p1, $p2) = (free_port(), free_port());
    my @nodes;
    for my $n ([a => $p1], [b => $p2]) {
        push @nodes, start_instance(name => "node-$n->[0]", port => $n->[1],
            config => 'location / { return 200 "$TEST_NGINX_INSTANCE_NAME on $TEST_NGINX_INSTANCE_PORT\n"; }');
        ok($nodes[-1], "start_instance node-$n->[0]") or diag(last_error());
    }
    my $lb = start_instance(name => 'lb', workers => 1,
        http_config => "upstream nodes { server 127.0.0.1:$p1; server 127.0.0.1:$p2; }",
        config => 'location / { proxy_pass http://nodes; }');
    ok($lb, 'start_instance lb') or diag(last_error());
    is(join(',', map { $_->name } instances()), 'lb,node-a,node-b', 'instances() by name');
    my %seen;
    for (1 .. 4) { my (undef, undef, $b) = $lb->request(GET => '/x'); $seen{$b}++ }
    is_deeply(\%seen, { "node-a on $p1\n" => 2, "node-b on $p2\n" => 2 },
              'the balancer reaches both nodes, round robin');
    my ($st, undef, $b) = http_request('GET', '/main');
    is("$st $b", "200 main\n", 'the block\'s nginx still answers on its port');
    like(_slurp($nodes[0]->error_log), qr/\[debug\]/, 'an instance logs at debug in its own error log');
    isnt($nodes[0]->error_log, $nodes[1]->error_log, 'each its own error log');
    ok(!eval { start_instance(name => 'node-a', config => '') } && $@ =~ /running already/,
       'a name in use is refused');
    ok(!start_instance(name => 'broken', config => 'no_such_directive;'), 'a bad configuration fails')
        && like(last_error(), qr/unknown directive "no_such_directive"/, '... and says why');
    kill 'SEGV', (grep { $_ != $nodes[1]->pid } $nodes[1]->pids)[0];
    Time::HiRes::sleep(0.3);
    ok(stop_instance($nodes[0]), 'stop_instance: clean') or diag(last_error());
    ok(!stop_instance('node-b'), 'stop_instance (by name) reports a crashed worker');
    like(last_error(), qr/node-b: .*exited on signal 11/, '... naming the instance');
    ok(stop_instances(), 'stop_instances stops the rest') or diag(last_error());
    is(scalar(instances()), 0, 'none left');
    ok(stop_nginx(), 'stop_nginx');
}

sub _slurp { open my $fh, '<', $_[0] or return ''; local $/; <$fh> }

# run_node, list and scalar context
SKIP: {
    skip 'node not installed', 5 unless $Node;
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/echo.mjs" or die;
    print $fh <<'JS';
let input = '';
process.stdin.on('data', d => input += d);
process.stdin.on('end', () => {
  process.stdout.write(`args=${process.argv.slice(2).join(',')} stdin=${input}`);
  process.stderr.write('to-stderr');
  process.exit(process.argv[2] === 'fail' ? 3 : 0);
});
JS
    close $fh;
    my ($rc, $out, $err) = run_node("$dir/echo.mjs", 'a', 'b', { stdin => 'xyz' });
    is($rc, 0, 'run_node exit code');
    is($out, 'args=a,b stdin=xyz', 'run_node stdout');
    is($err, 'to-stderr', 'run_node stderr');
    ($rc) = run_node("$dir/echo.mjs", 'fail');
    is($rc, 3, 'run_node non-zero exit code');
    ok(!eval { scalar run_node("$dir/echo.mjs", 'fail') } && $@ =~ /exited with 3.*to-stderr/s,
       'run_node in scalar context dies with output');
}

# The harness must be able to fail: run a spec with wrong expectations.
{
    my $dir = tempdir(CLEANUP => 1);
    open my $fh, '>', "$dir/fail.t" or die;
    print $fh <<'T';
use lib 't/lib';
use Test::StytchTat;
$ENV{TEST_NGINX_NO_MODULE} = 1;
run_tests();
__DATA__
=== TEST 1: wrong body
--- config
location = /t { return 200 "hello\n"; }
--- request
GET /t
--- error_code: 201
--- response_body
bye
--- response_headers
Content-Type: text/html
!Server
--- error_log
this line is not in the log
--- no_error_log
[debug]

=== TEST 2: right
--- config
location = /t { return 200 "hello\n"; }
--- request
GET /t
--- error_code: 200
--- response_body
hello
T
    close $fh;
    local $ENV{TEST_NGINX_SERVER_PORT};    # let the child pick its own port
    delete $ENV{TEST_NGINX_SERVER_PORT};
    my $out = `$^X -I t/lib $dir/fail.t 2>&1`;
    my $exit = $? >> 8;
    isnt($exit, 0, 'failing spec: non-zero exit');
    for my $t ('status code ok', 'response_body - response is expected',
               'header Content-Type ok', 'header Server absent',
               'pattern "this line is not in the log" matches',
               'pattern "[debug]" should not match') {
        like($out, qr/^not ok \d+ - TEST 1: wrong body - \Q$t\E/m, "failing spec: '$t' fails");
    }
    like($out, qr/^ok \d+ - TEST 2: right - status code ok/m, 'failing spec: TEST 2 passes');
    like($out, qr/^ok \d+ - TEST 2: right - response_body/m, 'failing spec: TEST 2 body passes');
    like($out, qr/^1\.\.\d+$/m, 'failing spec: done_testing plan emitted');
}

__DATA__

=== TEST 1: plain body
--- config
location = /hello { return 200 "hello\n"; }
--- request
GET /hello
--- error_code: 200
--- response_body
hello
--- response_headers
Content-Type: text/plain
Content-Length: 6
--- no_error_log
[error]

=== TEST 2: headers, more_headers and variables
--- config
location = /h {
    add_header X-Foo bar;
    add_header X-Echo $http_x_req;
    add_header X-Multi one;
    add_header X-Multi two;
    return 200 "port=$server_port greeting=$TEST_NGINX_GREETING\n";
}
--- request
GET /h
--- more_headers
X-Req: from-client
--- error_code: 200
--- response_headers
X-Foo: bar
X-Echo: from-client
x-multi: one, two
!X-Absent
--- response_headers_like
Server: ^nginx/1\.\d+
X-Foo: ^b.r$
--- response_body eval
"port=$ENV{TEST_NGINX_SERVER_PORT} greeting=hi from env\n"
--- response_body_unlike: TEST_NGINX

=== TEST 3: error_log lines (404 with log_not_found)
--- config
location / {
    root $TEST_NGINX_HTML_DIR;
    log_not_found on;
}
--- request
GET /nope.html
--- error_code: 404
--- response_body_like: 404 Not Found
--- error_log
open() "$TEST_NGINX_HTML_DIR/nope.html" failed
No such file or directory
--- no_error_log
[alert]
[crit]

=== TEST 4: error_log eval with regexes
--- config
location / { root $TEST_NGINX_HTML_DIR; }
--- request
GET /missing
--- error_code: 404
--- error_log eval
[qr/\[error\] \d+#\d+: \*\d+ open\(\) ".*missing" failed \(2: No such file or directory\)/,
 "client: 127.0.0.1"]
--- no_error_log eval
qr/\[emerg\]/

=== TEST 5: must_die with an unknown directive
--- config
location / { no_such_directive_here on; }
--- must_die
--- error_log
unknown directive "no_such_directive_here"
nginx.conf:
--- no_error_log
[alert]

=== TEST 6: array of requests; POST body goes through (proxied echo)
--- config
location = /a { return 200 "A\n"; }
location = /echo {
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/dump;
    proxy_set_header X-Body $request_body;
}
location = /dump { return 200 "body=[$http_x_body]\n"; }
--- request eval
["GET /a", "GET /nothing-here", "POST /echo\nhello world", "GET /a HTTP/1.0"]
--- error_code eval
[200, 404, 200, 200]
--- response_body_like eval
["^A\n\\z", "404", qr/^body=\[hello world\]$/m, "^A"]

=== TEST 7: request_body section
--- config
location = /echo {
    proxy_pass http://127.0.0.1:$TEST_NGINX_SERVER_PORT/dump;
    proxy_set_header X-Body $request_body;
    proxy_set_header X-Len $http_content_length;
}
location = /dump { return 200 "[$http_x_body] len=$http_x_len\n"; }
--- request
POST /echo
--- request_body
a=1&b=2
--- response_body
[a=1&b=2] len=7

=== TEST 8: raw_request with a malformed header line
--- config
location / { return 200 "should not get here\n"; }
--- raw_request eval
"GET / HTTP/1.1\r\nHost: localhost\r\nThis is not a header\r\n\r\n"
--- error_code: 400
--- error_log
client sent invalid header line
--- no_error_log
[error]

=== TEST 9: raw_request sent in pieces, keep-alive response read by length
--- config
location = /k { return 200 "kept\n"; }
--- raw_request eval
["GET /k HTTP/1.1\r\nHo", "st: localhost\r\n\r\n"]
--- error_code: 200
--- response_body
kept

=== TEST 10: four workers
--- workers: 4
--- config
location = /w { return 200 "$pid\n"; }
--- request
GET /w
--- error_code: 200
--- response_body_check eval
sub {
    my ($body, $headers, $block, $status) = @_;
    my $n = () = Test::StytchTat::error_log_since(0) =~ /start worker process \d+/g;
    die "expected 4 workers, log shows $n\n" unless $n == 4;
    my ($master, @kids) = nginx_pids();
    die "expected 4 worker pids, got @kids\n" unless @kids == 4;
    die "body pid $body is not a worker\n" unless grep { "$_\n" eq $body } @kids;
    $headers->{'content-type'} eq 'text/plain' && $status == 200;
}

=== TEST 11: env section reaches nginx (TZ is kept for workers)
--- main_config
env TZ;
--- env
TZ=TST-3
TEST_NGINX_FROM_ENV_SECTION=env-$TEST_NGINX_GREETING
--- config
location = /tz { return 200 "$time_local|$TEST_NGINX_FROM_ENV_SECTION\n"; }
--- request
GET /tz
--- response_body_like: ^\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d \+0300\|env-hi from env\n\z

=== TEST 12: http_config and main_config placement
--- main_config
worker_rlimit_nofile 4096;
--- http_config
map $uri $tag { default none; /m mapped; }
--- config
location = /m { return 200 "$tag\n"; }
--- request
GET /m
--- response_body
mapped

=== TEST 13: chunked responses are decoded
--- config
location = /c {
    sub_filter_types text/plain;
    sub_filter lumpy chunky;
    return 200 "lumpy body\n";
}
--- request
GET /c
--- response_headers
Transfer-Encoding: chunked
--- response_body
chunky body

=== TEST 14: response_body_check with node
--- skip_eval: 1: !$main::Node
--- config
location = /j { return 200 '{"a":1}'; }
--- request
GET /j
--- response_body_check eval
sub { run_node('-e', 'const j = JSON.parse(require("fs").readFileSync(0, "utf8")); process.exit(j.a === 1 ? 0 : 1)', { stdin => $_[0] }) }

=== TEST 15: skip_eval true skips the block
--- skip_eval: 1
--- config
this would not parse;
--- request
GET /

=== TEST 16: SKIP drops the block
--- SKIP
--- config
this would not parse either;
--- request
GET /

=== TEST 17: user_files are served from the html dir
--- user_files
>>> index.html
<p>index</p>
>>> sub/dir/f.json
{"port": "$TEST_NGINX_SERVER_PORT"}
--- config
location / { root $TEST_NGINX_HTML_DIR; }
--- request eval
["GET /", "GET /sub/dir/f.json"]
--- response_body eval
["<p>index</p>\n", "{\"port\": \"$ENV{TEST_NGINX_SERVER_PORT}\"}\n"]

=== TEST 18: crash_ok and worker crash detection
--- crash_ok
--- config
location = /p { return 200 "$pid"; }
--- request
GET /p
--- response_body_check eval
sub { kill('SEGV', $_[0]) && select(undef, undef, undef, 0.5) || 1 }
--- error_log eval
qr/worker process \d+ exited on signal 11/
