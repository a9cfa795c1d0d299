#!/usr/bin/python3
"""How well hl_status and hl_evaluate estimate accuracy under active learning.

    /usr/bin/python3 test/bench/bench_accuracy_estimates.py DATA_DIR [--checkpoints 300,1000,2000]
        [--seeds 2] [--out FILE] [--install-root DIR [--commit REV]]

DATA_DIR contains train.csv and test.csv with the header ``text,category`` (for
example the banking77 folder).  The training split is the pool, its labels
kept in a side table.  Each seed labels 50 rows chosen by the cold start
(strategy coverage), then rounds of 50 chosen by hl_next_batch's default,
training after each round, as in bench_active.py.  At each checkpoint it
compares, for the current version:

- the true accuracy on the pool's unlabelled rows and on the test split;
- hl_status's mean_confidence (the mean probability of the predicted label
  over its pool sample of 1,000 rows);
- 5-fold cross-validation of the labels (hl_evaluate without a relation);
- the held-out accuracy of the training, when it had a split.

With --install-root the server runs from a private copy of PostgreSQL under
DIR, built from --commit (HEAD by default) when DIR does not exist yet.
"""

import argparse
import json
import os
import statistics
import sys

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402

BATCH = 50


def load(cur, data_dir):
    """Load the pool's true labels into table answers, and the test split."""
    for split in ("train", "test"):
        hlbench.copy_labelled_csv(cur, f"csv_{split}", os.path.join(data_dir, f"{split}.csv"))
    cur.execute("""
        CREATE TABLE answers (id int PRIMARY KEY, category text);
        INSERT INTO answers SELECT row_number() OVER (), category FROM csv_train;
        CREATE TABLE test AS SELECT text, category FROM csv_test;
    """)


def measure(cur, labelled, heldout):
    """Return the true accuracies and the estimates of the current version."""
    cur.execute("""
        SELECT avg((c.label = a.category)::int)::float8
        FROM pool p JOIN answers a USING (id), hl_classify('estimates', p.text) c
        WHERE p.category IS NULL""")
    pool_accuracy = cur.fetchone()[0]
    cur.execute("SELECT avg((hl_predict('estimates', t.text) = t.category)::int)::float8 FROM test t")
    test_accuracy = cur.fetchone()[0]
    cur.execute("SELECT mean_confidence FROM hl_status('estimates')")
    confidence = cur.fetchone()[0]
    cur.execute("SELECT (hl_evaluate('estimates')->>'accuracy')::float8")
    cross_validation = cur.fetchone()[0]
    return {"labels": labelled, "pool": pool_accuracy, "test": test_accuracy,
            "confidence": confidence, "cross_validation": cross_validation,
            "heldout": float(heldout) if heldout is not None else None}


def run_seed(cur, seed, checkpoints):
    """Label by active learning up to the last checkpoint; return a row per checkpoint."""
    cur.execute("""
        SELECT hl_drop_model(name) FROM hl_models WHERE name = 'estimates';
        DROP TABLE IF EXISTS pool;
        CREATE TABLE pool (id int PRIMARY KEY, text text, category text);
        INSERT INTO pool SELECT row_number() OVER (), text, NULL FROM csv_train;
    """)
    cur.execute("SELECT hl_create_model('estimates', 'pool', text_column => 'text', label_column => 'category')")

    def label(strategy, options):
        cur.execute("SELECT id FROM hl_next_batch('estimates', %s, %s, %s)",
                    (BATCH, strategy, json.dumps(options)))
        ids = [row[0] for row in cur.fetchall()]
        cur.execute("UPDATE pool p SET category = a.category FROM answers a"
                    " WHERE a.id = p.id AND p.id::text = ANY(%s)", (ids,))

    label("coverage", {"seed": seed})
    labelled = BATCH
    rows = []
    while True:
        cur.execute("SELECT metrics->>'heldout_accuracy' FROM hl_train('estimates')")
        heldout = cur.fetchone()[0]
        if labelled in checkpoints:
            rows.append(measure(cur, labelled, heldout))
            print(f"seed {seed}: {rows[-1]}", file=sys.stderr)
        if labelled >= max(checkpoints):
            break
        label(None, {"seed": seed, "reserve": False})
        labelled += BATCH
    return rows


def mean(values):
    """Return the mean of the values that are not None, or None."""
    present = [v for v in values if v is not None]
    return statistics.mean(present) if present else None


def cell(value):
    """Format a mean for the table."""
    return "–" if value is None else f"{value:.3f}"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--checkpoints", default="300,1000,2000")
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--out")
    parser.add_argument("--install-root", help="run from a private install under this directory")
    parser.add_argument("--commit", default="HEAD", help="commit to build into a new --install-root")
    args = parser.parse_args()
    checkpoints = sorted(int(c) for c in args.checkpoints.split(","))

    hlbench.ensure_private_install(args.install_root, args.commit)

    settings = {"humanloop.reservation_timeout": "0", "max_parallel_workers_per_gather": "0"}
    with hlbench.throwaway_cluster(settings=settings, install_root=args.install_root) as dsn:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION humanloop")
        load(cur, args.data_dir)
        results = [run_seed(cur, seed, checkpoints) for seed in range(args.seeds)]
        machine = hlbench.describe_machine(dsn)

    lines = [
        f"Data: `{os.path.basename(os.path.normpath(args.data_dir))}`, labels chosen by the default of "
        f"`hl_next_batch` after a cold start, means of {args.seeds} seeds. Machine: {machine}.",
        "",
        "| labels | accuracy on unlabelled pool rows | on the test split | `mean_confidence` "
        "| cross-validation | held-out split of the training |",
        "|---|---|---|---|---|---|",
    ]
    for i, labels in enumerate(checkpoints):
        at = [seed_rows[i] for seed_rows in results]
        lines.append(f"| {labels:,} | " + " | ".join(
            cell(mean(r[key] for r in at))
            for key in ("pool", "test", "confidence", "cross_validation", "heldout")) + " |")
    hlbench.print_table(lines, args.out)


if __name__ == "__main__":
    main()
