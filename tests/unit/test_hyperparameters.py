"""hyperparameters.json read once and typed once: the decoders, the trainer's table, the
help made from it, the hand-over to the worker, and scikit-learn's private names."""
import json
import re
from pathlib import Path

import pytest
import sklearn
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestRegressor
from sklearn.linear_model import LogisticRegression

from sklearn_byoc.common.errors import HyperparameterError, UserError
from sklearn_byoc.train import cli, estimators, hyperparameters as hp
from sklearn_byoc.train.hyperparameters import TRAINER_KEYS, read_settings


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


# -- the file ------------------------------------------------------------------------------
def test_absent_file_means_no_hyperparameters(tmp_path):
    assert hp.read_file(tmp_path / "hyperparameters.json") == {}


def test_invalid_json_names_the_file(tmp_path):
    path = write_json(tmp_path / "config" / "hyperparameters.json", '{"model": ')
    with pytest.raises(UserError) as info:
        hp.read_file(path)
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_the_file_must_hold_an_object(tmp_path):
    path = write_json(tmp_path / "hyperparameters.json", '["model", "knn"]')
    with pytest.raises(UserError, match="hyperparameters.json.*JSON object"):
        hp.read_file(path)


def test_unreadable_file_names_the_file(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_bytes(b'{"model": "\xff"}')
    with pytest.raises(UserError) as info:
        hp.read_file(path)
    assert str(path) in str(info.value)


def test_the_worker_gets_what_the_supervisor_read(tmp_path, monkeypatch):
    """The supervisor reads the file once and hands every value on, one argument each."""
    raw = {"model": "random_forest", "n_estimators": "7", "max_depth": 3,
           "note": "x" * 2500, "sagemaker_container_log_level": "20"}
    config = {"train": {"ContentType": "text/csv"}}
    args = cli.worker_args(raw, config)
    assert len(args) == 1 + len(raw)
    assert max(len(a) for a in args) < 128 * 1024
    seen = {}
    monkeypatch.setattr("sklearn_byoc.train.trainer.train",
                        lambda paths, settings, input_config: seen.update(
                            settings=settings, input_config=input_config))
    monkeypatch.setattr(hp, "read_file", lambda path: pytest.fail("read the file again"))
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    with pytest.raises(HyperparameterError, match="note"):
        cli.train_builtin(args)  # the unknown key "note" is refused by the worker
    del raw["note"]
    cli.train_builtin(cli.worker_args(raw, config))
    assert seen["input_config"] == config
    settings = seen["settings"]
    assert settings.model.name == "random_forest"
    assert settings.params[settings.model.classifier] == {"n_estimators": 7, "max_depth": 3}


# -- decoding ----------------------------------------------------------------------------------
@pytest.mark.parametrize("raw, text", [
    ('"abc"', "abc"),                       # json.dumps("abc"), as framework estimators send
    ('"a \\"quoted\\" word"', 'a "quoted" word'),
    ("abc", "abc"), (" abc ", "abc"),
    ("0.1", "0.1"),                          # numbers keep the text they were sent as
    ('"unterminated', '"unterminated'),
    (5, "5"), (True, "true"), ([1, 2], "[1, 2]"),
])
def test_text_of_undoes_only_the_json_quoting(raw, text):
    assert hp.text_of(raw) == text


@pytest.mark.parametrize("raw, value", [
    ('"s3://b/k/sourcedir.tar.gz"', "s3://b/k/sourcedir.tar.gz"),
    ("s3://b/k", "s3://b/k"), ("0.5", 0.5), ("[1,2]", [1, 2]),
    ("{'a': 1}", "{'a': 1}"),  # str(dict) is not JSON
    ("True", "True"),          # the generic Estimator's str(True): text, as the toolkit has it
    (3, 3),
])
def test_json_of_is_what_a_script_sees_in_sm_hps(raw, value):
    assert hp.json_of(raw) == value


@pytest.mark.parametrize("text, value", [
    ("None", None), ("null", None), ("True", True), ("false", False), ("5", 5),
    ("5.5", 5.5), ("1e-3", 0.001), ("[1, 2]", [1, 2]), ('{"a": 1}', {"a": 1}),
    ("sqrt", "sqrt"), ("[not json", "[not json"),
])
def test_literal_of(text, value):
    assert hp.literal_of(text) == value


@pytest.mark.parametrize("kinds, raw, value", [
    ({hp.INT}, "7", 7), ({hp.INT}, "7.0", 7), ({hp.INT}, 7, 7),
    ({hp.FLOAT}, "0.1", 0.1), ({hp.FLOAT}, "3", 3.0),
    ({hp.BOOL}, "True", True), ({hp.BOOL}, "no", False), ({hp.BOOL}, '"true"', True),
    ({hp.INT, hp.NONE}, "None", None), ({hp.STR}, '"sqrt"', "sqrt"),
    ({hp.JSON}, "[1, 2]", [1, 2]), ({hp.STR, hp.FLOAT}, "0.5", 0.5),
    ({hp.STR, hp.FLOAT}, "sqrt", "sqrt"),
])
def test_type_value(kinds, raw, value):
    typed = hp.type_value("k", raw, frozenset(kinds))
    assert typed == value and type(typed) is type(value)


@pytest.mark.parametrize("kinds, raw, expected", [
    ({hp.INT}, "seven", "an integer"), ({hp.INT}, "7.5", "an integer"),
    ({hp.INT}, "True", "an integer"), ({hp.FLOAT}, "fast", "a number"),
    ({hp.BOOL}, "maybe", "a boolean"), ({hp.INT, hp.NONE}, "auto", "an integer or None"),
])
def test_a_value_of_the_wrong_kind_names_key_value_and_kind(kinds, raw, expected):
    with pytest.raises(HyperparameterError) as info:
        hp.type_value("my_key", raw, frozenset(kinds))
    message = str(info.value)
    assert message.startswith(f"hyperparameter 'my_key' must be {expected}")
    assert repr(raw) in message
    assert info.value.key == "my_key" and isinstance(info.value, UserError)


# -- the trainer's keys ------------------------------------------------------------------------
def test_defaults_come_from_the_table():
    settings = read_settings({})
    for name, row in TRAINER_KEYS.items():
        value = settings.model.name if name == "model" else getattr(settings, name)
        assert value == row.default, name


def test_trainer_keys_are_typed_and_normalized():
    settings = read_settings({"task": "Classification", "header": '"present"', "seed": "7.0",
                              "holdout_fraction": "0.3", "target": '"label"',
                              "ignore_columns": '["id", 3]', "model": "Random-Forest"})
    assert (settings.task, settings.header, settings.seed) == ("classification", "present", 7)
    assert settings.holdout_fraction == 0.3 and settings.target == "label"
    assert settings.ignore_columns == ["id", "3"]
    assert settings.model.name == "random_forest"
    assert read_settings({"ignore_columns": "a, b,,"}).ignore_columns == ["a", "b"]


@pytest.mark.parametrize("raw, pattern", [
    ({"holdout_fraction": "0.95"}, "holdout_fraction.*greater than 0.0 and less than 0.9"),
    ({"seed": "-1"}, "seed.*an integer of 0 or more"),
    ({"task": "clasification"}, "task.*one of auto, classification, regression.*"
                                "did you mean 'classification'"),
    ({"header": "sideways"}, "header.*one of auto, present, absent"),
    ({"ignore_columns": "[1, "}, "ignore_columns.*JSON list"),
    ({"ignore_columns": "[1.5]"}, "ignore_columns.*column names or 0-based indexes"),
])
def test_a_bad_trainer_value_is_refused_before_any_data_is_read(raw, pattern):
    with pytest.raises(HyperparameterError, match=pattern):
        read_settings(raw)


def test_platform_keys_are_recognized_and_never_checked():
    for key in ("_tuning_objective_metric", "sagemaker_program", "sagemaker_region",
                "sagemaker_submit_directory", "sagemaker_container_log_level"):
        assert hp.is_platform_key(key)
    for key in ("model", "n_estimators", "target"):
        assert not hp.is_platform_key(key)
    settings = read_settings({"sagemaker_anything": "{not json", "_private": "x",
                              "_tuning_objective_metric": '"validation:f1"'})
    assert settings.objective == "validation:f1"
    assert settings.given == frozenset()


def test_help_lists_every_trainer_key_with_what_it_takes_and_its_default():
    text = cli.usage()
    listed = re.findall(r"^  (\w+) +(.+); default (.+)$", text, flags=re.MULTILINE)
    rows = {**TRAINER_KEYS, hp.BUNDLE.name: hp.BUNDLE}
    assert [name for name, _, _ in listed] == list(rows)
    for name, takes, default in listed:
        row = rows[name]
        assert takes == row.takes
        shown = row.default if not isinstance(row.default, list) else ",".join(row.default)
        assert default == ("none" if shown in (None, "") else str(shown))
    assert "validation_fraction" not in text  # the estimator's, or a deprecated alias
    assert "every other hyperparameter is a parameter of the chosen estimator" in text.lower()
    assert max(len(line) for line in text.splitlines()) <= 92


# -- several hyperparameters in one value ------------------------------------------------------
def test_a_bundle_of_hyperparameters_counts_as_each_given_on_its_own(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_text(json.dumps({"model": "random_forest", "hyperparameters":
                                '{"max_depth": 6, "ignore_columns": "id,note"}'}))
    raw = hp.read_file(path)
    assert raw == {"model": "random_forest", "max_depth": 6, "ignore_columns": "id,note"}
    settings = read_settings(raw)
    assert settings.ignore_columns == ["id", "note"]
    assert {cls.__name__: p["max_depth"] for cls, p in settings.params.items()} == {
        "RandomForestClassifier": 6, "RandomForestRegressor": 6}
    # A pipeline parameter left at its default: nothing added.
    assert hp.unbundle({"hyperparameters": "{}", "seed": "1"}) == {"seed": "1"}
    assert hp.unbundle({"hyperparameters": "", "seed": "1"}) == {"seed": "1"}


@pytest.mark.parametrize("raw, pattern", [
    ({"hyperparameters": "[1, 2]"}, "'hyperparameters' must be a JSON object"),
    ({"hyperparameters": "max_depth=6"}, "'hyperparameters' must be a JSON object"),
    ({"hyperparameters": '{"seed": 3}', "seed": "4"}, "'seed' is given both ways"),
])
def test_a_bad_bundle_is_refused(raw, pattern):
    with pytest.raises(HyperparameterError, match=pattern):
        hp.unbundle(raw)


# -- scikit-learn's private names --------------------------------------------------------------
@pytest.mark.parametrize("cls", [HistGradientBoostingClassifier, RandomForestRegressor,
                                 LogisticRegression])
def test_the_private_names_the_trainer_reads_exist_on_this_scikit_learn(cls):
    """Fails on a scikit-learn line that renamed what estimators.PRIVATE_NAMES lists."""
    from sklearn.utils import _param_validation

    constraints = estimators.declared_constraints(cls)
    assert constraints, f"{cls.__name__}.{estimators.CONSTRAINTS_ATTRIBUTE} on {sklearn.__version__}"
    assert callable(getattr(cls(), estimators.VALIDATE_METHOD))
    for name in estimators.CONSTRAINT_CLASSES + (estimators.INVALID_PARAMETER_ERROR,):
        assert hasattr(_param_validation, name), name
    kinds = {type(c).__name__ for rules in constraints.values() for c in rules}
    assert kinds & {"Interval", "StrOptions"}, kinds


def test_an_invalid_parameter_is_told_by_its_error_name():
    estimator = HistGradientBoostingClassifier(max_iter=-3)
    with pytest.raises(Exception) as info:
        getattr(estimator, estimators.VALIDATE_METHOD)()
    assert estimators.is_invalid_parameter(info.value)
    assert not estimators.is_invalid_parameter(ValueError("x"))


def test_constraints_give_what_a_parameter_takes():
    assert hp.param_kinds(HistGradientBoostingClassifier, "max_iter", 100) == {hp.INT}
    assert hp.NONE in hp.param_kinds(HistGradientBoostingClassifier, "max_depth", None)
    assert hp.BOOL in hp.param_kinds(HistGradientBoostingClassifier, "early_stopping", "auto")
    assert hp.STR in hp.param_kinds(HistGradientBoostingClassifier, "early_stopping", "auto")
    assert hp.param_kinds(RandomForestRegressor, "min_impurity_decrease", 0.0) == {hp.FLOAT}


def test_an_error_raised_on_another_host_arrives_whole():
    import pickle

    error = HyperparameterError("max_depth", "deep", "an integer", hint="see train --help")
    again = pickle.loads(pickle.dumps(error))
    assert type(again) is HyperparameterError and str(again) == str(error)
    assert again.key == "max_depth" and again.status == 400
    user = pickle.loads(pickle.dumps(UserError("bad", status=413)))
    assert str(user) == "bad"
