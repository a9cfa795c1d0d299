-- Choosing rows to label.

-- Before any training: a random cold-start batch, with a NOTICE.
SELECT hl_create_model('fresh', 'tickets', text_column => 'body', label_column => 'category') > 0 AS created;
SELECT count(*), count(DISTINCT id), bool_and(label IS NULL) AS no_predictions
FROM hl_next_batch('fresh', 5);

-- After training: only unlabelled rows, best first, with predictions.
SELECT count(*) AS rows, bool_and(t.category IS NULL) AS all_unlabelled
FROM hl_next_batch('tickets', 5) b JOIN tickets t ON t.id = b.id::integer;

SELECT bool_and(score >= 0) AS scored, bool_and(label IS NOT NULL) AS predicted,
	   bool_and(abs(score - mutual_information) < 1e-9) AS bald_is_mutual_information
FROM hl_next_batch('tickets', 12);

-- Scores come out in descending order.
SELECT bool_and(score <= previous) AS descending
FROM (SELECT score, lag(score) OVER () AS previous FROM hl_next_batch('tickets', 12)) s
WHERE previous IS NOT NULL;

-- Each strategy returns a batch; the same call returns the same batch.
SELECT s.strategy, count(*)
FROM unnest(ARRAY['bald', 'entropy', 'margin', 'least_confidence', 'random']) AS s(strategy),
	 LATERAL hl_next_batch('tickets', 3, s.strategy)
GROUP BY s.strategy ORDER BY s.strategy;
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM hl_next_batch('tickets', 4, 'margin'))
	   AS repeatable
FROM hl_next_batch('tickets', 4, 'margin');

-- Asking for more rows than the pool has returns the pool.
SELECT count(*) FROM hl_next_batch('tickets', 100);

-- With annotations in a separate table, annotated rows leave the pool.
SELECT count(*) FROM hl_next_batch('tickets_annotated', 100);

-- Nothing left to label: an empty result and a NOTICE.
CREATE TABLE done (id int PRIMARY KEY, body text, label text);
INSERT INTO done VALUES (1, 'card', 'card'), (2, 'password', 'password');
SELECT hl_create_model('done', 'done', text_column => 'body', label_column => 'label') > 0 AS created;
SELECT version FROM hl_train('done');
SELECT count(*) FROM hl_next_batch('done', 10);
