-- Self-training: confident unlabelled rows join the fit with their
-- predicted label and a small weight.
SET humanloop.reservation_timeout = 0;

-- Three intents with 16 wordings each, and three patterns per intent.  The
-- first two patterns of each intent are labelled: 96 items, enough for a
-- held-out split.  The third pattern's rows have no label.
CREATE TABLE requests (id integer PRIMARY KEY, body text NOT NULL, intent text);
INSERT INTO requests (id, body, intent)
SELECT t.k * 100 + w.n, format(t.pattern, w.word), CASE WHEN t.k % 3 <> 0 THEN t.intent END
FROM (VALUES (1, 'my %s card has not arrived yet', 'card'),
			 (2, 'when will my %s card be delivered', 'card'),
			 (3, 'the %s card I ordered is late', 'card'),
			 (4, 'my %s transfer is still pending', 'transfer'),
			 (5, 'the %s transfer did not reach the recipient', 'transfer'),
			 (6, 'why did my %s transfer fail', 'transfer'),
			 (7, 'I want a refund for the %s order', 'refund'),
			 (8, 'please return my money for the %s purchase', 'refund'),
			 (9, 'how long does a %s refund take', 'refund')) AS t (k, pattern, intent),
	 unnest(ARRAY['new', 'old', 'spare', 'business', 'joint', 'savings', 'main', 'second',
				  'travel', 'student', 'family', 'premium', 'basic', 'online', 'local', 'foreign'])
	 WITH ORDINALITY AS w (word, n);
SELECT count(intent) AS labelled, count(*) - count(intent) AS unlabelled FROM requests;

SELECT hl_create_model('selftrained', 'requests', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 0.3}') > 0 AS created;
SELECT hl_create_model('plain', 'requests', text_column => 'body', label_column => 'intent') > 0
	   AS created;

-- The confident unlabelled rows become pseudo-labelled rows: at most the 48
-- unlabelled ones, and none for the plain model.  They are kept when they
-- do not lower the accuracy on held-out labelled rows.
SELECT labelled_rows, (metrics->>'pseudo_labelled_rows')::int BETWEEN 1 AND 48 AS pseudo_labelled,
	   (metrics->>'heldout_rows')::int > 0 AS calibrated_on_labels,
	   metrics->>'self_training' AS self_training
FROM hl_train('selftrained');
SELECT (metrics->>'pseudo_labelled_rows')::int AS pseudo_labelled_rows FROM hl_train('plain');

-- Both models get the unlabelled pattern right.
SELECT body, hl_predict('selftrained', body) AS selftrained, hl_predict('plain', body) AS plain
FROM requests WHERE id IN (301, 602, 903) ORDER BY id;

-- Cross-validation fits the labelled rows alone, and batches come as usual.
SELECT (hl_evaluate('selftrained', k => 3))->>'labelled_items' AS labelled_items;
SELECT count(*) AS batch_rows FROM hl_next_batch('selftrained', 5, options => '{"reserve": false}');

-- A second training starts from scratch: a warm start from a self-trained
-- version would keep its own predictions.
UPDATE requests SET intent = 'card' WHERE id = 301;
SELECT (metrics->>'warm_start')::boolean AS warm_start FROM hl_train('selftrained');

-- With too few labels for a held-out split there are no pseudo-labels.
CREATE TABLE few (id integer PRIMARY KEY, body text NOT NULL, intent text);
INSERT INTO few
SELECT id, body, CASE WHEN id % 100 <= 2 THEN intent END FROM requests;
SELECT hl_create_model('few', 'few', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 0.3}') > 0 AS created;
SELECT labelled_rows, (metrics->>'pseudo_labelled_rows')::int AS pseudo_labelled_rows,
	   metrics->>'self_training' AS self_training
FROM hl_train('few');

-- With labels of one class every row would take it: no pseudo-labels.
CREATE TABLE single (id integer PRIMARY KEY, body text NOT NULL, intent text);
INSERT INTO single
SELECT id, body, CASE WHEN id / 100 IN (1, 2, 4, 5) THEN 'card' END FROM requests;
SELECT hl_create_model('single', 'single', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 0.3}') > 0 AS created;
SELECT labelled_rows, (metrics->>'heldout_rows')::int > 0 AS calibrated_on_labels,
	   (metrics->>'pseudo_labelled_rows')::int AS pseudo_labelled_rows,
	   metrics->>'self_training' AS self_training
FROM hl_train('single');

-- Pseudo-labels that would lower the held-out accuracy are dropped.  The
-- unlabelled rows contain "refund" twice and "delivery" once, so they are
-- confidently refund.  Fitted as refund, they would pull "delivery" towards
-- refund, and held-out delivery rows, which contain little else, would turn
-- into refunds.
CREATE TABLE mixed (id integer PRIMARY KEY, body text NOT NULL, intent text);
INSERT INTO mixed
SELECT g, format('refund %s', g * 7919), 'refund' FROM generate_series(1, 30) g
UNION ALL
SELECT 100 + g, format('delivery %s', g * 104729), 'delivery' FROM generate_series(1, 30) g
UNION ALL
SELECT 1000 + g, format('refund refund delivery %s', g * 1299709), NULL
FROM generate_series(1, 300) g;
SELECT hl_create_model('mixed', 'mixed', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 1}') > 0 AS created;
SELECT labelled_rows, (metrics->>'pseudo_labelled_rows')::int AS pseudo_labelled_rows,
	   (metrics->>'heldout_accuracy')::float8 AS heldout_accuracy,
	   metrics->>'self_training' AS self_training
FROM hl_train('mixed');
SELECT hl_predict('mixed', 'delivery 12') AS delivery_text;

-- Bad values.
SELECT hl_create_model('bad', 'requests', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 1.5}');
SELECT hl_create_model('bad', 'requests', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": -0.1}');
SELECT hl_create_model('bad', 'requests', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": 1e-46}');
SELECT hl_create_model('bad', 'requests', text_column => 'body', label_column => 'intent',
					   options => '{"self_training": "0.3"}');
CREATE TABLE tagged (id integer PRIMARY KEY, text text, spans jsonb);
SELECT hl_create_model('bad', 'tagged', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"self_training": 0.3}');

SELECT hl_drop_model('selftrained'), hl_drop_model('plain'), hl_drop_model('few'),
	   hl_drop_model('single'), hl_drop_model('mixed');
DROP TABLE requests, few, single, mixed, tagged;
