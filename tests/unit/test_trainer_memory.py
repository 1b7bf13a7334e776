"""The trainer holds each row once: the frame as read is gone before the estimator fits."""
import gc
import weakref

import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.train import trainer
from sklearn_byoc.train.hyperparameters import read_settings

# Weak references to the arrays under the columns of the frame as read, and whether each
# was still alive when the estimator began to fit.
READ: list = []
ALIVE_AT_FIT: list = []


def root(array: np.ndarray) -> np.ndarray:
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class FitChecks(LogisticRegression):
    def fit(self, X, y, sample_weight=None):
        gc.collect()
        ALIVE_AT_FIT.append([ref() is not None for ref in READ])
        return super().fit(X, y, sample_weight=sample_weight)


def test_the_frame_as_read_is_gone_when_the_estimator_fits(tmp_path, monkeypatch):
    real = trainer.read_channel

    def reading(*args, **kwargs):
        table = real(*args, **kwargs)
        READ[:] = [weakref.ref(root(table.frame[c].to_numpy())) for c in table.frame.columns]
        return table

    monkeypatch.setattr(trainer, "read_channel", reading)
    rng = np.random.default_rng(3)
    n = 2000
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                          "plan": rng.choice(["gold", "basic"], n)})
    frame["label"] = np.where(frame["a"] > 0, "yes", "no")
    base = tmp_path / "ml"
    (base / "input" / "data" / "train").mkdir(parents=True)
    frame.to_csv(base / "input" / "data" / "train" / "d.csv", index=False)
    ALIVE_AT_FIT.clear()
    settings = read_settings({"target": "label", "model": f"{__name__}.FitChecks"})
    result = trainer.train(Paths(base), settings, {})
    assert result.metrics["validation"]["accuracy"] > 0.9
    assert len(READ) == 4 and ALIVE_AT_FIT == [[False] * 4]
