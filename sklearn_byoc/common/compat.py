"""The scikit-learn lines the image can be built for, and what differs between them.

The image holds one scikit-learn line (the Dockerfile's build argument
``SKLEARN_VERSION``): models pickled by scikit-learn load reliably only
under the major.minor version that pickled them, so a team moving models
off AWS's scikit-learn images (framework versions 1.2-1, 1.4-2) builds the
line of its models.  One code base runs on every line; where an API of
scikit-learn or pandas differs between them, the difference is met here and
nowhere else.
"""
from __future__ import annotations

import contextlib
import functools
import re
import warnings
from typing import Iterator

# The lines, oldest first; the last is the Dockerfile's default.  Each other
# line's lock is requirements/sklearn-<line>.txt (tests check both).
LINES = ("1.2", "1.4", "1.9")
DEFAULT_LINE = LINES[-1]
BUILD_ARG = "SKLEARN_VERSION"


def line_of(version: str) -> str | None:
    """'1.2.2' -> '1.2'; None for a version that names no line ('pre-0.18')."""
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return f"{int(match[1])}.{int(match[2])}" if match else None


def sklearn_version() -> str:
    import sklearn

    return sklearn.__version__


@contextlib.contextmanager
def quiet_version_warnings() -> Iterator[None]:
    """Silences the warning scikit-learn gives for each estimator it unpickles from
    another version (one per tree of a forest); the caller says it once instead.

    scikit-learn >= 1.3 warns with ``InconsistentVersionWarning``; 1.2 with a
    plain ``UserWarning`` "Trying to unpickle estimator ... from version ...".
    """
    with warnings.catch_warnings():
        try:
            from sklearn.exceptions import InconsistentVersionWarning
        except ImportError:  # scikit-learn < 1.3
            warnings.filterwarnings("ignore", message="Trying to unpickle estimator",
                                    category=UserWarning)
        else:
            warnings.simplefilter("ignore", InconsistentVersionWarning)
        yield


def fast_config(*, assume_finite: bool = False):
    """``sklearn.config_context`` for work on inputs already checked: parameter
    validation is skipped where the line can skip it (``skip_parameter_validation``
    exists from scikit-learn 1.3 on; under 1.2 the checks simply run)."""
    import sklearn

    options = {"assume_finite": True} if assume_finite else {}
    if _can_skip_parameter_validation():
        options["skip_parameter_validation"] = True
    return sklearn.config_context(**options)


@functools.lru_cache(maxsize=None)
def _can_skip_parameter_validation() -> bool:
    # Asked once: fast_config is on every request's path.
    import inspect

    import sklearn

    return "skip_parameter_validation" in inspect.signature(sklearn.config_context).parameters


# scikit-learn < 1.6 reads estimator tags only through this private method (1.6 added
# sklearn.utils.get_tags); tests/unit/test_compat.py fails on a line without either.
OLD_TAGS_METHOD = "_get_tags"


def refuses_missing(estimator) -> bool:
    """Whether ``estimator`` declares it takes no NaN in X (scikit-learn's ``allow_nan``
    tag is false) for the input it is given: a pipeline is asked of its first step.
    False when it declares nothing (not a scikit-learn estimator, a ColumnTransformer,
    whose columns each go their own way)."""
    while hasattr(estimator, "steps") and estimator.steps:
        estimator = estimator.steps[0][1]
    if type(estimator).__name__ == "ColumnTransformer" or not hasattr(estimator, "fit"):
        return False
    try:
        from sklearn.utils import get_tags  # scikit-learn >= 1.6
    except ImportError:
        tags = getattr(estimator, OLD_TAGS_METHOD, None)
        try:
            return tags is not None and tags().get("allow_nan") is False
        except Exception:  # noqa: BLE001 - an estimator's own tags may fail
            return False
    try:
        return get_tags(estimator).input_tags.allow_nan is False
    except Exception:  # noqa: BLE001 - not an estimator scikit-learn can tag
        return False


def ordinal_encoder(max_categories: int, **options):
    """An OrdinalEncoder that keeps at most ``max_categories`` per column where the line can
    (``max_categories`` exists from scikit-learn 1.3 on; under 1.2 every category is kept,
    and HistGradientBoosting refuses a column with more than its max_bins)."""
    import inspect

    from sklearn.preprocessing import OrdinalEncoder

    if "max_categories" in inspect.signature(OrdinalEncoder).parameters:
        options["max_categories"] = max_categories
    return OrdinalEncoder(**options)


def nul_byte_offset(path, limit: int = 1 << 20) -> int | None:
    """Where the first NUL byte lies in the first ``limit`` bytes of ``path``, if anywhere.

    pandas < 3.1 (the 1.2 line's) reads a CSV line only up to a NUL byte and
    drops the rest of the line without an error, where later pandas reads on
    (and fails on the bytes of a binary file): no text CSV holds a NUL, so a
    file with one is refused on every line before pandas reads it.
    """
    try:
        with open(path, "rb") as handle:
            head = handle.read(limit)
    except OSError:
        return None
    offset = head.find(b"\0")
    return offset if offset >= 0 else None
