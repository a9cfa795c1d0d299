#!/bin/sh
# Build the core benchmark and run it on a text,category CSV pair.
# Usage: test/core/bench_core.sh TRAIN.csv TEST.csv [HASH_BITS [WORD_MAX [CHAR_MIN CHAR_MAX]]]
set -e
cd "$(dirname "$0")/../.."
cc -O2 -Wall -Wextra -Werror -iquote src $(pkg-config --cflags openblas) \
	-o test/core/bench_core test/core/bench_core.c src/hl_alloc.c \
	src/tokenize.c src/features.c src/model_classifier.c src/pool_embedding.c src/novelty.c src/self_training.c \
	$(pkg-config --libs openblas) -lm
exec test/core/bench_core "$@"
