"""Build /opt/ml-shaped trees the way SageMaker lays them out, and run stages on them.

The tests run every stage as a real process (``python <stage>/main.py``)
with SAGEMAKER_BASE_DIR pointing at a temporary tree.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "churn.csv"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


class Server:
    """``serve`` on 127.0.0.1 and a free port; stopped by ``stop()`` or the context."""

    def __init__(self, base: Path, env: dict | None = None, workers: int = 2):
        self.base = base
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "SAGEMAKER_BASE_DIR": str(base),
                    "SAGEMAKER_MODEL_SERVER_WORKERS": str(workers), **(env or {})}
        self.process = None
        self.log_path = base / "serve.log"

    def start(self, timeout: float = 60) -> "Server":
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "serve" / "main.py"), "serve",
             "--host", "127.0.0.1", "--port", str(self.port)],
            env=self.env, stdout=self._log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"serve exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/ping", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"serve did not answer /ping within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self, timeout: float = 30) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def invoke(self, body, content_type="text/csv", accept=None, **headers):
        sent = {"Content-Type": content_type} if content_type else {}
        if accept:
            sent["Accept"] = accept
        sent.update(headers)
        if isinstance(body, str):
            body = body.encode()
        return requests.post(self.url + "/invocations", data=body, headers=sent, timeout=60)
