# A client's request body goes to the upstream, untouched by the exchange,
# and never to Stytch; the same for the client's headers and cookies.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;
use Test::StytchTat::Exchange;
use IO::Socket::INET;
use POSIX ();

# a one-connection-at-a-time echo upstream: answers with what it was sent
my $echo_port = free_port();
my $listen = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $echo_port,
                                   Listen => 16, ReuseAddr => 1)
    or die "echo: $!";
my $echo = fork // die "fork: $!";
if ($echo == 0) {
    while (my $c = $listen->accept) {
        my $head = '';
        while ($head !~ /\r\n\r\n/) {
            my $n = sysread($c, $head, 4096, length $head) or last;
        }
        my ($hdr, $body) = split /\r\n\r\n/, $head, 2;
        $body //= '';
        my ($len) = $hdr =~ /^Content-Length:\s*(\d+)/mi;
        while (defined $len && length($body) < $len) {
            sysread($c, $body, $len - length $body, length $body) or last;
        }
        my $out = "$hdr\r\n\r\n$body";
        print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($out)
               . "\r\nConnection: close\r\n\r\n$out";
        close $c;
    }
    POSIX::_exit(0);
}
END { kill 'TERM', $echo if $echo; }

emu_setup();

my $config = $ServerConfig . <<"_EOC_";
location /app {
    stytch_tat /_stytch_attest;
    stytch_tat_email \$http_x_email;
    proxy_pass http://127.0.0.1:$echo_port;
}
_EOC_

ok(start_nginx({ http_config => $HttpConfig, config => $config }), 'nginx starts')
    or BAIL_OUT(last_error());

emu(DELETE => '/calls');
my $payload = join '', map { chr(32 + $_ % 90) } 1 .. 100_000;
my ($st, undef, $body) = http_request('POST', '/app/upload', {
    'X-Email' => 'uploader@example.com',
    'Content-Type' => 'application/octet-stream',
    'Cookie' => 'app_session=client-cookie-value',
    'X-Client-Header' => 'client-value',
}, $payload);

is($st, 200, 'a POST with a 100 KB body through the exchange');
my ($hdr, $got) = split /\r\n\r\n/, $body, 2;
is(length($got // ''), length $payload, 'the upstream got the whole body');
ok(($got // '') eq $payload, '... byte for byte');
like($hdr, qr{^POST /app/upload HTTP/1\.[01]}, 'the upstream got the method and URI');
like($hdr, qr/^X-Stytch-Session-Jwt: ey/mi, 'and the session');
like($hdr, qr/^Cookie: app_session=client-cookie-value/mi, "and the client's cookie");

my ($call) = emu_calls();
ok($call, 'one attest call');
is(ref $call->{body}, 'HASH', "Stytch got the module's JSON, not the client's body");
ok(!grep({ /cookie|x-client-header|x-email/ } keys %{ $call->{headers} }),
   "no client header or cookie reached Stytch");
unlike(json_encode($call), qr/client-cookie-value|client-value/,
       "nothing of the client's request anywhere in the call");
cmp_ok($call->{headers}{'content-length'}, '<', 4096,
       'the attest body is the small JSON document');

ok(stop_nginx(), 'nginx stops cleanly');

done_testing();
