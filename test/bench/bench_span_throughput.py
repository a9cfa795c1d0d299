#!/usr/bin/python3
"""Measure hl_predict_spans throughput on snips for one or more private installs.

For each install root, in turn: start a throwaway cluster, train a span
model on the whole snips train split, then scan the 700 test sentences
with hl_predict_spans.  Each measurement is the best of 3 scans, and it is
taken 3 times, so a job that starts on the machine meanwhile shows as a
spread.  Run it on an otherwise idle machine, and give two roots to compare
revisions under the same conditions:

    /usr/bin/python3 test/bench/bench_span_throughput.py SNIPS_DIR ROOT [ROOT...]

Each ROOT is a private install made with `hlbench.py private-install ROOT COMMIT`.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402
from bench_spans import full_data, read_split, snips_database, throughput  # noqa: E402


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    snips_dir = sys.argv[1]
    train = read_split(os.path.join(snips_dir, "train"))
    test = read_split(os.path.join(snips_dir, "test"))
    print(f"machine: {hlbench.describe_machine()}")
    for root in sys.argv[2:]:
        with open(os.path.join(root, "REVISION")) as f:
            revision = f.read().strip()
        with hlbench.throwaway_cluster(install_root=root) as dsn:
            conn, cur = snips_database(dsn, train, test)
            evaluation, seconds, _ = full_data(cur, "{}")
            rates = [throughput(cur, 3)[0] for _ in range(3)]
            conn.close()
        print(f"{revision}: span F1 {evaluation['f1']:.4f}, hl_train {seconds:.1f} s, "
              f"sentences per second {', '.join(f'{r:.0f}' for r in rates)}", flush=True)


if __name__ == "__main__":
    import psycopg2.extras  # noqa: E402,F401  (execute_values in load_table)
    main()
