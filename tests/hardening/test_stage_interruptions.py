"""Stopping train and processing part-way: nothing half-written, a clean stop on
SIGTERM, and a rerun on the same tree that succeeds.

* SIGTERM while a random forest is being fitted (SageMaker's StopTrainingJob;
  SIGKILL follows 120 s later): train exits 143 well within the 120 s with
  "stopped by SIGTERM" in output/failure, and a rerun on the same tree succeeds
  and leaves no stale failure file.
* SIGKILL of train at random moments of a run (reading, fitting, scoring,
  saving; ``HARDENING_KILLS`` runs, default 6): afterwards the model folder
  holds both model.joblib and metadata.json, and they load, or neither.
* SIGKILL of processing prepare at random moments while it writes its splits:
  every output file present is whole (the same bytes a complete run writes).

Files starting with a dot are the stages' temporary names (written, then
renamed); SageMaker does not upload a failed job's model, and the next run
replaces them.  ``pytest -s`` prints the figures.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from sklearn_byoc.common.model_files import load_model
from scripts.harness import ROOT, failure_reason, processing_tree, training_tree

STOP_GRACE = 120  # seconds SageMaker waits between SIGTERM and SIGKILL
KILLS = int(os.environ.get("HARDENING_KILLS", "6"))

pytestmark = pytest.mark.slow


def synthetic_csv(path: Path, rows: int, seed: int = 0) -> Path:
    """A classification data set with a header: label, eight numbers, one category."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(rows, 8))
    kind = rng.choice(np.array(["a", "b", "c", "d"]), size=rows)
    y = np.where(X[:, 0] + X[:, 1] * X[:, 2] + (kind == "a") + rng.normal(0, 0.5, rows) > 0.5,
                 "yes", "no")
    lines = ["label," + ",".join(f"x{i}" for i in range(8)) + ",kind"]
    numbers = np.char.mod("%.5f", X)
    lines += [",".join([y[i], *numbers[i], kind[i]]) for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


class Stage:
    """A stage as a process whose log lines are collected as they come, with times."""

    def __init__(self, stage: str, base: Path, args: list[str] = ()):
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / stage / "main.py"), *args],
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self.started = time.monotonic()
        self.lines: list[tuple[float, str]] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stderr:
            self.lines.append((time.monotonic() - self.started, line))

    def wait_for_line(self, words: str, timeout: float) -> float:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for at, line in self.lines:
                if words in line:
                    return at
            if self.process.poll() is not None:
                break
            time.sleep(0.02)
        raise AssertionError(f"no log line with {words!r}:\n{self.log()[-3000:]}")

    def wait(self, timeout: float) -> int:
        code = self.process.wait(timeout=timeout)
        self.reader.join(timeout=10)
        return code

    def log(self) -> str:
        return "".join(line for _, line in self.lines)


# -- SIGTERM ------------------------------------------------------------------------------
def test_sigterm_while_fitting_stops_train_cleanly_and_a_rerun_succeeds(tmp_path):
    data = synthetic_csv(tmp_path / "data.csv", 20000)
    base = training_tree(tmp_path / "job", {"train": [data]},
                         {"target": "label", "model": "random_forest", "n_estimators": "5000"})
    stage = Stage("train", base)
    stage.wait_for_line("fitting RandomForestClassifier", 120)
    time.sleep(1.5)  # well inside the fit, which takes minutes with 5000 trees
    signalled = time.monotonic()
    stage.process.send_signal(signal.SIGTERM)
    code = stage.wait(STOP_GRACE)
    stopped_in = time.monotonic() - signalled
    print(f"\nSIGTERM while fitting: train exited {code} after {stopped_in:.2f} s")
    assert code == 143, stage.log()[-3000:]
    assert stopped_in < 30
    assert failure_reason(base) == "stopped by SIGTERM\n"
    assert not (base / "model" / "model.joblib").exists()

    # A rerun on the same tree (here with fewer trees) succeeds and clears the reason.
    (base / "input" / "config" / "hyperparameters.json").write_text(json.dumps(
        {"target": "label", "model": "random_forest", "n_estimators": "20"}))
    rerun = Stage("train", base)
    assert rerun.wait(300) == 0, rerun.log()[-3000:]
    assert not (base / "output" / "failure").exists()
    assert load_model(base / "model").metadata.target == "label"


# -- SIGKILL ------------------------------------------------------------------------------
def model_state(model_dir: Path) -> str:
    """'complete', 'empty', or what is wrong."""
    visible = sorted(p.name for p in model_dir.iterdir() if not p.name.startswith(".")) \
        if model_dir.is_dir() else []
    if not visible:
        return "empty"
    if visible != ["metadata.json", "model.joblib"]:
        return f"half-written: {visible}"
    try:
        loaded = load_model(model_dir)
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return f"unloadable: {exc}"
    return "complete" if hasattr(loaded.model, "predict") else "not a model"


def wait_for_save(model_dir: Path, stage: Stage, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stage.process.poll() is None:
        names = {p.name for p in model_dir.iterdir()}
        if "metadata.json" not in names or any(n.startswith(".") for n in names):
            return
        time.sleep(0.001)


def test_sigkill_at_random_moments_leaves_a_complete_model_or_none(tmp_path):
    data = synthetic_csv(tmp_path / "data.csv", 8000)
    base = training_tree(tmp_path / "job", {"train": [data]},
                         {"target": "label", "model": "random_forest", "n_estimators": "120"})
    # A complete run first: its timeline tells how long fitting and saving take.
    reference = Stage("train", base)
    assert reference.wait(300) == 0, reference.log()[-3000:]
    fitting = reference.wait_for_line("fitting RandomForestClassifier", 1)
    fitted = reference.wait_for_line("fitted in", 1)
    done = reference.wait_for_line("wrote the model", 1)
    assert model_state(base / "model") == "complete"

    rng = random.Random(int(os.environ.get("HARDENING_SEED", "0")) or None)
    outcomes, leftovers = [], []
    for i in range(KILLS):
        # Every other kill anywhere from the fit on, the others while the model is
        # scored and saved, which is when the files are written.
        stage = Stage("train", base)
        if i % 2 == 0:
            stage.wait_for_line("fitting RandomForestClassifier", 120)
            delay = rng.uniform(0, done - fitting)
        else:
            # From the moment the old model is removed (or the new one's temporary
            # file appears): the files are being written.
            stage.wait_for_line("fitted in", 120)
            wait_for_save(base / "model", stage)
            delay = rng.uniform(0, 0.06)
        time.sleep(delay)
        stage.process.send_signal(signal.SIGKILL)
        stage.wait(60)
        state = model_state(base / "model")
        hidden = sorted(p.name for p in (base / "model").glob(".*"))
        phase = "fit" if i % 2 == 0 else "save"
        outcomes.append((phase, round(delay, 2), stage.process.returncode, state))
        leftovers += hidden
        assert state in ("complete", "empty"), (delay, state, stage.log()[-2000:])
    print(f"\nSIGKILL of train (fit from {fitting:.1f} s, saved by {done:.1f} s): "
          f"{outcomes}; temporary files left: {leftovers}")

    # The next run on the same tree succeeds whatever the kills left.
    final = Stage("train", base)
    assert final.wait(300) == 0, final.log()[-3000:]
    assert model_state(base / "model") == "complete"
    assert not list((base / "model").glob(".*"))


def wait_for_file(folder: Path, stage: Stage, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and stage.process.poll() is None:
        if folder.is_dir() and any(p.is_file() for p in folder.rglob("*")):
            return
        time.sleep(0.001)


def test_sigkill_of_prepare_leaves_only_whole_output_files(tmp_path):
    raw = synthetic_csv(tmp_path / "raw.csv", 80000, seed=1)
    args = ["prepare", "--target", "label"]
    reference_base = processing_tree(tmp_path / "reference", {"raw.csv": raw})
    reference = Stage("processing", reference_base, args)
    assert reference.wait(300) == 0, reference.log()[-3000:]
    expected = {p.relative_to(reference_base / "processing" / "output"): p.read_bytes()
                for p in (reference_base / "processing" / "output").rglob("*") if p.is_file()}
    # The four splits, the sample payload and problem.json.
    assert len(expected) == 6, sorted(expected)

    rng = random.Random(int(os.environ.get("HARDENING_SEED", "0")) or None)
    outcomes, leftovers = [], []
    for i in range(KILLS):
        base = processing_tree(tmp_path / f"run{i}", {"raw.csv": raw})
        stage = Stage("processing", base, args)
        # From the moment the first output file (or its temporary name) appears:
        # somewhere while the six files are written.
        wait_for_file(base / "processing" / "output", stage)
        time.sleep(rng.uniform(0, 1.5))
        stage.process.send_signal(signal.SIGKILL)
        stage.wait(60)
        output = base / "processing" / "output"
        present = {p.relative_to(output): p.read_bytes() for p in output.rglob("*")
                   if p.is_file() and not p.name.startswith(".")}
        for name, data in present.items():
            assert data == expected.get(name), f"{name} is not whole after SIGKILL"
        outcomes.append(sorted(str(p) for p in present))
        leftovers += [p.name for p in output.rglob(".*")]
    print(f"\nSIGKILL of prepare: whole files present after each kill: {outcomes}; "
          f"temporary files left: {leftovers}")
