#!/usr/bin/python3
"""Supervised quality and speed of humanloop against scikit-learn, in one run.

    /usr/bin/python3 test/bench/bench_classify.py DATA_DIR [--dsn DSN] [--out FILE]

DATA_DIR contains train.csv and test.csv with the header ``text,category`` (for
example the banking77 folder).  The script loads both files with COPY into the
database DSN names (which must have the humanloop extension available), or,
without --dsn, into a throwaway cluster that test/bench/hlbench.py starts as
the postgres user (run as root after `make install`).  It trains
a model on the train split, scores the test split through SQL and runs the
scikit-learn reference (test/bench/baseline_sklearn.py) on the same files.  It
prints a Markdown table and, with --out, writes it to FILE.

Speed is reported as medians over repeated runs and as ratios against the
baseline measured in the same run, because the machines are shared and noisy.
"""

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time

import psycopg2

import hlbench

HERE = os.path.dirname(os.path.abspath(__file__))
ECE_BINS = 15
TRAIN_RUNS = 3
PREDICT_RUNS = 5
THROUGHPUT_COPIES = 40


def load(cur, data_dir):
    """Load train.csv and test.csv into bench.train and bench.test with COPY."""
    cur.execute("DROP SCHEMA IF EXISTS bench CASCADE")
    cur.execute("CREATE SCHEMA bench")
    for split in ("train", "test"):
        cur.execute(f"CREATE TABLE bench.{split}_csv (text text, category text)")
        with open(os.path.join(data_dir, f"{split}.csv"), encoding="utf-8") as f:
            cur.copy_expert(f"COPY bench.{split}_csv FROM STDIN WITH (FORMAT csv, HEADER true)", f)
        cur.execute(f"CREATE TABLE bench.{split} (id serial PRIMARY KEY, text text, category text)")
        cur.execute(f"INSERT INTO bench.{split} (text, category) SELECT text, category FROM bench.{split}_csv")
    cur.execute("""CREATE TABLE bench.throughput AS
                   SELECT t.text FROM bench.test t, generate_series(1, %s)""", (THROUGHPUT_COPIES,))
    # Both cores: the planner gives a table of this size one worker by default.
    cur.execute("ALTER TABLE bench.throughput SET (parallel_workers = 2)")
    cur.execute("ANALYZE")


def timed(cur, sql, args=None):
    """Run sql and return (seconds, rows)."""
    start = time.perf_counter()
    cur.execute(sql, args)
    rows = cur.fetchall()
    return time.perf_counter() - start, rows


def quality(cur):
    """Return accuracy, macro-F1, NLL, Brier score and ECE on bench.test."""
    cur.execute("""SELECT t.id, t.category, p.label, p.probability
                   FROM bench.test t, LATERAL hl_predict_proba('bench', t.text) p""")
    by_row = {}
    for row_id, truth, label, probability in cur.fetchall():
        by_row.setdefault(row_id, (truth, {}))[1][label] = probability

    n = len(by_row)
    correct = nll = brier = 0.0
    bins = [[0, 0.0, 0.0] for _ in range(ECE_BINS)]
    per_class = {}
    for truth, dist in by_row.values():
        predicted = max(dist.items(), key=lambda kv: (kv[1], kv[0]))[0]
        confidence = dist[predicted]
        hit = predicted == truth
        correct += hit
        nll -= math.log(max(dist.get(truth, 0.0), 1e-12))
        brier += sum((p - (label == truth)) ** 2 for label, p in dist.items())
        if truth not in dist:
            brier += 1.0
        b = bins[min(int(confidence * ECE_BINS), ECE_BINS - 1)]
        b[0] += 1
        b[1] += hit
        b[2] += confidence
        for label in (truth, predicted):
            per_class.setdefault(label, [0, 0, 0])  # tp, fp, fn
        if hit:
            per_class[truth][0] += 1
        else:
            per_class[predicted][1] += 1
            per_class[truth][2] += 1

    f1s = []
    for tp, fp, fn in per_class.values():
        f1s.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    ece = sum(abs(b[1] - b[2]) for b in bins if b[0]) / n
    return {
        "accuracy": correct / n,
        "macro_f1": sum(f1s) / len(f1s),
        "nll": nll / n,
        "brier": brier / n,
        "ece": ece,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--dsn", help="database to use; without it, a throwaway cluster is started")
    parser.add_argument("--sklearn-c", type=float,
                        help="use this C for scikit-learn instead of choosing it on a validation split")
    parser.add_argument("--out")
    parser.add_argument("--preload", action="store_true",
                        help="start the throwaway cluster with humanloop in shared_preload_libraries")
    args = parser.parse_args()

    if args.dsn:
        run(args, args.dsn)
    else:
        with hlbench.throwaway_cluster(preload=args.preload) as dsn:
            run(args, dsn)


def run(args, dsn):
    """Load the data into the database dsn, measure humanloop and the baseline, print the table."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    machine = hlbench.describe_machine(dsn)
    cur.execute("CREATE EXTENSION IF NOT EXISTS humanloop")
    print("loading", args.data_dir, file=sys.stderr)
    load(cur, args.data_dir)
    print("training", file=sys.stderr)
    train_seconds = []
    for _ in range(TRAIN_RUNS):
        # A fresh model each time: a second hl_train would warm-start from the first.
        cur.execute("SELECT hl_drop_model('bench', if_exists => true)")
        cur.execute("""SELECT hl_create_model('bench', 'bench.train', text_column => 'text',
                                              label_column => 'category')""")
        seconds, rows = timed(cur, "SELECT seconds, metrics FROM hl_train('bench')")
        train_seconds.append(seconds)
    metrics = rows[0][1]

    print("scoring the test split", file=sys.stderr)
    hl = quality(cur)

    cur.execute("SELECT count(*) FROM bench.throughput")
    n_throughput = cur.fetchone()[0]
    predict_seconds, parallel_seconds, scan_seconds = [], [], []
    for _ in range(PREDICT_RUNS):
        cur.execute("SET max_parallel_workers_per_gather = 0")
        predict_seconds.append(timed(cur, "SELECT count(hl_predict('bench', text)) FROM bench.throughput")[0])
        scan_seconds.append(timed(cur, "SELECT sum(length(text)) FROM bench.throughput")[0])
        cur.execute("RESET max_parallel_workers_per_gather")
        parallel_seconds.append(timed(cur, "SELECT count(hl_predict('bench', text)) FROM bench.throughput")[0])
    cur.execute("EXPLAIN SELECT count(hl_predict('bench', text)) FROM bench.throughput")
    workers = [line for (line,) in cur.fetchall() if "Workers Planned" in line]
    planned = workers[0].split(":")[1].strip() if workers else "0"

    print("running the scikit-learn baseline", file=sys.stderr)
    baseline = json.loads(subprocess.run(
        ["/usr/bin/python3", os.path.join(HERE, "baseline_sklearn.py"),
         os.path.join(args.data_dir, "train.csv"), os.path.join(args.data_dir, "test.csv")]
        + ([str(args.sklearn_c)] if args.sklearn_c else []),
        check=True, capture_output=True, text=True).stdout)

    hl_train = statistics.median(train_seconds)
    hl_rate = n_throughput / statistics.median(predict_seconds)
    parallel_rate = n_throughput / statistics.median(parallel_seconds)
    scan_rate = n_throughput / statistics.median(scan_seconds)
    sk_rate = baseline["predict_rows_per_second"]
    lines = [
        f"Data: `{os.path.basename(os.path.normpath(args.data_dir))}`; machine: {machine}.",
        "",
        "| | accuracy | macro-F1 | NLL | Brier | ECE | train s (median of %d) | predict rows/s |" % TRAIN_RUNS,
        "|---|---|---|---|---|---|---|---|",
        f"| humanloop | {hl['accuracy']:.3f} | {hl['macro_f1']:.3f} | {hl['nll']:.3f} | "
        f"{hl['brier']:.3f} | {hl['ece']:.3f} | {hl_train:.2f} | {hl_rate:,.0f} |",
        f"| scikit-learn (C={baseline['C']:g}) | {baseline['accuracy']:.3f} | {baseline['macro_f1']:.3f} | "
        f"{baseline['nll']:.3f} | {baseline['brier']:.3f} | {baseline['ece']:.3f} | "
        f"{baseline['fit_seconds']:.2f} | {sk_rate:,.0f} |",
        "",
        f"- `hl_train` is {baseline['fit_seconds'] / hl_train:.1f} times as fast as the scikit-learn fit "
        f"to convergence (featurisation included in both). Stopped at scikit-learn's default of 100 "
        f"iterations, the fit takes {baseline['fit_seconds_100_iterations']:.2f} s (accuracy "
        f"{baseline['accuracy_100_iterations']:.3f}), and `hl_train` is "
        f"{baseline['fit_seconds_100_iterations'] / hl_train:.1f} times as fast as that.",
        f"- Prediction through SQL (`SELECT count(hl_predict(...))` over {n_throughput:,} rows, median of "
        f"{PREDICT_RUNS}) in one process is {hl_rate / sk_rate:.1f} times the rate of scikit-learn's "
        f"`predict_proba` with featurisation (one process too). With the default parallel query "
        f"settings and `parallel_workers = 2` on the table the planner uses {planned} workers plus the leader: {parallel_rate:,.0f} rows/s, "
        f"{parallel_rate / sk_rate:.1f} times scikit-learn. A plain scan of the same column "
        f"(`sum(length(text))`) runs at {scan_rate:,.0f} rows/s.",
        f"- Fitted settings: prior precision {metrics.get('prior_precision')}, temperature "
        f"{metrics.get('temperature')}, variance scale {metrics.get('variance_scale')}, "
        f"{metrics.get('feature_buckets')} feature buckets; held-out accuracy during training "
        f"{metrics.get('heldout_accuracy')}.",
    ]
    hlbench.print_table(lines, args.out)


if __name__ == "__main__":
    main()
