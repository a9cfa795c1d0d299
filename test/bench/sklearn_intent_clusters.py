#!/usr/bin/python3
"""Measure what word clusters learned from the pool add to an intent classifier.

Usage (with Debian's interpreter):
    /usr/bin/python3 test/bench/sklearn_intent_clusters.py BANKING77_DIR
        [--clusters 200] [--sizes 300,1000] [--seeds 1,2]

A prototype outside the server.  A scikit-learn logistic regression (C=100)
on TF-IDF word 1-2-grams and character 2-5-grams, close to the extension's
features, is trained on random subsets of the train split, once as it is
and once with the TF-IDF of each text's cluster sequence appended (weight
0.7).  The clusters are those of sklearn_span_clusters.py, learned from the
train split's text alone.  It prints test accuracy for both.
"""
import argparse
import csv
import os
import random
import re
import sys
import warnings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from sklearn_span_clusters import word_clusters  # noqa: E402


def read_csv(path):
    """Return [(text, category)] of a banking77 CSV file."""
    with open(path, newline="", encoding="utf-8") as f:
        return [(row["text"], row["category"]) for row in csv.DictReader(f)]


def words(text):
    return re.findall(r"[a-z0-9]+", text.lower())


def main():
    from scipy import sparse
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("banking77_dir")
    parser.add_argument("--clusters", type=int, default=200)
    parser.add_argument("--sizes", default="300,1000")
    parser.add_argument("--seeds", default="1,2")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    train = read_csv(os.path.join(args.banking77_dir, "train.csv"))
    test = read_csv(os.path.join(args.banking77_dir, "test.csv"))
    pool = [text for text, _ in train]
    clusters = word_clusters([" ".join(words(t)) for t in pool], args.clusters)

    def cluster_text(text):
        return " ".join("c%d" % clusters.get(w, -1) for w in words(text))

    # Every vectoriser learns its idf from the whole pool, as hl_train does.
    word = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                           token_pattern=r"[a-z0-9]+").fit(pool)
    char = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5),
                           sublinear_tf=True).fit(pool)
    cluster = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                              token_pattern=r"\S+").fit([cluster_text(t) for t in pool])

    def matrix(texts, with_clusters):
        blocks = [word.transform(texts), char.transform(texts)]
        if with_clusters:
            blocks.append(0.7 * cluster.transform([cluster_text(t) for t in texts]))
        return sparse.hstack(blocks).tocsr()

    test_texts = [t for t, _ in test]
    test_labels = [c for _, c in test]
    print("labels | seed | accuracy | accuracy with clusters")
    for n in (int(x) for x in args.sizes.split(",")):
        for seed in (int(x) for x in args.seeds.split(",")):
            subset = random.Random(seed).sample(train, n)
            texts = [t for t, _ in subset]
            labels = [c for _, c in subset]
            scores = []
            for with_clusters in (False, True):
                clf = LogisticRegression(C=100, max_iter=300)
                clf.fit(matrix(texts, with_clusters), labels)
                scores.append(clf.score(matrix(test_texts, with_clusters), test_labels))
            print(f"{n} | {seed} | {scores[0]:.4f} | {scores[1]:.4f}", flush=True)


if __name__ == "__main__":
    main()
