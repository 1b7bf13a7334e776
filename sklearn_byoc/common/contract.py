"""The SageMaker container contract, written once for every stage.

Every path the platform gives a container hangs off one base directory,
``/opt/ml`` inside a SageMaker job.  ``SAGEMAKER_BASE_DIR`` moves the whole
tree (the convention of sagemaker-training-toolkit), which is how the stages
run as plain local processes and how the tests drive them.

The readers below return what SageMaker would leave: a config file that the
platform did not write is treated as absent, never as an error, because local
runs and some job types (processing has no ``hyperparameters.json``) lack them.
A file that exists but cannot be read is an error that names the file.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sklearn_byoc.common.cgroups import cpu_quota_count
from sklearn_byoc.common.errors import UserError

BASE_DIR_ENV = "SAGEMAKER_BASE_DIR"
DEFAULT_BASE_DIR = "/opt/ml"


def base_dir() -> Path:
    return Path(os.environ.get(BASE_DIR_ENV) or DEFAULT_BASE_DIR)


@dataclass(frozen=True)
class Paths:
    """Every location the platform defines, derived from one base directory."""

    base: Path

    @classmethod
    def from_env(cls) -> "Paths":
        return cls(base_dir())

    # -- training job ------------------------------------------------------
    @property
    def input_config_dir(self) -> Path:
        return self.base / "input" / "config"

    @property
    def hyperparameters_file(self) -> Path:
        return self.input_config_dir / "hyperparameters.json"

    @property
    def inputdataconfig_file(self) -> Path:
        return self.input_config_dir / "inputdataconfig.json"

    @property
    def training_resourceconfig_file(self) -> Path:
        return self.input_config_dir / "resourceconfig.json"

    @property
    def data_dir(self) -> Path:
        return self.base / "input" / "data"

    def channel_dir(self, channel: str) -> Path:
        return self.data_dir / channel

    @property
    def model_dir(self) -> Path:
        return self.base / "model"

    @property
    def output_dir(self) -> Path:
        return self.base / "output"

    @property
    def output_data_dir(self) -> Path:
        return self.output_dir / "data"

    @property
    def failure_file(self) -> Path:
        """First 1024 characters become the job's FailureReason."""
        return self.output_dir / "failure"

    @property
    def message_file(self) -> Path:
        """Processing jobs: first 1 KB becomes the job's ExitMessage."""
        return self.output_dir / "message"

    @property
    def code_dir(self) -> Path:
        return self.base / "code"

    # -- processing job ----------------------------------------------------
    @property
    def processing_dir(self) -> Path:
        return self.base / "processing"

    @property
    def processing_config_dir(self) -> Path:
        return self.base / "config"

    @property
    def processingjobconfig_file(self) -> Path:
        return self.processing_config_dir / "processingjobconfig.json"

    @property
    def processing_resourceconfig_file(self) -> Path:
        return self.processing_config_dir / "resourceconfig.json"


def read_json_file(path: Path, *, default: Any = None) -> Any:
    """Read a platform JSON file; absent means ``default``, unreadable is an error."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return default
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from exc
    if not text.strip():
        return default
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(
            f"{path} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})"
        ) from exc


# -- resource config ---------------------------------------------------------
@dataclass(frozen=True)
class ResourceConfig:
    current_host: str = "algo-1"
    hosts: tuple[str, ...] = ("algo-1",)
    instance_type: str | None = None

    @property
    def is_distributed(self) -> bool:
        return len(self.hosts) > 1

    @classmethod
    def read(cls, path: Path) -> "ResourceConfig":
        raw = read_json_file(path, default=None)
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise UserError(f"{path} must hold a JSON object, found {type(raw).__name__}")
        current = str(raw.get("current_host") or "algo-1")
        hosts = tuple(str(h) for h in (raw.get("hosts") or [current]))
        return cls(current_host=current, hosts=hosts,
                   instance_type=raw.get("current_instance_type"))


def read_input_data_config(path: Path) -> dict[str, dict[str, Any]]:
    """Channel name -> its settings (ContentType only when the user set one)."""
    raw = read_json_file(path, default={})
    if not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object of channels, found {type(raw).__name__}")
    return {str(k): (v if isinstance(v, dict) else {}) for k, v in raw.items()}


# How the first row of CSV data is taken: train's hyperparameter header, and the
# --header option of prepare and evaluate.
HEADER_CHOICES = ("auto", "present", "absent")

# How a yes/no setting may be written, in the environment and in hyperparameters.
TRUE_WORDS = frozenset({"true", "1", "yes", "y", "on"})
FALSE_WORDS = frozenset({"false", "0", "no", "n", "off"})


# -- environment -----------------------------------------------------------------
def env_int(name: str, default: int, *, minimum: int = 1) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise UserError(f"environment variable {name} must be an integer, got {raw!r}") from None
    if value < minimum:
        raise UserError(f"environment variable {name} must be at least {minimum}, got {value}")
    return value


def env_bool(name: str, default: bool = False) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in TRUE_WORDS:
        return True
    if raw in FALSE_WORDS:
        return False
    raise UserError(f"environment variable {name} must be true or false, got {raw!r}")


def cpu_count(root: Path | None = None) -> int:
    """The CPUs this process may use: its affinity mask (``docker run --cpuset-cpus``,
    ``taskset``), capped by its cgroup's CPU quota rounded up (``docker run --cpus=1.5``
    gives 2).  ``root`` stands for ``/`` when reading the cgroup files (tests)."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        cpus = os.cpu_count() or 1
    quota = cpu_quota_count(root)
    if quota is not None:
        cpus = min(cpus, quota)
    return max(1, cpus)
