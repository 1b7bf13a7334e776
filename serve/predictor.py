"""The loaded model and how a batch of records becomes predictions."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from common.model_files import LoadedModel, load_model
from serve.codecs import Prediction
from serve.schema import Records, Schema

log = logging.getLogger("serve")


class Predictor:
    """One worker's model: loaded once, used by every request."""

    def __init__(self, loaded: LoadedModel):
        self.model = loaded.model
        self.metadata = loaded.metadata
        self.schema = Schema(loaded.metadata)
        self.is_classifier = loaded.metadata.is_classifier
        self.has_probabilities = self.is_classifier and hasattr(self.model, "predict_proba")
        self.classes = list(getattr(self.model, "classes_", None) if self.is_classifier
                            and hasattr(self.model, "classes_") else loaded.metadata.classes or [])
        self._single_threaded()

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

        frame = records.frame()
        # Inputs were typed and checked by the schema; skip repeated validation.
        with sklearn.config_context(skip_parameter_validation=True):
            if probabilities and self.has_probabilities:
                proba = np.asarray(self.model.predict_proba(frame), dtype=np.float64)
                labels = np.asarray(self.classes, dtype=object)[proba.argmax(axis=1)]
                return Prediction(labels, proba, self.classes)
            labels = np.asarray(self.model.predict(frame))
        return Prediction(labels, None, self.classes if self.is_classifier else None)
