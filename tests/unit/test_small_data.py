"""Sizing the hold-out and the estimator's early-stopping split to the rows there are."""
import logging

import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.train import small_data
from sklearn_byoc.train.estimators import build_estimator
from sklearn_byoc.train.hyperparameters import read_settings


def estimator_for(hyperparameters: dict, task: str = "classification"):
    settings = read_settings(hyperparameters)
    estimator, _ = build_estimator(settings.model, task, settings)
    return estimator, settings


def rows(n: int, classes: int = 2):
    X = pd.DataFrame({"x": np.arange(n, dtype=float)})
    y = pd.Series([f"c{i % classes}" for i in range(n)])
    return X, y


# Python rounds halves to even: 0.5 x 3 rows holds out 2, 0.1 x 5 holds out none.
@pytest.mark.parametrize("fraction, needed", [(0.2, 3), (0.5, 4), (0.1, 6), (0.05, 11)])
def test_holdout_rows_needed(fraction, needed):
    assert small_data.holdout_rows_needed(fraction) == needed
    # the smallest: one row fewer is too few
    n = needed - 1
    assert round(n * fraction) < 1 or n - round(n * fraction) < 2


@pytest.mark.parametrize("fraction, classes, needed", [(0.1, 2, 11), (0.1, 3, 21),
                                                       (0.1, 0, 2), (0.5, 2, 4), (3, 2, 5)])
def test_rows_needed_for_a_stratified_split(fraction, classes, needed):
    assert small_data.rows_needed(fraction, classes) == needed


def test_the_default_models_early_stopping_is_turned_off_on_few_rows(caplog):
    estimator, settings = estimator_for({})
    X, y = rows(10)
    with caplog.at_level(logging.INFO, logger="train"):
        changed = small_data.fit_to_size(estimator, X, y, "classification", settings)
    assert changed == {"early_stopping": False} and estimator.early_stopping is False
    assert "early stopping off: its validation split (validation_fraction=0.1) needs at least " \
        "11 rows for 2 classes, and there are 10 training rows" in caplog.text


def test_enough_rows_change_nothing():
    estimator, settings = estimator_for({})
    X, y = rows(200)
    assert small_data.fit_to_size(estimator, X, y, "classification", settings) == {}
    assert estimator.early_stopping is True


def test_a_class_seen_once_turns_early_stopping_off_too():
    estimator, settings = estimator_for({})
    X, y = rows(200)
    y.iloc[0] = "rare"
    assert small_data.fit_to_size(estimator, X, y, "classification", settings) == \
        {"early_stopping": False}


def test_gradient_boostings_n_iter_no_change_asked_for_fails_with_the_minimum():
    estimator, settings = estimator_for({"model": "sklearn.ensemble.GradientBoostingClassifier",
                                         "n_iter_no_change": "5"})
    X, y = rows(8, classes=3)
    with pytest.raises(UserError) as info:
        small_data.fit_to_size(estimator, X, y, "classification", settings)
    assert str(info.value).startswith(
        "hyperparameter 'n_iter_no_change' turns on early stopping, but its validation split "
        "(validation_fraction=0.1) needs at least 21 rows for 3 classes, and there are 8 "
        "training rows; set n_iter_no_change=None or add rows")


def test_knn_neighbours_are_lowered_to_the_rows_unless_asked_for():
    estimator, settings = estimator_for({"model": "knn"})
    X, y = rows(4)
    assert small_data.fit_to_size(estimator, X, y, "classification", settings) == \
        {"n_neighbors": 4}
    estimator, settings = estimator_for({"model": "knn", "n_neighbors": "7"})
    with pytest.raises(UserError) as info:
        small_data.fit_to_size(estimator, X, y, "classification", settings)
    assert str(info.value) == ("hyperparameter 'n_neighbors' is 7, but there are only 4 "
                               "training rows; set n_neighbors to 4 or less, or add rows")


def test_a_holdout_too_large_for_the_rows_fails_with_the_minimum():
    X, y = rows(2)
    with pytest.raises(UserError) as info:
        small_data.holdout(X, y, "classification", 0.2, seed=0)
    assert str(info.value).startswith("only 2 training row(s): holding out a holdout_fraction "
                                      "of 0.2 needs at least 3 rows")
