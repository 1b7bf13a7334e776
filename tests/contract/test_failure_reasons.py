"""Training and processing failures that explain themselves, each stage run as a process.

* Out of memory: a worker that allocates past an address-space limit it set with
  ``resource.setrlimit`` (MemoryError), and workers killed with SIGKILL as the
  kernel's out-of-memory killer kills them, with and without SageMaker's SIGTERM
  first.  The stage reads the OOM-kill count from a fake cgroup tree (v1 and v2)
  that the test updates the way the kernel does.
* No space left on the device: a split written to ``/dev/full`` (the kernel's
  own ENOSPC), the metrics written there, and a model whose saving raises
  ``OSError(ENOSPC)``.
* No traceback for an error the user can fix; one for an internal error.
* ``--help`` touches nothing under /opt/ml.
* The log level from ``sagemaker_container_log_level`` / SAGEMAKER_CONTAINER_LOG_LEVEL.

``pytest -s`` prints each failure reason.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fake_cgroups import GiB, count_an_oom_kill, v1_tree, v2_tree
from scripts.harness import DATA, ROOT, failure_reason, processing_tree, run_stage, training_tree

HOG = "tests.fixtures.memory_hog.Hog"
MiB = 2**20


def figure(text: str, unit: str) -> float:
    """The number before ``unit`` ("453.9 MiB") in text, in bytes."""
    match = re.search(r"([0-9.]+) (MiB|GiB)" + re.escape(unit), text)
    assert match, f"no {unit!r} figure in {text!r}"
    return float(match[1]) * (MiB if match[2] == "MiB" else GiB)


def peak(reason: str) -> float:
    return figure(reason.split("at a peak of ", 1)[1], "")


def show(case: str, reason: str) -> None:
    print(f"\n{case}: {reason.strip()}")


# -- a stage whose cgroup files are a fake tree -------------------------------------------------
WRAPPER = """
import sys
from pathlib import Path
sys.path[0] = {root!r}
from sklearn_byoc.common import cgroups
cgroups.SYSTEM_ROOT = Path({fake!r})
from sklearn_byoc.{stage}.cli import run
run(sys.argv[1:])
"""


class Stage:
    """A stage as a process, reading its cgroup from ``fake`` (the kernel's files otherwise)."""

    def __init__(self, stage: str, base: Path, args: list[str] = (), fake: Path | None = None,
                 env: dict | None = None):
        if fake is not None:
            script = base / f"{stage}-with-fake-cgroup.py"
            script.write_text(WRAPPER.format(root=str(ROOT), fake=str(fake), stage=stage))
        else:
            script = ROOT / stage / "main.py"
        self.log_path = base / f"{stage}.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(script), *args],
            env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})},
            stdout=subprocess.DEVNULL, stderr=self._log)

    def worker(self, timeout: float = 60) -> int:
        """The pid of the process the stage started."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pids = children.read_text().split() if children.exists() else []
            if pids:
                return int(pids[0])
            assert self.process.poll() is None, self.log()
            time.sleep(0.01)
        raise AssertionError(f"no worker process after {timeout} s:\n{self.log()}")

    def wait_for_log(self, words: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while words not in self.log():
            assert time.monotonic() < deadline, f"no {words!r} in the log:\n{self.log()}"
            assert self.process.poll() is None, self.log()
            time.sleep(0.02)

    def wait(self, timeout: float = 120) -> int:
        try:
            return self.process.wait(timeout=timeout)
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
            self._log.close()

    def log(self) -> str:
        return self.log_path.read_text()


def wait_for_file(path: Path, stage: Stage, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} never appeared:\n{stage.log()}"
        assert stage.process.poll() is None, stage.log()
        time.sleep(0.02)
    return json.loads(path.read_text())


def hog_tree(base: Path, **hog) -> Path:
    return training_tree(base, {"train": [DATA]}, {"target": "churn", "model": HOG,
                                                   "report": str(base / "hog.json"), **hog})


# -- out of memory ------------------------------------------------------------------------------
def test_memory_error_past_an_rlimit_says_so_with_the_figures(tmp_path):
    base = hog_tree(tmp_path, mode="allocate", headroom_mb="256")
    result = run_stage("train", base, timeout=120)
    reason = failure_reason(base)
    show("MemoryError under RLIMIT_AS", reason)
    assert result.returncode == 2, result.stderr[-2000:]
    limit = json.loads((base / "hog.json").read_text())["limit"]
    assert reason.startswith("ran out of memory: the training could not allocate more memory "
                             "(MemoryError) at a peak of ")
    assert f"of its {limit / MiB:.1f} MiB address-space limit (RLIMIT_AS)" in reason
    # What was resident is part of what was mapped, so at most the limit, and it was
    # more than the 256 MiB that filled up.
    assert 256 * MiB < peak(reason) <= limit
    assert "instance type with more memory" in reason and "fewer rows" in reason
    assert "Traceback" not in result.stderr
    assert result.stderr.rstrip().splitlines()[-1].endswith(reason.strip())


@pytest.mark.parametrize("layout", ["cgroup v2", "cgroup v1"])
def test_a_worker_killed_by_the_oom_killer_gets_a_reason(tmp_path, layout):
    fake = (v2_tree if layout == "cgroup v2" else v1_tree)(tmp_path / "root")
    base = hog_tree(tmp_path / "job", mode="hold", hold_mb="128")
    stage = Stage("train", base, fake=fake)
    held = wait_for_file(base / "hog.json", stage)
    # The reason file exists from the start, empty, with its room kept.
    assert (base / "output" / "failure").stat().st_size == 0
    # The stage that watches the worker has loaded none of the libraries doing the work.
    maps = Path(f"/proc/{stage.process.pid}/maps").read_text()
    assert not [name for name in ("numpy", "pandas", "sklearn", "scipy") if name in maps]
    count_an_oom_kill(fake)
    os.kill(held["pid"], signal.SIGKILL)
    code = stage.wait()
    reason = failure_reason(base)
    show(f"OOM kill ({layout})", reason)
    assert code == 137, stage.log()
    assert reason.startswith("ran out of memory: the training was killed by the kernel's "
                             "out-of-memory killer at a peak of ")
    assert reason.rstrip().endswith("of the container's 2.0 GiB limit; use an instance type "
                                    "with more memory, train on fewer rows, or pick a model "
                                    "that needs less (model=linear, or fewer and shallower "
                                    "trees)")
    assert held["held"] <= peak(reason) < 2 * GiB
    assert stage.log().rstrip().splitlines()[-1].endswith(reason.strip())


def test_sigterm_then_sigkill_is_a_stop_not_a_lack_of_memory(tmp_path):
    fake = v2_tree(tmp_path / "root")
    base = hog_tree(tmp_path / "job", mode="hold", hold_mb="32", ignore_sigterm="true")
    stage = Stage("train", base, fake=fake)
    held = wait_for_file(base / "hog.json", stage)
    stage.process.send_signal(signal.SIGTERM)  # SageMaker's stop...
    stage.wait_for_log("SIGTERM received")
    os.kill(held["pid"], signal.SIGKILL)  # ...and its SIGKILL once the work ignored it
    code = stage.wait()
    reason = failure_reason(base)
    show("SIGTERM, then SIGKILL", reason)
    assert code == 137
    assert reason == "stopped by SIGTERM: the training was killed (SIGKILL) before it stopped\n"


def test_sigkill_that_the_oom_killer_did_not_send_is_not_called_a_lack_of_memory(tmp_path):
    fake = v2_tree(tmp_path / "root")
    base = hog_tree(tmp_path / "job", mode="hold", hold_mb="32")
    stage = Stage("train", base, fake=fake)
    held = wait_for_file(base / "hog.json", stage)
    os.kill(held["pid"], signal.SIGKILL)  # the count in memory.events stays 0
    code = stage.wait()
    reason = failure_reason(base)
    show("SIGKILL from elsewhere", reason)
    assert code == 137
    assert "out of memory" not in reason.split(":")[0]
    assert reason.startswith("the training was killed by SIGKILL from outside the job "
                             "(exit code 137)")


def test_processing_killed_by_the_oom_killer_says_so_in_its_exit_message(tmp_path):
    fake = v1_tree(tmp_path / "root", limit_in_bytes=str(4 * GiB))
    base = processing_tree(tmp_path / "job", {"export.csv": DATA})
    stage = Stage("processing", base, ["prepare", "--target", "churn"], fake=fake)
    worker = stage.worker()
    count_an_oom_kill(fake)
    os.kill(worker, signal.SIGKILL)
    assert stage.wait() == 137
    message = failure_reason(base, "message")
    show("OOM kill of processing prepare", message)
    assert message == failure_reason(base, "failure")
    assert message.startswith("ran out of memory: processing prepare was killed by the "
                              "kernel's out-of-memory killer at a peak of ")
    assert "of the container's 4.0 GiB limit; use an instance type with more memory" in message
    assert "ShardedByS3Key" in message


def test_script_mode_exit_137_from_the_oom_killer_says_out_of_memory(tmp_path):
    fake = v2_tree(tmp_path / "root", memory_max=str(3 * GiB))
    code = tmp_path / "src"
    code.mkdir()
    (code / "hog.py").write_text(textwrap.dedent(f"""
        import json, os, time
        held = bytearray(96 * 2**20)
        held[::4096] = b"\\x01" * (len(held) // 4096)
        with open({str(tmp_path / "hog.json")!r}, "w") as f:
            json.dump({{"pid": os.getpid(), "held": len(held)}}, f)
        time.sleep(60)
    """))
    base = training_tree(tmp_path / "job", {"train": {"a.csv": "y,x\n1,2\n"}},
                         {"sagemaker_program": json.dumps("hog.py"),
                          "sagemaker_submit_directory": json.dumps(str(code))})
    stage = Stage("train", base, fake=fake)
    held = wait_for_file(tmp_path / "hog.json", stage)
    count_an_oom_kill(fake)
    os.kill(held["pid"], signal.SIGKILL)
    assert stage.wait() == 137
    reason = failure_reason(base)
    show("script mode, OOM kill", reason)
    assert reason.startswith("ran out of memory: user script hog.py was killed by the kernel's "
                             "out-of-memory killer (exited with code 137) at a peak of ")
    assert "of the container's 3.0 GiB limit; use an instance type with more memory" in reason
    assert held["held"] <= peak(reason)


# -- no space left on the device ----------------------------------------------------------------
def test_a_split_that_fills_the_volume_names_the_folder_and_the_setting(tmp_path):
    base = processing_tree(tmp_path, {"export.csv": DATA})
    folder = base / "processing" / "output" / "validation"
    folder.mkdir(parents=True)
    # Writing to /dev/full fails with ENOSPC, as on a full volume.
    (folder / ".validation.csv.partial").symlink_to("/dev/full")
    result = run_stage("processing", base, ["--target", "churn"])
    message = failure_reason(base, "message")
    show("disk full, processing", message)
    assert result.returncode == 1, result.stderr[-2000:]
    assert message.startswith(f"no space left on the device while writing the validation "
                              f"split to {folder} (")
    assert "raise the processing job's VolumeSizeInGB (the SDK Processor's volume_size_in_gb" \
        in message
    assert not (folder / ".validation.csv.partial").exists()
    assert "Traceback" not in result.stderr


def test_metrics_that_fill_the_volume_say_how_much_they_need(tmp_path):
    base = training_tree(tmp_path, {"train": [DATA]}, {"target": "churn", "model": "linear"})
    folder = base / "output" / "data"
    folder.mkdir(parents=True)
    (folder / "metrics.json").symlink_to("/dev/full")
    result = run_stage("train", base)
    reason = failure_reason(base)
    show("disk full, train metrics", reason)
    assert result.returncode == 1, result.stderr[-2000:]
    assert reason.startswith(f"no space left on the device while writing the metrics to "
                             f"{folder} (metrics.json needs ")
    # The metrics as indented JSON: a few hundred bytes for a classifier's 14 numbers.
    needed = int(re.search(r"metrics\.json needs (\d+) bytes;", reason)[1])
    assert 300 < needed < 4096
    assert "raise the training job's VolumeSizeInGB (the SDK estimator's volume_size" in reason


def test_a_model_that_does_not_fit_on_the_volume(tmp_path):
    base = hog_tree(tmp_path, mode="disk_full")
    result = run_stage("train", base)
    reason = failure_reason(base)
    show("disk full, train model", reason)
    assert result.returncode == 1, result.stderr[-2000:]
    assert reason.startswith(f"no space left on the device while writing the model to "
                             f"{base / 'model'}")
    assert "VolumeSizeInGB" in reason and "volume_size" in reason
    assert not list((base / "model").glob(".*"))  # no half-written temporary file is left
    assert "Traceback" not in result.stderr


# -- tracebacks ---------------------------------------------------------------------------------
def test_user_errors_log_one_line_and_no_traceback(tmp_path):
    processing_tree(tmp_path / "p", {"export.csv": DATA})
    bad_option = run_stage("processing", tmp_path / "p", ["--target", "churn", "--shuffle"])
    training_tree(tmp_path / "t", {"train": [DATA]}, {"target": "churn", "model": "knn",
                                                      "n_neighbors": "many"})
    bad_value = run_stage("train", tmp_path / "t")
    for result, words in ((bad_option, "--shuffle"), (bad_value, "'n_neighbors'")):
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
        assert len(errors) == 1 and words in errors[0], result.stderr


def test_an_internal_error_still_logs_its_traceback(tmp_path):
    base = training_tree(tmp_path, {"train": [DATA]}, {"target": "churn", "model": HOG,
                                                       "mode": "bug"})
    result = run_stage("train", base)
    assert result.returncode == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert failure_reason(base).startswith("internal error (RuntimeError: ")


# -- --help -------------------------------------------------------------------------------------
def test_train_help_exits_zero_and_touches_nothing(tmp_path):
    base = tmp_path / "opt-ml"
    for flag in ("--help", "-h"):
        result = run_stage("train", base, ["train", flag])
        assert result.returncode == 0, result.stderr
        assert "hyperparameters.json" in result.stdout
        assert "sagemaker_container_log_level" in result.stdout
    assert not base.exists()


@pytest.mark.parametrize("args", [["prepare", "--help"], ["evaluate", "-h"], ["run", "--help"],
                                  ["--help"], ["--target", "churn", "--help"]])
def test_processing_help_keeps_the_last_runs_reason(tmp_path, args):
    output = tmp_path / "output"
    output.mkdir()
    for name in ("message", "failure"):
        (output / name).write_text("the last run's reason\n")
    result = run_stage("processing", tmp_path, args)
    assert result.returncode == 0, result.stderr
    assert "usage" in result.stdout.lower() or "processing" in result.stdout
    for name in ("message", "failure"):
        assert (output / name).read_text() == "the last run's reason\n"


# -- the log level ------------------------------------------------------------------------------
def levels(log: str) -> set[str]:
    return {m[1] for m in re.finditer(r"^\S+ \S+ (?:train|processing) ([A-Z]+) ", log, re.M)}


def test_train_log_level_from_the_hyperparameter(tmp_path):
    runs = {}
    for name, value in (("warning", "30"), ("debug", "10"), ("by name", json.dumps("WARNING")),
                        ("nonsense", "loud")):
        base = training_tree(tmp_path / name.replace(" ", "-"), {"train": [DATA]},
                             {"target": "churn", "model": "decision_tree",
                              "sagemaker_container_log_level": value})
        runs[name] = run_stage("train", base)
    for result in runs.values():
        assert result.returncode == 0, result.stderr[-2000:]
        assert "validation:accuracy=" in result.stdout  # metric lines do not depend on it
    assert levels(runs["warning"].stderr) <= {"WARNING", "ERROR"}
    assert levels(runs["by name"].stderr) <= {"WARNING", "ERROR"}
    assert {"DEBUG", "INFO"} <= levels(runs["debug"].stderr)
    warnings = [line for line in runs["nonsense"].stderr.splitlines() if " WARNING " in line]
    assert len(warnings) == 1 and "sagemaker_container_log_level is 'loud'" in warnings[0]
    assert "using INFO" in warnings[0]
    assert "INFO" in levels(runs["nonsense"].stderr)


def test_processing_log_level_from_the_environment(tmp_path):
    base = processing_tree(tmp_path, {"export.csv": DATA})
    quiet = run_stage("processing", base, ["--target", "churn"],
                      env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "40"})
    assert quiet.returncode == 0, quiet.stderr
    assert levels(quiet.stderr) == set()
    assert (base / "processing" / "output" / "train" / "train.csv").is_file()
    loud = run_stage("processing", base, ["--target", "churn"],
                     env={"SAGEMAKER_CONTAINER_LOG_LEVEL": "info"})
    assert "INFO" in levels(loud.stderr) and "DEBUG" not in levels(loud.stderr)
    # A run that succeeds says how much memory its work took, for sizing the instance.
    used = re.search(r"INFO processing prepare used at most ([0-9.]+) MiB of memory \(of ",
                     loud.stderr)
    assert used and 20 < float(used[1]) < 4096, loud.stderr[-2000:]
