--
-- Privileges around humanloop.label_queue.  The regression server runs no
-- background worker, so hl_watch is unavailable here: the tests create the
-- triggers it would create, with the same arguments.
--
CREATE ROLE hl_annotator;
CREATE TABLE queue_texts (id int PRIMARY KEY, body text, label text);
INSERT INTO queue_texts SELECT i, 'text ' || i, CASE WHEN i <= 4 THEN (ARRAY['a', 'b'])[i % 2 + 1] END
FROM generate_series(1, 10) i;
GRANT SELECT, INSERT, UPDATE ON queue_texts TO hl_annotator;
SELECT hl_create_model('queue_texts', 'queue_texts', text_column => 'body', label_column => 'label') AS model_id \gset
DO $$
DECLARE
	id integer := (SELECT model_id FROM humanloop.models WHERE name = 'queue_texts');
BEGIN
	EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON queue_texts FOR EACH ROW'
				   ' WHEN (NEW.label IS NOT NULL) EXECUTE FUNCTION humanloop.label_trigger(%s, %L, %L)',
				   'hl_watch_' || id || '_insert', id, 'id', 'label');
	EXECUTE format('CREATE TRIGGER %I AFTER UPDATE OF label ON queue_texts FOR EACH ROW'
				   ' WHEN (OLD.label IS DISTINCT FROM NEW.label) EXECUTE FUNCTION humanloop.label_trigger(%s, %L, %L)',
				   'hl_watch_' || id || '_update', id, 'id', 'label');
END
$$;

-- An annotator without any privilege on the queue labels rows, and the
-- trigger queues each change.
SET ROLE hl_annotator;
UPDATE queue_texts SET label = 'a' WHERE id = 5;
UPDATE queue_texts SET label = 'a' WHERE id = 1;
INSERT INTO queue_texts VALUES (11, 'text 11', 'b');
SELECT item_id, change FROM humanloop.label_queue
WHERE model_id = :model_id ORDER BY queue_id;
SELECT queue_depth FROM hl_worker_status WHERE name = 'queue_texts';

-- The annotator cannot write the queue directly.
INSERT INTO humanloop.label_queue (model_id, item_id, change) VALUES (:model_id, '6', 'I');
UPDATE humanloop.label_queue SET change = 'D';
DELETE FROM humanloop.label_queue;
SELECT nextval('humanloop.label_queue_queue_id_seq');

-- The trigger function cannot be called outside a trigger.
SELECT humanloop.label_trigger();

-- A trigger on a table of the annotator's own that names the model queues
-- nothing.  The detail of the error names the model id, which depends on
-- the tests before this one, so only the message is shown.
RESET ROLE;
GRANT CREATE ON SCHEMA public TO hl_annotator;
SET ROLE hl_annotator;
CREATE TABLE own_labels (id int, label text);
DO $$
BEGIN
	EXECUTE format('CREATE TRIGGER forged AFTER INSERT ON own_labels FOR EACH ROW'
				   ' EXECUTE FUNCTION humanloop.label_trigger(%s, %L, %L)',
				   (SELECT model_id FROM humanloop.models WHERE name = 'queue_texts'), 'id', 'label');
END
$$;
\set VERBOSITY terse
INSERT INTO own_labels VALUES (1, 'a');
\set VERBOSITY default
DROP TRIGGER forged ON own_labels;
CREATE TRIGGER missing AFTER INSERT ON own_labels FOR EACH ROW
	EXECUTE FUNCTION humanloop.label_trigger('2147483647', 'id', 'label');
INSERT INTO own_labels VALUES (1, 'a');
DROP TRIGGER missing ON own_labels;
CREATE TRIGGER not_a_number AFTER INSERT ON own_labels FOR EACH ROW
	EXECUTE FUNCTION humanloop.label_trigger('first', 'id', 'label');
INSERT INTO own_labels VALUES (1, 'a');
DROP TRIGGER not_a_number ON own_labels;
CREATE TRIGGER negative AFTER INSERT ON own_labels FOR EACH ROW
	EXECUTE FUNCTION humanloop.label_trigger('-3', 'id', 'label');
INSERT INTO own_labels VALUES (1, 'a');
DROP TRIGGER negative ON own_labels;
CREATE TRIGGER padded AFTER INSERT ON own_labels FOR EACH ROW
	EXECUTE FUNCTION humanloop.label_trigger(' 01', 'id', 'label');
INSERT INTO own_labels VALUES (1, 'a');
DROP TRIGGER padded ON own_labels;
CREATE TRIGGER wrong_column AFTER INSERT ON own_labels FOR EACH ROW
	EXECUTE FUNCTION humanloop.label_trigger('1', 'key', 'label');
INSERT INTO own_labels VALUES (1, 'a');
SELECT count(*) AS queued FROM humanloop.label_queue WHERE model_id = :model_id;
RESET ROLE;

-- On the model's own table, a trigger must name the model's columns.  One
-- that passes the text column as the label column raises 39P01 and queues
-- nothing.
DO $$
BEGIN
	EXECUTE format('CREATE TRIGGER other_columns AFTER UPDATE ON queue_texts FOR EACH ROW'
				   ' EXECUTE FUNCTION humanloop.label_trigger(%s, %L, %L)',
				   (SELECT model_id FROM humanloop.models WHERE name = 'queue_texts'), 'id', 'body');
END
$$;
\set VERBOSITY terse
UPDATE queue_texts SET body = 'text 6, edited' WHERE id = 6;
\set VERBOSITY default
DROP TRIGGER other_columns ON queue_texts;

-- hl_train deletes the queued changes it learned, so the worker does not
-- apply them again.  This includes a change made in the same transaction.
BEGIN;
UPDATE queue_texts SET label = 'b' WHERE id = 6;
SELECT labelled_rows FROM hl_train('queue_texts');
SELECT count(*) AS queued FROM humanloop.label_queue WHERE model_id = :model_id;
COMMIT;

-- A trigger on a partitioned table fires with the partition as its
-- relation, and still queues for the model over the parent.
CREATE TABLE queue_parts (id int, body text, label text) PARTITION BY RANGE (id);
CREATE TABLE queue_parts_low PARTITION OF queue_parts FOR VALUES FROM (1) TO (100);
INSERT INTO queue_parts SELECT i, 'text ' || i, (ARRAY['a', 'b'])[i % 2 + 1] FROM generate_series(1, 4) i;
SELECT hl_create_model('queue_parts', 'queue_parts', text_column => 'body', label_column => 'label',
					   id_column => 'id') AS parts_model_id \gset
DO $$
DECLARE
	id integer := (SELECT model_id FROM humanloop.models WHERE name = 'queue_parts');
BEGIN
	EXECUTE format('CREATE TRIGGER %I AFTER INSERT ON queue_parts FOR EACH ROW'
				   ' WHEN (NEW.label IS NOT NULL) EXECUTE FUNCTION humanloop.label_trigger(%s, %L, %L)',
				   'hl_watch_' || id || '_insert', id, 'id', 'label');
END
$$;
INSERT INTO queue_parts VALUES (50, 'text 50', 'a');
SELECT item_id, change FROM humanloop.label_queue WHERE model_id = :parts_model_id;

SELECT hl_drop_model('queue_parts');
SELECT hl_drop_model('queue_texts');
SELECT count(*) AS left_in_queue FROM humanloop.label_queue WHERE model_id IN (:model_id, :parts_model_id);
DROP TABLE queue_parts, queue_texts, own_labels;
REVOKE CREATE ON SCHEMA public FROM hl_annotator;
DROP ROLE hl_annotator;
