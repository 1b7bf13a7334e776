"""What is being served: the model, what it expects, and how records become predictions.

Three kinds of model reach here, and all take the same request path:

- a model made by ``train``: ``model.joblib`` with ``metadata.json`` (feature
  names, order and kinds, the target, the classes);
- a model file alone (``model.joblib`` or ``model.pkl``, written by plain
  scikit-learn code or a script for AWS's scikit-learn image): what it
  expects is read from the estimator itself (describe.py);
- whatever a user's ``model_fn`` returned: described the same way when it is
  a fitted scikit-learn estimator, else served without a schema.

Nothing here knows of HTTP.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from sklearn_byoc.common import compat
from sklearn_byoc.common.model_files import ModelMetadata, load_model
from sklearn_byoc.serve.describe import describe_estimator, is_classifier
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.common.fast_preprocess import compile_preprocess
from sklearn_byoc.serve.fast_linear import compile_linear
from sklearn_byoc.serve.fast_trees import SMALL_ROWS, FastTrees, compile_trees
from sklearn_byoc.serve.formats.output import Prediction
from sklearn_byoc.serve.probe import probe
from sklearn_byoc.serve.schema import Records, Schema

log = logging.getLogger("serve")

class ServedModel:
    """One worker's model: loaded once, used by every request."""

    def __init__(self, estimator: Any, metadata: ModelMetadata | None, *,
                 named: bool = True, source: str = ""):
        self.estimator = estimator
        self.metadata = metadata
        self.source = source
        # Fitted on a DataFrame with column names (else on a bare array).
        self.named = named
        self.schema = Schema(metadata) if metadata is not None else None
        self.is_classifier = bool(metadata and metadata.is_classifier) or \
            (metadata is None and is_classifier(estimator))
        self.has_probabilities = self.is_classifier and hasattr(estimator, "predict_proba")
        classes = getattr(estimator, "classes_", None) if self.is_classifier else None
        self.classes = list(classes) if classes is not None else \
            list((metadata.classes if metadata else None) or [])
        self._class_array = np.asarray(self.classes, dtype=object)
        _single_threaded(estimator)
        self.fast = compile_preprocess(estimator, self.schema.model_kinds) \
            if self.schema else None
        self._final = estimator.steps[-1][1] if self.fast is not None else None
        # The model itself in numpy (trees for small requests, a linear model for any):
        # the pipeline's last step once the preprocessing is replayed, else a model
        # served alone on an array of numbers.
        final = self._final if self._final is not None else \
            estimator if not self.named and self.schema else None
        self.numpy_model = None
        if final is not None:
            self.numpy_model = compile_trees(final) or compile_linear(final)

    # -- loading ------------------------------------------------------------------------------
    @classmethod
    def from_dir(cls, model_dir: Path) -> "ServedModel":
        """The model of a model folder: train's, or a model file alone."""
        started = time.perf_counter()
        loaded = load_model(model_dir, require_metadata=False, check_versions=False)
        read = time.perf_counter()
        # A model pickled by another scikit-learn line is served only once it predicts.
        with loaded.version_check() as check:
            if loaded.metadata is not None:
                model = cls(loaded.model, loaded.metadata, source=str(loaded.directory))
            else:
                model = cls.wrap(loaded.model, source=str(loaded.directory))
            if check.other_line:
                check.probed = probe(model)
        model.log_loaded(read - started, time.perf_counter() - read)
        return model

    @classmethod
    def wrap(cls, estimator: Any, source: str = "model_fn") -> "ServedModel":
        """A model without metadata.json: described from the estimator where it can be."""
        if not hasattr(estimator, "predict"):
            return cls(estimator, None, named=False, source=source)
        described = describe_estimator(estimator)
        if described is None:
            log.info("%s: %s says nothing of its features (no n_features_in_); requests are "
                     "decoded without a schema", source, type(estimator).__name__)
            return cls(estimator, None, named=False, source=source)
        metadata, named, rule = described
        if rule:
            log.info("%s: %s", source, rule)
        return cls(estimator, metadata, named=named, source=source)

    def log_loaded(self, read_s: float, prepared_s: float) -> None:
        """The start-up lines: what was loaded, in how long (``read_s``: unpickling;
        ``prepared_s``: the request path built and checked against scikit-learn)."""
        if self.schema is None:
            log.info("loaded %s from %s in %.2f s (no schema)", type(self.estimator).__name__,
                     self.source, read_s)
            return
        metadata = self.metadata
        log.info("loaded %s (%s, %d features%s) from %s in %.2f s",
                 metadata.estimator or type(self.estimator).__name__, metadata.task,
                 self.schema.width, "" if self.named else ", by position", self.source, read_s)
        final = "estimator" if self.fast else "scikit-learn pipeline"
        if isinstance(self.numpy_model, FastTrees):
            final = f"numpy trees up to {SMALL_ROWS} rows, else estimator"
        elif self.numpy_model is not None:
            final = "numpy linear model"
        log.info("request path: %s%s (built and checked in %.0f ms)",
                 "numpy preprocessing + " if self.fast else "", final, prepared_s * 1000)

    # -- predicting ---------------------------------------------------------------------------
    def check_output(self, output: str) -> None:
        if output != "label" and not self.has_probabilities:
            kind = self.metadata.task if self.metadata else type(self.estimator).__name__
            raise RequestError(f"output={output} needs class probabilities, which this "
                               f"{kind} model does not give; use output=label")

    def model_input(self, records: Records):
        """The records as the estimator was fitted on them."""
        return records.frame() if self.named else records.array(np.float64)

    def predict(self, records: Records, *, probabilities: bool = False) -> Prediction:
        if records.n == 0:
            return Prediction(np.empty(0, dtype=object),
                              np.empty((0, len(self.classes))) if probabilities else None,
                              self.classes if self.is_classifier else None)
        want_proba = probabilities and self.has_probabilities
        if self.fast is not None:
            X = self.fast.transform(records.columns, records.n)
            model = self._final
            # The schema refused infinity; a missing value is imputed, or NaN for an
            # estimator that takes it (compile_preprocess).
            context = compat.fast_config(assume_finite=True)
        else:
            X = self.model_input(records)
            model = self.estimator
            context = compat.fast_config()
        with context:
            try:
                return self._predict(model, X, want_proba)
            except ValueError:
                refused = self._refused_missing(records)
                if refused is not None:
                    raise refused from None
                raise

    def _refused_missing(self, records: Records) -> RequestError | None:
        """The caller's error when the model failed on a missing value it declares it
        cannot take (a model saved without an imputer); None when the failure is the
        model's own."""
        if self.fast is not None or not compat.refuses_missing(self.estimator):
            return None
        first = None
        for name, values in records.columns.items():
            if isinstance(values, np.ndarray) and values.dtype.kind == "f":
                missing = np.flatnonzero(np.isnan(values))
                if len(missing) and (first is None or missing[0] < first[0]):
                    first = (int(missing[0]), name)
        if first is None:
            return None
        row = records.first_row + first[0]
        return RequestError(
            f"row {row}, feature {first[1]!r} is missing, and this "
            f"{type(self.estimator).__name__} model takes no missing values; send a number "
            "(or serve a model that imputes them)", kind="missing value", row=row,
            feature=first[1])

    def predict_value(self, data, *, probabilities: bool = False) -> Prediction:
        """Predictions for what a user's input_fn returned."""
        if self.schema is not None:
            return self.predict(to_records(data, self.schema), probabilities=probabilities)
        return self._predict(self.estimator, data, probabilities and self.has_probabilities)

    def _predict(self, model, X, want_proba: bool) -> Prediction:
        if self.numpy_model is not None and self.numpy_model.takes(X):
            model = self.numpy_model
        if want_proba:
            proba = np.asarray(model.predict_proba(X), dtype=np.float64)
            labels = self._class_array[proba.argmax(axis=1)]
            return Prediction(labels, proba, self.classes)
        labels = np.asarray(model.predict(X))
        if labels.ndim == 0:
            labels = labels.reshape(1)
        return Prediction(labels, None, self.classes if self.is_classifier else None)


def _single_threaded(estimator) -> None:
    """Serving runs one worker per core: an estimator must not start its own threads."""
    try:
        params = estimator.get_params()
    except Exception:  # noqa: BLE001 - not a scikit-learn estimator
        return
    updates = {k: 1 for k in params if k.endswith("n_jobs") and params[k] not in (None, 1)}
    if updates:
        try:
            estimator.set_params(**updates)
        except Exception:  # noqa: BLE001 - a parameter that cannot be set after fitting
            pass


def to_records(data, schema: Schema) -> Records:
    """What a user's input_fn returned, typed by the model's schema."""
    if isinstance(data, Records):
        return data
    if hasattr(data, "columns") and hasattr(data, "to_dict"):  # a DataFrame
        return schema.from_named_rows(data.to_dict(orient="records"))
    if isinstance(data, np.ndarray) and data.dtype.kind in "iuf" and data.ndim in (1, 2):
        return schema.from_numeric_array(data.reshape(1, -1) if data.ndim == 1 else data)
    rows = data.tolist() if isinstance(data, np.ndarray) else list(data)
    if rows and all(isinstance(r, dict) for r in rows):
        return schema.from_named_rows(rows)
    if rows and not isinstance(rows[0], (list, tuple)):
        rows = [rows]
    return schema.from_positional_rows([list(r) for r in rows])
