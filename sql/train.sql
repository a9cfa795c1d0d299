-- Training: versions, metrics, label combination and the single-class case.
SELECT version, labelled_rows, classes, seconds >= 0 AS timed,
	   metrics ? 'train_accuracy' AS has_accuracy,
	   (metrics->>'documents')::int AS documents
FROM hl_train('tickets');

SELECT name, labels, current_version, labelled_rows, classes, trained_at IS NOT NULL AS trained
FROM hl_models WHERE name = 'tickets';

-- Training again stores version 2 and makes it current.
SELECT version FROM hl_train('tickets');
SELECT model_id = (SELECT model_id FROM humanloop.models WHERE name = 'tickets') AS same_model,
	   version, labelled_rows, labels
FROM humanloop.model_versions
WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'tickets')
ORDER BY version;

-- A training that fails (here: rolled back) leaves the previous version current.
BEGIN;
SELECT version FROM hl_train('tickets');
ROLLBACK;
SELECT current_version FROM hl_models WHERE name = 'tickets';

-- Annotations: item 9 gets two votes for "card" and one for "transfer".
INSERT INTO ticket_labels VALUES (9, 'ana', 'card'), (9, 'ben', 'card'), (9, 'cy', 'transfer');
SELECT version, labelled_rows, classes, (metrics->>'training_rows')::int AS training_rows
FROM hl_train('tickets_annotated');
-- NULL annotations do not count as labels.
INSERT INTO ticket_labels VALUES (10, 'ana', NULL);
SELECT labelled_rows FROM hl_train('tickets_annotated');

-- Only one class labelled so far: a warning, and a usable model.
CREATE TABLE early (id bigint PRIMARY KEY, body varchar(200), label text);
INSERT INTO early VALUES
	(1, 'my card has not arrived', 'card'),
	(2, 'card delivery is slow', 'card'),
	(3, 'how do I reset my password', NULL);
SELECT hl_create_model('early', 'early', text_column => 'body', label_column => 'label') > 0 AS created;
SELECT version, labelled_rows, classes FROM hl_train('early');
SELECT label, probability < 1 AS below_one FROM hl_predict_proba('early', 'reset my password');

-- 80 labels of one class, enough items for a held-out split.  Held-out
-- rows of one class are right by any margin and would make every
-- prediction certain, so there is no split and the probability stays
-- well below one.
CREATE TABLE one_kind (id integer PRIMARY KEY, body text, kind text);
INSERT INTO one_kind SELECT i, 'refund for order ' || i || ' of store ' || i % 7,
	   CASE WHEN i <= 80 THEN 'refund' END
FROM generate_series(1, 100) AS i;
SELECT hl_create_model('one_kind', 'one_kind', text_column => 'body', label_column => 'kind') > 0 AS created;
SELECT labelled_rows, classes, metrics->>'heldout_rows' AS heldout_rows FROM hl_train('one_kind');
SELECT label, probability < 0.99 AS uncertain FROM hl_classify('one_kind', 'where is my parcel');
-- A single row of a second class never goes out either, so again no split.
UPDATE one_kind SET kind = 'fraud', body = 'someone used my card abroad' WHERE id = 1;
SELECT labelled_rows, classes, metrics->>'heldout_rows' AS heldout_rows FROM hl_train('one_kind');
SELECT label, probability < 1 AS below_one FROM hl_classify('one_kind', 'refund for order 3 of store 3');
SELECT hl_drop_model('one_kind');
DROP TABLE one_kind;

-- A label with a space around it is a class of its own, and training warns.
CREATE TABLE padded (id integer PRIMARY KEY, body text, kind text);
INSERT INTO padded VALUES (1, 'card lost', 'card'), (2, 'card stolen', 'card '),
	(3, 'send money', 'transfer'), (4, 'money sent', 'transfer');
SELECT hl_create_model('padded', 'padded', text_column => 'body', label_column => 'kind') > 0 AS created;
SELECT classes FROM hl_train('padded');
SELECT hl_drop_model('padded');
DROP TABLE padded;

-- Every version is listed with its kind; hl_rollback makes an earlier one current.
SELECT version, kind, labelled_rows, classes, current FROM hl_model_versions
WHERE name = 'tickets' ORDER BY version;
SELECT hl_rollback('tickets', 1) AS was_current;
SELECT current_version FROM hl_models WHERE name = 'tickets';
SELECT version, current FROM hl_model_versions WHERE name = 'tickets' ORDER BY version;
-- Training after a rollback stores the next number.
SELECT version FROM hl_train('tickets');

-- A version read inside a transaction that rolls back is not served again
-- when a later training reuses its number in the same session.
BEGIN;
UPDATE tickets SET category = 'zebra' WHERE id = 1;
SELECT version AS zebra_version FROM hl_train('tickets');
SELECT count(*) FILTER (WHERE label = 'zebra') AS zebra_classes
FROM hl_predict_proba('tickets', 'my card has not arrived');
ROLLBACK;
BEGIN;
SELECT version AS reused_number FROM hl_train('tickets');
SELECT count(*) FILTER (WHERE label = 'zebra') AS zebra_classes
FROM hl_predict_proba('tickets', 'my card has not arrived');
ROLLBACK;
-- The same after a rollback to a savepoint.
BEGIN;
SAVEPOINT before_zebra;
UPDATE tickets SET category = 'zebra' WHERE id = 1;
SELECT version AS zebra_version FROM hl_train('tickets');
SELECT count(*) FILTER (WHERE label = 'zebra') AS zebra_classes
FROM hl_predict_proba('tickets', 'my card has not arrived');
ROLLBACK TO SAVEPOINT before_zebra;
SELECT version AS reused_number FROM hl_train('tickets');
SELECT count(*) FILTER (WHERE label = 'zebra') AS zebra_classes
FROM hl_predict_proba('tickets', 'my card has not arrived');
ROLLBACK;

-- humanloop.keep_versions prunes the oldest versions.
SET humanloop.keep_versions = 2;
SELECT version FROM hl_train('tickets');
SELECT array_agg(version ORDER BY version) AS kept FROM hl_model_versions WHERE name = 'tickets';
RESET humanloop.keep_versions;

-- Without shared_preload_libraries, unwatching works and watching says what to do.
SELECT hl_watch('tickets', false);
SELECT name, watched, queue_depth FROM hl_worker_status WHERE name = 'tickets';

-- A second training on enough labels starts from the current version.  It
-- keeps that version's temperature and variance scale, because its starting
-- weights have seen the held-out rows, and reports no held-out accuracy.
CREATE TABLE many (id integer PRIMARY KEY, body text, topic text);
INSERT INTO many
SELECT i, CASE i % 3 WHEN 0 THEN 'card payment declined at shop ' WHEN 1 THEN 'transfer to my friend failed ' ELSE 'reset my password please ' END
		  || md5(i::text),
	   CASE i % 3 WHEN 0 THEN 'card' WHEN 1 THEN 'transfer' ELSE 'password' END
FROM generate_series(1, 240) AS i;
SELECT hl_create_model('many', 'many', text_column => 'body', label_column => 'topic') > 0 AS created;
SELECT (metrics->>'warm_start')::boolean AS warm, metrics->>'heldout_accuracy' IS NOT NULL AS heldout_reported
FROM hl_train('many');
CREATE TEMP TABLE first_fit AS SELECT metrics FROM hl_models WHERE name = 'many';
SELECT (metrics->>'warm_start')::boolean AS warm, metrics->>'heldout_accuracy' IS NOT NULL AS heldout_reported,
	   (metrics->>'heldout_rows')::int AS heldout_rows
FROM hl_train('many');
SELECT (m.metrics->>'temperature') = (f.metrics->>'temperature') AS same_temperature,
	   (m.metrics->>'variance_scale') = (f.metrics->>'variance_scale') AS same_variance_scale
FROM hl_models m, first_fit f WHERE m.name = 'many';
SELECT hl_drop_model('many');
DROP TABLE many;
