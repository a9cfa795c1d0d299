/*
 * self_training.c
 *		Pseudo-labelled rows for self-training (numeric core, no PostgreSQL
 *		headers).
 *
 * Self-training (Yarowsky 1995; Lee 2013, "Pseudo-label") fits the model
 * again on its labelled rows plus the unlabelled rows it already predicts
 * with high probability, labelled with that prediction.  With few labels the
 * classifier knows the n-grams of the labelled rows only.  A confident
 * pseudo-labelled row links those n-grams to the others it contains, so
 * rows worded differently from every labelled one still get weight.  A small
 * row weight keeps the wrong pseudo-labels from outvoting real ones.
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

void
hl_self_training_extend(const HlClassifier *model, const HlDataset *labelled,
						const HlSparseRows *unlabelled, double threshold,
						float weight, HlSelfTrainingSet *out)
{
	uint32_t	n_labelled = labelled->n_rows;
	int32_t    *chosen = hl_alloc_array(unlabelled->n_rows > 0 ? unlabelled->n_rows : 1,
										sizeof(int32_t));
	float	   *proba = hl_alloc_array(model->n_classes, sizeof(float));
	float	   *workspace = hl_alloc_array(hl_classifier_workspace_size(model), sizeof(float));
	uint64_t	nnz = labelled->row_start[n_labelled];
	uint32_t	n_pseudo = 0;
	uint32_t	next_group = 0;
	uint32_t	n;

	/* Predict every unlabelled row and keep the confident ones. */
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
		chosen[r] = -1;
		if (x.nnz > 0 && prediction.probability >= threshold)
		{
			chosen[r] = prediction.label;
			n_pseudo++;
			nnz += x.nnz;
		}
	}
	hl_free(proba);
	hl_free(workspace);

	/* The labelled rows first, as they are. */
	n = n_labelled + n_pseudo;
	memset(out, 0, sizeof(*out));
	out->row_start = hl_alloc_array((size_t) n + 1, sizeof(uint64_t));
	out->index = hl_alloc_array(nnz > 0 ? nnz : 1, sizeof(uint32_t));
	out->value = hl_alloc_array(nnz > 0 ? nnz : 1, sizeof(float));
	out->row_label = hl_alloc_array(n > 0 ? n : 1, sizeof(int32_t));
	out->row_weight = hl_alloc_array(n > 0 ? n : 1, sizeof(float));
	out->row_group = hl_alloc_array(n > 0 ? n : 1, sizeof(uint32_t));
	out->train_only = hl_alloc_array(n > 0 ? n : 1, sizeof(uint8_t));
	memcpy(out->row_start, labelled->row_start, ((size_t) n_labelled + 1) * sizeof(uint64_t));
	memcpy(out->index, labelled->index, labelled->row_start[n_labelled] * sizeof(uint32_t));
	memcpy(out->value, labelled->value, labelled->row_start[n_labelled] * sizeof(float));
	memcpy(out->row_label, labelled->label, (size_t) n_labelled * sizeof(int32_t));
	for (uint32_t i = 0; i < n_labelled; i++)
	{
		out->row_weight[i] = labelled->weight ? labelled->weight[i] : 1.0f;
		out->row_group[i] = labelled->group ? labelled->group[i] : i;
		if (out->row_group[i] >= next_group)
			next_group = out->row_group[i] + 1;
	}

	/* Then each pseudo-labelled row, as an item of its own. */
	n = n_labelled;
	for (uint32_t r = 0; r < unlabelled->n_rows; r++)
	{
		uint64_t	len = row_length(unlabelled, r);

		if (chosen[r] < 0)
			continue;
		memcpy(out->index + out->row_start[n], unlabelled->index + unlabelled->row_start[r],
			   len * sizeof(uint32_t));
		memcpy(out->value + out->row_start[n], unlabelled->value + unlabelled->row_start[r],
			   len * sizeof(float));
		out->row_start[n + 1] = out->row_start[n] + len;
		out->row_label[n] = chosen[r];
		out->row_weight[n] = weight;
		out->row_group[n] = next_group++;
		out->train_only[n] = 1;
		n++;
	}
	hl_free(chosen);

	out->n_pseudo = n_pseudo;
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
	hl_free(set->train_only);
	memset(set, 0, sizeof(*set));
}
