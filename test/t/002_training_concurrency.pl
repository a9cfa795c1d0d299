# Concurrent hl_train calls on one model run one after the other, readers
# keep the committed version while a training is in flight, a rolled-back
# training leaves the previous version current, and models survive
# pg_dump and restore.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->start;

$node->safe_psql('postgres', q{
	CREATE EXTENSION humanloop;
	CREATE TABLE tickets (id int PRIMARY KEY, body text, category text);
	INSERT INTO tickets
	SELECT i,
		   CASE i % 3 WHEN 0 THEN 'my card has not arrived ' || i
					  WHEN 1 THEN 'my transfer is still pending ' || i
					  ELSE 'I forgot my password ' || i END,
		   CASE WHEN i <= 60 THEN (ARRAY['card', 'transfer', 'password'])[i % 3 + 1] END
	FROM generate_series(1, 90) i;
	SELECT hl_create_model('tickets', 'tickets', text_column => 'body', label_column => 'category');
	SELECT version FROM hl_train('tickets');
});

# Session A trains inside an open transaction and holds the model's lock.
my $a = $node->background_psql('postgres');
$a->query_safe('BEGIN');
is($a->query_safe("SELECT version FROM hl_train('tickets')"), '2',
	'first session trains version 2');

# Readers still see version 1 while version 2 is uncommitted.
is($node->safe_psql('postgres', "SELECT current_version FROM hl_models WHERE name = 'tickets'"),
	'1', 'readers see the committed version during training');
is($node->safe_psql('postgres', "SELECT hl_predict('tickets', 'card not arrived')"),
	'card', 'predictions keep working during training');

# Session B asks to train too and waits for A's lock.
my $b = $node->background_psql('postgres');
$b->query_until(qr/started/, "\\echo started\nSELECT version FROM hl_train('tickets');\n");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%hl_train%'"),
	'second session waits for the first');

# A commits; B then trains on top of it.
$a->query_safe('COMMIT');
ok( $node->poll_query_until('postgres',
		"SELECT current_version = 3 FROM hl_models WHERE name = 'tickets'"),
	'second session stores version 3 after the first commits');
is( $node->safe_psql('postgres',
		"SELECT string_agg(version || ':' || labelled_rows, ',' ORDER BY version) FROM humanloop.model_versions"),
	'1:60,2:60,3:60', 'each version was stored once with all labels');
$b->quit;

# A training that is rolled back leaves the previous version current.
$a->query_safe('BEGIN');
$a->query_safe("UPDATE tickets SET category = 'card' WHERE id = 61");
is($a->query_safe("SELECT labelled_rows FROM hl_train('tickets')"), '61',
	'training inside the transaction sees its new label');
$a->query_safe('ROLLBACK');
is($node->safe_psql('postgres', "SELECT current_version || ':' || labelled_rows FROM hl_models WHERE name = 'tickets'"),
	'3:60', 'rolled-back training leaves version 3 current');
$a->quit;

# pg_dump and restore keep the model and its versions.
my $dump = $node->basedir . '/humanloop.dump';
$node->command_ok([ 'pg_dump', '-Fc', '-f', $dump, '-d', $node->connstr('postgres') ],
	'pg_dump succeeds');
$node->safe_psql('postgres', 'CREATE DATABASE restored');
$node->command_ok([ 'pg_restore', '-d', $node->connstr('restored'), $dump ],
	'pg_restore succeeds');
is( $node->safe_psql('restored',
		"SELECT name || ':' || current_version || ':' || relation::text FROM hl_models"),
	'tickets:3:tickets', 'restored model keeps its version and relation');
is($node->safe_psql('restored', "SELECT hl_predict('tickets', 'forgot my password')"),
	'password', 'restored model predicts');
is($node->safe_psql('restored', "SELECT version FROM hl_train('tickets')"),
	'4', 'restored model trains its next version');

$node->stop;
done_testing();
