"""The estimator registry, the typing of hyperparameters and the checks made before fitting."""
import logging

import pandas as pd
import pytest

from sklearn_byoc.common.errors import HyperparameterError
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.train.estimators import (MODELS, build_estimator, check_task,
                                           constructor_defaults, import_class, resolve_model)
from sklearn_byoc.train.hyperparameters import TRAINER_KEYS, param_kinds, read_settings, type_value

EXPECTED = {
    "gradient_boosting": ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "random_forest": ("RandomForestClassifier", "RandomForestRegressor"),
    "extra_trees": ("ExtraTreesClassifier", "ExtraTreesRegressor"),
    "decision_tree": ("DecisionTreeClassifier", "DecisionTreeRegressor"),
    "linear": ("LogisticRegression", "Ridge"),
    "knn": ("KNeighborsClassifier", "KNeighborsRegressor"),
    "sgd": ("SGDClassifier", "SGDRegressor"),
}


def settings_for(hyperparameters: dict):
    return read_settings({k: str(v) for k, v in hyperparameters.items()})


def build(model: str, params: dict, task: str = "classification", seed: int = 7):
    settings = settings_for({"model": model, "seed": seed, **params})
    return build_estimator(settings.model, task, settings)


def test_registry_holds_the_seven_built_in_models():
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("task, index", [("classification", 0), ("regression", 1)])
def test_each_model_resolves_per_task(name, task, index):
    spec = resolve_model(name)
    assert spec.class_for(task).__name__ == EXPECTED[name][index]
    assert spec.class_for(task).__module__.startswith("sklearn.")
    estimator, _ = build(name, {}, task)
    assert hasattr(estimator, "fit") and hasattr(estimator, "predict")


def test_model_names_are_forgiving_about_case_and_dashes():
    assert resolve_model("Random-Forest").name == "random_forest"
    assert resolve_model(" KNN ").class_for("regression").__name__ == "KNeighborsRegressor"


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(HyperparameterError) as info:
        resolve_model("random_forrest")
    message = str(info.value)
    assert message.startswith("hyperparameter 'model' must be one of gradient_boosting")
    assert "did you mean 'random_forest'" in message
    for name in EXPECTED:
        assert name in message


def test_params_are_typed_from_what_the_parameter_takes():
    estimator, params = build("random_forest", {
        "n_estimators": "7",            # an int
        "max_depth": "3",               # an int or None
        "bootstrap": "False",           # a boolean
        "min_impurity_decrease": "0",   # a float, given as an int
        "max_features": "0.5",          # an int, a fraction, an option or None
        "criterion": "\"entropy\"",     # JSON-encoded string from a framework estimator
        "class_weight": "balanced",
        "max_leaf_nodes": "None",
    })
    assert params["n_estimators"] == 7 and type(params["n_estimators"]) is int
    assert params["max_depth"] == 3 and type(params["max_depth"]) is int
    assert params["bootstrap"] is False
    assert params["min_impurity_decrease"] == 0.0
    assert type(params["min_impurity_decrease"]) is float
    assert params["max_features"] == 0.5
    assert params["criterion"] == "entropy"
    assert params["class_weight"] == "balanced"
    assert params["max_leaf_nodes"] is None
    assert estimator.get_params()["n_estimators"] == 7
    assert estimator.get_params()["criterion"] == "entropy"


@pytest.mark.parametrize("key, value, typed", [
    ("n_estimators", "50.0", 50),    # a whole number written as a float
    ("max_depth", "5.0", 5),         # int or None: was refused by scikit-learn before
    ("max_features", "1.0", 1.0),    # a fraction (all features), not the int 1
    ("max_features", "2", 2),
    ("max_features", "sqrt", "sqrt"),
    ("random_state", "3.0", 3),
])
def test_whole_floats_are_ints_where_only_an_int_fits(key, value, typed):
    _, params = build("random_forest", {key: value})
    assert params[key] == typed and type(params[key]) is type(typed)


def test_seed_follows_the_same_rules():
    assert settings_for({"seed": "5.0"}).seed == 5
    with pytest.raises(HyperparameterError) as info:
        settings_for({"seed": "5.5"})
    assert str(info.value).startswith("hyperparameter 'seed' must be an integer, got '5.5'")


@pytest.mark.parametrize("key, value, first_line", [
    ("n_estimators", "10.5", "hyperparameter 'n_estimators' must be an integer, got '10.5'"),
    ("n_estimators", "many", "hyperparameter 'n_estimators' must be an integer, got 'many'"),
    ("n_estimators", "True", "hyperparameter 'n_estimators' must be an integer, got 'True'"),
    ("max_depth", "deep", "hyperparameter 'max_depth' must be an integer or None, got 'deep'"),
    ("min_impurity_decrease", "low",
     "hyperparameter 'min_impurity_decrease' must be a number, got 'low'"),
    ("bootstrap", "perhaps",
     "hyperparameter 'bootstrap' must be a boolean (true or false), got 'perhaps'"),
])
def test_a_value_that_cannot_be_typed_fails_when_read(key, value, first_line):
    # Before any data is read: read_settings alone raises.
    with pytest.raises(HyperparameterError) as info:
        settings_for({"model": "random_forest", key: value})
    message = str(info.value)
    assert message.startswith(first_line)
    assert "RandomForest" in message


def test_a_value_typed_for_one_task_only_fails_once_that_task_is_known():
    # class_weight takes a dict, "balanced" or None in RandomForestClassifier and does
    # not exist in RandomForestRegressor: no error when read, a warning for regression.
    settings = settings_for({"model": "random_forest", "class_weight": "balanced"})
    estimator, params = build_estimator(settings.model, "classification", settings)
    assert params["class_weight"] == "balanced"


def test_a_key_of_the_other_task_is_ignored_with_a_warning(caplog):
    settings = settings_for({"model": "random_forest", "class_weight": "balanced"})
    with caplog.at_level(logging.WARNING, logger="train"):
        estimator, params = build_estimator(settings.model, "regression", settings)
    assert "class_weight" not in params
    assert any(r.getMessage().startswith(
        "hyperparameter 'class_weight' is a parameter of RandomForestClassifier, not of "
        "RandomForestRegressor (the task is regression); ignored") for r in caplog.records)


def test_values_out_of_range_fail_before_fitting():
    settings = settings_for({"model": "random_forest", "n_estimators": "0"})
    with pytest.raises(UserError) as info:
        build_estimator(settings.model, "classification", settings)
    assert str(info.value).startswith(
        "invalid hyperparameter: The 'n_estimators' parameter of RandomForestClassifier must "
        "be an int in the range [1, inf). Got 0 instead.")


def test_seed_and_cores_are_applied_unless_given():
    estimator, params = build("random_forest", {})
    assert params["random_state"] == 7
    assert params["n_jobs"] == -1
    _, params = build("random_forest", {"random_state": "3", "n_jobs": "2"})
    assert params["random_state"] == 3 and params["n_jobs"] == 2


def test_logistic_regression_is_left_its_own_n_jobs():
    estimator, params = build("linear", {})
    assert "n_jobs" not in params and estimator.n_jobs is None
    _, params = build("linear", {"n_jobs": "2"})
    assert params["n_jobs"] == 2


def test_unknown_param_lists_valid_ones_and_suggests_a_close_match():
    with pytest.raises(HyperparameterError) as info:
        settings_for({"model": "random_forest", "n_estimator": "5"})
    message = str(info.value)
    assert message.startswith("hyperparameter 'n_estimator' must be a parameter of "
                              "RandomForestClassifier / RandomForestRegressor or a trainer "
                              "setting, got '5'; did you mean 'n_estimators'?")
    for valid in ("max_depth", "min_samples_leaf", "criterion", "class_weight", "model",
                  "target", "seed", "holdout_fraction", "ignore_columns"):
        assert valid in message


def test_unknown_param_without_close_match_still_lists_valid_ones():
    with pytest.raises(HyperparameterError) as info:
        settings_for({"model": "knn", "zzzzqqq": "1"})
    message = str(info.value)
    assert "did you mean" not in message
    assert "n_neighbors" in message


@pytest.mark.parametrize("model, foreign", [
    ("random_forest", {"n_neighbors": "3"}),        # knn's
    ("knn", {"n_estimators": "50", "max_depth": "4"}),  # the forests'
    ("linear", {"learning_rate": "0.1"}),           # gradient boosting's
    ("gradient_boosting", {"C": "0.5"}),            # logistic regression's
])
def test_param_of_another_built_in_model_is_ignored(model, foreign):
    estimator, params = build(model, foreign)
    for key in foreign:
        assert key not in params
        assert estimator.get_params().get(key, "absent") != foreign[key]


def test_platform_keys_never_reach_the_estimator():
    settings = settings_for({
        "_tuning_objective_metric": "validation:f1", "sagemaker_program": "\"train.py\"",
        "sagemaker_submit_directory": "\"s3://bucket/code.tar.gz\"",
        "sagemaker_container_log_level": "20", "sagemaker_region": "\"us-east-1\"",
        "model": "\"random_forest\"", "n_estimators": "5"})
    assert settings.model.name == "random_forest"
    assert settings.objective == "validation:f1"
    for params in settings.params.values():
        assert params == {"n_estimators": 5}


# -- validation_fraction and holdout_fraction -------------------------------------------
def test_validation_fraction_is_the_estimators_when_it_has_one():
    settings = settings_for({"validation_fraction": "0.25"})  # the default model
    assert settings.holdout_fraction == 0.2
    estimator, params = build_estimator(settings.model, "classification", settings)
    assert params["validation_fraction"] == 0.25
    assert estimator.validation_fraction == 0.25


def test_validation_fraction_sets_the_holdout_for_other_estimators(caplog):
    with caplog.at_level(logging.WARNING, logger="train"):
        settings = settings_for({"model": "random_forest", "validation_fraction": "0.3"})
    assert settings.holdout_fraction == 0.3
    assert any(r.getMessage().startswith(
        "hyperparameter 'validation_fraction' sets the trainer's hold-out because "
        "RandomForestClassifier or RandomForestRegressor has no parameter of that name; this "
        "use is deprecated: name it holdout_fraction") for r in caplog.records)
    _, params = build_estimator(settings.model, "classification", settings)
    assert "validation_fraction" not in params


def test_holdout_fraction_and_the_deprecated_name_together_fail():
    with pytest.raises(HyperparameterError) as info:
        settings_for({"model": "knn", "validation_fraction": "0.3", "holdout_fraction": "0.2"})
    assert str(info.value).startswith("hyperparameter 'validation_fraction' must be left out "
                                      "when holdout_fraction is given")


@pytest.mark.parametrize("value, first_line", [
    ("1.5", "hyperparameter 'holdout_fraction' must be a number greater than 0.0 and less "
            "than 0.9, got '1.5'"),
    ("0", "hyperparameter 'holdout_fraction' must be a number greater than 0.0"),
    ("half", "hyperparameter 'holdout_fraction' must be a number, got 'half'"),
])
def test_holdout_fraction_is_checked_when_read(value, first_line):
    with pytest.raises(HyperparameterError) as info:
        settings_for({"holdout_fraction": value})
    assert str(info.value).startswith(first_line)


# -- estimators named by import path ---------------------------------------------------
def test_import_path_model():
    spec = resolve_model("sklearn.svm.SVC")
    assert spec.class_for("classification").__name__ == "SVC" and spec.by_path
    assert spec.scale_numeric
    estimator, params = build("sklearn.svm.SVC", {"C": "2.5", "kernel": "linear",
                                                  "probability": "true"}, seed=1)
    assert params["C"] == 2.5 and params["kernel"] == "linear" and params["probability"] is True
    assert params["random_state"] == 1
    assert estimator.get_params()["C"] == 2.5


def own_classifier():
    from sklearn.base import BaseEstimator, ClassifierMixin

    class Own(ClassifierMixin, BaseEstimator):
        def __init__(self, depth=3):
            self.depth = depth

        def fit(self, X, y):
            return self

        def predict(self, X):
            return [0] * len(X)

    return Own


def test_an_own_estimator_without_declared_constraints_is_built(monkeypatch):
    import types
    module = types.ModuleType("own_models")
    module.Own = own_classifier()
    monkeypatch.setitem(__import__("sys").modules, "own_models", module)
    estimator, params = build("own_models.Own", {"depth": "5"})
    assert type(estimator).__name__ == "Own" and params["depth"] == 5


def test_import_path_with_colon():
    assert import_class("sklearn.linear_model:Lasso").__name__ == "Lasso"


@pytest.mark.parametrize("path, words", [
    ("sklearn.svm.NoSuchModel", ["'model'", "NoSuchModel"]),
    ("no_such_package.Model", ["'model'", "no_such_package"]),
    ("collections.OrderedDict", ["'model'", "fit and predict"]),
])
def test_bad_import_path_is_a_hyperparameter_error(path, words):
    with pytest.raises(HyperparameterError) as info:
        resolve_model(path)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize("model, task, y, first_line", [
    ("sklearn.svm.SVC", "regression", pd.Series([0.5, 1.25, 2.0, 3.5]),
     "model sklearn.svm.SVC is a classifier, but the task is regression: the target 'y' holds "
     "4 distinct numbers (e.g. 0.5); choose a regressor, or set task=classification if those "
     "numbers are classes"),
    ("sklearn.linear_model.Ridge", "classification", pd.Series(["stay", "leave", "stay"]),
     "model sklearn.linear_model.Ridge is a regressor, but the task is classification: the "
     "target 'y' holds text labels (e.g. 'stay'); choose a classifier (model=...)"),
    ("sklearn.linear_model.LinearRegression", "classification", pd.Series([1, 2, 3, 1]),
     "model sklearn.linear_model.LinearRegression is a regressor, but the task is "
     "classification: the target 'y' holds 3 whole-number values, which task=auto takes as "
     "classes; set task=regression if those numbers are quantities, or choose a classifier"),
    ("sklearn.cluster.KMeans", "classification", pd.Series(["a", "b"]),
     "model sklearn.cluster.KMeans is neither a classifier nor a regressor, but the task is "
     "classification"),
])
def test_an_estimator_of_the_wrong_kind_for_the_task_fails(model, task, y, first_line):
    with pytest.raises(UserError) as info:
        check_task(resolve_model(model), task, "y", y)
    assert str(info.value).startswith(first_line)


def test_an_estimator_of_the_right_kind_passes():
    check_task(resolve_model("sklearn.svm.SVR"), "regression", "y", pd.Series([0.5, 1.5]))
    check_task(resolve_model("sklearn.svm.SVC"), "classification", "y", pd.Series(["a", "b"]))


# -- the typing rules themselves -------------------------------------------------------
def test_param_kinds_come_from_the_declared_constraints_or_the_default():
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.neighbors import KNeighborsClassifier

    assert param_kinds(HistGradientBoostingClassifier, "max_depth", None) == {"int", "none"}
    assert param_kinds(HistGradientBoostingClassifier, "early_stopping", "auto") == \
        {"str", "bool"}

    class Plain:  # no declared constraints: the default's type decides
        def __init__(self, depth=3, rate=0.1, flag=True, name="a"):
            pass

    assert param_kinds(Plain, "depth", 3) == {"int"}
    assert param_kinds(Plain, "rate", 0.1) == {"float"}
    assert param_kinds(Plain, "flag", True) == {"bool"}
    assert param_kinds(Plain, "name", "a") == {"any"}
    assert constructor_defaults(KNeighborsClassifier)["n_neighbors"] == 5


@pytest.mark.parametrize("raw, kinds, typed", [
    ("5", {"int"}, 5), ("5.0", {"int"}, 5), ("2", {"float"}, 2.0), ("true", {"bool"}, True),
    ("1", {"bool"}, True), ("auto", {"str", "bool"}, "auto"), ("yes", {"str", "bool"}, True),
    ("None", {"int", "none"}, None), ("\"gini\"", {"str"}, "gini"),
    ('{"0": 1, "1": 3}', {"json", "str", "none"}, {"0": 1, "1": 3}),
    ("[1, 2]", {"any"}, [1, 2]), ("x", {"any"}, "x"), ("1", {"int", "bool"}, 1),
])
def test_type_value(raw, kinds, typed):
    got = type_value("k", raw, frozenset(kinds))
    assert got == typed and type(got) is type(typed)


def test_trainer_keys_are_the_documented_ones():
    assert set(TRAINER_KEYS) == {"model", "target", "task", "header", "holdout_fraction", "seed",
                                 "ignore_columns", "keep_columns", "sample_rows", "epochs",
                                 "cluster_join_timeout"}


def test_sgd_classifies_with_probabilities_and_regresses_with_its_own_loss():
    classifier, params = build("sgd", {}, "classification")
    assert classifier.loss == "log_loss" and hasattr(classifier, "predict_proba")
    regressor, _ = build("sgd", {}, "regression")
    assert regressor.loss == "squared_error"
    assert build("sgd", {"loss": "hinge"}, "classification")[0].loss == "hinge"
