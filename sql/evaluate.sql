-- Evaluation, abstention targets and their errors.
CREATE TABLE eval_items (id integer PRIMARY KEY, body text, intent text);
INSERT INTO eval_items VALUES
	(1, 'my card has not arrived yet', 'card'),
	(2, 'when will my new card be delivered', 'card'),
	(3, 'the card I ordered has not come', 'card'),
	(4, 'card delivery is taking too long', 'card'),
	(5, 'how long does card delivery take', 'card'),
	(6, 'still waiting for my card to arrive', 'card'),
	(7, 'has my card been sent out', 'card'),
	(8, 'where is my card', 'card'),
	(9, 'my transfer to another bank is pending', 'transfer'),
	(10, 'why has my bank transfer not gone through', 'transfer'),
	(11, 'the money I transferred has not arrived', 'transfer'),
	(12, 'how long does an international transfer take', 'transfer'),
	(13, 'a transfer I made yesterday is still pending', 'transfer'),
	(14, 'the recipient did not receive my transfer', 'transfer'),
	(15, 'my transfer failed', 'transfer'),
	(16, 'can I cancel a pending transfer', 'transfer'),
	(17, 'I forgot my password', 'password'),
	(18, 'how do I reset my password', 'password'),
	(19, 'the app says my password is wrong', 'password'),
	(20, 'I want to change my password', 'password'),
	(21, 'locked out after too many password attempts', 'password'),
	(22, 'password reset email never came', 'password'),
	(23, 'cannot sign in, password not accepted', 'password'),
	(24, 'need a new password for the app', 'password'),
	(25, 'card not delivered after ten days', NULL),
	(26, 'money transfer stuck as pending', NULL);

-- Held-out rows: one label the model has never seen, and one without a label.
CREATE TABLE eval_holdout (body text, intent text, note text);
INSERT INTO eval_holdout VALUES
	('my new card never came', 'card', 'a'),
	('reset my password please', 'password', 'b'),
	('bank transfer is pending', 'transfer', 'c'),
	('close my account', 'account', 'd'),
	('please close the account', 'account', 'e'),
	('something else', NULL, 'f');

SELECT hl_create_model('eval', 'eval_items', text_column => 'body', label_column => 'intent') > 0 AS created;

-- Cross-validation works before the first training; the version is then null.
SELECT e->>'method' AS method, e->'version' AS version, (e->>'folds')::int AS folds,
	   (e->>'rows')::int AS rows, (e->>'accuracy')::float BETWEEN 0 AND 1 AS accuracy_ok,
	   (e->>'accuracy_low')::float <= (e->>'accuracy')::float AS low_ok,
	   (e->>'accuracy_high')::float >= (e->>'accuracy')::float AS high_ok
FROM hl_evaluate('eval', k => 3) e;

SELECT version FROM hl_train('eval');

-- Every metric is there, per class too.
SELECT array(SELECT jsonb_object_keys(e) ORDER BY 1) AS keys,
	   array(SELECT jsonb_object_keys(e->'abstention') ORDER BY 1) AS abstention_keys,
	   array(SELECT jsonb_object_keys(e->'per_class') ORDER BY 1) AS classes,
	   array(SELECT jsonb_object_keys(e->'per_class'->'card') ORDER BY 1) AS class_keys
FROM hl_evaluate('eval') e;
SELECT (e->>'nll')::float > 0 AS nll_positive,
	   (e->>'brier')::float BETWEEN 0 AND 2 AS brier_ok,
	   (e->>'ece')::float BETWEEN 0 AND 1 AS ece_ok,
	   (e->>'macro_f1')::float BETWEEN 0 AND 1 AS macro_f1_ok,
	   (e->'abstention'->>'coverage')::float BETWEEN 0 AND 1 AS coverage_ok
FROM hl_evaluate('eval', k => 4) e;

-- A labelled relation: unknown labels are counted, not an error.
SELECT e->>'method' AS method, e->>'relation' AS relation, (e->>'version')::int AS version,
	   (e->>'rows')::int AS rows, (e->>'unknown_label_rows')::int AS unknown_label_rows,
	   e->'unknown_labels' AS unknown_labels, (e->>'unlabelled_rows')::int AS unlabelled_rows,
	   (e->>'accuracy')::float BETWEEN 0 AND 1 AS accuracy_ok
FROM hl_evaluate('eval', 'eval_holdout') e;

-- Other column names are named by parameters; here "note" serves as the label.
SELECT (e->>'rows')::int AS rows, (e->>'unknown_label_rows')::int AS unknown_label_rows
FROM hl_evaluate('eval', 'eval_holdout', text_column => 'body', label_column => 'note') e;

-- Every evaluation is stored with the version it evaluated.
SELECT version, method, relation, folds, rows, accuracy BETWEEN 0 AND 1 AS accuracy_ok
FROM hl_evaluations WHERE name = 'eval' ORDER BY created_at, method, relation;

-- Abstention for a target accuracy, then for a target coverage.
SELECT score, threshold BETWEEN 0 AND 1.0001 AS threshold_ok,
	   estimated_coverage BETWEEN 0 AND 1 AS coverage_ok,
	   coverage_low <= estimated_coverage AND coverage_high >= estimated_coverage AS interval_ok,
	   folds
FROM hl_set_abstention('eval', target_accuracy => 0.9, k => 3);

SELECT score, estimated_coverage >= 0.5 AS coverage_met, estimated_accuracy BETWEEN 0 AND 1 AS accuracy_ok,
	   folds
FROM hl_set_abstention('eval', target_coverage => 0.5);

-- hl_classify abstains below the threshold the rule chose.
SELECT bool_and((c).abstain = ((c).probability < (m.metrics->'abstention'->>'threshold')::float)) AS follows_rule
FROM (SELECT hl_classify('eval', body) AS c FROM eval_items
	  UNION ALL SELECT hl_classify('eval', body) FROM eval_holdout) s, hl_models m
WHERE m.name = 'eval';

-- The target is a model option, and every full training chooses the threshold again.
SELECT options->'abstention' AS target FROM humanloop.models WHERE name = 'eval';
SELECT version, metrics->'abstention'->>'target_coverage' AS target_coverage,
	   (metrics->'abstention'->>'coverage')::float >= 0.5 AS coverage_met
FROM hl_train('eval');

-- The score can be chosen.
SELECT score FROM hl_set_abstention('eval', target_coverage => 0.8, score => 'entropy');
SELECT bool_and((c).abstain = (-(c).entropy < (m.metrics->'abstention'->>'threshold')::float)) AS follows_rule
FROM (SELECT hl_classify('eval', body) AS c FROM eval_items) s, hl_models m
WHERE m.name = 'eval';

-- Fewer than ten labels: training and evaluation work, with wide intervals.
CREATE TABLE tiny (id integer PRIMARY KEY, body text, intent text);
INSERT INTO tiny VALUES
	(1, 'card not arrived', 'card'),
	(2, 'where is my card', 'card'),
	(3, 'card delivery', 'card'),
	(4, 'transfer pending', 'transfer'),
	(5, 'transfer failed', 'transfer'),
	(6, 'transfer not received', 'transfer'),
	(7, 'is my card coming', NULL);
SELECT hl_create_model('tiny', 'tiny', text_column => 'body', label_column => 'intent') > 0 AS created;
SELECT version, labelled_rows, classes FROM hl_train('tiny');
SELECT (e->>'rows')::int AS rows, (e->>'folds')::int AS folds,
	   (e->>'accuracy_high')::float - (e->>'accuracy_low')::float > 0.3 AS wide_interval
FROM hl_evaluate('tiny', k => 2) e;
SELECT (e->>'rows')::int AS rows FROM hl_evaluate('tiny', k => 6) e;
-- Without k there are five folds, or one per labelled item when fewer.
SELECT (e->>'folds')::int AS folds FROM hl_evaluate('tiny') e;
UPDATE tiny SET intent = NULL WHERE id IN (3, 5, 6);
SELECT (e->>'folds')::int AS folds FROM hl_evaluate('tiny') e;
-- hl_set_abstention shrinks its default folds the same way.
SELECT folds FROM hl_set_abstention('tiny', target_accuracy => 0.9);
UPDATE tiny SET intent = 'card' WHERE id = 3;
UPDATE tiny SET intent = 'transfer' WHERE id IN (5, 6);
SELECT folds, coverage_high - coverage_low > 0.3 AS wide_interval
FROM hl_set_abstention('tiny', target_accuracy => 0.9, k => 3);

-- Bad input.
SELECT hl_set_abstention('eval', target_accuracy => 0);
SELECT hl_set_abstention('eval', target_accuracy => 1);
SELECT hl_set_abstention('eval', target_accuracy => 1.5);
SELECT hl_set_abstention('eval', target_accuracy => 1.0000001);
SELECT hl_set_abstention('eval', target_coverage => -0.1);
SELECT hl_set_abstention('eval', target_coverage => 1);
SELECT hl_set_abstention('eval', target_accuracy => 'NaN');
SELECT hl_set_abstention('eval', target_accuracy => 0.9, target_coverage => 0.5);
SELECT hl_set_abstention('eval');
SELECT hl_set_abstention('eval', target_accuracy => 0.9, score => 'margin');
SELECT hl_set_abstention('eval', target_accuracy => 0.9, k => 1);
SELECT hl_set_abstention('eval', target_accuracy => 0.9, k => 100);
SELECT hl_set_abstention('missing', target_accuracy => 0.9);
SELECT hl_evaluate('eval', k => 1);
SELECT hl_evaluate('eval', k => 0);
SELECT hl_evaluate('eval', k => 25);
SELECT hl_evaluate('tiny', k => 7);
SELECT hl_evaluate('eval', 'eval_holdout', label_column => 'category');
SELECT hl_evaluate('eval', 'eval_holdout', text_column => 'text');
CREATE TABLE no_label (body text);
SELECT hl_evaluate('eval', 'no_label');
SELECT hl_evaluate('eval', text_column => 'body');
SELECT hl_evaluate('eval', 'eval_holdout', k => 3);
SELECT hl_evaluate('eval', 'eval_items', text_column => 'id');
SELECT hl_evaluate(NULL);
SELECT hl_evaluate('missing');
SELECT hl_create_model('bad_target', 'eval_items', text_column => 'body', label_column => 'intent',
					   options => '{"abstention": {"target_accuracy": 2}}');
SELECT hl_create_model('bad_target', 'eval_items', text_column => 'body', label_column => 'intent',
					   options => '{"abstention": {"target_accuracy": 0.9, "target_coverage": 0.9}}');
SELECT hl_create_model('bad_target', 'eval_items', text_column => 'body', label_column => 'intent',
					   options => '{"abstention": {"goal": 0.9}}');
SELECT hl_create_model('bad_target', 'eval_items', text_column => 'body', label_column => 'intent',
					   options => '{"abstention": 0.9}');

-- An untrained model has no version to evaluate on a relation or to set a rule on.
SELECT hl_create_model('fresh', 'eval_items', text_column => 'body', label_column => 'intent') > 0 AS created;
SELECT hl_evaluate('fresh', 'eval_holdout');
SELECT hl_set_abstention('fresh', target_accuracy => 0.9);

-- Tasks other than classification are not evaluated yet.
BEGIN;
ALTER TABLE humanloop.models DROP CONSTRAINT models_task_check;
UPDATE humanloop.models SET task = 'spans' WHERE name = 'fresh';
SELECT hl_evaluate('fresh');
ROLLBACK;

-- When to stop: few labels per class, then two versions to compare.
SELECT labelled_rows, classes, version, accuracy_source, compared_version, pool_sample,
	   recommendation, reason
FROM hl_status('eval');
UPDATE eval_items SET intent = 'card' WHERE id = 25;
SELECT version FROM hl_train('eval');
SELECT (hl_evaluate('eval', k => 3)->>'rows')::int AS rows;
SELECT labelled_rows, version, accuracy_source, accuracy_low <= estimated_accuracy AS interval_ok,
	   compared_version, agreement BETWEEN 0 AND 1 AS agreement_ok, pool_sample,
	   mean_entropy > 0 AS entropy_left, mean_mutual_information >= 0 AS mi_ok,
	   mean_confidence > 0.5 AND mean_confidence < 1 AS confidence_ok, recommendation
FROM hl_status('eval', sample => 10);
-- A labelled relation apart from the training labels outranks
-- cross-validation, and the model's own relation, which scores the fit,
-- does not count.
SELECT (hl_evaluate('eval', 'eval_items')->>'rows')::int AS own_rows;
SELECT accuracy_source FROM hl_status('eval', sample => 10);
SELECT (hl_evaluate('eval', 'eval_holdout')->>'accuracy')::float8 AS holdout_accuracy \gset
SELECT accuracy_source, estimated_accuracy = :holdout_accuracy AS from_holdout
FROM hl_status('eval', sample => 10);
-- It still counts once that relation is dropped.
CREATE TABLE eval_spare AS SELECT * FROM eval_holdout;
SELECT (hl_evaluate('eval', 'eval_spare')->>'accuracy')::float8 AS spare_accuracy \gset
DROP TABLE eval_spare;
SELECT accuracy_source, estimated_accuracy = :spare_accuracy AS from_spare
FROM hl_status('eval', sample => 10);
SELECT hl_status('eval', sample => 0);
SELECT hl_status('fresh');

-- One class cannot stop, however many rows it has.
CREATE TABLE one_class (id integer PRIMARY KEY, body text, intent text);
INSERT INTO one_class SELECT i, 'card number ' || i, CASE WHEN i <= 12 THEN 'card' END
FROM generate_series(1, 15) AS i;
SELECT hl_create_model('one_class', 'one_class', text_column => 'body', label_column => 'intent') > 0 AS created;
SET client_min_messages = error;
SELECT version FROM hl_train('one_class');
RESET client_min_messages;
SELECT recommendation, reason FROM hl_status('one_class');
SELECT hl_drop_model('one_class');
DROP TABLE one_class;

-- Labels in a separate table, several per item: an item counts once per label.
CREATE TABLE status_items (id integer PRIMARY KEY, body text);
CREATE TABLE status_labels (item integer, intent text);
INSERT INTO status_items SELECT i, (ARRAY['card lost', 'send money'])[i % 2 + 1] || ' case ' || i
FROM generate_series(1, 30) AS i;
INSERT INTO status_labels SELECT i, CASE WHEN i <= 18 THEN 'transfer' ELSE 'card' END
FROM generate_series(1, 24) AS i;
INSERT INTO status_labels SELECT i, 'card' FROM generate_series(19, 24) AS i;
SELECT hl_create_model('status_split', 'status_items', text_column => 'body', label_column => 'intent',
					   labels_relation => 'status_labels', labels_id_column => 'item') > 0 AS created;
SELECT labelled_rows FROM hl_train('status_split');
INSERT INTO status_labels VALUES (25, 'transfer');
SELECT labelled_rows FROM hl_train('status_split');
SELECT labelled_rows, compared_version, pool_sample, recommendation, reason FROM hl_status('status_split');
SELECT hl_drop_model('status_split');
DROP TABLE status_labels, status_items;

-- The compared version needs at least 2% fewer labels: one more label on
-- 60 is too close, two are enough.
CREATE TABLE status_steps (id integer PRIMARY KEY, body text, intent text);
INSERT INTO status_steps SELECT i, (ARRAY['card lost', 'send money'])[i % 2 + 1] || ' case ' || i,
	   CASE WHEN i <= 60 THEN (ARRAY['card', 'transfer'])[i % 2 + 1] END
FROM generate_series(1, 80) AS i;
SELECT hl_create_model('status_steps', 'status_steps', text_column => 'body', label_column => 'intent') > 0 AS created;
SELECT version, labelled_rows FROM hl_train('status_steps');
UPDATE status_steps SET intent = 'card' WHERE id = 62;
SELECT version, labelled_rows FROM hl_train('status_steps');
SELECT compared_version, reason FROM hl_status('status_steps');
UPDATE status_steps SET intent = 'transfer' WHERE id = 61;
SELECT version, labelled_rows FROM hl_train('status_steps');
SELECT compared_version, agreement IS NOT NULL AS compared FROM hl_status('status_steps');
SELECT hl_drop_model('status_steps');
DROP TABLE status_steps;

-- When the rows' confidences tie, no threshold meets a coverage target,
-- and a NOTICE reports how far the rule is from it.
CREATE TABLE ties (id integer PRIMARY KEY, body text, intent text);
INSERT INTO ties SELECT i, CASE WHEN i % 2 = 0 THEN 'card late' ELSE 'transfer failed' END,
					 CASE WHEN i % 2 = 0 THEN 'card' ELSE 'transfer' END
FROM generate_series(1, 20) i;
SELECT hl_create_model('ties', 'ties', text_column => 'body', label_column => 'intent') > 0 AS created;
SELECT labelled_rows FROM hl_train('ties');
SELECT round(estimated_coverage::numeric, 3) AS estimated_coverage
FROM hl_set_abstention('ties', target_coverage => 0.9);
SELECT hl_drop_model('ties');
DROP TABLE ties;

SELECT hl_drop_model('eval'), hl_drop_model('tiny'), hl_drop_model('fresh');
SELECT count(*) FROM hl_evaluations WHERE name IN ('eval', 'tiny', 'fresh');
