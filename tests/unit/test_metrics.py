"""Metrics, checked against values worked out by hand on tiny examples."""
import math
import re

import numpy as np
import pytest

from sklearn_byoc.common.metrics import (classification_metrics, format_metric, metric_lines, metric_regex,
                            regression_metrics)


def test_regression_metrics_by_hand():
    # errors 0, 0, 1, -2: squared 0, 0, 1, 4; |e| 0, 0, 1, 2
    # mean of y = 2.5, total sum of squares = 2.25 + 0.25 + 0.25 + 2.25 = 5
    got = regression_metrics([1, 2, 3, 4], [1, 2, 2, 6])
    assert got["mse"] == pytest.approx(5 / 4)
    assert got["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert got["mae"] == pytest.approx(3 / 4)
    assert got["r2"] == pytest.approx(1 - 5 / 5)


def test_regression_single_row_has_no_r2():
    got = regression_metrics([3.0], [1.0])
    assert got == {"mse": 4.0, "rmse": 2.0, "mae": 2.0}


def test_binary_metrics_by_hand_with_text_labels():
    # positive class is classes[1] = "yes"
    y_true = ["no", "yes", "yes", "no", "yes"]
    y_pred = ["no", "yes", "no", "yes", "yes"]
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7], [0.1, 0.9]])
    got = classification_metrics(y_true, y_pred, proba, ["no", "yes"])
    # tp = 2, fp = 1, fn = 1, tn = 1
    assert got["accuracy"] == pytest.approx(3 / 5)
    assert got["precision"] == pytest.approx(2 / 3)
    assert got["recall"] == pytest.approx(2 / 3)
    assert got["f1"] == pytest.approx(2 / 3)
    # recall of "no" = 1/2, of "yes" = 2/3
    assert got["balanced_accuracy"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    # positives score 0.8, 0.4, 0.9; negatives 0.1, 0.7: 5 of 6 pairs ordered right
    assert got["auc"] == pytest.approx(5 / 6)
    expected_loss = -(math.log(0.9) + math.log(0.8) + math.log(0.4) + math.log(0.3)
                      + math.log(0.9)) / 5
    assert got["log_loss"] == pytest.approx(expected_loss)


@pytest.mark.parametrize("classes, y_true, y_pred", [
    ([0, 1], [0, 1, 1, 0], [0, 1, 0, 0]),
    ([False, True], [False, True, True, False], [False, True, False, False]),
    ([1.5, 2.5], [1.5, 2.5, 2.5, 1.5], [1.5, 2.5, 1.5, 1.5]),
])
def test_binary_metrics_with_numeric_and_boolean_labels(classes, y_true, y_pred):
    # tp = 1, fp = 0, fn = 1, tn = 2
    got = classification_metrics(y_true, y_pred, None, classes)
    assert got["accuracy"] == pytest.approx(3 / 4)
    assert got["precision"] == pytest.approx(1.0)
    assert got["recall"] == pytest.approx(1 / 2)
    assert got["f1"] == pytest.approx(2 / 3)
    assert got["balanced_accuracy"] == pytest.approx(3 / 4)
    assert "auc" not in got and "log_loss" not in got


def test_binary_metrics_with_numpy_labels_from_predict():
    got = classification_metrics(np.array([0, 1, 1]), np.array([0, 1, 1]), None, [0, 1])
    assert got["accuracy"] == 1.0 and got["f1"] == 1.0


def test_multiclass_metrics_by_hand():
    y_true = ["a", "a", "b", "c"]
    y_pred = ["a", "b", "b", "c"]
    proba = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.1, 0.8, 0.1], [0.2, 0.2, 0.6]])
    got = classification_metrics(y_true, y_pred, proba, ["a", "b", "c"])
    assert got["accuracy"] == pytest.approx(3 / 4)
    # per class precision a 1, b 1/2, c 1; recall a 1/2, b 1, c 1
    assert got["precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert got["recall"] == pytest.approx((0.5 + 1 + 1) / 3)
    assert got["balanced_accuracy"] == pytest.approx((0.5 + 1 + 1) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 * 0.5 * 1 / 1.5, 1.0]
    assert got["f1"] == pytest.approx(sum(f1) / 3)
    expected_loss = -(math.log(0.7) + math.log(0.4) + math.log(0.8) + math.log(0.6)) / 4
    assert got["log_loss"] == pytest.approx(expected_loss)
    # one-vs-rest AUC: a: positives 0.7, 0.4 vs 0.1, 0.2 -> 1; b: 0.8 vs 0.2, 0.5, 0.2 -> 1;
    # c: 0.6 vs 0.1, 0.1, 0.1 -> 1
    assert got["auc"] == pytest.approx(1.0)


def test_validation_class_unseen_in_training_does_not_crash():
    got = classification_metrics(["a", "b", "z"], ["a", "b", "b"], None, ["a", "b"])
    assert got["accuracy"] == pytest.approx(2 / 3)
    # positive class "b": predicted twice, right once
    assert got["precision"] == pytest.approx(1 / 2)
    assert got["recall"] == pytest.approx(1.0)


def test_metric_line_format_matches_the_documented_regex():
    line = format_metric("validation", "accuracy", 0.8125)
    assert line == "validation:accuracy=0.812500;"
    regex = metric_regex("validation", "accuracy")
    assert regex == "validation:accuracy=([-+0-9.eE]+);"
    assert float(re.search(regex, line).group(1)) == 0.8125
    negative = format_metric("validation", "r2", -1.5)
    assert float(re.search(metric_regex("validation", "r2"), negative).group(1)) == -1.5


def test_objective_is_printed_last():
    results = {"train": {"accuracy": 0.9, "f1": 0.8},
               "validation": {"accuracy": 0.7, "f1": 0.6, "auc": 0.75}}
    lines = metric_lines(results, "validation:accuracy")
    assert lines[-1] == "validation:accuracy=0.700000;"
    assert len(lines) == 5
    assert sorted(lines) == sorted(
        f"{split}:{name}={value:.6f};" for split, values in results.items()
        for name, value in values.items())
    assert metric_lines(results, "train:f1")[-1] == "train:f1=0.800000;"
