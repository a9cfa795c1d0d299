/*
 * span_acquisition.h
 *		Acquisition scores of sentences for span models.
 */
#ifndef HL_SPAN_ACQUISITION_H
#define HL_SPAN_ACQUISITION_H

#include "acquisition.h"

/*
 * Score of one tagged sentence under strategy; higher is more worth
 * labelling.  summary receives label -1, the probability of the decoded
 * tag sequence, and the summed token entropy and mutual information.
 */
extern double hl_span_acquisition_score(HlStrategy strategy,
										const HlTaggerOutput *tagged,
										const char *id, size_t id_len,
										const HlBatchOptions *options,
										HlPrediction *summary);

#endif							/* HL_SPAN_ACQUISITION_H */
