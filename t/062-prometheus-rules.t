# examples/prometheus/: the scrape configuration and the rules pass
# promtool's checks, every alert has unit tests that see it fire, and
# promtool test rules passes them.  (t/060-metrics.t checks that the rules
# read only families the module exposes.)
use strict;
use warnings;
use lib 't/lib';
use Test::StytchTat;

my $promtool = $ENV{TEST_PROMTOOL} || '/usr/bin/promtool';
-x $promtool
    or BAIL_OUT("$promtool not found: make test installs Debian's "
                . "prometheus package (or set TEST_PROMTOOL)");

my $dir = repo_root() . '/examples/prometheus';

sub run {
    my @cmd = @_;
    my $out = do {
        open my $ph, '-|', 'sh', '-c', 'cd "$1" && shift && exec "$@" 2>&1',
            'sh', $dir, @cmd or die "$cmd[0]: $!\n";
        local $/;
        <$ph>;
    };
    return ($? >> 8, $out);
}

for my $cmd (['check', 'config', 'prometheus.yml'],
             ['check', 'rules', 'stytch_tat.rules.yml'],
             ['test', 'rules', 'stytch_tat.rules.test.yml'])
{
    my ($rc, $out) = run($promtool, @$cmd);
    is($rc, 0, "promtool @$cmd") or diag($out);
    like($out, qr/SUCCESS/, "promtool @$cmd: SUCCESS");
}

# every alert is tested firing: an alert_rule_test of it with exp_alerts
sub slurp { open my $fh, '<', "$dir/$_[0]" or die "$_[0]: $!\n"; local $/; <$fh> }
my @alerts = slurp('stytch_tat.rules.yml') =~ /^\s*- alert: (\w+)\s*$/mg;
ok(@alerts >= 6, 'alerting rules: ' . join(', ', @alerts));
my %fires;
my $name = '';
for (split /\n/, slurp('stytch_tat.rules.test.yml')) {
    $name = $1 if /^\s*alertname: (\w+)\s*$/;
    $fires{$name}++ if /^\s*exp_alerts:\s*$/;    # a list follows, not []
}
is_deeply([ grep { !$fires{$_} } @alerts ], [], 'every alert has a test that sees it fire');
my @records = slurp('stytch_tat.rules.yml') =~ /^\s*- record: (\S+)\s*$/mg;
my %tested = map { $_ => 1 } slurp('stytch_tat.rules.test.yml') =~ /^\s*- expr: ([\w:]+)/mg;
is_deeply([ grep { !$tested{$_} } @records ], [],
          'every recording rule is tested');

done_testing();
