/*
 * posterior_io.h
 *		Serialisation of a trained model to bytea and back, with validation.
 */
#ifndef HL_POSTERIOR_IO_H
#define HL_POSTERIOR_IO_H

#include "humanloop.h"

/*
 * Serialise the featuriser settings, idf vector, posterior and label names
 * into a new bytea in the current memory context.
 */
extern bytea *hl_posterior_serialize(const HlFeatureConfig *features,
									 const float *idf,
									 const HlClassifier *classifier,
									 char **labels, uint32 n_labels);

/*
 * Validate a detoasted posterior and point model's fields into it; the
 * bytea must outlive the model.  what names the model version in errors,
 * which carry ERRCODE_DATA_CORRUPTED.
 */
extern void hl_posterior_deserialize(bytea *blob, HlModel *model,
									 const char *what);

#endif							/* HL_POSTERIOR_IO_H */
