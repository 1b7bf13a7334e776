"""The numpy evaluation of linear models agrees with scikit-learn, and steps aside where
it would not.  Expected values come from scikit-learn's own predict / predict_proba."""
from __future__ import annotations

import logging

import numpy as np
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.tree import DecisionTreeClassifier

from sklearn_byoc.serve import fast_linear
from sklearn_byoc.serve.fast_linear import compile_linear

RNG = np.random.default_rng(7)
X = RNG.normal(size=(300, 5))


def fitted(estimator, classes: int | None = None, targets: int = 1):
    if classes is None:
        y = X @ RNG.normal(size=(5, targets)) + RNG.normal(size=(300, targets)) * 0.1
        return estimator.fit(X, y[:, 0] if targets == 1 else y)
    score = X @ RNG.normal(size=(5, classes))
    labels = np.array(["ant", "bee", "cat", "dog"][:classes])
    return estimator.fit(X, labels[score.argmax(axis=1)])


CLASSIFIERS = [
    pytest.param(lambda: fitted(LogisticRegression(), classes=2), id="logistic binary"),
    pytest.param(lambda: fitted(LogisticRegression(), classes=3), id="logistic 3 classes"),
    pytest.param(lambda: fitted(LogisticRegression(solver="liblinear"), classes=2),
                 id="logistic liblinear binary"),
    pytest.param(lambda: one_vs_rest(), id="logistic one-vs-rest, 3 classes"),
]


def one_vs_rest():
    """multi_class="ovr", which the older scikit-learn lines the image serves still have."""
    try:
        return fitted(LogisticRegression(multi_class="ovr"), classes=3)
    except (TypeError, ValueError) as exc:
        pytest.skip(f"this scikit-learn has no one-vs-rest LogisticRegression ({exc})")
REGRESSORS = [
    pytest.param(lambda: fitted(Ridge()), id="ridge"),
    pytest.param(lambda: fitted(Ridge(), targets=2), id="ridge two targets"),
    pytest.param(lambda: fitted(LinearRegression()), id="linear regression"),
]


@pytest.mark.parametrize("make", CLASSIFIERS + REGRESSORS)
def test_scikit_learns_labels_values_and_probabilities(make):
    model = make()
    fast = compile_linear(model)
    assert fast is not None
    rows = RNG.normal(0, 2, size=(64, 5))
    for n in (1, 7, 64):
        if hasattr(model, "classes_"):
            assert np.array_equal(fast.predict(rows[:n]), model.predict(rows[:n]))
            np.testing.assert_allclose(fast.predict_proba(rows[:n]),
                                       model.predict_proba(rows[:n]), rtol=1e-9, atol=1e-12)
        else:
            np.testing.assert_allclose(fast.predict(rows[:n]), model.predict(rows[:n]),
                                       rtol=1e-9, atol=1e-12)


def test_a_model_that_no_candidate_matches_is_left_to_scikit_learn(monkeypatch, caplog):
    model = fitted(LogisticRegression(), classes=2)
    wrong = {1: (lambda d: fast_linear.binary_logistic(2 * d),)}
    monkeypatch.setattr(fast_linear, "LINKS", wrong)
    with caplog.at_level(logging.WARNING, logger="serve"):
        assert compile_linear(model) is None
    assert "disagrees with scikit-learn" in caplog.text


def test_other_models_and_inputs_are_not_taken():
    assert compile_linear(DecisionTreeClassifier().fit(X, X[:, 0] > 0)) is None
    fast = compile_linear(fitted(Ridge()))
    assert fast.takes(X[:3])
    assert not fast.takes(np.array([[1.0, np.nan, 0.0, 0.0, 0.0]]))  # scikit-learn says why
    assert not fast.takes(X[:3, :4])   # another width
    assert not fast.takes(X[:3].astype(np.float32))
