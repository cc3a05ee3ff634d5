package Test::StytchTat;

use strict;
use warnings;

our $VERSION = '0.01';

=head1 NAME

Test::StytchTat - a small, data-driven nginx test harness (Test::Nginx-like)

=head1 SYNOPSIS

    use lib 't/lib';
    use Test::StytchTat;

    $ENV{TEST_NGINX_KEYS} ||= repo_root() . '/t/keys';

    run_tests();     # calls done_testing() at exit unless a plan was set

    __DATA__

    === TEST 1: jwks
    --- http_config
    stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
    --- config
    location = /jwks { stytch_tat_jwks; }
    --- request
    GET /jwks
    --- more_headers
    X-Foo: bar
    --- error_code: 200
    --- response_headers
    Content-Type: application/jwk-set+json
    --- response_body_like: "keys"
    --- no_error_log
    [error]

Run with C<prove -I t/lib t/> from the repository root.

=head1 DESCRIPTION

Every block of the C<__DATA__> section gets a fresh server root, its own
F<conf/nginx.conf>, and its own nginx master (always C<daemon on;
master_process on;>).  The master is started before the block's requests and
stopped (SIGQUIT, then SIGKILL after 10s) after them, so F<logs/error.log>
only ever contains the current block's lines.

=head2 Block syntax

Blocks start with C<=== name>; sections with C<--- section [filters]> (value
on the following lines) or C<--- section [filters]: value> (inline value).
Multi-line values get leading blank lines and trailing whitespace after the
last newline removed (Test::Base's C<trim>), so a value keeps exactly one
trailing newline.  Filters: C<eval> (the value is Perl code run in package
C<main>; a syntax/runtime error aborts the test file), C<chomp>, C<trim>.
Note that C<eval> code cannot see C<my> variables of the test file; use
C<our> variables or C<%ENV>.

=head2 Sections

=over

=item main_config, event_config, http_config, config

Inserted into the main context, the C<events {}> block, the C<http {}> block
and the default C<server { listen 127.0.0.1:$TEST_NGINX_SERVER_PORT;
server_name localhost; ... }> block.

=item request

C<METHOD /uri [HTTP/1.x]>; further lines are the request body (its final
newline is removed).  The harness adds C<Host: localhost>,
C<Connection: close> and C<Content-Length> unless given in more_headers.
C<--- request eval> may return an array ref of such strings: the requests
are sent one after another (fresh connections), and every expectation
section below may then be an array ref (C<eval>) with one entry per request;
a non-array expectation applies to every request.

=item request_body

Body for the request(s) (final newline removed; use C<eval> for exact bytes).

=item more_headers

C<Name: value> lines added to the request (may be an array ref, per request).

=item raw_request

Exactly these bytes are sent (no Host/Connection added; the response is read
until EOF or until it is complete according to Content-Length/chunked).  A
plain section always ends in C<"\n">; use C<--- raw_request eval> with
C<"...\r\n\r\n"> for exact bytes.  An array ref is sent as pieces of one
request with a 50ms pause between them.

=item error_code, response_body, response_body_like, response_body_unlike

Status code (exact), body (exact), body regex (C</s>), body must not match.

=item response_headers, response_headers_like

One C<Name: value> per line, header names are case-insensitive, repeated
headers are compared joined with C<", ">.  C<!Name> means the header must be
absent.  In C<response_headers_like> the value is a regex.

=item response_body_check

C<--- response_body_check eval> with a code ref; called in scalar context as
C<< $code->($body, \%headers, $block, $status, $request_index) >>.  True
passes; false fails; dying fails with the message.  E.g.
C<sub { run_node("t/tools/verify.mjs", $_[0]) }> (in scalar context
C<run_node> dies with node's output unless node exits 0).

=item error_log, no_error_log

One substring per line, or with C<eval> a string, C<qr//> or array ref of
strings and regexes (regexes are matched line by line).  Searched in the
error log of this block only (after nginx was stopped, so everything is
flushed), or in the C<nginx -t> output for C<must_die> blocks.  Note the log
level is C<debug>.

=item user_files

Files created below C<$TEST_NGINX_HTML_DIR> before nginx starts:
C<<< >>> path >>> lines each followed by the file content (variables are
substituted); with C<eval>, an array ref of C<[$path, $content]>.

=item must_die

The configuration must make C<nginx -t> fail; nginx is not started.

=item workers: N

C<worker_processes N> (default 1).

=item timeout: S

Client timeout per request in seconds (default 10).

=item env

C<NAME=value> lines put into nginx's environment (use C<env NAME;> in
main_config to pass them on to workers).  They are also available as
C<$NAME> substitutions when NAME starts with C<TEST_NGINX_>.

=item skip_eval: [N:] EXPR

Skip the block when the Perl expression is true (N is accepted for
Test::Nginx compatibility and is used as the skip count).

=item SKIP, ONLY, LAST

Drop this block; run only this block; stop after this block.

=item crash_ok

Don't fail the block because of C<[alert]>, C<[emerg]> or C<exited on signal>
lines in the error log (checked for every block otherwise).

=back

=head2 Variables

C<$TEST_NGINX_SERVER_PORT> (a free port chosen once per test file, or from
the environment), C<$TEST_NGINX_HTML_DIR>, C<$TEST_NGINX_SERVROOT> and any
C<TEST_NGINX_*> environment variable are substituted in config sections,
requests, headers, C<env>, C<response_body>, C<response_headers> and plain
C<error_log>/C<no_error_log> strings (not in regexes).  An unknown
C<$TEST_NGINX_*> variable is a fatal error.  The three built-ins are also
exported to C<%ENV>.

=head2 Test names and counts

Names look like C<TEST 1: jwks - status code ok>.  One test is emitted per
checked item: status, body, each header line, each error_log line, the body
check, per request; plus C<nginx -t fails> for must_die blocks and one
"no [alert]/[emerg]/crash" test per started block.  Rather than counting,
simply don't declare a plan: if none was declared (and done_testing was not
called), C<done_testing> is called automatically when the test file exits.

=head2 Helpers (exported)

    start_nginx($config_text | \%sections | $block)  # 1/0
    stop_nginx([ignore => qr/.../])     # 1 if graceful and no alert/emerg/crash
                                        # (lines matching ignore are allowed)
    reload_nginx([$config_text | \%sections])  # HUP, wait for new workers; 1/0
    http_request($method, $uri, \%headers_or_\@pairs, $body, \%opts)
        # -> ($status, \%headers, $body, \@header_pairs)
        # %headers keys are lower-case; opts: timeout, port, host, version
    concurrent_requests($n, $request, \%opts)
        # $request: "GET /uri\nbody" | [$method,$uri,\%h,$body] | {method=>..}
        # all N connections are opened and all requests written before any
        # response is read; returns N hashrefs {status,headers,body,error}
    start_instance(name => 'n1', [port => N], http_config => ..., config => ...)
        # one more nginx (see "More instances"); undef on failure
    stop_instance($inst | $name, [ignore => qr/.../])   # as stop_nginx
    stop_instances([ignore => qr/.../])  # all of them; 1 if all were clean
    instances()               # the running instances, by name
    error_log_since($offset)  # text (list context: text, new offset)
    error_log_offset()        # current size of logs/error.log
    run_node($script, @args, {stdin => $data, timeout => 60, env => {}})
        # list context: ($exit_code, $stdout, $stderr)
        # scalar context: 1 if exit 0, else dies with stdout/stderr
    repo_root() free_port() server_port() servroot() html_dir()
    nginx_pids()              # (master, children...)
    subst_vars($text)         # $TEST_NGINX_* substitution
    last_error()              # why the last helper returned false
    blocks() run_tests()

Test::More's functions are exported too.

=head2 More instances

A test that needs several nginx servers at once (a cluster of nodes and a
balancer in front of them) starts more instances beside the block's own
with C<start_instance>:

    my $n1 = start_instance(name => 'n1', http_config => $http,
                            config => $node_config, workers => 1)
        or BAIL_OUT(last_error());
    my ($status, $h, $body) = $n1->request(GET => '/app', { 'X-User' => 'a' });
    like($n1->log_since(0), qr/.../);
    ok(stop_instance($n1), 'n1: no alert, emerg or crash') or diag(last_error());

Each instance gets its server root F<$TEST_NGINX_SERVROOT/../instances/NAME>
(its own F<conf/nginx.conf>, F<logs/error.log> at debug level, pid file and
temp directories) and its default server listens on C<port> (default: a
free port; C<free_port()> beforehand gives one to put in another
instance's configuration).  The sections are those of a block
(C<main_config>, C<event_config>, C<http_config>, C<config>, C<workers>,
C<env>) or C<nginx_conf> for a whole configuration; besides the usual
variables they may use C<$TEST_NGINX_INSTANCE_NAME>,
C<$TEST_NGINX_INSTANCE_PORT> and C<$TEST_NGINX_INSTANCE_PREFIX>.  Any
further server must listen on a port of its own (every instance gets the
same C<http_config>, so a server there would be started twice).

The object has C<name>, C<port>, C<prefix>, C<conf>, C<error_log>, C<pid>,
C<pids> (master and workers), C<log_offset>, C<log_since($offset)> (text;
list context: text and new offset) and C<request(...)> (C<http_request> to
its port).  Instances outlive blocks; they are stopped by
C<stop_instance>, C<stop_instances> or, at the latest, when the test file
exits.  C<stop_instance> returns 1 if nginx stopped within 10 s of SIGQUIT
and its error log has no C<[alert]>, C<[emerg]> or worker that exited on a
signal (as C<stop_nginx>).

=head2 Environment

C<TEST_NGINX_BINARY> (default F</usr/sbin/nginx>), C<TEST_NGINX_MODULE>
(default F<E<lt>repoE<gt>/build/ngx_http_stytch_tat_module.so>; if the file
does not exist it is not loaded and a diag is printed), C<TEST_NGINX_NO_MODULE=1>
(never load it), C<TEST_NGINX_NO_CLEAN=1> (keep the temp dir; its path is
printed), C<TEST_NGINX_SERVER_PORT>, C<TEST_NGINX_USER> (emit C<user ...;>),
C<TEST_NGINX_NODE> (default C<node>).

=head2 Running as root

No C<user> directive is emitted (unless C<TEST_NGINX_USER> is set), so when
the tests run as root the workers run as nginx's default C<nobody>.  The
temp dir C<${TMPDIR:-/tmp}/stytch-tat-test-PID> is made world-readable (if
TMPDIR is not traversable by others, F</tmp> is used instead), the
C<*_temp> directories are mode 0777, and the log files are opened by the
master as root.  Files that workers must read at run time (outside the
servroot) must be world-readable.

=cut

use Test::More ();
use Test::Builder;
use IO::Socket::INET;
use IO::Select;
use File::Path qw(make_path remove_tree);
use File::Spec;
use File::Basename qw(dirname);
use Cwd qw(abs_path);
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use Errno qw(EAGAIN EWOULDBLOCK EINTR EINPROGRESS);

BEGIN { Test::More->import() }    # our own copies of ok, is, like, ...

our @HELPERS = qw(
    run_tests blocks
    start_nginx stop_nginx reload_nginx
    start_instance stop_instance stop_instances instances
    http_request concurrent_requests
    error_log_since error_log_offset
    run_node repo_root free_port server_port servroot html_dir
    nginx_pids subst_vars last_error
);
our @EXPORT = ((grep { !/^\$/ } @Test::More::EXPORT), @HELPERS);

our $LastError = '';
our $CurBlock;
our $DefaultTimeout = 10;
our $StopTimeout = 10;

my $Tb = Test::Builder->new;
my $OwnerPid = $$;
my $RunTestsCalled = 0;
my ($TopDir, $ServRoot, $HtmlDir, $Port);
my $TopDirMade = 0;
my %Cur;            # current nginx: pid, workers, sections, conf_file
my %Instances;      # further nginx instances by name (start_instance)
my $ModuleDiagDone = 0;

sub import {
    my $class = shift;
    _init();
    my $caller = caller;
    no strict 'refs';
    for my $sym (@EXPORT) {
        *{"${caller}::$sym"} = \&{"${class}::$sym"};
    }
}

# ---------------------------------------------------------------- setup

sub repo_root {
    my $here = abs_path(__FILE__) || File::Spec->rel2abs(__FILE__);
    return abs_path(dirname($here) . '/../../..');
}

# the kernel may hand the same ephemeral port out again once it is closed:
# a port is given once per test process, so two servers never share one
my %PortsGiven;

sub free_port {
    for (1 .. 50) {
        my $s = IO::Socket::INET->new(
            LocalAddr => '127.0.0.1', LocalPort => 0, Proto => 'tcp',
            Listen => 1, ReuseAddr => 0,
        ) or next;
        my $p = $s->sockport;
        close $s;
        next if !$p || $PortsGiven{$p}++;
        return $p;
    }
    die "free_port: could not find a free TCP port: $!\n";
}

sub _traversable_by_others {
    my ($dir) = @_;
    my $p = abs_path($dir) or return 0;
    while (1) {
        my @st = stat($p) or return 0;
        return 0 unless ($st[2] & 0001);
        last if $p eq '/';
        $p = dirname($p);
    }
    return 1;
}

sub _init {
    return if $TopDir;
    my $base = $ENV{TMPDIR} && -d $ENV{TMPDIR} ? $ENV{TMPDIR} : '/tmp';
    $base = '/tmp' if $> == 0 && !_traversable_by_others($base);
    $base = abs_path($base);
    $TopDir = "$base/stytch-tat-test-$$";
    _sweep_stale($base);
    $ServRoot = "$TopDir/servroot";
    $HtmlDir = "$ServRoot/html";
    $Port = $ENV{TEST_NGINX_SERVER_PORT} || free_port();
    $ENV{TEST_NGINX_SERVER_PORT} = $Port;
    $ENV{TEST_NGINX_SERVROOT} = $ServRoot;
    $ENV{TEST_NGINX_HTML_DIR} = $HtmlDir;
    $SIG{PIPE} = 'IGNORE';
    for my $sig (qw(INT TERM)) {
        $SIG{$sig} = sub { exit 130 } unless $SIG{$sig};
    }
}

# remove temp dirs left behind by test processes that no longer exist
sub _sweep_stale {
    my ($base) = @_;
    opendir my $dh, $base or return;
    for my $d (readdir $dh) {
        next unless $d =~ /^stytch-tat-test-(\d+)$/;
        my $pid = $1;
        next if $pid == $$ || kill(0, $pid) || $!{EPERM};
        my @st = lstat("$base/$d") or next;
        next unless -d _ && $st[4] == $>;
        next if time - $st[9] < 60;    # be conservative with fresh ones
        remove_tree("$base/$d");
    }
}

# the temp dir is created on first use (so "perl -c t/foo.t" leaves nothing)
sub _topdir {
    _init();
    unless ($TopDirMade) {
        remove_tree($TopDir) if -e $TopDir;
        make_path($TopDir) or die "cannot create $TopDir: $!\n";
        chmod 0755, $TopDir;
        $TopDirMade = 1;
    }
    return $TopDir;
}

sub server_port { $Port }
sub servroot    { $ServRoot }
sub html_dir    { $HtmlDir }
sub last_error  { $LastError }

END {
    my $status = $?;
    if ($$ == $OwnerPid && $TopDir) {
        _stop_nginx_quiet() if $Cur{pid};
        _stop_instance_quiet($_) for values %Instances;
        if (!$Tb->has_plan && $Tb->current_test > 0) {
            $Tb->done_testing;
        }
        if ($ENV{TEST_NGINX_NO_CLEAN}) {
            $Tb->diag("TEST_NGINX_NO_CLEAN: keeping $TopDir") if $TopDirMade;
        } else {
            remove_tree($TopDir) if $TopDirMade;
        }
    }
    $? = $status;
}

# ---------------------------------------------------------------- variables

sub subst_vars {
    my ($text, $extra) = @_;
    return $text unless defined $text && !ref $text;
    $extra ||= {};
    $text =~ s{\$(TEST_NGINX_[A-Za-z0-9_]+)}{
        my $v = exists $extra->{$1} ? $extra->{$1} : $ENV{$1};
        defined $v
            or die "Test::StytchTat: " . ($CurBlock ? "$CurBlock: " : '') . "unknown variable \$$1 (set the environment "
                 . "variable $1 before run_tests(), e.g. \$ENV{$1} = ...)\n";
        $v;
    }ge;
    return $text;
}

# ---------------------------------------------------------------- parsing

{
    package Test::StytchTat::Block;
    our $AUTOLOAD;

    sub new { my ($c, %a) = @_; bless {%a, cache => {}}, $c }
    sub name { $_[0]{name} }
    sub seq_num { $_[0]{seq} }
    sub has { exists $_[0]{sections}{$_[1]} }
    sub sections { @{ $_[0]{order} } }

    sub get {
        my ($self, $sec) = @_;
        my $s = $self->{sections}{$sec} or return undef;
        return $self->{cache}{$sec} if exists $self->{cache}{$sec};
        my $v = $s->{value};
        unless ($s->{inline}) {
            $v =~ s/\A([ \t]*\n)+//;
            $v =~ s/(?<=\n)\s*\z//;
        }
        for my $f (@{ $s->{filters} }) {
            if ($f eq 'eval') {
                $v = Test::StytchTat::_eval_code($v, "$self->{name} --- $sec");
            } elsif ($f eq 'chomp') {
                chomp $v if defined $v && !ref $v;
            } elsif ($f eq 'trim') {
                if (defined $v && !ref $v) { $v =~ s/\A\s+//; $v =~ s/\s+\z// }
            } elsif ($f eq 'norm') {
                $v =~ s/\r\n?/\n/g if defined $v && !ref $v;
            } else {
                die "Test::StytchTat: $self->{name}: unknown filter '$f' in section '$sec'\n";
            }
        }
        return $self->{cache}{$sec} = $v;
    }

    sub AUTOLOAD {
        my $self = shift;
        (my $m = $AUTOLOAD) =~ s/.*:://;
        return if $m eq 'DESTROY';
        return $self->get($m);
    }
}

sub _eval_code {
    my ($code, $where) = @_;
    my @r;
    {
        no strict;
        no warnings;
        local $@;
        @r = eval "package main;\n#line 1 \"$where\"\n$code";
        die "Test::StytchTat: eval failed in $where: $@" if $@;
    }
    return @r == 0 ? undef : @r == 1 ? $r[0] : \@r;
}

my $Blocks;

sub _parse_spec {
    my ($spec) = @_;
    my @blocks;
    my @hunks = ($spec =~ /^(===.*?(?=^===|\z))/msg);
    my $seq = 0;
    my $only;
    for my $hunk (@hunks) {
        $hunk =~ s/\A===[ \t]*(.*?)[ \t]*\n// or $hunk =~ s/\A===[ \t]*(.*)\z//s;
        my $name = $1;
        my @parts = split /^--- +\(?(\w+)\)? *(.*?)[ \t]*(?:\n|\z)/m, $hunk, -1;
        shift @parts;    # description text before the first section
        my (%sec, @order);
        while (@parts) {
            my ($type, $filters, $value) = splice(@parts, 0, 3);
            $filters = '' unless defined $filters;
            $value = '' unless defined $value;
            my $inline = 0;
            if ($filters =~ /:(\s|\z)/) {
                ($filters, my $iv) = split /\s*:(?:\s+|\z)/, $filters, 2;
                die "Test::StytchTat: $name: extra lines not allowed after inline "
                    . "'--- $type: ...'\n" if $value =~ /\S/;
                $iv = '' unless defined $iv;
                $iv =~ s/^\s+//; $iv =~ s/\s+$//;
                $value = $iv;
                $inline = 1;
            }
            $sec{$type} = {
                value => $value, inline => $inline,
                filters => [grep { length } split /\s+/, $filters],
            };
            push @order, $type;
        }
        my $b = Test::StytchTat::Block->new(
            name => $name, sections => \%sec, order => \@order, seq => ++$seq);
        if (exists $sec{ONLY}) { $only = $b; last }
        next if exists $sec{SKIP};
        push @blocks, $b;
        last if exists $sec{LAST};
    }
    if ($only) {
        $Tb->diag("I found ONLY: maybe you're debugging?");
        return [$only];
    }
    return \@blocks;
}

sub blocks {
    unless ($Blocks) {
        my $spec = '';
        no strict 'refs';
        my $fh = \*{"main::DATA"};
        if (defined fileno($fh) || eval { !eof($fh) }) {
            local $/;
            $spec = <$fh>;
            $spec = '' unless defined $spec;
        }
        $Blocks = _parse_spec($spec);
    }
    return wantarray ? @$Blocks : scalar @$Blocks;
}

# ---------------------------------------------------------------- nginx control

sub _module_line {
    return '' if $ENV{TEST_NGINX_NO_MODULE};
    my $so = $ENV{TEST_NGINX_MODULE} || repo_root() . '/build/ngx_http_stytch_tat_module.so';
    if (-f $so) {
        return "load_module $so;\n";
    }
    $Tb->diag("Test::StytchTat: module $so not found; running nginx without it")
        unless $ModuleDiagDone++;
    return '';
}

sub _binary { $ENV{TEST_NGINX_BINARY} || '/usr/sbin/nginx' }

# the configuration of an nginx under server root $sr (default the
# blocks' one) whose default server listens on $port (default the tests')
sub _build_conf {
    my ($s, $sr, $port) = @_;
    return $s->{nginx_conf} if defined $s->{nginx_conf};
    my $workers = $s->{workers} || 1;
    $sr //= $ServRoot;
    $port //= $Port;
    my $user = $ENV{TEST_NGINX_USER} ? "user $ENV{TEST_NGINX_USER};\n" : '';
    my $sec = sub { my $v = $s->{$_[0]}; defined $v ? "$v\n" : '' };
    return <<"CONF";
# generated by Test::StytchTat
${\ _module_line()}${user}daemon on;
master_process on;
worker_processes $workers;
error_log $sr/logs/error.log debug;
pid $sr/logs/nginx.pid;

# --- main_config
${\ $sec->('main_config')}
events {
    worker_connections 1024;
${\ $sec->('event_config')}}

http {
    access_log $sr/logs/access.log;
    client_body_temp_path $sr/client_body_temp;
    proxy_temp_path $sr/proxy_temp;
    fastcgi_temp_path $sr/fastcgi_temp;
    uwsgi_temp_path $sr/uwsgi_temp;
    scgi_temp_path $sr/scgi_temp;
    default_type text/plain;

# --- http_config
${\ $sec->('http_config')}
    server {
        listen 127.0.0.1:$port;
        server_name localhost;

# --- config
${\ $sec->('config')}
    }
}
CONF
}

sub _prepare_servroot {
    _stop_nginx_quiet() if $Cur{pid};
    _topdir();
    remove_tree($ServRoot) if -e $ServRoot;
    make_path("$ServRoot/conf", "$ServRoot/logs", $HtmlDir);
    chmod 0755, $ServRoot, "$ServRoot/conf", "$ServRoot/logs", $HtmlDir;
    for my $t (qw(client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp)) {
        make_path("$ServRoot/$t");
        chmod 0777, "$ServRoot/$t";
    }
}

sub _write_file {
    my ($file, $text) = @_;
    open my $fh, '>', $file or die "cannot write $file: $!\n";
    print $fh $text;
    close $fh or die "cannot write $file: $!\n";
}

sub _read_file {
    my ($file, $offset) = @_;
    open my $fh, '<', $file or return '';
    binmode $fh;
    seek($fh, $offset, 0) if $offset;
    local $/;
    my $t = <$fh>;
    return defined $t ? $t : '';
}

# run a command with extra env, stdin from /dev/null, stdout+stderr to $out
sub _run_cmd {
    my ($cmd, $env, $out, $timeout) = @_;
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        %ENV = (%ENV, %{ $env || {} });
        open STDIN, '<', '/dev/null';
        open STDOUT, '>', $out or POSIX::_exit(126);
        open STDERR, '>&', \*STDOUT or POSIX::_exit(126);
        exec { $cmd->[0] } @$cmd or POSIX::_exit(127);
    }
    my $deadline = time + ($timeout || 30);
    while (1) {
        my $r = waitpid($pid, WNOHANG);
        return $? if $r == $pid;
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            return -1;
        }
        sleep 0.02;
    }
}

sub _alive {
    my ($pid) = @_;
    return 0 unless $pid && kill(0, $pid);
    if (open my $fh, '<', "/proc/$pid/stat") {
        my $st = <$fh>;
        return 0 if defined $st && $st =~ /\)\s+([ZX])\s/;
    }
    return 1;
}

sub _children_of {
    my ($ppid) = @_;
    my @kids;
    opendir my $dh, '/proc' or return;
    for my $p (grep { /^\d+$/ } readdir $dh) {
        open my $fh, '<', "/proc/$p/stat" or next;
        my $st = <$fh>;
        next unless defined $st && $st =~ /\)\s+(\S)\s+(\d+)/;
        push @kids, $p + 0 if $2 == $ppid && $1 ne 'Z' && $1 ne 'X';
    }
    @kids = sort { $a <=> $b } @kids;
    return @kids;
}

sub nginx_pids {
    return () unless $Cur{pid};
    return ($Cur{pid}, _children_of($Cur{pid}));
}

sub _sections_from {
    my ($arg) = @_;
    return { config => $arg } unless ref $arg;
    return {%$arg} if ref $arg eq 'HASH';
    if (ref($arg) && eval { $arg->isa('Test::StytchTat::Block') }) {
        my %s;
        for my $k (qw(main_config event_config http_config config workers env)) {
            $s{$k} = $arg->get($k) if $arg->has($k);
        }
        return \%s;
    }
    die "start_nginx: expected config text, hash ref or block\n";
}

sub _env_hash {
    my ($env, $extra) = @_;
    return {} unless defined $env;
    return {%$env} if ref $env eq 'HASH';
    my %h;
    for my $line (split /\n/, $env) {
        next unless $line =~ /\S/;
        $line =~ /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*?)\s*$/
            or die "Test::StytchTat: bad env line '$line' (want NAME=value)\n";
        $h{$1} = $2;
    }
    for my $k (keys %h) { $h{$k} = subst_vars($h{$k}, { %h, %{ $extra || {} } }) }
    return \%h;
}

sub _subst_sections {
    my ($s, $extra) = @_;
    my $env = _env_hash($s->{env}, $extra);
    $s->{env} = $env;
    for my $k (qw(main_config event_config http_config config nginx_conf)) {
        $s->{$k} = subst_vars($s->{$k}, { %{ $extra || {} }, %$env })
            if defined $s->{$k};
    }
    if (defined $s->{workers}) {
        ($s->{workers}) = $s->{workers} =~ /(\d+)/;
    }
    return $s;
}

# start nginx; returns 1/0 and sets $LastError
sub start_nginx {
    my ($arg) = @_;
    my $s = _subst_sections(_sections_from(defined $arg ? $arg : ''));
    _prepare_servroot();
    return _start($s);
}

sub _start {
    my ($s) = @_;
    $LastError = '';
    my $conf = "$ServRoot/conf/nginx.conf";
    _write_file($conf, _build_conf($s));
    my $out = "$ServRoot/logs/startup.out";
    my $rc = _run_cmd([_binary(), '-p', "$ServRoot/", '-c', $conf,
                       '-e', "$ServRoot/logs/error.log"], $s->{env}, $out, 30);
    if ($rc != 0) {
        $LastError = "nginx failed to start (exit " . ($rc >> 8) . "):\n"
            . _read_file($out) . _interesting_lines(_read_file("$ServRoot/logs/error.log"));
        return 0;
    }
    my $workers = $s->{workers} || 1;
    my $deadline = time + 10;
    my $pid;
    while (time < $deadline) {
        my $t = _read_file("$ServRoot/logs/nginx.pid");
        if ($t =~ /^(\d+)\s*$/ && _alive($1)) { $pid = $1; last }
        sleep 0.02;
    }
    unless ($pid) {
        $LastError = "nginx pid file did not appear:\n" . _read_file($out)
            . _interesting_lines(_read_file("$ServRoot/logs/error.log"));
        return 0;
    }
    %Cur = (pid => $pid, workers => $workers, sections => $s, conf => $conf);
    while (time < $deadline) {
        last if _children_of($pid) >= $workers;
        unless (_alive($pid)) {
            $LastError = "nginx master exited during startup:\n"
                . _interesting_lines(_read_file("$ServRoot/logs/error.log"));
            %Cur = ();
            return 0;
        }
        sleep 0.02;
    }
    if (_children_of($pid) < $workers) {
        $LastError = "nginx workers did not start within 10s";
        return 0;
    }
    return 1;
}

sub _interesting_lines {
    my ($log, $max) = @_;
    $max ||= 40;
    my @l = grep { m{^\d{4}/\d\d/\d\d \S+ \[(?!debug\])} || /^nginx: / } split /\n/, $log;
    @l = @l[-$max .. -1] if @l > $max;
    return join '', map { "  $_\n" } @l;
}

sub _crash_lines {
    my ($log) = @_;
    return grep { /\[(?:alert|emerg)\]|exited on signal/ } split /\n/, $log;
}

sub _stop_nginx_quiet {
    my $pid = $Cur{pid} or return (1, '');
    my @kids = _children_of($pid);
    kill 'QUIT', $pid;
    my $deadline = time + $StopTimeout;
    while (time < $deadline && (_alive($pid) || grep { _alive($_) } @kids)) {
        sleep 0.02;
    }
    my $graceful = 1;
    if (_alive($pid) || grep { _alive($_) } @kids) {
        $graceful = 0;
        kill 'KILL', $pid, _children_of($pid), @kids;
        sleep 0.1;
    }
    %Cur = ();
    return ($graceful, $graceful ? '' : "nginx did not exit within ${StopTimeout}s of SIGQUIT; killed\n");
}

# stop nginx; 1 if it stopped gracefully and the log has no alert/emerg/crash
sub stop_nginx {
    my (%opt) = @_;
    return 1 unless $Cur{pid};
    my ($graceful, $msg) = _stop_nginx_quiet();
    my @bad = _crash_lines(_read_file("$ServRoot/logs/error.log"));
    @bad = grep { $_ !~ $opt{ignore} } @bad if $opt{ignore};
    $LastError = $msg . join '', map { "  $_\n" } @bad;
    return ($graceful && !@bad) ? 1 : 0;
}

sub error_log_offset { -s "$ServRoot/logs/error.log" || 0 }

sub error_log_since {
    my ($offset) = @_;
    my $t = _read_file("$ServRoot/logs/error.log", $offset || 0);
    return wantarray ? ($t, ($offset || 0) + length $t) : $t;
}

# HUP the master and wait until a fresh set of workers runs and the old
# ones are gone.  Optional argument: new configuration (as start_nginx).
sub reload_nginx {
    my ($arg) = @_;
    $LastError = '';
    my $pid = $Cur{pid} or do { $LastError = 'nginx is not running'; return 0 };
    if (defined $arg) {
        my $s = _subst_sections(_sections_from($arg));
        $s->{workers} ||= 1;
        _write_file($Cur{conf}, _build_conf($s));
        $Cur{sections} = $s;
        $Cur{workers} = $s->{workers};
    }
    my %old = map { $_ => 1 } _children_of($pid);
    my $off = error_log_offset();
    kill 'HUP', $pid;
    my $deadline = time + 10;
    while (time < $deadline) {
        my $log = error_log_since($off);
        if ($log =~ /^.*\[emerg\].*$/m) {
            $LastError = "reload failed: $&";
            return 0;
        }
        my @kids = _children_of($pid);
        my @new = grep { !$old{$_} } @kids;
        my @still = grep { $old{$_} } @kids;
        return 1 if @new >= $Cur{workers} && !@still;
        unless (_alive($pid)) { $LastError = 'nginx master died during reload'; return 0 }
        sleep 0.02;
    }
    $LastError = 'reload: new workers did not replace the old ones within 10s';
    return 0;
}

# ---------------------------------------------------------------- more instances

{
    package Test::StytchTat::Instance;
    sub name      { $_[0]{name} }
    sub port      { $_[0]{port} }
    sub prefix    { $_[0]{prefix} }
    sub conf      { $_[0]{conf} }
    sub error_log { $_[0]{error_log} }
    sub pid       { $_[0]{pid} }
    sub pids {
        my ($self) = @_;
        return () unless $self->{pid};
        return ($self->{pid}, Test::StytchTat::_children_of($self->{pid}));
    }
    # the error log's text from a byte offset (list context: text, new offset)
    sub log_since {
        my ($self, $offset) = @_;
        my $t = Test::StytchTat::_read_file($self->{error_log}, $offset || 0);
        return wantarray ? ($t, ($offset || 0) + length $t) : $t;
    }
    sub log_offset { -s $_[0]{error_log} || 0 }
    # http_request to this instance
    sub request {
        my ($self, $method, $uri, $headers, $body, $opt) = @_;
        return Test::StytchTat::http_request($method, $uri, $headers, $body,
                                             { %{ $opt || {} }, port => $self->{port} });
    }
}

sub instances { return map { $Instances{$_} } sort keys %Instances }

# start_instance(name => 'n1', [port => N], sections...): one more nginx
# beside the block's, with its own server root, configuration, error log
# and port; see the POD
sub start_instance {
    my (%a) = @_;
    my $name = $a{name} // die "start_instance: name is required\n";
    $name =~ /^[A-Za-z0-9_-]+$/ or die "start_instance: bad name '$name'\n";
    die "start_instance: an instance '$name' is running already\n"
        if $Instances{$name};
    $LastError = '';
    my $port = $a{port} || free_port();
    my $sr = _topdir() . "/instances/$name";
    remove_tree($sr) if -e $sr;
    make_path("$sr/conf", "$sr/logs", "$sr/html");
    chmod 0755, _topdir() . "/instances", $sr, "$sr/conf", "$sr/logs", "$sr/html";
    for my $t (qw(client_body_temp proxy_temp fastcgi_temp uwsgi_temp scgi_temp)) {
        make_path("$sr/$t");
        chmod 0777, "$sr/$t";
    }
    my %sec;
    for my $k (qw(main_config event_config http_config config workers env nginx_conf)) {
        $sec{$k} = $a{$k} if defined $a{$k};
    }
    my $s = _subst_sections(\%sec, {
        TEST_NGINX_INSTANCE_NAME => $name,
        TEST_NGINX_INSTANCE_PORT => $port,
        TEST_NGINX_INSTANCE_PREFIX => $sr,
    });
    my $conf = "$sr/conf/nginx.conf";
    my $log = "$sr/logs/error.log";
    _write_file($conf, _build_conf($s, $sr, $port));
    my $out = "$sr/logs/startup.out";
    my $rc = _run_cmd([_binary(), '-p', "$sr/", '-c', $conf, '-e', $log],
                      $s->{env}, $out, 30);
    if ($rc != 0) {
        $LastError = "instance $name: nginx failed to start (exit " . ($rc >> 8) . "):\n"
            . _read_file($out) . _interesting_lines(_read_file($log));
        return undef;
    }
    my $workers = $s->{workers} || 1;
    my $deadline = time + 10;
    my $pid;
    while (time < $deadline) {
        my $t = _read_file("$sr/logs/nginx.pid");
        if ($t =~ /^(\d+)\s*$/ && _alive($1)) { $pid = $1; last }
        sleep 0.02;
    }
    unless ($pid) {
        $LastError = "instance $name: nginx pid file did not appear:\n"
            . _read_file($out) . _interesting_lines(_read_file($log));
        return undef;
    }
    my $inst = bless { name => $name, port => $port, prefix => $sr,
                       conf => $conf, error_log => $log, pid => $pid,
                       workers => $workers }, 'Test::StytchTat::Instance';
    $Instances{$name} = $inst;
    while (time < $deadline && _children_of($pid) < $workers) {
        unless (_alive($pid)) {
            $LastError = "instance $name: nginx master exited during startup:\n"
                . _interesting_lines(_read_file($log));
            delete $Instances{$name};
            return undef;
        }
        sleep 0.02;
    }
    if (_children_of($pid) < $workers) {
        $LastError = "instance $name: nginx workers did not start within 10s";
        _stop_instance_quiet($inst);
        return undef;
    }
    return $inst;
}

sub _stop_instance_quiet {
    my ($inst) = @_;
    my $pid = $inst->{pid} or return (1, '');
    my @kids = _children_of($pid);
    kill 'QUIT', $pid;
    my $deadline = time + $StopTimeout;
    while (time < $deadline && (_alive($pid) || grep { _alive($_) } @kids)) {
        sleep 0.02;
    }
    my $graceful = 1;
    if (_alive($pid) || grep { _alive($_) } @kids) {
        $graceful = 0;
        kill 'KILL', $pid, _children_of($pid), @kids;
        sleep 0.1;
    }
    $inst->{pid} = undef;
    delete $Instances{ $inst->{name} };
    return ($graceful, $graceful ? ''
        : "instance $inst->{name}: nginx did not exit within ${StopTimeout}s of SIGQUIT; killed\n");
}

# stop an instance (object or name); 1 if it stopped gracefully and its
# error log has no [alert], [emerg] or crash (lines matching ignore pass)
sub stop_instance {
    my ($inst, %opt) = @_;
    $inst = $Instances{$inst} unless ref $inst;
    return 1 unless $inst && $inst->{pid};
    my ($graceful, $msg) = _stop_instance_quiet($inst);
    my @bad = _crash_lines(_read_file($inst->{error_log}));
    @bad = grep { $_ !~ $opt{ignore} } @bad if $opt{ignore};
    $LastError = $msg . join '', map { "  $inst->{name}: $_\n" } @bad;
    return ($graceful && !@bad) ? 1 : 0;
}

# stop every instance; 1 if all were clean (last_error() says which not)
sub stop_instances {
    my (%opt) = @_;
    my ($ok, $err) = (1, '');
    for my $inst (instances()) {
        next if stop_instance($inst, %opt);
        $ok = 0;
        $err .= $LastError;
    }
    $LastError = $err;
    return $ok;
}

# ---------------------------------------------------------------- HTTP client

sub _header_pairs {
    my ($h) = @_;
    return [] unless defined $h;
    return [@$h] if ref $h eq 'ARRAY';
    return [map { ($_ => $h->{$_}) } sort keys %$h] if ref $h eq 'HASH';
    my @p;
    for my $line (split /\n/, $h) {
        next unless $line =~ /\S/;
        $line =~ /^\s*([^:\s]+)\s*:\s?(.*?)\s*$/
            or die "Test::StytchTat: bad header line '$line'\n";
        push @p, $1, $2;
    }
    return \@p;
}

sub _build_request {
    my ($method, $uri, $headers, $body, $version) = @_;
    $version ||= 'HTTP/1.1';
    my @p = @{ _header_pairs($headers) };
    my %have;
    for (my $i = 0; $i < @p; $i += 2) { $have{lc $p[$i]} = 1 }
    my $req = "$method $uri $version\r\n";
    $req .= "Host: localhost\r\n" unless $have{host};
    $req .= "Connection: close\r\n" unless $have{connection};
    for (my $i = 0; $i < @p; $i += 2) { $req .= "$p[$i]: $p[$i+1]\r\n" }
    if (!$have{'content-length'} && !$have{'transfer-encoding'}
        && (defined $body || $method =~ /^(?:POST|PUT|PATCH)$/))
    {
        $req .= "Content-Length: " . length(defined $body ? $body : '') . "\r\n";
    }
    $req .= "\r\n";
    $req .= $body if defined $body;
    return $req;
}

# "METHOD /uri [HTTP/1.x]\nbody" -> (method, uri, version, body)
sub _parse_request_line {
    my ($text) = @_;
    my ($first, $rest) = split /\n/, $text, 2;
    $first =~ s/\r$//;
    $first =~ /^\s*(\S+)\s+(\S+)(?:\s+(HTTP\/\d\.\d))?\s*$/
        or die "Test::StytchTat: bad request line '$first' (want 'METHOD /uri [HTTP/1.x]')\n";
    my ($m, $u, $v) = ($1, $2, $3);
    my $body;
    if (defined $rest && length $rest) {
        $rest =~ s/\n\z//;
        $body = $rest;
    }
    return ($m, $u, $v, $body);
}

sub _decode_chunked {
    my ($data) = @_;
    my $out = '';
    my $pos = 0;
    while (1) {
        my $eol = index($data, "\n", $pos);
        return ($out, 0) if $eol < 0;
        my $line = substr($data, $pos, $eol - $pos);
        $line =~ /^\s*([0-9a-fA-F]+)/ or return ($out, 0, 'bad chunk size line');
        my $size = hex $1;
        $pos = $eol + 1;
        if ($size == 0) {
            # trailers until an empty line
            while (1) {
                my $e = index($data, "\n", $pos);
                return ($out, 0) if $e < 0;
                my $l = substr($data, $pos, $e - $pos);
                $pos = $e + 1;
                return ($out, 1) if $l =~ /^\r?$/;
            }
        }
        return ($out, 0) if length($data) < $pos + $size + 2;
        $out .= substr($data, $pos, $size);
        $pos += $size;
        $pos += substr($data, $pos, 2) eq "\r\n" ? 2 : 1;
    }
}

# parse a raw response; returns hashref {status, headers, pairs, body, complete}
sub _parse_response {
    my ($raw, $method) = @_;
    my %r = (status => undef, headers => {}, pairs => [], body => '', complete => 0);
    my $pos = 0;
    my ($head, $body);
    while (1) {
        my $i = index($raw, "\r\n\r\n", $pos);
        my $j = index($raw, "\n\n", $pos);
        my ($end, $sep) = $i >= 0 && ($j < 0 || $i < $j) ? ($i, 4) : ($j, 2);
        return \%r if $end < 0;
        $head = substr($raw, $pos, $end - $pos);
        $body = substr($raw, $end + $sep);
        last unless $head =~ /^HTTP\/\d\.\d\s+1\d\d\b/;    # skip 1xx
        $pos = $end + $sep;
    }
    my @lines = split /\r?\n/, $head;
    my $sl = shift @lines;
    $sl =~ /^HTTP\/\d\.\d\s+(\d{3})/ or do { $r{error} = "bad status line '$sl'"; return \%r };
    $r{status} = $1;
    for my $l (@lines) {
        next unless $l =~ /^([^:]+?)\s*:\s*(.*?)\s*$/;
        push @{ $r{pairs} }, $1, $2;
        my $k = lc $1;
        $r{headers}{$k} = exists $r{headers}{$k} ? "$r{headers}{$k}, $2" : $2;
    }
    my $h = $r{headers};
    if (($method || '') eq 'HEAD' || $r{status} == 204 || $r{status} == 304) {
        $r{complete} = 1;
    } elsif (($h->{'transfer-encoding'} || '') =~ /chunked/i) {
        my ($dec, $done, $err) = _decode_chunked($body);
        $body = $dec;
        $r{complete} = $done;
        $r{error} = $err if $err;
    } elsif (defined $h->{'content-length'} && $h->{'content-length'} =~ /^\d+$/) {
        $r{complete} = 1 if length($body) >= $h->{'content-length'};
    }
    $r{body} = $body;
    return \%r;
}

# send N raw requests on N connections at once, read all responses
sub _exchange_many {
    my ($raws, $opt) = @_;
    $opt ||= {};
    my $timeout = $opt->{timeout} || $DefaultTimeout;
    my $host = $opt->{host} || '127.0.0.1';
    my $port = $opt->{port} || $Port;
    my $deadline = time + $timeout;
    my @c;
    for my $i (0 .. $#$raws) {
        my $r = $raws->[$i];
        my ($method) = (ref $r ? $r->[0] : $r) =~ /^(\S+)/;
        my $c = { pieces => [ref $r ? @$r : $r], out => '', in => '', method => $method,
                  done => 0 };
        $c->{out} = shift @{ $c->{pieces} };
        my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port,
                                         Proto => 'tcp', Timeout => $timeout);
        if (!$sock) { $c->{error} = "connect to $host:$port failed: $@"; $c->{done} = 1 }
        else { $sock->blocking(0); $c->{sock} = $sock }
        push @c, $c;
    }
    while (1) {
        my @open = grep { !$_->{done} } @c;
        last unless @open;
        my $left = $deadline - time;
        if ($left <= 0) {
            for (@open) { $_->{error} = "timeout after ${timeout}s"; $_->{done} = 1 }
            last;
        }
        for (@open) {
            next if length $_->{out} || !@{ $_->{pieces} };
            sleep 0.05;    # pause between pieces of a raw request
            $_->{out} = shift @{ $_->{pieces} };
        }
        my ($rin, $win) = ('', '');
        for (@open) {
            my $fn = fileno $_->{sock};
            vec($rin, $fn, 1) = 1;
            vec($win, $fn, 1) = 1 if length $_->{out};
        }
        my ($rout, $wout) = ($rin, $win);
        my $n = select($rout, $wout, undef, $left);
        if ($n < 0) { next if $! == EINTR; die "select: $!" }
        for my $c (@open) {
            my $fn = fileno $c->{sock};
            if (length $c->{out} && defined $wout && vec($wout, $fn, 1)) {
                my $w = syswrite($c->{sock}, $c->{out});
                if (defined $w) { substr($c->{out}, 0, $w) = '' }
                elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    $c->{write_error} = "write: $!";
                    $c->{out} = ''; $c->{pieces} = [];
                }
            }
            if (vec($rout, $fn, 1)) {
                my $buf;
                my $r = sysread($c->{sock}, $buf, 65536);
                if (defined $r && $r > 0) {
                    $c->{in} .= $buf;
                    my $p = _parse_response($c->{in}, $c->{method});
                    $c->{done} = 1 if $p->{complete} && !length $c->{out} && !@{ $c->{pieces} };
                } elsif (defined $r) {
                    $c->{done} = 1;    # EOF
                } elsif ($! != EAGAIN && $! != EWOULDBLOCK && $! != EINTR) {
                    $c->{read_error} = "read: $!";
                    $c->{done} = 1;
                }
            }
        }
    }
    my @res;
    for my $c (@c) {
        close $c->{sock} if $c->{sock};
        my $p = _parse_response($c->{in}, $c->{method});
        my $err = $c->{error} || $p->{error} || $c->{read_error};
        $err ||= 'empty response' unless length $c->{in};
        $err ||= 'incomplete response headers' unless defined $p->{status};
        push @res, { status => $p->{status}, headers => $p->{headers}, pairs => $p->{pairs},
                     body => $p->{body}, raw => $c->{in}, error => $err,
                     complete => $p->{complete} };
    }
    return @res;
}

sub http_request {
    my ($method, $uri, $headers, $body, $opt) = @_;
    $opt ||= {};
    my $raw = _build_request($method, $uri, $headers, $body, $opt->{version});
    my ($r) = _exchange_many([$raw], $opt);
    $LastError = $r->{error} || '';
    return ($r->{status}, $r->{headers}, $r->{body}, $r->{pairs});
}

sub _request_raw_from_spec {
    my ($req, $extra_headers, $body_override) = @_;
    if (ref $req eq 'ARRAY') {
        my ($m, $u, $h, $b) = @$req;
        return _build_request($m, $u, $h, $b);
    }
    if (ref $req eq 'HASH') {
        return _build_request($req->{method} || 'GET', $req->{uri}, $req->{headers},
                              $req->{body}, $req->{version});
    }
    my ($m, $u, $v, $b) = _parse_request_line($req);
    $b = $body_override if defined $body_override;
    return _build_request($m, $u, $extra_headers, $b, $v);
}

sub concurrent_requests {
    my ($n, $req, $opt) = @_;
    $opt ||= {};
    my $raw = _request_raw_from_spec(ref $req ? $req : subst_vars($req));
    $opt->{timeout} ||= 30;
    return _exchange_many([($raw) x $n], $opt);
}

# ---------------------------------------------------------------- node

sub run_node {
    my ($script, @args) = @_;
    my $opt = (@args && ref $args[-1] eq 'HASH') ? pop @args : {};
    my $node = $ENV{TEST_NGINX_NODE} || 'node';
    if ($script !~ m{^/} && $script !~ /^-/ && !-e $script && -e repo_root() . "/$script") {
        $script = repo_root() . "/$script";
    }
    my $base = _topdir() . "/node-$$-" . int(rand(1e9));
    _write_file("$base.in", defined $opt->{stdin} ? $opt->{stdin} : '');
    my $pid = fork;
    die "fork: $!" unless defined $pid;
    if (!$pid) {
        %ENV = (%ENV, %{ $opt->{env} || {} });
        open STDIN, '<', "$base.in" or POSIX::_exit(126);
        open STDOUT, '>', "$base.out" or POSIX::_exit(126);
        open STDERR, '>', "$base.err" or POSIX::_exit(126);
        exec { $node } $node, $script, @args or POSIX::_exit(127);
    }
    my $deadline = time + ($opt->{timeout} || 60);
    my $rc;
    while (1) {
        if (waitpid($pid, WNOHANG) == $pid) {
            $rc = $? & 127 ? 128 + ($? & 127) : $? >> 8;
            last;
        }
        if (time > $deadline) {
            kill 'KILL', $pid;
            waitpid($pid, 0);
            $rc = -1;
            last;
        }
        sleep 0.01;
    }
    my ($out, $err) = (_read_file("$base.out"), _read_file("$base.err"));
    unlink "$base.in", "$base.out", "$base.err";
    $err .= "run_node: timeout\n" if $rc == -1;
    return ($rc, $out, $err) if wantarray;
    return 1 if $rc == 0;
    die "node $script exited with $rc\n--- stdout:\n$out\n--- stderr:\n$err\n";
}

# ---------------------------------------------------------------- data-driven runner

sub run_tests {
    $RunTestsCalled = 1;
    for my $block (blocks()) {
        _run_block($block);
    }
}

sub _list_value {
    my ($v) = @_;
    return () unless defined $v;
    return map { ref $_ eq 'Regexp' ? $_ : grep { /\S/ } map { s/^\s+|\s+$//gr } split /\n/, $_ }
        ref $v eq 'ARRAY' ? @$v : ($v);
}

sub _per_req {
    my ($v, $i) = @_;
    return ref $v eq 'ARRAY' ? $v->[$i] : $v;
}

sub _check_log {
    my ($name, $block, $text, $where, $env) = @_;
    my @lines = split /\n/, $text;
    for my $sec (qw(error_log no_error_log)) {
        next unless $block->has($sec);
        my $want = $sec eq 'error_log';
        for my $pat (_list_value($block->get($sec))) {
            my ($hit, $label);
            if (ref $pat eq 'Regexp') {
                ($hit) = grep { $_ =~ $pat } @lines;
                $label = "$pat";
            } else {
                my $s = subst_vars($pat, $env);
                ($hit) = grep { index($_, $s) >= 0 } @lines;
                $label = $s;
            }
            my $ok = $want ? defined $hit : !defined $hit;
            my $tname = $want ? "$name - pattern \"$label\" matches a line in $where"
                              : "$name - pattern \"$label\" should not match any line in $where";
            ok($ok, $tname) or do {
                if ($want) { diag("  $where (non-debug lines):\n" . _interesting_lines($text, 30)) }
                else { diag("  matched: $hit") }
            };
        }
    }
}

# ">>> path\ncontent" chunks, written below the html dir
sub _write_user_files {
    my ($spec, $env) = @_;
    my @files = ref $spec eq 'ARRAY' ? @$spec
        : map { /\A(\S+)[ \t]*\n(.*)\z/s ? [$1, $2] : () } split /^>>> /m, $spec;
    for my $f (@files) {
        my ($path, $content) = @$f;
        die "Test::StytchTat: bad user_files path '$path'\n" if $path =~ m{(?:^|/)\.\.(?:/|$)|^/};
        my $full = "$HtmlDir/$path";
        make_path(dirname($full));
        _write_file($full, subst_vars($content, $env));
        chmod 0644, $full;
    }
}

sub _run_block {
    my ($block) = @_;
    my $name = $block->name;
    local $CurBlock = $name;

    if ($block->has('skip_eval')) {
        my $se = $block->get('skip_eval');
        my $count = 1;
        if (!ref $se && $se =~ s/^\s*(\d+)\s*:\s*//) { $count = $1 }
        my $skip = ref $se eq 'CODE' ? $se->($block) : ref $se ? $se : _eval_code($se, "$name --- skip_eval");
        if ($skip) {
            SKIP: { skip("$name - skip_eval", $count) }
            return;
        }
    }

    my %s;
    for my $k (qw(main_config event_config http_config config workers env)) {
        $s{$k} = $block->get($k) if $block->has($k);
    }
    _subst_sections(\%s);
    my $env = $s{env};

    if ($block->has('must_die')) {
        _prepare_servroot();
        my $conf = "$ServRoot/conf/nginx.conf";
        _write_file($conf, _build_conf(\%s));
        my $out = "$ServRoot/logs/nginx-t.out";
        my $rc = _run_cmd([_binary(), '-t', '-p', "$ServRoot/", '-c', $conf], $env, $out, 30);
        my $text = _read_file($out);
        ok($rc != 0, "$name - nginx -t fails") or diag("nginx -t output:\n$text");
        _check_log($name, $block, $text, 'nginx -t output', $env);
        return;
    }

    my $timeout = $block->get('timeout');
    $timeout = $DefaultTimeout unless defined $timeout && $timeout =~ /^\d+(?:\.\d+)?$/;

    # build requests before starting nginx (dies early on spec errors)
    my @raws;
    if ($block->has('raw_request')) {
        my $r = $block->get('raw_request');
        push @raws, ref $r eq 'ARRAY' ? [map { subst_vars($_, $env) } @$r] : subst_vars($r, $env);
    } elsif ($block->has('request')) {
        my $r = $block->get('request');
        my @reqs = ref $r eq 'ARRAY' ? @$r : ($r);
        my $mh = $block->get('more_headers');
        my $rb = $block->get('request_body');
        for my $i (0 .. $#reqs) {
            my $h = _per_req($mh, $i);
            $h = subst_vars($h, $env) if defined $h && !ref $h;
            my $b = _per_req($rb, $i);
            if (defined $b && !$block->{sections}{request_body}{inline}
                && !grep { $_ eq 'eval' } @{ $block->{sections}{request_body}{filters} }) {
                $b =~ s/\n\z//;
            }
            push @raws, _request_raw_from_spec(subst_vars($reqs[$i], $env), $h,
                                               defined $b ? subst_vars($b, $env) : undef);
        }
    }

    _prepare_servroot();
    _write_user_files($block->get('user_files'), $env) if $block->has('user_files');
    unless (_start(\%s)) {
        fail("$name - nginx started");
        diag($LastError);
        _stop_nginx_quiet() if $Cur{pid};
        return;
    }

    my @res;
    for my $raw (@raws) {
        push @res, _exchange_many([$raw], { timeout => $timeout });
    }

    my $multi = @res > 1;
    for my $i (0 .. $#res) {
        my $r = $res[$i];
        my $sfx = $multi ? " (req " . ($i + 1) . ")" : '';
        my $diag_raw = sub {
            my $raw = $r->{raw};
            $raw = substr($raw, 0, 2000) . "..." if length $raw > 2000;
            diag("  error: " . ($r->{error} || 'none') . "\n  raw response: " .
                 (length $raw ? $raw : '(none)'));
        };

        if ($block->has('error_code')) {
            my $want = _per_req($block->get('error_code'), $i);
            $want =~ s/^\s+|\s+$//g if defined $want;
            is($r->{status}, $want, "$name - status code ok$sfx") or $diag_raw->();
        }
        if ($block->has('response_headers')) {
            for my $line (_list_value(_per_req($block->get('response_headers'), $i))) {
                my $l = subst_vars($line, $env);
                if ($l =~ /^!\s*(\S+?)\s*:?\s*$/) {
                    my $h = $1;
                    ok(!exists $r->{headers}{lc $h}, "$name - header $h absent$sfx")
                        or diag("  $h: $r->{headers}{lc $h}");
                } elsif ($l =~ /^([^:\s]+)\s*:\s?(.*)$/) {
                    my ($h, $v) = ($1, $2);
                    $v =~ s/\s+$//;
                    is($r->{headers}{lc $h}, $v, "$name - header $h ok$sfx") or $diag_raw->();
                } else {
                    die "Test::StytchTat: $name: bad response_headers line '$l'\n";
                }
            }
        }
        if ($block->has('response_headers_like')) {
            for my $line (_list_value(_per_req($block->get('response_headers_like'), $i))) {
                $line =~ /^([^:\s]+)\s*:\s?(.*)$/
                    or die "Test::StytchTat: $name: bad response_headers_like line '$line'\n";
                my ($h, $re) = ($1, $2);
                my $v = $r->{headers}{lc $h};
                ok(defined $v && $v =~ /$re/, "$name - header $h like$sfx")
                    or diag("  $h: " . (defined $v ? $v : '(absent)') . "\n  expected like: $re");
            }
        }
        if ($block->has('response_body')) {
            my $want = _per_req($block->get('response_body'), $i);
            $want = subst_vars($want, $env);
            is($r->{body}, $want, "$name - response_body - response is expected$sfx")
                or ($r->{error} && diag("  error: $r->{error}"));
        }
        for my $sec (qw(response_body_like response_body_unlike)) {
            next unless $block->has($sec);
            my $pat = _per_req($block->get($sec), $i);
            my $sv = $block->{sections}{$sec};
            $pat =~ s/\n\z// if !ref $pat && !$sv->{inline};
            my $re = ref $pat eq 'Regexp' ? $pat : qr/$pat/s;
            my $body = defined $r->{body} ? $r->{body} : '';
            if ($sec eq 'response_body_like') {
                like($body, $re, "$name - $sec - response is expected$sfx")
                    or ($r->{error} && diag("  error: $r->{error}"));
            } else {
                unlike($body, $re, "$name - $sec - response is expected$sfx");
            }
        }
        if ($block->has('response_body_check')) {
            my $code = _per_req($block->get('response_body_check'), $i);
            die "Test::StytchTat: $name: response_body_check must be a code ref (use 'eval')\n"
                unless ref $code eq 'CODE';
            my $ok = eval {
                scalar $code->($r->{body}, $r->{headers}, $block, $r->{status}, $i);
            };
            my $err = $@;
            ok($ok && !$err, "$name - response_body_check$sfx")
                or diag($err ? "  died: $err" : "  check returned false; status: "
                        . (defined $r->{status} ? $r->{status} : 'none'));
        }
    }

    # stop first so that everything (incl. shutdown) is in the log
    my ($graceful, $stopmsg) = _stop_nginx_quiet();
    my $log = _read_file("$ServRoot/logs/error.log");

    _check_log($name, $block, $log, 'error.log', $env);

    unless ($block->has('crash_ok')) {
        my @bad = _crash_lines($log);
        ok($graceful && !@bad, "$name - no [alert], [emerg] or crash in error.log")
            or diag($stopmsg . join '', map { "  $_\n" } @bad);
    }
}

1;
