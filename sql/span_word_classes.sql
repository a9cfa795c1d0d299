-- Word classes: words that occur in the same contexts anywhere in the
-- relation, labelled or not, share features.

SET humanloop.reservation_timeout = 0;

CREATE TABLE trips (
	id integer PRIMARY KEY,
	text text NOT NULL,
	spans jsonb
);

CREATE TABLE cities (n integer PRIMARY KEY, name text NOT NULL);
INSERT INTO cities (n, name)
SELECT n, name
FROM unnest(ARRAY['paris', 'lyon', 'oslo', 'rome', 'madrid', 'berlin', 'vienna', 'prague',
				  'dublin', 'lisbon', 'warsaw', 'athens', 'helsinki', 'zurich', 'geneva', 'milan',
				  'naples', 'porto', 'seville', 'valencia', 'munich', 'hamburg', 'cologne', 'krakow',
				  'gdansk', 'riga', 'tallinn', 'vilnius', 'sofia', 'bucharest', 'budapest', 'zagreb',
				  'split', 'ljubljana', 'belgrade', 'skopje', 'tirana', 'valletta', 'nicosia', 'reykjavik',
				  'bergen', 'stockholm', 'gothenburg', 'malmo', 'copenhagen', 'aarhus', 'antwerp', 'ghent',
				  'bruges', 'utrecht', 'rotterdam', 'eindhoven', 'luxembourg', 'strasbourg', 'marseille', 'nice',
				  'toulouse', 'bordeaux', 'nantes', 'lille', 'florence', 'venice', 'turin', 'bologna'])
	 WITH ORDINALITY AS c (name, n);

-- Every city appears in seven templates.  Cities 1 to 16 are labelled in
-- the first four, and the rest of the rows are unlabelled.
INSERT INTO trips (id, text, spans)
SELECT c.n * 10 + p.k, format(p.pattern, c.name),
	   CASE WHEN c.n <= 16 AND p.k <= 4
			THEN jsonb_build_array(jsonb_build_object(
					'start', position(c.name IN format(p.pattern, c.name)) - 1,
					'end', position(c.name IN format(p.pattern, c.name)) - 1 + char_length(c.name),
					'label', 'city')) END
FROM cities c,
	 (VALUES (1, 'book a table in %s for two people'), (2, 'weather for %s tomorrow'),
			 (3, '%s please'), (4, 'show me %s on the map'), (5, 'fly to %s today'),
			 (6, 'trains to %s tonight'), (7, 'hotels near %s center')) AS p (k, pattern);

INSERT INTO trips (id, text, spans)
SELECT 1000 + n, sentence, '[]'
FROM unnest(ARRAY['what time is it', 'book a table for two people', 'cancel my table',
				  'book a table for four people tonight'])
	 WITH ORDINALITY AS s (sentence, n);

SELECT hl_create_model('trips', 'trips', text_column => 'text', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT hl_create_model('trips_plain', 'trips', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"word_classes": false}') > 0 AS created;
SELECT labelled_rows, (metrics->>'word_class_words')::int > 64 AS has_classes FROM hl_train('trips');
SELECT labelled_rows, metrics->>'word_class_words' AS word_class_words FROM hl_train('trips_plain');

-- Cities 49 to 64 were never labelled, and "fly to ... today" is a context
-- no label has.  Their classes, shared with the labelled cities, let the
-- model find most of them, which the model without classes does not.
CREATE TABLE found AS
SELECT m.model, count(p.label) FILTER (WHERE p.label = 'city' AND p.text = c.name) AS cities
FROM (VALUES ('trips'), ('trips_plain')) AS m (model)
	 CROSS JOIN cities c
	 LEFT JOIN LATERAL hl_predict_spans(m.model, format('fly to %s today', c.name)) p ON true
WHERE c.n > 48
GROUP BY m.model;
SELECT (SELECT cities FROM found WHERE model = 'trips') >= 12 AS most_found,
	   (SELECT cities FROM found WHERE model = 'trips') >
	   (SELECT cities FROM found WHERE model = 'trips_plain') + 4 AS classes_help;

-- A word the relation does not contain has no class.  Training leaves a
-- tenth of the tokens' classes out, so the other features still tag it
-- in a context the labels taught.
SELECT m.model, count(p.label) FILTER (WHERE p.label = 'city' AND p.text = c.name) AS cities
FROM (VALUES ('trips'), ('trips_plain')) AS m (model)
	 CROSS JOIN unnest(ARRAY['quebec', 'quito', 'accra', 'lagos']) AS c (name)
	 LEFT JOIN LATERAL hl_predict_spans(m.model, format('book a table in %s for two people', c.name)) p
	 ON true
GROUP BY m.model ORDER BY m.model;

-- A relation whose text repeats too few words gets no classes, and trains.
CREATE TABLE few_words (id integer PRIMARY KEY, text text, spans jsonb);
INSERT INTO few_words VALUES (1, 'play adele', '[{"start": 5, "end": 10, "label": "artist"}]'),
	(2, 'play adele', NULL);
SELECT hl_create_model('few_words', 'few_words', text_column => 'text', label_column => 'spans',
					   task => 'spans') > 0 AS created;
SELECT labelled_rows, metrics->>'word_class_words' AS word_class_words FROM hl_train('few_words');

-- Training reads every row's text for the classes, so an unlabelled text
-- over the length limit is an error, as hl_next_batch and hl_status make it.
SET humanloop.max_text_length = '1kB';
INSERT INTO few_words VALUES (3, repeat('long ', 300), NULL);
SELECT * FROM hl_train('few_words');
SELECT recommendation FROM hl_status('few_words');
RESET humanloop.max_text_length;
DELETE FROM few_words WHERE id = 3;

-- The option is a span model's, and a boolean.
SELECT hl_create_model('bad', 'trips', text_column => 'text', label_column => 'spans',
					   task => 'spans', options => '{"word_classes": "yes"}');
SELECT hl_create_model('bad', 'trips', text_column => 'text', label_column => 'text',
					   options => '{"word_classes": true}');

SELECT hl_drop_model('trips'), hl_drop_model('trips_plain'), hl_drop_model('few_words');
DROP TABLE found, trips, cities, few_words;
