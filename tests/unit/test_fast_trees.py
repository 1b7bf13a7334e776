"""The numpy tree walk of sklearn_byoc/serve/fast_trees.py against scikit-learn itself.

Runs on every scikit-learn line the image is built for (make test-lines): the private
HistGradientBoosting state it reads changes between lines.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import (ExtraTreesClassifier, ExtraTreesRegressor,
                              HistGradientBoostingClassifier, HistGradientBoostingRegressor,
                              RandomForestClassifier, RandomForestRegressor)
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

from sklearn_byoc.serve import fast_trees
from sklearn_byoc.serve.fast_trees import SMALL_ROWS, compile_trees

RNG = np.random.default_rng(3)
N = 600
X_NUM = RNG.normal(size=(N, 4)) * [1, 10, 0.1, 1000]
Y_THREE = np.digitize(X_NUM[:, 0] + X_NUM[:, 1] / 10 + RNG.normal(0, 0.3, N), [-0.5, 0.5])
Y_TEXT = np.array(["no", "yes"])[(X_NUM[:, 0] > 0).astype(int)]
Y_REAL = X_NUM[:, 0] * 3 + X_NUM[:, 1] / 5 + RNG.normal(0, 0.1, N)
# A categorical column of codes 0..5 (as the trainer's OrdinalEncoder writes them), with gaps
X_CAT = np.column_stack([X_NUM[:, :2], RNG.choice([0.0, 1.0, 2.0, 4.0, 5.0], N)])
Y_CAT = ((X_CAT[:, 2] >= 2) ^ (X_CAT[:, 0] > 0.3)).astype(int)


def with_missing(X, share=0.1, seed=0):
    X = X.copy()
    X[np.random.default_rng(seed).random(X.shape) < share] = np.nan
    return X


CASES = {
    "decision tree": (DecisionTreeClassifier(random_state=0), X_NUM, Y_THREE),
    "decision tree regressor": (DecisionTreeRegressor(random_state=0), X_NUM, Y_REAL),
    "random forest": (RandomForestClassifier(30, random_state=0), X_NUM, Y_THREE),
    "random forest, text labels": (RandomForestClassifier(20, random_state=0), X_NUM, Y_TEXT),
    "random forest regressor": (RandomForestRegressor(20, random_state=0), X_NUM, Y_REAL),
    "extra trees": (ExtraTreesClassifier(30, random_state=0), X_NUM, Y_THREE),
    "extra trees regressor": (ExtraTreesRegressor(20, random_state=0), X_NUM, Y_REAL),
    "boosting, binary": (HistGradientBoostingClassifier(max_iter=30, random_state=0),
                         with_missing(X_NUM), Y_TEXT),
    "boosting, three classes": (HistGradientBoostingClassifier(max_iter=20, random_state=0),
                                with_missing(X_NUM), Y_THREE),
    "boosting, categories": (HistGradientBoostingClassifier(
        max_iter=30, categorical_features=[2], random_state=0), X_CAT, Y_CAT),
    "boosting regressor": (HistGradientBoostingRegressor(max_iter=30), with_missing(X_NUM),
                           Y_REAL),
    "boosting, poisson": (HistGradientBoostingRegressor(max_iter=20, loss="poisson"), X_NUM,
                          np.exp(Y_REAL / 10)),
}


@pytest.fixture(scope="module", params=list(CASES))
def fitted(request):
    model, X, y = CASES[request.param]
    return request.param, model.fit(X, y), X


def rows_to_check(X, name):
    rows = np.random.default_rng(1).permutation(X)[:SMALL_ROWS].copy()
    if name.startswith("boosting"):
        rows[::7, 0] = np.nan  # a missing value: boosting routes it, trees are not given it
    if name == "boosting, categories":
        rows[::5, 2] = 3.0  # a category never seen in fitting
    return rows


def test_every_built_in_tree_model_compiles_and_agrees_with_scikit_learn(fitted):
    name, model, X = fitted
    fast = compile_trees(model)
    assert fast is not None, name
    rows = rows_to_check(X, name)
    if name == "boosting, categories" and fast.encoder is None:
        # Before scikit-learn 1.4 the model reads codes itself: a code it never saw is
        # left to scikit-learn, and the walk is checked on the codes it knows.
        assert not fast.takes(rows)
        rows = rows[rows[:, 2] != 3.0]
    for batch in (rows[:1], rows[:7], rows):
        assert fast.takes(batch)
        assert np.array_equal(fast.predict(batch), model.predict(batch)) \
            if hasattr(model, "classes_") else \
            np.allclose(fast.predict(batch), model.predict(batch), rtol=1e-9, atol=1e-12)
        if hasattr(model, "predict_proba"):
            np.testing.assert_allclose(fast.predict_proba(batch), model.predict_proba(batch),
                                       rtol=1e-9, atol=1e-12)


def test_large_requests_and_missing_values_of_plain_trees_are_left_to_scikit_learn(fitted):
    name, model, X = fitted
    fast = compile_trees(model)
    assert not fast.takes(np.vstack([X] * 2)[:SMALL_ROWS + 1])
    assert not fast.takes(X[:3].astype(np.float32))
    missing = X[:3].copy()
    missing[0, 0] = np.nan
    assert fast.takes(missing) == name.startswith("boosting")


def test_a_compiled_model_that_disagrees_is_not_used(monkeypatch, caplog):
    model = RandomForestClassifier(10, random_state=0).fit(X_NUM, Y_THREE)
    real = fast_trees._sklearn_forest

    def off_by_a_little(*args):
        forest = real(*args)
        forest.leaf_value = forest.leaf_value * (1 + 1e-6)
        return forest

    monkeypatch.setattr(fast_trees, "_sklearn_forest", off_by_a_little)
    with caplog.at_level(logging.WARNING, logger="serve"):
        assert compile_trees(model) is None
    assert "disagrees with scikit-learn on this RandomForestClassifier" in caplog.text


def test_models_it_does_not_know_are_left_to_scikit_learn():
    from sklearn.linear_model import LogisticRegression

    assert compile_trees(LogisticRegression(max_iter=2000).fit(X_NUM / [1, 10, 0.1, 1000], Y_THREE)) is None
    two_outputs = RandomForestRegressor(5, random_state=0).fit(
        X_NUM, np.column_stack([Y_REAL, Y_REAL]))
    assert compile_trees(two_outputs) is None
    quantile = HistGradientBoostingRegressor(max_iter=5, loss="quantile", quantile=0.9)
    assert compile_trees(quantile.fit(X_NUM, Y_REAL)) is None


def test_the_private_state_read_is_there_on_this_scikit_learn():
    """Fails when a scikit-learn upgrade renames what the boosting walk reads."""
    plain = HistGradientBoostingClassifier(max_iter=3).fit(X_NUM, Y_TEXT)
    categories = HistGradientBoostingClassifier(max_iter=3, categorical_features=[2]).fit(
        X_CAT, Y_CAT)
    assert fast_trees.missing_private_names(plain) == []
    assert fast_trees.missing_private_names(categories) == []
    assert compile_trees(categories) is not None


def test_every_private_name_read_is_listed():
    source = Path(fast_trees.__file__).read_text()
    read = set(re.findall(r"\b(?:estimator|mapper|preprocessor)\._(\w+)", source))
    listed = {name.lstrip("_") for _, name in fast_trees.PRIVATE_NAMES}
    assert read and read <= listed, read - listed
