"""The log every stage writes to stderr, which SageMaker sends to CloudWatch, and its level.

The SageMaker Python SDK sets the level in two places: framework estimators
send the hyperparameter ``sagemaker_container_log_level`` and models send the
environment variable ``SAGEMAKER_CONTAINER_LOG_LEVEL`` (the SDK's
``container_log_level``).  Both carry a number as text (``"20"``, Python's
``logging.INFO``), which AWS's own containers read with ``int()``.
:func:`log_level` reads that, and level names (``WARNING``) too.
"""
from __future__ import annotations

import logging
import sys

LOG_LEVEL_HYPERPARAMETER = "sagemaker_container_log_level"
LOG_LEVEL_ENV = "SAGEMAKER_CONTAINER_LOG_LEVEL"
DEFAULT_LEVEL = logging.INFO

log = logging.getLogger("stage")


def configure_logging(stage: str, level: int = DEFAULT_LEVEL) -> None:
    """One line per record on stderr: time, stage, level, message."""
    logging.basicConfig(
        level=level,
        format=f"%(asctime)s {stage} %(levelname)s %(message)s",
        stream=sys.stderr,
        force=True,
    )


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
