# The background worker keeps watched models current: new labels give new
# versions without hl_train, a burst of concurrent inserts loses no label,
# the worker survives a restart and a crash in the middle of an update, a
# failing model does not hold up the others, and updates run with the
# privileges of the model's owner.  The launcher restarts a worker that was
# terminated, and only databases with a watched model keep a worker slot.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'humanloop'
humanloop.worker_naptime = '1s'
humanloop.worker_debounce = '10ms'
humanloop.full_retrain_labels = 100000
humanloop.max_workers = 2
max_worker_processes = 16
restart_after_crash = on
});
$node->start;

# Three topics; 30 of 1,500 rows labelled to start with.
$node->safe_psql('postgres', q{
	CREATE EXTENSION humanloop;
	CREATE TABLE tickets (id int PRIMARY KEY, body text, category text);
	INSERT INTO tickets
	SELECT i,
		   CASE i % 3 WHEN 0 THEN 'my card has not arrived yet, number ' || i
					  WHEN 1 THEN 'my transfer is still pending, reference ' || i
					  ELSE 'I forgot my password again, account ' || i END,
		   CASE WHEN i <= 30 THEN (ARRAY['card', 'transfer', 'password'])[i % 3 + 1] END
	FROM generate_series(1, 1500) i;
	SELECT hl_create_model('tickets', 'tickets', text_column => 'body', label_column => 'category');
	SELECT version FROM hl_train('tickets');
	SELECT hl_watch('tickets');
});

# Label the row with id $1 with its true topic.
sub label_sql
{
	my ($id) = @_;
	return "UPDATE tickets SET category = (ARRAY['card', 'transfer', 'password'])[$id % 3 + 1] WHERE id = $id";
}

# New labels make a new version appear, counting every label.
$node->safe_psql('postgres', label_sql($_)) for (31 .. 35);
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = 35 FROM hl_models WHERE name = 'tickets'"),
	'labels inserted after hl_watch appear in a new version');
is( $node->safe_psql('postgres',
		"SELECT count(*) > 0 FROM hl_model_versions WHERE name = 'tickets' AND kind = 'update'"),
	't', 'new labels were applied by the fast update');
is($node->safe_psql('postgres', "SELECT queue_depth FROM hl_worker_status WHERE name = 'tickets'"),
	'0', 'the queue is empty after the update');

# A burst of 1,000 single-row label commits from four sessions loses nothing.
my @sessions;
for my $s (0 .. 3)
{
	my $sql = join('', map { label_sql(36 + $s * 250 + $_) . ";\n" } (0 .. 249));
	my $file = $node->basedir . "/burst_$s.sql";
	open(my $fh, '>', $file) or die "could not write $file: $!";
	print $fh $sql;
	close($fh);
	push @sessions, IPC::Run::start(
		[ 'psql', '-X', '-q', '-d', $node->connstr('postgres'), '-f', $file ],
		'>', \my $out, '2>', \my $err);
}
$_->finish for @sessions;
is($node->safe_psql('postgres', 'SELECT count(*) FROM tickets WHERE category IS NOT NULL'),
	'1035', 'every burst insert committed');
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = 1035 FROM hl_models WHERE name = 'tickets'"),
	'the final version contains every label of the burst');
ok( $node->poll_query_until('postgres',
		"SELECT queue_depth = 0 FROM hl_worker_status WHERE name = 'tickets'"),
	'the queue drains after the burst');
is( $node->safe_psql('postgres', q{
		SELECT count(*) FROM (
			SELECT labelled_rows < lag(labelled_rows) OVER (ORDER BY version) AS shrank
			FROM hl_model_versions WHERE name = 'tickets') v
		WHERE shrank}),
	'0', 'label counts never go down from one version to the next');
is($node->safe_psql('postgres', "SELECT hl_predict('tickets', 'card not arrived')"),
	'card', 'the updated model predicts');

# The worker comes back after a restart and applies labels given meanwhile.
$node->stop;
$node->start;
$node->safe_psql('postgres', label_sql(1100));
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = 1036 FROM hl_models WHERE name = 'tickets'"),
	'the worker updates the model after a restart');

# A crash during an update leaves the previous version current and the
# queue intact: hold the model's lock so the worker blocks mid-update, then
# kill the worker.
my $version = $node->safe_psql('postgres', "SELECT current_version FROM hl_models WHERE name = 'tickets'");
my $holder = $node->background_psql('postgres');
$holder->query_safe('BEGIN');
$holder->query_safe("SELECT 1 FROM humanloop.models WHERE name = 'tickets' FOR NO KEY UPDATE");
$node->safe_psql('postgres', label_sql(1101));
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND wait_event_type = 'Lock'"),
	'the worker waits for the model in the middle of an update');
my $worker_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND wait_event_type = 'Lock'");
kill 'KILL', $worker_pid;
eval { $holder->quit; };
ok( $node->poll_query_until('postgres', 'SELECT true'),
	'the server is back after the crash');
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = 1037 AND current_version > $version FROM hl_models WHERE name = 'tickets'"),
	'after recovery the pending label is applied');
is( $node->safe_psql('postgres',
		"SELECT count(*) FROM hl_model_versions WHERE name = 'tickets' AND version > $version"),
	'1', 'the killed update left no version behind');

# A model whose update keeps failing does not hold up another model.
$node->safe_psql('postgres', q{
	CREATE TABLE broken (id int PRIMARY KEY, body text, label text);
	INSERT INTO broken SELECT i, 'text ' || i, CASE WHEN i <= 4 THEN (ARRAY['a', 'b'])[i % 2 + 1] END
	FROM generate_series(1, 20) i;
	SELECT hl_create_model('broken', 'broken', text_column => 'body', label_column => 'label');
	SELECT version FROM hl_train('broken');
	SELECT hl_watch('broken');
	ALTER TABLE broken RENAME COLUMN body TO content;
	UPDATE broken SET label = 'a' WHERE id = 5;
});
$node->safe_psql('postgres', label_sql(1102));
ok( $node->poll_query_until('postgres',
		"SELECT failures > 0 AND last_error LIKE '%no longer exists%' FROM hl_worker_status WHERE name = 'broken'"),
	'the failing model shows its error in hl_worker_status');
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = 1038 FROM hl_models WHERE name = 'tickets'"),
	'the other model is still updated');
is($node->safe_psql('postgres', "SELECT queue_depth FROM hl_worker_status WHERE name = 'broken'"),
	'1', 'the failing model keeps its queued change');
is( $node->safe_psql('postgres',
		"SELECT retry_at > last_error_at AND last_error_at > now() - interval '1 minute' FROM hl_worker_status WHERE name = 'broken'"),
	't', 'the failure is timed now and the retry later');

# Once the cause is fixed, the backoff ends and the model catches up.
$node->safe_psql('postgres', 'ALTER TABLE broken RENAME COLUMN content TO body');
ok( $node->poll_query_until('postgres',
		"SELECT failures = 0 AND queue_depth = 0 FROM hl_worker_status WHERE name = 'broken'"),
	'the failing model is retried and catches up once fixed');

# A renamed label column fails the worker's retrain, not the annotators' writes.
$node->safe_psql('postgres', q{
	ALTER TABLE broken RENAME COLUMN label TO tag;
	UPDATE broken SET tag = 'b' WHERE id = 7;
});
ok( $node->poll_query_until('postgres',
		"SELECT failures > 0 AND last_error LIKE '%\"label\"%' FROM hl_worker_status WHERE name = 'broken'"),
	'a renamed label column shows in hl_worker_status');
$node->safe_psql('postgres', 'ALTER TABLE broken RENAME COLUMN tag TO label');
is( $node->safe_psql('postgres', q{
		SELECT labelled_rows FROM hl_train('broken');
		SELECT failures = 0 AND retry_at IS NULL AND queue_depth = 0 FROM hl_worker_status WHERE name = 'broken';
	}),
	"6\nt", 'hl_train applies the fix at once and ends the backoff');

# So does a renamed id column, and no label is lost once it has its name back.
$node->safe_psql('postgres', q{
	ALTER TABLE broken RENAME COLUMN id TO rid;
	UPDATE broken SET label = 'a' WHERE rid IN (8, 9);
});
ok( $node->poll_query_until('postgres',
		"SELECT failures > 0 AND last_error LIKE '%\"id\"%' FROM hl_worker_status WHERE name = 'broken'"),
	'a renamed id column shows in hl_worker_status');
is( $node->safe_psql('postgres',
		"SELECT string_agg(DISTINCT q.change::text, ',') FROM humanloop.label_queue q JOIN humanloop.models m USING (model_id) WHERE m.name = 'broken'"),
	'U', 'the labels given meanwhile are queued as edits, for a full retrain');
$node->safe_psql('postgres', 'ALTER TABLE broken RENAME COLUMN rid TO id');
ok( $node->poll_query_until('postgres',
		"SELECT failures = 0 AND queue_depth = 0 AND labelled_rows = 8 FROM hl_worker_status JOIN hl_models USING (name) WHERE name = 'broken'"),
	'the worker catches up with every label once the id column has its name back');

# A watched model whose table is dropped stops being watched, not retried forever.
$node->safe_psql('postgres', q{
	CREATE TABLE gone (id int PRIMARY KEY, body text, label text);
	INSERT INTO gone SELECT i, 'text ' || i, CASE WHEN i <= 4 THEN (ARRAY['a', 'b'])[i % 2 + 1] END
	FROM generate_series(1, 20) i;
	SELECT hl_create_model('gone', 'gone', text_column => 'body', label_column => 'label');
	SELECT version FROM hl_train('gone');
	SELECT hl_watch('gone');
	BEGIN;
	UPDATE gone SET label = 'a' WHERE id = 5;
	DROP TABLE gone;
	COMMIT;
});
ok( $node->poll_query_until('postgres',
		"SELECT NOT watched AND last_error LIKE '%no longer exists%' FROM hl_worker_status WHERE name = 'gone'"),
	'the worker stops watching a model whose table was dropped');
is($node->safe_psql('postgres', "SELECT hl_watch('gone', false)"),
	'f', 'hl_watch turns watching off after the table was dropped');
$node->safe_psql('postgres', "SELECT hl_drop_model('gone')");

# Dropping a watched model removes its triggers, so labelling goes on.
$node->safe_psql('postgres', "SELECT hl_drop_model('broken')");
is($node->psql('postgres', "UPDATE broken SET label = 'b' WHERE id = 6"),
	0, 'labels can change after the watched model is dropped');

# Updates run as the model's owner: what the owner cannot read, the worker cannot.
$node->safe_psql('postgres', q{
	CREATE ROLE annotator LOGIN;
	CREATE TABLE private_texts (id int PRIMARY KEY, body text);
	INSERT INTO private_texts SELECT i, 'private text ' || i FROM generate_series(1, 20) i;
	GRANT SELECT ON private_texts TO annotator;
	GRANT CREATE ON SCHEMA public TO annotator;
});
$node->safe_psql('postgres', q{
	CREATE TABLE my_labels (item int, label text);
	INSERT INTO my_labels VALUES (1, 'x'), (2, 'y');
	SELECT hl_create_model('owned', 'private_texts', text_column => 'body',
						   labels_relation => 'my_labels', labels_id_column => 'item', label_column => 'label');
	SELECT version FROM hl_train('owned');
	SELECT hl_watch('owned');
}, extra_params => [ '-U', 'annotator' ]);
$node->safe_psql('postgres', 'REVOKE SELECT ON private_texts FROM annotator');
$node->safe_psql('postgres', "INSERT INTO my_labels VALUES (3, 'x')", extra_params => [ '-U', 'annotator' ]);
ok( $node->poll_query_until('postgres',
		"SELECT last_error LIKE '%permission denied%' FROM hl_worker_status WHERE name = 'owned'"),
	'the worker cannot read what the model owner cannot read');
is($node->safe_psql('postgres', "SELECT current_version FROM hl_models WHERE name = 'owned'"),
	'1', 'no version was stored for the unreadable model');

# An annotator who does not own the model needs privileges on the labels
# table only: the trigger queues the change, and the worker applies it.
$node->safe_psql('postgres', q{
	CREATE ROLE labeller LOGIN;
	GRANT SELECT, UPDATE ON tickets TO labeller;
});
my $before = $node->safe_psql('postgres',
	"SELECT current_version || ',' || labelled_rows FROM hl_models WHERE name = 'tickets'");
my ($version_before, $labelled_before) = split /,/, $before;
$node->safe_psql('postgres', label_sql(1300), extra_params => [ '-U', 'labeller' ]);
$node->safe_psql('postgres', "UPDATE tickets SET category = 'password' WHERE id = 1301",
	extra_params => [ '-U', 'labeller' ]);
$node->safe_psql('postgres', "UPDATE tickets SET category = 'card' WHERE id = 1301",
	extra_params => [ '-U', 'labeller' ]);
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = $labelled_before + 2 AND current_version > $version_before"
		  . " FROM hl_models WHERE name = 'tickets'"),
	'labels from a non-owner annotator reach a new version');
ok( $node->poll_query_until('postgres',
		"SELECT queue_depth = 0 AND failures = 0 FROM hl_worker_status WHERE name = 'tickets'"),
	'the queue of the annotator changes drains without failures');
is( $node->safe_psql('postgres',
		"SELECT queue_depth FROM hl_worker_status WHERE name = 'tickets'",
		extra_params => [ '-U', 'labeller' ]),
	'0', 'the annotator can read the queue depth');

my ($ret, $stdout, $stderr) = $node->psql('postgres',
	"INSERT INTO humanloop.label_queue (model_id, item_id, change)"
	  . " SELECT model_id, '1302', 'I' FROM humanloop.models WHERE name = 'tickets'",
	extra_params => [ '-U', 'labeller' ]);
isnt($ret, 0, 'a direct insert into the queue by the annotator fails');
like($stderr, qr/permission denied for table label_queue/,
	'the direct insert fails for lack of privilege');

# A terminated worker comes back and applies the labels given after it.
my $old_pid = $node->safe_psql('postgres',
	"SELECT pid FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND datname = 'postgres'");
ok($old_pid > 0, 'the worker of the database runs before the test');
is($node->safe_psql('postgres', "SELECT pg_terminate_backend($old_pid)"),
	't', 'the worker is terminated');
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'humanloop worker'"
		  . " AND datname = 'postgres' AND pid <> $old_pid"),
	'the launcher starts the terminated worker again');
my $labelled = $node->safe_psql('postgres', "SELECT labelled_rows FROM hl_models WHERE name = 'tickets'");
$node->safe_psql('postgres', label_sql(1200));
ok( $node->poll_query_until('postgres',
		"SELECT labelled_rows = $labelled + 1 FROM hl_models WHERE name = 'tickets'"),
	'the restarted worker applies a later label');
ok($node->log_contains('exited unexpectedly, restarting it in 1000 ms'),
	'the launcher logs the restart and its delay');

# Only databases with a watched model keep one of the two worker slots:
# plain has no extension, idle has it but watches nothing, and second
# watches a model.  After a restart the launcher probes all four.
$node->safe_psql('postgres', 'CREATE DATABASE plain');
$node->safe_psql('postgres', 'CREATE DATABASE idle');
$node->safe_psql('postgres', 'CREATE DATABASE second');
$node->safe_psql('idle', 'CREATE EXTENSION humanloop');
$node->safe_psql('second', q{
	CREATE EXTENSION humanloop;
	CREATE TABLE notes (id int PRIMARY KEY, body text, label text);
	INSERT INTO notes SELECT i, CASE WHEN i % 2 = 0 THEN 'refund please ' ELSE 'where is my parcel ' END || i,
		   CASE WHEN i <= 6 THEN (ARRAY['refund', 'parcel'])[i % 2 + 1] END
	FROM generate_series(1, 40) i;
	SELECT hl_create_model('notes', 'notes', text_column => 'body', label_column => 'label');
	SELECT version FROM hl_train('notes');
	SELECT hl_watch('notes');
});
$node->restart;
ok( $node->poll_query_until('postgres',
		"SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_stat_activity WHERE backend_type = 'humanloop worker'",
		'postgres,second'),
	'after a restart only the databases with watched models have a worker');
$node->safe_psql('second', "UPDATE notes SET label = 'refund' WHERE id = 8");
ok( $node->poll_query_until('second',
		"SELECT labelled_rows = 7 FROM hl_models WHERE name = 'notes'"),
	'the worker of the second database applies its label');

# Unwatching the last model of a database stops its worker and frees the slot.
$node->safe_psql('second', "SELECT hl_watch('notes', false)");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND datname = 'second'"),
	'the worker stops when no model of its database is watched');
is($node->psql('postgres', 'DROP DATABASE second'), 0,
	'a database whose worker stopped can be dropped');
$node->safe_psql('idle', q{
	CREATE TABLE notes (id int PRIMARY KEY, body text, label text);
	INSERT INTO notes SELECT i, 'note ' || i, CASE WHEN i <= 4 THEN (ARRAY['a', 'b'])[i % 2 + 1] END
	FROM generate_series(1, 20) i;
	SELECT hl_create_model('notes', 'notes', text_column => 'body', label_column => 'label');
	SELECT version FROM hl_train('notes');
	SELECT hl_watch('notes');
	UPDATE notes SET label = 'a' WHERE id = 5;
});
ok( $node->poll_query_until('idle',
		"SELECT labelled_rows = 5 FROM hl_models WHERE name = 'notes'"),
	'hl_watch in another database gets the freed slot');

# A fast update stores a patch over a version with a novelty score, and the
# patched version still has the score.
$node->safe_psql('idle', q{
	CREATE TABLE asks (id int PRIMARY KEY, body text, label text);
	INSERT INTO asks SELECT i,
		   CASE i % 3 WHEN 0 THEN 'my card has not arrived, number ' || i
					  WHEN 1 THEN 'my transfer is pending, reference ' || i
					  ELSE 'I forgot my password, account ' || i END,
		   CASE WHEN i <= 40 AND i % 3 < 2 THEN (ARRAY['card', 'transfer'])[i % 3 + 1] END
	FROM generate_series(1, 300) i;
	SELECT hl_create_model('asks', 'asks', text_column => 'body', label_column => 'label',
						   options => '{"novelty": 8}');
	SELECT version FROM hl_train('asks');
	SELECT hl_watch('asks');
	UPDATE asks SET label = 'card' WHERE id = 42;
});
ok( $node->poll_query_until('idle',
		"SELECT count(*) > 0 FROM hl_model_versions WHERE name = 'asks' AND kind = 'update'"),
	'a model with a novelty score gets a fast update');
is( $node->safe_psql('idle',
		"SELECT (hl_classify('asks', 'I forgot my password, account 7')).novelty > 3"),
	't', 'the updated version scores an unlabelled kind as novel');

# An update that read the queue before an hl_train took its changes stores
# nothing.  The worker reads the queue of both models, waits for the first,
# which an open transaction holds, and meanwhile hl_train learns and
# dequeues the change of the second.  A serializable default must not make
# the worker fail on what the holder committed.
$node->safe_psql('postgres', q{
	ALTER SYSTEM SET default_transaction_isolation = 'serializable';
	SELECT pg_reload_conf();
});
$node->safe_psql('postgres', q{
	CREATE TABLE second (id int PRIMARY KEY, body text, label text);
	INSERT INTO second SELECT i, CASE WHEN i % 2 = 0 THEN 'card lost ' || i ELSE 'send money ' || i END,
		   CASE WHEN i <= 10 THEN (ARRAY['card', 'transfer'])[i % 2 + 1] END
	FROM generate_series(1, 40) i;
	SELECT hl_create_model('second', 'second', text_column => 'body', label_column => 'label');
	SELECT version FROM hl_train('second');
	SELECT hl_watch('second');
});
my $lock_holder = $node->background_psql('postgres');
$lock_holder->query_safe('BEGIN ISOLATION LEVEL READ COMMITTED');
$lock_holder->query_safe("SELECT version FROM hl_train('tickets')");
$node->safe_psql('postgres',
	"BEGIN; " . label_sql(1201) . "; UPDATE second SET label = 'card' WHERE id = 12; COMMIT");
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND wait_event_type = 'Lock'"),
	'the worker waits for the first model while a transaction holds it');
my $second_before = $node->safe_psql('postgres',
	"SELECT current_version FROM hl_models WHERE name = 'second'");
$node->safe_psql('postgres', "SELECT version FROM hl_train('second')");
$lock_holder->query_safe('COMMIT');
$lock_holder->quit;
ok( $node->poll_query_until('postgres',
		"SELECT count(*) = 0 FROM pg_stat_activity WHERE backend_type = 'humanloop worker' AND state = 'active'"),
	'the worker is done once the transaction commits');
is( $node->safe_psql('postgres',
		"SELECT current_version - $second_before FROM hl_models WHERE name = 'second'"),
	'1', 'only hl_train stored a version of the second model');
is( $node->safe_psql('postgres',
		"SELECT failures = 0 AND queue_depth = 0 FROM hl_worker_status WHERE name = 'tickets'"),
	't', 'the update of the first model, after the wait, sees what the holder committed');
$node->safe_psql('postgres', q{
	SELECT hl_drop_model('second');
	ALTER SYSTEM RESET default_transaction_isolation;
	SELECT pg_reload_conf();
});

# A missing table met through a view is no reason to stop watching.
$node->safe_psql('postgres', q{
	CREATE TABLE prefixes (p text);
	INSERT INTO prefixes VALUES ('note: ');
	CREATE FUNCTION prefixed(t text) RETURNS text LANGUAGE sql STABLE
		AS $$ SELECT (SELECT p FROM prefixes LIMIT 1) || t $$;
	CREATE TABLE raw_notes (id int PRIMARY KEY, body text);
	INSERT INTO raw_notes SELECT i, CASE WHEN i % 2 = 0 THEN 'card lost ' ELSE 'send money ' END || i
	FROM generate_series(1, 30) i;
	CREATE VIEW notes_view AS SELECT id, prefixed(body) AS body FROM raw_notes;
	CREATE TABLE note_labels (item int, label text);
	INSERT INTO note_labels SELECT i, (ARRAY['transfer', 'card'])[i % 2 + 1] FROM generate_series(1, 8) i;
	SELECT hl_create_model('viewed', 'notes_view', id_column => 'id', text_column => 'body',
						   labels_relation => 'note_labels', labels_id_column => 'item', label_column => 'label');
	SELECT version FROM hl_train('viewed');
	SELECT hl_watch('viewed');
	DROP TABLE prefixes;
	INSERT INTO note_labels VALUES (9, 'transfer');
});
ok( $node->poll_query_until('postgres',
		"SELECT failures > 0 AND watched FROM hl_worker_status WHERE name = 'viewed'"),
	'a table missing behind a view fails the update but keeps the model watched');

# The worker resolves names in a view's function as hl_train does.
$node->safe_psql('postgres', q{
	CREATE TABLE prefixes (p text);
	INSERT INTO prefixes VALUES ('note: ');
	INSERT INTO note_labels VALUES (10, 'card');
});
ok( $node->poll_query_until('postgres',
		"SELECT failures = 0 AND queue_depth = 0 FROM hl_worker_status WHERE name = 'viewed'"),
	'the worker trains on the view once its table is back');
$node->safe_psql('postgres', "SELECT hl_drop_model('viewed')");

$node->stop;
done_testing();
