/*
 * posterior_io.h
 *		Serialisation of a trained model to bytea and back, with validation.
 */
#ifndef HL_POSTERIOR_IO_H
#define HL_POSTERIOR_IO_H

#include "humanloop.h"

/*
 * Serialise the featuriser settings, idf vector, posterior, label names and
 * novelty score (NULL or k 0 for none) into a new bytea in the current
 * memory context.
 */
extern bytea *hl_posterior_serialize(const HlFeatureConfig *features,
									 const float *idf,
									 const HlClassifier *classifier,
									 char **labels, uint32 n_labels,
									 const HlNovelty *novelty);

/*
 * Serialise a span model: the featuriser settings (only hash_bits is used),
 * an idf vector (unused, kept for the common layout), the CRF's emission
 * weights over BIO tags and its transitions, the span label names, and the
 * word classes of its features (NULL or empty for none).
 */
extern bytea *hl_posterior_serialize_spans(const HlFeatureConfig *features,
										   const float *idf,
										   const HlClassifier *classifier,
										   const HlCrfTransitions *transitions,
										   char **labels, uint32 n_labels,
										   const HlWordClasses *classes);

/*
 * Validate a detoasted posterior and point model's fields into it; the
 * bytea must outlive the model.  what names the model version in errors,
 * which carry ERRCODE_DATA_CORRUPTED.
 */
extern void hl_posterior_deserialize(bytea *blob, HlModel *model,
									 const char *what);

/*
 * Serialise the rows of features touched (n_touched sorted indices) and the
 * biases of classifier as a patch over version base_version, depth patches
 * deep.  Loading it needs the base version.
 */
extern bytea *hl_posterior_serialize_patch(const HlClassifier *classifier,
										   const uint32 *touched, uint32 n_touched,
										   int32 base_version, int32 depth);

/*
 * Return whether a detoasted posterior is a patch, and if so set its base
 * version and depth.  Validates the patch header (ERRCODE_DATA_CORRUPTED).
 */
extern bool hl_posterior_patch_info(bytea *blob, int32 *base_version,
									int32 *depth, const char *what);

/* Apply a validated patch to model, a private copy of its base version. */
extern void hl_posterior_apply_patch(bytea *blob, HlModel *model, const char *what);

#endif							/* HL_POSTERIOR_IO_H */
