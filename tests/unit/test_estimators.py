"""The estimator registry and the typing of estimator hyperparameters."""
import pytest

from sklearn_byoc.common.contract import HyperparameterError
from sklearn_byoc.train.estimators import (MODELS, build_estimator, constructor_defaults, convert_param,
                              import_class, resolve_model)
from sklearn_byoc.train.trainer import TRAINER_KEYS

EXPECTED = {
    "gradient_boosting": ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor"),
    "random_forest": ("RandomForestClassifier", "RandomForestRegressor"),
    "extra_trees": ("ExtraTreesClassifier", "ExtraTreesRegressor"),
    "decision_tree": ("DecisionTreeClassifier", "DecisionTreeRegressor"),
    "linear": ("LogisticRegression", "Ridge"),
    "knn": ("KNeighborsClassifier", "KNeighborsRegressor"),
}


def build(model: str, params: dict, task: str = "classification"):
    return build_estimator(resolve_model(model, task), params, seed=7, trainer_keys=TRAINER_KEYS)


def test_registry_holds_the_six_built_in_models():
    assert set(MODELS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
@pytest.mark.parametrize("task, index", [("classification", 0), ("regression", 1)])
def test_each_model_resolves_per_task(name, task, index):
    resolved = resolve_model(name, task)
    assert resolved.estimator_class.__name__ == EXPECTED[name][index]
    assert resolved.estimator_class.__module__.startswith("sklearn.")
    estimator, _ = build_estimator(resolved, {}, seed=0, trainer_keys=TRAINER_KEYS)
    assert hasattr(estimator, "fit") and hasattr(estimator, "predict")


def test_model_names_are_forgiving_about_case_and_dashes():
    assert resolve_model("Random-Forest", "classification").name == "random_forest"
    assert resolve_model(" KNN ", "regression").estimator_class.__name__ == \
        "KNeighborsRegressor"


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(HyperparameterError) as info:
        resolve_model("random_forrest", "classification")
    message = str(info.value)
    assert "'model'" in message
    assert "did you mean 'random_forest'" in message
    for name in EXPECTED:
        assert name in message


def test_params_are_typed_from_the_constructor_signature():
    estimator, params = build("random_forest", {
        "n_estimators": "7",            # int default
        "max_depth": "3",               # None default: the literal decides
        "bootstrap": "False",           # bool default
        "min_impurity_decrease": "0",   # float default
        "max_features": "0.5",          # str default, given a fraction
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


def test_seed_and_cores_are_applied_unless_given():
    estimator, params = build("random_forest", {})
    assert params["random_state"] == 7
    assert params["n_jobs"] == -1
    _, params = build("random_forest", {"random_state": "3", "n_jobs": "2"})
    assert params["random_state"] == 3 and params["n_jobs"] == 2


@pytest.mark.parametrize("key, value, expected", [
    ("n_estimators", "many", "an integer"),
    ("n_estimators", "True", "an integer"),
    ("min_impurity_decrease", "low", "a number"),
    ("bootstrap", "perhaps", "a boolean"),
])
def test_badly_typed_param_names_key_type_and_estimator(key, value, expected):
    with pytest.raises(HyperparameterError) as info:
        build("random_forest", {key: value})
    message = str(info.value)
    assert f"'{key}'" in message
    assert expected in message
    assert repr(value) in message


def test_unknown_param_lists_valid_ones_and_suggests_a_close_match():
    with pytest.raises(HyperparameterError) as info:
        build("random_forest", {"n_estimator": "5"})
    message = str(info.value)
    assert "'n_estimator'" in message
    assert "did you mean 'n_estimators'" in message
    for valid in ("max_depth", "min_samples_leaf", "criterion", "model", "target", "seed"):
        assert valid in message


def test_unknown_param_without_close_match_still_lists_valid_ones():
    with pytest.raises(HyperparameterError) as info:
        build("knn", {"zzzzqqq": "1"})
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


def test_import_path_model():
    resolved = resolve_model("sklearn.svm.SVC", "classification")
    assert resolved.estimator_class.__name__ == "SVC"
    assert resolved.scale_numeric
    estimator, params = build_estimator(resolved, {"C": "2.5", "kernel": "linear",
                                                   "probability": "true"},
                                        seed=1, trainer_keys=TRAINER_KEYS)
    assert params["C"] == 2.5 and params["kernel"] == "linear" and params["probability"] is True
    assert params["random_state"] == 1
    assert estimator.get_params()["C"] == 2.5


def test_import_path_with_colon():
    assert import_class("sklearn.linear_model:Lasso").__name__ == "Lasso"


@pytest.mark.parametrize("path, words", [
    ("sklearn.svm.NoSuchModel", ["'model'", "NoSuchModel"]),
    ("no_such_package.Model", ["'model'", "no_such_package"]),
    ("collections.OrderedDict", ["'model'", "fit and predict"]),
])
def test_bad_import_path_is_a_hyperparameter_error(path, words):
    with pytest.raises(HyperparameterError) as info:
        resolve_model(path, "classification")
    for word in words:
        assert word in str(info.value)


def test_constructor_defaults_come_from_the_signature():
    from sklearn.neighbors import KNeighborsClassifier

    defaults = constructor_defaults(KNeighborsClassifier)
    assert defaults["n_neighbors"] == 5
    assert "self" not in defaults


def test_convert_param_by_default_type():
    from sklearn.linear_model import LogisticRegression

    assert convert_param(LogisticRegression, "C", "0.1", 1.0) == pytest.approx(0.1)
    assert convert_param(LogisticRegression, "C", "2", 1.0) == 2.0
    assert type(convert_param(LogisticRegression, "C", "2", 1.0)) is float
    assert convert_param(LogisticRegression, "max_iter", "500", 100) == 500
    assert convert_param(LogisticRegression, "fit_intercept", "false", True) is False
    assert convert_param(LogisticRegression, "class_weight", '{"0": 1, "1": 3}', None) == \
        {"0": 1, "1": 3}
    assert convert_param(LogisticRegression, "solver", "\"saga\"", "lbfgs") == "saga"
