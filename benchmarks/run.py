"""Benchmark ``serve`` against the previous ``serve`` and the classic SageMaker predictor,
side by side, in one run.

    make bench                       # or: .venv/bin/python benchmarks/run.py
    .venv/bin/python benchmarks/run.py --smoke --out /tmp/bench   # a quick check
    .venv/bin/python benchmarks/run.py --previous REV --check-previous

Steps (each bounded in time; a full run takes about 25 minutes on 2 cores):

1. check out the previous serve (``--previous``, by default the parent of the
   "Package move" commit) as a detached git worktree in the working folder;
2. train the models with this image's ``train`` stage, each as a process on
   its own /opt/ml-shaped tree: the default model on ``data/churn.csv``, and
   ``model=linear`` on generated all-numeric data;
3. the in-process limit of each payload (no HTTP) for serve and the baseline;
4. cold start of every server, median of a few runs;
5. for each model, ``serve``, the previous ``serve`` and the baseline side by
   side: single-record CSV and JSON and 1,000-row CSV with ``wrk``, a ~6 MB
   CSV with a Python client, alternating the servers; the 413 and
   /execution-parameters checks;
6. fresh servers, both serves with SAGEMAKER_MAX_PAYLOAD_IN_MB=100: ~100 MB
   CSV requests, then the peak memory of every worker;
7. ``results.md`` and ``results.json`` in ``--out`` (default: benchmarks/);
   the worktree is removed. With ``--check-previous`` the exit code is 1 when
   serve falls below 0.95× the previous serve's throughput in any case.

Needs ``wrk`` on PATH (Debian/Ubuntu: ``apt-get install wrk``) and git.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import datetime
import json
import os
import platform
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))

import iris  # noqa: E402
import load  # noqa: E402
import payloads  # noqa: E402
import report  # noqa: E402
from servers import (SINGLE_THREADED, cold_start, http_request, post_raw,  # noqa: E402
                     start_phases, worker_memory)
from servers import server as make_server  # noqa: E402

from scripts.serve_process import ServeProcess  # noqa: E402

# Measured in this order, round after round: this checkout's serve, the
# previous serve (a checkout of --previous), the classic predictor.
SERVERS = ("serve", "previous", "baseline")
IN_PROCESS = ("serve", "baseline")  # the in-process limit is measured for these
BATCH_BUDGET_MB = 100  # SageMaker: MaxConcurrentTransforms x MaxPayloadInMB <= 100
DEFAULT_LIMIT_MB = 6  # serve's default SAGEMAKER_MAX_PAYLOAD_IN_MB
BIG_LIMIT_MB = 100


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def cpu_count() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="Throughput, latency, memory and cold start of serve against the classic "
                    "predictor, side by side.")
    parser.add_argument("--quick", "--smoke", dest="smoke", action="store_true",
                        help="tiny durations and payloads, no 100 MB (checks the tool works)")
    parser.add_argument("--duration", type=float, default=None,
                        help="seconds per measured wrk/client run (default 5; smoke 1)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measured runs per server and case, alternated (default 3; "
                             "smoke 1)")
    parser.add_argument("--workers", type=int, default=cpu_count(),
                        help="worker processes of each server (default: CPU count, "
                             f"{cpu_count()} here)")
    parser.add_argument("--connections", type=int, default=None,
                        help="wrk connections (default 4 per worker)")
    parser.add_argument("--cold-starts", type=int, default=None,
                        help="cold starts per server (default 5; smoke 1)")
    parser.add_argument("--out", type=Path, default=BENCH,
                        help="folder for results.md and results.json (default benchmarks/)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the working folder (models, payloads, server logs)")
    parser.add_argument("--previous", metavar="REV", default=None,
                        help="the commit whose serve runs as the third server, from a "
                             "temporary git worktree (default: the parent of the "
                             "'Package move' commit)")
    parser.add_argument("--check-previous", action="store_true",
                        help=f"exit 1 when serve falls below {report.PREVIOUS_RATIO:g}× the "
                             "previous serve's throughput in any case")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.duration = args.duration or (1.0 if smoke else 5.0)
    args.rounds = args.rounds or (1 if smoke else 3)
    args.connections = args.connections or 4 * args.workers
    args.cold_starts = args.cold_starts or (1 if smoke else 5)
    args.mid_bytes = 300_000 if smoke else 6_000_000  # under 6 MiB, serve's default limit
    args.big_bytes = 1_000_000 if smoke else 100_000_000  # under 100 MiB
    args.numeric_rows = 1000 if smoke else 5000
    args.inprocess_seconds = 0.2 if smoke else 1.5
    args.warmup_requests = 2 if smoke else 5
    if args.workers < 1 or args.connections < 1 or args.duration <= 0 or args.rounds < 1:
        parser.error("--workers, --connections, --duration and --rounds must be positive")
    return args


# -- models ------------------------------------------------------------------------
def train_models(work: Path, args) -> dict:
    from scripts.harness import DATA, run_stage, training_tree

    jobs = {
        "churn": (work / "train-churn", {"train": [DATA]},
                  {"target": payloads.CHURN_TARGET}),
        "numeric": (work / "train-numeric",
                    {"train": {"numeric.csv": payloads.numeric_training_csv(args.numeric_rows)}},
                    {"target": payloads.NUMERIC_TARGET, "model": "linear"}),
    }
    for base, channels, hp in jobs.values():
        training_tree(base, channels, hp)

    def train(key):
        base = jobs[key][0]
        started = time.perf_counter()
        result = run_stage("train", base, timeout=300)
        if result.returncode != 0:
            raise RuntimeError(f"train failed on the {key} data ({result.returncode}):\n"
                               f"{result.stderr[-2000:]}")
        return time.perf_counter() - started

    with concurrent.futures.ThreadPoolExecutor(len(jobs)) as pool:
        took = dict(zip(jobs, pool.map(train, jobs)))
    models = {}
    for key, (base, _, hp) in jobs.items():
        metadata = json.loads((base / "model" / "metadata.json").read_text())
        models[key] = {
            "key": key,
            "base": base,
            "model": metadata.get("model") or hp.get("model", ""),
            "estimator": metadata.get("estimator", ""),
            "features": len(metadata["features"]),
            "kinds": [f["kind"] for f in metadata["features"]],
            "names": [f["name"] for f in metadata["features"]],
            "data": ("data/churn.csv (target churn)" if key == "churn" else
                     f"{args.numeric_rows:,} generated rows (target label)"),
            "train_seconds": round(took[key], 2),
        }
        models[key]["label"] = f"{models[key]['model']} ({key})"
        log(f"trained {models[key]['label']} in {took[key]:.1f} s")
    return models


def build_payloads(models: dict, work: Path, args) -> dict:
    """{model key: [Payload, ...]} in the order they are measured; files written to disk."""
    sets = {"churn": payloads.churn_dataset(), "numeric": payloads.numeric_dataset()}
    out = {}
    for key, model in models.items():
        data = sets[key]
        if data.names != model["names"]:
            raise RuntimeError(f"the {key} model expects features {model['names']}, the "
                               f"payloads hold {data.names}")
        items = [data.single_csv(), data.single_json(model["kinds"]), data.multi_rows(1000),
                 data.multi_bytes(args.mid_bytes, "multi-mid")]
        if key == "churn":
            items.append(data.multi_bytes(args.big_bytes, "multi-big"))
        folder = work / "payloads" / key
        folder.mkdir(parents=True, exist_ok=True)
        for item in items:
            item.path = item.write(folder)
        out[key] = items
    return out


# -- in-process ----------------------------------------------------------------------
def in_process(models: dict, bodies: dict, work: Path, args) -> dict:
    """{impl: {model key: {case: rows/s}}}, each implementation in its own process."""
    spec = {"min_seconds": args.inprocess_seconds, "models": [
        {"key": key, "model_dir": str(model["base"] / "model"),
         "cases": [{"name": p.name, "path": str(p.path), "content_type": p.content_type,
                    "rows": p.rows} for p in bodies[key]]}
        for key, model in models.items()]}
    spec_path = work / "inprocess.json"
    spec_path.write_text(json.dumps(spec))

    def measure(impl: str) -> dict:
        started = time.perf_counter()
        result = subprocess.run(
            [sys.executable, str(BENCH / "inprocess.py"), impl, str(spec_path)],
            env={**os.environ, **SINGLE_THREADED}, cwd=ROOT, capture_output=True, text=True,
            timeout=900)
        if result.returncode != 0:
            raise RuntimeError(f"in-process measurement of {impl} failed:\n"
                               f"{result.stderr[-3000:]}")
        log(f"in-process limit of {impl} measured in {time.perf_counter() - started:.1f} s")
        return json.loads(result.stdout)

    # One at a time, so they do not compete for the cores; a smoke run only
    # checks that the measurement works, and saves the time.
    with concurrent.futures.ThreadPoolExecutor(2 if args.smoke else 1) as pool:
        return dict(zip(IN_PROCESS, pool.map(measure, IN_PROCESS)))


# -- answers -------------------------------------------------------------------------
def predictions(answer: bytes, content_type: str) -> list[str]:
    text = answer.decode("utf-8", "replace")
    if content_type == "application/json":
        return [str(v) for v in json.loads(text)["predictions"]]
    return [line.strip() for line in text.splitlines() if line.strip()]


def compare(answers: dict, content_type: str, rows: int) -> tuple[bool, str]:
    """Whether every server gave serve's predictions, and where one differs."""
    try:
        got = {k: predictions(a, content_type) for k, a in answers.items()}
    except (ValueError, KeyError, TypeError) as exc:
        return False, f"an answer cannot be read ({exc})"
    for kind, values in got.items():
        if len(values) != rows:
            return False, f"{kind} answered {len(values)} predictions for {rows} rows"
    for kind, values in got.items():
        for i, (a, b) in enumerate(zip(got["serve"], values)):
            if a != b:
                return False, f"row {i + 1}: serve {a!r}, {kind} {b!r}"
    return True, ""


# -- measuring -------------------------------------------------------------------------
def aggregate(samples: list[load.Sample]) -> dict:
    if not samples:
        return {"requests_per_s": None, "rows_per_s": None, "p50_ms": None, "p99_ms": None,
                "errors": 0, "runs": []}
    requests = sum(s.requests for s in samples)
    secs = sum(s.seconds for s in samples)
    rps = requests / secs if secs else None
    good = requests > 0
    return {
        "requests_per_s": round(rps, 2) if good else None,
        "rows_per_s": round(rps * samples[0].rows, 1) if good else None,
        "p50_ms": round(statistics.median(s.p50_ms for s in samples), 2) if good else None,
        "p99_ms": round(statistics.median(s.p99_ms for s in samples), 2) if good else None,
        "requests": requests,
        "errors": sum(s.errors for s in samples),
        "runs": [s.to_json() for s in samples],
    }


class Bench:
    def __init__(self, args, work: Path, previous: Path | None = None):
        self.args = args
        self.work = work
        self.previous = previous  # the checkout whose serve/main.py is "previous"
        self.problems: list[str] = []
        self.live: list[ServeProcess] = []

    def problem(self, text: str) -> None:
        log("PROBLEM: " + text)
        self.problems.append(text)

    def launch_servers(self, model: dict, *, serve_limit_mb: int | None = None,
                       one_by_one: bool = True) -> dict:
        """Every server on ``model``: started one after the other (waiting for each, so
        each start is a clean cold start), or only launched. ``serve_limit_mb`` is
        both serves' SAGEMAKER_MAX_PAYLOAD_IN_MB."""
        servers = {kind: make_server(kind, model["base"], self.args.workers, self.work / "logs",
                                     max_payload_mb=None if kind == "baseline" else
                                     serve_limit_mb, previous=self.previous)
                   for kind in SERVERS}
        for server in servers.values():
            self.live.append(server)
            server.launch()
            if one_by_one:
                server.wait_ready()
        return servers

    @staticmethod
    def wait_ready(servers: dict) -> dict:
        for kind, server in servers.items():
            if server.started_in is None:
                server.wait_ready()
            log(f"{kind} up on port {server.port} in {server.started_in:.2f} s")
        return servers

    def stop_all(self) -> None:
        servers, self.live = self.live, []
        # Signal every server first, so their shutdowns overlap.
        for server in servers:
            server.send_signal(signal.SIGINT)
        for server in servers:
            server.stop(timeout=15, quick=True)

    def warm_up(self, servers: dict, payload) -> None:
        for server in servers.values():
            load.run_client(server.port, payload.body, payload.content_type, payload.rows,
                            concurrency=self.args.connections,
                            requests_per_thread=self.args.warmup_requests, timeout=60)

    def check_answers(self, servers: dict, payload, where: str) -> bool:
        answers = {}
        for kind, server in servers.items():
            try:
                status, answer = load.post(server.port, payload.body, payload.content_type, 120)
            except OSError as exc:
                self.problem(f"{kind}, {where}: no answer ({exc})")
                return False
            if status != 200:
                self.problem(f"{kind}, {where}: HTTP {status}: {answer[:300]!r}")
                return False
            answers[kind] = answer
        return self.compare_answers(answers, payload, where)

    def compare_answers(self, answers: dict, payload, where: str) -> bool:
        same, detail = compare(answers, payload.content_type, payload.rows)
        if not same:
            self.problem(f"{where}: the servers' answers differ: {detail}")
        return same

    def case_record(self, model: dict, payload, client: str) -> dict:
        return {"model": model["key"], "model_label": model["label"], "case": payload.name,
                "kind": "single" if payload.rows == 1 else "multi", "payload": payload.label,
                "content_type": payload.content_type, "bytes": len(payload.body),
                "rows": payload.rows, "client": client}

    def wrk_case(self, servers: dict, model: dict, payload) -> dict:
        where = f"{payload.label} on {model['label']}"
        record = self.case_record(model, payload, "wrk")
        record["answers_agree"] = self.check_answers(servers, payload, where)
        self.warm_up(servers, payload)
        samples = self.alternate_wrk(servers, SERVERS, payload, where,
                                     connections=self.args.connections)
        for kind in SERVERS:
            record[kind] = aggregate(samples[kind])
        log_rates(where, record)
        return record

    def alternate_wrk(self, servers: dict, kinds, payload, where: str, *, connections: int,
                      path: str = "/invocations", method: str = "POST") -> dict:
        """wrk on each server in turn, round after round: {kind: [Sample, ...]}."""
        samples = {kind: [] for kind in kinds}
        for _ in range(self.args.rounds):
            for kind in kinds:
                try:
                    sample = load.run_wrk(servers[kind].url, payload.path, payload.content_type,
                                          duration=self.args.duration, connections=connections,
                                          rows=payload.rows, script_dir=self.work, path=path,
                                          method=method)
                except load.WrkError as exc:
                    self.problem(f"{kind}, {where}: {exc}")
                    continue
                if sample.errors:
                    self.problem(f"{kind}, {where}: {sample.errors} failed request(s) "
                                 f"({sample.error_detail})")
                samples[kind].append(sample)
        return samples

    def client_case(self, servers: dict, model: dict, payload, *, per_thread: int | None,
                    timeout: float, rounds: int | None = None) -> dict:
        """Large payloads: one request in flight per worker, alternating the servers."""
        where = f"{payload.label} on {model['label']}"
        record = self.case_record(model, payload, "python")
        samples = {kind: [] for kind in SERVERS}
        first = {}
        for _ in range(rounds or self.args.rounds):
            for kind in SERVERS:
                sample = load.run_client(
                    servers[kind].port, payload.body, payload.content_type, payload.rows,
                    concurrency=self.args.workers, duration=self.args.duration,
                    requests_per_thread=per_thread, timeout=timeout, keep_first=kind not in first)
                if sample.errors:
                    self.problem(f"{kind}, {where}: {sample.errors} failed request(s) "
                                 f"({sample.error_detail})")
                if sample.first_answer is not None:
                    first[kind] = sample.first_answer
                    sample.first_answer = None
                samples[kind].append(sample)
        if len(first) == len(SERVERS):
            record["answers_agree"] = self.compare_answers(first, payload, where)
        else:
            record["answers_agree"] = False
        for kind in SERVERS:
            record[kind] = aggregate(samples[kind])
            record[kind]["requests_ok"] = sum(s.requests for s in samples[kind])
            record[kind]["requests_sent"] = sum(s.requests + s.errors for s in samples[kind])
        log_rates(where, record)
        return record

    # -- checks ---------------------------------------------------------------------
    def oversize_check(self, serve: ServeProcess, payload, limit_mb: int) -> dict:
        size = limit_mb * 1024 * 1024 + 1024 * 1024
        body, _ = payloads.repeat_to_size(payload.body, size)
        name = f"payload above the limit ({payloads.human_size(len(body))}) gets 413 naming " \
               "the limit"
        try:
            status, answer, sent_all = post_raw(serve.port, body, "text/csv", timeout=60)
            text = answer.decode("utf-8", "replace").strip() if status else \
                f"no HTTP answer ({answer[:100]!r})"
        except OSError as exc:
            status, text, sent_all = None, f"no answer: {type(exc).__name__}: {exc}", False
        names_limit = re.search(rf"(?<![\d.]){limit_mb}\s*MB", text) is not None
        return {"name": name, "configured": f"SAGEMAKER_MAX_PAYLOAD_IN_MB unset "
                                            f"(default {limit_mb})",
                "expected": f"413, body names {limit_mb} MB",
                "got": f"{status}: {text[:160]}", "status": status, "body": text[:1000],
                "answered_before_whole_body": not sent_all,
                "ok": status == 413 and names_limit}

    def execution_parameters_check(self, serve: ServeProcess, limit_mb: int,
                                   configured: str) -> dict:
        workers = self.args.workers
        expected = {"MaxConcurrentTransforms": workers,
                    "MaxPayloadInMB": min(limit_mb, max(1, BATCH_BUDGET_MB // workers))}
        try:
            status, answer = http_request(serve.port, "GET", "/execution-parameters")
            got = json.loads(answer) if status == 200 else None
        except (OSError, ValueError) as exc:
            status, got = None, None
            answer = str(exc).encode()
        ok = isinstance(got, dict) and all(got.get(k) == v for k, v in expected.items())
        note = "" if expected["MaxPayloadInMB"] == limit_mb else \
            f" ({limit_mb} MB capped: MaxConcurrentTransforms × MaxPayloadInMB ≤ 100)"
        return {"name": f"/execution-parameters, limit {limit_mb} MB",
                "configured": f"{workers} workers, {configured}",
                "expected": json.dumps(expected) + note,
                "got": json.dumps(got) if got is not None else
                f"HTTP {status}: {answer[:160]!r}",
                "ok": ok}


def log_rates(where: str, record: dict) -> None:
    log(f"{where}: " + "; ".join(f"{kind} {rate_text(record[kind])}" for kind in SERVERS))


def rate_text(agg: dict) -> str:
    if agg["rows_per_s"] is None:
        return "failed"
    return (f"{agg['requests_per_s']:.1f} req/s, {agg['rows_per_s']:.0f} rows/s, "
            f"p50 {agg['p50_ms']:.1f} ms, p99 {agg['p99_ms']:.1f} ms")


def finish_case(case: dict, inproc: dict, workers: int) -> dict:
    """Ratios of serve to the baseline ("ratio") and to the previous serve
    ("previous_ratio"), and the share of the in-process limit."""
    s = case["serve"]
    for key, other in (("ratio", case["baseline"]), ("previous_ratio", case["previous"])):
        case[key] = {metric: ratio_of(s[metric], other[metric])
                     for metric in ("requests_per_s", "rows_per_s", "p50_ms", "p99_ms")}
    case["inprocess"] = {kind: round(inproc[kind][case["model"]][case["case"]]["rows_per_s"], 1)
                         for kind in IN_PROCESS}
    case["efficiency"] = {
        kind: ratio_of(case[kind]["rows_per_s"], case["inprocess"][kind] * workers, 3)
        for kind in IN_PROCESS}
    return case


def ratio_of(a, b, digits: int = 2):
    if a is None or b is None or b == 0:
        return None
    return round(a / b, digits)


def machine() -> dict:
    cpu_model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory_gb = int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return {"cpus": cpu_count(), "cpu_model": cpu_model, "memory_gb": round(memory_gb, 1)}


def commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--",
                                "sklearn_byoc", "serve"], cwd=ROOT, capture_output=True, text=True,
                               timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (head or "unknown") + (" + uncommitted changes to the serving code" if dirty else "")


def git(*args: str, cwd: Path = ROOT) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120)
    if result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def previous_revision(rev: str | None) -> str:
    """The full hash of ``rev``, or by default of the commit before the package move
    (the serve this change set out from)."""
    if rev is None:
        moved = git("log", "--format=%H", "--grep=^Package move", "-n1")
        if not moved:
            raise RuntimeError("no 'Package move' commit in this branch's history: name the "
                               "previous serve's commit with --previous REV")
        rev = moved + "^"
    try:
        return git("rev-parse", "--verify", "--quiet", rev + "^{commit}")
    except RuntimeError:
        raise RuntimeError(f"{rev!r} names no commit of this repository") from None


@contextlib.contextmanager
def previous_checkout(rev: str, parent: Path):
    """A detached git worktree of ``rev`` under ``parent``, removed on the way out."""
    folder = parent / "previous"
    git("worktree", "add", "--detach", "--quiet", str(folder), rev)
    try:
        if not (folder / "serve" / "main.py").is_file():
            raise RuntimeError(f"{rev} has no serve/main.py")
        yield folder
    finally:
        try:
            git("worktree", "remove", "--force", str(folder))
        except RuntimeError as exc:
            log(f"{exc}; removing the folder and pruning the worktree list")
            shutil.rmtree(folder, ignore_errors=True)
            git("worktree", "prune")


def previous_info(folder: Path | None) -> dict | None:
    if folder is None:
        return None
    commit, subject = git("log", "-1", "--format=%H%x00%s", cwd=folder).split("\0", 1)
    return {"commit": commit, "short": commit[:7], "subject": subject}


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("scikit-learn", "pandas", "numpy", "flask", "gunicorn"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "missing"
    return out


# -- the run ---------------------------------------------------------------------------
def run(args, work: Path, bench: Bench) -> dict:
    started = time.perf_counter()
    (work / "logs").mkdir(parents=True, exist_ok=True)
    results = {"meta": {
        "command": shlex.join(["python", "benchmarks/run.py", *sys.argv[1:]]),
        "argv": sys.argv[1:],
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        **machine(), "python": platform.python_version(), "versions": versions(),
        "commit": commit(), "wrk": load.wrk_version(), "smoke": args.smoke,
        "workers": args.workers, "connections": args.connections,
        "duration_s": args.duration, "rounds": args.rounds,
        "previous": previous_info(bench.previous),
    }}

    log("training the models with the train stage")
    models = train_models(work, args)
    results["models"] = {k: {key: v for key, v in m.items() if key not in ("base", "kinds",
                                                                          "names")}
                         for k, m in models.items()}
    bodies = build_payloads(models, work, args)

    log("measuring the in-process limit")
    inproc = in_process(models, bodies, work, args)
    results["inprocess"] = inproc

    # Cold starts: every start of the churn servers made one after the other on
    # an otherwise idle machine counts; extra starts make up --cold-starts.
    cold = {kind: [] for kind in SERVERS}
    phases = []  # serve's start, phase by phase (servers.START_PHASES)

    def record_cold(servers: dict) -> None:
        for kind, server in servers.items():
            cold[kind].append(round(server.started_in, 3))
        phases.append(start_phases(servers["serve"]))

    cases, checks = [], []
    # One model at a time; a smoke run starts the servers of both models at once.
    groups = [list(models)] if args.smoke else [[key] for key in models]
    for group in groups:
        pairs = {}
        try:
            for key in group:
                log(f"model {models[key]['label']}: starting the servers")
                pairs[key] = bench.launch_servers(models[key],
                                                  one_by_one=key == "churn" and not args.smoke)
            for key in group:
                bench.wait_ready(pairs[key])
            if "churn" in pairs:
                record_cold(pairs["churn"])
            for key in group:
                model, servers = models[key], pairs[key]
                if key == "churn":
                    checks.append(bench.execution_parameters_check(
                        servers["serve"], DEFAULT_LIMIT_MB, "SAGEMAKER_MAX_PAYLOAD_IN_MB unset"))
                    checks.append(bench.oversize_check(servers["serve"], bodies[key][2],
                                                       DEFAULT_LIMIT_MB))
                for payload in bodies[key]:
                    if payload.name in ("single-csv", "single-json", "multi-1000"):
                        cases.append(bench.wrk_case(servers, model, payload))
                    elif payload.name == "multi-mid":
                        cases.append(bench.client_case(servers, model, payload,
                                                       per_thread=None, timeout=120))
        finally:
            bench.stop_all()

    log(f"largest payload: fresh servers, both serves with "
        f"SAGEMAKER_MAX_PAYLOAD_IN_MB={BIG_LIMIT_MB}")
    model = models["churn"]
    big = next(p for p in bodies["churn"] if p.name == "multi-big")
    one_by_one = args.cold_starts > 1 and not args.smoke
    try:
        servers = bench.wait_ready(bench.launch_servers(model, serve_limit_mb=BIG_LIMIT_MB,
                                                        one_by_one=one_by_one))
        if one_by_one:
            record_cold(servers)
        checks.append(bench.execution_parameters_check(
            servers["serve"], BIG_LIMIT_MB, f"SAGEMAKER_MAX_PAYLOAD_IN_MB={BIG_LIMIT_MB}"))
        bench.warm_up(servers, bodies["churn"][2])
        idle = {kind: worker_memory(servers[kind]) for kind in SERVERS}
        # One request per worker and server: each takes seconds, and the
        # workers' peak memory needs no more.
        case = bench.client_case(servers, model, big, per_thread=1, timeout=300, rounds=1)
        peak = {kind: worker_memory(servers[kind]) for kind in SERVERS}
    finally:
        bench.stop_all()
    cases.append(case)
    memory = {"payload_bytes": len(big.body), "rows": big.rows, "max_payload_mb": BIG_LIMIT_MB}
    for kind in SERVERS:
        workers = peak[kind]
        if len(workers) != args.workers:
            bench.problem(f"{kind}: found {len(workers)} worker(s) after the largest payload, "
                          f"expected {args.workers} (a worker restarted or died?)")
        before = {w["pid"]: w for w in idle[kind]}
        for worker in workers:
            was = before.get(worker["pid"], {})
            worker["peak_before_bytes"] = was.get("peak_bytes", 0)
            worker["cpu_seconds"] = round(worker["cpu_seconds"] - was.get("cpu_seconds", 0), 2)
        total_cpu = sum(w["cpu_seconds"] for w in workers)
        idle_workers = [w["pid"] for w in workers if w["cpu_seconds"] < 0.1 * total_cpu]
        if idle_workers and case[kind]["requests_ok"] >= len(workers):
            bench.problem(
                f"{kind}: {len(idle_workers)} of {len(workers)} worker(s) took none of the "
                f"{case[kind]['requests_ok']} concurrent {big.label} requests (CPU seconds per "
                f"worker: {', '.join(str(w['cpu_seconds']) for w in workers)}): the requests "
                "were not spread across the workers")
        memory[kind] = {
            "workers": workers,
            "peak_bytes_max": max((w["peak_bytes"] for w in workers), default=0),
            "idle_rss_bytes_max": max((w["rss_bytes"] for w in idle[kind]), default=0),
        }
        memory[f"{kind}_requests"] = case[kind]["requests_sent"]
        memory[f"{kind}_ok_requests"] = case[kind]["requests_ok"]
    memory["accepted"] = (case["serve"]["requests_ok"] == case["serve"]["requests_sent"] > 0)
    results["memory"] = memory

    log("every built-in model on iris and churn: serve and the baseline")
    results["every_model"] = iris.run_models(bench, make_server)

    while len(cold["serve"]) < args.cold_starts:
        log("one more cold start of each server")
        for kind in SERVERS:
            seconds, split = cold_start(kind, model["base"], args.workers, work / "logs",
                                        bench.previous)
            cold[kind].append(round(seconds, 3))
            if kind == "serve":
                phases.append(split)
    results["cold_start"] = {kind: {"median_s": round(statistics.median(v), 3), "runs_s": v}
                             for kind, v in cold.items()}
    if phases and None not in phases:
        results["cold_start"]["serve"]["phases_median_s"] = {
            name: round(statistics.median(split[name] for split in phases), 3)
            for name in phases[0]}
    else:
        bench.problem("serve's start-up lines were not found in its log: no phases of "
                      "its cold start")
    log("cold start: " + "; ".join(f"{kind} {cold[kind]}" for kind in SERVERS))

    results["cases"] = [finish_case(c, inproc, args.workers) for c in cases]
    agree = [c for c in cases if not c["answers_agree"]]
    checks.append({"name": "serve, previous and baseline give the same predictions",
                   "configured": "every payload above", "expected": f"{len(cases)} of "
                   f"{len(cases)} payloads", "got": f"{len(cases) - len(agree)} of {len(cases)}",
                   "ok": not agree})
    results["checks"] = checks
    results["problems"] = bench.problems
    results["meta"]["wall_seconds"] = round(time.perf_counter() - started, 1)
    return results


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not load.wrk_path():
        print("benchmarks/run.py needs wrk (https://github.com/wg/wrk) on PATH; on Debian or "
              "Ubuntu: apt-get install wrk", file=sys.stderr)
        return 2

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        previous = previous_revision(args.previous)
    except RuntimeError as exc:
        print(f"benchmarks/run.py: {exc}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-"))
    wall = time.perf_counter()
    try:
        with previous_checkout(previous, work) as folder:
            log(f"previous serve: {previous[:7]}, checked out in {folder}")
            bench = Bench(args, work, folder)
            try:
                results = run(args, work, bench)
            finally:
                bench.stop_all()
        md_path, json_path = report.write(results, args.out)
    finally:
        if args.keep:
            log(f"working folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print(md_path.read_text())
    log(f"wrote {md_path} and {json_path} in {time.perf_counter() - wall:.0f} s")
    below = report.below_previous(results)
    if below:
        log(f"serve below {report.PREVIOUS_RATIO:g}× the previous serve: " + "; ".join(below))
        if args.check_previous:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
