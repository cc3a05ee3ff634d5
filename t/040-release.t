# The version a build reports: in stytch_tat_status (json and prometheus)
# and in one notice line per configuration load.
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;
use Test::StytchTat::Util;

# the one place the version is written
open my $fh, '<', repo_root() . '/src/ngx_http_stytch_tat_version.h' or die $!;
our ($Version) = map { /^#define\s+NGX_HTTP_STYTCH_TAT_VERSION\s+"([^"]+)"/ ? $1 : () } <$fh>;
close $fh;
die "no NGX_HTTP_STYTCH_TAT_VERSION\n" unless $Version;
$ENV{TEST_NGINX_VERSION} = $Version;

run_tests();

# exactly one line per load: a start, then a reload adds one more
my %conf = (config => 'location = / { return 204; }');
ok(start_nginx(\%conf), 'started') or diag(last_error());
my $count = sub {
    scalar grep { /\[notice\] .*stytch-tat module\/\Q$Version\E$/ }
        split /\n/, scalar error_log_since(0);
};
is($count->(), 1, 'one version line after the start');
ok(reload_nginx(\%conf), 'reloaded') or diag(last_error());
is($count->(), 2, 'one more version line after a reload');
ok(stop_nginx(), 'stopped');

__DATA__

=== TEST 1: the json status names the version, beside the zones
--- http_config
stytch_tat_zone zone=tat:1m;
--- config
location = /status { stytch_tat_status; }
--- request
GET /status
--- error_code: 200
--- response_body_check eval
sub {
    my $st = json_decode($_[0]);
    $st->{version} eq $main::Version or die "version: $st->{version}\n";
    exists $st->{zones}{tat} or die "no zone\n";
    1;
}



=== TEST 2: the prometheus status has an info family with the version
--- config
location = /metrics { stytch_tat_status prometheus; }
--- request
GET /metrics
--- error_code: 200
--- response_body
# HELP stytch_tat_info The module's version, always 1.
# TYPE stytch_tat_info gauge
stytch_tat_info{version="$TEST_NGINX_VERSION"} 1



=== TEST 3: one notice line with the version when the configuration loads
--- config
location = / { return 204; }
--- request
GET /
--- error_code: 204
--- error_log
[notice]
stytch-tat module/$TEST_NGINX_VERSION
--- no_error_log
[error]

