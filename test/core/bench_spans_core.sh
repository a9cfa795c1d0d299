#!/bin/sh
# Build the CRF span benchmark and run it on the snips splits.
# Usage: [HL_WORD_CLASSES=1] test/core/bench_spans_core.sh SNIPS_DIR [HASH_BITS [LAMBDA [MAX_ITER [TRAIN_SENTENCES [SCALES]]]]]
set -e
cd "$(dirname "$0")/../.."
cc -O2 -Wall -Wextra -Werror -iquote src $(pkg-config --cflags openblas) \
	-o test/core/bench_spans_core test/core/bench_spans_core.c src/hl_alloc.c \
	src/tokenize.c src/features.c src/model_classifier.c src/span_features.c \
	src/span_tags.c src/crf_lattice.c src/model_crf.c src/crf_predict.c src/word_classes.c src/pool_embedding.c \
	$(pkg-config --libs openblas) -lm
exec test/core/bench_spans_core "$@"
