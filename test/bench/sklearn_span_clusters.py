#!/usr/bin/python3
"""Measure what word clusters learned from the pool add to a span tagger.

Usage (with Debian's interpreter):
    /usr/bin/python3 test/bench/sklearn_span_clusters.py SNIPS_DIR
        [--clusters 200] [--sizes 500,1000,2000] [--seeds 1,2] [--full]

A prototype outside the server, to decide whether the extension's span
model should get cluster features.  It trains the per-token logistic
regression baseline of bench_spans.py on random subsets of the snips train
split, once with the extension's window templates and once with four more
features: the cluster of the word, of each neighbour, and the pair of the
previous and current clusters.  It prints span micro-F1 on test for both.

The clusters come from the train split's text alone, as the unlabelled pool
of a model would give them.  Each word type is described by the counts of
the words just before and after it, among the 1,000 most frequent words.
The square roots of those counts, L2-normalised, are grouped by k-means.
"""
import argparse
import collections
import os
import random
import sys
import time
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_spans  # noqa: E402


def word_clusters(texts, k, context_words=1000):
    """Return {lower-cased word: cluster} from the neighbours of each word type."""
    import numpy as np
    from scipy import sparse
    from sklearn.cluster import MiniBatchKMeans

    sentences = [[w.lower() for w in t.split(" ")] for t in texts]
    counts = collections.Counter(w for s in sentences for w in s)
    context = {w: i for i, (w, _) in enumerate(counts.most_common(context_words))}
    for edge in ("<s>", "</s>"):
        context.setdefault(edge, len(context))
    types = {w: i for i, w in enumerate(counts)}

    # Left neighbours fill the first half of the columns, right ones the second.
    rows, cols = [], []
    for s in sentences:
        for i, w in enumerate(s):
            left = s[i - 1] if i > 0 else "<s>"
            right = s[i + 1] if i + 1 < len(s) else "</s>"
            if left in context:
                rows.append(types[w])
                cols.append(context[left])
            if right in context:
                rows.append(types[w])
                cols.append(len(context) + context[right])
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                          shape=(len(types), 2 * len(context)))
    m.sum_duplicates()
    m.data = np.sqrt(m.data)
    norms = np.sqrt(np.asarray(m.multiply(m).sum(axis=1)).ravel()) + 1e-12
    m = sparse.diags(1.0 / norms) @ m

    km = MiniBatchKMeans(n_clusters=k, random_state=0, batch_size=2048, n_init=3).fit(m)
    return {w: int(km.labels_[i]) for w, i in types.items()}


def with_clusters(clusters):
    """Return a feature function: the window templates plus cluster features."""
    def cluster(words, j):
        if j < 0:
            return "start"
        if j >= len(words):
            return "end"
        return str(clusters.get(words[j].lower(), "unknown"))

    def features(words, i):
        f = bench_spans.token_features(words, i)
        f["c=" + cluster(words, i)] = 1
        f["c-1=" + cluster(words, i - 1)] = 1
        f["c+1=" + cluster(words, i + 1)] = 1
        f["c-1|c=" + cluster(words, i - 1) + "|" + cluster(words, i)] = 1
        return f
    return features


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snips_dir")
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--sizes", default="500,1000,2000")
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--full", action="store_true",
                        help="also train on the whole train split")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    train = bench_spans.read_split(os.path.join(args.snips_dir, "train"))
    test = bench_spans.read_split(os.path.join(args.snips_dir, "test"))
    started = time.time()
    clusters = word_clusters([text for text, _ in train], args.clusters)
    print(f"{len(clusters)} word types in {args.clusters} clusters, "
          f"{time.time() - started:.1f} s")
    plus = with_clusters(clusters)

    print("sentences | seed | F1 window features | F1 with clusters")
    runs = [(int(n), int(s)) for n in args.sizes.split(",") for s in args.seeds.split(",")]
    if args.full:
        runs.append((len(train), 0))
    for n, seed in runs:
        subset = random.Random(seed).sample(train, n) if n < len(train) else train
        plain = bench_spans.sklearn_baseline(subset, test)
        clustered = bench_spans.sklearn_baseline(subset, test, plus)
        print(f"{n} | {seed} | {plain:.4f} | {clustered:.4f}", flush=True)


if __name__ == "__main__":
    main()
