"""The stages never modify their input.

train and processing run as an unprivileged user (nobody, via setpriv) on a
tree whose input folders and files belong to root and cannot be written,
while the model and output folders can: both stages succeed, and every input
file keeps its bytes, size and modification time, with no file added or
removed.  The working folder is not writable either.
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from scripts.harness import DATA, ROOT, processing_tree, training_tree

NOBODY = 65534
AS_NOBODY = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]

pytestmark = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"),
                                reason="needs root and setpriv to run a stage as another user")


@pytest.fixture
def top():
    """A folder other users may enter (pytest's own temporary folder is private)."""
    folder = Path(tempfile.mkdtemp(prefix="readonly-input-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def fingerprint(folder: Path) -> dict[str, tuple]:
    found = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        digest = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else "dir"
        found[str(path.relative_to(folder))] = (digest, info.st_size, info.st_mtime_ns,
                                                info.st_mode, info.st_uid)
    return found


def lock(folder: Path) -> None:
    """Owned by root, readable by all, writable by none but root."""
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, 0, 0)
        path.chmod(0o755 if path.is_dir() else 0o444)


def writable_by_nobody(*folders: Path) -> None:
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        os.chown(folder, NOBODY, NOBODY)


def run_as_nobody(stage: str, base: Path, args: list[str] = ()) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGEMAKER_", "SM_"))}
    env.update({"SAGEMAKER_BASE_DIR": str(base), "HOME": "/nonexistent", "TMPDIR": "/tmp",
                "PYTHONDONTWRITEBYTECODE": "1"})
    return subprocess.run([*AS_NOBODY, sys.executable, str(ROOT / stage / "main.py"), *args],
                          cwd=base, env=env, capture_output=True, text=True, timeout=300)


def test_train_reads_a_read_only_input_and_leaves_it_as_it_was(top):
    base = training_tree(top / "job", {"train": [DATA], "validation": {"val.csv": "".join(
        DATA.read_text().splitlines(keepends=True)[:200])}},
        {"target": "churn", "model": "linear"}, content_types={"train": "text/csv"})
    lock(base)
    writable_by_nobody(base / "model", base / "output")
    before = fingerprint(base / "input")
    assert before

    result = run_as_nobody("train", base)
    assert result.returncode == 0, result.stderr[-3000:]
    assert fingerprint(base / "input") == before
    assert (base / "model" / "model.joblib").stat().st_uid == NOBODY
    assert (base / "output" / "data" / "metrics.json").is_file()
    assert not (base / "output" / "failure").exists()


def test_processing_reads_a_read_only_input_and_leaves_it_as_it_was(top):
    base = processing_tree(top / "job", {"raw.csv": DATA})
    (base / "processing" / "input" / "more").mkdir()
    shutil.copy(DATA, base / "processing" / "input" / "more" / "raw-2.csv")
    (base / "processing" / "input" / "empty.csv").write_text("")
    lock(base)
    writable_by_nobody(base / "processing" / "output", base / "output")
    before = {name: fingerprint(base / name) for name in ("processing/input", "config")}

    result = run_as_nobody("processing", base, ["prepare", "--target", "churn"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert {name: fingerprint(base / name) for name in before} == before
    written = sorted(str(p.relative_to(base / "processing" / "output"))
                     for p in (base / "processing" / "output").rglob("*.csv"))
    assert written == ["test/test.csv", "test_features/test_features.csv", "train/train.csv",
                       "validation/validation.csv"]


def test_a_stage_that_cannot_write_its_output_says_so(top):
    """The other side: with the model folder read-only too, train fails with a reason."""
    base = training_tree(top / "job", {"train": [DATA]}, {"target": "churn", "model": "linear"})
    lock(base)
    (base / "model").mkdir()
    os.chown(base / "model", 0, 0)
    writable_by_nobody(base / "output")
    before = fingerprint(base / "input")
    result = run_as_nobody("train", base)
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text()
    assert reason.count("\n") == 1 and "Permission denied" in reason, reason
    assert str(base / "model") in reason, reason
    assert fingerprint(base / "input") == before
