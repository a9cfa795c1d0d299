#!/usr/bin/python3
"""Measure a pool-relative novelty score for flagging intents without labels.

Usage (with Debian's interpreter):
    /usr/bin/python3 test/bench/sklearn_novelty.py BANKING77_DIR
        [--seed 7] [--components 128,256] [--fold-bits 0,14]

A prototype outside the server, for the out-of-scope test of
docs/calibration.md.  Ten intents chosen with the seed are left out of the
labelled rows.  Each score is rated by its AUROC for telling the test rows
of those intents from the test rows of the others, and by the share of
held-out-intent rows flagged when 95% of known-intent rows stay automatic.

The classifier is the reference pipeline of baseline_sklearn.py (C=100).
The novelty score is a relative Mahalanobis distance (Ren et al. 2021, "A
simple fix to Mahalanobis distance for improving near-OOD detection") in a
latent semantic space: the TF-IDF rows go through a truncated SVD with
--components dimensions and are L2-normalised.  A row's distance to the
nearest labelled class mean under the classes' shared covariance, minus its
distance to the mean of the whole pool under the pool's covariance, is
large where the pool has text that no labelled class covers.

Two pools are compared.  "with unlabelled rows" fits the SVD and the pool
Gaussian on every train row, the held-out intents' rows among them without
their labels, as a humanloop relation contains labelled and unlabelled rows.
"labelled rows only" fits both on the known intents' rows, as when the
unlabelled intents are not in the relation at all.  --fold-bits 14 first
folds the TF-IDF columns into 2^14 buckets, the size of the extension's
default feature space.
"""
import argparse
import os
import random
import sys
import warnings

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import baseline_sklearn  # noqa: E402

KNOWN_COVERAGE = 0.95
HELD_OUT_INTENTS = 10
RIDGE = 1e-4


def flagged(unknown, uncertainty):
    """Share of unknown rows above the uncertainty that keeps 95% of known rows automatic."""
    threshold = np.quantile(uncertainty[~unknown], KNOWN_COVERAGE)
    return float((uncertainty[unknown] > threshold).mean())


def fold(matrix, bits):
    """Fold the columns of a sparse matrix into 2^bits buckets (0: unchanged)."""
    from scipy import sparse

    if bits == 0:
        return matrix
    coo = matrix.tocoo()
    return sparse.csr_matrix((coo.data, (coo.row, coo.col % (1 << bits))),
                             shape=(matrix.shape[0], 1 << bits))


def whitening(rows, ridge=RIDGE):
    """Return W with W^T W the inverse of the rows' covariance plus a ridge."""
    covariance = np.cov(rows.T) + ridge * np.eye(rows.shape[1])
    values, vectors = np.linalg.eigh(covariance)
    return (vectors / np.sqrt(values)).T


def relative_mahalanobis(labelled, labels, pool, rows):
    """Return the rows' nearest-class distance minus their pool distance."""
    classes = sorted(set(labels))
    means = np.stack([labelled[labels == c].mean(axis=0) for c in classes])
    within = whitening(labelled - means[np.searchsorted(classes, labels)])
    white_rows = rows @ within.T
    white_means = means @ within.T
    nearest = ((white_rows[:, None, :] - white_means[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    pool_mean = pool.mean(axis=0)
    background = whitening(pool - pool_mean)
    return nearest - (((rows - pool_mean) @ background.T) ** 2).sum(axis=1)


def main():
    from sklearn.decomposition import TruncatedSVD
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import normalize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("banking77_dir")
    parser.add_argument("--seed", type=int, default=7, help="seed choosing the held-out intents")
    parser.add_argument("--components", default="128,256")
    parser.add_argument("--fold-bits", default="0,14")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    train_texts, train_labels = baseline_sklearn.read_csv(os.path.join(args.banking77_dir, "train.csv"))
    test_texts, test_labels = baseline_sklearn.read_csv(os.path.join(args.banking77_dir, "test.csv"))
    held_out = set(random.Random(args.seed).sample(sorted(set(train_labels)), HELD_OUT_INTENTS))
    known_texts = [t for t, c in zip(train_texts, train_labels) if c not in held_out]
    known_labels = np.array([c for c in train_labels if c not in held_out])
    unknown = np.array([c in held_out for c in test_labels])

    pipeline = baseline_sklearn.make_pipeline(100).fit(known_texts, known_labels)
    probability = pipeline.predict_proba(test_texts).max(axis=1)
    features = pipeline[:-1]
    print("| pool | buckets | components | score | AUROC | held-out rows flagged |")
    print("|---|---|---|---|---|---|")
    print(f"| | | | 1 - top probability (baseline) | {roc_auc_score(unknown, 1 - probability):.3f} "
          f"| {flagged(unknown, 1 - probability):.3f} |")

    for bits in (int(b) for b in args.fold_bits.split(",")):
        known = fold(features.transform(known_texts), bits)
        test = fold(features.transform(test_texts), bits)
        everything = fold(features.transform(train_texts), bits)
        buckets = f"2^{bits}" if bits else "all columns"
        for pool_name, pool_matrix in (("with unlabelled rows", everything), ("labelled rows only", known)):
            for k in (int(c) for c in args.components.split(",")):
                svd = TruncatedSVD(k, random_state=0).fit(pool_matrix)
                z_known, z_test, z_pool = (normalize(svd.transform(m)) for m in (known, test, pool_matrix))
                novelty = relative_mahalanobis(z_known, known_labels, z_pool, z_test)
                reference = relative_mahalanobis(z_known, known_labels, z_pool, z_known)
                spread = reference.std()
                scores = {
                    "novelty": novelty,
                    "top probability - 0.2 x novelty / spread":
                        -(probability - 0.2 * (novelty - np.median(reference)) / spread),
                }
                for name, score in scores.items():
                    print(f"| {pool_name} | {buckets} | {k} | {name} | {roc_auc_score(unknown, score):.3f} "
                          f"| {flagged(unknown, score):.3f} |", flush=True)


if __name__ == "__main__":
    main()
