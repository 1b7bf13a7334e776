"""The in-process limit: parse + predict + format in one process, no HTTP.

How fast one worker could go if the server cost nothing:

- ``serve``: ``sklearn_byoc.serve.invocation.invoke``, the function the server's
  route calls (decode → predict → encode, large CSV bodies block by block),
  imported from this repository;
- ``baseline``: the baseline server's own functions (``read_csv`` →
  ``predict`` → ``to_csv``, or the JSON analog).

Run by ``run.py`` in a fresh process, single-threaded like a server worker:

    python benchmarks/inprocess.py IMPL SPEC.json

SPEC holds ``{"min_seconds": s, "models": [{"key", "model_dir", "cases":
[{"name", "path", "content_type", "rows"}]}]}``; the answer, on stdout, is
``{model key: {case name: {"rows_per_s", "calls", "seconds"}}}``.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WARM_UP_BELOW = 1_000_000  # bytes: smaller payloads get an untimed first call


def serve_runner(model_dir: Path):
    sys.path.insert(0, str(ROOT))
    from sklearn_byoc.serve.invocation import Body, ModelService, invoke
    from sklearn_byoc.serve.media import RequestContext

    service = ModelService(model_dir)

    def run(body: bytes, content_type: str) -> bytes:
        context = RequestContext(content_type=content_type, accept=content_type)
        return invoke(service, Body.of(body), context).body

    return run


def baseline_runner(model_dir: Path):
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import baseline_server

    model, names = baseline_server.load(model_dir)

    def run(body: bytes, content_type: str) -> str:
        if content_type == "application/json":
            return baseline_server.predict_json(model, names, body)
        return baseline_server.predict_csv(model, names, body)

    return run


def measure(run, body: bytes, content_type: str, rows: int, min_seconds: float) -> dict:
    if len(body) < WARM_UP_BELOW:
        run(body, content_type)
    calls = 0
    started = time.perf_counter()
    while True:
        run(body, content_type)
        calls += 1
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            break
    return {"rows_per_s": rows * calls / elapsed, "calls": calls, "seconds": round(elapsed, 3)}


def main(argv: list[str]) -> int:
    impl, spec_path = argv
    spec = json.loads(Path(spec_path).read_text())
    make = {"serve": serve_runner, "baseline": baseline_runner}[impl]
    results = {}
    for model in spec["models"]:
        run = make(Path(model["model_dir"]))
        results[model["key"]] = {}
        for case in model["cases"]:
            body = Path(case["path"]).read_bytes()
            results[model["key"]][case["name"]] = measure(
                run, body, case["content_type"], case["rows"], spec["min_seconds"])
            del body
    json.dump(results, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
