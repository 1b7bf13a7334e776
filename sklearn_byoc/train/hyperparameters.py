"""A training job's hyperparameters: read once, each value typed once, one object handed on.

SageMaker delivers every hyperparameter as a string (the generic ``Estimator``
sends ``str(value)``, framework estimators ``json.dumps(value)``).  This module
is the only place that reads ``hyperparameters.json`` and the only place that
turns those strings into values:

- :data:`TRAINER_KEYS` is the table of the trainer's own keys: what each takes,
  its default and its help line.  ``train --help`` and the checks are made from it.
- Every other key is a parameter of the chosen estimator, typed from what the
  estimator declares the parameter takes (scikit-learn's parameter constraints)
  or, for an estimator without them, from its default value:

  - an integer parameter takes ``5``, and ``5.0`` (how tuning jobs write integer
    ranges' values at times), but not ``5.5`` or ``True``;
  - a float parameter takes any number;
  - a boolean takes ``true``/``false``, ``yes``/``no``, ``1``/``0``;
  - ``None``/``null`` is None where the parameter allows it;
  - a parameter that takes text takes the text as it is; lists and objects as JSON.

Keys are checked in two steps.  Before any data is read (:func:`read_settings`):
a key that belongs to neither the classifier nor the regressor of the chosen
model nor to the trainer fails with close matches, and a value that cannot be
typed for any of them fails.  Once the task is known, before fitting,
:func:`estimators.build_estimator` raises the typing error of that task's
estimator and lets the estimator check its values.  Keys the platform adds
(``sagemaker_*``, ``_*``) are never checked.
"""
from __future__ import annotations

import copy
import difflib
import inspect
import json
import logging
import numbers
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from sklearn_byoc.common.contract import FALSE_WORDS, HEADER_CHOICES, TRUE_WORDS, read_json_file
from sklearn_byoc.common.errors import HyperparameterError, UserError
from sklearn_byoc.train.estimators import (all_known_params, constructor_defaults,
                                           declared_constraints, resolve_model)

log = logging.getLogger("train")

# Keys the platform or the SDK adds on its own (sagemaker_program, _tuning_objective_metric,
# ...): they never reach an estimator and never fail a job.
PLATFORM_KEY_PREFIXES = ("sagemaker_", "_")
TUNING_OBJECTIVE_KEY = "_tuning_objective_metric"


def is_platform_key(key: str) -> bool:
    return key.startswith(PLATFORM_KEY_PREFIXES)


def read_file(path: Path) -> dict[str, Any]:
    """``hyperparameters.json`` as SageMaker wrote it: key -> value as sent (absent: empty)."""
    raw = read_json_file(path, default={})
    if not isinstance(raw, dict):
        raise UserError(
            f"{path} must hold a JSON object of hyperparameters, found {type(raw).__name__}")
    return unbundle({str(k): v for k, v in raw.items()})


def unbundle(raw: dict[str, Any]) -> dict[str, Any]:
    """The keys of :data:`BUNDLE` (one JSON object, as a pipeline parameter passes any
    number of hyperparameters) among the others, each as if given on its own."""
    if BUNDLE.name not in raw:
        return raw
    raw = dict(raw)
    more = BUNDLE.parse(BUNDLE.name, raw.pop(BUNDLE.name))
    both = sorted(set(more) & set(raw))
    if both:
        raise HyperparameterError(BUNDLE.name, json.dumps(more), "keys not also given on "
                                  "their own", hint=f"{both[0]!r} is given both ways: keep one")
    raw.update(more)
    return raw


# -- decoding: what a value as sent spells -------------------------------------------------
def text_of(raw: Any) -> str:
    """The text a value stands for, stripped: framework estimators' JSON quotes undone
    (``"\\"abc\\""`` -> ``abc``), anything else as it is (``0.1`` stays ``0.1``)."""
    if not isinstance(raw, str):
        return json.dumps(raw) if isinstance(raw, (list, dict, bool)) or raw is None \
            else str(raw)
    text = raw.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        try:
            decoded = json.loads(text)
        except json.JSONDecodeError:
            return text
        if isinstance(decoded, str):
            return decoded.strip()
    return text


def literal_of(text: str) -> Any:
    """The Python value a hyperparameter's text spells (``True``, ``none``, ``5``, ``[1, 2]``);
    text that spells none of them is itself."""
    lowered = text.lower()
    if lowered in ("none", "null"):
        return None
    if lowered in ("true", "false"):
        return lowered == "true"
    for convert in (int, float):
        try:
            return convert(text)
        except ValueError:
            pass
    if text[:1] in "[{":
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            pass
    return text


def json_of(raw: Any) -> Any:
    """A value as sagemaker-training-toolkit gives it to a user's script (``SM_HPS``): its
    JSON value when it is JSON (``"0.1"`` -> 0.1, ``"\\"abc\\""`` -> ``abc``), else the
    text as sent (the generic Estimator's ``True`` stays the text ``True``)."""
    if not isinstance(raw, str):
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw


# -- what a value may be ---------------------------------------------------------------------
INT, FLOAT, BOOL, NONE, STR, JSON, ANY = "int", "float", "bool", "none", "str", "json", "any"
_EXPECTED = {INT: "an integer", FLOAT: "a number", BOOL: "a boolean (true or false)",
             NONE: "None", STR: "text", JSON: "a JSON list or object"}


def expected_text(kinds: frozenset[str]) -> str:
    names = [_EXPECTED[k] for k in (INT, FLOAT, BOOL, STR, JSON, NONE) if k in kinds]
    if INT in kinds and FLOAT in kinds:
        names.remove(_EXPECTED[INT])
    if len(names) <= 1:
        return names[0] if names else "a valid value"
    return ", ".join(names[:-1]) + " or " + names[-1]


def type_value(key: str, raw: Any, kinds: frozenset[str], hint: str = "") -> Any:
    """``raw`` (as SageMaker sent it) as a value of one of ``kinds``, or a HyperparameterError."""
    text = text_of(raw)
    # A hyperparameters.json written by hand may hold numbers and lists.
    literal = literal_of(text) if isinstance(raw, str) else raw
    if ANY in kinds:
        return literal

    def refuse():
        return HyperparameterError(key, raw, expected_text(kinds), hint=hint)

    if BOOL in kinds and INT not in kinds and literal is not None \
            and not isinstance(literal, (list, dict)):
        lowered = text.lower()
        if lowered in TRUE_WORDS or lowered in FALSE_WORDS:
            return lowered in TRUE_WORDS
        if STR not in kinds and FLOAT not in kinds:
            raise refuse()
    for kind, value in _readings(literal, text, kinds):
        if kind in kinds:
            return value
    raise refuse()


def _readings(literal: Any, text: str, kinds: frozenset[str]) -> list[tuple[str, Any]]:
    """What a value may be taken as, in order of preference: (kind, value)."""
    if literal is None:
        return [(NONE, None), (STR, text)]
    if isinstance(literal, bool):
        return [(BOOL, literal), (STR, text)]
    if isinstance(literal, int):
        return [(INT, literal), (FLOAT, float(literal)), (STR, text)]
    if isinstance(literal, float):
        # 5.0 is an integer parameter's 5; 5.5 is not its text either.
        return [(FLOAT, literal)] + ([(INT, int(literal))] if literal.is_integer() else []) \
            + ([(STR, text)] if INT not in kinds else [])
    if isinstance(literal, (list, dict)):
        return [(JSON, literal), (STR, text)]
    return [(STR, text)]


# -- the trainer's own keys --------------------------------------------------------------------
def _choice(choices: tuple[str, ...]) -> Callable[[str, Any], str]:
    def parse(key: str, raw: Any) -> str:
        value = text_of(raw).lower().replace("-", "_")
        if value not in choices:
            close = difflib.get_close_matches(value, choices, n=1)
            raise HyperparameterError(key, raw, "one of " + ", ".join(choices),
                                      hint=f"did you mean {close[0]!r}?" if close else "")
        return value
    return parse


def _text(key: str, raw: Any) -> str:
    return text_of(raw)


def _number_between(kind: str, low: float, high: float | None):
    """An integer or a number in [low, high] (``high`` None: no upper bound); a fraction's
    bounds are exclusive."""
    def parse(key: str, raw: Any):
        value = type_value(key, raw, frozenset({kind}))
        if kind == FLOAT and high is not None and not low < value < high:
            raise HyperparameterError(key, raw,
                                      f"a number greater than {low} and less than {high}")
        if kind == INT and value < low:
            raise HyperparameterError(key, raw, f"an integer of {low:g} or more")
        return value
    return parse


def _columns(key: str, raw: Any) -> list[str]:
    """Column names or 0-based indexes: ``a,b``, ``0,3``, or a JSON list as framework
    estimators send it."""
    text = text_of(raw) if isinstance(raw, str) else raw
    value = text
    if isinstance(text, str) and text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            raise HyperparameterError(key, raw, "comma-separated column names or 0-based "
                                                "indexes, or a JSON list of them") from None
    items = value if isinstance(value, list) else str(value).split(",")
    out = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise HyperparameterError(key, raw, "column names or 0-based indexes")
        name = str(item).strip()
        if name:
            out.append(name)
    return out


@dataclass(frozen=True)
class TrainerKey:
    """One of the trainer's own hyperparameters: the one row both the checks and the help
    text come from."""

    name: str
    takes: str  # as the help text says it
    default: Any
    help: str
    parse: Callable[[str, Any], Any]


TASKS = ("auto", "classification", "regression")
DEFAULT_MODEL = "gradient_boosting"
DEFAULT_HOLDOUT = 0.2

TRAINER_KEYS: dict[str, TrainerKey] = {row.name: row for row in (
    TrainerKey("model", "name or module.Class", DEFAULT_MODEL,
               "the estimator: a built-in name or any estimator class's import path", _text),
    TrainerKey("target", "column name or 0-based index", None,
               "the column to predict (default: a column named target, label, class or y, "
               "else the last column)", _text),
    TrainerKey("task", " | ".join(TASKS), "auto",
               "auto: text or few whole-number values are classes, other numbers regression",
               _choice(TASKS)),
    TrainerKey("header", " | ".join(HEADER_CHOICES), "auto",
               "whether CSV files start with a header row (auto: detected)",
               _choice(HEADER_CHOICES)),
    TrainerKey("holdout_fraction", "number in (0, 0.9)", DEFAULT_HOLDOUT,
               "share of the training rows held out for the validation metrics when there is "
               "no validation channel", _number_between(FLOAT, 0.0, 0.9)),
    TrainerKey("seed", "integer >= 0", 42,
               "random seed of the hold-out split and of the estimator",
               _number_between(INT, 0, None)),
    TrainerKey("ignore_columns", "names or 0-based indexes", [],
               "columns left out of the model (comma-separated or a JSON list)", _columns),
    TrainerKey("keep_columns", "names or 0-based indexes", [],
               "columns kept although they look like row identifiers (a text column distinct "
               "on 95 % of rows, an integer column counting the rows)", _columns),
    TrainerKey("sample_rows", "integer >= 0", 0,
               "several instances: the rows of the sample a model without a distributed form "
               "is fitted on (0: as many as a quarter of the first instance's memory holds)",
               _number_between(INT, 0, None)),
    TrainerKey("epochs", "integer >= 1", 5,
               "several instances: passes of an incremental model (sgd, or any estimator "
               "with partial_fit) over every instance's rows", _number_between(INT, 1, None)),
    TrainerKey("cluster_join_timeout", "seconds >= 1", 900,
               "several instances: how long the first instance waits for the others to join "
               "(their downloads of File-mode channels finish at different times)",
               _number_between(INT, 1, None)),
)}
# validation_fraction is the estimator's when it has a parameter of that name
# (HistGradientBoosting*, GradientBoosting*, SGD*, MLP*), and a deprecated name
# for holdout_fraction otherwise.
DEPRECATED_HOLDOUT_KEY = "validation_fraction"


def _json_object(key: str, raw: Any) -> dict[str, Any]:
    text = text_of(raw) if isinstance(raw, str) else raw
    value = {} if text == "" else json_of(text)
    if not isinstance(value, dict):
        raise HyperparameterError(key, raw, 'a JSON object such as {"max_depth": 6}')
    return {str(k): v for k, v in value.items()}


BUNDLE = TrainerKey("hyperparameters", "JSON object", None,
                    "more hyperparameters in one value, as one pipeline parameter passes "
                    'them: {"max_depth": 6, "ignore_columns": "id"}', _json_object)


def help_lines(width: int = 88) -> list[str]:
    """``train --help``'s table of hyperparameters, from :data:`TRAINER_KEYS` and
    :data:`BUNDLE`."""
    column = max(len(name) for name in TRAINER_KEYS) + 4
    lines = []
    for row in (*TRAINER_KEYS.values(), BUNDLE):
        default = row.default
        if isinstance(default, list):
            default = ",".join(default) or None
        lines.append(f"  {row.name:<{column - 2}}{row.takes}; default "
                     f"{'none' if default is None else default}")
        lines += textwrap.wrap(row.help, width, initial_indent=" " * column,
                               subsequent_indent=" " * column)
    return lines


# -- what an estimator's parameter takes -------------------------------------------------------
_NAMED_CONSTRAINTS = {
    "boolean": {BOOL}, "verbose": {INT, BOOL}, "random_state": {INT, NONE},
    "array-like": {JSON}, "sparse matrix": set(), "nan": {FLOAT}, "cv_object": {INT, JSON},
    "missing_values": {INT, FLOAT, STR, NONE}, "no_validation": {ANY},
}


def _constraint_kinds(constraint: Any) -> set[str]:
    """What one of scikit-learn's parameter constraints lets a hyperparameter string be."""
    if constraint is None:
        return {NONE}
    if isinstance(constraint, str):
        return set(_NAMED_CONSTRAINTS.get(constraint, {ANY}))
    kind = type(constraint).__name__
    if kind == "Hidden":
        return _constraint_kinds(getattr(constraint, "constraint", None))
    if kind in ("Interval", "Options", "StrOptions"):
        return _type_kinds(getattr(constraint, "type", None))
    if inspect.isclass(constraint):
        return _type_kinds(constraint)
    if callable(constraint) or kind == "HasMethods":
        return set()  # a function or an object: nothing a string can be
    return {ANY}


def _type_kinds(cls: Any) -> set[str]:
    if not inspect.isclass(cls):
        return {ANY}
    if issubclass(cls, bool):
        return {BOOL}
    if issubclass(cls, numbers.Integral):
        return {INT}
    if issubclass(cls, numbers.Real):
        return {FLOAT}
    if issubclass(cls, str):
        return {STR}
    if issubclass(cls, (dict, list, tuple)):
        return {JSON}
    return set()


def param_kinds(cls: type, key: str, default: Any) -> frozenset[str]:
    """What parameter ``key`` of ``cls`` takes: from its declared constraints, else its default."""
    constraints = declared_constraints(cls)
    if constraints is not None and isinstance(constraints.get(key), list):
        kinds: set[str] = set()
        for constraint in constraints[key]:
            kinds |= _constraint_kinds(constraint)
        if kinds:
            return frozenset(kinds)
    if isinstance(default, bool):
        return frozenset({BOOL})
    if isinstance(default, int):
        return frozenset({INT})
    if isinstance(default, float):
        return frozenset({FLOAT})
    return frozenset({ANY})


# -- the settings ------------------------------------------------------------------------------
@dataclass
class Settings:
    """Every hyperparameter of a built-in training job, typed."""

    model: Any  # estimators.ModelSpec
    target: str | None = None
    task: str = "auto"
    header: str = "auto"
    holdout_fraction: float = DEFAULT_HOLDOUT
    seed: int = 42
    # As given: names, or 0-based indexes, in the user's order.
    ignore_columns: list[str] = field(default_factory=list)
    keep_columns: list[str] = field(default_factory=list)
    sample_rows: int = 0
    epochs: int = 5
    cluster_join_timeout: int = 900
    # Per estimator class: its typed parameters; and the per-class typing errors,
    # raised once the task picks that class.
    params: dict[type, dict[str, Any]] = field(default_factory=dict)
    errors: dict[type, dict[str, HyperparameterError]] = field(default_factory=dict)
    # Keys that belong to only some of the model's classes: key -> those classes.
    owners: dict[str, list[type]] = field(default_factory=dict)
    objective: str | None = None  # "validation:accuracy", from automatic model tuning
    # Keys the user gave, so the trainer's own defaults never override them.
    given: frozenset[str] = frozenset()


def read_settings(raw: dict[str, Any]) -> Settings:
    """Every hyperparameter typed and checked as far as it can be before the data is read."""
    given = {k: v for k, v in raw.items() if not is_platform_key(k) and text_of(v) != ""}
    typed = {name: row.parse(name, given[name]) if name in given else copy.copy(row.default)
             for name, row in TRAINER_KEYS.items()}
    model = resolve_model(typed.pop("model"))
    settings = Settings(model=model, **typed)
    objective = raw.get(TUNING_OBJECTIVE_KEY)
    settings.objective = text_of(objective) or None if objective is not None else None

    classes = model.classes()
    defaults = {cls: constructor_defaults(cls) for cls in classes}
    estimator_keys = {k for k in raw if not is_platform_key(k) and k not in TRAINER_KEYS}
    if DEPRECATED_HOLDOUT_KEY in estimator_keys \
            and not any(DEPRECATED_HOLDOUT_KEY in d for d in defaults.values()):
        estimator_keys.discard(DEPRECATED_HOLDOUT_KEY)
        _deprecated_holdout(raw, settings, classes)
    settings.params = {cls: {} for cls in classes}
    settings.errors = {cls: {} for cls in classes}
    others = None
    for key in sorted(estimator_keys):
        owners = [cls for cls in classes if key in defaults[cls]]
        if not owners:
            others = others if others is not None else all_known_params()
            if key in others:
                log.warning("hyperparameter %r is not a parameter of %s; ignored", key,
                            " or ".join(c.__name__ for c in classes))
                continue
            raise _unknown_key(key, raw[key], classes, defaults)
        values = {}
        for cls in owners:
            kinds = param_kinds(cls, key, defaults[cls][key])
            try:
                values[cls] = type_value(key, raw[key], kinds,
                                         hint=f"{cls.__name__}.{key} (default "
                                              f"{defaults[cls][key]!r})")
            except HyperparameterError as exc:
                settings.errors[cls][key] = exc
        if not values:
            raise settings.errors[owners[0]][key]
        for cls, value in values.items():
            settings.params[cls][key] = value
        if len(owners) < len(classes):
            settings.owners[key] = owners
    settings.given = frozenset(k for k in raw if not is_platform_key(k))
    ignored = sorted(k for k in raw if is_platform_key(k) and k != TUNING_OBJECTIVE_KEY)
    if ignored:
        log.info("ignoring platform hyperparameters: %s", ", ".join(ignored))
    return settings


def _deprecated_holdout(raw: dict[str, Any], settings: Settings, classes: list[type]) -> None:
    key = DEPRECATED_HOLDOUT_KEY
    names = " or ".join(c.__name__ for c in classes)
    if "holdout_fraction" in raw:
        raise HyperparameterError(
            key, raw[key], "left out when holdout_fraction is given",
            hint=f"{names} has no parameter {key}, so it would set the same "
                 "hold-out as holdout_fraction: give holdout_fraction only")
    settings.holdout_fraction = TRAINER_KEYS["holdout_fraction"].parse(key, raw[key])
    log.warning("hyperparameter %r sets the trainer's hold-out because %s has no parameter "
                "of that name; this use is deprecated: name it holdout_fraction", key, names)


def _unknown_key(key: str, raw: Any, classes: list[type],
                 defaults: dict[type, dict[str, Any]]) -> HyperparameterError:
    names = sorted({name for cls in classes for name in defaults[cls]})
    trainer = list(TRAINER_KEYS)
    close = difflib.get_close_matches(key, names + trainer, n=1)
    owners = " / ".join(c.__name__ for c in classes)
    return HyperparameterError(
        key, raw, f"a parameter of {owners} or a trainer setting",
        hint=("did you mean " + repr(close[0]) + "? " if close else "")
        + "trainer settings: " + ", ".join(trainer)
        + f"; {owners} parameters: " + ", ".join(names),
    )
