#!/usr/bin/python3
"""Measure what the pool embedding (LSA) adds to the core classifier.

Runs test/core/bench_core on a text,category CSV pair without the embedding
and with every setting of components k and weight w, at several numbers of
random labels and seeds. Prints a Markdown table of the mean test accuracy,
NLL and ECE over the seeds.

    /usr/bin/python3 test/core/bench_embedding.py TRAIN.csv TEST.csv \
        [--settings 100:1 100:0.5 200:1] [--labels 100 300 1000 full] \
        [--seeds 1 2] [--jobs 2]

Full data (all training rows) runs one seed only, because the seed picks the
random labelled subset and nothing else.
"""
import argparse
import concurrent.futures
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.path.join(ROOT, "test", "core", "bench_core")


def run(train, test, k, weight, labels, seed):
    """Run bench_core once and return its JSON output as a dict."""
    env = dict(os.environ)
    env["HL_BENCH_EMBED"] = str(k)
    env["HL_BENCH_EMBED_WEIGHT"] = str(weight)
    env["HL_BENCH_SEED"] = str(seed)
    env.pop("HL_BENCH_LABELS", None)
    if labels != "full":
        env["HL_BENCH_LABELS"] = str(labels)
    out = subprocess.run([BINARY, train, test], env=env, check=True,
                         capture_output=True, text=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("train")
    parser.add_argument("test")
    parser.add_argument("--settings", nargs="+", default=["100:1", "100:0.5", "200:1"],
                        help="embedding settings as COMPONENTS:WEIGHT")
    parser.add_argument("--labels", nargs="+", default=["100", "300", "1000", "full"],
                        help="numbers of random labels, or full")
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="parallel runs")
    args = parser.parse_args()

    # bench_core.sh builds the binary and runs it once; that output is unused.
    subprocess.run(["sh", os.path.join(ROOT, "test", "core", "bench_core.sh"),
                    args.train, args.test], check=True, capture_output=True,
                   env={**os.environ, "HL_BENCH_LABELS": "100"})

    settings = [(0, 0.0)] + [(int(s.split(":")[0]), float(s.split(":")[1]))
                             for s in args.settings]
    runs = []
    for k, weight in settings:
        for labels in args.labels:
            for seed in (args.seeds if labels != "full" else args.seeds[:1]):
                runs.append((k, weight, labels, seed))

    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        results = list(pool.map(lambda r: run(args.train, args.test, *r), runs))

    print("| labels | k | w | accuracy | NLL | ECE | SVD s |")
    print("|---|---|---|---|---|---|---|")
    for labels in args.labels:
        for k, weight in settings:
            chosen = [res for run_args, res in zip(runs, results)
                      if run_args[:3] == (k, weight, labels)]
            mean = lambda key: sum(r[key] for r in chosen) / len(chosen)
            print("| %s | %d | %s | %.4f | %.3f | %.4f | %.1f |"
                  % (labels, k, "-" if k == 0 else "%g" % weight, mean("accuracy"),
                     mean("nll"), mean("ece"), mean("svd_seconds")))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
