"""The stage harness: SageMaker-shaped trees, stages run as processes, their failures read.

A stage runs as it runs in the image, ``python <stage>/main.py`` as its own
process, on an /opt/ml-shaped tree named by SAGEMAKER_BASE_DIR; no container
and no AWS account.  The tests, ``make demo`` (scripts/demo.py) and the
benchmarks all use this module; ``serve`` as a process is
scripts/serve_process.py.  Only the standard library is needed, so the demo
runs on the image's own pins.

    base = training_tree(tmp / "job", {"train": [DATA]}, {"target": "churn"})
    result = run_stage("train", base)
    if result.returncode:
        print(failure_reason(base))
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "churn.csv"
STAGES = ("processing", "train", "serve")

# What SageMaker writes for a File-mode channel in inputdataconfig.json.
CHANNEL_DEFAULTS = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                    "RecordWrapperType": "None"}


def write_file(folder: Path, name: str, text: str | bytes) -> Path:
    """``text`` (or bytes) as the file ``name`` under ``folder``, its folders made."""
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _fill(folder: Path, files: list[Path] | dict[str, str | bytes] | Path) -> None:
    """Copy a folder, copy files, or write {relative name: text or bytes} into ``folder``."""
    if isinstance(files, Path) and files.is_dir():
        shutil.copytree(files, folder, dirs_exist_ok=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    if isinstance(files, dict):
        for name, text in files.items():
            write_file(folder, name, text)
    else:
        for path in files:
            shutil.copy(path, folder / Path(path).name)


def training_tree(base: Path, channels: dict[str, list[Path] | dict[str, str] | Path],
                  hyperparameters: dict | None = None,
                  content_types: dict[str, str] | None = None,
                  hosts: list[str] | None = None) -> Path:
    """A training job's tree: ``channels`` maps a channel name to files to copy in, a
    folder to copy, or {relative name: text} to write."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    data_config = {}
    for channel, files in channels.items():
        _fill(base / "input" / "data" / channel, files)
        entry = dict(CHANNEL_DEFAULTS)
        if content_types and channel in content_types:
            entry["ContentType"] = content_types[channel]
        data_config[channel] = entry
    # SageMaker sends every hyperparameter value as a string.
    hp = {k: str(v) for k, v in (hyperparameters or {}).items()}
    (config / "hyperparameters.json").write_text(json.dumps(hp))
    (config / "inputdataconfig.json").write_text(json.dumps(data_config))
    hosts = hosts or ["algo-1"]
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": hosts[0], "hosts": hosts, "network_interface_name": "eth0"}))
    return base


def processing_tree(base: Path, inputs: dict[str, Path], hosts: list[str] | None = None,
                    current_host: str | None = None) -> Path:
    """A processing job's tree: each input (a file or a folder) copied to
    processing/input/<name>."""
    folder = base / "processing" / "input"
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in inputs.items():
        if Path(path).is_dir():
            shutil.copytree(path, folder / name)
        else:
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, folder / name)
    config = base / "config"
    config.mkdir(parents=True, exist_ok=True)
    hosts = hosts or ["algo-1"]
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": current_host or hosts[0], "hosts": hosts}))
    # SageMaker (and SDK local mode) echo the job's request here.
    (config / "processingjobconfig.json").write_text(json.dumps({
        "ProcessingJobName": "test-processing",
        "ProcessingInputs": [{"InputName": name, "S3Input": {
            "LocalPath": f"/opt/ml/processing/input/{name}"}} for name in inputs],
        "AppSpecification": {"ImageUri": "sagemaker-sklearn-byoc"}, "Environment": {}}))
    return base


def stage_command(stage: str, args: list[str] = ()) -> list[str]:
    return [sys.executable, str(ROOT / stage / "main.py"), *args]


def stage_env(base: Path, env: dict | None = None) -> dict[str, str]:
    return {**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})}


def run_stage(stage: str, base: Path, args: list[str] = (), env: dict | None = None,
              timeout: float | None = 300) -> subprocess.CompletedProcess:
    """Run ``stage`` on the tree at ``base`` to its end; stdout and stderr captured."""
    return subprocess.run(stage_command(stage, args), env=stage_env(base, env),
                          capture_output=True, text=True, timeout=timeout)


def run_all(stage: str, jobs: dict, timeout: float | None = 300) -> dict:
    """Several runs of ``stage`` at once (one per core); ``jobs`` maps a key to
    ``(base, args)``; returns key -> (base, CompletedProcess)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {key: (base, pool.submit(run_stage, stage, base, args, None, timeout))
                   for key, (base, args) in jobs.items()}
        return {key: (base, future.result()) for key, (base, future) in futures.items()}


def failure_reason(base: Path, name: str = "failure") -> str:
    """What the stage wrote to output/<name> (``failure``, or ``message`` for processing)."""
    return (base / "output" / name).read_text()


def written_reason(base: Path) -> str | None:
    """The failure reason the stage wrote, whichever file holds it; None without one."""
    for name in ("failure", "message"):
        path = base / "output" / name
        if path.exists():
            return path.read_text().strip()
    return None
