"""The serving-speed cases of every built-in model: iris and the bundled churn data.

Part of ``make bench`` (benchmarks/run.py calls :func:`run_models`): each model is
trained by this image's ``train`` stage (iris: 4 numeric features, 3 classes, no
header, label first), then ``serve`` and the baseline run side by side with the
same worker count, alternated round after round:

- every model: a 1-row CSV and a 1-row JSON request at the benchmark's connections;
- the iris decision tree also: 1-row CSV at one connection per worker (latency
  without queueing), a 100,000-row CSV body at one connection per worker, and
  serve's own ``GET /ping`` at the benchmark's connections (the server's ceiling);
- a ``DummyClassifier`` model: what the invocation chain itself costs.

Every answer is checked against the baseline's (the same model, scikit-learn's own
predictions) before anything is timed.
"""
from __future__ import annotations

import statistics
import time
from pathlib import Path

import payloads

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("serve", "baseline")

IRIS_MODELS = ("decision_tree", "random_forest", "extra_trees", "gradient_boosting", "linear",
               "knn", "sklearn.dummy.DummyClassifier")
CHURN_MODELS = ("decision_tree", "random_forest", "extra_trees", "linear", "knn")
ENSEMBLES = ("random_forest", "extra_trees", "gradient_boosting")
BIG_ROWS = 100_000


def iris_csv() -> tuple[str, list[list[str]]]:
    """iris as train reads it (label first, no header), and its feature rows as text."""
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    lines = [",".join([str(int(label))] + [f"{v:g}" for v in row]) for row, label in zip(X, y)]
    return "\n".join(lines) + "\n", [[f"{v:g}" for v in row] for row in X]


def short(model: str) -> str:
    return "dummy" if model.endswith("DummyClassifier") else model


# A smoke run: one of each kind of case.
SMOKE_IRIS_MODELS = ("decision_tree", "random_forest", "sklearn.dummy.DummyClassifier")


def train_all(work: Path, log, smoke: bool = False) -> list[dict]:
    from scripts.harness import DATA, run_stage, training_tree

    text, iris_rows = iris_csv()
    _, churn_rows = payloads.churn_table()
    jobs = []
    for model in SMOKE_IRIS_MODELS if smoke else IRIS_MODELS:
        base = work / f"iris-{short(model)}"
        training_tree(base, {"train": {"iris.csv": text}}, {"model": model})
        jobs.append({"data": "iris", "model": short(model), "base": base, "rows": iris_rows})
    for model in () if smoke else CHURN_MODELS:
        base = work / f"churn-{model}"
        training_tree(base, {"train": [DATA]},
                      {"target": payloads.CHURN_TARGET, "model": model})
        jobs.append({"data": "churn", "model": model, "base": base, "rows": churn_rows})
    for job in jobs:
        started = time.perf_counter()
        result = run_stage("train", job["base"], timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"train failed for {job['model']} on {job['data']} "
                               f"({result.returncode}):\n{result.stderr[-2000:]}")
        log(f"trained {job['model']} on {job['data']} in {time.perf_counter() - started:.1f} s")
    return jobs


def kinds_of(base: Path) -> list[str]:
    import json

    metadata = json.loads((base / "model" / "metadata.json").read_text())
    return [f["kind"] for f in metadata["features"]]


def measure(bench, servers: dict, job: dict, payload, *, connections: int,
            kinds=KINDS, method: str = "POST") -> dict:
    where = f"{payload.label} on {job['model']} ({job['data']}), {connections} connection(s)"
    record = {"data": job["data"], "model": job["model"], "case": payload.name,
              "payload": payload.label, "rows": payload.rows, "connections": connections,
              "method": method}
    if method == "POST":
        record["answers_agree"] = bench.check_answers({k: servers[k] for k in kinds}, payload,
                                                      where)
    samples = bench.alternate_wrk(servers, kinds, payload, where, connections=connections,
                                  path="/ping" if method == "GET" else "/invocations",
                                  method=method)
    for kind in kinds:
        runs = samples[kind]
        record[kind] = {
            "requests_per_s": round(statistics.median(s.rps for s in runs), 1) if runs else None,
            "rows_per_s": round(statistics.median(s.rows_per_s for s in runs), 1)
            if runs else None,
            "p50_ms": round(statistics.median(s.p50_ms for s in runs), 2) if runs else None,
            "p99_ms": round(statistics.median(s.p99_ms for s in runs), 2) if runs else None,
        }
    rates = ", ".join(f"{k} {record[k]['requests_per_s']} req/s p99 {record[k]['p99_ms']} ms"
                      for k in kinds)
    bench_log(bench, f"{where}: {rates}")
    return record


def bench_log(bench, text: str) -> None:
    import sys

    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def run_models(bench, make_server) -> dict:
    """Every case above: {"cases": [...], "targets": [...]}."""
    args, work = bench.args, bench.work / "models"
    work.mkdir(parents=True, exist_ok=True)
    jobs = train_all(work, lambda text: bench_log(bench, text), args.smoke)
    cases = []
    for job in jobs:
        data = payloads.DataSet(job["data"], [], job["rows"])
        kinds = kinds_of(job["base"])
        items = [(data.single_csv(), args.connections), (data.single_json(kinds),
                                                          args.connections)]
        tree_on_iris = job["data"] == "iris" and job["model"] == "decision_tree"
        if tree_on_iris:
            items += [(data.single_csv(), args.workers),
                      (data.multi_rows(BIG_ROWS if not args.smoke else 1000), args.workers)]
        folder = work / "payloads" / f"{job['data']}-{job['model']}"
        folder.mkdir(parents=True, exist_ok=True)
        for payload, _ in items:
            payload.path = payload.write(folder)
        servers = {kind: make_server(kind, job["base"], args.workers, bench.work / "logs")
                   for kind in KINDS}
        for server in servers.values():
            bench.live.append(server)
            server.launch()
            server.wait_ready()
        try:
            for payload, connections in items:
                bench.warm_up(servers, payload)
                cases.append(measure(bench, servers, job, payload, connections=connections))
            if tree_on_iris:
                cases.append(measure(bench, servers, job, items[0][0], kinds=("serve",),
                                     connections=args.connections, method="GET"))
        finally:
            bench.stop_all()
    return {"cases": cases, "targets": targets(cases)}


def _find(cases, data, model, case, connections, method="POST"):
    return next((c for c in cases if c["data"] == data and c["model"] == model
                 and c["case"] == case and c["connections"] == connections
                 and c["method"] == method), None)


def _ratio(a, b):
    return round(a / b, 2) if a and b else None


def targets(cases: list[dict]) -> list[dict]:
    """The issue's targets, each with what was measured and whether it is met."""
    out = []
    connections = max(c["connections"] for c in cases)
    workers = min(c["connections"] for c in cases)
    for c in cases:
        if c["method"] != "POST" or c["rows"] != 1 or c["connections"] != connections \
                or c["model"] in ("knn", "dummy"):
            continue
        need = 5.0 if c["model"] in ENSEMBLES else 3.0
        ratio = _ratio(c["serve"]["requests_per_s"], c["baseline"]["requests_per_s"])
        out.append({"target": f"{c['model']} ({c['data']}), {c['payload']}, {connections} "
                              f"connections: ≥ {need:g}× the baseline",
                    "measured": f"{ratio}×", "met": bool(ratio and ratio >= need)})
    tree = _find(cases, "iris", "decision_tree", "single-csv", connections)
    ping = _find(cases, "iris", "decision_tree", "single-csv", connections, "GET")
    if tree and ping:
        share = _ratio(tree["serve"]["requests_per_s"], ping["serve"]["requests_per_s"])
        out.append({"target": "decision tree (iris), 1 row, CSV: ≥ 60 % of serve's own /ping "
                              "rate", "measured": f"{share * 100:.0f} %" if share else None,
                    "met": bool(share and share >= 0.6)})
        p99 = tree["serve"]["p99_ms"]
        out.append({"target": f"decision tree (iris), 1 row, CSV, {connections} connections: "
                              "serve's p99 ≤ 15 ms", "measured": f"{p99} ms "
                              f"(p50 {tree['serve']['p50_ms']} ms; /ping p99 "
                              f"{ping['serve']['p99_ms']} ms)",
                    "met": bool(p99 is not None and p99 <= 15)})
    calm = _find(cases, "iris", "decision_tree", "single-csv", workers)
    if calm and workers != connections:
        a, b = calm["serve"]["p99_ms"], calm["baseline"]["p99_ms"]
        out.append({"target": f"decision tree (iris), 1 row, CSV, {workers} connections: "
                              "serve's p99 ≤ the baseline's", "measured": f"{a} ms vs {b} ms",
                    "met": bool(a is not None and b is not None and a <= b)})
    big = next((c for c in cases if c["data"] == "iris" and c["rows"] > 1), None)
    if big:
        ratio = _ratio(big["serve"]["rows_per_s"], big["baseline"]["rows_per_s"])
        out.append({"target": f"decision tree (iris), {big['payload']} CSV body: ≥ 1.5× the "
                              "baseline", "measured": f"{ratio}×",
                    "met": bool(ratio and ratio >= 1.5)})
    return out


def markdown(section: dict) -> list[str]:
    lines = ["## Every built-in model (iris and churn)", "",
             "Trained by this image's `train`; serve and the baseline alternated, medians of "
             "the runs.", "",
             "| Data | Model | Request | connections | serve req/s | baseline req/s | ÷ baseline "
             "| serve p50 ms | serve p99 ms | baseline p99 ms | answers agree |",
             "| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for c in section["cases"]:
        s = c["serve"]
        if c["method"] == "GET":  # the server's own ceiling: serve alone
            lines.append(f"| {c['data']} | (serve's own) | GET /ping | {c['connections']} | "
                         f"{s['requests_per_s']} | serve only | serve only | {s['p50_ms']} | "
                         f"{s['p99_ms']} | serve only | no model |")
            continue
        b = c["baseline"]
        lines.append(
            f"| {c['data']} | {c['model']} | {c['payload']} | {c['connections']} | "
            f"{s['requests_per_s']} | {b['requests_per_s']} | "
            f"{_ratio(s['requests_per_s'], b['requests_per_s'])} | {s['p50_ms']} | "
            f"{s['p99_ms']} | {b['p99_ms']} | {'yes' if c['answers_agree'] else '**no**'} |")
    lines += ["", "### Targets", "", "| Target | Measured | Result |", "| --- | --- | --- |"]
    for t in section["targets"]:
        lines.append(f"| {t['target']} | {t['measured']} | {'pass' if t['met'] else '**miss**'} |")
    return lines + [""]
