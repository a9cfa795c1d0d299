-- The novelty score: text of a kind the relation contains but no label covers.
SET humanloop.reservation_timeout = 0;

-- Card and transfer questions are labelled.  Questions about passwords are
-- in the relation too, but none has a label.
CREATE TABLE asks (id integer PRIMARY KEY, body text NOT NULL, intent text);
INSERT INTO asks (id, body, intent)
SELECT t.k * 100 + w.n, format(t.pattern, w.word), t.intent
FROM (VALUES (1, 'my %s card has not arrived yet', 'card'),
			 (2, 'when will my %s card be delivered', 'card'),
			 (3, 'the %s card I ordered is late', 'card'),
			 (4, 'my %s transfer is still pending', 'transfer'),
			 (5, 'the %s transfer did not reach the recipient', 'transfer'),
			 (6, 'why did my %s transfer fail', 'transfer'),
			 (7, 'I forgot the password of my %s account', NULL),
			 (8, 'how do I reset the %s password', NULL),
			 (9, 'the app rejects my %s password', NULL)) AS t (k, pattern, intent),
	 unnest(ARRAY['new', 'old', 'spare', 'business', 'joint', 'savings', 'main', 'second',
				  'travel', 'student', 'family', 'premium', 'basic', 'online', 'local', 'foreign'])
	 WITH ORDINALITY AS w (word, n);

SELECT hl_create_model('asks', 'asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 8}') > 0 AS created;
SELECT hl_create_model('asks_plain', 'asks', text_column => 'body', label_column => 'intent') > 0
	   AS created;
SELECT labelled_rows, classes, (metrics->>'novelty_dimensions')::int AS novelty_dimensions
FROM hl_train('asks');
SELECT (metrics->>'novelty_dimensions')::int AS novelty_dimensions FROM hl_train('asks_plain');

-- Password questions are far more novel than card or transfer questions.
CREATE TABLE scored AS
SELECT kind, (hl_classify('asks', body)).novelty AS novelty,
	   (hl_classify('asks_plain', body)).novelty AS plain_novelty
FROM (VALUES ('labelled', 'my replacement card has not arrived yet'),
			 ('labelled', 'why did my urgent transfer fail'),
			 ('labelled', 'the instant transfer is still pending'),
			 ('unlabelled', 'I forgot the password of my work account'),
			 ('unlabelled', 'how do I reset the banking password'),
			 ('unlabelled', 'the app rejects my current password')) AS q (kind, body);
SELECT kind, count(*) AS texts, count(plain_novelty) AS without_score_not_null
FROM scored GROUP BY kind ORDER BY kind;
SELECT (hl_classify('asks', '')).novelty IS NULL AS empty_text_has_none;
SELECT (SELECT min(novelty) FROM scored WHERE kind = 'unlabelled') >
	   (SELECT max(novelty) FROM scored WHERE kind = 'labelled') AS unlabelled_kind_more_novel;

-- The abstention score probability_novelty hands all those questions to a
-- person, and keeps a question worded like the labelled ones automatic.
SELECT score, folds FROM hl_set_abstention('asks', target_coverage => 0.95,
										   score => 'probability_novelty');
SELECT kind, bool_and((hl_classify('asks', body)).abstain) AS all_abstain
FROM (VALUES ('labelled', 'my new card has not arrived yet'),
			 ('labelled', 'my spare card has not arrived yet'),
			 ('unlabelled', 'I forgot the password of my work account'),
			 ('unlabelled', 'how do I reset the banking password')) AS q (kind, body)
GROUP BY kind ORDER BY kind;

-- The batch option novelty raises the key of novel rows, and needs a model
-- with the score.
SELECT count(*) AS batch_rows, count(*) FILTER (WHERE b.id::int > 700) AS password_rows
FROM hl_next_batch('asks', 10, 'margin', '{"novelty": 3, "reserve": false}') b;
-- Each row shows the novelty score the factor used.  It is the score
-- hl_classify gives the text.  Without the option the column is NULL.
SELECT bool_and(b.novelty IS NOT NULL) AS novelty_shown,
	   bool_and(abs(b.novelty - (hl_classify('asks', a.body)).novelty) < 1e-5) AS novelty_matches,
	   bool_and(abs(b.score - b.uncertainty * (1 + 3 * (1 - exp(-greatest(b.novelty, 0) / 2)))) < 1e-9)
		   AS factor_shown
FROM hl_next_batch('asks', 10, 'margin', '{"novelty": 3, "reserve": false}') b
	 JOIN asks a ON a.id::text = b.id;
SELECT bool_and(novelty IS NULL) AS no_novelty_without_option
FROM hl_next_batch('asks', 5, 'margin', '{"reserve": false}');
SELECT * FROM hl_next_batch('asks_plain', 10, 'margin', '{"novelty": 1}');
SELECT * FROM hl_next_batch('asks', 10, 'margin', '{"novelty": 11}');

-- Once password questions are labelled, they are no longer novel.  The
-- texts did not change, so training keeps the latent space and refits the
-- classes only.
UPDATE asks SET intent = 'password' WHERE id BETWEEN 701 AND 916;
SELECT labelled_rows, classes FROM hl_train('asks');
SELECT bool_and((hl_classify('asks', body)).novelty < 3) AS familiar_now
FROM (VALUES ('I forgot the password of my work account'),
			 ('how do I reset the banking password')) AS q (body);

-- A few labels are enough to fit a score, on a scale from the labelled
-- rows themselves.
CREATE TABLE few_asks AS SELECT id, body, CASE WHEN id IN (101, 102, 401, 402) THEN intent END AS intent
FROM asks;
ALTER TABLE few_asks ADD PRIMARY KEY (id);
SELECT hl_create_model('few_asks', 'few_asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 8}') > 0 AS created;
SELECT labelled_rows, (metrics->>'novelty_dimensions')::int AS novelty_dimensions
FROM hl_train('few_asks');
SELECT (hl_classify('few_asks', 'my new card has not arrived yet')).novelty IS NOT NULL AS scored;
SELECT hl_drop_model('few_asks');
DROP TABLE few_asks;

-- A relation with fewer rows than dimensions gets no score, and a WARNING.
CREATE TABLE novelty_tiny (id integer PRIMARY KEY, body text, intent text);
INSERT INTO novelty_tiny VALUES (1, 'card late', 'card'), (2, 'transfer failed', 'transfer');
SELECT hl_create_model('tiny', 'novelty_tiny', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 8}') > 0 AS created;
SELECT (metrics->>'novelty_dimensions')::int AS novelty_dimensions FROM hl_train('tiny');
SELECT (hl_classify('tiny', 'card late')).novelty IS NULL AS no_novelty;

-- The option is a classifier's, and a whole number of dimensions.
SELECT hl_create_model('bad', 'asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 300}');
SELECT hl_create_model('bad', 'asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": "many"}');
SELECT hl_create_model('bad', 'asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 1}');
SELECT hl_create_model('bad', 'asks', text_column => 'body', label_column => 'intent',
					   task => 'spans', options => '{"novelty": 8}');
SELECT hl_create_model('bad', 'asks', text_column => 'body', label_column => 'intent',
					   options => '{"novelty": 256, "hash_bits": 20}');
SELECT * FROM hl_set_abstention('asks', target_coverage => 0.9, score => 'novelty');

SELECT hl_drop_model('asks'), hl_drop_model('asks_plain'), hl_drop_model('tiny');
DROP TABLE asks, scored, novelty_tiny;
