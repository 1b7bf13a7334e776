"""``train`` at scale: wall time and peak memory on generated data, CSV and Parquet.

    .venv/bin/python benchmarks/train_scale.py                  # 100k, 1M and 5M rows
    .venv/bin/python benchmarks/train_scale.py --rows 100000    # one size
    .venv/bin/python benchmarks/train_scale.py --keep           # keep the generated files

The data is seeded: 10 numeric columns and 10 categorical ones of at most 20
levels, and a binary target.  For every size it runs

- the ``train`` stage as a process on an /opt/ml-shaped tree holding the
  data as one CSV file, then as one Parquet file, with default
  hyperparameters (target named ``target``);
- the baseline: ``pandas.read_csv`` and the ``fit`` of the same pipeline
  (the trainer's ``build_pipeline`` with the same estimator) on the same
  80 % of the rows, in a fresh process, with nothing else: no typing of
  cells, no metrics, no saving.

Each run is one process, whose peak resident memory a wrapper process reads;
"float32 size" is rows x 20 features x 4 bytes, the raw feature matrix at
its smallest.  Results go to ``train_scale.md`` and ``train_scale.json`` beside
this file.  A benchmark, not a test: the numbers are read, not asserted.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = (100_000, 1_000_000, 5_000_000)
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


BASELINE = textwrap.dedent("""
    import sys
    import pandas as pd
    from sklearn.model_selection import train_test_split
    from sklearn_byoc.train.estimators import resolve_model
    from sklearn_byoc.train.trainer import build_pipeline

    frame = pd.read_csv(sys.argv[1])
    y = frame.pop("target")
    kinds = {c: "categorical" if c.startswith("cat_") else "numeric" for c in frame.columns}
    X_fit, _, y_fit, _ = train_test_split(frame, y, test_size=0.2, random_state=42)
    spec = resolve_model("gradient_boosting")
    estimator = spec.class_for("classification")(random_state=42, early_stopping=True)
    pipeline = build_pipeline(estimator, X_fit, kinds, scale=False, native_categories=True)
    pipeline.fit(X_fit, y_fit)
""")


def run_size(rows: int, work: Path) -> dict:
    from sklearn_byoc.common import parquet

    frame = generate(rows)
    result = {"rows": rows, "float32_mb": round(rows * (N_NUMERIC + N_CATEGORICAL) * 4 / 2**20)}
    files = {"csv": work / f"data-{rows}.csv", "parquet": work / f"data-{rows}.parquet"}
    frame.to_csv(files["csv"], index=False)
    parquet.write_file(frame, files["parquet"])
    del frame
    result["file_mb"] = {k: round(v.stat().st_size / 2**20) for k, v in files.items()}
    for kind, path in files.items():
        base = work / f"tree-{kind}-{rows}"
        shutil.rmtree(base, ignore_errors=True)
        channel = base / "input" / "data" / "train"
        channel.mkdir(parents=True)
        os.link(path, channel / path.name)
        (base / "input" / "config").mkdir(parents=True)
        (base / "input" / "config" / "hyperparameters.json").write_text("{}")
        result[f"train_{kind}"] = measure([sys.executable, str(ROOT / "train" / "main.py")],
                                          {"SAGEMAKER_BASE_DIR": str(base)})
        print(rows, kind, result[f"train_{kind}"], flush=True)
        shutil.rmtree(base, ignore_errors=True)
    result["baseline"] = measure([sys.executable, "-c", BASELINE, str(files["csv"])],
                                 {"PYTHONPATH": str(ROOT)})
    print(rows, "baseline", result["baseline"], flush=True)
    return result


def report(results: list[dict]) -> str:
    lines = [
        "# `train` at scale",
        "",
        "Generated data: 10 numeric and 10 categorical columns (20 levels), binary target; "
        "default hyperparameters (HistGradientBoosting, 20 % held out).  Baseline: "
        "`pandas.read_csv` + the same pipeline's `fit` on the same 80 % of the rows.  "
        "Written by `benchmarks/train_scale.py`.",
        "",
        "| Rows | float32 size | CSV / Parquet file | train on CSV | train on Parquet | "
        "baseline (read_csv + fit) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]

    def cell(run):
        if run.get("exit"):
            return f"failed (exit {run['exit']})"
        return f"{run['seconds']:.0f} s, {run['peak_mb']:,} MB"

    for r in results:
        lines.append(
            f"| {r['rows']:,} | {r['float32_mb']:,} MB | {r['file_mb']['csv']:,} / "
            f"{r['file_mb']['parquet']:,} MB | {cell(r['train_csv'])} | "
            f"{cell(r['train_parquet'])} | {cell(r['baseline'])} |")
    lines += ["", "Peak memory as a multiple of the float32 size of the feature columns, and the "
              "machine's load (1-minute average at the start and end of each run; above the "
              "core count, other processes shared the CPUs and the times are longer):", "",
              "| Rows | train on CSV | train on Parquet | baseline | load |",
              "| ---: | ---: | ---: | ---: | --- |"]
    for r in results:
        def times(run):
            return "-" if run.get("exit") or not run["peak_mb"] else \
                f"{run['peak_mb'] / max(r['float32_mb'], 1):.1f}x"
        load = " / ".join(
            "-" if r[k].get("load") is None else "{:.1f}-{:.1f}".format(*r[k]["load"])
            for k in ("train_csv", "train_parquet", "baseline"))
        lines.append(f"| {r['rows']:,} | {times(r['train_csv'])} | {times(r['train_parquet'])} | "
                     f"{times(r['baseline'])} | {load} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, action="append",
                        help="a size to run (repeatable; default: 100k, 1M, 5M)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks",
                        help="folder for train_scale.md and train_scale.json")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--report", type=Path,
                        help="only rewrite train_scale.md from this train_scale.json")
    args = parser.parse_args(argv)
    if args.report:
        (args.out / "train_scale.md").write_text(report(json.loads(args.report.read_text())))
        return 0
    work = Path(tempfile.mkdtemp(prefix="train-scale-"))
    results = []
    try:
        for rows in args.rows or SIZES:
            results.append(run_size(rows, work))
            args.out.mkdir(parents=True, exist_ok=True)
            (args.out / "train_scale.json").write_text(json.dumps(results, indent=2) + "\n")
            (args.out / "train_scale.md").write_text(report(results))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
