#!/bin/sh
# Build the fast-update benchmark and run it on a pool and a test file.
# Usage: test/core/bench_update.sh POOL.tsv TEST.tsv [INITIAL [UPDATES]]
set -e
cd "$(dirname "$0")/../.."
cc -O2 -Wall -Wextra -Werror -iquote src $(pkg-config --cflags openblas) \
	-o test/core/bench_update test/core/bench_update.c src/hl_alloc.c \
	src/tokenize.c src/features.c src/model_classifier.c src/model_update.c \
	$(pkg-config --libs openblas) -lm
exec test/core/bench_update "$@"
