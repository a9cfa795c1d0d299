/* humanloop--0.1.0.sql */

-- complain if script is sourced in psql, rather than via CREATE EXTENSION
\echo Use "CREATE EXTENSION humanloop" to load this file. \quit

--
-- Catalog: model definitions and their trained versions
--
-- The functions live in the schema CREATE EXTENSION is given; the tables
-- live in the schema humanloop so that they stay out of the user's way.
--
CREATE SCHEMA humanloop;
GRANT USAGE ON SCHEMA humanloop TO PUBLIC;

CREATE TABLE humanloop.models (
	model_id serial PRIMARY KEY,
	name text NOT NULL UNIQUE CHECK (name <> '' AND length(name) <= 63),
	task text NOT NULL DEFAULT 'classification' CHECK (task IN ('classification', 'spans')),
	relation regclass NOT NULL,
	id_column text NOT NULL,
	text_column text NOT NULL,
	label_column text NOT NULL,
	labels_relation regclass,
	labels_id_column text,
	options jsonb NOT NULL DEFAULT '{}',
	owner regrole NOT NULL DEFAULT current_user::regrole,
	created_at timestamptz NOT NULL DEFAULT now(),
	current_version integer,
	watched boolean NOT NULL DEFAULT false,
	CHECK ((labels_relation IS NULL) = (labels_id_column IS NULL))
);

COMMENT ON TABLE humanloop.models IS
	'humanloop model definitions: where the text and the labels of each model live';

CREATE TABLE humanloop.model_versions (
	model_id integer NOT NULL REFERENCES humanloop.models ON DELETE CASCADE,
	version integer NOT NULL CHECK (version > 0),
	created_at timestamptz NOT NULL DEFAULT now(),
	kind text NOT NULL DEFAULT 'full' CHECK (kind IN ('full', 'update')),
	labelled_rows integer NOT NULL,
	labels text[] NOT NULL,
	train_seconds double precision NOT NULL,
	metrics jsonb NOT NULL,
	posterior bytea NOT NULL,
	base_version integer,
	root_version integer,
	PRIMARY KEY (model_id, version),
	CHECK ((base_version IS NULL) = (root_version IS NULL))
);

-- The posterior is mostly float32 weights, which compression does not shrink.
ALTER TABLE humanloop.model_versions ALTER COLUMN posterior SET STORAGE EXTERNAL;

COMMENT ON TABLE humanloop.model_versions IS
	'trained versions of each humanloop model, with the serialised posterior';

-- Models survive pg_dump and restore.
SELECT pg_catalog.pg_extension_config_dump('humanloop.models', '');
SELECT pg_catalog.pg_extension_config_dump('humanloop.models_model_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('humanloop.model_versions', '');


-- Everyone may read models; only a model's owner (or a member of the owning
-- role) may change or drop it, or train new versions.
ALTER TABLE humanloop.models ENABLE ROW LEVEL SECURITY;
ALTER TABLE humanloop.model_versions ENABLE ROW LEVEL SECURITY;

CREATE POLICY models_read ON humanloop.models FOR SELECT USING (true);
CREATE POLICY models_write ON humanloop.models
	USING (pg_catalog.pg_has_role(owner, 'MEMBER'))
	WITH CHECK (pg_catalog.pg_has_role(owner, 'MEMBER'));
CREATE POLICY versions_read ON humanloop.model_versions FOR SELECT USING (true);
CREATE POLICY versions_write ON humanloop.model_versions
	USING (EXISTS (SELECT 1 FROM humanloop.models m
				   WHERE m.model_id = model_versions.model_id
					 AND pg_catalog.pg_has_role(m.owner, 'MEMBER')))
	WITH CHECK (EXISTS (SELECT 1 FROM humanloop.models m
						WHERE m.model_id = model_versions.model_id
						  AND pg_catalog.pg_has_role(m.owner, 'MEMBER')));

GRANT SELECT, INSERT, UPDATE, DELETE ON humanloop.models TO PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON humanloop.model_versions TO PUBLIC;
GRANT USAGE ON SEQUENCE humanloop.models_model_id_seq TO PUBLIC;

-- Label changes recorded by the triggers hl_watch installs, waiting for the
-- background worker.  change is 'I' for a new label, 'U' for an edited one
-- and 'D' for a removed one.  Only the extension's owner writes here: the
-- trigger function runs with its rights.  Every role may read, because the
-- worker reads the queue with the privileges of the model's owner.
CREATE TABLE humanloop.label_queue (
	queue_id bigserial PRIMARY KEY,
	model_id integer NOT NULL REFERENCES humanloop.models ON DELETE CASCADE,
	item_id text,
	change "char" NOT NULL CHECK (change IN ('I', 'U', 'D')),
	queued_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ON humanloop.label_queue (model_id, queue_id);

COMMENT ON TABLE humanloop.label_queue IS
	'label changes of watched models, waiting for the background worker';

GRANT SELECT ON humanloop.label_queue TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('humanloop.label_queue', '');
SELECT pg_catalog.pg_extension_config_dump('humanloop.label_queue_queue_id_seq', '');

-- What the background worker did last for each model.
CREATE TABLE humanloop.worker_state (
	model_id integer PRIMARY KEY REFERENCES humanloop.models ON DELETE CASCADE,
	last_update timestamptz,
	last_full_retrain timestamptz,
	labels_since_full integer NOT NULL DEFAULT 0,
	failures integer NOT NULL DEFAULT 0,
	retry_at timestamptz,
	last_error text,
	last_error_at timestamptz
);

COMMENT ON TABLE humanloop.worker_state IS
	'the background worker''s last update, full retrain and error for each model';

GRANT SELECT ON humanloop.worker_state TO PUBLIC;

-- Rows handed out by hl_next_batch, left out of other batches until they
-- expire.  Annotators need not own the model, so every role may reserve.
CREATE TABLE humanloop.reservations (
	model_id integer NOT NULL REFERENCES humanloop.models ON DELETE CASCADE,
	item_id text NOT NULL,
	reserved_until timestamptz NOT NULL,
	PRIMARY KEY (model_id, item_id)
);

COMMENT ON TABLE humanloop.reservations IS
	'rows returned by hl_next_batch and reserved until reserved_until';

-- NOTE: any role can also end another role's reservations.
GRANT SELECT, INSERT, UPDATE, DELETE ON humanloop.reservations TO PUBLIC;

-- Evaluations of each model by hl_evaluate, kept as a history to chart.
-- Any role may evaluate a model it can read; only the model's owner may
-- delete evaluations.
CREATE TABLE humanloop.evaluations (
	evaluation_id bigserial PRIMARY KEY,
	model_id integer NOT NULL REFERENCES humanloop.models ON DELETE CASCADE,
	version integer,
	created_at timestamptz NOT NULL DEFAULT now(),
	evaluated_by regrole NOT NULL DEFAULT current_user::regrole,
	method text NOT NULL CHECK (method IN ('cross_validation', 'relation')),
	relation text,
	folds integer,
	result jsonb NOT NULL,
	CHECK ((method = 'relation') = (relation IS NOT NULL))
);
CREATE INDEX ON humanloop.evaluations (model_id, version);

COMMENT ON TABLE humanloop.evaluations IS
	'results of hl_evaluate: cross-validation or a labelled relation, with the version evaluated';

ALTER TABLE humanloop.evaluations ENABLE ROW LEVEL SECURITY;
CREATE POLICY evaluations_read ON humanloop.evaluations FOR SELECT USING (true);
CREATE POLICY evaluations_insert ON humanloop.evaluations FOR INSERT
	WITH CHECK (evaluated_by = current_user::regrole);
CREATE POLICY evaluations_delete ON humanloop.evaluations FOR DELETE
	USING (EXISTS (SELECT 1 FROM humanloop.models m
				   WHERE m.model_id = evaluations.model_id
					 AND pg_catalog.pg_has_role(m.owner, 'MEMBER')));
GRANT SELECT, INSERT, DELETE ON humanloop.evaluations TO PUBLIC;
GRANT USAGE ON SEQUENCE humanloop.evaluations_evaluation_id_seq TO PUBLIC;
SELECT pg_catalog.pg_extension_config_dump('humanloop.evaluations', '');
SELECT pg_catalog.pg_extension_config_dump('humanloop.evaluations_evaluation_id_seq', '');

--
-- Model definitions
--
-- No function is STRICT, so that a NULL model name or other required
-- argument raises null_value_not_allowed (22004) instead of returning NULL
-- unnoticed.  A NULL in an argument with a default means that default,
-- except for the task of hl_create_model; a NULL input text is empty.
--
CREATE FUNCTION hl_create_model(
	name text,
	relation regclass,
	text_column text,
	label_column text,
	id_column text DEFAULT NULL,
	labels_relation regclass DEFAULT NULL,
	labels_id_column text DEFAULT NULL,
	task text DEFAULT 'classification',
	options jsonb DEFAULT '{}')
RETURNS integer
AS 'MODULE_PATHNAME', 'hl_create_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_create_model(text, regclass, text, text, text, regclass, text, text, jsonb) IS
	'define a model over a relation of texts and their labels; returns the model id';

CREATE FUNCTION hl_drop_model(name text, if_exists boolean DEFAULT false)
RETURNS boolean
AS 'MODULE_PATHNAME', 'hl_drop_model'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_drop_model(text, boolean) IS
	'drop a model and all its versions; returns whether a model was dropped';

CREATE FUNCTION hl_watch(name text, watch boolean DEFAULT true)
RETURNS boolean
AS 'MODULE_PATHNAME', 'hl_watch'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_watch(text, boolean) IS
	'install (or with false remove) the trigger that feeds label changes to the background worker';

-- SECURITY DEFINER lets the trigger write humanloop.label_queue for an
-- annotator who has no privilege on it.  That is smaller than a definer
-- helper function, which would have to be callable by every role and could
-- not see which table the change came from.  The trigger function queues a
-- change only for the model whose labels are in the table it fires on, and
-- the fixed search_path keeps the caller's schemas out of its queries.
CREATE FUNCTION humanloop.label_trigger()
RETURNS trigger
AS 'MODULE_PATHNAME', 'hl_label_trigger'
LANGUAGE C
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp;

COMMENT ON FUNCTION humanloop.label_trigger() IS
	'records label changes of a watched model for the background worker';

--
-- Training
--
CREATE FUNCTION hl_train(
	name text,
	OUT version integer,
	OUT labelled_rows integer,
	OUT classes integer,
	OUT seconds double precision,
	OUT metrics jsonb)
RETURNS record
AS 'MODULE_PATHNAME', 'hl_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_train(text) IS
	'fit the posterior of a model to its labelled rows and store it as a new version';

CREATE FUNCTION hl_rollback(name text, version integer)
RETURNS integer
AS 'MODULE_PATHNAME', 'hl_rollback'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_rollback(text, integer) IS
	'make an earlier version of a model current; returns the version that was current';

--
-- Prediction
--
-- Scoring one text takes tens of microseconds, thousands of times a plain
-- operator.  COST tells the planner, so that it runs large scans in parallel.
--
CREATE TYPE hl_prediction AS (
	label text,
	probability double precision,
	entropy double precision,
	mutual_information double precision,
	abstain boolean,
	novelty double precision
);

COMMENT ON TYPE hl_prediction IS
	'a prediction with its uncertainty: predictive entropy in nats, its epistemic part (mutual information), whether to hand the row to a person, and how far the text lies from the labelled classes relative to the pool (NULL unless the model option novelty is set)';

CREATE FUNCTION hl_predict(name text, input text)
RETURNS text
AS 'MODULE_PATHNAME', 'hl_predict'
LANGUAGE C STABLE PARALLEL SAFE COST 5000;

COMMENT ON FUNCTION hl_predict(text, text) IS
	'most probable label of a text under the current version of a model';

CREATE FUNCTION hl_predict_proba(
	name text,
	input text,
	OUT label text,
	OUT probability double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'hl_predict_proba'
LANGUAGE C STABLE PARALLEL SAFE COST 5000 ROWS 10;

COMMENT ON FUNCTION hl_predict_proba(text, text) IS
	'predictive distribution of a text: one row per class, most probable first';

CREATE FUNCTION hl_classify(name text, input text)
RETURNS hl_prediction
AS 'MODULE_PATHNAME', 'hl_classify'
LANGUAGE C STABLE PARALLEL SAFE COST 5000;

COMMENT ON FUNCTION hl_classify(text, text) IS
	'label, probability, predictive entropy, mutual information, abstain flag and novelty of a text';

--
-- Evaluation and abstention
--
CREATE FUNCTION hl_evaluate(
	name text,
	relation regclass DEFAULT NULL,
	k integer DEFAULT NULL,
	text_column text DEFAULT NULL,
	label_column text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'hl_evaluate'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_evaluate(text, regclass, integer, text, text) IS
	'accuracy, macro-F1, NLL, Brier score, calibration error and abstention coverage, by k-fold cross-validation (default 5) or on a labelled relation; stored in hl_evaluations';

CREATE FUNCTION hl_set_abstention(
	name text,
	target_accuracy double precision DEFAULT NULL,
	target_coverage double precision DEFAULT NULL,
	score text DEFAULT NULL,
	k integer DEFAULT NULL,
	OUT score text,
	OUT threshold double precision,
	OUT estimated_coverage double precision,
	OUT coverage_low double precision,
	OUT coverage_high double precision,
	OUT estimated_accuracy double precision,
	OUT accuracy_low double precision,
	OUT accuracy_high double precision,
	OUT folds integer)
RETURNS record
AS 'MODULE_PATHNAME', 'hl_set_abstention'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_set_abstention(text, double precision, double precision, text, integer) IS
	'choose the abstention threshold for a target accuracy of the automatic answers or a target coverage, by cross-validation; full training keeps meeting the target';

CREATE FUNCTION hl_status(
	name text,
	sample integer DEFAULT 1000,
	OUT labelled_rows integer,
	OUT classes integer,
	OUT version integer,
	OUT estimated_accuracy double precision,
	OUT accuracy_low double precision,
	OUT accuracy_high double precision,
	OUT accuracy_source text,
	OUT compared_version integer,
	OUT agreement double precision,
	OUT pool_sample integer,
	OUT mean_entropy double precision,
	OUT mean_mutual_information double precision,
	OUT mean_confidence double precision,
	OUT recommendation text,
	OUT reason text)
RETURNS record
AS 'MODULE_PATHNAME', 'hl_status'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_status(text, integer) IS
	'whether to keep labelling: estimated accuracy, agreement of the last two versions on a pool sample, uncertainty left in the pool';

--
-- Span models: tagging and evaluation
--
CREATE FUNCTION hl_predict_spans(
	name text,
	input text,
	OUT start integer,
	OUT "end" integer,
	OUT label text,
	OUT text text,
	OUT probability double precision,
	OUT mutual_information double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'hl_predict_spans'
LANGUAGE C STABLE PARALLEL SAFE COST 5000 ROWS 3;

COMMENT ON FUNCTION hl_predict_spans(text, text) IS
	'spans a span model finds in a text: character offsets (end exclusive), label, text, probability and mutual information';

CREATE FUNCTION hl_evaluate_spans(
	name text,
	relation regclass,
	text_column text DEFAULT NULL,
	label_column text DEFAULT NULL)
RETURNS jsonb
AS 'MODULE_PATHNAME', 'hl_evaluate_spans'
LANGUAGE C STABLE PARALLEL UNSAFE;

COMMENT ON FUNCTION hl_evaluate_spans(text, regclass, text, text) IS
	'exact-match span precision, recall and F1, micro-averaged and per label, of a span model on a labelled relation';

--
-- Choosing rows to label
--
CREATE FUNCTION hl_next_batch(
	name text,
	n integer,
	strategy text DEFAULT NULL,
	options jsonb DEFAULT '{}',
	OUT id text,
	OUT score double precision,
	OUT label text,
	OUT probability double precision,
	OUT entropy double precision,
	OUT mutual_information double precision,
	OUT uncertainty double precision,
	OUT density double precision,
	OUT cost double precision,
	OUT disagreement double precision,
	OUT similarity double precision,
	OUT novelty double precision)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'hl_next_batch'
LANGUAGE C VOLATILE PARALLEL UNSAFE ROWS 20;

-- A NULL strategy is the task's default: margin passing over classes that
-- annotators disagree on (option disagreement 3) for classification, and
-- least_confidence with the maximum over tokens for span models, the ones
-- that measured best on the learning curves of docs/active-learning.md and
-- docs/spans.md.
COMMENT ON FUNCTION hl_next_batch(text, integer, text, jsonb) IS
	'unlabelled rows ranked by how much their labels would teach the model, best first, reserved for the caller';

--
-- Views
--
CREATE VIEW hl_models AS
SELECT m.name,
	   m.task,
	   m.relation,
	   coalesce(m.labels_relation, m.relation) AS labels_relation,
	   v.labels,
	   m.current_version,
	   v.labelled_rows,
	   cardinality(v.labels) AS classes,
	   v.created_at AS trained_at,
	   v.metrics,
	   m.owner
FROM humanloop.models m
LEFT JOIN humanloop.model_versions v
	   ON v.model_id = m.model_id AND v.version = m.current_version;

COMMENT ON VIEW hl_models IS
	'one row per humanloop model with its current version, label set and training metrics';

GRANT SELECT ON hl_models TO PUBLIC;

CREATE VIEW hl_model_versions AS
SELECT m.name,
	   v.version,
	   v.kind,
	   v.base_version,
	   v.created_at,
	   v.labelled_rows,
	   cardinality(v.labels) AS classes,
	   v.train_seconds,
	   v.metrics,
	   v.version = m.current_version AS current
FROM humanloop.models m
JOIN humanloop.model_versions v ON v.model_id = m.model_id;

COMMENT ON VIEW hl_model_versions IS
	'every stored version of every model, with its kind, label count and metrics';

GRANT SELECT ON hl_model_versions TO PUBLIC;

CREATE VIEW hl_worker_status AS
SELECT m.name,
	   m.watched,
	   (SELECT count(*) FROM humanloop.label_queue q WHERE q.model_id = m.model_id) AS queue_depth,
	   s.last_update,
	   s.last_full_retrain,
	   s.labels_since_full,
	   s.failures,
	   s.retry_at,
	   s.last_error,
	   s.last_error_at
FROM humanloop.models m
LEFT JOIN humanloop.worker_state s ON s.model_id = m.model_id;

COMMENT ON VIEW hl_worker_status IS
	'per model: label changes waiting for the background worker, its last update, full retrain and error';

GRANT SELECT ON hl_worker_status TO PUBLIC;

CREATE VIEW hl_evaluations AS
SELECT m.name,
	   e.version,
	   e.created_at,
	   e.method,
	   e.relation,
	   e.folds,
	   (e.result->>'rows')::double precision AS rows,
	   (e.result->>'accuracy')::double precision AS accuracy,
	   (e.result->>'accuracy_low')::double precision AS accuracy_low,
	   (e.result->>'accuracy_high')::double precision AS accuracy_high,
	   (e.result->>'macro_f1')::double precision AS macro_f1,
	   (e.result->>'f1')::double precision AS span_f1,
	   (e.result->>'nll')::double precision AS nll,
	   (e.result->>'brier')::double precision AS brier,
	   (e.result->>'ece')::double precision AS ece,
	   (e.result->'abstention'->>'coverage')::double precision AS coverage,
	   (e.result->'abstention'->>'automatic_accuracy')::double precision AS automatic_accuracy,
	   e.result
FROM humanloop.models m
JOIN humanloop.evaluations e ON e.model_id = m.model_id;

COMMENT ON VIEW hl_evaluations IS
	'every stored evaluation of every model, one row each, with its main metrics as columns';

GRANT SELECT ON hl_evaluations TO PUBLIC;
