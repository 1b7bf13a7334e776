"""The hold-out split and the validation metrics of a seeded job, as the trainer gave them
before the split stratified on integer codes and the label came from predict_proba, and
(gradient boosting, on rows with no missing value) before its imputers went and the rows
were encoded by the numpy replay: the expected values below were computed by that earlier
code, not by the code under test."""
import hashlib

import numpy as np
import pandas as pd
import pytest
import sklearn

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.train import small_data, trainer
from sklearn_byoc.train.hyperparameters import read_settings

HOLDOUT_ROWS = "cd5cf6d3558b21aa"  # sha256 of the held-out row numbers, first 16 digits
VALIDATION = {"accuracy": 0.6766666666666666, "auc": 0.7273223665198509,
              "balanced_accuracy": 0.5366195856873822, "f1": 0.5356159376263888,
              "log_loss": 5.50348500856162, "precision": 0.5349675173525489,
              "recall": 0.5366195856873822}
GRADIENT_BOOSTING = {"accuracy": 0.7683333333333333, "auc": 0.7735167561450768,
                     "balanced_accuracy": 0.5691713747645951, "f1": 0.5390500461281483,
                     "log_loss": 0.6621325255702085, "precision": 0.5132275132275131,
                     "recall": 0.5691713747645951}


def seeded(n: int = 3000, seed: int = 11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = rng.normal(size=n)
    colour = rng.choice(["red", "blue", "green"], n)
    label = np.where(a + (colour == "red") + rng.normal(scale=.5, size=n) > .5, "yes", "no")
    label[rng.random(n) < .1] = "maybe"
    return pd.DataFrame({"label": label, "a": a.round(3), "colour": colour})


def test_the_hold_out_takes_the_same_rows():
    frame = seeded()
    X, y = frame.drop(columns=["label"]), frame["label"].astype(object)
    _, X_val, _, _ = small_data.holdout(X, y, "classification", 0.2, 42)
    digest = hashlib.sha256(",".join(map(str, sorted(X_val.index))).encode()).hexdigest()
    assert digest[:16] == HOLDOUT_ROWS


@pytest.mark.skipif(not sklearn.__version__.startswith("1.9."),
                    reason="the forest's scores are those of the default scikit-learn line")
@pytest.mark.parametrize("hyperparameters, expected", [
    ({"model": "random_forest", "n_estimators": "20"}, VALIDATION),
    ({"max_iter": "30"}, GRADIENT_BOOSTING),
], ids=["random_forest", "gradient_boosting"])
def test_the_validation_metrics_are_the_same(tmp_path, hyperparameters, expected):
    base = tmp_path / "ml"
    (base / "input" / "data" / "train").mkdir(parents=True)
    seeded().to_csv(base / "input" / "data" / "train" / "d.csv", index=False)
    settings = read_settings({"target": "label", **hyperparameters})
    result = trainer.train(Paths(base), settings, {})
    assert result.metrics["validation"] == pytest.approx(expected, rel=1e-12)


def test_the_train_lines_score_a_seeded_sample_of_large_fits(caplog):
    frame = pd.DataFrame({"a": np.arange(trainer.TRAIN_SCORE_ROWS + 500)})
    y = frame["a"] % 2
    small_X, small_y = trainer.scored_training_rows(frame.head(300), y.head(300), 7)
    assert small_X.index.equals(frame.head(300).index) and small_y.equals(y.head(300))
    with caplog.at_level("INFO", logger="train"):
        X1, y1 = trainer.scored_training_rows(frame, y, 7)
    X2, _ = trainer.scored_training_rows(frame, y, 7)
    X3, _ = trainer.scored_training_rows(frame, y, 8)
    assert len(X1) == trainer.TRAIN_SCORE_ROWS == len(set(X1.index))
    assert X1.index.is_monotonic_increasing and X1.index.equals(X2.index)
    assert not X1.index.equals(X3.index)
    assert y1.index.equals(X1.index)
    assert f"seeded sample of {trainer.TRAIN_SCORE_ROWS} of the {len(frame)}" in caplog.text
