"""``train`` on 1, 2 and 3 hosts: wall time, peak memory per host, and the most rows each
configuration trains under one per-host memory cap.

    .venv/bin/python benchmarks/train_hosts.py                       # the defaults below
    .venv/bin/python benchmarks/train_hosts.py --rows 1000000 --rounds 3
    .venv/bin/python benchmarks/train_hosts.py --cap-mb 1024 --steps 1000000,2000000,3000000

Every host is a real ``train`` process with its own /opt/ml tree and name (scripts/hosts.py:
needs root).  The data is seeded: 10 numeric columns, 10 categorical ones of at most 20
levels, a binary target, one CSV file replicated to every host (each host reads its third).
The model is a random forest (each host fits its share of the trees).

Part 1 runs the same rows on 1, 2 and 3 hosts, alternated round by round (1 2 3 1 2 3 …), and
reports medians.  Part 2 caps every host's memory (a cgroup v1 limit, as an instance of
that size) and runs growing row counts until a configuration fails, for each number of
hosts.  Results go to ``train_hosts.md`` beside this file.  On a machine of 2 cores the
hosts share the cores, so wall time does not fall with more hosts here; memory per host
does, which is what the cap measures.  A benchmark, not a test: the numbers are read, not
asserted.
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.hosts import Job, can_cap_memory, can_run, host_names  # noqa: E402

N_NUMERIC, N_CATEGORICAL, LEVELS = 10, 10, 20
HYPERPARAMETERS = {"model": "random_forest", "n_estimators": "24", "max_depth": "14",
                   "target": "target"}
USED = re.compile(r"used at most ([0-9.]+) (KiB|MiB|GiB)")
UNITS = {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30}


def write_data(path: Path, rows: int, seed: int = 0) -> Path:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns = {f"n{i}": rng.normal(size=rows).round(4) for i in range(N_NUMERIC)}
    for i in range(N_CATEGORICAL):
        columns[f"c{i}"] = rng.integers(0, LEVELS, rows).astype(str)
        columns[f"c{i}"] = np.char.add("level-", columns[f"c{i}"])
    score = sum(columns[f"n{i}"] * (i + 1) for i in range(3)) \
        + (columns["c0"] == "level-3") * 2 + rng.normal(size=rows)
    frame = pd.DataFrame({"target": (score > 0).astype(int), **columns})
    frame.to_csv(path, index=False)
    return path


def run_job(root: Path, data: Path, hosts: int, cap: int | None) -> dict:
    names = host_names(hosts)
    job = Job.lay_out(root, hosts, HYPERPARAMETERS, {"train": {h: [data] for h in names}})
    started = time.monotonic()
    job.start(memory=cap)
    codes = job.wait(3600)
    took = time.monotonic() - started
    peaks = {}
    for host in job.hosts:
        match = USED.search(host.output())
        peaks[host.name] = float(match.group(1)) * UNITS[match.group(2)] if match \
            else host.peak_memory()
    ok = all(code == 0 for code in codes.values())
    return {"ok": ok, "seconds": took, "peaks": peaks,
            "failure": next((h.failure for h in job.hosts if h.failure), "")}


def mib(value) -> str:
    return f"{value / 2**20:.0f}" if value else "?"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=600_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cap-mb", type=int, default=768)
    parser.add_argument("--steps", default="500000,1000000,1500000,2000000,3000000")
    args = parser.parse_args(argv)
    why = can_run()
    if why:
        raise SystemExit(f"cannot run hosts here: {why}")
    lines = [f"# train on several hosts ({time.strftime('%Y-%m-%d')})", "",
             f"Command: `python benchmarks/train_hosts.py --rows {args.rows} --rounds "
             f"{args.rounds} --cap-mb {args.cap_mb} --steps {args.steps}`", ""]
    with tempfile.TemporaryDirectory(prefix="train-hosts-") as tmp:
        tmp = Path(tmp)
        data = write_data(tmp / "data.csv", args.rows)
        runs: dict[int, list[dict]] = {1: [], 2: [], 3: []}
        for round_ in range(args.rounds):
            for hosts in (1, 2, 3):
                result = run_job(tmp / f"r{round_}-h{hosts}", data, hosts, None)
                print(hosts, "hosts:", result, flush=True)
                runs[hosts].append(result)
        lines += [f"## The same {args.rows} rows on 1, 2 and 3 hosts (medians of "
                  f"{args.rounds}, alternated)", "",
                  "| hosts | wall time (s) | peak memory per host (MiB) |", "|---|---|---|"]
        for hosts, results in runs.items():
            seconds = statistics.median(r["seconds"] for r in results)
            per_host = [statistics.median(r["peaks"][h] or 0 for r in results)
                        for h in host_names(hosts)]
            lines.append(f"| {hosts} | {seconds:.1f} | {' / '.join(mib(p) for p in per_host)} |")

        if can_cap_memory():
            cap = args.cap_mb * 2**20
            steps = [int(s) for s in args.steps.split(",")]
            lines += ["", f"## The most rows trained with every host capped at {args.cap_mb} MiB",
                      "", "| hosts | rows tried: result | most rows trained |", "|---|---|---|"]
            for hosts in (1, 2, 3):
                tried, best = [], 0
                for rows in steps:
                    path = write_data(tmp / f"cap-{rows}.csv", rows)
                    result = run_job(tmp / f"cap-h{hosts}-{rows}", path, hosts, cap)
                    print(hosts, "hosts capped,", rows, "rows:", result, flush=True)
                    tried.append(f"{rows}: {'ok' if result['ok'] else 'failed'}")
                    if not result["ok"]:
                        break
                    best = rows
                lines.append(f"| {hosts} | {', '.join(tried)} | {best} |")
    out = Path(__file__).with_name("train_hosts.md")
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
