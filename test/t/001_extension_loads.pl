# Checks that the installed humanloop extension loads in a fresh cluster and
# reports the version that the Makefile installs.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

my ($status, $stdout, $stderr) =
  $node->psql('postgres', 'CREATE EXTENSION humanloop');
is($status, 0, 'CREATE EXTENSION humanloop succeeds')
  or diag("psql stderr: $stderr");

my $version = $node->safe_psql('postgres',
	"SELECT extversion FROM pg_extension WHERE extname = 'humanloop'");
is($version, '0.1.0', 'extension version is 0.1.0');

$node->stop;
done_testing();
