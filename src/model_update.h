/*
 * model_update.h
 *		Fast approximate Bayesian update of a classifier's posterior with a
 *		few new labelled rows (numeric core, no PostgreSQL headers).
 */
#ifndef HL_MODEL_UPDATE_H
#define HL_MODEL_UPDATE_H

#include "model_classifier.h"

/*
 * Update model in place with the rows of data (same shape as the model).
 * Returns 0 on success; otherwise writes a message to errbuf and returns -1
 * without changing the model.
 */
extern int	hl_classifier_update(HlClassifier *model, const HlDataset *data,
								 uint32_t steps, char *errbuf, size_t errlen);

#endif							/* HL_MODEL_UPDATE_H */
