"""``train`` against the script a user would write by hand: wall time and peak memory.

    .venv/bin/python benchmarks/train_scale.py                       # 100k and 1M rows
    .venv/bin/python benchmarks/train_scale.py --rows 100000 --rounds 5
    .venv/bin/python benchmarks/train_scale.py --formats csv --keep  # CSV only; keep files

The data is seeded: 10 numeric columns and 10 categorical ones of at most 20
levels, and a binary target, written as one CSV file and one Parquet file.
For every size and format, each round runs two processes one after the other
(so a busy machine slows both alike), and the medians over the rounds are
reported:

- ``train``: the stage's real entry point (``train/main.py``) on an
  /opt/ml-shaped tree whose channel ``train`` holds the file, with default
  hyperparameters but the target;
- the baseline, the script a user would write: ``pandas.read_csv`` with the
  text columns as ``category`` (Parquet: fastparquet, then
  ``astype("category")``), the same seeded stratified 20 % hold-out,
  ``HistGradientBoostingClassifier(categorical_features="from_dtype",
  early_stopping=True)`` (a mask of the categorical columns on lines without
  "from_dtype"), ``fit``, ``predict_proba`` on the hold-out, ``joblib.dump``.

Each run is one process, whose peak resident memory a wrapper process reads.
Results go to ``train_scale.md`` and ``train_scale.json`` beside this file.
A benchmark, not a test: the numbers are read, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (100_000, 1_000_000)
FORMATS = ("csv", "parquet")
SEED = 42
# train / baseline: wall time and peak memory, per format.
TARGETS = {"csv": (1.2, 1.1), "parquet": (1.3, 1.5)}
N_NUMERIC, N_CATEGORICAL, LEVELS = 10, 10, 20


def generate(rows: int, seed: int = 0):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = {f"num_{i}": rng.normal(size=rows).round(4) for i in range(N_NUMERIC)}
    codes = rng.integers(0, LEVELS, size=(rows, N_CATEGORICAL), dtype=np.int8)
    levels = np.array([f"level_{j}" for j in range(LEVELS)], dtype=object)
    for i in range(N_CATEGORICAL):
        columns[f"cat_{i}"] = levels[codes[:, i]]
    score = (columns["num_0"] - 0.5 * columns["num_1"] + (codes[:, 0] % 3) - 1
             + 0.3 * (codes[:, 1] % 4) + rng.normal(size=rows))
    columns["target"] = np.where(score > 0.4, "yes", "no").astype(object)
    return pd.DataFrame(columns)


# Runs the command it is given and prints that child's peak RSS: RUSAGE_CHILDREN
# of a process with exactly one child is that child's maximum.
WRAPPER = textwrap.dedent("""
    import resource, subprocess, sys
    code = subprocess.call(sys.argv[1:])
    print(f"peak_rss_kb={resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}",
          file=sys.stderr)
    sys.exit(code)
""")


def measure(argv: list[str], env: dict | None = None) -> dict:
    """Wall time and peak RSS of one process."""
    load = [os.getloadavg()[0]]
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], env={**os.environ, **(env or {})},
                          capture_output=True, text=True)
    wall = time.monotonic() - started
    load.append(os.getloadavg()[0])
    lines = done.stderr.strip().splitlines()
    peak = next((int(line.split("=", 1)[1]) for line in reversed(lines)
                 if line.startswith("peak_rss_kb=")), None)
    return {"seconds": round(wall, 1), "peak_mb": round(peak / 1024) if peak else None,
            "exit": done.returncode, "log_tail": lines[-4:-1], "load": load,
            "cores": os.cpu_count()}


# The script a user would write by hand; argv: data file, format, seed, model file.
BASELINE = textwrap.dedent("""
    import inspect, sys
    import joblib
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import train_test_split

    path, kind, seed, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    if kind == "csv":
        head = pd.read_csv(path, nrows=1)
        text = [c for c in head.columns if c.startswith("cat_")]
        frame = pd.read_csv(path, dtype={c: "category" for c in text})
    else:
        import fastparquet
        frame = fastparquet.ParquetFile(path).to_pandas()
        text = [c for c in frame.columns if c.startswith("cat_")]
        frame[text] = frame[text].astype("category")
    y = frame.pop("target")
    X_fit, X_val, y_fit, y_val = train_test_split(frame, y, test_size=0.2, random_state=seed,
                                                  stratify=y)
    del frame, y
    accepted = inspect.signature(HistGradientBoostingClassifier).parameters
    if accepted["categorical_features"].default == "from_dtype":
        categorical = "from_dtype"
    else:  # scikit-learn < 1.4: a mask, and the category codes as the values
        categorical = [c in text for c in X_fit.columns]
        X_fit = X_fit.apply(lambda c: c.cat.codes if c.name in text else c)
        X_val = X_val.apply(lambda c: c.cat.codes if c.name in text else c)
    model = HistGradientBoostingClassifier(categorical_features=categorical,
                                           early_stopping=True, random_state=seed)
    model.fit(X_fit, y_fit)
    model.predict_proba(X_val)
    joblib.dump(model, out)
""")


def training_tree(base: Path, data: Path) -> Path:
    """An /opt/ml-shaped tree whose channel ``train`` holds ``data`` (hard-linked)."""
    shutil.rmtree(base, ignore_errors=True)
    channel = base / "input" / "data" / "train"
    channel.mkdir(parents=True)
    os.link(data, channel / data.name)
    config = base / "input" / "config"
    config.mkdir(parents=True)
    # SageMaker hands every hyperparameter over as a string.
    (config / "hyperparameters.json").write_text(json.dumps({"target": "target",
                                                             "seed": str(SEED)}))
    (config / "inputdataconfig.json").write_text(json.dumps(
        {"train": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                   "RecordWrapperType": "None"}}))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    return base


def median_run(runs: list[dict]) -> dict:
    good = [r for r in runs if not r["exit"]]
    if len(good) < len(runs):
        failed = next(r for r in runs if r["exit"])
        return {"exit": failed["exit"], "log_tail": failed["log_tail"], "runs": runs}
    return {"exit": 0, "seconds": statistics.median(r["seconds"] for r in good),
            "peak_mb": statistics.median(r["peak_mb"] for r in good), "runs": runs}


def run_size(rows: int, work: Path, formats, rounds: int) -> dict:
    from sklearn_byoc.common import parquet

    frame = generate(rows)
    files = {"csv": work / f"data-{rows}.csv", "parquet": work / f"data-{rows}.parquet"}
    files = {k: v for k, v in files.items() if k in formats}
    if "csv" in files:
        frame.to_csv(files["csv"], index=False)
    if "parquet" in files:
        parquet.write_file(frame, files["parquet"])
    del frame
    result = {"rows": rows, "rounds": rounds,
              "file_mb": {k: round(v.stat().st_size / 2**20) for k, v in files.items()}}
    for kind, path in files.items():
        base = training_tree(work / f"tree-{kind}-{rows}", path)
        runs = {"train": [], "baseline": []}
        for _ in range(rounds):
            runs["train"].append(measure([sys.executable, str(ROOT / "train" / "main.py")],
                                         {"SAGEMAKER_BASE_DIR": str(base)}))
            runs["baseline"].append(measure([sys.executable, "-c", BASELINE, str(path), kind,
                                             str(SEED), str(work / "model.joblib")]))
            print(rows, kind, {k: (v[-1]["seconds"], v[-1]["peak_mb"], v[-1]["exit"])
                               for k, v in runs.items()}, flush=True)
        result[kind] = {k: median_run(v) for k, v in runs.items()}
        shutil.rmtree(base, ignore_errors=True)
    return result


def report(results: list[dict], command: str = "") -> str:
    lines = [
        "# `train` against the script a user would write",
        "",
        "Generated data: 10 numeric and 10 categorical columns (20 levels), binary target.  "
        "`train`: the stage's entry point on an /opt/ml tree, default hyperparameters.  "
        "Baseline: `read_csv` with the text columns as `category` (Parquet: fastparquet, "
        "then `astype(\"category\")`), the same seeded stratified 20 % hold-out, "
        "`HistGradientBoostingClassifier(categorical_features=\"from_dtype\", "
        "early_stopping=True)`, `fit`, `predict_proba` on the hold-out, `joblib.dump`.  "
        "Medians over the rounds, train and baseline alternated.  Targets (train / "
        "baseline): wall time <= 1.2x on CSV and 1.3x on Parquet, peak memory <= 1.1x on "
        "CSV and 1.5x on Parquet.",
        "",
    ]
    if command:
        lines += [f"    {command}", ""]
    lines += ["| Rows | Format | File | Rounds | train | baseline | wall ratio | memory ratio |",
              "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]

    def cell(run):
        if run.get("exit"):
            return f"failed (exit {run['exit']})"
        return f"{run['seconds']:.1f} s, {run['peak_mb']:,.0f} MB"

    for r in results:
        for kind in FORMATS:
            if kind not in r:
                continue
            train, base = r[kind]["train"], r[kind]["baseline"]
            wall_target, memory_target = TARGETS[kind]
            if train.get("exit") or base.get("exit"):
                ratios = ["-", "-"]
            else:
                wall = train["seconds"] / base["seconds"]
                memory = train["peak_mb"] / base["peak_mb"]
                ratios = [f"{wall:.2f}x {'(met)' if wall <= wall_target else '(missed)'}",
                          f"{memory:.2f}x {'(met)' if memory <= memory_target else '(missed)'}"]
            lines.append(f"| {r['rows']:,} | {kind} | {r['file_mb'][kind]:,} MB | "
                         f"{r['rounds']} | {cell(train)} | {cell(base)} | "
                         f"{ratios[0]} | {ratios[1]} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="a size to run (repeatable; default: 100k and 1M)")
    parser.add_argument("--formats", default=",".join(FORMATS),
                        help="formats to run, comma-separated (default: csv,parquet)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of train and baseline, alternated (default: 3)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks",
                        help="folder for train_scale.md and train_scale.json")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--report", type=Path,
                        help="only rewrite train_scale.md from this train_scale.json")
    args = parser.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or args.rounds < 1:
        parser.error(f"--formats takes {', '.join(FORMATS)}; --rounds at least 1")
    command = "benchmarks/train_scale.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if args.report:
        (args.out / "train_scale.md").write_text(
            report(json.loads(args.report.read_text()), command))
        return 0
    work = Path(tempfile.mkdtemp(prefix="train-scale-"))
    results = []
    try:
        for rows in args.rows or SIZES:
            results.append(run_size(rows, work, formats, args.rounds))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "train_scale.json").write_text(json.dumps(results, indent=2) + "\n")
            (args.out / "train_scale.md").write_text(report(results, command))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
