# stytch_tat_cache may name a zone declared further on in the file, as
# limit_req zone= can; nginx -t still refuses a zone declared nowhere,
# naming it and the line that wants it.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;

# two requests for the same identity share one token through the zone
sub shared_token {
    my ($zone) = @_;
    return sub {
        my ($body, $h, $block, $status, $i) = @_;
        our @tokens;
        if ($i < 2) {
            chomp $body;
            die "not a JWT: $body\n" unless jwt_parts($body);
            $tokens[$i] = $body;
            return 1;
        }
        die "two tokens for one identity\n" unless $tokens[0] eq $tokens[1];
        my $z = json_decode($body)->{zones}{$zone}
            or die "no zone \"$zone\" in the status\n";
        die "jwt_misses $z->{jwt_misses}, jwt_hits $z->{jwt_hits}\n"
            unless $z->{jwt_misses} == 1 && $z->{jwt_hits} == 1;
        return 1;
    };
}

# a reload keeps a zone declared after its use, and what it holds
my $http = <<'_EOC_';
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_cache later;
stytch_tat_zone zone=later:1m;
_EOC_
my $config = <<'_EOC_';
location = /t {
    stytch_tat_email $http_x_email;
    return 200 "$stytch_tat_jwt\n";
}
_EOC_

ok(start_nginx({ http_config => $http, config => $config }),
   'nginx with a zone declared after its use') or BAIL_OUT(last_error());
my ($st1, undef, $t1) = http_request('GET', '/t', { 'X-Email' => 'reload@example.com' });
ok(reload_nginx(), 'reload') or diag(last_error());
my ($st2, undef, $t2) = http_request('GET', '/t', { 'X-Email' => 'reload@example.com' });
is("$st1 $st2", '200 200', 'tokens before and after the reload');
ok(length($t1) > 100 && $t1 eq $t2, '... the same one, kept in the zone');
ok(stop_nginx(), 'nginx stops cleanly');

run_tests();

__DATA__

=== TEST 1: a zone declared after the stytch_tat_cache that uses it
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
stytch_tat_cache later;
stytch_tat_zone zone=later:1m;
--- config
location = /t {
    stytch_tat_email $http_x_email;
    return 200 "$stytch_tat_jwt\n";
}
location = /status { stytch_tat_status; }
--- request eval
["GET /t", "GET /t", "GET /status"]
--- more_headers
X-Email: later@example.com
--- error_code: 200
--- response_body_check eval
main::shared_token('later')



=== TEST 2: a zone declared after the server and location that use it
--- http_config
stytch_tat_signing_key $TEST_NGINX_KEYS/rsa.pem;
stytch_tat_issuer https://auth.example.com;
stytch_tat_audience https://api.example.com;
server {
    listen 127.0.0.1:$TEST_NGINX_SERVER_PORT;
    server_name early.example.com;
    location = /t {
        stytch_tat_cache last;
        stytch_tat_email $http_x_email;
        return 200 "$stytch_tat_jwt\n";
    }
}
stytch_tat_zone zone=first:1m;
stytch_tat_zone zone=last:1m;
--- config
location = /status { stytch_tat_status; }
--- request eval
["GET /t", "GET /t", "GET /status"]
--- more_headers eval
["Host: early.example.com\nX-Email: early\@example.com",
 "Host: early.example.com\nX-Email: early\@example.com",
 ""]
--- error_code: 200
--- response_body_check eval
main::shared_token('last')



=== TEST 3: a zone declared nowhere
--- http_config
stytch_tat_cache nowhere;
--- must_die
--- error_log eval
qr/unknown zone "nowhere": declare it with "stytch_tat_zone zone=nowhere:SIZE;" before in .*nginx\.conf:\d+/



=== TEST 4: a zone declared nowhere, named in a location
--- http_config
stytch_tat_zone zone=somewhere:1m;
--- config
location / { stytch_tat_cache somewhere; }
location /x { stytch_tat_cache elsewhere; }
--- must_die
--- error_log eval
qr/unknown zone "elsewhere": declare it with "stytch_tat_zone zone=elsewhere:SIZE;" before in .*nginx\.conf:\d+/



=== TEST 5: named first, then declared twice
--- http_config
stytch_tat_cache twice;
stytch_tat_zone zone=twice:1m;
stytch_tat_zone zone=twice:2m;
--- must_die
--- error_log eval
qr/duplicate zone "twice" in .*nginx\.conf:\d+/



=== TEST 6: named first, then declared too small
--- http_config
stytch_tat_cache small;
stytch_tat_zone zone=small:8k;
--- must_die
--- error_log eval
qr/zone "small" is too small, at least 32k in .*nginx\.conf:\d+/



=== TEST 7: a zone of another module's name
--- http_config
stytch_tat_cache shared;
limit_req_zone $binary_remote_addr zone=shared:1m rate=1r/s;
--- must_die
--- error_log eval
qr/the shared memory zone "shared" is already declared for a different use in .*nginx\.conf:\d+/
