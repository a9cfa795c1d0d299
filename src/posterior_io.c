/*
 * posterior_io.c
 *		Serialisation of a trained model to bytea and back, with validation.
 *
 * Layout (native byte order, 4-byte aligned; every float is IEEE float32):
 *
 *	header	 HlPosteriorHeader, 64 bytes, protected by header_crc
 *	idf		 dim floats
 *	mean	 dim * n_classes floats, row-major by feature
 *	prec	 dim * n_classes floats, the diagonal posterior precision
 *	bias	 n_classes floats of mean, then n_classes of precision
 *	trans	 span models only: (n_classes + 1) * n_classes floats of the CRF
 *			 transition means, then as many of their precision
 *	labels	 n_labels NUL-terminated UTF-8 names, padded with zeros to 4 bytes
 *	classes	 span models with word classes (task code 4) only: uint32 n_words
 *			 and uint32 levels, n_words uint64 word hashes in increasing order,
 *			 then n_words * levels uint16 classes, padded with zeros to 4 bytes
 *	novelty	 classifiers with a novelty score (task code 5) only: uint32 k,
 *			 uint32 n_means, float center, float spread, then the floats of
 *			 projection, class_whitening, class_means, pool_whitening and
 *			 pool_mean (novelty.h)
 *
 * The payload (everything after the header) is protected by payload_crc.
 *
 * A version stored by the background worker's fast update is usually a
 * patch instead: HlPatchHeader (magic "HLPT"), then the touched feature
 * indices, their rows of mean and precision, and both bias arrays.  It is
 * applied to a copy of its base version, which may itself be a patch.  The
 * worker stores a full posterior again before chains grow long.
 * Deserialisation checks magic, format version, the reserved fields, both
 * checksums and every size, with overflow checks, before it reads the
 * payload, and points the model's arrays into the bytea instead of copying.
 */
#include "compat.h"

#include <math.h>

#include "common/int.h"
#include "port/pg_crc32c.h"
#include "utils/memutils.h"

#include "posterior_io.h"

#define HL_POSTERIOR_MAGIC 0x53504c48	/* "HLPS" read as little-endian */
#define HL_POSTERIOR_MAGIC_SWAPPED 0x484c5053
#define HL_POSTERIOR_FORMAT 1
#define HL_MAX_CLASSES 100000

/*
 * Task codes of the header.  Span posteriors of code 2 held a per-token
 * classifier without transitions; this build rejects them with a hint to
 * retrain.  Code 4 is a CRF (code 3) followed by word classes, and code 5
 * a classifier (code 1) followed by a novelty score.
 */
#define HL_FILE_CLASSIFICATION 1
#define HL_FILE_SPANS_PER_TOKEN 2
#define HL_FILE_SPANS_CRF 3
#define HL_FILE_SPANS_CRF_CLASSES 4
#define HL_FILE_CLASSIFICATION_NOVELTY 5

typedef struct HlPosteriorHeader
{
	uint32		magic;
	uint16		format_version;
	uint16		reserved;		/* must be zero */
	uint32		task;
	uint32		dim;
	uint32		n_classes;
	uint32		n_labels;
	HlFeatureConfig features;
	float		prior_precision;
	float		temperature;
	float		variance_scale;
	uint32		labels_bytes;
	uint32		payload_crc;
	uint64		payload_bytes;
	float		covariance_precision;
	uint32		header_crc;		/* of the bytes above */
} HlPosteriorHeader;

StaticAssertDecl(sizeof(HlPosteriorHeader) == 64, "posterior header must be 64 bytes");
StaticAssertDecl(sizeof(HlFeatureConfig) == 4, "feature config must be 4 bytes");

/* Return the CRC-32C of len bytes. */
static uint32
hl_crc32c(const void *data, size_t len)
{
	pg_crc32c	crc;

	INIT_CRC32C(crc);
	COMP_CRC32C(crc, data, len);
	FIN_CRC32C(crc);
	return crc;
}

/* Return the bytes of the float arrays, or false on overflow. */
static bool
hl_payload_float_bytes(uint32 file_task, uint32 dim, uint32 n_classes, uint64 *bytes)
{
	uint64		cells;
	uint64		floats;
	uint64		transition_floats = 0;

	if (file_task == HL_FILE_SPANS_CRF || file_task == HL_FILE_SPANS_CRF_CLASSES)
		transition_floats = 2 * ((uint64) n_classes + 1) * n_classes;
	if (pg_mul_u64_overflow((uint64) dim, (uint64) n_classes, &cells) ||
		pg_mul_u64_overflow(cells, 2, &floats) ||
		pg_add_u64_overflow(floats, (uint64) dim + 2 * (uint64) n_classes, &floats) ||
		pg_add_u64_overflow(floats, transition_floats, &floats) ||
		pg_mul_u64_overflow(floats, sizeof(float), bytes))
		return false;
	return true;
}

/* Return the bytes of a word-class section of n_words words, padded to 4. */
static uint64
hl_word_classes_bytes(uint64 n_words)
{
	return TYPEALIGN(4, 2 * sizeof(uint32) + n_words * sizeof(uint64) +
					 n_words * HL_WORD_CLASS_LEVELS * sizeof(uint16));
}

/* Return the bytes of a novelty section, or false on overflow. */
static bool
hl_novelty_bytes(uint32 dim, uint32 k, uint32 n_means, uint64 *bytes)
{
	if (k > HL_NOVELTY_MAX_DIMENSIONS || n_means > HL_MAX_CLASSES)
		return false;
	*bytes = 4 * sizeof(uint32) + sizeof(float) * hl_novelty_floats(dim, k, n_means);
	return true;
}

/* Serialise a full posterior of task code task; see hl_posterior_serialize. */
static bytea *
hl_posterior_serialize_task(uint32 task, const HlFeatureConfig *features,
							const float *idf, const HlClassifier *classifier,
							const HlCrfTransitions *transitions,
							char **labels, uint32 n_labels,
							const HlWordClasses *classes, const HlNovelty *novelty)
{
	HlPosteriorHeader header;
	uint64		float_bytes;
	uint64		labels_bytes = 0;
	uint64		total;
	uint64		cells = (uint64) classifier->dim * classifier->n_classes;
	bytea	   *blob;
	char	   *p;
	char	   *payload;

	uint64		classes_bytes = 0;

	for (uint32 i = 0; i < n_labels; i++)
		labels_bytes += strlen(labels[i]) + 1;
	labels_bytes = TYPEALIGN(4, labels_bytes);
	if (task == HL_FILE_SPANS_CRF_CLASSES)
		classes_bytes = hl_word_classes_bytes(classes->n_words);
	if (task == HL_FILE_CLASSIFICATION_NOVELTY &&
		!hl_novelty_bytes(novelty->dim, novelty->k, novelty->n_means, &classes_bytes))
		elog(ERROR, "novelty score of %u dimensions is too large to store", novelty->k);

	if (!hl_payload_float_bytes(task, classifier->dim, classifier->n_classes, &float_bytes) ||
		float_bytes + labels_bytes + classes_bytes + sizeof(header) + VARHDRSZ > MaxAllocHugeSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model with %u features and %u classes is too large to store",
						classifier->dim, classifier->n_classes),
				 errhint("Lower the model option \"hash_bits\".")));
	if (float_bytes + labels_bytes + classes_bytes + sizeof(header) + VARHDRSZ > MaxAllocSize)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("model with %u features and %u classes does not fit in a bytea of 1GB",
						classifier->dim, classifier->n_classes),
				 errhint("Lower the model option \"hash_bits\".")));

	total = VARHDRSZ + sizeof(header) + float_bytes + labels_bytes + classes_bytes;
	blob = (bytea *) palloc0(total);
	SET_VARSIZE(blob, total);

	p = payload = VARDATA(blob) + sizeof(header);
	memcpy(p, idf, sizeof(float) * classifier->dim);
	p += sizeof(float) * classifier->dim;
	memcpy(p, classifier->mean, sizeof(float) * cells);
	p += sizeof(float) * cells;
	memcpy(p, classifier->precision, sizeof(float) * cells);
	p += sizeof(float) * cells;
	memcpy(p, classifier->bias_mean, sizeof(float) * classifier->n_classes);
	p += sizeof(float) * classifier->n_classes;
	memcpy(p, classifier->bias_precision, sizeof(float) * classifier->n_classes);
	p += sizeof(float) * classifier->n_classes;
	if (task == HL_FILE_SPANS_CRF || task == HL_FILE_SPANS_CRF_CLASSES)
	{
		size_t		transition_bytes = sizeof(float) * (classifier->n_classes + 1) * classifier->n_classes;

		memcpy(p, transitions->mean, transition_bytes);
		p += transition_bytes;
		memcpy(p, transitions->precision, transition_bytes);
		p += transition_bytes;
	}
	for (uint32 i = 0; i < n_labels; i++)
	{
		size_t		len = strlen(labels[i]) + 1;

		memcpy(p, labels[i], len);
		p += len;
	}
	if (task == HL_FILE_SPANS_CRF_CLASSES)
	{
		uint32		levels = HL_WORD_CLASS_LEVELS;

		/* The labels' zero padding ends on a 4-byte boundary. */
		p = payload + float_bytes + labels_bytes;
		memcpy(p, &classes->n_words, sizeof(uint32));
		memcpy(p + sizeof(uint32), &levels, sizeof(uint32));
		p += 2 * sizeof(uint32);
		memcpy(p, classes->word, sizeof(uint64) * classes->n_words);
		p += sizeof(uint64) * classes->n_words;
		memcpy(p, classes->word_class, sizeof(uint16) * classes->n_words * levels);
	}
	if (task == HL_FILE_CLASSIFICATION_NOVELTY)
	{
		uint32		k = novelty->k;

		p = payload + float_bytes + labels_bytes;
		memcpy(p, &novelty->k, sizeof(uint32));
		memcpy(p + sizeof(uint32), &novelty->n_means, sizeof(uint32));
		memcpy(p + 2 * sizeof(uint32), &novelty->center, sizeof(float));
		memcpy(p + 3 * sizeof(uint32), &novelty->spread, sizeof(float));
		p += 4 * sizeof(uint32);
		memcpy(p, novelty->projection, sizeof(float) * novelty->dim * k);
		p += sizeof(float) * novelty->dim * k;
		memcpy(p, novelty->class_whitening, sizeof(float) * k * k);
		p += sizeof(float) * k * k;
		memcpy(p, novelty->class_means, sizeof(float) * novelty->n_means * k);
		p += sizeof(float) * novelty->n_means * k;
		memcpy(p, novelty->pool_whitening, sizeof(float) * k * k);
		p += sizeof(float) * k * k;
		memcpy(p, novelty->pool_mean, sizeof(float) * k);
	}

	memset(&header, 0, sizeof(header));
	header.magic = HL_POSTERIOR_MAGIC;
	header.format_version = HL_POSTERIOR_FORMAT;
	header.task = task;
	header.dim = classifier->dim;
	header.n_classes = classifier->n_classes;
	header.n_labels = n_labels;
	header.features = *features;
	header.prior_precision = classifier->prior_precision;
	header.temperature = classifier->temperature;
	header.variance_scale = classifier->variance_scale;
	header.covariance_precision = classifier->covariance_precision;
	header.labels_bytes = (uint32) labels_bytes;
	header.payload_bytes = float_bytes + labels_bytes + classes_bytes;
	header.payload_crc = hl_crc32c(payload, header.payload_bytes);
	header.header_crc = hl_crc32c(&header, offsetof(HlPosteriorHeader, header_crc));
	memcpy(VARDATA(blob), &header, sizeof(header));

	return blob;
}

bytea *
hl_posterior_serialize(const HlFeatureConfig *features, const float *idf,
					   const HlClassifier *classifier, char **labels, uint32 n_labels,
					   const HlNovelty *novelty)
{
	bool		with_novelty = novelty != NULL && novelty->k > 0;

	Assert(!with_novelty || novelty->dim == classifier->dim);
	return hl_posterior_serialize_task(with_novelty ? HL_FILE_CLASSIFICATION_NOVELTY : HL_FILE_CLASSIFICATION,
									   features, idf, classifier, NULL, labels, n_labels, NULL,
									   novelty);
}

bytea *
hl_posterior_serialize_spans(const HlFeatureConfig *features, const float *idf,
							 const HlClassifier *classifier,
							 const HlCrfTransitions *transitions,
							 char **labels, uint32 n_labels,
							 const HlWordClasses *classes)
{
	Assert(transitions->n_tags == classifier->n_classes);
	return hl_posterior_serialize_task(classes != NULL && classes->n_words > 0 ?
									   HL_FILE_SPANS_CRF_CLASSES : HL_FILE_SPANS_CRF,
									   features, idf, classifier, transitions,
									   labels, n_labels, classes, NULL);
}

/* Raise the error for a damaged posterior. */
static void
hl_posterior_damaged(const char *what, const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("posterior of %s is damaged", what),
			 errdetail("%s", detail),
			 errhint("Train a new version with hl_train.")));
}

/*
 * Copy the word-class section at section into model->word_classes, checking
 * its level count, the order of its words and the range of its classes.
 * The payload is only 4-byte aligned, so the word hashes are copied, not
 * pointed at.  Its size was checked with the payload's.
 */
static void
hl_word_classes_read(const char *section, HlModel *model, const char *what)
{
	HlWordClasses *classes = &model->word_classes;
	uint32		levels;

	memcpy(&classes->n_words, section, sizeof(uint32));
	memcpy(&levels, section + sizeof(uint32), sizeof(uint32));
	if (levels != HL_WORD_CLASS_LEVELS)
		hl_posterior_damaged(what, psprintf("Its word classes have %u levels, not %d.",
											levels, HL_WORD_CLASS_LEVELS));
	section += 2 * sizeof(uint32);
	classes->word = palloc(sizeof(uint64) * Max(classes->n_words, 1));
	classes->word_class = palloc(sizeof(uint16) * Max(classes->n_words, 1) * levels);
	memcpy(classes->word, section, sizeof(uint64) * classes->n_words);
	memcpy(classes->word_class, section + sizeof(uint64) * classes->n_words,
		   sizeof(uint16) * classes->n_words * levels);

	for (uint32 w = 0; w < classes->n_words; w++)
	{
		if (w > 0 && classes->word[w] <= classes->word[w - 1])
			hl_posterior_damaged(what, "Its word classes are not in word order.");
		for (uint32 level = 0; level < levels; level++)
			if (classes->word_class[(uint64) w * levels + level] >= hl_word_class_counts[level])
				hl_posterior_damaged(what, "A word class is out of range.");
	}
}

/*
 * Point model->novelty into the novelty section at section, which is 4-byte
 * aligned, and check its center and spread.  Its size was checked with the
 * payload's.
 */
static void
hl_novelty_read(const char *section, HlModel *model, const char *what)
{
	HlNovelty  *novelty = &model->novelty;

	novelty->dim = model->classifier.dim;
	memcpy(&novelty->k, section, sizeof(uint32));
	memcpy(&novelty->n_means, section + sizeof(uint32), sizeof(uint32));
	memcpy(&novelty->center, section + 2 * sizeof(uint32), sizeof(float));
	memcpy(&novelty->spread, section + 3 * sizeof(uint32), sizeof(float));
	if (!isfinite(novelty->center) || !(isfinite(novelty->spread) && novelty->spread > 0))
		hl_posterior_damaged(what, "Its novelty score has an invalid center or spread.");
	hl_novelty_point(novelty, (float *) (section + 4 * sizeof(uint32)));
}

void
hl_posterior_deserialize(bytea *blob, HlModel *model, const char *what)
{
	HlPosteriorHeader header;
	uint64		size = VARSIZE_ANY_EXHDR(blob);
	uint64		float_bytes;
	uint64		cells;
	const char *payload;
	const char *labels;
	const char *labels_end;
	const char *message;
	bool		spans;
	uint64		classes_bytes = 0;

	if (VARATT_IS_EXTENDED(blob))
		elog(ERROR, "posterior must be detoasted before it is read");

	/* Header: size, magic, version, reserved fields and checksum first. */
	if (size < sizeof(header))
		hl_posterior_damaged(what, psprintf("It has %llu bytes, fewer than its %zu-byte header.",
											(unsigned long long) size, sizeof(header)));
	memcpy(&header, VARDATA_ANY(blob), sizeof(header));
	if (header.magic == HL_POSTERIOR_MAGIC_SWAPPED)
		hl_posterior_damaged(what, "It was written on a machine of the other byte order.");
	if (header.magic != HL_POSTERIOR_MAGIC)
		hl_posterior_damaged(what, psprintf("It starts with 0x%08x, not the humanloop magic number.",
											header.magic));
	if (header.header_crc != hl_crc32c(&header, offsetof(HlPosteriorHeader, header_crc)))
		hl_posterior_damaged(what, "The checksum of its header does not match.");
	if (header.format_version != HL_POSTERIOR_FORMAT)
		hl_posterior_damaged(what, psprintf("Its format version is %u; this build of humanloop reads version %d.",
											header.format_version, HL_POSTERIOR_FORMAT));
	if (header.reserved != 0)
		hl_posterior_damaged(what, "A reserved header field is not zero.");
	if (header.task == HL_FILE_SPANS_PER_TOKEN)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("posterior of %s is a per-token span model, which this build of humanloop no longer reads", what),
				 errdetail("Span models are now linear-chain CRFs."),
				 errhint("Train a new version with hl_train.")));
	if (header.task != HL_FILE_CLASSIFICATION && header.task != HL_FILE_SPANS_CRF &&
		header.task != HL_FILE_SPANS_CRF_CLASSES && header.task != HL_FILE_CLASSIFICATION_NOVELTY)
		hl_posterior_damaged(what, psprintf("Its task code %u is unknown.", header.task));
	spans = header.task == HL_FILE_SPANS_CRF || header.task == HL_FILE_SPANS_CRF_CLASSES;

	/* Sizes, each checked against the others and against the bytea. */
	message = hl_feature_config_check(&header.features);
	if (message != NULL)
		hl_posterior_damaged(what, psprintf("Its feature settings are invalid: %s.", message));
	if (header.dim != (UINT32_C(1) << header.features.hash_bits))
		hl_posterior_damaged(what, psprintf("It has %u features, but its settings give %u.",
											header.dim, UINT32_C(1) << header.features.hash_bits));
	if (!spans &&
		(header.n_classes < 2 || header.n_classes > HL_MAX_CLASSES ||
		 header.n_labels < 1 || header.n_labels > header.n_classes ||
		 header.n_labels + 1 < header.n_classes))
		hl_posterior_damaged(what, psprintf("It has %u classes and %u labels.",
											header.n_classes, header.n_labels));

	/* A span model has a class per BIO tag, and a phantom one without labels. */
	if (spans &&
		(header.n_labels > HL_SPAN_MAX_LABELS ||
		 header.n_classes != Max(2, hl_tag_count(header.n_labels))))
		hl_posterior_damaged(what, psprintf("It has %u tag classes for %u span labels.",
											header.n_classes, header.n_labels));
	if (!hl_payload_float_bytes(header.task, header.dim, header.n_classes, &float_bytes) ||
		header.labels_bytes % 4 != 0)
		hl_posterior_damaged(what, psprintf("Its sizes do not add up: %llu bytes in all, %llu of payload.",
											(unsigned long long) size,
											(unsigned long long) header.payload_bytes));

	/* The word-class section's size follows from its word count. */
	if (header.task == HL_FILE_SPANS_CRF_CLASSES)
	{
		uint64		offset = sizeof(header) + float_bytes + header.labels_bytes;
		uint32		n_words = 0;

		if (offset + sizeof(uint32) <= size)
			memcpy(&n_words, VARDATA_ANY(blob) + offset, sizeof(uint32));
		if (offset + sizeof(uint32) > size || n_words > HL_WORD_CLASS_MAX_WORDS)
			hl_posterior_damaged(what, "Its word classes have no valid word count.");
		classes_bytes = hl_word_classes_bytes(n_words);
	}

	/* So does the novelty section's from its dimensions and class means. */
	if (header.task == HL_FILE_CLASSIFICATION_NOVELTY)
	{
		uint64		offset = sizeof(header) + float_bytes + header.labels_bytes;
		uint32		counts[2] = {0, 0};

		if (offset + sizeof(counts) <= size)
			memcpy(counts, VARDATA_ANY(blob) + offset, sizeof(counts));
		if (offset + sizeof(counts) > size || counts[0] == 0 || counts[1] == 0 ||
			counts[1] > header.n_classes ||
			!hl_novelty_bytes(header.dim, counts[0], counts[1], &classes_bytes))
			hl_posterior_damaged(what, "Its novelty score has no valid dimensions.");
	}
	if (header.payload_bytes != float_bytes + header.labels_bytes + classes_bytes ||
		size != sizeof(header) + header.payload_bytes)
		hl_posterior_damaged(what, psprintf("Its sizes do not add up: %llu bytes in all, %llu of payload.",
											(unsigned long long) size,
											(unsigned long long) header.payload_bytes));

	payload = VARDATA_ANY(blob) + sizeof(header);
	if (((uintptr_t) payload) % sizeof(float) != 0)
		elog(ERROR, "posterior payload is not aligned for float access");
	if (header.payload_crc != hl_crc32c(payload, header.payload_bytes))
		hl_posterior_damaged(what, "The checksum of its payload does not match.");

	/* Payload: point into the bytea. */
	cells = (uint64) header.dim * header.n_classes;
	model->task = spans ? HL_TASK_SPANS : HL_TASK_CLASSIFICATION;
	model->features = header.features;
	model->idf = (const float *) payload;
	model->classifier.dim = header.dim;
	model->classifier.n_classes = header.n_classes;
	model->classifier.mean = (float *) (model->idf + header.dim);
	model->classifier.precision = model->classifier.mean + cells;
	model->classifier.bias_mean = model->classifier.precision + cells;
	model->classifier.bias_precision = model->classifier.bias_mean + header.n_classes;
	model->classifier.prior_precision = header.prior_precision;
	model->classifier.temperature = header.temperature;
	model->classifier.variance_scale = header.variance_scale;
	model->classifier.covariance_precision = header.covariance_precision;
	memset(&model->transitions, 0, sizeof(model->transitions));
	memset(&model->word_classes, 0, sizeof(model->word_classes));
	memset(&model->novelty, 0, sizeof(model->novelty));
	if (spans)
	{
		model->transitions.n_tags = header.n_classes;
		model->transitions.mean = model->classifier.bias_precision + header.n_classes;
		model->transitions.precision = model->transitions.mean +
			(uint64) (header.n_classes + 1) * header.n_classes;
	}

	/* Label names: exactly n_labels NUL-terminated strings. */
	labels = payload + float_bytes;
	labels_end = labels + header.labels_bytes;
	model->n_labels = header.n_labels;
	model->labels = palloc(sizeof(char *) * header.n_labels);
	for (uint32 i = 0; i < header.n_labels; i++)
	{
		const char *end = memchr(labels, '\0', labels_end - labels);

		if (end == NULL)
			hl_posterior_damaged(what, psprintf("Label %u of %u is not terminated.", i + 1, header.n_labels));
		model->labels[i] = (char *) labels;
		labels = end + 1;
	}

	/* Lookups by name search a classifier's labels in the strcmp order that training writes. */
	if (!spans)
		for (uint32 i = 1; i < header.n_labels; i++)
			if (strcmp(model->labels[i - 1], model->labels[i]) >= 0)
				hl_posterior_damaged(what, psprintf("Labels %u and %u are not in ascending order.", i, i + 1));
	if (!(isfinite(header.temperature) && header.temperature > 0))
		hl_posterior_damaged(what, "Its temperature is not a positive number.");
	if (header.task == HL_FILE_SPANS_CRF_CLASSES)
		hl_word_classes_read(payload + float_bytes + header.labels_bytes, model, what);
	if (header.task == HL_FILE_CLASSIFICATION_NOVELTY)
		hl_novelty_read(payload + float_bytes + header.labels_bytes, model, what);
}

#define HL_PATCH_MAGIC 0x54504c48		/* "HLPT" read as little-endian */

typedef struct HlPatchHeader
{
	uint32		magic;
	uint16		format_version;
	uint16		reserved;		/* must be zero */
	uint32		dim;
	uint32		n_classes;
	uint32		n_rows;
	int32		base_version;
	int32		depth;
	uint32		payload_crc;
	uint64		payload_bytes;
	uint32		reserved2;		/* must be zero */
	uint32		header_crc;		/* of the bytes above */
} HlPatchHeader;

StaticAssertDecl(sizeof(HlPatchHeader) == 48, "patch header must be 48 bytes");

/* Return the payload bytes of a patch, or false on overflow. */
static bool
hl_patch_payload_bytes(uint32 n_rows, uint32 n_classes, uint64 *bytes)
{
	uint64		cells;
	uint64		floats;

	if (pg_mul_u64_overflow((uint64) n_rows, (uint64) n_classes, &cells) ||
		pg_mul_u64_overflow(cells, 2, &floats) ||
		pg_add_u64_overflow(floats, 2 * (uint64) n_classes + n_rows, &floats) ||
		pg_mul_u64_overflow(floats, sizeof(float), bytes))
		return false;
	return true;
}

bytea *
hl_posterior_serialize_patch(const HlClassifier *classifier, const uint32 *touched,
							 uint32 n_touched, int32 base_version, int32 depth)
{
	HlPatchHeader header;
	uint32		k = classifier->n_classes;
	uint64		payload_bytes;
	bytea	   *blob;
	char	   *payload;
	char	   *p;

	if (!hl_patch_payload_bytes(n_touched, k, &payload_bytes) ||
		payload_bytes + sizeof(header) + VARHDRSZ > MaxAllocSize)
		elog(ERROR, "patch of %u rows and %u classes is too large", n_touched, k);

	blob = (bytea *) palloc0(VARHDRSZ + sizeof(header) + payload_bytes);
	SET_VARSIZE(blob, VARHDRSZ + sizeof(header) + payload_bytes);
	p = payload = VARDATA(blob) + sizeof(header);

	memcpy(p, touched, sizeof(uint32) * n_touched);
	p += sizeof(uint32) * n_touched;
	for (uint32 t = 0; t < n_touched; t++)
	{
		memcpy(p, classifier->mean + (size_t) touched[t] * k, sizeof(float) * k);
		p += sizeof(float) * k;
	}
	for (uint32 t = 0; t < n_touched; t++)
	{
		memcpy(p, classifier->precision + (size_t) touched[t] * k, sizeof(float) * k);
		p += sizeof(float) * k;
	}
	memcpy(p, classifier->bias_mean, sizeof(float) * k);
	p += sizeof(float) * k;
	memcpy(p, classifier->bias_precision, sizeof(float) * k);

	memset(&header, 0, sizeof(header));
	header.magic = HL_PATCH_MAGIC;
	header.format_version = HL_POSTERIOR_FORMAT;
	header.dim = classifier->dim;
	header.n_classes = k;
	header.n_rows = n_touched;
	header.base_version = base_version;
	header.depth = depth;
	header.payload_bytes = payload_bytes;
	header.payload_crc = hl_crc32c(payload, payload_bytes);
	header.header_crc = hl_crc32c(&header, offsetof(HlPatchHeader, header_crc));
	memcpy(VARDATA(blob), &header, sizeof(header));
	return blob;
}

/* Copy out and check a patch header; raise the damaged-posterior error on failure. */
static void
hl_patch_header(bytea *blob, HlPatchHeader *header, const char *what)
{
	uint64		size = VARSIZE_ANY_EXHDR(blob);
	uint64		payload_bytes;

	memcpy(header, VARDATA_ANY(blob), sizeof(*header));
	if (header->header_crc != hl_crc32c(header, offsetof(HlPatchHeader, header_crc)))
		hl_posterior_damaged(what, "The checksum of its patch header does not match.");
	if (header->format_version != HL_POSTERIOR_FORMAT ||
		header->reserved != 0 || header->reserved2 != 0)
		hl_posterior_damaged(what, "Its patch header has an unknown format or a reserved field set.");
	if (header->n_classes < 2 || header->n_classes > HL_MAX_CLASSES ||
		header->n_rows > header->dim || header->base_version < 1 || header->depth < 1 ||
		!hl_patch_payload_bytes(header->n_rows, header->n_classes, &payload_bytes) ||
		header->payload_bytes != payload_bytes ||
		size != sizeof(*header) + payload_bytes)
		hl_posterior_damaged(what, "Its patch sizes do not add up.");
}

bool
hl_posterior_patch_info(bytea *blob, int32 *base_version, int32 *depth, const char *what)
{
	HlPatchHeader header;
	uint32		magic;

	if (VARSIZE_ANY_EXHDR(blob) < sizeof(uint32))
		return false;
	memcpy(&magic, VARDATA_ANY(blob), sizeof(magic));
	if (magic != HL_PATCH_MAGIC)
		return false;
	if (VARSIZE_ANY_EXHDR(blob) < sizeof(header))
		hl_posterior_damaged(what, "It is shorter than its patch header.");

	hl_patch_header(blob, &header, what);
	*base_version = header.base_version;
	*depth = header.depth;
	return true;
}

void
hl_posterior_apply_patch(bytea *blob, HlModel *model, const char *what)
{
	HlPatchHeader header;
	const char *payload;
	const uint32 *rows;
	const float *mean;
	const float *precision;
	uint32		k;

	hl_patch_header(blob, &header, what);
	if (header.dim != model->classifier.dim || header.n_classes != model->classifier.n_classes)
		hl_posterior_damaged(what, "Its patch does not have the shape of its base version.");
	payload = VARDATA_ANY(blob) + sizeof(header);
	if (header.payload_crc != hl_crc32c(payload, header.payload_bytes))
		hl_posterior_damaged(what, "The checksum of its patch payload does not match.");

	k = header.n_classes;
	rows = (const uint32 *) payload;
	mean = (const float *) (rows + header.n_rows);
	precision = mean + (size_t) header.n_rows * k;
	for (uint32 t = 0; t < header.n_rows; t++)
	{
		if (rows[t] >= header.dim)
			hl_posterior_damaged(what, "A patched feature is out of range.");
		memcpy(model->classifier.mean + (size_t) rows[t] * k, mean + (size_t) t * k, sizeof(float) * k);
		memcpy(model->classifier.precision + (size_t) rows[t] * k, precision + (size_t) t * k,
			   sizeof(float) * k);
	}
	memcpy(model->classifier.bias_mean, precision + (size_t) header.n_rows * k, sizeof(float) * k);
	memcpy(model->classifier.bias_precision, precision + (size_t) header.n_rows * k + k,
		   sizeof(float) * k);
	model->patch_depth = header.depth;
}
