"""Helpers shared by the hosting-mode contract tests (not a test module).

* models whose ``code/inference.py`` sleeps (the request body is the number of
  seconds) or answers with the id of the worker process that served it;
* several train-stage jobs run side by side;
* small statistics for the latency figures the tests print.
"""
from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from scripts.harness import ROOT, training_tree

# SageMaker's framework-container convention: code/inference.py inside the
# model folder, found without SAGEMAKER_PROGRAM (sklearn_byoc/serve/user_code.py).
SLOW_INFERENCE = '''\
"""Test model: the first CSV cell is how many seconds to sleep before answering."""
import os
import time


def input_fn(body, content_type):
    # A str for text/csv, as AWS's images pass it.
    return float(body.strip().split(",")[0] or 0)


def predict_fn(seconds, model):
    time.sleep(seconds)
    return [[seconds, os.getpid()]]
'''

# Answers with the worker's process id (which worker served the request) and
# whether scikit-learn was already imported when that worker loaded the model.
PID_INFERENCE = '''\
"""Test model: answers with the id of the worker process that served the request."""
import os
import sys

SKLEARN_WAS_IMPORTED = "sklearn.pipeline" in sys.modules


def predict_fn(data, model):
    return [[os.getpid(), int(SKLEARN_WAS_IMPORTED)]]
'''


def add_inference_code(model_dir: Path, source: str) -> Path:
    code = model_dir / "code"
    code.mkdir(parents=True, exist_ok=True)
    (code / "inference.py").write_text(source)
    return model_dir


def slow_model(trained_model: Path, target: Path) -> Path:
    """An endpoint tree whose model sleeps for as long as each request asks."""
    shutil.copytree(trained_model / "model", target / "model")
    add_inference_code(target / "model", SLOW_INFERENCE)
    return target


def wait_for(predicate, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def summary_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"n={len(ms)} median={percentile(ms, 50):.1f} ms p99={percentile(ms, 99):.1f} ms "
            f"max={max(ms):.1f} ms")


def train_many(base: Path, jobs: dict[str, tuple[str, dict]], parallel: int = 3) -> dict:
    """Run the train stage once per job ({name: (csv text, hyperparameters)}), a few at
    a time; returns {name: model folder}."""
    pending = list(jobs.items())
    running: list[tuple[str, Path, subprocess.Popen]] = []
    done = {}

    def finish(name, tree, process):
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, f"training {name} failed:\n{stderr}"
        done[name] = tree / "model"

    while pending or running:
        while pending and len(running) < parallel:
            name, (text, hyperparameters) = pending.pop(0)
            tree = training_tree(base / name, {"train": {"train.csv": text}}, hyperparameters)
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "train" / "main.py")],
                env={**os.environ, "SAGEMAKER_BASE_DIR": str(tree)},
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            running.append((name, tree, process))
        name, tree, process = running.pop(0)
        finish(name, tree, process)
    return done
