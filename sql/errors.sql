-- Bad input: every error names the value and tells what to do next.
\set VERBOSITY default

-- Unknown and duplicate models.
SELECT hl_predict('nope', 'text');
SELECT * FROM hl_train('nope');
SELECT hl_drop_model('nope');
SELECT hl_create_model('tickets', 'tickets', text_column => 'body', label_column => 'category');
SELECT hl_create_model('', 'tickets', text_column => 'body', label_column => 'category');
SELECT hl_create_model(repeat('x', 64), 'tickets', text_column => 'body', label_column => 'category');
SELECT hl_predict(NULL, 'text');

-- A NULL where a value is required raises 22004. A NULL with a default is
-- that default.
SELECT * FROM hl_train(NULL);
SELECT hl_rollback(NULL, 1);
SELECT hl_rollback('tickets', NULL);
SELECT hl_drop_model(NULL);
SELECT hl_drop_model('nope', NULL);
SELECT hl_watch(NULL);
SELECT hl_watch('tickets', NULL);
SELECT hl_create_model(NULL, 'tickets', text_column => 'body', label_column => 'category');
SELECT hl_create_model('bad', NULL, text_column => 'body', label_column => 'category');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => NULL);
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', task => NULL);
SELECT * FROM hl_next_batch(NULL, 5);
SELECT hl_evaluate_spans(NULL, 'tickets');
SELECT hl_evaluate_spans('tickets', NULL);
SELECT * FROM hl_status(NULL);
SELECT * FROM hl_set_abstention(NULL, target_accuracy => 0.9);

-- Missing relations and columns.
SELECT hl_create_model('bad', 'no_such_table', text_column => 'body', label_column => 'category');
SELECT hl_create_model('bad', 'tickets', text_column => 'no_such_column', label_column => 'category');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'no_such_column');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', id_column => 'nope');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'label',
					   labels_relation => 'ticket_labels');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category',
					   labels_id_column => 'ticket_id');
SELECT hl_create_model('bad', 'tickets', text_column => NULL, label_column => 'category');
SELECT hl_create_model('bad', 'pg_class_oid_index', text_column => 'body', label_column => 'category');

-- Columns whose type cannot be read as text.
CREATE TABLE odd (id int PRIMARY KEY, body bytea, tags text[], n int, label text);
SELECT hl_create_model('bad', 'odd', text_column => 'body', label_column => 'label');
SELECT hl_create_model('bad', 'odd', text_column => 'n', label_column => 'label');
SELECT hl_create_model('bad', 'odd', text_column => 'label', label_column => 'tags');

-- No primary key and no id_column.
CREATE TABLE nokey (body text, label text);
SELECT hl_create_model('bad', 'nokey', text_column => 'body', label_column => 'label');
CREATE TABLE twokeys (a int, b int, body text, label text, PRIMARY KEY (a, b));
SELECT hl_create_model('bad', 'twokeys', text_column => 'body', label_column => 'label');
SELECT hl_create_model('bad', 'open_tickets', text_column => 'body', label_column => 'category');

-- Mismatched id types between items and annotations.
CREATE TABLE text_labels (ticket_id text, label text);
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'label',
					   labels_relation => 'text_labels', labels_id_column => 'ticket_id');

-- Options and tasks.
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', task => 'regression');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '{"hash_bits": 40}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '{"hash_bits": "big"}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '{"colour": 1}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '[1, 2]');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '{"abstain_probability": 2}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category', options => '{"prior_precision": -1}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category',
					   options => '{"char_ngram_min": 4, "char_ngram_max": 3}');
SELECT count(*) AS no_bad_models FROM hl_models WHERE name = 'bad';

-- Training with no labelled rows explains what is needed.
CREATE TABLE unlabelled (id int PRIMARY KEY, body text, label text);
INSERT INTO unlabelled VALUES (1, 'hello', NULL), (2, 'world', NULL);
SELECT hl_create_model('unlabelled', 'unlabelled', text_column => 'body', label_column => 'label') > 0 AS created;
SELECT * FROM hl_train('unlabelled');
SELECT hl_predict('unlabelled', 'hello');
SELECT (hl_classify('unlabelled', 'hello')).*;
-- An empty relation: the hint requests texts, not a call of hl_next_batch.
CREATE TABLE empty_texts (id int PRIMARY KEY, body text, label text);
SELECT hl_create_model('empty_texts', 'empty_texts', text_column => 'body', label_column => 'label') > 0 AS created;
SELECT * FROM hl_train('empty_texts');
SELECT hl_drop_model('empty_texts');
DROP TABLE empty_texts;

-- Texts over the documented limit.
SET humanloop.max_text_length = '1kB';
SELECT hl_predict('tickets', repeat('card ', 300));
INSERT INTO unlabelled VALUES (3, repeat('long ', 300), 'long');
SELECT * FROM hl_train('unlabelled');
SELECT count(*) FROM hl_next_batch('tickets', 5);
RESET humanloop.max_text_length;
SET humanloop.max_text_length = 10;

-- Watching needs the background worker; rollbacks need a stored version.
SELECT hl_watch('tickets');
SELECT hl_watch('nope');
SELECT hl_rollback('tickets', 99);
SELECT hl_rollback('nope', 1);

-- A relation given by an OID that no relation has.
SELECT hl_evaluate('tickets', 999999::oid::regclass);

-- Next batch arguments.
SELECT * FROM hl_next_batch('tickets', 0);
SELECT * FROM hl_next_batch('tickets', 10001);
SELECT * FROM hl_next_batch('tickets', 5, 'clever');
SELECT * FROM hl_next_batch('tickets', 5, 'margin', '{"reduction": "mean"}');
SELECT * FROM hl_next_batch('tickets', NULL);
SELECT * FROM hl_next_batch('tickets', 5, options => '{"speed": 1}');
-- A misspelt option with a value of another type is still named as unknown.
SELECT * FROM hl_next_batch('tickets', 5, options => '{"reductoin": "max"}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"seed": "x", "smaple": 5}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"diversity": 2}');
SELECT * FROM hl_next_batch('tickets', 5, 'hybrid', '{"epistemic": 1.5}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"density": -1}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"cost": "long"}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"max_class_share": 0}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"disagreement": 11}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"disagreement": "high"}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"disagreement": 1e400}');
SELECT * FROM hl_next_batch('tickets', 5, 'random', '{"disagreement": 1}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"reserve": "yes"}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"candidates": 0}');
-- Values are printed as written, without rounding or an exponent.
SELECT * FROM hl_next_batch('tickets', 5, options => '{"seed": 2147483648}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"seed": 12.5}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"diversity": 1.0000001}');
SELECT * FROM hl_next_batch('tickets', 5, options => '{"diversity": 1.00000010000000000000000000}');
SELECT * FROM hl_next_batch('tickets', 5, options => '"fast"');

-- A damaged posterior is reported, never read.
CREATE TABLE damaged AS SELECT * FROM tickets;
ALTER TABLE damaged ADD PRIMARY KEY (id);
SELECT hl_create_model('damaged', 'damaged', text_column => 'body', label_column => 'category') > 0 AS created;
SELECT version FROM hl_train('damaged');
UPDATE humanloop.model_versions
SET posterior = overlay(posterior PLACING '\xdeadbeef'::bytea FROM 200)
WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'damaged');
SELECT hl_predict('damaged', 'card');
UPDATE humanloop.model_versions SET posterior = '\x0102'::bytea
WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'damaged');
SELECT hl_predict('damaged', 'card');
UPDATE humanloop.model_versions SET posterior = '\x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000'::bytea
WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'damaged');
SELECT hl_predict('damaged', 'card');
-- Training anew repairs it.
SELECT version FROM hl_train('damaged');
SELECT hl_predict('damaged', 'card') IS NOT NULL AS repaired;

-- A source table altered or dropped after the model was created.
ALTER TABLE damaged RENAME COLUMN body TO content;
SELECT * FROM hl_train('damaged');
SELECT * FROM hl_next_batch('damaged', 3);
ALTER TABLE damaged RENAME COLUMN content TO body;
ALTER TABLE damaged RENAME TO still_here;
SELECT labelled_rows FROM hl_train('damaged');
DROP TABLE still_here;
SELECT * FROM hl_train('damaged');
SELECT * FROM hl_next_batch('damaged', 3);
-- Its versions still predict: they do not need the table.
SELECT hl_predict('damaged', 'card') IS NOT NULL AS still_predicts;
SELECT hl_drop_model('damaged');

-- The SQLSTATE of each kind of error, for callers that branch on it.
DELETE FROM unlabelled WHERE id = 3;
CREATE FUNCTION sqlstate_of(query text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
	EXECUTE query;
	RETURN 'no error';
EXCEPTION WHEN OTHERS THEN
	RETURN SQLSTATE;
END
$$;
SELECT query, sqlstate_of(query) FROM (VALUES
	('SELECT hl_predict(''nope'', ''x'')'),
	('SELECT hl_create_model(''tickets'', ''tickets'', text_column => ''body'', label_column => ''category'')'),
	('SELECT hl_create_model(''bad'', ''tickets'', text_column => ''nope'', label_column => ''category'')'),
	('SELECT hl_create_model(''bad'', ''odd'', text_column => ''body'', label_column => ''label'')'),
	('SELECT hl_create_model(''bad'', ''nokey'', text_column => ''body'', label_column => ''label'')'),
	('SELECT hl_create_model(''bad'', ''tickets'', text_column => ''body'', label_column => ''category'', options => ''{"colour": 1}'')'),
	('SELECT hl_train(''unlabelled'')'),
	('SELECT hl_predict(''unlabelled'', ''x'')'),
	('SELECT hl_next_batch(''tickets'', 0)'),
	('SELECT hl_next_batch(''tickets'', 5, ''clever'')'),
	('SELECT hl_predict(NULL, ''x'')'),
	('SELECT hl_train(NULL)'),
	('SELECT hl_rollback(''tickets'', NULL)'),
	('SELECT hl_drop_model(NULL)'),
	('SELECT hl_watch(NULL)')
) AS q(query);

-- Another role may read a model but neither train nor drop it, and it
-- cannot read texts it has no privilege on.
CREATE ROLE hl_reader;
GRANT SELECT ON tickets TO hl_reader;
CREATE TABLE secret (id int PRIMARY KEY, body text, label text);
INSERT INTO secret VALUES (1, 'classified', 'a'), (2, 'top secret', 'b');
SELECT hl_create_model('secret', 'secret', text_column => 'body', label_column => 'label') > 0 AS created;
SET ROLE hl_reader;
SELECT hl_predict('tickets', 'my card has not arrived') AS reader_predicts;
SELECT * FROM hl_train('tickets');
SELECT hl_drop_model('tickets');
SELECT hl_create_model('mine', 'secret', text_column => 'body', label_column => 'label');
RESET ROLE;
SELECT hl_drop_model('secret');
DROP TABLE secret;
DROP OWNED BY hl_reader;
DROP ROLE hl_reader;
