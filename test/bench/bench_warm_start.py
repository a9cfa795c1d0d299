#!/usr/bin/python3
"""Cost and quality of the trainings that follow one another as labels arrive.

    /usr/bin/python3 test/bench/bench_warm_start.py DATA_DIR [--start 1000] [--step 100]
        [--steps 5] [--seeds 1,2] [--out FILE] [--install-root DIR [--commit REV]]

DATA_DIR contains train.csv and test.csv with the header ``text,category``
(for example the banking77 folder).  For each seed the script labels --start
random rows of the train split and calls hl_train, then labels --step more
rows at a time and calls hl_train after each, --steps times.  Those later
trainings are the ones a labelling session makes: most warm start from the
current version, and one in about four chooses the prior precision again.
Every version is scored on the test split with hl_evaluate.  At the end a
second model on the same relation is trained once, from scratch, on the
same labels, as the reference for the last version.

The table gives, per training, the medians over the seeds of the wall-clock
seconds of hl_train and of its L-BFGS iterations, how many seeds warm
started, the prior precisions chosen, and the mean test accuracy, NLL and
expected calibration error.

With --install-root the server runs from a private copy of PostgreSQL under
DIR, built from --commit (HEAD by default) when DIR does not exist yet, so a
`make install` elsewhere on the machine cannot change the build under test.
"""

import argparse
import os
import statistics
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402


def load(cur, data_dir):
    """Create pool(id, text, label, category) from train.csv with every label NULL, and test(text, label)."""
    hlbench.copy_labelled_csv(cur, "csv_train", os.path.join(data_dir, "train.csv"))
    hlbench.copy_labelled_csv(cur, "csv_test", os.path.join(data_dir, "test.csv"))
    cur.execute("""
        CREATE TABLE pool AS
        SELECT row_number() OVER (ORDER BY text, category)::int AS id, text,
               NULL::text AS label, category
        FROM csv_train;
        ALTER TABLE pool ADD PRIMARY KEY (id);
        CREATE TABLE test AS SELECT text, category AS label FROM csv_test;
    """)


def label_next(cur, seed, count):
    """Label count more unlabelled pool rows, in a fixed random order per seed, with their category."""
    cur.execute("""
        UPDATE pool SET label = category
        WHERE id IN (SELECT id FROM pool WHERE label IS NULL
                     ORDER BY md5(id::text || ':' || %s::text) LIMIT %s)
    """, (seed, count))


def train(cur, model):
    """Call hl_train on model and return its wall-clock seconds and the new version's metrics."""
    started = time.perf_counter()
    cur.execute("SELECT hl_train(%s)", (model,))
    seconds = time.perf_counter() - started
    cur.execute("SELECT metrics FROM hl_models WHERE name = %s", (model,))
    return seconds, cur.fetchone()[0]


def evaluate(cur, model):
    """Return the test accuracy, NLL and ECE of the model's current version."""
    cur.execute("SELECT hl_evaluate(%s, 'test')", (model,))
    result = cur.fetchone()[0]
    return result["accuracy"], result["nll"], result["ece"]


def run_seed(dsn, seed, args):
    """Run one sequence of trainings and its reference, and return one record per training."""
    records = []
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("UPDATE pool SET label = NULL")
    cur.execute("SELECT hl_create_model('sequence', 'pool', 'text', 'label', id_column => 'id')")
    label_next(cur, seed, args.start)
    for step in range(args.steps + 1):
        if step > 0:
            label_next(cur, seed, args.step)
        seconds, metrics = train(cur, "sequence")
        records.append({
            "name": f"{args.start + step * args.step:,} labels",
            "seconds": seconds,
            "metrics": metrics,
            "test": evaluate(cur, "sequence"),
        })

    cur.execute("SELECT hl_create_model('scratch', 'pool', 'text', 'label', id_column => 'id')")
    seconds, metrics = train(cur, "scratch")
    records.append({
        "name": f"{args.start + args.steps * args.step:,} labels, from scratch",
        "seconds": seconds,
        "metrics": metrics,
        "test": evaluate(cur, "scratch"),
    })
    cur.execute("SELECT hl_drop_model('sequence'), hl_drop_model('scratch')")
    conn.close()
    return records


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--start", type=int, default=1000)
    parser.add_argument("--step", type=int, default=100)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--seeds", default="1,2")
    parser.add_argument("--out")
    parser.add_argument("--install-root", help="run from a private install under this directory")
    parser.add_argument("--commit", default="HEAD", help="commit to build into a new --install-root")
    args = parser.parse_args()
    seeds = [int(seed) for seed in args.seeds.split(",")]

    hlbench.ensure_private_install(args.install_root, args.commit)

    runs = []
    with hlbench.throwaway_cluster(install_root=args.install_root) as dsn:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION humanloop")
        load(cur, args.data_dir)
        conn.close()
        for seed in seeds:
            print("seed", seed, file=sys.stderr)
            runs.append(run_seed(dsn, seed, args))
        machine = hlbench.describe_machine(dsn)

    revision = ""
    if args.install_root:
        with open(os.path.join(args.install_root, "REVISION")) as f:
            revision = f" Extension at commit `{f.read().strip()}`."
    lines = [
        f"Data: `{os.path.basename(os.path.normpath(args.data_dir))}`, random labels of the train split "
        f"(seeds {args.seeds}), scored on its test split; medians of the seeds for seconds and "
        f"iterations, means for the test metrics.{revision} Machine: {machine}.",
        "",
        "| training | warm starts | prior precisions | iterations | `hl_train` s | accuracy | NLL | ECE |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, first in enumerate(runs[0]):
        rows = [run[i] for run in runs]
        warm = sum(1 for r in rows if r["metrics"].get("warm_start"))
        precisions = ", ".join(f"{r['metrics']['prior_precision']:g}" for r in rows)
        iterations = statistics.median(r["metrics"]["iterations"] for r in rows)
        seconds = statistics.median(r["seconds"] for r in rows)
        accuracy, nll, ece = (statistics.mean(r["test"][k] for r in rows) for k in range(3))
        lines.append(f"| {first['name']} | {warm} of {len(rows)} | {precisions} | {iterations:g} | "
                     f"{seconds:.2f} | {accuracy:.3f} | {nll:.3f} | {ece:.3f} |")
    hlbench.print_table(lines, args.out)


if __name__ == "__main__":
    main()
