package Test::StytchTat::Util;

# Helpers shared by the module's tests: JWT decoding, the emulator's control
# API, and verification with npm's jose (t/tools/verify-jwt.mjs).

use strict;
use warnings;

use Exporter 'import';
use JSON::PP ();
use MIME::Base64 qw(decode_base64url);
use IO::Socket::INET;

use Test::StytchTat qw(run_node repo_root);

our @EXPORT = qw(jwt_parts emu emu_calls verify_jwt json_decode json_encode
                 keys_dir emu_dir emu_counts forge_jwt forge_jwts);

my $Json = JSON::PP->new->utf8->canonical->allow_nonref;

sub json_decode { $Json->decode($_[0]) }
sub json_encode { $Json->encode($_[0]) }

sub keys_dir { $ENV{TEST_NGINX_KEYS} }

# (header, payload, signature bytes) of a compact JWS, or () if malformed
sub jwt_parts {
    my ($jwt) = @_;
    my @p = split /\./, $jwt // '', -1;
    return () unless @p == 3;
    my ($h, $c) = eval {
        ($Json->decode(decode_base64url($p[0])),
         $Json->decode(decode_base64url($p[1])))
    };
    return () unless $h;
    return ($h, $c, decode_base64url($p[2]));
}

# a call to the emulator's control API: returns the decoded JSON answer
sub emu {
    my ($method, $path, $body) = @_;
    my $port = $ENV{TEST_NGINX_STYTCH_CONTROL}
        or die "TEST_NGINX_STYTCH_CONTROL is not set: run the tests with "
             . "scripts/test.sh (make test)\n";
    my $s = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $port,
                                  Timeout => 5)
        or die "emulator control port $port: $!\n";
    my $data = defined $body ? $Json->encode($body) : '';
    print $s "$method $path HTTP/1.1\r\nHost: localhost\r\n"
           . "Connection: close\r\nContent-Type: application/json\r\n"
           . "Content-Length: " . length($data) . "\r\n\r\n$data";
    local $/;
    my $resp = <$s>;
    my ($head, $payload) = split /\r\n\r\n/, $resp // '', 2;
    die "emulator control: no answer to $method $path\n" unless defined $head;
    my ($status) = $head =~ m{^HTTP/1\.\d (\d+)};
    die "emulator control: $method $path: $status $payload\n"
        unless $status && $status < 300;
    return length($payload // '') ? $Json->decode($payload) : {};
}

# the emulator's call log for a path (default: the consumer attest)
sub emu_calls {
    my ($path) = @_;
    $path //= '/v1/sessions/attest';
    return @{ emu(GET => "/calls?path=$path")->{calls} };
}

# verifies a JWT with jose; returns the decoded {header, payload}, dies with
# jose's reason otherwise
sub verify_jwt {
    my ($jwt, %o) = @_;
    my @args = ('--jwks', $o{jwks});
    push @args, '--iss', $o{iss} if $o{iss};
    push @args, '--aud', $o{aud} if $o{aud};
    push @args, '--alg', $o{alg} if $o{alg};
    push @args, '--sub', $o{sub} if $o{sub};
    push @args, '--now', int($o{now}) if defined $o{now};
    push @args, '--clock-tolerance', $o{clock_tolerance}
        if defined $o{clock_tolerance};
    # the emulator's JWKS is served over TLS by a CA of its own
    my %env = $ENV{TEST_NGINX_STYTCH_CA}
              ? (NODE_EXTRA_CA_CERTS => $ENV{TEST_NGINX_STYTCH_CA}) : ();
    my ($rc, $out, $err) = run_node(repo_root() . '/t/tools/verify-jwt.mjs',
                                    @args, $jwt, { env => \%env });
    die "jose rejected the token: $err$out\n" if $rc != 0;
    return $Json->decode($out);
}

# the emulator's working directory (DIR/project-key.json holds the key
# that signs its session JWTs); scripts/test.sh exports it
sub emu_dir {
    return $ENV{TEST_NGINX_STYTCH_DIR} if $ENV{TEST_NGINX_STYTCH_DIR};
    my $ca = $ENV{TEST_NGINX_STYTCH_CA}
        or die "TEST_NGINX_STYTCH_DIR is not set: run the tests with "
             . "scripts/test.sh (make test)\n";
    (my $dir = $ca) =~ s{/[^/]+\z}{};
    return $dir;
}

# the emulator's calls per route ("METHOD PATH") since a mark:
#   my $mark = emu_counts();  ...;  my $c = emu_counts($mark);
#   $c->get('POST /v1/sessions/attest')   # calls since $mark (0 if none)
sub emu_counts {
    my ($since) = @_;
    my $seq = ref $since ? $since->{_seq} : ($since // 0);
    my $r = emu(GET => "/call_counts?since=$seq");
    my %c = (_seq => $r->{last_seq});
    $c{$_} = $r->{counts}{$_}{total} for keys %{ $r->{counts} };
    return bless \%c, 'Test::StytchTat::Util::Counts';
}

{
    package Test::StytchTat::Util::Counts;
    sub get { $_[0]{$_[1]} // 0 }
}

# tokens from t/tools/forge-jwt.mjs, signed (where a kind needs it) with
# the emulator's project key: forge_jwt(KIND, %opts) returns one token,
# forge_jwts(%opts) a hash of every kind (and "claims" of "valid").
# opts: project (default the tests' project id), sub, session_id, claims
# (hash ref), now, lifetime, kid, other_sub, binding, key (a key file),
# jwks (a JWKS file or URL instead of the key)
sub _forge_args {
    my (%o) = @_;
    my @args;
    if ($o{jwks}) { push @args, '--jwks', $o{jwks} }
    else { push @args, '--key', $o{key} // emu_dir() . '/project-key.json' }
    push @args, '--project',
        $o{project} // 'project-test-00000000-0000-0000-0000-000000000000';
    my %flag = (sub => '--sub', session_id => '--session-id', now => '--now',
                lifetime => '--lifetime', kid => '--kid',
                other_sub => '--other-sub', binding => '--binding');
    for my $k (sort keys %flag) {
        push @args, $flag{$k}, $o{$k} if defined $o{$k};
    }
    push @args, '--claims', $Json->encode($o{claims}) if $o{claims};
    return @args;
}

sub _forge {
    my (@args) = @_;
    my %env = $ENV{TEST_NGINX_STYTCH_CA}
              ? (NODE_EXTRA_CA_CERTS => $ENV{TEST_NGINX_STYTCH_CA}) : ();
    my ($rc, $out, $err) = run_node(repo_root() . '/t/tools/forge-jwt.mjs',
                                    @args, { env => \%env });
    die "forge-jwt.mjs failed ($rc): $err$out\n" if $rc != 0;
    chomp $out;
    return $out;
}

sub forge_jwt {
    my ($kind, %o) = @_;
    return _forge(_forge_args(%o), '--kind', $kind) unless $o{count};
    # count => N: a list of N tokens (each its own random kid, sub ...)
    return split /\n/, _forge(_forge_args(%o), '--kind', $kind, '--count', $o{count});
}

sub forge_jwts {
    my (%o) = @_;
    return $Json->decode(_forge(_forge_args(%o), '--all'));
}

1;
