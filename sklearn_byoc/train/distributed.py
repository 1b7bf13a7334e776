"""The built-in trainer on several hosts: the data stays where it was read, models and
summaries move.

Every step is a plain function run on each host against that host's ``store``
(a dict that lives as long as the host's process) or on the leader with what the
hosts returned.  :class:`Hosts` is all it needs of the cluster: run a function on
every host, or on one.  ``train/cluster.py`` gives it with Dask; the metric sums are in ``host_scores.py``; tests give it
in-process with :class:`LocalHosts`.

What the model needs to know of all the data, and how it is combined:

============================  =====================================================
row counts, class counts      exactly (sums)
column kinds                  exactly: a column categorical on any host is categorical,
                              one read as dates on any host is a date feature, with an
                              hour part when any host's values hold times
levels of categorical columns exactly (union of each host's level set), given to the
                              encoder as its categories
task (auto)                   exactly, from each host's distinct target values
hold-out split                exactly the same rows whichever host reads them: a row is
                              held out when a seeded hash of its values falls below the
                              fraction (not stratified)
numeric imputer's median,     approximately: from a uniform random sample of rows of all
scaler's mean and deviation   hosts (the fit sample, at least 10,000 rows where the data
                              has them): the median's rank error is about 1/sqrt(sample)
accuracy, precision, recall,  exactly (confusion counts summed)
F1, balanced accuracy
log loss, mse, rmse, mae, r2  exactly (sums)
AUC                           approximately: from per-class histograms of 1,000 score bins
                              (scores within one bin count as ties), error below 0.001
                              in practice
============================  =====================================================
"""
from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Protocol

import numpy as np
import pandas as pd

from sklearn_byoc.common.dates import column_kinds, parts_for
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("train")

# Models that fit their share of trees on each host.
FOREST_MODELS = ("random_forest", "extra_trees")
# The fewest rows the fit sample takes where the data has them (the preprocessing's
# statistics come from it).
MIN_SAMPLE_ROWS = 10_000
PROGRESS_EVERY = 5.0  # seconds between the leader's progress lines


class Hosts(Protocol):
    """The hosts of one job: ``each`` runs ``fn(store, *args, *per_host[host])`` on every host
    at once and returns {host: result}; ``on`` runs ``fn(store, *args)`` on one host."""

    names: tuple[str, ...]

    def each(self, fn: Callable, *args: Any,
             per_host: dict[str, tuple] | None = None) -> dict[str, Any]: ...

    def on(self, host: str, fn: Callable, *args: Any) -> Any: ...


class LocalHosts:
    """Hosts in this process, one store each (tests, and the reference for the Dask glue)."""

    def __init__(self, names: Iterable[str]):
        self.names = tuple(names)
        self.stores: dict[str, dict] = {name: {} for name in self.names}

    def each(self, fn: Callable, *args: Any,
             per_host: dict[str, tuple] | None = None) -> dict[str, Any]:
        return {name: fn(self.stores[name], *args, *(per_host or {}).get(name, ()))
                for name in self.names}

    def on(self, host: str, fn: Callable, *args: Any) -> Any:
        return fn(self.stores[host], *args)


class Progress:
    """The leader's "still alive" lines: at most one every few seconds, and the last."""

    def __init__(self, what: str, total: int, every: float = PROGRESS_EVERY):
        self.what, self.total, self.every = what, total, every
        self.done, self.last = 0, time.monotonic()

    def step(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.every or self.done >= self.total:
            log.info("progress: %s %d of %d", self.what, self.done, self.total)
            self.last = now


# -- per host: read, then type like every other host ---------------------------------------
@dataclass
class ShareSummary:
    """What a host tells the leader about the rows it read."""

    rows: int
    columns: list[str]
    kinds: dict[str, str]
    target: str | None
    has_header: bool = True
    all_columns: list[str] = field(default_factory=list)  # before ignore_columns
    ignored: list[str] = field(default_factory=list)
    target_numeric: bool = True
    # Up to 21 distinct target values (task=auto needs to know "more than 20").
    target_values: list = field(default_factory=list)
    validation_rows: int = 0
    identifiers: list[str] = field(default_factory=list)  # columns that identify its rows
    dates: dict[str, bool] = field(default_factory=dict)  # date column -> holds times


def read_share(store: dict, settings, has_validation: bool) -> ShareSummary:
    """Read this host's share of the training (and validation) channel into ``store``.

    ``store["read"](role)``, set where the host starts, returns this host's rows of the
    channel of that role ("training" or "validation") as a typed :class:`Table`."""
    from sklearn_byoc.common.tables.target import resolve_target
    from sklearn_byoc.train import data

    read = store["read"]
    table = read("training")
    store["table"] = table
    columns = [str(c) for c in table.frame.columns]
    if not len(table.frame):
        store.update(X=None, y=None)
        return ShareSummary(0, columns, {}, None, table.has_header, list(table.all_columns),
                            list(table.ignored))
    target = resolve_target(table, settings.target)
    X, y = data.split_xy(table, target, "training")
    store.update(X=X, y=y, target=target)
    present = y.dropna()
    numeric = bool(pd.api.types.is_numeric_dtype(present)
                   and not pd.api.types.is_bool_dtype(present))
    from sklearn_byoc.common.tables.columns import identifier_columns

    keep = [c for c in store.get("keep", ()) if c in X.columns]
    summary = ShareSummary(len(X), columns, data.feature_kinds(X), target, table.has_header,
                           list(table.all_columns), list(table.ignored), numeric,
                           list(pd.unique(present)[:21]),
                           identifiers=identifier_columns(X.drop(columns=keep))[0],
                           dates=dict(table.dates))
    if has_validation:
        val = read("validation")
        store["val_table"] = val
        summary.validation_rows = len(val.frame)
    return summary


@dataclass
class Plan:
    """What the leader decided from every host's summary, sent back to each."""

    target: str
    task: str
    kinds: dict[str, str]
    columns: list[str]  # feature columns, in file order
    ignored: list[str]  # ignore_columns, and columns that identify rows on every host
    holdout_fraction: float | None  # None: the validation channel is the hold-out
    seed: int
    parts: dict[str, list[str]] = field(default_factory=dict)  # date feature -> its parts

    @property
    def model_kinds(self) -> dict[str, str]:
        """The pipeline's columns and their kinds: each date feature as its parts."""
        return column_kinds(self.kinds, self.parts)


def plan(summaries: dict[str, ShareSummary], settings, has_validation: bool) -> Plan:
    """The target, task and column kinds of the whole data."""
    from sklearn_byoc.common.tables.target import infer_task

    with_rows = {h: s for h, s in summaries.items() if s.rows}
    if not with_rows:
        raise UserError("no host read any training rows: the training channel is empty on "
                        "every instance")
    first = next(iter(with_rows.values()))
    targets = {s.target for s in with_rows.values()}
    if len(targets) > 1:
        raise UserError(f"the hosts' data disagree on the target column ({sorted(targets)}): "
                        "every file of the channel must have the same columns")
    for host, summary in with_rows.items():
        if summary.columns != first.columns:
            raise UserError(f"the data {host} read has the columns {summary.columns[:20]}, "
                            f"others have {first.columns[:20]}: every file of the channel "
                            "must have the same columns")
    identifiers = [c for c in first.kinds
                   if all(c in s.identifiers for s in with_rows.values())]
    for name in identifiers:
        log.warning("leaving out column %r: it identifies rows, which teaches a model nothing "
                    "about new rows; keep_columns=%s keeps it", name, name)
    kinds, parts = {}, {}
    for name in (c for c in first.kinds if c not in identifiers):
        seen = {s.kinds[name] for s in with_rows.values()}
        if "date" in seen:
            # A host whose share of the column is not all dates fails naming its first cell.
            kinds[name] = "date"
            parts[name] = parts_for(any(s.dates.get(name, False) for s in with_rows.values()))
            continue
        kinds[name] = "categorical" if "categorical" in seen else "numeric"
    if settings.task != "auto":
        task = settings.task
    elif not all(s.target_numeric for s in with_rows.values()):
        task = "classification"
    else:
        values = pd.unique(pd.Series([v for s in with_rows.values() for v in s.target_values]))
        task = infer_task(pd.Series(values[:21]))
    ignored = [c for c in first.all_columns if c in set(first.ignored) | set(identifiers)]
    return Plan(first.target, task, kinds, list(kinds), ignored,
                None if has_validation else settings.holdout_fraction, settings.seed, parts)


def heldout_mask(X: pd.DataFrame, y: pd.Series, kinds: dict[str, str], fraction: float,
                 seed: int) -> np.ndarray:
    """Which rows the hold-out takes: a seeded hash of each row's typed values, so a row
    lands on the same side whichever host reads it."""
    # Numbers as float64 (an integer column may be read as int64 on one host and float64 on
    # another), -0.0 as 0.0 (+ 0.0 does it: the hashes of the two differ).
    canonical = pd.DataFrame({
        name: (X[name].astype("float64") + 0.0 if kinds[name] == "numeric"
               else X[name].astype(str))
        for name in X.columns})
    canonical["__target__"] = y.astype(str).to_numpy()
    hashes = pd.util.hash_pandas_object(canonical, index=False).to_numpy(dtype=np.uint64)
    with np.errstate(over="ignore"):
        mixed = (hashes ^ np.uint64(seed)) * np.uint64(0x9E3779B97F4A7C15)
        mixed ^= mixed >> np.uint64(31)
    return (mixed >> np.uint64(11)).astype(np.float64) / float(1 << 53) < fraction


@dataclass
class Prepared:
    """A host's rows once typed and split: counts the leader adds up."""

    fit_rows: int
    heldout_rows: int
    class_counts: dict = field(default_factory=dict)
    levels: dict[str, list] = field(default_factory=dict)  # categorical column -> its levels
    missing: dict[str, bool] = field(default_factory=dict)  # categorical column -> any missing


def prepare_share(store: dict, plan_: Plan) -> Prepared:
    """Type this host's rows as the whole data is typed, and split off its hold-out rows."""
    from sklearn_byoc.common.tables.columns import conform_features
    from sklearn_byoc.train import data
    from sklearn_byoc.train.trainer import labels

    table, X, y = store.get("table"), store.get("X"), store.get("y")
    if X is None:
        empty = pd.DataFrame({c: pd.Series(dtype="float64" if kind == "numeric" else object)
                              for c, kind in plan_.model_kinds.items()})
        store.update(X_fit=empty, y_fit=pd.Series(dtype=object), X_val=empty,
                     y_val=pd.Series(dtype=object))
        store.pop("table", None)
        return Prepared(0, _validation_rows(store, plan_))
    X = conform_features(X[plan_.columns], plan_.kinds, table, "training data", plan_.parts)
    if plan_.task == "classification":
        y = labels(y)
    if plan_.holdout_fraction is None:
        X_fit, y_fit = X, y
        val = store.pop("val_table")
        X_val, y_val = data.split_xy(val, plan_.target, "validation")
        X_val = conform_features(data.align_validation(X_val, plan_.columns, table.files[0].parent
                                                       if table.files else None),
                                 plan_.kinds, val, "validation data", plan_.parts)
        if plan_.task == "classification":
            y_val = labels(y_val)
    else:
        held = heldout_mask(X, y, plan_.model_kinds, plan_.holdout_fraction, plan_.seed)
        X_fit, y_fit, X_val, y_val = X[~held], y[~held], X[held], y[held]
    # The full frame is dropped once the split is made: the host keeps each row once.
    for key in ("table", "X", "y"):
        store.pop(key, None)
    store.update(X_fit=X_fit, y_fit=y_fit, X_val=X_val, y_val=y_val)
    prepared = Prepared(len(X_fit), len(X_val))
    if plan_.task == "classification":
        prepared.class_counts = {k: int(v) for k, v in y_fit.value_counts().items()}
    for name, kind in plan_.kinds.items():
        if kind == "categorical":
            column = X_fit[name]
            prepared.levels[name] = [v for v in pd.unique(column.dropna())]
            prepared.missing[name] = bool(column.isna().any())
    return prepared


def _validation_rows(store: dict, plan_: Plan) -> int:
    """A host with no training rows may still hold validation rows."""
    val = store.pop("val_table", None)
    if val is None or not len(val.frame):
        return 0
    raise UserError("a host holds validation rows but no training rows: give the validation "
                    "channel the same distribution as the training channel")


# -- the sample --------------------------------------------------------------------------------
def draw_sample(store: dict, share: float, seed: int) -> tuple[pd.DataFrame, pd.Series]:
    """This host's rows of a uniform random sample of all the fit rows: each row is taken
    with probability ``share``."""
    X, y = store["X_fit"], store["y_fit"]
    if share >= 1.0 or not len(X):
        return X, y
    take = np.random.default_rng(seed).random(len(X)) < share
    return X[take], y[take]


def sample_size(total_rows: int, bytes_per_row: float, budget: int | None,
                sample_rows: int | None) -> int:
    """How many rows the leader fits on: ``sample_rows`` when given, else as many as a
    quarter of its memory budget holds (a fit takes several times its data), at least
    :data:`MIN_SAMPLE_ROWS`."""
    if sample_rows:
        return min(total_rows, sample_rows)
    if budget is None or bytes_per_row <= 0:
        return total_rows
    fits = int(budget / 4 / bytes_per_row)
    return min(total_rows, max(MIN_SAMPLE_ROWS, fits))


def bytes_per_row(store: dict) -> float:
    X = store.get("X_fit")
    if X is None or not len(X):
        return 0.0
    return float(X.memory_usage(deep=True).sum()) / len(X)


# -- models on many hosts ----------------------------------------------------------------------
def forest_shares(n_estimators: int, rows: dict[str, int]) -> dict[str, int]:
    """Trees per host, in proportion to its rows (largest remainders; a host without rows
    fits none)."""
    total = sum(rows.values())
    exact = {h: n_estimators * r / total for h, r in rows.items()}
    shares = {h: int(math.floor(v)) for h, v in exact.items()}
    left = n_estimators - sum(shares.values())
    for host in sorted(exact, key=lambda h: (shares[h] - exact[h], h))[:left]:
        shares[host] += 1
    return shares


def fit_forest_share(store: dict, preprocess, forest, classes: list | None, n_trees: int,
                     seed: int):
    """This host's trees, fitted on its own rows.

    A host whose rows lack some classes gets one row of each missing class with weight 0, so
    its trees have the output shape of every class and the weights of its own rows."""
    from sklearn.base import clone

    X, y = store["X_fit"], store["y_fit"]
    if n_trees == 0 or not len(X):
        return None
    weights = None
    if classes is not None:
        missing = [c for c in classes if c not in set(pd.unique(y))]
        if missing:
            X = pd.concat([X, X.iloc[[0] * len(missing)]], ignore_index=True)
            y = pd.concat([y.reset_index(drop=True), pd.Series(missing, dtype=y.dtype)],
                          ignore_index=True)
            weights = np.r_[np.ones(len(y) - len(missing)), np.zeros(len(missing))]
    model = clone(forest).set_params(n_estimators=n_trees, random_state=seed)
    model.fit(preprocess.transform(X), y.to_numpy(), sample_weight=weights)
    return model


def merge_forests(parts: list, n_estimators: int):
    """One forest of every host's trees: an ordinary scikit-learn forest for serving."""
    parts = [p for p in parts if p is not None]
    merged = parts[0]
    merged.estimators_ = [tree for part in parts for tree in part.estimators_]
    merged.n_estimators = len(merged.estimators_)
    assert merged.n_estimators == n_estimators, (merged.n_estimators, n_estimators)
    return merged


def partial_fit_share(store: dict, preprocess, model, classes: list | None, epoch: int,
                      seed: int, batch_rows: int = 10_000):
    """One pass of ``model.partial_fit`` over this host's rows, in seeded shuffled batches."""
    X, y = store["X_fit"], store["y_fit"]
    if not len(X):
        return model
    order = np.random.default_rng([seed, epoch]).permutation(len(X))
    for start in range(0, len(order), batch_rows):
        rows = order[start:start + batch_rows]
        Xt = preprocess.transform(X.iloc[rows])
        if classes is not None:
            model.partial_fit(Xt, y.iloc[rows].to_numpy(), classes=np.asarray(classes,
                                                                              dtype=object))
        else:
            model.partial_fit(Xt, y.iloc[rows].to_numpy())
    return model
