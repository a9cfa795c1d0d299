# humanloop: human-in-the-loop active learning for text, as a PostgreSQL extension

EXTENSION = humanloop
EXTVERSION = 0.1.0

MODULE_big = humanloop
CORE_OBJS = src/hl_alloc.o src/tokenize.o src/features.o src/model_classifier.o \
	src/span_features.o src/span_tags.o src/crf_lattice.o src/model_crf.o src/crf_predict.o \
	src/crf_calibrate.o src/embedding.o src/disagreement.o src/pool_embedding.o src/novelty.o src/word_classes.o src/model_update.o \
	src/self_training.o src/metrics.o
OBJS = $(CORE_OBJS) \
	src/humanloop.o src/posterior_io.o src/catalog.o src/model_cache.o \
	src/text_source.o src/train.o src/sql_model.o src/sql_train.o src/sql_predict.o \
	src/sql_next_batch.o src/scoring.o src/acquisition.o \
	src/update.o src/worker_slots.o src/launcher.o src/worker.o src/sql_watch.o \
	src/evaluate.o src/abstention.o src/sql_evaluate.o src/sql_abstention.o src/sql_status.o \
	src/span_labels.o src/train_spans.o src/sql_spans.o src/span_acquisition.o

DATA = humanloop--$(EXTVERSION).sql
PGFILEDESC = "humanloop - active learning for text"

REGRESS = create_model train predict next_batch errors evaluate novelty self_training spans span_word_classes label_queue
REGRESS_OPTS = --inputdir=.

PG_CONFIG ?= pg_config

OPENBLAS_CFLAGS ?= $(shell pkg-config --cflags openblas 2>/dev/null || echo -I/usr/include/x86_64-linux-gnu/openblas-pthread)
OPENBLAS_LIBS ?= $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)

PG_CPPFLAGS = -iquote $(srcdir)/src $(OPENBLAS_CFLAGS)
PG_CFLAGS = -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers
SHLIB_LINK = $(OPENBLAS_LIBS) -lm

PGXS := $(shell $(PG_CONFIG) --pgxs)
include $(PGXS)

# The numeric core builds and runs without a server.
CORE_TEST_CFLAGS = -O2 -g -Wall -Wextra -Werror -iquote $(srcdir)/src $(OPENBLAS_CFLAGS)

test/core/core_test: test/core/core_test.c $(CORE_OBJS:.o=.c) $(wildcard src/*.h)
	$(CC) $(CORE_TEST_CFLAGS) -o $@ test/core/core_test.c $(CORE_OBJS:.o=.c) $(OPENBLAS_LIBS) -lm

check-core: test/core/core_test
	test/core/core_test

.PHONY: check-core

# PGXS tracks no header dependencies: rebuild every object when a header changes.
$(OBJS): $(wildcard $(srcdir)/src/*.h)
