/*
 * self_training.c
 *		Pseudo-labelled rows for self-training (numeric core, no PostgreSQL
 *		headers).
 *
 * Self-training (Yarowsky 1995; Lee 2013, "Pseudo-label") fits the model
 * again on its labelled rows plus the unlabelled rows it already predicts
 * with high probability, labelled with that prediction.  With few labels
 * the classifier has weights only for the n-grams of the labelled rows.  A
 * confident pseudo-labelled row links those n-grams to the others it
 * contains, so rows worded differently from every labelled one still get
 * weight.  A small row weight keeps the wrong pseudo-labels from outvoting
 * real ones.
 */
#include "self_training.h"

#include <string.h>

#include "hl_alloc.h"


/* Return the number of entries of row r of rows. */
static uint64_t
row_length(const HlSparseRows *rows, uint32_t r)
{
	return rows->row_start[r + 1] - rows->row_start[r];
}

/*
 * Store in chosen[r] the most probable class of row r of unlabelled under
 * model when its probability is threshold or more, and -1 otherwise.
 */
static void
choose_labels(const HlClassifier *model, const HlSparseRows *unlabelled, double threshold,
			  int32_t *chosen)
{
	float	   *proba = hl_alloc_array(model->n_classes, sizeof(float));
	float	   *workspace = hl_alloc_array(hl_classifier_workspace_size(model), sizeof(float));

	for (uint32_t r = 0; r < unlabelled->n_rows; r++)
	{
		HlSparseVec x;
		HlPrediction prediction;

		if (r % 1024 == 0)
			hl_check_interrupt();
		x.nnz = (uint32_t) row_length(unlabelled, r);
		x.capacity = x.nnz;
		x.index = (uint32_t *) unlabelled->index + unlabelled->row_start[r];
		x.value = (float *) unlabelled->value + unlabelled->row_start[r];
		hl_classifier_predict(model, &x, proba, &prediction, workspace);
		chosen[r] = x.nnz > 0 && prediction.probability >= threshold ? prediction.label : -1;
	}
	hl_free(proba);
	hl_free(workspace);
}

/* Append row r of unlabelled to out as row n with label, stage and group. */
static void
append_row(HlSelfTrainingSet *out, uint32_t n, const HlSparseRows *unlabelled, uint32_t r,
		   int32_t label, uint8_t stage, float weight, uint32_t group)
{
	uint64_t	len = row_length(unlabelled, r);

	memcpy(out->index + out->row_start[n], unlabelled->index + unlabelled->row_start[r],
		   len * sizeof(uint32_t));
	memcpy(out->value + out->row_start[n], unlabelled->value + unlabelled->row_start[r],
		   len * sizeof(float));
	out->row_start[n + 1] = out->row_start[n] + len;
	out->row_label[n] = label;
	out->row_weight[n] = weight;
	out->row_group[n] = group;
	out->row_stage[n] = stage;
}

void
hl_self_training_extend(const HlClassifier *split_model, const HlClassifier *model,
						const HlDataset *labelled, const HlSparseRows *unlabelled,
						double threshold, float weight, HlSelfTrainingSet *out)
{
	uint32_t	n_labelled = labelled->n_rows;
	uint32_t	n_unlabelled = unlabelled->n_rows;
	int32_t    *split_label = hl_alloc_array(n_unlabelled > 0 ? n_unlabelled : 1, sizeof(int32_t));
	int32_t    *final_label = hl_alloc_array(n_unlabelled > 0 ? n_unlabelled : 1, sizeof(int32_t));
	uint64_t	nnz = labelled->row_start[n_labelled];
	uint32_t	n = n_labelled;
	uint32_t	next_group = 0;

	choose_labels(split_model, unlabelled, threshold, split_label);
	choose_labels(model, unlabelled, threshold, final_label);

	/* Count the rows: one where both agree, else one per label. */
	memset(out, 0, sizeof(*out));
	for (uint32_t r = 0; r < n_unlabelled; r++)
	{
		uint32_t	rows = split_label[r] == final_label[r] ? (split_label[r] >= 0) :
			(split_label[r] >= 0) + (final_label[r] >= 0);

		n += rows;
		nnz += rows * row_length(unlabelled, r);
		out->n_pseudo += final_label[r] >= 0;
		out->n_split_pseudo += split_label[r] >= 0;
	}

	/* The labelled rows first, as they are. */
	out->row_start = hl_alloc_array((size_t) n + 1, sizeof(uint64_t));
	out->index = hl_alloc_array(nnz > 0 ? nnz : 1, sizeof(uint32_t));
	out->value = hl_alloc_array(nnz > 0 ? nnz : 1, sizeof(float));
	out->row_label = hl_alloc_array(n > 0 ? n : 1, sizeof(int32_t));
	out->row_weight = hl_alloc_array(n > 0 ? n : 1, sizeof(float));
	out->row_group = hl_alloc_array(n > 0 ? n : 1, sizeof(uint32_t));
	out->row_stage = hl_alloc_array(n > 0 ? n : 1, sizeof(uint8_t));
	memcpy(out->row_start, labelled->row_start, ((size_t) n_labelled + 1) * sizeof(uint64_t));
	memcpy(out->index, labelled->index, labelled->row_start[n_labelled] * sizeof(uint32_t));
	memcpy(out->value, labelled->value, labelled->row_start[n_labelled] * sizeof(float));
	memcpy(out->row_label, labelled->label, (size_t) n_labelled * sizeof(int32_t));
	for (uint32_t i = 0; i < n_labelled; i++)
	{
		out->row_weight[i] = labelled->weight ? labelled->weight[i] : 1.0f;
		out->row_group[i] = labelled->group ? labelled->group[i] : i;
		out->row_stage[i] = HL_ROW_ANY;
		if (out->row_group[i] >= next_group)
			next_group = out->row_group[i] + 1;
	}

	/* Then the pseudo-labelled rows, each an item of its own. */
	n = n_labelled;
	for (uint32_t r = 0; r < n_unlabelled; r++)
	{
		if (split_label[r] >= 0 && split_label[r] == final_label[r])
		{
			append_row(out, n++, unlabelled, r, split_label[r], HL_ROW_TRAIN, weight, next_group++);
			continue;
		}
		if (split_label[r] >= 0)
			append_row(out, n++, unlabelled, r, split_label[r], HL_ROW_SPLIT_ONLY, weight,
					   next_group++);
		if (final_label[r] >= 0)
			append_row(out, n++, unlabelled, r, final_label[r], HL_ROW_FINAL_ONLY, weight,
					   next_group++);
	}
	hl_free(split_label);
	hl_free(final_label);

	out->data = *labelled;
	out->data.n_rows = n;
	out->data.row_start = out->row_start;
	out->data.index = out->index;
	out->data.value = out->value;
	out->data.label = out->row_label;
	out->data.weight = out->row_weight;
	out->data.group = out->row_group;
}

void
hl_self_training_free(HlSelfTrainingSet *set)
{
	hl_free(set->row_start);
	hl_free(set->index);
	hl_free(set->value);
	hl_free(set->row_label);
	hl_free(set->row_weight);
	hl_free(set->row_group);
	hl_free(set->row_stage);
	memset(set, 0, sizeof(*set));
}
