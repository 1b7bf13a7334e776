"""A smoke run of the benchmark (``benchmarks/run.py --smoke``), so the tool never rots.

Only that the tool works is checked here: every row of the report holds real
numbers.  The numbers themselves are judged in the benchmark's own report,
side by side in one run, never in a timed test.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow

RATES = ("requests_per_s", "rows_per_s", "p50_ms", "p99_ms")
SERVERS = ("serve", "previous", "baseline")
CASES = {("churn", "single-csv"), ("churn", "single-json"), ("churn", "multi-1000"),
         ("churn", "multi-mid"), ("churn", "multi-big"), ("numeric", "single-csv"),
         ("numeric", "single-json"), ("numeric", "multi-1000"), ("numeric", "multi-mid")}
EMPTY = {"", "error", "n/a", "nan", "none", "null", "-", "—"}


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) \
        and math.isfinite(value) and value > 0


def table_rows(markdown: str) -> list[list[str]]:
    """The data rows of every Markdown table (header and rule lines left out)."""
    rows, previous = [], ""
    for line in markdown.splitlines():
        if line.startswith("|") and not re.fullmatch(r"\|( *-+:? *\|)+", line.strip()):
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if previous.startswith("|"):
                rows.append(cells)
        previous = line if line.startswith("|") else ""
    return rows


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    if shutil.which("wrk") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("wrk is not installed; .ci/run installs it with apt-get")
        pytest.skip("wrk is not installed (apt-get install wrk): the benchmark drives the "
                    "servers with it")
    out = tmp_path_factory.mktemp("bench")
    # HEAD as the previous serve: any checkout has it, and the smoke run only shows
    # that a third server from a worktree is started, measured and removed.
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--smoke",
                             "--previous", "HEAD", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    (out / "stderr.txt").write_text(result.stderr)
    return out


def test_markdown_has_every_row_filled(smoke_run):
    text = (smoke_run / "results.md").read_text(encoding="utf-8")
    rows = table_rows(text)
    # 9 against previous, 4 single-record, 5 MultiRecord, 9 in-process, 3 memory,
    # 3 cold start, checks, targets
    assert len(rows) >= 40, text
    for row in rows:
        assert all(cell.lower() not in EMPTY for cell in row), row
        assert any(re.search(r"\d", cell) for cell in row), row


def test_json_holds_real_numbers(smoke_run):
    results = json.loads((smoke_run / "results.json").read_text(encoding="utf-8"))
    cases = {(c["model"], c["case"]): c for c in results["cases"]}
    assert set(cases) == CASES
    for case in cases.values():
        for kind in SERVERS:
            for key in RATES:
                assert positive(case[kind][key]), (case["case"], kind, key, case[kind])
        for kind in ("serve", "baseline"):
            assert positive(case["inprocess"][kind]), case
            assert positive(case["efficiency"][kind]), case
        for key in RATES:
            assert positive(case["ratio"][key]), case
            assert positive(case["previous_ratio"][key]), case
    memory = results["memory"]
    for kind in SERVERS:
        assert memory[kind]["workers"], memory
        assert all(positive(w["peak_bytes"]) for w in memory[kind]["workers"]), memory
        assert positive(results["cold_start"][kind]["median_s"])
    phases = results["cold_start"]["serve"]["phases_median_s"]
    assert list(phases) == ["imports", "model load", "request path check",
                            "app + gunicorn boot", "first ping"], phases
    assert positive(phases["imports"]) and all(v >= 0 for v in phases.values()), phases
    # The phases split one start: their sum cannot exceed the slowest start measured.
    assert sum(phases.values()) <= max(results["cold_start"]["serve"]["runs_s"]) + 0.01, phases
    assert results["checks"] and all(isinstance(c["ok"], bool) for c in results["checks"])
    assert results["targets"] and all(isinstance(t["ok"], bool) for t in results["targets"])
    assert results["meta"]["smoke"] is True and positive(results["meta"]["wall_seconds"])
    every = results["every_model"]
    # A smoke run: three iris models; the tree also at 2 connections, on a big body, /ping.
    measured = {(c["model"], c["case"], c["connections"], c["method"]) for c in every["cases"]}
    assert ("decision_tree", "single-csv", 8, "GET") in measured, measured
    assert {m for m, *_ in measured} == {"decision_tree", "random_forest", "dummy"}
    for case in every["cases"]:
        assert positive(case["serve"]["requests_per_s"]), case
        assert case["method"] == "GET" or (case["answers_agree"] and
                                           positive(case["baseline"]["requests_per_s"])), case
    assert every["targets"] and all(isinstance(t["met"], bool) for t in every["targets"])
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert results["meta"]["previous"]["commit"] == head


def test_the_previous_worktree_is_removed(smoke_run):
    stderr = (smoke_run / "stderr.txt").read_text()
    match = re.search(r"previous serve: \w+, checked out in (\S+)", stderr)
    assert match, stderr[-3000:]
    folder = match.group(1)
    listed = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    assert f"worktree {folder}\n" not in listed, listed
    assert not Path(folder).exists()
