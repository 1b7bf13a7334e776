"""Build /opt/ml-shaped trees the way SageMaker lays them out, and run stages on them.

The tests run every stage as a real process (``python <stage>/main.py``)
with SAGEMAKER_BASE_DIR pointing at a temporary tree; ``Server`` runs
``serve`` that way (scripts/serve_process.py, shared with the benchmark and the
demo).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from scripts.serve_process import ServeProcess as Server, free_port  # noqa: F401

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "churn.csv"


def training_tree(base: Path, channels: dict[str, list[Path] | dict[str, str]],
                  hyperparameters: dict | None = None,
                  content_types: dict[str, str] | None = None,
                  hosts: list[str] | None = None) -> Path:
    """A training job's tree: ``channels`` maps a channel name to files to copy in,
    or to {relative name: text} to write."""
    config = base / "input" / "config"
    config.mkdir(parents=True, exist_ok=True)
    data_config = {}
    for channel, files in channels.items():
        folder = base / "input" / "data" / channel
        folder.mkdir(parents=True, exist_ok=True)
        if isinstance(files, dict):
            for name, text in files.items():
                target = folder / name
                target.parent.mkdir(parents=True, exist_ok=True)
                if isinstance(text, bytes):
                    target.write_bytes(text)
                else:
                    target.write_text(text)
        else:
            for path in files:
                shutil.copy(path, folder / Path(path).name)
        entry = {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                 "RecordWrapperType": "None"}
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
    """A processing job's tree: each input file copied to processing/input/<name>."""
    folder = base / "processing" / "input"
    folder.mkdir(parents=True, exist_ok=True)
    for name, path in inputs.items():
        shutil.copy(path, folder / name)
    config = base / "config"
    config.mkdir(parents=True, exist_ok=True)
    hosts = hosts or ["algo-1"]
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": current_host or hosts[0], "hosts": hosts}))
    # SageMaker writes the job's request here; the image's default command reads its presence.
    (config / "processingjobconfig.json").write_text(json.dumps(
        {"ProcessingJobName": "local-processing", "ProcessingInputs": [],
         "AppSpecification": {"ImageUri": "sagemaker-sklearn-byoc"}}))
    return base


def run_stage(stage: str, base: Path, args: list[str] = (), env: dict | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(ROOT / stage / "main.py"), *args],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})},
        capture_output=True, text=True, timeout=timeout,
    )


def failure_reason(base: Path, name: str = "failure") -> str:
    return (base / "output" / name).read_text()
