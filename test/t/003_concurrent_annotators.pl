# Two annotators asking hl_next_batch for rows at the same moment get
# disjoint batches: the second call waits for the first to commit its
# reservations, then skips the reserved rows.  Reservations end when they
# expire.
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
		   CASE WHEN i <= 30 THEN (ARRAY['card', 'transfer', 'password'])[i % 3 + 1] END
	FROM generate_series(1, 60) i;
	SELECT hl_create_model('tickets', 'tickets', text_column => 'body', label_column => 'category');
	SELECT version FROM hl_train('tickets');
});

# Annotator A asks for a batch inside a transaction that stays open.
my $a = $node->background_psql('postgres');
$a->query_safe('BEGIN');
$a->query_safe("CREATE TABLE batch_a AS SELECT id FROM hl_next_batch('tickets', 10)");

# Annotator B asks at the same moment and waits for A.
my $b = $node->background_psql('postgres');
$b->query_until(qr/started/,
	"\\echo started\nCREATE TABLE batch_b AS SELECT id FROM hl_next_batch('tickets', 10);\n");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%batch_b%'"),
	'second annotator waits while the first holds the model');

$a->query_safe('COMMIT');
ok($node->poll_query_until('postgres', "SELECT to_regclass('batch_b') IS NOT NULL"),
	'second annotator gets its batch after the first commits');

is($node->safe_psql('postgres', 'SELECT count(*) FROM batch_a'), '10', 'first batch has 10 rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM batch_b'), '10', 'second batch has 10 rows');
is($node->safe_psql('postgres', 'SELECT count(*) FROM batch_a JOIN batch_b USING (id)'),
	'0', 'the two batches are disjoint');
is( $node->safe_psql('postgres',
		'SELECT count(*) FROM tickets t JOIN (SELECT id FROM batch_a UNION ALL SELECT id FROM batch_b) b'
		  . ' ON t.id = b.id::int WHERE t.category IS NULL'),
	'20', 'both batches hold unlabelled rows only');

# Labelling a reserved row takes it out of the pool; the rest stay reserved.
$node->safe_psql('postgres',
	"UPDATE tickets SET category = 'card' WHERE id = (SELECT min(id::int) FROM batch_a)");
is($node->safe_psql('postgres', "SELECT count(*) FROM hl_next_batch('tickets', 30)"),
	'10', 'a third call gets the 10 rows nobody holds');

# When reservations expire, their unlabelled rows come back.
$node->safe_psql('postgres', 'UPDATE humanloop.reservations SET reserved_until = now()');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM hl_next_batch('tickets', 30, options => '{\"reserve\": false}')"),
	'29', 'expired reservations return their unlabelled rows to the pool');

$a->quit;
$b->quit;
$node->stop;
done_testing();
