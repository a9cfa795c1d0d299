#!/usr/bin/python3
"""Update latency of the background worker, and accuracy of its fast updates.

    /usr/bin/python3 test/bench/bench_worker.py DATA_DIR [--inserts 500] [--out FILE]
        [--install-root DIR [--commit REV]]

DATA_DIR holds train.csv and test.csv with the header ``text,category`` (for
example the banking77 folder).  The script starts a throwaway cluster with
humanloop preloaded, loads the train split as the pool with its labels hidden,
labels a first random set and trains, then watches the model.  It commits one
single-row label every interval (100 ms by default) and measures, for each,
the time from the return of COMMIT to the moment a new version with that label
is visible through hl_models.  At the end it compares the test accuracy of the
incrementally updated model with a full retrain on the same labels.

With --install-root the server runs from a private copy of PostgreSQL under
DIR, built from --commit (HEAD by default) when DIR does not exist yet, so a
`make install` elsewhere on the machine cannot change the build under test.
"""

import argparse
import os
import random
import statistics
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402

INITIAL_LABELS = 1000
SEED = 7


def percentile(values, share):
    """Return the nearest-rank percentile of values (share in 0..1)."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, int(round(share * len(ordered) + 0.5)) - 1))
    return ordered[rank]


def load(cur, data_dir):
    """Load the pool (labels hidden), the truth and the test split."""
    for split in ("train", "test"):
        hlbench.copy_labelled_csv(cur, f"csv_{split}", os.path.join(data_dir, f"{split}.csv"))
    cur.execute("""
        CREATE TABLE pool (id int PRIMARY KEY, text text, category text);
        INSERT INTO pool SELECT row_number() OVER (), text, NULL FROM csv_train;
        CREATE TABLE truth (id int PRIMARY KEY, category text);
        INSERT INTO truth SELECT row_number() OVER (), category FROM csv_train;
        CREATE TABLE test AS SELECT text, category FROM csv_test;
        ANALYZE;
    """)


def accuracy(cur):
    """Return the test accuracy of the current version."""
    cur.execute("SELECT avg((hl_predict('b77', text) = category)::int)::float8 FROM test")
    return cur.fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--inserts", type=int, default=500)
    parser.add_argument("--interval", type=float, default=0.1, help="seconds between inserts")
    parser.add_argument("--out")
    parser.add_argument("--install-root", help="run from a private install under this directory")
    parser.add_argument("--commit", default="HEAD", help="commit to build into a new --install-root")
    args = parser.parse_args()

    hlbench.ensure_private_install(args.install_root, args.commit)

    settings = {
        "humanloop.worker_debounce": "'10ms'",
        "humanloop.full_retrain_labels": str(args.inserts + 1),
        "humanloop.keep_versions": "5",
    }
    with hlbench.throwaway_cluster(settings=settings, preload=True,
                                   install_root=args.install_root) as dsn:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION humanloop")
        print("loading", args.data_dir, file=sys.stderr)
        load(cur, args.data_dir)

        rng = random.Random(SEED)
        cur.execute("SELECT id FROM pool ORDER BY id")
        ids = [row[0] for row in cur.fetchall()]
        rng.shuffle(ids)
        initial, stream = ids[:INITIAL_LABELS], ids[INITIAL_LABELS:INITIAL_LABELS + args.inserts]

        cur.execute("UPDATE pool p SET category = t.category FROM truth t WHERE t.id = p.id AND p.id = ANY(%s)",
                    (initial,))
        cur.execute("SELECT hl_create_model('b77', 'pool', text_column => 'text', label_column => 'category')")
        print("training on", INITIAL_LABELS, "labels", file=sys.stderr)
        cur.execute("SELECT seconds FROM hl_train('b77')")
        full_seconds = cur.fetchone()[0]
        start_accuracy = accuracy(cur)
        cur.execute("SELECT hl_watch('b77')")

        print(f"committing {args.inserts} labels, one every {args.interval * 1000:.0f} ms", file=sys.stderr)
        latencies = []
        for n, item in enumerate(stream, start=1):
            started = time.perf_counter()
            cur.execute("UPDATE pool p SET category = t.category FROM truth t WHERE t.id = p.id AND p.id = %s",
                        (item,))
            committed = time.perf_counter()
            expected = INITIAL_LABELS + n
            while True:
                cur.execute("SELECT labelled_rows FROM hl_models WHERE name = 'b77'")
                if cur.fetchone()[0] >= expected:
                    break
                if time.perf_counter() - committed > 30:
                    raise RuntimeError(f"label {n} not visible after 30 s")
                time.sleep(0.001)
            latencies.append(time.perf_counter() - committed)
            time.sleep(max(0.0, args.interval - (time.perf_counter() - started)))

        cur.execute("SELECT count(*) FILTER (WHERE kind = 'update'), count(*) FILTER (WHERE kind = 'full')"
                    " FROM humanloop.model_versions")
        incremental_accuracy = accuracy(cur)
        cur.execute("SELECT hl_watch('b77', false)")
        cur.execute("SELECT seconds FROM hl_train('b77')")
        retrain_seconds = cur.fetchone()[0]
        full_accuracy = accuracy(cur)
        machine = hlbench.describe_machine(dsn)

    ms = [x * 1000 for x in latencies]
    lines = [
        f"Data: `{os.path.basename(os.path.normpath(args.data_dir))}`, {INITIAL_LABELS} labels to start "
        f"with, then {args.inserts} single-row label commits, one every {args.interval * 1000:.0f} ms. "
        f"Machine: {machine}.",
        "",
        "| | value |",
        "|---|---|",
        f"| latency p50, commit to new version visible in `hl_models` | {statistics.median(ms):.1f} ms |",
        f"| latency p90 | {percentile(ms, 0.90):.1f} ms |",
        f"| latency p99 | {percentile(ms, 0.99):.1f} ms |",
        f"| latency max | {max(ms):.1f} ms |",
        f"| test accuracy after {INITIAL_LABELS} labels (full training) | {start_accuracy:.4f} |",
        f"| test accuracy after {args.inserts} more labels, fast updates only | {incremental_accuracy:.4f} |",
        f"| test accuracy of a full retrain on the same labels | {full_accuracy:.4f} |",
        f"| difference, fast updates minus full retrain | {100 * (incremental_accuracy - full_accuracy):+.2f} points |",
        f"| full retrain time (`hl_train`), at {INITIAL_LABELS} and {INITIAL_LABELS + args.inserts} labels "
        f"| {full_seconds:.2f} s, {retrain_seconds:.2f} s |",
    ]
    hlbench.print_table(lines, args.out)


if __name__ == "__main__":
    main()
