"""Targets, and the results as Markdown and JSON.

``run.py`` collects one dictionary (see ``results.json``); this module judges
it against the targets and renders it.  Every number in the Markdown comes
from that dictionary.
"""
from __future__ import annotations

import json
from pathlib import Path

SINGLE_RATIO = 3.0  # serve requests/s ÷ baseline requests/s, single-record
MULTI_RATIO = 1.5  # serve rows/s ÷ baseline rows/s, MultiRecord
EFFICIENCY = 0.8  # serve rows/s ÷ (in-process rows/s × workers), MultiRecord
MEMORY_FACTOR = 3.0  # peak memory per worker ÷ payload size
COLD_START_S = 2.0
PREVIOUS_RATIO = 0.95  # serve throughput ÷ the previous serve's, every case

SERVERS = ("serve", "previous", "baseline")


# -- formatting ------------------------------------------------------------------
def rate(value: float | None) -> str:
    if value is None:
        return "error"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.0f}"
    return f"{value:.2f}"


def ms(value: float | None) -> str:
    if value is None:
        return "error"
    return f"{value:.0f}" if value >= 100 else f"{value:.1f}" if value >= 1 else f"{value:.2f}"


def ratio(value: float | None) -> str:
    return "error" if value is None else f"{value:.2f}×"


def mb(value_bytes: float | None) -> str:
    return "error" if value_bytes is None else f"{value_bytes / 1e6:,.0f} MB" \
        if value_bytes >= 10e6 else f"{value_bytes / 1e6:.1f} MB"


def seconds(value: float | None) -> str:
    return "error" if value is None else f"{value:.2f} s"


def verdict(ok: bool | None) -> str:
    return "error" if ok is None else "**pass**" if ok else "**miss**"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "| " + " | ".join("---" if i == 0 else "---:" for i in range(len(header))) + " |"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def safe_div(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b == 0:
        return None
    return a / b


# -- targets ---------------------------------------------------------------------
def throughput_key(case: dict) -> str:
    return "requests_per_s" if case["kind"] == "single" else "rows_per_s"


def previous_ok(case: dict) -> bool | None:
    """Whether serve keeps at least PREVIOUS_RATIO of the previous serve's throughput."""
    r = case["previous_ratio"][throughput_key(case)]
    return None if r is None else r >= PREVIOUS_RATIO


def below_previous(results: dict) -> list[str]:
    """The cases where serve falls below PREVIOUS_RATIO × the previous serve (or one of
    them has no figure), as "payload on model: ratio"."""
    return [f"{case['payload']} on {case['model_label']}: "
            f"{ratio(case['previous_ratio'][throughput_key(case)])}"
            for case in results["cases"] if not previous_ok(case)]


def targets(results: dict) -> list[dict]:
    """Every target of the issue, with what was measured and pass or miss."""
    out = []
    workers = results["meta"]["workers"]
    for case in results["cases"]:
        s, b = case["serve"], case["baseline"]
        where = f"{case['payload']} on {case['model_label']}"
        out.append({"target": f"{where}: ≥{PREVIOUS_RATIO:g}× the previous serve's "
                              + ("requests/s" if case["kind"] == "single" else "rows/s"),
                    "measured": ratio(case["previous_ratio"][throughput_key(case)]),
                    "ok": previous_ok(case)})
        if case["kind"] == "single":
            r = case["ratio"]["requests_per_s"]
            ok = None if r is None or s["p99_ms"] is None or b["p99_ms"] is None else \
                r >= SINGLE_RATIO and s["p99_ms"] < b["p99_ms"]
            out.append({
                "target": f"single-record {where}: ≥{SINGLE_RATIO:g}× baseline requests/s, "
                          "lower p99",
                "measured": f"{ratio(r)}; p99 {ms(s['p99_ms'])} vs {ms(b['p99_ms'])} ms",
                "ok": ok})
            continue
        r = case["ratio"]["rows_per_s"]
        out.append({"target": f"MultiRecord {where}: ≥{MULTI_RATIO:g}× baseline rows/s",
                    "measured": ratio(r), "ok": None if r is None else r >= MULTI_RATIO})
        e = case["efficiency"]["serve"]
        out.append({"target": f"MultiRecord {where}: serve ≥{EFFICIENCY:.0%} of in-process "
                              f"limit × {workers} workers",
                    "measured": "error" if e is None else f"{e:.0%}",
                    "ok": None if e is None else e >= EFFICIENCY})
    memory = results.get("memory")
    if memory:
        big = memory["payload_bytes"]
        accepted = memory["accepted"]
        out.append({"target": f"{mb(big)} payload accepted with SAGEMAKER_MAX_PAYLOAD_IN_MB="
                              f"{memory['max_payload_mb']}",
                    "measured": f"{memory['serve_ok_requests']} of "
                                f"{memory['serve_requests']} requests answered 200, "
                                "one line per row",
                    "ok": accepted})
        peak = memory["serve"]["peak_bytes_max"]
        out.append({"target": f"peak memory per worker ≤ {MEMORY_FACTOR:g}× the payload "
                              f"({mb(big)})",
                    "measured": f"{mb(peak)} = {peak / big:.1f}× the payload" if peak else
                                "error",
                    "ok": None if not peak else peak <= MEMORY_FACTOR * big})
    cold = results.get("cold_start", {}).get("serve")
    if cold:
        out.append({"target": f"cold start (start to first 200 on /ping) < {COLD_START_S:g} s",
                    "measured": f"median {seconds(cold['median_s'])} of {len(cold['runs_s'])}",
                    "ok": cold["median_s"] < COLD_START_S})
        baseline = results["cold_start"].get("baseline")
        if baseline:
            out.append({"target": "cold start: serve's median ≤ the baseline's (same run)",
                        "measured": f"{seconds(cold['median_s'])} vs "
                                    f"{seconds(baseline['median_s'])}",
                        "ok": cold["median_s"] <= baseline["median_s"]})
    for check in results.get("checks", []):
        out.append({"target": check["name"], "measured": check["got"], "ok": check["ok"]})
    return out


# -- Markdown ----------------------------------------------------------------------
def markdown(results: dict) -> str:
    meta = results["meta"]
    workers = meta["workers"]
    parts = [
        "# Benchmark results: `serve` against the previous `serve` and the classic predictor",
        "",
        f"`{meta['command']}` on {meta['date']} — {meta['cpus']} CPU(s) ({meta['cpu_model']}), "
        f"{meta['memory_gb']:.0f} GB RAM, Python {meta['python']}, commit "
        f"`{meta['commit']}`; whole run {meta['wall_seconds']:.0f} s.",
        "",
        f"Every server: {workers} worker(s) on 127.0.0.1, the same `model.joblib`, "
        "numerical libraries single-threaded. `serve` is this image's server "
        "(`python serve/main.py serve`); *previous* is the same command run from a git "
        f"worktree of {previous_text(meta.get('previous'))}; "
        "*baseline* is `benchmarks/baseline_server.py`, "
        "a Flask app under gunicorn sync workers doing what the classic SageMaker "
        "scikit_bring_your_own predictor does per request (`read_csv` → `predict` → "
        "`to_csv`). The classic predictor itself only accepts CSV; its JSON rows use the "
        "natural pandas analog (`DataFrame(instances)` → `predict` → `json.dumps`).",
        "",
        f"Small payloads: `{meta['wrk']}` for {meta['duration_s']:g} s per run, "
        f"{meta['connections']} connections, {meta['rounds']} run(s) per server alternated "
        "serve, previous, baseline, serve, previous, baseline…; requests/s over all runs, "
        "latency percentiles the median of the runs. Large payloads: a Python client with "
        f"one request in flight per worker, {meta['duration_s']:g} s per run (the largest: "
        "one request per worker and server). Ratios are serve ÷ previous and serve ÷ "
        "baseline: above 1 is better for throughput, below 1 for latency.",
    ]
    if meta.get("smoke"):
        parts += ["", "**Smoke run** (tiny durations and payloads): the numbers only show "
                      "that the tool works."]
    models = results["models"]
    parts += ["", "Models, each trained by this image's `train` stage:", ""]
    parts += [f"- **{m['label']}**: `{m['estimator']}` on {m['data']}, {m['features']} "
              f"features" for m in models.values()]

    singles = [c for c in results["cases"] if c["kind"] == "single"]
    multis = [c for c in results["cases"] if c["kind"] == "multi"]
    parts += ["", "## Against the previous `serve`", "",
              f"Throughput of serve ÷ the previous serve's, each case: a miss below "
              f"{PREVIOUS_RATIO:g}×.", "",
              table(["Model", "Payload", "measure", "serve", "previous", "serve ÷ previous",
                     "serve p99 ms", "previous p99 ms", "p99 ratio", "Result"],
                    [[c["model_label"], c["payload"],
                      "req/s" if c["kind"] == "single" else "rows/s",
                      rate(c["serve"][throughput_key(c)]),
                      rate(c["previous"][throughput_key(c)]),
                      ratio(c["previous_ratio"][throughput_key(c)]), ms(c["serve"]["p99_ms"]),
                      ms(c["previous"]["p99_ms"]), ratio(c["previous_ratio"]["p99_ms"]),
                      verdict(previous_ok(c))] for c in results["cases"]])]
    parts += ["", "## Single-record requests", "",
              table(["Model", "Request", "serve req/s", "previous req/s", "baseline req/s",
                     "÷ previous", "÷ baseline", "serve p50 ms", "previous p50 ms",
                     "baseline p50 ms", "p50 ÷ baseline", "serve p99 ms", "previous p99 ms",
                     "baseline p99 ms", "p99 ÷ baseline"],
                    [[c["model_label"], c["payload"], rate(c["serve"]["requests_per_s"]),
                      rate(c["previous"]["requests_per_s"]),
                      rate(c["baseline"]["requests_per_s"]),
                      ratio(c["previous_ratio"]["requests_per_s"]),
                      ratio(c["ratio"]["requests_per_s"]),
                      ms(c["serve"]["p50_ms"]), ms(c["previous"]["p50_ms"]),
                      ms(c["baseline"]["p50_ms"]), ratio(c["ratio"]["p50_ms"]),
                      ms(c["serve"]["p99_ms"]), ms(c["previous"]["p99_ms"]),
                      ms(c["baseline"]["p99_ms"]), ratio(c["ratio"]["p99_ms"])]
                     for c in singles])]
    parts += ["", "## MultiRecord CSV (batch transform)", "",
              table(["Model", "Payload", "rows/request", "client", "serve rows/s",
                     "previous rows/s", "baseline rows/s", "÷ previous", "÷ baseline",
                     "serve p50 ms", "previous p50 ms", "baseline p50 ms", "serve p99 ms",
                     "previous p99 ms", "baseline p99 ms"],
                    [[c["model_label"], c["payload"], f"{c['rows']:,}", c["client"],
                      rate(c["serve"]["rows_per_s"]), rate(c["previous"]["rows_per_s"]),
                      rate(c["baseline"]["rows_per_s"]),
                      ratio(c["previous_ratio"]["rows_per_s"]),
                      ratio(c["ratio"]["rows_per_s"]), ms(c["serve"]["p50_ms"]),
                      ms(c["previous"]["p50_ms"]), ms(c["baseline"]["p50_ms"]),
                      ms(c["serve"]["p99_ms"]), ms(c["previous"]["p99_ms"]),
                      ms(c["baseline"]["p99_ms"])] for c in multis])]
    parts += ["", "## Against the in-process limit", "",
              "In-process: parse + predict + format in one process, no HTTP (serve: "
              "`sklearn_byoc.serve.invocation.invoke`: decode → predict → encode; baseline: "
              "`read_csv` → `predict` → `to_csv`). Efficiency = server rows/s ÷ (in-process "
              f"rows/s × {workers} workers): the share of the ideal the server reaches; the "
              "rest is the server's own overhead (and, on a small machine, the load generator "
              "sharing the cores).", "",
              table(["Model", "Payload", "serve in-process rows/s", "serve server rows/s",
                     "serve efficiency", "baseline in-process rows/s",
                     "baseline server rows/s", "baseline efficiency"],
                    [[c["model_label"], c["payload"], rate(c["inprocess"]["serve"]),
                      rate(c["serve"]["rows_per_s"]), percent(c["efficiency"]["serve"]),
                      rate(c["inprocess"]["baseline"]), rate(c["baseline"]["rows_per_s"]),
                      percent(c["efficiency"]["baseline"])] for c in results["cases"]])]
    memory = results.get("memory")
    if memory:
        parts += ["", f"## Memory per worker, largest payload ({mb(memory['payload_bytes'])}, "
                      f"{memory['rows']:,} rows)", "",
                  f"VmHWM (peak resident memory) of each gunicorn worker, read from "
                  f"/proc after {memory['serve_requests']} requests per server; idle = VmRSS "
                  "after warm-up, before the large requests; CPU s = each worker's CPU time "
                  "during them (how the requests were spread). Both serves ran with "
                  f"SAGEMAKER_MAX_PAYLOAD_IN_MB={memory['max_payload_mb']}.", "",
                  table(["Server", "workers", "idle RSS MB (max)", "peak MB (max)",
                         "peak MB per worker", "CPU s per worker", "peak ÷ payload",
                         "answered 200"],
                        [[kind, str(len(memory[kind]["workers"])),
                          f"{memory[kind]['idle_rss_bytes_max'] / 1e6:,.0f}",
                          f"{memory[kind]['peak_bytes_max'] / 1e6:,.0f}",
                          ", ".join(f"{w['peak_bytes'] / 1e6:,.0f}"
                                    for w in memory[kind]["workers"]),
                          ", ".join(f"{w['cpu_seconds']:.1f}"
                                    for w in memory[kind]["workers"]),
                          f"{memory[kind]['peak_bytes_max'] / memory['payload_bytes']:.1f}×",
                          f"{memory[kind + '_ok_requests']} of {memory[kind + '_requests']}"]
                         for kind in SERVERS])]
    cold = results.get("cold_start")
    if cold:
        parts += ["", "## Cold start", "",
                  "From starting the server process to its first 200 on /ping (the baseline "
                  "loads the model in the worker that answers the first /ping).", "",
                  table(["Server", "median", "runs"],
                        [[kind, seconds(cold[kind]["median_s"]),
                          ", ".join(f"{v:.2f}" for v in cold[kind]["runs_s"])]
                         for kind in SERVERS])]
        split = cold["serve"].get("phases_median_s")
        if split:
            parts += ["", "serve's start, phase by phase (medians over the starts, from the "
                      "timestamps of its start-up log lines): *imports* is from the process's "
                      "start to reading the model (the interpreter and every module); "
                      "*request path check* builds the numpy paths and checks them against "
                      "scikit-learn; *first ping* is from the first worker's boot line to "
                      "the first 200.", "",
                      table(list(split) + ["sum", "measured"],
                            [[seconds(v) for v in split.values()] +
                             [seconds(sum(split.values())),
                              seconds(cold["serve"]["median_s"])]])]
    if results.get("checks"):
        parts += ["", "## Checks", "",
                  table(["Check", "Configured", "Expected", "Got", "Result"],
                        [[c["name"], c["configured"], c["expected"], c["got"], verdict(c["ok"])]
                         for c in results["checks"]])]
    parts += ["", "## Targets", "",
              table(["Target", "Measured", "Result"],
                    [[t["target"], t["measured"], verdict(t["ok"])]
                     for t in results["targets"]])]
    if results.get("every_model"):
        import iris

        parts += [""] + iris.markdown(results["every_model"])
    problems = results.get("problems") or []
    parts += ["", "## Problems seen during the run", ""]
    parts += [f"- {p}" for p in problems] if problems else ["None: every request answered as "
                                                           "expected."]
    return "\n".join(parts) + "\n"


def previous_text(previous: dict | None) -> str:
    if not previous:
        return "no previous commit"
    return f"`{previous['short']}` ({previous['subject']})"


def percent(value: float | None) -> str:
    return "error" if value is None else f"{value:.0%}"


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    results["targets"] = targets(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    md_path = out_dir / "results.md"
    json_path = out_dir / "results.json"
    md_path.write_text(markdown(results), encoding="utf-8")
    json_path.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return md_path, json_path
