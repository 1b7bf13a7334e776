"""The log every stage writes to stderr, which SageMaker sends to CloudWatch, and its level.

The SageMaker Python SDK sets the level in two places: framework estimators
send the hyperparameter ``sagemaker_container_log_level`` and models send the
environment variable ``SAGEMAKER_CONTAINER_LOG_LEVEL`` (the SDK's
``container_log_level``).  Both carry a number as text (``"20"``, Python's
``logging.INFO``), which AWS's own containers read with ``int()``.
:func:`log_level` reads that, and level names (``WARNING``) too.
"""
from __future__ import annotations

import json
import logging
import os
import sys

LOG_LEVEL_HYPERPARAMETER = "sagemaker_container_log_level"
LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
# A setting of this image (not SAGEMAKER_*, which the platform sets): "json" makes
# every log line one JSON object, for CloudWatch Logs Insights; default "text".
LOG_FORMAT_ENV = "SKLEARN_BYOC_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
DEFAULT_LEVEL = logging.INFO

log = logging.getLogger("stage")

# What every LogRecord has; anything else on a record is a field a caller added.
_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | \
    {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, stage, level, logger, message and any fields the
    record carries (``extra=``), the traceback as ``exception``."""

    def __init__(self, stage: str):
        super().__init__()
        self.stage = stage

    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "stage": self.stage,
                 "level": record.levelname, "logger": record.name,
                 "message": record.getMessage()}
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_") and value is not None:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class TextFormatter(logging.Formatter):
    """time, stage, level, message; and ``[id=...]`` for a line logged inside a request."""

    def __init__(self, stage: str):
        super().__init__(f"%(asctime)s {stage} %(levelname)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        request = getattr(record, "request_id", None)
        if not request:
            return text
        first, newline, rest = text.partition("\n")  # a traceback follows the first line
        return f"{first} [id={request}]{newline}{rest}"


def log_format() -> str:
    value = os.environ.get(LOG_FORMAT_ENV, "").strip().lower() or "text"
    return value if value in LOG_FORMATS else "text"


def configure_logging(stage: str, level: int = DEFAULT_LEVEL) -> None:
    """One line per record on stderr, as text or (``SKLEARN_BYOC_LOG_FORMAT=json``) JSON."""
    handler = logging.StreamHandler(sys.stderr)
    fmt = os.environ.get(LOG_FORMAT_ENV, "").strip().lower()
    handler.setFormatter(JsonFormatter(stage) if log_format() == "json" else
                         TextFormatter(stage))
    logging.basicConfig(level=level, handlers=[handler], force=True)
    if fmt and fmt not in LOG_FORMATS:
        log.warning("%s=%r is not a log format: using text; give text or json",
                    LOG_FORMAT_ENV, fmt)


def set_level(level: int) -> None:
    logging.getLogger().setLevel(level)


def parse_log_level(value) -> int | None:
    """The level ``value`` names, or None when it names none.

    ``"20"`` (what the SDK sends) and ``20`` are read with ``int()``, as AWS's
    containers read them; ``"WARNING"``, ``"warning"`` and the other names of
    Python's levels are accepted as well.  Empty or absent means the default.
    """
    if value is None:
        return DEFAULT_LEVEL
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    text = str(value).strip()
    if not text:
        return DEFAULT_LEVEL
    try:
        number = int(text)
    except ValueError:
        number = logging.getLevelNamesMapping().get(text.upper())
    if number is None or number < 0:
        return None
    return number


def log_level(value, source: str) -> int:
    """The log level set by ``value``; anything that is not a level logs one warning,
    naming ``source`` (the setting it came from), and gives INFO.

    Call it once logging is configured, so that the warning reaches the log.
    """
    level = parse_log_level(value)
    if level is None:
        log.warning("%s is %r, which is not a log level: using INFO; give a number "
                    "(10 DEBUG, 20 INFO, 30 WARNING, 40 ERROR) or a level name",
                    source, value)
        return DEFAULT_LEVEL
    return level
