#!/usr/bin/python3
"""Simulated active learning with humanloop, entirely through SQL.

    /usr/bin/python3 test/bench/bench_active.py DATA_DIR --dataset banking77 [--scenario clean]
    /usr/bin/python3 test/bench/bench_active.py --report [--out docs/active-learning.md]

Run it as root with Debian's interpreter after `make install`: each call
starts a throwaway PostgreSQL cluster (test/bench/hlbench.py) and removes it
at the end.  With --install-root DIR the cluster runs from a private build
made by `hlbench.py private-install DIR COMMIT`, which a later `make install`
does not change during a sweep.

Protocol.  The train split is the pool: a table whose label column starts
NULL.  The answers of a simulated annotator live in a hidden side table.  Each
round asks hl_next_batch for 50 rows, writes their answers into the pool's
label column, runs hl_train and measures accuracy on the test split, which is
never offered for labelling.  A run starts from zero labels: the first batch
is hl_next_batch's cold-start choice (strategy "coverage") before any training,
except for the random strategy, which starts from 100 random rows.  The seed
varies that first batch.  Random runs go on past the last round on nested
random subsets up to the whole pool, to find where random labelling reaches
90% and 95% of the full-data accuracy.

Scenario "ambiguous" (banking77): the ten most confused pairs of intents are
taken from the confusion matrix of the full-data model on the test split, and
the annotator answers a pool row of those intents with the other intent of
its pair with probability 0.3, fixed per row.  The test split stays clean.

Each run (dataset, scenario, strategy, seed) is independent: it runs in its
own database cloned from a template and writes its curve as JSON lines into
the results directory.  A finished run is not repeated, so a stopped sweep
resumes where it was.  --report rebuilds the Markdown and the plots from the
JSON files alone.
"""

import argparse
import concurrent.futures
import csv
import datetime
import hashlib
import io
import json
import os
import re
import statistics
import subprocess
import shlex
import sys
import time
import traceback

import psycopg2
import psycopg2.extras

import hlbench

HERE = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(os.path.dirname(HERE))
DEFAULT_RESULTS = "/var/tmp/humanloop-bench/active"
DEFAULT_OUT = os.path.join(REPOSITORY, "docs", "active-learning.md")

# The candidates compared: (name in the report, strategy, options).  A new
# candidate is one more line.  Strategy None calls hl_next_batch without one,
# so that candidate is whatever the extension's default is.  When an explicit
# candidate equals the default, the report marks that one instead.  The options are passed to every hl_next_batch
# call of the run after the cold start, together with {"seed": S, "reserve": false}.
# A key "model:NAME" is not a batch option: it goes to hl_create_model's options.
STRATEGIES = [
    ("random", "random", {}),
    ("margin", "margin", {}),
    ("entropy", "entropy", {}),
    ("bald", "bald", {}),
    ("hybrid e=1", "hybrid", {"epistemic": 1}),
    ("hybrid rank 0.5", "hybrid", {"epistemic": 0.5}),
    ("hybrid e=0.5", "hybrid", {"epistemic": 0.5}),
    ("least_confidence", "least_confidence", {}),
    ("margin + diversity 0.3", "margin", {"diversity": 0.3}),
    ("margin + density 1", "margin", {"density": 1}),
    ("margin + class share 0.1", "margin", {"max_class_share": 0.1}),
    ("margin + class share 0.04", "margin", {"max_class_share": 0.04}),
    ("margin + class share 0.02", "margin", {"max_class_share": 0.02}),
    ("margin + novelty 1", "margin", {"novelty": 1}),
    ("margin + novelty 3", "margin", {"novelty": 3}),
    ("margin + disagreement 1.5", "margin", {"disagreement": 1.5}),
    ("margin + disagreement 3", "margin", {"disagreement": 3}),
    ("margin + disagreement 6", "margin", {"disagreement": 6}),
    ("margin + disagreement 3 + diversity 0.3", "margin", {"disagreement": 3, "diversity": 0.3}),
    ("margin + disagreement 3, prior precision 0.03", "margin",
     {"disagreement": 3, "model:prior_precision": 0.03}),
    ("random, self-training 0.3", "random", {"model:self_training": 0.3}),
    ("margin, self-training 0.3", "margin", {"model:self_training": 0.3}),
    ("margin + disagreement 3, self-training 0.3", "margin",
     {"disagreement": 3, "model:self_training": 0.3}),
    ("margin + disagreement 3 + diversity 0.3, self-training 0.3", "margin",
     {"disagreement": 3, "diversity": 0.3, "model:self_training": 0.3}),
    ("default", None, {}),
]

# Batch options that hl_next_batch uses when a key is absent (src/sql_next_batch.c,
# hl_batch_options_parse).  A candidate is the SQL default when its strategy is
# the default argument and its options equal these defaults.
BATCH_OPTION_DEFAULTS = {"epistemic": 0.5, "density": 0.0, "diversity": 0.0, "cost": 0.0,
                         "max_class_share": 1.0, "disagreement": 0.0}

BATCH_SIZE = 50

# Latent dimensions of the model option novelty for candidates that use the
# batch option novelty.
NOVELTY_DIMENSIONS = 128
RANDOM_START = 100
MAX_LABELS = 2000
EXTENDED_LABELS = [2500, 3000, 3500, 4000, 5000, 6000, 8000, 10000, 12000]
CHECKPOINTS = [100, 200, 300, 500, 750, 1000, 1500, 2000]
AUC_START = 100
AMBIGUOUS_PAIRS = 10
AMBIGUOUS_FLIP = 0.3
AMBIGUOUS_SEED = 77
DATASETS = ("banking77", "snips")
HAND_WRITTEN_HEADING = "## What the measurements say"
SCENARIOS = ("clean", "ambiguous")


# ---------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------

def read_banking77(data_dir, split):
    """Return (text, label) pairs of banking77's SPLIT.csv (header text,category)."""
    rows = []
    with open(os.path.join(data_dir, f"{split}.csv"), newline="", encoding="utf-8") as f:
        for record in csv.DictReader(f):
            rows.append((record["text"], record["category"]))
    return rows


def read_snips(data_dir, split):
    """Return (text, label) pairs of snips' SPLIT/seq.in and SPLIT/label, line by line."""
    with open(os.path.join(data_dir, split, "seq.in"), encoding="utf-8") as f:
        texts = f.read().splitlines()
    with open(os.path.join(data_dir, split, "label"), encoding="utf-8") as f:
        labels = f.read().splitlines()
    if len(texts) != len(labels):
        raise ValueError(f"{split}: {len(texts)} lines in seq.in but {len(labels)} in label")
    return list(zip(texts, labels))


def read_dataset(data_dir, dataset):
    """Return the train and test splits of dataset as lists of (text, label)."""
    if dataset == "banking77":
        return read_banking77(data_dir, "train"), read_banking77(data_dir, "test")
    return read_snips(data_dir, "train"), read_snips(data_dir, "test")


def row_uniform(row_id, seed):
    """Return a number in [0, 1) fixed by the row id and the seed (SHA-256)."""
    digest = hashlib.sha256(f"{seed}:{row_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0 ** 64


def noisy_answers(train, pairs):
    """Return the annotator's answers for the pool rows in the ambiguous scenario.

    A row whose true intent belongs to one of pairs is answered with the other
    intent of its pair when row_uniform(row id) < AMBIGUOUS_FLIP, so the same
    row always gets the same answer.  Row ids are 1-based positions in train.
    """
    partner = {}
    for first, second in pairs:
        partner[first] = second
        partner[second] = first
    answers = []
    for row_id, (_, label) in enumerate(train, start=1):
        if label in partner and row_uniform(row_id, AMBIGUOUS_SEED) < AMBIGUOUS_FLIP:
            answers.append(partner[label])
        else:
            answers.append(label)
    return answers


def copy_rows(cur, table, rows):
    """Load rows (tuples) into table with COPY ... FROM STDIN in CSV format."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    for row in rows:
        writer.writerow(row)
    buffer.seek(0)
    cur.copy_expert(f"COPY {table} FROM STDIN WITH (FORMAT csv)", buffer)


def build_template(admin_dsn, template, train, test, answers, ambiguous_labels):
    """Create database template with the pool, the hidden answers and the test split.

    pool(id, text, label) has every label NULL.  answers(id, label, clean_label,
    ambiguous) is the annotator's side table.  test(id, text, label) is clean.
    """
    admin = psycopg2.connect(admin_dsn)
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute(f'DROP DATABASE IF EXISTS "{template}"')
        cur.execute(f'CREATE DATABASE "{template}"')
    admin.close()

    conn = psycopg2.connect(hlbench.dsn_for_database(admin_dsn, template))
    with conn, conn.cursor() as cur:
        cur.execute("CREATE EXTENSION humanloop")
        cur.execute("CREATE TABLE pool (id integer PRIMARY KEY, text text NOT NULL, label text)")
        cur.execute("""CREATE TABLE answers (id integer PRIMARY KEY, label text NOT NULL,
                                             clean_label text NOT NULL, ambiguous boolean NOT NULL)""")
        cur.execute("CREATE TABLE test (id integer PRIMARY KEY, text text NOT NULL, label text NOT NULL)")
        copy_rows(cur, "pool (id, text)",
                  ((row_id, text) for row_id, (text, _) in enumerate(train, start=1)))
        copy_rows(cur, "answers",
                  ((row_id, answers[row_id - 1], label, label in ambiguous_labels)
                   for row_id, (_, label) in enumerate(train, start=1)))
        copy_rows(cur, "test", ((row_id, text, label) for row_id, (text, label) in enumerate(test, start=1)))
    with conn.cursor() as cur:
        conn.autocommit = True
        cur.execute("VACUUM ANALYZE")
    conn.close()


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

class RunDatabase:
    """A database cloned from a template for one run, dropped when the run ends."""

    def __init__(self, admin_dsn, template, name):
        self.admin_dsn = admin_dsn
        self.name = name
        admin = psycopg2.connect(admin_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}"')
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        admin.close()
        self.conn = psycopg2.connect(hlbench.dsn_for_database(admin_dsn, name))
        self.conn.autocommit = True
        with self.conn.cursor() as cur:
            # One simulated annotator: no reservations, and no parallel workers,
            # so that two runs side by side each keep one core.
            cur.execute("SET humanloop.reservation_timeout = 0")
            cur.execute("SET max_parallel_workers_per_gather = 0")

    def close(self):
        """Close the connection and drop the database."""
        self.conn.close()
        admin = psycopg2.connect(self.admin_dsn)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{self.name}"')
        admin.close()


def reveal_labels(cur, ids):
    """Write the annotator's answers for ids into the pool's label column."""
    cur.execute("""UPDATE pool p SET label = a.label FROM answers a
                   WHERE p.id = a.id AND p.id = ANY(%s)""", (list(ids),))


def count_ambiguous(cur, ids):
    """Return how many of ids are rows of the ambiguous set."""
    cur.execute("SELECT count(*) FROM answers WHERE ambiguous AND id = ANY(%s)", (list(ids),))
    return cur.fetchone()[0]


def train_model(cur, model):
    """Run hl_train and return its wall time in seconds."""
    start = time.perf_counter()
    cur.execute("SELECT version FROM hl_train(%s)", (model,))
    cur.fetchall()
    return time.perf_counter() - start


def score_test_split(cur, model):
    """Return the accuracy on the test split and the wall time of scoring it."""
    start = time.perf_counter()
    cur.execute("SELECT label, hl_predict(%s, text) FROM test", (model,))
    rows = cur.fetchall()
    seconds = time.perf_counter() - start
    correct = sum(1 for truth, predicted in rows if truth == predicted)
    return correct / len(rows), seconds


def next_batch(cur, model, n, strategy, options):
    """Call hl_next_batch and return the ids it chose and the wall time of the call."""
    start = time.perf_counter()
    cur.execute("SELECT id FROM hl_next_batch(%s, %s, %s, %s::jsonb)",
                (model, n, strategy, json.dumps(options)))
    ids = [int(row[0]) for row in cur.fetchall()]
    return ids, time.perf_counter() - start


def random_start(cur, n, seed):
    """Return n pool ids in a random order fixed by seed (the random strategy's first batch)."""
    cur.execute("SELECT id FROM pool ORDER BY md5(id::text || ':' || %s::text) LIMIT %s", (seed, n))
    return [row[0] for row in cur.fetchall()]


def run_strategy(admin_dsn, template, spec, out_path, max_labels, extended):
    """Run one simulation (spec: dataset, scenario, name, strategy, options, seed) and
    write its rounds as JSON lines to out_path.

    The lines go to out_path + '.part' first and the file is renamed when the
    run is complete, so an interrupted run is rerun from the start.
    """
    name, strategy, options, seed = spec["name"], spec["strategy"], spec["options"], spec["seed"]
    db_name = "run_" + hashlib.sha1(out_path.encode()).hexdigest()[:16]
    database = RunDatabase(admin_dsn, template, db_name)
    cur = database.conn.cursor()
    model = "active"
    # The batch option novelty needs the model option of that name.
    model_options = {"novelty": NOVELTY_DIMENSIONS} if options.get("novelty") else {}
    model_options.update({key[len("model:"):]: value for key, value in options.items()
                          if key.startswith("model:")})
    options = {key: value for key, value in options.items() if not key.startswith("model:")}
    model_options = json.dumps(model_options)
    cur.execute("""SELECT hl_create_model(%s, 'public.pool', text_column => 'text',
                                          label_column => 'label', options => %s)""",
                (model, model_options))
    cur.execute("SELECT count(*), count(*) FILTER (WHERE ambiguous) FROM answers")
    pool_rows, ambiguous_rows = cur.fetchone()

    batch_options = dict(options)
    batch_options["seed"] = seed
    batch_options["reserve"] = False

    part_path = out_path + ".part"
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(part_path, "w") as out:
        header = dict(spec)
        header.update({"record": "header", "pool_rows": pool_rows, "ambiguous_rows": ambiguous_rows,
                       "batch_size": BATCH_SIZE, "started": datetime.datetime.now().isoformat()})
        out.write(json.dumps(header) + "\n")

        labelled = 0
        targets = list(range(BATCH_SIZE, max_labels + 1, BATCH_SIZE))
        if strategy == "random":
            targets = [t for t in targets if t >= RANDOM_START]
            if extended:
                targets += [t for t in EXTENDED_LABELS if max_labels < t < pool_rows] + [pool_rows]
        for target in targets:
            n = min(target, pool_rows) - labelled
            if n <= 0:
                break
            if labelled == 0 and strategy == "random":
                ids, batch_seconds = random_start(cur, n, seed), 0.0
                call = "random start"
            elif labelled == 0:
                ids, batch_seconds = next_batch(cur, model, n, "coverage",
                                                {"seed": seed, "reserve": False})
                call = "coverage"
            else:
                ids, batch_seconds = next_batch(cur, model, n, strategy, batch_options)
                call = strategy
            if len(ids) != n:
                raise RuntimeError(f"hl_next_batch returned {len(ids)} rows, expected {n} "
                                   f"({name}, seed {seed}, {labelled} labelled)")
            reveal_labels(cur, ids)
            ambiguous_selected = count_ambiguous(cur, ids)
            labelled += len(ids)
            train_seconds = train_model(cur, model)
            accuracy, eval_seconds = score_test_split(cur, model)
            cur.execute("SELECT agreement, recommendation FROM hl_status(%s)", (model,))
            agreement, recommendation = cur.fetchone()
            cur.execute("SELECT count(DISTINCT label) FROM pool WHERE label IS NOT NULL")
            classes_labelled = cur.fetchone()[0]
            record = {"record": "round", "labels": labelled, "accuracy": accuracy,
                      "selected": len(ids), "ambiguous_selected": ambiguous_selected,
                      "classes_labelled": classes_labelled, "ids": ids,
                      "call": call, "batch_seconds": batch_seconds, "train_seconds": train_seconds,
                      "eval_seconds": eval_seconds, "extended": labelled > max_labels,
                      "status_agreement": agreement, "status_recommendation": recommendation}
            out.write(json.dumps(record) + "\n")
            out.flush()
        out.write(json.dumps({"record": "done", "finished": datetime.datetime.now().isoformat()}) + "\n")

    os.replace(part_path, out_path)
    cur.close()
    database.close()
    return out_path


def run_full(admin_dsn, template, out_path):
    """Train on every pool row and write the test accuracy and confusion counts to out_path."""
    db_name = "full_" + hashlib.sha1(out_path.encode()).hexdigest()[:16]
    database = RunDatabase(admin_dsn, template, db_name)
    cur = database.conn.cursor()
    cur.execute("UPDATE pool p SET label = a.label FROM answers a WHERE p.id = a.id")
    cur.execute("""SELECT hl_create_model('full', 'public.pool', text_column => 'text',
                                          label_column => 'label')""")
    train_seconds = train_model(cur, "full")
    cur.execute("SELECT label, hl_predict('full', text) FROM test")
    rows = cur.fetchall()
    confusion = {}
    for truth, predicted in rows:
        key = f"{truth}\t{predicted}"
        confusion[key] = confusion.get(key, 0) + 1
    correct = sum(1 for truth, predicted in rows if truth == predicted)
    result = {"accuracy": correct / len(rows), "test_rows": len(rows),
              "train_seconds": train_seconds, "confusion": confusion}
    with open(out_path + ".part", "w") as f:
        json.dump(result, f)
    os.replace(out_path + ".part", out_path)
    cur.close()
    database.close()
    return out_path


def confused_pairs(confusion, count):
    """Return the count most confused pairs of distinct intents, no intent in two pairs.

    A pair's confusion is the number of test rows of either intent predicted
    as the other.  Pairs are taken greedily from the most confused down.
    """
    totals = {}
    for key, rows in confusion.items():
        truth, predicted = key.split("\t")
        if truth == predicted:
            continue
        pair = tuple(sorted((truth, predicted)))
        totals[pair] = totals.get(pair, 0) + rows
    ranked = sorted(totals.items(), key=lambda item: (-item[1], item[0]))
    used = set()
    pairs = []
    for (first, second), rows in ranked:
        if first in used or second in used:
            continue
        pairs.append({"intents": [first, second], "test_confusions": rows})
        used.update((first, second))
        if len(pairs) == count:
            break
    return pairs


# ---------------------------------------------------------------------------
# Sweep
# ---------------------------------------------------------------------------

def git_revision(install_root=None):
    """Return the commit the extension was built from.

    For a private install this is the first line of install_root/REVISION,
    written when the copy was built; otherwise the repository's HEAD, with
    '+dirty' when src/ has uncommitted changes.
    """
    if install_root and os.path.exists(os.path.join(install_root, "REVISION")):
        with open(os.path.join(install_root, "REVISION")) as f:
            return f.readline().strip()
    try:
        head = subprocess.run(["git", "-C", REPOSITORY, "rev-parse", "--short", "HEAD"],
                              check=True, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", REPOSITORY, "status", "--porcelain", "--", "src"],
                               check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("+dirty" if dirty else "")


def run_dir(results, dataset, scenario):
    """Return the results directory of one (dataset, scenario)."""
    return os.path.join(results, dataset, scenario)


def slug(name):
    """Return a file-name form of a candidate's name."""
    return re.sub(r"[^A-Za-z0-9.]+", "_", name).strip("_")


def log(message):
    """Print a timestamped progress line to stderr."""
    stamp = datetime.datetime.now().strftime("%H:%M:%S")
    print(f"{stamp} {message}", file=sys.stderr, flush=True)


def ensure_full(admin_dsn, results, dataset, scenario, train, test, answers, ambiguous_labels):
    """Build the scenario's template database and its full-data result if missing.

    Returns the template's name.
    """
    template = f"tmpl_{dataset}_{scenario}"
    build_template(admin_dsn, template, train, test, answers, ambiguous_labels)
    full_path = os.path.join(run_dir(results, dataset, scenario), "full.json")
    if not os.path.exists(full_path):
        log(f"{dataset}/{scenario}: training on the whole pool for the full-data accuracy")
        os.makedirs(os.path.dirname(full_path), exist_ok=True)
        run_full(admin_dsn, template, full_path)
    return template


def sweep(args):
    """Run every missing (strategy, seed) run of one dataset and scenario."""
    train, test = read_dataset(args.data_dir, args.dataset)
    names = args.strategies or [name for name, _, _ in STRATEGIES]
    by_name = {name: (strategy, options) for name, strategy, options in STRATEGIES}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise SystemExit(f"unknown strategies: {', '.join(unknown)}; "
                         f"choose from: {', '.join(by_name)}")

    with hlbench.throwaway_cluster(preload=args.preload, install_root=args.install_root) as admin_dsn:
        machine = hlbench.describe_machine(admin_dsn)
        clean_template = ensure_full(admin_dsn, args.results, args.dataset, "clean",
                                     train, test, [label for _, label in train], set())
        pairs = []
        template = clean_template
        answers = [label for _, label in train]
        ambiguous_labels = set()
        if args.scenario == "ambiguous":
            with open(os.path.join(run_dir(args.results, args.dataset, "clean"), "full.json")) as f:
                clean_full = json.load(f)
            pairs = confused_pairs(clean_full["confusion"], AMBIGUOUS_PAIRS)
            ambiguous_labels = {intent for pair in pairs for intent in pair["intents"]}
            answers = noisy_answers(train, [pair["intents"] for pair in pairs])
            template = ensure_full(admin_dsn, args.results, args.dataset, "ambiguous",
                                   train, test, answers, ambiguous_labels)

        directory = run_dir(args.results, args.dataset, args.scenario)
        flipped = sum(1 for (_, label), answer in zip(train, answers) if label != answer)
        meta = {"dataset": args.dataset, "scenario": args.scenario, "machine": machine,
                "revision": git_revision(args.install_root), "date": datetime.date.today().isoformat(),
                "train_rows": len(train), "test_rows": len(test),
                "classes": len({label for _, label in train}),
                "pairs": pairs, "ambiguous_pool_rows": sum(1 for _, label in train if label in ambiguous_labels),
                "flipped_pool_rows": flipped, "max_labels": args.max_labels, "preload": args.preload,
                "install_root": args.install_root,
                "command": "bench_active.py " + " ".join(
                    "DATA_DIR" if a == args.data_dir else shlex.quote(a) for a in sys.argv[1:])}
        with open(os.path.join(directory, "meta.json"), "w") as f:
            json.dump(meta, f, indent=1)

        jobs = []
        for seed in range(args.seeds):
            for name in names:
                strategy, options = by_name[name]
                out_path = os.path.join(directory, slug(name), f"seed{seed}.jsonl")
                if os.path.exists(out_path):
                    continue
                spec = {"dataset": args.dataset, "scenario": args.scenario, "name": name,
                        "strategy": strategy, "options": options, "seed": seed,
                        "revision": meta["revision"]}
                jobs.append((spec, out_path))
        # Strategies first, then seeds: all candidates get seed 0 before any gets seed 1.
        log(f"{args.dataset}/{args.scenario}: {len(jobs)} runs to do, {args.jobs} at a time")

        failures = 0
        pool = concurrent.futures.ProcessPoolExecutor(max_workers=args.jobs)
        try:
            futures = {}
            for spec, out_path in jobs:
                future = pool.submit(run_strategy, admin_dsn, template, spec, out_path,
                                     args.max_labels, not args.no_extended)
                futures[future] = spec
            for future in concurrent.futures.as_completed(futures):
                spec = futures[future]
                try:
                    future.result()
                    log(f"done {spec['dataset']}/{spec['scenario']} {spec['name']} seed {spec['seed']}")
                except Exception:
                    failures += 1
                    log(f"FAILED {spec['dataset']}/{spec['scenario']} {spec['name']} seed {spec['seed']}:\n"
                        + traceback.format_exc())
        finally:
            # On SIGTERM, drop the queued runs and let the running ones finish
            # before the cluster stops.  Ctrl-C also interrupts the workers.
            pool.shutdown(wait=True, cancel_futures=True)
        if failures:
            raise SystemExit(f"{failures} runs failed; see the messages above")


# ---------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------

def read_run(path):
    """Return the header and the round records of one finished run file."""
    header, rounds = None, []
    with open(path) as f:
        for line in f:
            record = json.loads(line)
            if record["record"] == "header":
                header = record
            elif record["record"] == "round":
                rounds.append(record)
    return header, rounds


def load_results(results, dataset, scenario):
    """Return meta, full-data result and {name: [runs]} of one (dataset, scenario), or None."""
    directory = run_dir(results, dataset, scenario)
    meta_path = os.path.join(directory, "meta.json")
    full_path = os.path.join(directory, "full.json")
    if not (os.path.exists(meta_path) and os.path.exists(full_path)):
        return None
    with open(meta_path) as f:
        meta = json.load(f)
    if meta.get("install_root"):
        meta["revision"] = git_revision(meta["install_root"])
    with open(full_path) as f:
        full = json.load(f)
    runs = {}
    unfinished = []
    for name, _, _ in STRATEGIES:
        strategy_dir = os.path.join(directory, slug(name))
        if not os.path.isdir(strategy_dir):
            continue
        for file_name in sorted(os.listdir(strategy_dir)):
            path = os.path.join(strategy_dir, file_name)
            if file_name.endswith(".jsonl"):
                runs.setdefault(name, []).append(read_run(path))
            elif file_name.endswith(".part"):
                unfinished.append(f"{name} {file_name[:-len('.jsonl.part')]}")
    return {"meta": meta, "full": full, "runs": runs, "unfinished": unfinished}


def mean_curve(runs, include_extended):
    """Return [(labels, mean accuracy)] over the label counts that every run reached."""
    by_labels = {}
    for _, rounds in runs:
        for record in rounds:
            if record["extended"] and not include_extended:
                continue
            by_labels.setdefault(record["labels"], []).append(record["accuracy"])
    return [(labels, statistics.mean(values)) for labels, values in sorted(by_labels.items())
            if len(values) == len(runs)]


def accuracy_at(curve, labels):
    """Return the curve's accuracy at exactly labels, or None."""
    for x, y in curve:
        if x == labels:
            return y
    return None


def labels_to_reach(curve, level):
    """Return the interpolated label count where the curve first reaches level, or None."""
    previous = None
    for x, y in curve:
        if y >= level:
            if previous is None:
                return float(x)
            x0, y0 = previous
            return x0 + (level - y0) * (x - x0) / (y - y0)
        previous = (x, y)
    return None


def normalised_auc(curve, max_labels):
    """Return the mean accuracy over the rounds from AUC_START to max_labels labels."""
    values = [y for x, y in curve if AUC_START <= x <= max_labels]
    return statistics.mean(values) if values else None


def seed_auc_range(runs, max_labels):
    """Return the lowest and highest AUC of the single runs, or None.

    Their spread is the noise that the seeds alone add. A difference between
    two candidates' mean AUCs smaller than that is not significant.
    """
    aucs = []
    for _, rounds in runs:
        curve = [(r["labels"], r["accuracy"]) for r in rounds if not r["extended"]]
        auc = normalised_auc(curve, max_labels)
        if auc is not None:
            aucs.append(auc)
    return (min(aucs), max(aucs)) if aucs else None


def round_seconds(runs, max_labels):
    """Return medians and maxima of the batch, train and batch + train seconds per round.

    The cold-start batch and the random start are left out, because they
    choose without a model.  Extended random rounds are left out too.
    """
    batch, train, total = [], [], []
    for _, rounds in runs:
        for record in rounds:
            if record["labels"] > max_labels or record["call"] in ("coverage", "random start"):
                continue
            batch.append(record["batch_seconds"])
            train.append(record["train_seconds"])
            total.append(record["batch_seconds"] + record["train_seconds"])
    if not total:
        return None
    return {"batch": statistics.median(batch), "train": statistics.median(train),
            "total": statistics.median(total), "total_max": max(total)}


def ambiguous_share(runs, max_labels):
    """Return the share of the rows chosen up to max_labels that belong to the ambiguous set."""
    selected = ambiguous = 0
    for _, rounds in runs:
        for record in rounds:
            if record["labels"] > max_labels:
                continue
            selected += record["selected"]
            ambiguous += record["ambiguous_selected"]
    return ambiguous / selected if selected else None


def sql_default():
    """Return hl_next_batch's default strategy and options from the install script."""
    with open(os.path.join(REPOSITORY, "humanloop--0.1.0.sql")) as f:
        script = f.read()
    match = re.search(r"CREATE FUNCTION hl_next_batch\((.*?)\)\s*RETURNS", script, re.S)
    arguments = match.group(1) if match else ""
    strategy = re.search(r"strategy\s+text\s+DEFAULT\s+'([^']*)'", arguments)
    options = re.search(r"options\s+jsonb\s+DEFAULT\s+'([^']*)'", arguments)
    options = json.loads(options.group(1)) if options else {}
    if strategy:
        return strategy.group(1), options
    # DEFAULT NULL: the C code names the classification default and the
    # options it sets for it.
    with open(os.path.join(REPOSITORY, "src", "sql_next_batch.c")) as f:
        source = f.read()
    found = re.search(r'HL_DEFAULT_CLASSIFICATION_STRATEGY\s+"([^"]*)"', source)
    disagreement = re.search(r"#define HL_DEFAULT_DISAGREEMENT\s+([0-9.]+)", source)
    if disagreement and "disagreement" not in options:
        options["disagreement"] = float(disagreement.group(1))
    return (found.group(1) if found else None), options


def default_candidate():
    """Return the name of the candidate that equals hl_next_batch's defaults, or None."""
    strategy, options = sql_default()
    defaults = dict(BATCH_OPTION_DEFAULTS)
    defaults.update(options)
    for name, candidate_strategy, candidate_options in STRATEGIES:
        effective = dict(BATCH_OPTION_DEFAULTS)
        effective.update(candidate_options)
        if candidate_strategy == strategy and effective == defaults:
            return name
    for name, candidate_strategy, _ in STRATEGIES:
        if candidate_strategy is None:
            return name
    return None


def format_number(value, digits=3):
    """Format a float for a table, or a dash for None."""
    return "–" if value is None else f"{value:.{digits}f}"


def format_labels(value, max_labels):
    """Format a label count for a table: rounded to 10, or '> max_labels' when not reached."""
    if value is None:
        return f"> {max_labels:,}"
    return f"{round(value, -1):,.0f}"


def format_savings(summary, name):
    """Format the savings at 95%, as an upper bound when the candidate did not reach 95%."""
    values = summary[name]
    random_95 = summary.get("random", {}).get("reach95")
    if values["savings"] is None and values["reach95"] is None and random_95:
        return f"< {random_95 / values['reach_max']:.2f}"
    return format_number(values["savings"], 2)


def summarise(data):
    """Compute the per-candidate numbers of one (dataset, scenario)."""
    max_labels = data["meta"]["max_labels"]
    full_accuracy = data["full"]["accuracy"]
    summary = {}
    for name, runs in data["runs"].items():
        curve = mean_curve(runs, include_extended=False)
        reach_curve = mean_curve(runs, include_extended=True)
        reach_max = reach_curve[-1][0] if reach_curve else max_labels
        summary[name] = {
            "seeds": len(runs),
            "curve": curve,
            "reach_curve": reach_curve,
            "reach_max": max(reach_max, max_labels),
            "auc": normalised_auc(curve, max_labels),
            "auc_range": seed_auc_range(runs, max_labels),
            "at": {labels: accuracy_at(curve, labels) for labels in CHECKPOINTS},
            "reach90": labels_to_reach(reach_curve, 0.90 * full_accuracy),
            "reach95": labels_to_reach(reach_curve, 0.95 * full_accuracy),
            "seconds": round_seconds(runs, max_labels),
            "ambiguous_share": ambiguous_share(runs, max_labels),
        }
    random_95 = summary.get("random", {}).get("reach95")
    for values in summary.values():
        if random_95 is not None and values["reach95"] is not None:
            values["savings"] = random_95 / values["reach95"]
        else:
            values["savings"] = None
    return summary


def plot(data, summary, path, title, default_name):
    """Draw the mean learning curves into a PNG at path; return False without matplotlib.

    The SQL default's curve is drawn thicker and marked in the legend.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False

    max_labels = data["meta"]["max_labels"]
    full_accuracy = data["full"]["accuracy"]
    figure, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8),
                                         gridspec_kw={"width_ratios": [2, 1]})
    # tab20 gives 20 distinct colours, where the default cycle repeats after
    # ten: its dark shades first, then its light ones.
    colours = plt.get_cmap("tab20").colors
    for index, (name, values) in enumerate(summary.items()):
        xs = [x for x, _ in values["curve"]]
        ys = [y for _, y in values["curve"]]
        style = "--" if name.startswith("random") else "-"
        if "self-training" in name:
            style = ":"
        colour = colours[(2 * index) % 20 + (index // 10) % 2]
        if name == default_name:
            left.plot(xs, ys, style, color=colour, linewidth=2.8,
                      label=name if name == "default" else f"{name} (default)")
        else:
            left.plot(xs, ys, style, color=colour, label=name, linewidth=1.4)

    for axis in (left, right):
        axis.axhline(0.95 * full_accuracy, color="grey", linestyle=":", linewidth=1)
        axis.axhline(0.90 * full_accuracy, color="grey", linestyle=":", linewidth=1)
        axis.grid(True, alpha=0.3)
    left.set_xlim(0, max_labels)
    left.set_xlabel("labels")
    left.set_ylabel("test accuracy")
    left.set_title(title)
    left.legend(fontsize=8, loc="lower right")

    if "random" in summary:
        xs = [x for x, _ in summary["random"]["reach_curve"]]
        ys = [y for _, y in summary["random"]["reach_curve"]]
        right.plot(xs, ys, "o--", markersize=3, label="random")
        right.axhline(full_accuracy, color="black", linewidth=1, label="full data")
        right.set_xscale("log")
        right.set_xlabel("labels (log scale)")
        right.set_title("random up to the whole pool")
        right.legend(fontsize=8, loc="lower right")

    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def section(data, summary, image, default_name):
    """Return the Markdown lines of one (dataset, scenario)."""
    meta = data["meta"]
    full_accuracy = data["full"]["accuracy"]
    max_labels = meta["max_labels"]
    names = [name for name, _, _ in STRATEGIES if name in summary]
    options_by_name = {name: (strategy, options) for name, strategy, options in STRATEGIES}

    def label(name):
        """Return the candidate's name, marked when it is the SQL default."""
        if name != default_name:
            return name
        return f"**{name}**" if name == "default" else f"**{name}** (default)"

    lines = [f"### {meta['dataset']}, {meta['scenario']}", ""]
    lines.append(f"Pool {meta['train_rows']:,} rows, test {meta['test_rows']:,} rows, "
                 f"{meta['classes']} classes. Full-data accuracy (trained on the whole pool"
                 f"{' with the noisy answers' if meta['scenario'] == 'ambiguous' else ''}): "
                 f"{full_accuracy:.3f}, so 90% is {0.90 * full_accuracy:.3f} and 95% is "
                 f"{0.95 * full_accuracy:.3f}. Runs: {meta['date']}, extension at commit "
                 f"`{meta['revision']}`"
                 + (" (a private install)" if meta.get("install_root") else "")
                 + f", `{meta['command']}`"
                 + (", with humanloop in `shared_preload_libraries`." if meta.get("preload") else "."))
    lines.append("")
    if meta["scenario"] == "ambiguous":
        lines.append("Ambiguous pairs (most confused on the test split by the clean full-data model, "
                     "no intent in two pairs; test rows confused either way):")
        lines.append("")
        for pair in meta["pairs"]:
            lines.append(f"- `{pair['intents'][0]}` / `{pair['intents'][1]}`: {pair['test_confusions']}")
        lines.append("")
        lines.append(f"These intents have {meta['ambiguous_pool_rows']:,} pool rows "
                     f"({meta['ambiguous_pool_rows'] / meta['train_rows']:.1%} of the pool); "
                     f"{meta['flipped_pool_rows']:,} of them are answered with the other intent.")
        lines.append("")
    other_builds = []
    for name in names:
        revisions = sorted({header.get("revision") or meta["revision"] for header, _ in data["runs"][name]})
        if revisions != [meta["revision"]]:
            other_builds.append(f"{name} ({', '.join(revisions)})")
    if other_builds:
        lines.append("Candidates run on another commit: " + ", ".join(other_builds) + ".")
        lines.append("")
    lines.append(f"![learning curves]({image})")
    lines.append("")

    header = ("| candidate | call | seeds | " + " | ".join(f"{c:,}" for c in CHECKPOINTS)
              + " | AUC | AUC of single seeds |")
    lines.append("Mean test accuracy by number of labels, and the normalised AUC (mean accuracy "
                 f"over the rounds from {AUC_START} to {max_labels:,} labels), with the lowest and "
                 "highest AUC of the single seeds:")
    lines.append("")
    lines.append(header)
    lines.append("|" + "---|" * (len(CHECKPOINTS) + 5))
    for name in names:
        values = summary[name]
        strategy, options = options_by_name[name]
        call = ("NULL" if strategy is None else f"`'{strategy}'`") + (
            f" `{json.dumps(options)}`" if options else "")
        cells = [format_number(values["at"][c]) for c in CHECKPOINTS]
        low_high = values["auc_range"]
        spread = f"{low_high[0]:.3f} to {low_high[1]:.3f}" if low_high else "–"
        lines.append(f"| {label(name)} | {call} | {values['seeds']} | " + " | ".join(cells)
                     + f" | {format_number(values['auc'])} | {spread} |")
    lines.append("")

    lines.append("Labels needed to reach 90% and 95% of the full-data accuracy come from linear "
                 "interpolation on the mean curve, and random's curve goes on with nested random "
                 "subsets up to the whole pool. Savings are random's labels at 95% divided by the "
                 "candidate's. The seconds are medians per round after the cold start: "
                 "`hl_next_batch` for 50 rows, `hl_train`, their sum, and the slowest sum.")
    lines.append("")
    extra = " ambiguous share |" if meta["scenario"] == "ambiguous" else ""
    lines.append("| candidate | labels to 90% | labels to 95% | savings at 95% | batch s | train s | "
                 "round s | slowest round s |" + extra)
    lines.append("|" + "---|" * (8 + (1 if extra else 0)))
    for name in names:
        values = summary[name]
        limit = values["reach_max"]
        seconds = values["seconds"] or {}
        savings_text = format_savings(summary, name)
        row = (f"| {label(name)} | {format_labels(values['reach90'], limit)} | "
               f"{format_labels(values['reach95'], limit)} | {savings_text} | "
               f"{format_number(seconds.get('batch'), 2)} | {format_number(seconds.get('train'), 2)} | "
               f"{format_number(seconds.get('total'), 2)} | {format_number(seconds.get('total_max'), 2)} |")
        if extra:
            row += f" {format_number(values['ambiguous_share'])} |"
        lines.append(row)
    lines.append("")
    if extra:
        lines.append(f"Ambiguous share: the share of the rows chosen up to {max_labels:,} labels "
                     f"(cold start included) whose true intent is in one of the pairs; the pool's "
                     f"share is {meta['ambiguous_pool_rows'] / meta['train_rows']:.3f}.")
        lines.append("")
    lines += stopping_lines(data, names, label)
    if data["unfinished"]:
        lines.append("Unfinished runs, not counted: " + ", ".join(data["unfinished"]) + ".")
        lines.append("")
    return lines


def first_stop(rounds):
    """Return the first round where hl_status recommended stopping with an agreement, or None."""
    for record in rounds:
        if (record.get("status_recommendation") == "stop"
                and record.get("status_agreement") is not None):
            return record
    return None


def stopping_lines(data, names, label):
    """Return the table of where hl_status first recommended stopping, if the runs recorded it."""
    full_accuracy = data["full"]["accuracy"]
    rows = []
    for name in names:
        runs = data["runs"][name]
        if not all(rounds and "status_recommendation" in rounds[0] for _, rounds in runs):
            continue
        stops = [first_stop(rounds) for _, rounds in runs]
        found = [record for record in stops if record is not None]
        where = ", ".join(f"{record['labels']:,}" if record else "none" for record in stops)
        if found:
            accuracy = statistics.mean(record["accuracy"] for record in found)
            rows.append(f"| {label(name)} | {where} | {accuracy:.3f} | "
                        f"{accuracy / full_accuracy:.3f} |")
        else:
            rows.append(f"| {label(name)} | {where} | | |")
    if not rows:
        return []
    return ["`hl_status` after every round: the labels at which it first recommended stopping, "
            "per seed, with the mean test accuracy there and its share of the full-data accuracy. "
            "It recommends stopping once every class has at least ten labels and the current "
            "version gives the same label as the newest earlier one trained on at least 2% fewer "
            "labels to 99% of a 1,000-row pool sample.",
            "",
            "| candidate | first `stop` at, per seed | accuracy there | share of full-data accuracy |",
            "|---|---|---|---|"] + rows + [""]


def choosing_the_default(all_data, default_name):
    """Return the Markdown lines of the section that compares the candidates for the default."""
    lines = ["## Choosing the default", ""]
    strategy, options = sql_default()
    lines.append("The current SQL default is `hl_next_batch(name, n)` with strategy NULL, which a"
                 f" classifier resolves to `'{strategy}'` (`src/sql_next_batch.c`), and options"
                 f" `{json.dumps(options)}`"
                 + (f", the candidate **{default_name}**." if default_name else
                    ", which is none of the candidates above.")
                 + " It is read from `humanloop--0.1.0.sql` and `src/sql_next_batch.c` when this"
                   " page is built; the commit each run used is given under Results.")
    lines.append("")
    banking = {scenario: all_data.get(("banking77", scenario)) for scenario in SCENARIOS}
    if not banking["clean"]:
        lines.append("No banking77 results yet.")
        return lines
    clean = banking["clean"][1]
    ambiguous = banking["ambiguous"][1] if banking["ambiguous"] else {}
    lines.append("banking77, mean over seeds:")
    lines.append("")
    lines.append("| candidate | AUC clean | AUC ambiguous | savings at 95% (clean) | "
                 "accuracy at 1,000 (clean) | ambiguous share | ambiguous share / entropy's |")
    lines.append("|---|---|---|---|---|---|---|")
    entropy_share = ambiguous.get("entropy", {}).get("ambiguous_share")
    best_clean = max((v["auc"], n) for n, v in clean.items() if v["auc"] is not None)[1]
    best_ambiguous = None
    if ambiguous:
        best_ambiguous = max((v["auc"], n) for n, v in ambiguous.items() if v["auc"] is not None)[1]
    for name, _, _ in STRATEGIES:
        if name not in clean:
            continue
        values = clean[name]
        other = ambiguous.get(name, {})
        share = other.get("ambiguous_share")
        ratio = share / entropy_share if share is not None and entropy_share else None
        marker = " (default)" if name == default_name and name != "default" else ""
        lines.append(f"| {name}{marker} | {format_number(values['auc'])} | {format_number(other.get('auc'))} | "
                     f"{format_savings(clean, name)} | {format_number(values['at'][1000])} | "
                     f"{format_number(share)} | {format_number(ratio, 2)} |")
    lines.append("")
    lines.append(f"Best AUC: {best_clean} (clean)"
                 + (f", {best_ambiguous} (ambiguous)." if best_ambiguous else "; the ambiguous scenario has no results yet."))
    lines.append("")
    lines.append("Targets for the default on banking77: savings at 95% of at least 2.5, accuracy "
                 "of at least 0.80 at 1,000 labels, an AUC at least that of every other candidate "
                 "in both scenarios, a smaller ambiguous share than `entropy`, and a round "
                 "(`hl_next_batch` for 50 rows plus `hl_train`) under 2 s. Reference from "
                 "scikit-learn logistic regression on the same protocol: accuracy at 1,000 labels "
                 "0.726 random, 0.789 margin, 0.727 entropy; 95% of its full-data accuracy (0.867) "
                 "at about 3,550 labels with random and 1,850 with margin.")
    lines.append("")
    lines.append("Which candidate would meet each target as the default (\"–\" where a "
                 "scenario has no results; the round time is the slowest round up to 2,000 labels):")
    lines.append("")
    lines.append("| candidate | savings >= 2.5 | accuracy at 1,000 >= 0.80 | best AUC clean | "
                 "best AUC ambiguous | ambiguous share < entropy's | slowest round < 2 s |")
    lines.append("|---|---|---|---|---|---|---|")
    for name, _, _ in STRATEGIES:
        if name not in clean or name == "random":
            continue
        checks = target_checks(name, clean, ambiguous)
        marker = " (default)" if name == default_name and name != "default" else ""
        lines.append(f"| {name}{marker} | " + " | ".join(checks) + " |")
    lines.append("")
    return lines


def yes_no(condition):
    """Format a target check: 'yes', 'no', or a dash when it cannot be computed."""
    if condition is None:
        return "–"
    return "yes" if condition else "no"


def target_checks(name, clean, ambiguous):
    """Return the six target checks of candidate name as table cells."""
    values = clean[name]
    savings = values["savings"]
    accuracy = values["at"][1000]
    checks = [yes_no(savings >= 2.5 if savings is not None else False),
              yes_no(accuracy >= 0.80 if accuracy is not None else None)]
    for summary in (clean, ambiguous):
        own = summary.get(name, {}).get("auc")
        others = [v["auc"] for n, v in summary.items() if n != name and v["auc"] is not None]
        if own is None or not others:
            checks.append(yes_no(None))
        else:
            best_other = max(others)
            cell = yes_no(own >= best_other)
            if own < best_other:
                cell += f" ({own - best_other:+.3f})"
            checks.append(cell)
    share = ambiguous.get(name, {}).get("ambiguous_share")
    entropy_share = ambiguous.get("entropy", {}).get("ambiguous_share")
    checks.append(yes_no(share < entropy_share if share is not None and entropy_share is not None else None))
    slowest = [summary[name]["seconds"]["total_max"] for summary in (clean, ambiguous)
               if name in summary and summary[name]["seconds"]]
    checks.append(yes_no(max(slowest) < 2.0 if slowest else None))
    return checks


def hand_written_section(out_path):
    """Return the lines of the page's hand-written closing section, if it has one.

    The section starts at the heading HAND_WRITTEN_HEADING and runs to the end
    of the page.  It carries the reading of the numbers, which a rebuilt
    report must not drop.
    """
    if not os.path.exists(out_path):
        return []
    with open(out_path) as f:
        text = f.read()
    start = text.find(HAND_WRITTEN_HEADING)
    if start < 0:
        return []
    return text[start:].rstrip().split("\n")


def report(args):
    """Rebuild the Markdown page and its plots from the JSON results."""
    out_path = os.path.abspath(args.out)
    image_dir = os.path.join(os.path.dirname(out_path), "img")
    os.makedirs(image_dir, exist_ok=True)
    default_name = default_candidate()

    all_data = {}
    body = []
    for dataset in DATASETS:
        for scenario in SCENARIOS:
            data = load_results(args.results, dataset, scenario)
            if data is None or not data["runs"]:
                continue
            summary = summarise(data)
            all_data[(dataset, scenario)] = (data, summary)
            image_name = f"active-{dataset}-{scenario}.png"
            plot(data, summary, os.path.join(image_dir, image_name), f"{dataset}, {scenario}",
                 default_name)
            body += section(data, summary, f"img/{image_name}", default_name)

    machines = sorted({data["meta"]["machine"] for data, _ in all_data.values()})
    dates = sorted({data["meta"]["date"] for data, _ in all_data.values()})
    lines = [
        "# Active learning: simulated annotation",
        "",
        "How many labels each `hl_next_batch` strategy needs to reach a given test accuracy,",
        "measured by simulating an annotator through SQL.",
        "",
        "```sh",
        "# as root; either `make && make install`, or a private build that other installs cannot change:",
        "/usr/bin/python3 test/bench/hlbench.py private-install /var/tmp/hl-COMMIT COMMIT",
        "B=test/bench/bench_active.py; ROOT=--install-root=/var/tmp/hl-COMMIT",
        "/usr/bin/python3 $B BANKING77_DIR --dataset banking77 $ROOT",
        "/usr/bin/python3 $B BANKING77_DIR --dataset banking77 --scenario ambiguous $ROOT",
        "/usr/bin/python3 $B SNIPS_DIR --dataset snips $ROOT",
        "/usr/bin/python3 $B --report --out docs/active-learning.md",
        "```",
        "",
        "BANKING77_DIR holds `train.csv` and `test.csv` (header `text,category`); SNIPS_DIR holds",
        "`train/` and `test/`, each with `seq.in` and `label`. Each run's rounds are kept as JSON",
        f"lines under `{DEFAULT_RESULTS}/DATASET/SCENARIO/CANDIDATE/seedS.jsonl`; `--report`",
        "rebuilds this page and the plots from them.",
        "",
        "Machine: " + "; ".join(machines) + ". Dates: " + ", ".join(dates) + ".",
        "",
        "## Protocol",
        "",
        "- Each run starts a database cloned from a template in a throwaway PostgreSQL cluster",
        "  (`test/bench/hlbench.py`). The pool is the train split, loaded with COPY into",
        "  `pool(id, text, label)` with every label NULL; the simulated annotator's answers",
        "  are in a separate table. The test split is never offered for labelling.",
        f"- Each round calls `hl_next_batch(model, {BATCH_SIZE}, strategy, options)` with the",
        "  candidate's options plus `{\"seed\": S, \"reserve\": false}`, writes the answers for",
        "  those rows into the pool's label column, runs `hl_train(model)` and scores the test",
        f"  split with `hl_predict`. Rounds go up to {MAX_LABELS:,} labels.",
        "  `humanloop.reservation_timeout` is 0 and parallel query is off in the session.",
        "- Cold start: every candidate except random begins with",
        f"  `hl_next_batch(model, {BATCH_SIZE}, 'coverage', '{{\"seed\": S}}')` before any training, so",
        "  the seed S (0, 1, 2) changes the first batch and the runs of a deterministic",
        f"  strategy differ. Random begins with {RANDOM_START} rows in an order fixed by",
        "  `md5(id || ':' || S)`, then calls `hl_next_batch(..., 'random', '{\"seed\": S}')`.",
        f"- Random runs continue past {MAX_LABELS:,} labels on nested random subsets",
        "  (" + ", ".join(f"{n:,}" for n in EXTENDED_LABELS) + " where smaller than the pool,",
        "  and the whole pool). They show where random labelling reaches 90% and 95% of the",
        "  full-data accuracy, which is that of one model trained on every pool row.",
        "- The curves, the AUC and the labels needed are means over the seeds. Seconds are",
        "  client-side wall times of the two calls, with two runs side by side on the machine",
        "  and other builds and tests sharing its two cores. They vary with that load, so",
        "  they compare candidates only roughly.",
        "- Scenario `ambiguous` (banking77): the ten most confused pairs of intents are taken",
        "  from the confusion matrix of the clean full-data model on the test split, with no",
        "  intent in two pairs. The annotator answers a pool row of one of these intents with",
        f"  the other intent of its pair with probability {AMBIGUOUS_FLIP}, fixed per row by",
        f"  SHA-256 of the row id and the seed {AMBIGUOUS_SEED}, so a row always gets the same",
        "  answer. The test split keeps its true labels.",
        "",
    ]
    lines += choosing_the_default(all_data, default_name)
    lines += ["## Results", ""] + body
    closing = hand_written_section(out_path)
    if closing:
        lines += ([""] if lines[-1] else []) + closing
    with open(out_path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")
    log(f"wrote {out_path} and its plots in {image_dir}")


def main():
    """Parse the arguments and run a sweep or rebuild the report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", nargs="?", help="folder of the data set (not needed with --report)")
    parser.add_argument("--dataset", choices=DATASETS)
    parser.add_argument("--scenario", choices=SCENARIOS, default="clean")
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds, from 0 (default 3)")
    parser.add_argument("--strategies", nargs="+", metavar="NAME",
                        help="candidates to run, by name in the report (default: all)")
    parser.add_argument("--max-labels", type=int, default=MAX_LABELS,
                        help=f"labels at which the rounds stop (default {MAX_LABELS})")
    parser.add_argument("--no-extended", action="store_true",
                        help="do not continue random runs past --max-labels")
    parser.add_argument("--jobs", type=int, default=2, help="runs side by side (default 2)")
    parser.add_argument("--results", default=DEFAULT_RESULTS,
                        help=f"folder of the JSON results (default {DEFAULT_RESULTS})")
    parser.add_argument("--preload", action="store_true",
                        help="start the cluster with humanloop in shared_preload_libraries")
    parser.add_argument("--install-root", metavar="DIR",
                        help="run PostgreSQL and humanloop from a private copy under DIR "
                             "(see hlbench.throwaway_cluster)")
    parser.add_argument("--report", action="store_true",
                        help="rebuild the Markdown and the plots from the results, run nothing")
    parser.add_argument("--out", default=DEFAULT_OUT, help="Markdown file of the report")
    args = parser.parse_args()

    if args.report:
        report(args)
        return
    if not args.data_dir or not args.dataset:
        parser.error("a sweep needs DATA_DIR and --dataset")
    if args.scenario == "ambiguous" and args.dataset != "banking77":
        parser.error("the ambiguous scenario is defined for banking77 only")
    sweep(args)
    report(args)


if __name__ == "__main__":
    main()
