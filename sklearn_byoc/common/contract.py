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
from dataclasses import dataclass, field
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
    def checkpoints_dir(self) -> Path:
        return self.base / "checkpoints"

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


def read_processing_job_config(path: Path) -> dict[str, Any] | None:
    raw = read_json_file(path, default=None)
    if raw is not None and not isinstance(raw, dict):
        raise UserError(f"{path} must hold a JSON object, found {type(raw).__name__}")
    return raw


# -- hyperparameters -----------------------------------------------------------
# Keys the platform or the SDK adds on its own.  They never reach an estimator
# and never fail a job.
PLATFORM_KEY_PREFIXES = ("sagemaker_", "_")


def is_platform_key(key: str) -> bool:
    return key.startswith(PLATFORM_KEY_PREFIXES)


def decode_value(raw: Any) -> Any:
    """Undo the SDK's encoding of one hyperparameter value.

    The generic ``Estimator`` sends ``str(value)``; framework estimators send
    ``json.dumps(value)``, so a string arrives wrapped in quotes.  Only that
    quoting is undone here; typing is the reader's job.
    """
    if not isinstance(raw, str):
        return raw
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return raw
        if isinstance(decoded, str):
            return decoded
    return raw


_TRUE = {"true", "1", "yes", "y", "on"}
_FALSE = {"false", "0", "no", "n", "off"}


def parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(decode_value(value)).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise HyperparameterError(key, value, "a boolean (true or false)")


def parse_int(key: str, value: Any) -> int:
    if isinstance(value, bool):
        raise HyperparameterError(key, value, "an integer")
    if isinstance(value, int):
        return value
    text = str(decode_value(value)).strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        as_float = float(text)
    except ValueError:
        raise HyperparameterError(key, value, "an integer") from None
    if as_float.is_integer():
        return int(as_float)
    raise HyperparameterError(key, value, "an integer")


def parse_float(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise HyperparameterError(key, value, "a number")
    if isinstance(value, (int, float)):
        return float(value)
    text = str(decode_value(value)).strip()
    try:
        return float(text)
    except ValueError:
        raise HyperparameterError(key, value, "a number") from None


class HyperparameterError(UserError):
    def __init__(self, key: str, value: Any, expected: str, hint: str = ""):
        self.key = key
        message = f"hyperparameter '{key}' must be {expected}, got {value!r}"
        super().__init__(message + (f"; {hint}" if hint else ""))


@dataclass
class Hyperparameters:
    """Typed access to ``hyperparameters.json``; remembers which keys were used."""

    raw: dict[str, str] = field(default_factory=dict)
    used: set[str] = field(default_factory=set)

    @classmethod
    def read(cls, path: Path) -> "Hyperparameters":
        raw = read_json_file(path, default={})
        if not isinstance(raw, dict):
            raise UserError(
                f"{path} must hold a JSON object of hyperparameters, found {type(raw).__name__}"
            )
        return cls({str(k): v for k, v in raw.items()})

    def __contains__(self, key: str) -> bool:
        return key in self.raw

    def _take(self, key: str) -> Any:
        self.used.add(key)
        return self.raw.get(key)

    def get_str(self, key: str, default: str | None = None) -> str | None:
        value = self._take(key)
        if value is None:
            return default
        text = str(decode_value(value)).strip()
        return text if text else default

    def get_choice(self, key: str, choices: list[str] | tuple[str, ...], default: str) -> str:
        value = self.get_str(key, default)
        normalized = value.strip().lower().replace("-", "_")
        if normalized not in choices:
            raise HyperparameterError(key, value, "one of " + ", ".join(choices))
        return normalized

    def get_int(self, key: str, default: int, *, minimum: int | None = None,
                maximum: int | None = None) -> int:
        value = self._take(key)
        if value is None:
            return default
        number = parse_int(key, value)
        _check_range(key, number, minimum, maximum)
        return number

    def get_float(self, key: str, default: float, *, minimum: float | None = None,
                  maximum: float | None = None, exclusive: bool = False) -> float:
        value = self._take(key)
        if value is None:
            return default
        number = parse_float(key, value)
        _check_range(key, number, minimum, maximum, exclusive=exclusive)
        return number

    def get_bool(self, key: str, default: bool) -> bool:
        value = self._take(key)
        if value is None:
            return default
        return parse_bool(key, value)

    def unused(self) -> dict[str, str]:
        return {k: v for k, v in self.raw.items() if k not in self.used}


def _check_range(key, number, minimum, maximum, exclusive=False):
    if minimum is not None and (number < minimum or (exclusive and number == minimum)):
        bound = f"greater than {minimum}" if exclusive else f"at least {minimum}"
        raise HyperparameterError(key, number, f"a number {bound}")
    if maximum is not None and (number > maximum or (exclusive and number == maximum)):
        bound = f"less than {maximum}" if exclusive else f"at most {maximum}"
        raise HyperparameterError(key, number, f"a number {bound}")


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
    if raw in _TRUE:
        return True
    if raw in _FALSE:
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
