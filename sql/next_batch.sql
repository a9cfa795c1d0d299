-- Choosing rows to label.

-- Reservations are tested at the end.  Until then every call gets the whole pool.
SET humanloop.reservation_timeout = 0;

-- Before any training: a cold-start batch that covers the pool, with a NOTICE.
SELECT hl_create_model('fresh', 'tickets', text_column => 'body', label_column => 'category') > 0 AS created;
SELECT count(*), count(DISTINCT id), bool_and(label IS NULL) AS no_predictions,
	   bool_and(density > 0) AS has_density, bool_and(cost >= 1) AS has_cost
FROM hl_next_batch('fresh', 6);

-- Coverage spreads over the topics: the six rows are not all of one kind.
SELECT count(DISTINCT CASE WHEN b.id::int <= 12 THEN 'card' WHEN b.id::int <= 24 THEN 'transfer' ELSE 'password' END) > 1
	   AS several_topics
FROM hl_next_batch('fresh', 6) b;

-- After training: only unlabelled rows, best first, with predictions.
-- The default strategy is margin with the option disagreement 3.
SELECT bool_and(abs(d.score - m.score) < 1e-12) AS default_is_margin,
	   bool_and(d.disagreement IS NOT NULL) AS default_estimates_disagreement
FROM hl_next_batch('tickets', 12) d
JOIN hl_next_batch('tickets', 12, 'margin', '{"disagreement": 3}') m USING (id);
SELECT bool_and(disagreement IS NULL) AS margin_alone_estimates_none
FROM hl_next_batch('tickets', 12, 'margin');
SELECT count(*) AS rows, bool_and(t.category IS NULL) AS all_unlabelled
FROM hl_next_batch('tickets', 5) b JOIN tickets t ON t.id = b.id::integer;

SELECT bool_and(score >= 0) AS scored, bool_and(label IS NOT NULL) AS predicted,
	   bool_and(abs(uncertainty - mutual_information) < 1e-9) AS bald_is_mutual_information,
	   bool_and(abs(score - uncertainty) < 1e-9) AS plain_score
FROM hl_next_batch('tickets', 12, 'bald');

-- Scores come out in descending order.
SELECT bool_and(score <= previous) AS descending
FROM (SELECT score, lag(score) OVER () AS previous FROM hl_next_batch('tickets', 12)) s
WHERE previous IS NOT NULL;

-- Each strategy returns a batch; the same call returns the same batch.
SELECT s.strategy, count(*)
FROM unnest(ARRAY['bald', 'entropy', 'margin', 'least_confidence', 'random', 'coverage', 'hybrid']) AS s(strategy),
	 LATERAL hl_next_batch('tickets', 3, s.strategy)
GROUP BY s.strategy ORDER BY s.strategy;
SELECT array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM hl_next_batch('tickets', 4, 'margin'))
	   AS repeatable
FROM hl_next_batch('tickets', 4, 'margin');
SELECT (SELECT array_agg(id) FROM hl_next_batch('tickets', 4, 'random', '{"seed": 1}')) <>
	   (SELECT array_agg(id) FROM hl_next_batch('tickets', 4, 'random', '{"seed": 2}')) AS seed_matters;

-- Margin and least confidence scores follow from the probabilities.
SELECT bool_and(abs(uncertainty - (1 - probability)) < 1e-6) AS least_confidence
FROM hl_next_batch('tickets', 12, 'least_confidence');

-- Hybrid ranks by margin, then weighs each candidate by the rank of its
-- mutual information: the score stays between (1 - e) and 1 times the margin.
SELECT bool_and(abs(h.uncertainty - m.uncertainty) < 1e-9) AS margin_first,
	   bool_and(h.score <= h.uncertainty + 1e-9 AND h.score >= 0.5 * h.uncertainty - 1e-9) AS weighted
FROM hl_next_batch('tickets', 12, 'hybrid') h JOIN hl_next_batch('tickets', 12, 'margin') m USING (id);
SELECT bool_and(h.score >= 0.8 * h.uncertainty - 1e-9) AS lighter_weight
FROM hl_next_batch('tickets', 12, 'hybrid', '{"epistemic": 0.2}') h;

-- Options: density, cost and diversity change the score, each visibly.
SELECT bool_and(abs(score - uncertainty * density) < 1e-9) AS density_multiplies
FROM hl_next_batch('tickets', 12, 'entropy', '{"density": 1}');
SELECT bool_and(abs(score - uncertainty / cost) < 1e-9) AS cost_divides
FROM hl_next_batch('tickets', 12, 'entropy', '{"cost": 1}');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM hl_next_batch('tickets', 6, 'entropy', '{"diversity": 1}');
-- The column similarity shows the discount for rows already in the batch.
-- It is 0 for the first row, and the score is uncertainty x (1 - 0.5 s).
SELECT bool_and(similarity = 0 OR n > 1) AS first_row_alone,
	   bool_and(similarity BETWEEN 0 AND 1) AS similarity_in_range,
	   bool_or(similarity > 0) AS some_similar,
	   bool_and(abs(score - uncertainty * (1 - 0.5 * similarity)) < 1e-9) AS discount_shown
FROM hl_next_batch('tickets', 6, 'entropy', '{"diversity": 0.5}')
	 WITH ORDINALITY AS b (id, score, label, probability, entropy, mi, uncertainty,
						   density, cost, disagreement, similarity, novelty, n);
SELECT bool_and(similarity IS NULL) AS no_similarity_without_diversity
FROM hl_next_batch('tickets', 6, 'entropy');

-- A class cap keeps any predicted class to its share of the batch.
SELECT max(per_class) <= 2 AS capped
FROM (SELECT label, count(*) AS per_class
	  FROM hl_next_batch('tickets', 6, 'entropy', '{"max_class_share": 0.34}') GROUP BY label) c;

-- When every predicted class has its share, the best other rows fill the batch.
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM hl_next_batch('tickets', 6, 'entropy', '{"max_class_share": 0.01}');
SELECT count(*) AS rows, count(DISTINCT id) AS distinct_rows
FROM hl_next_batch('tickets', 6, 'entropy', '{"max_class_share": 0.01, "diversity": 0.5}');

-- Classes that annotators disagree on: requests for money back read alike
-- and carry either label, refund or chargeback, while card texts agree.
CREATE TABLE disputes (id int PRIMARY KEY, body text, label text);
INSERT INTO disputes VALUES
	(1, 'I want my money back for this purchase', 'refund'),
	(2, 'I want my money back for this purchase please', 'chargeback'),
	(3, 'please return the money for my order', 'refund'),
	(4, 'please return the money for my order now', 'chargeback'),
	(5, 'get my money back from the shop', 'chargeback'),
	(6, 'get my money back from the shop today', 'refund'),
	(7, 'my card has not arrived', 'card'),
	(8, 'card still not delivered', 'card'),
	(9, 'when will my card arrive', 'card'),
	(10, 'my new card never came', 'card'),
	(11, 'I want the money for my order back', NULL),
	(12, 'money back for the purchase from the shop', NULL),
	(13, 'card delivery is late', NULL),
	(14, 'my card has not come', NULL);
SELECT hl_create_model('disputes', 'disputes', text_column => 'body', label_column => 'label') > 0 AS created;
SELECT version FROM hl_train('disputes');
-- Each of the six money texts has a neighbour with the other label:
-- 6 / (6 + 5 points of prior) between refund and chargeback, 0 elsewhere.
SELECT id, label IN ('refund', 'chargeback') AS disputed,
	   round(disagreement::numeric, 3) AS disagreement,
	   abs(score - uncertainty * (1 - disagreement) ^ 3) < 1e-9 AS discounted
FROM hl_next_batch('disputes', 4, options => '{"reserve": false}') ORDER BY id;
-- margin alone puts the money rows first, and the default puts them last.
SELECT string_agg(id, ',') AS margin_order FROM hl_next_batch('disputes', 4, 'margin');
SELECT string_agg(id, ',') AS default_order FROM hl_next_batch('disputes', 4);
-- An exponent of 0 turns the factor off.  Any strategy that scores accepts it.
SELECT bool_and(disagreement IS NULL) AS off
FROM hl_next_batch('disputes', 4, options => '{"disagreement": 0}');
SELECT count(*) AS entropy_rows, bool_and(disagreement IS NOT NULL) AS estimated
FROM hl_next_batch('disputes', 4, 'entropy', '{"disagreement": 1}');

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

-- Labels the current version has never seen: a warning to retrain.
UPDATE tickets SET category = 'fees' WHERE id = 36;
SELECT count(*) FROM hl_next_batch('tickets', 3);
UPDATE tickets SET category = NULL WHERE id = 36;

-- A text without any feature is offered last, since there is nothing to read.
INSERT INTO tickets (id, body, category) VALUES (1000, '', NULL), (1001, NULL, NULL);
SELECT count(*) FILTER (WHERE id IN ('1000', '1001')) AS blank_in_top_five
FROM hl_next_batch('tickets', 5, options => '{"reserve": false}');
WITH batch AS (
	SELECT id, row_number() OVER () AS position
	FROM hl_next_batch('tickets', 100, options => '{"reserve": false}'))
SELECT array_agg(id ORDER BY id) AS last_two
FROM batch WHERE position > (SELECT count(*) FROM batch) - 2;
DELETE FROM tickets WHERE id IN (1000, 1001);

-- Reservations: consecutive calls return disjoint batches.
SET humanloop.reservation_timeout = '10min';
SELECT count(*) FROM (SELECT id FROM hl_next_batch('tickets', 5)) a
JOIN (SELECT id FROM hl_next_batch('tickets', 5)) b USING (id);
SELECT count(*) AS reserved FROM humanloop.reservations
WHERE model_id = (SELECT model_id FROM humanloop.models WHERE name = 'tickets');
-- Only 2 of the 12 unlabelled rows are left unreserved.
SELECT count(*) FROM hl_next_batch('tickets', 5);
-- A preview that reserves nothing gets nothing either, because all rows are reserved.
SELECT count(*) FROM hl_next_batch('tickets', 5, options => '{"reserve": false}');
-- Expired reservations free their rows.
UPDATE humanloop.reservations SET reserved_until = now() - interval '1 second';
SELECT count(*) FROM hl_next_batch('tickets', 5, options => '{"reserve": false}');
SELECT count(*) AS expired_left FROM humanloop.reservations
WHERE reserved_until <= now() AND model_id = (SELECT model_id FROM humanloop.models WHERE name = 'tickets');
RESET humanloop.reservation_timeout;

-- A pool above the option sample is scored on a sample of about that many
-- rows, the same for the same seed and version, another for another seed
-- or version.  0 scores every row, which finds the most uncertain row.
CREATE TABLE big_pool (id integer PRIMARY KEY, body text, category text);
INSERT INTO big_pool SELECT i, (ARRAY['card lost', 'send money', 'card payment', 'money transfer'])[i % 4 + 1]
	   || ' number ' || i, CASE WHEN i <= 40 THEN (ARRAY['card', 'transfer', 'card', 'transfer'])[i % 4 + 1] END
FROM generate_series(1, 3000) AS i;
SELECT hl_create_model('big_pool', 'big_pool', text_column => 'body', label_column => 'category') > 0 AS created;
SELECT labelled_rows FROM hl_train('big_pool');
CREATE TEMP TABLE sampled AS
SELECT id, score FROM hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": 600, "candidates": 500}');
SELECT count(*) AS same_again FROM sampled
JOIN hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": 600, "candidates": 500}') b USING (id);
SELECT count(*) < 5 AS another_seed_another_sample FROM sampled
JOIN hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": 600, "candidates": 500, "seed": 7}') b USING (id);
SELECT (SELECT max(score) FROM hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": 0}'))
	   >= (SELECT max(score) FROM sampled) AS all_rows_at_least_as_uncertain;
SELECT labelled_rows FROM hl_train('big_pool');
SELECT count(*) < 5 AS another_version_another_sample FROM sampled
JOIN hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": 600, "candidates": 500}') b USING (id);
SELECT count(*) FROM hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": -1}');
SELECT count(*) FROM hl_next_batch('big_pool', 5, 'margin', '{"reserve": false, "sample": "all"}');
SELECT hl_drop_model('big_pool');
DROP TABLE big_pool;
