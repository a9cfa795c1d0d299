-- Prediction: labels, distributions and uncertainty.
SELECT id, category, hl_predict('tickets', body) AS predicted
FROM tickets WHERE category IS NULL ORDER BY id;

-- Labels on the held-back rows agree with their topic.
SELECT count(*) FILTER (WHERE hl_predict('tickets', body) = expected) AS correct, count(*) AS total
FROM (SELECT body, CASE WHEN id <= 12 THEN 'card' WHEN id <= 24 THEN 'transfer' ELSE 'password' END AS expected
	  FROM tickets WHERE category IS NULL) t;

-- One row per class, most probable first, summing to one.
SELECT label FROM hl_predict_proba('tickets', 'my card has not arrived');
SELECT round(sum(probability)::numeric, 4) AS total,
	   bool_and(probability > 0 AND probability < 1) AS proper
FROM hl_predict_proba('tickets', 'my card has not arrived');

-- The composite: label, probability, entropy, mutual information, abstain.
SELECT label, probability > 0.34 AS above_chance, entropy > 0 AS has_entropy,
	   mutual_information >= 0 AS mi_nonnegative, mutual_information <= entropy AS mi_below_entropy
FROM (SELECT (hl_classify('tickets', 'how do I reset my password')).*) c;

-- Text unlike anything labelled is more uncertain than a familiar one.
SELECT (hl_classify('tickets', 'zebra quantum xylophone marmalade')).mutual_information >
	   (hl_classify('tickets', 'my card has not arrived yet')).mutual_information AS unfamiliar_more_uncertain;
SELECT (hl_classify('tickets', 'zebra quantum xylophone marmalade')).abstain AS abstains_on_unfamiliar;

-- NULL and empty texts are empty documents, not errors.
SELECT hl_predict('tickets', NULL) IS NOT NULL AS null_predicts,
	   hl_predict('tickets', '') IS NOT NULL AS empty_predicts;
SELECT (hl_classify('tickets', NULL)).label IS NOT NULL AS null_classifies;

-- Multibyte text is fine.
SELECT hl_predict('tickets', 'Ma carte n''est pas arrivée, où est ma CARTE ?') AS french_card;

-- The same scan can use two models.
SELECT count(*) FROM tickets
WHERE hl_predict('tickets', body) IS NOT NULL AND hl_predict('tickets_annotated', body) IS NOT NULL;

-- A new version is picked up by the next query.
SELECT version FROM hl_train('tickets');
SELECT hl_predict('tickets', 'password reset') AS after_retrain;

-- Prediction is parallel safe: the same answers from parallel workers.
SET force_parallel_mode = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT count(*) FILTER (WHERE hl_predict('tickets', body) = 'card') AS card,
	   count(*) FILTER (WHERE (hl_classify('tickets', body)).label = 'password') AS password
FROM tickets;
RESET force_parallel_mode;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
