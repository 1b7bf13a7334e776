"""The loaded model and how a batch of records becomes predictions."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from sklearn_byoc.common.model_files import LoadedModel, load_model
from sklearn_byoc.serve.codecs import Prediction
from sklearn_byoc.serve.fast_preprocess import compile_preprocess
from sklearn_byoc.serve.schema import Records, Schema

log = logging.getLogger("serve")


class Predictor:
    """One worker's model: loaded once, used by every request."""

    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.metadata = loaded.metadata
        self.schema = Schema(loaded.metadata)
        self.is_classifier = loaded.metadata.is_classifier
        self.has_probabilities = self.is_classifier and hasattr(self.model, "predict_proba")
        classes = getattr(self.model, "classes_", None) if self.is_classifier else None
        self.classes = list(classes) if classes is not None else (loaded.metadata.classes or [])
        self._class_array = np.asarray(self.classes, dtype=object)
        self._single_threaded()
        self.fast = compile_preprocess(self.model, self.schema)
        self.estimator = self.model.steps[-1][1] if self.fast is not None else None
        log.info("request path: %s", "numpy preprocessing + estimator" if self.fast
                 else "scikit-learn pipeline")

    @classmethod
    def from_dir(cls, model_dir: Path) -> "Predictor":
        return cls(load_model(model_dir))

    def _single_threaded(self) -> None:
        """Serving runs one worker per core: an estimator must not start its own threads."""
        try:
            params = self.model.get_params()
        except Exception:  # noqa: BLE001 - not a scikit-learn estimator
            return
        updates = {k: 1 for k in params if k.endswith("n_jobs") and params[k] not in (None, 1)}
        if updates:
            self.model.set_params(**updates)

    def predict(self, records: Records, *, probabilities: bool = False) -> Prediction:
        import sklearn

        want_proba = probabilities and self.has_probabilities
        if self.fast is not None:
            X = self.fast.transform(records)
            model = self.estimator
            # The matrix is finite (imputed) and was checked by the schema.
            context = sklearn.config_context(assume_finite=True,
                                             skip_parameter_validation=True)
        else:
            X = records.frame()
            model = self.model
            context = sklearn.config_context(skip_parameter_validation=True)
        with context:
            if want_proba:
                proba = np.asarray(model.predict_proba(X), dtype=np.float64)
                labels = self._class_array[proba.argmax(axis=1)]
                return Prediction(labels, proba, self.classes)
            labels = np.asarray(model.predict(X))
        return Prediction(labels, None, self.classes if self.is_classifier else None)
