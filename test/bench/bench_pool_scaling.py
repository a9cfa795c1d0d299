#!/usr/bin/python3
"""Time and memory of hl_train and hl_next_batch as the pool grows.

    /usr/bin/python3 test/bench/bench_pool_scaling.py DATA_DIR [--sizes 10000,100000,1000000]
        [--labels 1000] [--repeats 3] [--out FILE] [--install-root DIR [--commit REV]]

DATA_DIR contains train.csv with the header ``text,category`` (for example the
banking77 folder).  For each size N the script fills a relation with N rows:
the training texts, then copies of them with one of eight short words
appended, so that the copies are new texts with the same wording.  The
first copy's rows get labels for a random --labels of them (seed 7), and the
rest stay unlabelled.  It then times, in one fresh session per size:

- hl_train on that relation (it reads every row, for document frequencies);
- hl_next_batch for 50 rows with reserve off, for the default, margin,
  margin scoring every row (sample 0), margin with diversity 0.5, margin
  with density 1, and the strategy coverage, the median of --repeats calls
  each;

and reads the session's peak resident memory (VmHWM) at the end.

With --install-root the server runs from a private copy of PostgreSQL under
DIR, built from --commit (HEAD by default) when DIR does not exist yet, so a
`make install` elsewhere on the machine cannot change the build under test.
"""

import argparse
import json
import os
import statistics
import sys
import time

import psycopg2

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402

SEED = 7
BATCH = 50
SUFFIXES = ["please", "thanks", "today", "now", "again", "asap", "urgent", "help"]

# name in the table, strategy (None: the SQL default), options
CALLS = [
    ("default", None, {}),
    ("margin", "margin", {}),
    ("margin, every row", "margin", {"sample": 0}),
    ("margin, diversity 0.5", "margin", {"diversity": 0.5}),
    ("margin, density 1", "margin", {"density": 1}),
    ("coverage", "coverage", {}),
]


def load_texts(cur, data_dir):
    """Load the training split into texts(n, text, category), numbered in a fixed shuffled order.

    Return the number of texts.
    """
    hlbench.copy_labelled_csv(cur, "csv_train", os.path.join(data_dir, "train.csv"))
    cur.execute("""
        CREATE TABLE texts AS
        SELECT row_number() OVER (ORDER BY md5(text || category)) AS n, text, category FROM csv_train;
        SELECT count(*) FROM texts;
    """)
    return cur.fetchone()[0]


def fill_pool(cur, table, size, n_texts, labels):
    """Create table with size rows built from texts, labels on the first copy only."""
    cur.execute(f"""
        CREATE TABLE {table} (id bigint PRIMARY KEY, text text, category text);
        INSERT INTO {table}
        SELECT i,
               CASE WHEN i <= %(texts)s THEN t.text
                    ELSE t.text || ' ' || (%(suffixes)s::text[])[((i - 1) / %(texts)s) %% 8 + 1] END,
               NULL
        FROM generate_series(1, %(size)s) AS i
        JOIN texts t ON t.n = (i - 1) %% %(texts)s + 1;
        UPDATE {table} p SET category = t.category
        FROM texts t
        WHERE p.id = t.n AND p.id IN (SELECT n FROM texts ORDER BY md5(n::text || ':' || %(seed)s) LIMIT %(labels)s);
        ANALYZE {table};
    """, {"texts": n_texts, "suffixes": SUFFIXES, "size": size, "seed": SEED, "labels": labels})


def peak_memory_mib(pid):
    """Return the peak resident memory of backend pid in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def measure(dsn, table, repeats):
    """Train on table and time the batch calls in a fresh session; return a result dict."""
    conn = psycopg2.connect(dsn)
    conn.autocommit = True
    cur = conn.cursor()
    cur.execute("SET max_parallel_workers_per_gather = 0")
    cur.execute("SELECT pg_backend_pid()")
    pid = cur.fetchone()[0]
    cur.execute("SELECT hl_create_model(%s, %s, text_column => 'text', label_column => 'category')",
                (table, table))
    started = time.perf_counter()
    cur.execute("SELECT labelled_rows FROM hl_train(%s)", (table,))
    result = {"train": time.perf_counter() - started, "labelled": cur.fetchone()[0], "batch": {}}

    for name, strategy, options in CALLS:
        seconds = []
        for repeat in range(repeats):
            call_options = dict(options, reserve=False, seed=repeat)
            started = time.perf_counter()
            cur.execute("SELECT count(*) FROM hl_next_batch(%s, %s, %s, %s)",
                        (table, BATCH, strategy, json.dumps(call_options)))
            rows = cur.fetchone()[0]
            seconds.append(time.perf_counter() - started)
            if rows != BATCH:
                raise RuntimeError(f"{name} on {table} returned {rows} rows, not {BATCH}")
        result["batch"][name] = statistics.median(seconds)

    result["memory"] = peak_memory_mib(pid)
    conn.close()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir")
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out")
    parser.add_argument("--install-root", help="run from a private install under this directory")
    parser.add_argument("--commit", default="HEAD", help="commit to build into a new --install-root")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]

    hlbench.ensure_private_install(args.install_root, args.commit)

    results = {}
    with hlbench.throwaway_cluster(install_root=args.install_root) as dsn:
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        cur = conn.cursor()
        cur.execute("CREATE EXTENSION humanloop")
        n_texts = load_texts(cur, args.data_dir)
        for size in sizes:
            table = f"pool_{size}"
            print("filling", table, file=sys.stderr)
            fill_pool(cur, table, size, n_texts, args.labels)
            print("measuring", table, file=sys.stderr)
            results[size] = measure(dsn, table, args.repeats)
            cur.execute(f"SELECT hl_drop_model(%s); DROP TABLE {table}", (table,))
        machine = hlbench.describe_machine(dsn)

    header = "| relation rows | `hl_train` s | " + " | ".join(f"{name} s" for name, _, _ in CALLS)
    header += " | peak memory MiB |"
    lines = [
        f"Data: `{os.path.basename(os.path.normpath(args.data_dir))}` training texts and copies of "
        f"them, {args.labels} labelled rows, batches of {BATCH} with reserve off, median of "
        f"{args.repeats} calls. Machine: {machine}.",
        "",
        header,
        "|" + "---|" * (len(CALLS) + 3),
    ]
    for size in sizes:
        r = results[size]
        cells = [f"{size:,}", f"{r['train']:.2f}"] + [f"{r['batch'][name]:.2f}" for name, _, _ in CALLS]
        cells.append(f"{r['memory']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    hlbench.print_table(lines, args.out)


if __name__ == "__main__":
    main()
