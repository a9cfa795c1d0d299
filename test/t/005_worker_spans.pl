# The background worker keeps watched span models current: new span labels
# give a new version that hl_predict_spans uses, edits and removals are
# queued and retrained as one batch, the worker rests
# humanloop.span_retrain_interval between retrains and wakes up when the
# rest ends, and a json label column can be watched.
use strict;
use warnings;

use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

my $node = PostgreSQL::Test::Cluster->new('main');
$node->init;

# A nap far longer than the rest, so only the wake-up at retry_at can
# start the second retrain within the time checked below.
$node->append_conf('postgresql.conf', q{
shared_preload_libraries = 'humanloop'
humanloop.worker_naptime = '1min'
humanloop.worker_debounce = '10ms'
humanloop.span_retrain_interval = '1s'
});
$node->start;

# Travel requests: 18 labelled with their city only, trained before watching.
$node->safe_psql('postgres', q{
	CREATE EXTENSION humanloop;
	CREATE TABLE trips (id int PRIMARY KEY, text text NOT NULL, spans jsonb);
	CREATE FUNCTION span_at(sentence text, part text, label text) RETURNS jsonb
	LANGUAGE sql IMMUTABLE AS $$
		SELECT jsonb_build_object('start', strpos(sentence, part) - 1,
								  'end', strpos(sentence, part) - 1 + length(part),
								  'label', label)
	$$;
	INSERT INTO trips
	SELECT row_number() OVER (), format(t, c), jsonb_build_array(span_at(format(t, c), c, 'city'))
	FROM unnest(ARRAY['book a flight to %s', 'i need a ticket to %s', 'fly me to %s please']) t,
		 unnest(ARRAY['oslo', 'lima', 'cairo', 'quito', 'hanoi', 'dakar']) c;
	SELECT hl_create_model('trips', 'trips', text_column => 'text', label_column => 'spans',
						   task => 'spans');
	SELECT version FROM hl_train('trips');
});
is($node->safe_psql('postgres', "SELECT hl_watch('trips')"), 't', 'span model can be watched');

my $probe = "SELECT string_agg(label || ':' || text, ',' ORDER BY start)"
  . " FROM hl_predict_spans('trips', 'book a flight to paris on monday')";
unlike($node->safe_psql('postgres', $probe), qr/day:/,
	'first version finds no day');

# 36 sentences with a city and a day, inserted after hl_watch.
$node->safe_psql('postgres', q{
	INSERT INTO trips
	SELECT 100 + row_number() OVER (), format(t, c, d),
		   jsonb_build_array(span_at(format(t, c, d), c, 'city'), span_at(format(t, c, d), d, 'day'))
	FROM unnest(ARRAY['book a flight to %s on %s', 'i need a ticket to %s for %s']) t,
		 unnest(ARRAY['oslo', 'lima', 'cairo', 'quito', 'hanoi', 'dakar']) c,
		 unnest(ARRAY['monday', 'tuesday', 'wednesday']) d;
});
ok( $node->poll_query_until('postgres',
		"SELECT current_version = 2 AND labelled_rows = 54 FROM hl_models WHERE name = 'trips'"),
	'inserted labels give new version');
is($node->safe_psql('postgres', "SELECT kind FROM hl_model_versions WHERE name = 'trips' AND version = 2"),
	'full', 'new version is a full retrain');
is( $node->safe_psql('postgres',
		"SELECT array_to_string(v.labels, ',') FROM humanloop.model_versions v"
		  . " JOIN humanloop.models m USING (model_id) WHERE m.name = 'trips' AND v.version = 2"),
	'city,day', 'new version has the day label');
ok($node->log_contains('model 1 version 2: full retrain with 36 label changes'),
	'one retrain for the whole insert');
like($node->safe_psql('postgres', $probe), qr/day:monday/,
	'hl_predict_spans uses the new version');
is($node->safe_psql('postgres', "SELECT queue_depth FROM hl_worker_status WHERE name = 'trips'"),
	'0', 'queue empty after the retrain');
is( $node->safe_psql('postgres',
		"SELECT retry_at >= last_update + interval '1 second' FROM hl_worker_status WHERE name = 'trips'"),
	't', 'retry_at set one interval ahead');
my $rest_end = $node->safe_psql('postgres', "SELECT retry_at FROM hl_worker_status WHERE name = 'trips'");

# An edit, a label set to NULL and a deleted row in one transaction; an
# unchanged label and a text change queue nothing.
is( $node->safe_psql('postgres', q{
		BEGIN;
		UPDATE trips SET spans = '[]' WHERE id = 101;
		UPDATE trips SET spans = NULL WHERE id = 102;
		DELETE FROM trips WHERE id = 103;
		UPDATE trips SET spans = spans WHERE id = 104;
		UPDATE trips SET text = text || ' now' WHERE id = 1;
		SELECT string_agg(q.change::text || q.item_id, ',' ORDER BY q.queue_id)
		FROM humanloop.label_queue q JOIN humanloop.models m USING (model_id) WHERE m.name = 'trips';
		COMMIT;
	}),
	'U101,D102,D103', 'triggers queue edit and removals');
ok( $node->poll_query_until('postgres',
		"SELECT current_version = 3 AND labelled_rows = 52 FROM hl_models WHERE name = 'trips'"),
	'edits and removals give new version');
ok($node->log_contains('model 1 version 3: full retrain with 3 label changes'),
	'three changes retrained as one batch');
is( $node->safe_psql('postgres',
		"SELECT created_at >= '$rest_end' FROM hl_model_versions WHERE name = 'trips' AND version = 3"),
	't', 'second retrain waits for retry_at');
is( $node->safe_psql('postgres',
		"SELECT created_at < '$rest_end'::timestamptz + interval '30 seconds' FROM hl_model_versions WHERE name = 'trips' AND version = 3"),
	't', 'worker wakes at retry_at');

# A json label column has no equality operator; its labels are compared as text.
$node->safe_psql('postgres', q{
	CREATE TABLE legs (id int PRIMARY KEY, text text NOT NULL, spans json);
	INSERT INTO legs VALUES (1, 'fly to oslo', '[{"start": 7, "end": 11, "label": "city"}]'),
							(2, 'fly to lima', NULL);
	SELECT hl_create_model('legs', 'legs', text_column => 'text', label_column => 'spans', task => 'spans');
});
is($node->safe_psql('postgres', "SELECT hl_watch('legs')"), 't', 'json label column can be watched');
is( $node->safe_psql('postgres', q{
		BEGIN;
		UPDATE legs SET spans = '[{"start": 7, "end": 11, "label": "city"}]' WHERE id = 2;
		UPDATE legs SET spans = '[{"start":7, "end": 11, "label": "city"}]' WHERE id = 2;
		UPDATE legs SET spans = spans WHERE id = 1;
		SELECT string_agg(q.change::text || q.item_id, ',' ORDER BY q.queue_id)
		FROM humanloop.label_queue q JOIN humanloop.models m USING (model_id) WHERE m.name = 'legs';
		COMMIT;
	}),
	'I2,U2', 'json labels compared as text');
ok( $node->poll_query_until('postgres',
		"SELECT current_version = 1 AND labelled_rows = 2 FROM hl_models WHERE name = 'legs'"),
	'json-labelled model is trained');

# A label that is not JSON fails the retrain; the recorded error names its row.
$node->safe_psql('postgres', q{
	CREATE TABLE notes (id int PRIMARY KEY, text text NOT NULL, spans text);
	INSERT INTO notes VALUES (1, 'fly to oslo', '[{"start": 7, "end": 11, "label": "city"}]');
	SELECT hl_create_model('notes', 'notes', text_column => 'text', label_column => 'spans', task => 'spans');
	SELECT hl_watch('notes');
	INSERT INTO notes VALUES (2, 'fly to rome', 'not json');
});
ok( $node->poll_query_until('postgres',
		"SELECT failures > 0 AND last_error LIKE '%span label of row \"2\"%' FROM hl_worker_status WHERE name = 'notes'"),
	'worker error names the row of a label that is not JSON');

# Correcting the label ends the backoff: the retrain comes long before retry_at.
$node->safe_psql('postgres', q{
	UPDATE humanloop.worker_state SET retry_at = now() + interval '1 hour'
	WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'notes');
	UPDATE notes SET spans = '[{"start": 7, "end": 11, "label": "city"}]' WHERE id = 2;
});
ok( $node->poll_query_until('postgres',
		"SELECT failures = 0 AND queue_depth = 0 FROM hl_worker_status WHERE name = 'notes'"),
	'corrected label retrained before retry_at');
is($node->safe_psql('postgres', "SELECT labelled_rows FROM hl_models WHERE name = 'notes'"),
	'2', 'retrain has the corrected row');

$node->stop;
done_testing();
