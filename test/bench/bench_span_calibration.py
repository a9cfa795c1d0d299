#!/usr/bin/python3
"""Measure how well span probabilities are calibrated on snips, through SQL.

For each training size, a span model is trained on that many sentences of
the snips train split, a seeded random sample with the labels of the rest
hidden.  Each span it decodes on the test split is scored: whether it is
exactly right, and the probability hl_predict_spans gives it.  The page reports the
test span F1, the share of decoded spans that were right, their mean
probability, the Brier score, the expected calibration error (15 equal-width
bins, as hl_evaluate uses for classifiers) and the hl_train seconds.

--compare-root runs the same sizes with a second private install in the
same run, for example the revision before a change, so the two can be
read side by side.  Usage:

    /usr/bin/python3 test/bench/bench_span_calibration.py SNIPS_DIR \\
        --root /var/tmp/hl-NEW --compare-root /var/tmp/hl-OLD --out docs/span-calibration.md

Each root is built with `hlbench.py private-install ROOT COMMIT` when
missing (from --commit and --compare-commit).
"""
import argparse
import os
import platform
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hlbench  # noqa: E402
from bench_spans import read_split, snips_database  # noqa: E402

ECE_BINS = 15


def expected_calibration_error(pairs):
    """Return the ECE of [(probability, correct)] over ECE_BINS equal-width bins."""
    bins = [[0, 0.0, 0.0] for _ in range(ECE_BINS)]
    for p, hit in pairs:
        b = min(int(p * ECE_BINS), ECE_BINS - 1)
        bins[b][0] += 1
        bins[b][1] += p
        bins[b][2] += hit
    return sum(abs(s - h) for n, s, h in bins if n) / len(pairs)


def measure(cur, train, test, size, seed):
    """Train on size sentences of train and return the row of the table."""
    n = min(size, len(train))
    chosen = random.Random(seed).sample(range(1, len(train) + 1), n)
    cur.execute("DROP TABLE IF EXISTS pool")
    cur.execute("CREATE TABLE pool AS SELECT id, text,"
                " CASE WHEN id = ANY(%s) THEN spans END AS spans FROM snips_train", (chosen,))
    cur.execute("ALTER TABLE pool ADD PRIMARY KEY (id)")
    cur.execute("SELECT hl_drop_model(name) FROM hl_models")
    cur.execute("SELECT hl_create_model('calibration', 'pool', text_column => 'text',"
                " label_column => 'spans', task => 'spans')")
    start = time.monotonic()
    cur.execute("SELECT metrics FROM hl_train('calibration')")
    metrics = cur.fetchone()[0]
    seconds = time.monotonic() - start

    cur.execute("SELECT t.id, p.start, p.\"end\", p.label, p.probability"
                "  FROM snips_test t, hl_predict_spans('calibration', t.text) p")
    gold = {i + 1: {(s["start"], s["end"], s["label"]) for s in spans}
            for i, (_, spans) in enumerate(test)}
    pairs = [(float(p), 1.0 if (s, e, label) in gold[i] else 0.0)
             for i, s, e, label, p in cur.fetchall()]
    cur.execute("SELECT (hl_evaluate_spans('calibration', 'snips_test')->>'f1')::float8")
    f1 = cur.fetchone()[0]
    return {
        "sentences": n, "seconds": seconds, "f1": f1, "spans": len(pairs),
        "right": sum(h for _, h in pairs) / len(pairs),
        "mean_probability": sum(p for p, _ in pairs) / len(pairs),
        "brier": sum((p - h) ** 2 for p, h in pairs) / len(pairs),
        "ece": expected_calibration_error(pairs),
        "temperature": metrics.get("temperature"),
        "heldout_sentences": metrics.get("heldout_sentences"),
    }


def run(root, train, test, sizes, seed):
    """Measure every size with the install under root and return (revision, rows)."""
    with open(os.path.join(root, "REVISION")) as f:
        revision = f.read().strip()
    rows = []
    with hlbench.throwaway_cluster(install_root=root) as dsn:
        conn, cur = snips_database(dsn, train, test)
        for size in sizes:
            row = measure(cur, train, test, size, seed)
            print(f"{revision} {row['sentences']} sentences: ECE {row['ece']:.4f},"
                  f" Brier {row['brier']:.4f}, T {row['temperature']}, {row['seconds']:.1f} s",
                  flush=True)
            rows.append(row)
        conn.close()
    return revision, rows


def cell(value, digits):
    return "" if value is None else f"{value:.{digits}f}"


def write_page(path, runs, seed, command, note=None):
    lines = [
        "# Calibration of span probabilities",
        "",
        "Written by `test/bench/bench_span_calibration.py`; rerun it rather than editing the "
        "numbers by hand.  Command: `" + command + "`.",
        f"Machine: {hlbench.describe_machine()}.",
        "",
        "Each row trains a span model on a random sample of the snips train split "
        f"(seed {seed}) and scores every span that hl_predict_spans decodes on the 700 test "
        "sentences.  `right` is the share of decoded spans that match a labelled span exactly "
        "(offsets and label), `mean p` their mean probability, so a calibrated model has the two "
        f"close.  Brier is the mean of (probability - right)^2, ECE the expected calibration "
        f"error over {ECE_BINS} equal-width bins of the probability.  T is the temperature the "
        "version stores (absent before revisions that fit one), fitted on the held-out "
        "sentences counted in the next column.  Seconds are the wall time of hl_train.",
        "",
    ]
    if note:
        lines += [note, ""]
    lines += [
        "| revision | sentences | test F1 | right | mean p | Brier | ECE | T | held out | hl_train s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for revision, rows in runs:
        for r in rows:
            lines.append(
                f"| {revision} | {r['sentences']:,} | {r['f1']:.4f} | {r['right']:.4f} | "
                f"{r['mean_probability']:.4f} | {r['brier']:.4f} | {r['ece']:.4f} | "
                f"{cell(r['temperature'], 3)} | {r['heldout_sentences'] or ''} | "
                f"{r['seconds']:.1f} |")
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("snips_dir")
    parser.add_argument("--root", required=True, help="private install root to measure")
    parser.add_argument("--commit", default="HEAD", help="built into --root when it is missing")
    parser.add_argument("--compare-root", default=None,
                        help="a second private install measured in the same run")
    parser.add_argument("--compare-commit", default=None)
    parser.add_argument("--sizes", default="500,1000,2000,4500,13084")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default="docs/span-calibration.md")
    parser.add_argument("--note", default=None,
                        help="a paragraph printed under the method, for example the load on the machine")
    args = parser.parse_args()

    train = read_split(os.path.join(args.snips_dir, "train"))
    test = read_split(os.path.join(args.snips_dir, "test"))
    sizes = [int(s) for s in args.sizes.split(",") if s]
    roots = [(args.root, args.commit)]
    if args.compare_root:
        roots.append((args.compare_root, args.compare_commit or "HEAD~1"))
    runs = []
    for root, commit in roots:
        if not os.path.exists(root):
            hlbench.build_private_install(root, commit)
        runs.append(run(root, train, test, sizes, args.seed))

    command = ("/usr/bin/python3 test/bench/bench_span_calibration.py SNIPS_DIR --root NEW"
               + (" --compare-root OLD" if args.compare_root else "")
               + f" --sizes {args.sizes} --seed {args.seed}")
    write_page(args.out, runs, args.seed, command, args.note)
    print(f"wrote {args.out} ({platform.machine()})")


if __name__ == "__main__":
    import psycopg2.extras  # noqa: E402,F401  (execute_values in load_table)
    main()
