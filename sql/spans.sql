-- Span models: labels are JSON arrays of character-offset spans.

SET humanloop.reservation_timeout = 0;

-- Utterances built from templates, with the artist and service spans
-- computed in characters, so multibyte names check the offsets.
CREATE TABLE utterances (
	id integer PRIMARY KEY,
	text text NOT NULL,
	spans jsonb
);

CREATE FUNCTION span_of(utterance text, part text, label text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT jsonb_build_object('start', position(part IN utterance) - 1,
							  'end', position(part IN utterance) - 1 + char_length(part),
							  'label', label)
$$;

INSERT INTO utterances (id, text, spans)
SELECT row_number() OVER (ORDER BY t.n, a.n, s.n),
	   format(t.pattern, a.name, s.name),
	   jsonb_build_array(span_of(format(t.pattern, a.name, s.name), a.name, 'artist'),
						 span_of(format(t.pattern, a.name, s.name), s.name, 'service'))
FROM (VALUES (1, 'play %s on %s'), (2, 'i want to hear %s on %s now'),
			 (3, 'put %s on %s please')) AS t (n, pattern),
	 (VALUES (1, 'daft punk'), (2, 'beyoncé'), (3, 'sigur rós'), (4, 'мумий тролль'),
			 (5, 'björk'), (6, 'queen'), (7, 'adele'), (8, 'the beatles')) AS a (n, name),
	 (VALUES (1, 'spotify'), (2, 'deezer'), (3, 'youtube'), (4, 'last.fm')) AS s (n, name);

-- Labelled rows without spans: an empty array.
INSERT INTO utterances (id, text, spans)
SELECT 100 + n, format('what is the weather like %s', d), '[]'
FROM (VALUES (1, 'today'), (2, 'tomorrow'), (3, 'in paris'), (4, 'this weekend'),
			 (5, 'right now'), (6, 'tonight')) AS w (n, d);

-- Unlabelled rows for hl_next_batch.
INSERT INTO utterances (id, text, spans) VALUES
	(201, 'play björk on deezer', NULL),
	(202, 'play some jazz from the seventies', NULL),
	(203, 'put queen on youtube please', NULL),
	(204, 'what is the weather like in oslo', NULL);

SELECT text, spans, octet_length(text) AS bytes FROM utterances WHERE id IN (4, 13, 104) ORDER BY id;

SELECT hl_create_model('slots', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT task FROM hl_models WHERE name = 'slots';

-- Training: one version, the span labels as classes.
SELECT version, labelled_rows, classes FROM hl_train('slots');
SELECT labelled_rows, compared_version, agreement, recommendation, reason FROM hl_status('slots');
SELECT labels, metrics->>'spans' AS spans, metrics->>'training_tokens' AS tokens,
	   (metrics->>'train_token_accuracy')::float8 > 0.9 AS fits,
	   metrics->>'prior_precision' AS prior_precision, metrics->>'variance_scale' AS variance_scale
FROM hl_models WHERE name = 'slots';
-- The temperature is fitted on every fifth labelled row, held out from a
-- second fit.  Here every held-out span is decoded right, which leaves no
-- temperature to fit, so it stays 1.
SELECT metrics->>'temperature' AS temperature, metrics->>'temperature_fitted' AS fitted,
	   metrics->>'calibrated_rows' AS calibrated_rows,
	   metrics->>'heldout_sentences' AS heldout_sentences,
	   (metrics->>'heldout_span_f1')::float8 > 0.9 AS heldout_f1
FROM hl_models WHERE name = 'slots';

-- Annotators who swap the two labels in every third row leave wrong
-- held-out spans, and those fit a temperature.
CREATE TABLE noisy AS
SELECT id, text,
	   CASE WHEN id % 3 = 0
			THEN replace(replace(replace(spans::text, '"artist"', '"swap"'), '"service"', '"artist"'),
						 '"swap"', '"service"')::jsonb
			ELSE spans END AS spans
FROM utterances WHERE spans IS NOT NULL;
ALTER TABLE noisy ADD PRIMARY KEY (id);
SELECT hl_create_model('noisy_slots', 'noisy', text_column => 'text', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT (metrics->>'temperature')::float8 BETWEEN 0.2 AND 3 AS in_range,
	   (metrics->>'temperature')::float8 <> 1 AS not_one, metrics->>'temperature_fitted' AS fitted,
	   metrics->>'calibrated_rows' AS calibrated_rows, metrics->>'heldout_sentences' AS heldout_sentences
FROM hl_train('noisy_slots');
-- Retraining on at most a quarter more labelled rows keeps the temperature.
CREATE TEMP TABLE before_retrain AS SELECT metrics FROM hl_models WHERE name = 'noisy_slots';
INSERT INTO noisy (id, text, spans) VALUES (300, 'what is the weather like in kyiv', '[]');
SELECT t.labelled_rows, t.metrics->>'calibrated_rows' AS calibrated_rows,
	   t.metrics ? 'heldout_sentences' AS refitted,
	   t.metrics->>'temperature' = b.metrics->>'temperature' AS same_temperature
FROM hl_train('noisy_slots') t, before_retrain b;
SELECT hl_drop_model('noisy_slots');
DROP TABLE noisy;

-- Prediction: character offsets, the text they cover, and uncertainty.
SELECT start, "end", label, text, probability > 0.5 AS likely,
	   mutual_information >= 0 AS has_mutual_information
FROM hl_predict_spans('slots', 'play beyoncé on spotify');
SELECT start, "end", label, text
FROM hl_predict_spans('slots', 'i want to hear мумий тролль on last.fm now');

-- The text column always equals the characters start .. end - 1.
SELECT bool_and(p.text = substr(u.text, p.start + 1, p."end" - p.start)) AS offsets_match,
	   count(*) > 0 AS found
FROM utterances u, hl_predict_spans('slots', u.text) p;

-- No text, no spans.
SELECT count(*) FROM hl_predict_spans('slots', '');
SELECT count(*) FROM hl_predict_spans('slots', NULL);
SELECT count(*) FROM hl_predict_spans('slots', ' 	 ');

-- Evaluation: exact-match span F1 on a labelled relation.
SELECT (e->>'f1')::float8 > 0.9 AS good_f1, e->>'rows' AS rows, e->>'support' AS gold_spans,
	   (e->'labels'->'artist'->>'support') AS artist_spans,
	   (e->'labels'->'service'->>'recall')::float8 > 0.9 AS service_found
FROM hl_evaluate_spans('slots', 'utterances') AS e;

-- Evaluation on another relation and columns; a label the model never saw
-- counts as missed.
CREATE TABLE gold (body text, truth jsonb);
INSERT INTO gold VALUES
	('play adele on spotify', '[{"start": 5, "end": 10, "label": "artist"}, {"start": 14, "end": 21, "label": "service"}]'),
	('play adele on spotify', '[{"start": 5, "end": 10, "label": "singer"}]'),
	('nothing here', '[]'),
	('unlabelled', NULL);
SELECT e->>'rows' AS rows, e->>'support' AS gold_spans, e->>'predicted' AS predicted,
	   e->'labels'->'singer' AS singer
FROM hl_evaluate_spans('slots', 'gold', text_column => 'body', label_column => 'truth') AS e;
-- With no gold span and none found there is nothing to measure: null, not 0.
CREATE TABLE gold_empty AS SELECT * FROM gold WHERE body = 'nothing here';
SELECT e->>'rows' AS rows, e->'precision' AS precision, e->'recall' AS recall, e->'f1' AS f1,
	   e->'labels' AS labels
FROM hl_evaluate_spans('slots', 'gold_empty', text_column => 'body', label_column => 'truth') AS e;
SELECT span_f1 IS NULL AS no_span_f1 FROM hl_evaluations
WHERE name = 'slots' AND relation = 'public.gold_empty';

-- hl_evaluate measures a span model on a relation the same way; it has no
-- cross-validation of span models, and k belongs to cross-validation.
SELECT hl_evaluate('slots', 'gold', text_column => 'body', label_column => 'truth') =
	   hl_evaluate_spans('slots', 'gold', text_column => 'body', label_column => 'truth') AS same_result;
-- Both calls stored their results, with the span F1 in its own column.
SELECT method, relation, version, rows, span_f1 = (result->>'f1')::float8 AS f1_column,
	   accuracy IS NULL AS no_accuracy, count(*)
FROM hl_evaluations WHERE name = 'slots' AND relation = 'public.gold'
GROUP BY 1, 2, 3, 4, 5, 6;
SELECT hl_evaluate('slots');
SELECT hl_evaluate('slots', 'gold', k => 3, text_column => 'body', label_column => 'truth');

-- Choosing sentences: unlabelled rows only, scored, without a single label.
SELECT count(*) AS rows, bool_and(label IS NULL) AS no_label,
	   bool_and(uncertainty >= 0) AS scored, bool_and(entropy >= mutual_information) AS bounded,
	   bool_and(probability BETWEEN 0 AND 1) AS has_probability
FROM hl_next_batch('slots', 3, 'bald');
SELECT bool_and(id::int > 200) AS unlabelled FROM hl_next_batch('slots', 4);
-- Without a strategy, span models rank by least confidence with the
-- maximum, weighted by density.
SELECT (SELECT array_agg(id ORDER BY id)
		FROM hl_next_batch('slots', 3, options => '{"reserve": false}')) =
	   (SELECT array_agg(id ORDER BY id)
		FROM hl_next_batch('slots', 3, 'least_confidence',
						   '{"reduction": "max", "density": 1, "reserve": false}'))
	   AS least_confidence_by_default;
-- The same scores and densities, and an explicit density of 0 turns it off.
SELECT d.id, d.score = e.score AS same_score, d.density = e.density AS same_density,
	   round((d.score / d.density)::numeric, 6) = round(o.score::numeric, 6) AS density_factor
FROM hl_next_batch('slots', 3, options => '{"reserve": false}') d
	 JOIN hl_next_batch('slots', 3, 'least_confidence',
						'{"reduction": "max", "density": 1, "reserve": false}') e USING (id)
	 JOIN hl_next_batch('slots', 4, options => '{"density": 0, "reserve": false}') o USING (id)
ORDER BY d.id;
SELECT count(*) FROM hl_next_batch('slots', 2, 'random', '{"diversity": 0.5, "cost": 1}');
SELECT count(*) FROM hl_next_batch('slots', 2, 'least_confidence');
SELECT count(*) FROM hl_next_batch('slots', 2, 'entropy');
SELECT count(*) FROM hl_next_batch('slots', 2, 'hybrid');
-- Token scores reduce to a sentence score by max (default), sum or mean.
SELECT count(*) FROM hl_next_batch('slots', 2, 'margin', '{"reduction": "mean"}');
SELECT count(*) FROM hl_next_batch('slots', 2, 'bald', '{"reduction": "sum"}');
SELECT count(*) FROM hl_next_batch('slots', 2, 'margin', '{"reduction": "median"}');
-- Strategies that use no token uncertainty take no reduction.
SELECT count(*) FROM hl_next_batch('slots', 2, 'coverage', '{"reduction": "max"}');
SELECT count(*) FROM hl_next_batch('slots', 2, 'random', '{"reduction": "max"}');
SELECT count(*) FROM hl_next_batch('slots', 2, options => '{"max_class_share": 0.5}');
SELECT count(*) FROM hl_next_batch('slots', 2, options => '{"disagreement": 3}');
SELECT count(*) FROM hl_next_batch('slots', 2, options => '{"max_class_share": 1, "reserve": false}');
-- A span model not trained yet rejects the option before any NOTICE.
SELECT hl_create_model('slots_fresh', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT count(*) FROM hl_next_batch('slots_fresh', 2, options => '{"reduction": "sum"}');
SELECT hl_drop_model('slots_fresh');
-- For one sentence the summed token margins are at least their maximum,
-- which is at least their mean.
SELECT bool_and(s.uncertainty >= x.uncertainty AND x.uncertainty >= a.uncertainty) AS ordered,
	   count(*) AS sentences
FROM hl_next_batch('slots', 4, 'margin', '{"reduction": "sum"}') s
JOIN hl_next_batch('slots', 4, 'margin', '{"reduction": "max"}') x USING (id)
JOIN hl_next_batch('slots', 4, 'margin', '{"reduction": "mean"}') a USING (id);
-- least_confidence without a reduction is one minus the probability of the
-- decoded tags; with one it reduces the token error probabilities, whose
-- sum (the expected number of wrong tags) bounds both from above.
SELECT bool_and(abs(q.uncertainty - (1 - q.probability)) < 1e-6) AS sequence_score,
	   bool_and(s.uncertainty >= q.uncertainty - 1e-6) AS sum_above_sequence,
	   bool_and(s.uncertainty >= x.uncertainty) AS sum_above_max,
	   bool_or(s.uncertainty > q.uncertainty + 1e-6) AS sum_differs,
	   count(*) > 0 AS compared
FROM hl_next_batch('slots', 100, 'least_confidence') q
JOIN hl_next_batch('slots', 100, 'least_confidence', '{"reduction": "sum"}') s USING (id)
JOIN hl_next_batch('slots', 100, 'least_confidence', '{"reduction": "max"}') x USING (id);

-- Reservations work as for classification.
SET humanloop.reservation_timeout = 600;
SELECT count(*) FROM hl_next_batch('slots', 3);
SELECT count(*) FROM hl_next_batch('slots', 3);
DELETE FROM humanloop.reservations;
SET humanloop.reservation_timeout = 0;

-- A new label is accepted and learned.  Two more labelled rows make the
-- step from version 1 large enough for hl_status to compare the two.
UPDATE utterances SET spans = '[{"start": 10, "end": 14, "label": "genre"}]' WHERE id = 202;
INSERT INTO utterances (id, text, spans) VALUES
	(205, 'what is the weather like in rome', '[]'),
	(206, 'what is the weather like in lima', '[]');
SELECT version, classes FROM hl_train('slots');
SELECT labels FROM hl_models WHERE name = 'slots';
-- A new span label calls for holding rows out again.
SELECT metrics->>'temperature' AS temperature, metrics ? 'heldout_sentences' AS held_out
FROM hl_models WHERE name = 'slots';

-- hl_status compares the decoded spans of the two versions on the pool.
SELECT labelled_rows, classes, version, compared_version, pool_sample,
	   estimated_accuracy IS NULL AS no_accuracy, agreement BETWEEN 0 AND 1 AS has_agreement,
	   mean_entropy >= mean_mutual_information AND mean_mutual_information >= 0 AS uncertainty,
	   mean_confidence IS NULL AS no_confidence,
	   recommendation IN ('stop', 'keep labelling') AS has_recommendation
FROM hl_status('slots');
-- The one row labelled "genre" is too few to stop, whatever the agreement.
SELECT compared_version, agreement, recommendation, reason FROM hl_status('slots', sample => 1);
UPDATE utterances SET spans = NULL WHERE id = 202;
DELETE FROM utterances WHERE id IN (205, 206);

-- Classification functions reject span models, and the reverse.
SELECT hl_predict('slots', 'play queen');
SELECT hl_classify('slots', 'play queen');
SELECT * FROM hl_predict_spans('tickets', 'play queen');
SELECT hl_evaluate_spans('tickets', 'utterances');
SELECT hl_evaluate_spans('slots', 999999::oid::regclass);
-- The text column to evaluate on must be of a string type.
SELECT hl_evaluate_spans('slots', 'gold', text_column => 'truth', label_column => 'truth');
SELECT hl_evaluate_spans('slots', 'gold', text_column => 'nothing', label_column => 'truth');
-- The label column must be able to hold JSON.
SELECT hl_evaluate_spans('slots', 'utterances', label_column => 'id');
-- Span models can be watched too, but only when humanloop is preloaded.
SELECT hl_watch('slots');

-- Bad span labels: each error names the row and the span.
BEGIN;
UPDATE utterances SET text = 'x', spans = '[{"start": 0, "end": 2, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '{"start": 0}' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[1]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"end": 4, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": "5", "end": 9, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5.5, "end": 9, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 2147483648, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": -1, "end": 9, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
-- Row 13 is "play мумий тролль on spotify", 28 characters but 39 bytes.
UPDATE utterances SET spans = '[{"start": 21, "end": 29, "label": "service"}]' WHERE id = 13;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 21, "end": 28, "label": "service"}]' WHERE id = 13;
SELECT version > 0 AS trained FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 9, "end": 5, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 5, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 9, "label": ""}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 9, "label": 7}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 14, "label": "artist"}, {"start": 10, "end": 14, "label": "band"}]'
WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
-- A span over white space only would tag no token. Row 1 is
-- "play daft punk on spotify", with a space at 4.
BEGIN;
UPDATE utterances SET spans = '[{"start": 4, "end": 5, "label": "artist"}]' WHERE id = 1;
SELECT version FROM hl_train('slots');
ROLLBACK;
-- In row 13, "play мумий тролль on spotify", the space at 10 lies between
-- multibyte words. The error names the second span of the array, although
-- it comes first in the text.
BEGIN;
UPDATE utterances SET spans = '[{"start": 18, "end": 20, "label": "word"}, {"start": 10, "end": 11, "label": "artist"}]'
WHERE id = 13;
SELECT version FROM hl_train('slots');
ROLLBACK;
-- A span with white space around a word is accepted.
BEGIN;
UPDATE utterances SET spans = '[{"start": 10, "end": 18, "label": "artist"}]' WHERE id = 13;
SELECT version > 0 AS trained FROM hl_train('slots');
ROLLBACK;
-- A blank text labelled [] gives a sentence without tokens, which the
-- held-out split must still assign by its row.
BEGIN;
INSERT INTO utterances (id, text, spans) VALUES (299, '   ', '[]');
SELECT version > 0 AS trained, metrics->>'calibrated_rows' AS calibrated_rows FROM hl_train('slots');
ROLLBACK;
-- Evaluation checks labels the same way. U+3000 is an ideographic space.
BEGIN;
INSERT INTO gold VALUES ('play adele' || U&'\3000' || 'now', '[{"start": 10, "end": 11, "label": "artist"}]');
SELECT hl_evaluate_spans('slots', 'gold', text_column => 'body', label_column => 'truth');
ROLLBACK;

-- Overlapping spans are accepted by a model created to allow them.
SELECT hl_create_model('slots_overlap', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"allow_overlap": true, "hash_bits": 12}') > 0 AS created;
BEGIN;
UPDATE utterances SET spans = '[{"start": 5, "end": 14, "label": "artist"}, {"start": 10, "end": 14, "label": "band"}]'
WHERE id = 1;
SELECT version, classes FROM hl_train('slots_overlap');
ROLLBACK;

-- Span labels kept as text: hl_status raises the error of a bad label with its row.
CREATE TABLE text_spans (id integer PRIMARY KEY, body text, spans text);
INSERT INTO text_spans VALUES
	(1, 'play adele on spotify', '[{"start": 5, "end": 10, "label": "artist"}]'),
	(2, 'play queen', '[{"start": 5, "end": 10, "label": "artist"}]'),
	(3, 'play abba', NULL);
SELECT hl_create_model('text_spans', 'text_spans', text_column => 'body', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT version FROM hl_train('text_spans');
SELECT recommendation, reason FROM hl_status('text_spans');
UPDATE text_spans SET spans = 'artist at 5' WHERE id = 2;
SELECT recommendation FROM hl_status('text_spans');
-- A span on a row whose text is NULL has nowhere to lie.
UPDATE text_spans SET body = NULL, spans = '[{"start": 0, "end": 4, "label": "artist"}]' WHERE id = 2;
SELECT version FROM hl_train('text_spans');
SELECT hl_drop_model('text_spans');
DROP TABLE text_spans;

-- Bad definitions.
SELECT hl_create_model('bad', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'ner');
SELECT hl_create_model('bad', 'utterances', text_column => 'text', label_column => 'id',
					   task => 'spans');
SELECT hl_create_model('bad', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"allow_overlap": 1}');
SELECT hl_create_model('bad', 'tickets', text_column => 'body', label_column => 'category',
					   options => '{"allow_overlap": true}');
SELECT hl_create_model('bad', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"word_ngrams": 1}');
SELECT hl_create_model('bad', 'utterances', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"abstain_probability": 0.5}');

SELECT hl_drop_model('slots_overlap');
SELECT hl_drop_model('slots');
DROP TABLE gold;
DROP TABLE utterances;
DROP FUNCTION span_of(text, text, text);
