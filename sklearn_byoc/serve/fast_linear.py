"""Linear models evaluated with plain numpy.

A fitted ``LogisticRegression``, ``Ridge`` or ``LinearRegression`` predicts
with one matrix product, but scikit-learn's ``predict`` on one row spends
about 100 µs around it (input validation, array-namespace and feature-name
checks), more than the rest of a one-row request.  The same product, done
here with the fitted ``coef_`` and ``intercept_``, takes a few microseconds.

As for the trees (fast_trees.py), nothing is assumed: how probabilities are
made from the decision values (the logistic of each, or a softmax) is picked
by comparing each candidate with scikit-learn's own ``predict_proba`` on
generated rows at load, and the model is used only where labels are identical
and probabilities agree within rtol 1e-9 / atol 1e-12; otherwise scikit-learn
serves it.  Only public fitted attributes are read.
"""
from __future__ import annotations

import logging

import numpy as np
from scipy.special import expit

from sklearn_byoc.serve.fast_trees import ATOL, RTOL

log = logging.getLogger("serve")

PROBE_ROWS = 256
# The estimators whose prediction is exactly X @ coef_.T + intercept_ (and a link).
CLASSIFIERS = {"LogisticRegression"}
REGRESSORS = {"Ridge", "LinearRegression"}


def binary_logistic(d: np.ndarray) -> np.ndarray:
    """One decision value per row: [1 - p, p] with p its logistic."""
    p = expit(d)
    return np.column_stack([1.0 - p, p])


def binary_softmax(d: np.ndarray) -> np.ndarray:
    """One decision value per row, as the softmax of (-d, d)."""
    return softmax(np.column_stack([-d, d]))


def softmax(d: np.ndarray) -> np.ndarray:
    shifted = np.exp(d - d.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


def one_vs_rest(d: np.ndarray) -> np.ndarray:
    """The logistic of each class's decision value, rows scaled to sum to one."""
    p = expit(d)
    return p / p.sum(axis=1, keepdims=True)


LINKS = {1: (binary_logistic, binary_softmax), 2: (softmax, one_vs_rest)}


class FastLinear:
    """predict / predict_proba of one fitted linear model."""

    def __init__(self, coef: np.ndarray, intercept, classes=None, link=None):
        self.coef_t = np.ascontiguousarray(np.asarray(coef, dtype=np.float64).T)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.width = self.coef_t.shape[0]
        self.classes = None if classes is None else np.asarray(classes)
        self.link = link

    def takes(self, X) -> bool:
        # Anything else (NaN, another width, text) goes to scikit-learn, which says what is wrong.
        return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype == np.float64 and \
            X.shape[1] == self.width and bool(np.isfinite(X).all())

    def decision(self, X: np.ndarray) -> np.ndarray:
        return X @ self.coef_t + self.intercept

    def predict(self, X: np.ndarray) -> np.ndarray:
        d = self.decision(X)
        if self.classes is None:
            return d
        index = (d > 0).astype(np.intp) if d.ndim == 1 else d.argmax(axis=1)
        return self.classes[index]

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.link(self.decision(X))


def compile_linear(estimator) -> FastLinear | None:
    """A numpy version of a fitted linear model's predictions, or None if it can't be made."""
    name = type(estimator).__name__
    if not type(estimator).__module__.startswith("sklearn.linear_model") or \
            name not in CLASSIFIERS | REGRESSORS:
        return None
    try:
        coef = np.asarray(estimator.coef_, dtype=np.float64)
        intercept = np.asarray(estimator.intercept_, dtype=np.float64)
        width = int(estimator.n_features_in_)
        X = np.random.default_rng(0).normal(0.0, 3.0, (PROBE_ROWS, width))
        if name in REGRESSORS:
            fast = FastLinear(coef, intercept)
            expected = np.asarray(estimator.predict(X), dtype=np.float64)
            if _close(fast.predict(X), expected):
                return fast
        else:
            classes = estimator.classes_
            coef_1d = coef[0] if coef.ndim == 2 and coef.shape[0] == 1 else coef
            intercept_1d = intercept[0] if coef_1d.ndim == 1 and intercept.ndim == 1 \
                else intercept
            expected = np.asarray(estimator.predict_proba(X), dtype=np.float64)
            labels = np.asarray(estimator.predict(X))
            for link in LINKS[coef_1d.ndim]:
                fast = FastLinear(coef_1d, intercept_1d, classes, link)
                if _close(fast.predict_proba(X), expected) and \
                        np.array_equal(fast.predict(X), labels):
                    return fast
    except Exception as exc:  # noqa: BLE001 - an unexpected layout only costs speed
        log.info("%s is served through scikit-learn (%s: %s)", name, type(exc).__name__, exc)
        return None
    log.warning("the numpy evaluation of this %s disagrees with scikit-learn; serving "
                "through scikit-learn", name)
    return None


def _close(got: np.ndarray, expected: np.ndarray) -> bool:
    return got.shape == expected.shape and np.allclose(got, expected, rtol=RTOL, atol=ATOL)
