"""The SageMaker contract module: paths, config file readers, typed hyperparameters."""
import json
from pathlib import Path

import pytest

from sklearn_byoc.common import contract
from sklearn_byoc.common.contract import (HyperparameterError, Hyperparameters, Paths, ResourceConfig,
                             decode_value, read_input_data_config, read_processing_job_config)
from sklearn_byoc.common.errors import UserError


# -- paths ---------------------------------------------------------------------------
def test_base_dir_defaults_to_opt_ml(monkeypatch):
    monkeypatch.delenv("SAGEMAKER_BASE_DIR", raising=False)
    paths = Paths.from_env()
    assert paths.base == Path("/opt/ml")
    assert paths.hyperparameters_file == Path("/opt/ml/input/config/hyperparameters.json")
    assert paths.model_dir == Path("/opt/ml/model")
    assert paths.failure_file == Path("/opt/ml/output/failure")


def test_empty_base_dir_variable_means_default(monkeypatch):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", "")
    assert Paths.from_env().base == Path("/opt/ml")


def test_every_path_moves_with_sagemaker_base_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SAGEMAKER_BASE_DIR", str(tmp_path))
    p = Paths.from_env()
    expected = {
        p.hyperparameters_file: "input/config/hyperparameters.json",
        p.inputdataconfig_file: "input/config/inputdataconfig.json",
        p.training_resourceconfig_file: "input/config/resourceconfig.json",
        p.data_dir: "input/data",
        p.channel_dir("training"): "input/data/training",
        p.model_dir: "model",
        p.output_data_dir: "output/data",
        p.failure_file: "output/failure",
        p.message_file: "output/message",
        p.checkpoints_dir: "checkpoints",
        p.processing_dir: "processing",
        p.processingjobconfig_file: "config/processingjobconfig.json",
        p.processing_resourceconfig_file: "config/resourceconfig.json",
    }
    for path, relative in expected.items():
        assert path == tmp_path / relative


# -- hyperparameters.json --------------------------------------------------------------
def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


def test_hyperparameters_absent_file_means_none(tmp_path):
    hp = Hyperparameters.read(tmp_path / "hyperparameters.json")
    assert hp.raw == {}
    assert hp.get_int("seed", 42) == 42
    assert hp.get_str("model", "gradient_boosting") == "gradient_boosting"


def test_hyperparameters_values_arrive_as_strings(tmp_path):
    path = write_json(tmp_path / "hp.json", {
        "flag": "True", "off": "False", "rate": "0.1", "trees": "7", "whole": "7.0",
        "name": "\"abc\"", "plain": "abc", "number_json": "3", "bool_json": "true",
    })
    hp = Hyperparameters.read(path)
    assert hp.get_bool("flag", False) is True
    assert hp.get_bool("off", True) is False
    assert hp.get_bool("bool_json", False) is True
    assert hp.get_float("rate", 1.0) == pytest.approx(0.1)
    assert hp.get_int("trees", 1) == 7
    assert hp.get_int("whole", 1) == 7
    assert hp.get_int("number_json", 1) == 3
    # Framework estimators send json.dumps(value): the quotes are not part of the value.
    assert hp.get_str("name") == "abc"
    assert hp.get_str("plain") == "abc"


def test_decode_value_only_unwraps_json_strings():
    assert decode_value('"abc"') == "abc"
    assert decode_value('"a \\"quoted\\" word"') == 'a "quoted" word'
    assert decode_value("abc") == "abc"
    assert decode_value("0.1") == "0.1"
    assert decode_value('"unterminated') == '"unterminated'
    assert decode_value(5) == 5


@pytest.mark.parametrize("method, value, expected", [
    ("get_int", "seven", "an integer"),
    ("get_int", "7.5", "an integer"),
    ("get_int", "True", "an integer"),
    ("get_float", "fast", "a number"),
    ("get_bool", "maybe", "a boolean"),
])
def test_typed_conversion_error_names_key_and_type(tmp_path, method, value, expected):
    hp = Hyperparameters({"my_key": value})
    with pytest.raises(HyperparameterError) as info:
        getattr(hp, method)("my_key", 1)
    message = str(info.value)
    assert "my_key" in message
    assert expected in message
    assert repr(value) in message
    assert info.value.key == "my_key"
    assert isinstance(info.value, UserError)


def test_range_checks_name_the_key():
    hp = Hyperparameters({"fraction": "0.95", "seed": "-1"})
    with pytest.raises(HyperparameterError, match="fraction.*less than 0.9"):
        hp.get_float("fraction", 0.2, minimum=0.0, maximum=0.9, exclusive=True)
    with pytest.raises(HyperparameterError, match="seed.*at least 0"):
        hp.get_int("seed", 42, minimum=0)


def test_choice_is_normalized_and_checked():
    hp = Hyperparameters({"task": "Classification", "header": "\"present\"", "bad": "sideways"})
    assert hp.get_choice("task", ("auto", "classification", "regression"), "auto") == \
        "classification"
    assert hp.get_choice("header", ("auto", "present", "absent"), "auto") == "present"
    with pytest.raises(HyperparameterError, match="bad.*one of auto, present, absent"):
        hp.get_choice("bad", ("auto", "present", "absent"), "auto")


def test_unused_tracks_what_was_read():
    hp = Hyperparameters({"a": "1", "b": "2"})
    hp.get_int("a", 0)
    assert hp.unused() == {"b": "2"}


def test_platform_keys_are_recognized():
    for key in ("_tuning_objective_metric", "sagemaker_program", "sagemaker_region",
                "sagemaker_submit_directory", "sagemaker_container_log_level"):
        assert contract.is_platform_key(key)
    for key in ("model", "n_estimators", "target"):
        assert not contract.is_platform_key(key)


def test_hyperparameters_invalid_json_names_the_file(tmp_path):
    path = write_json(tmp_path / "config" / "hyperparameters.json", '{"model": ')
    with pytest.raises(UserError) as info:
        Hyperparameters.read(path)
    assert str(path) in str(info.value)
    assert "not valid JSON" in str(info.value)


def test_hyperparameters_must_be_an_object(tmp_path):
    path = write_json(tmp_path / "hyperparameters.json", '["model", "knn"]')
    with pytest.raises(UserError, match="hyperparameters.json.*JSON object"):
        Hyperparameters.read(path)


# -- inputdataconfig.json ---------------------------------------------------------------
def test_input_data_config_absent_means_no_channels(tmp_path):
    assert read_input_data_config(tmp_path / "inputdataconfig.json") == {}


def test_input_data_config_as_sagemaker_writes_it(tmp_path):
    path = write_json(tmp_path / "inputdataconfig.json", {
        "train": {"ContentType": "text/csv", "TrainingInputMode": "File",
                  "S3DistributionType": "FullyReplicated", "RecordWrapperType": "None"},
        "validation": {"TrainingInputMode": "File", "S3DistributionType": "FullyReplicated",
                       "RecordWrapperType": "None"},
    })
    config = read_input_data_config(path)
    assert set(config) == {"train", "validation"}
    assert config["train"]["ContentType"] == "text/csv"
    assert "ContentType" not in config["validation"]


def test_input_data_config_invalid_json_names_the_file(tmp_path):
    path = write_json(tmp_path / "inputdataconfig.json", "{'train': {}}")
    with pytest.raises(UserError) as info:
        read_input_data_config(path)
    assert str(path) in str(info.value)


def test_input_data_config_must_be_an_object(tmp_path):
    path = write_json(tmp_path / "inputdataconfig.json", '["train"]')
    with pytest.raises(UserError, match="inputdataconfig.json"):
        read_input_data_config(path)


# -- resourceconfig.json ------------------------------------------------------------------
def test_resource_config_absent_means_one_host(tmp_path):
    config = ResourceConfig.read(tmp_path / "resourceconfig.json")
    assert config.current_host == "algo-1"
    assert config.hosts == ("algo-1",)
    assert not config.is_distributed


def test_resource_config_reads_hosts(tmp_path):
    path = write_json(tmp_path / "resourceconfig.json", {
        "current_host": "algo-2-x1y2z", "hosts": ["algo-1-x1y2z", "algo-2-x1y2z"],
        "network_interface_name": "eth0", "current_instance_type": "ml.m5.xlarge",
        "current_group_name": "homogeneousCluster", "instance_groups": [],
    })
    config = ResourceConfig.read(path)
    assert config.current_host == "algo-2-x1y2z"
    assert config.hosts == ("algo-1-x1y2z", "algo-2-x1y2z")
    assert config.instance_type == "ml.m5.xlarge"
    assert config.is_distributed


def test_resource_config_invalid_json_names_the_file(tmp_path):
    path = write_json(tmp_path / "resourceconfig.json", '{"current_host": "algo-1",}')
    with pytest.raises(UserError) as info:
        ResourceConfig.read(path)
    assert str(path) in str(info.value)


# -- processingjobconfig.json -------------------------------------------------------------
def test_processing_job_config_absent_is_none(tmp_path):
    assert read_processing_job_config(tmp_path / "processingjobconfig.json") is None


def test_processing_job_config_is_read(tmp_path):
    request = {
        "ProcessingJobName": "prepare-1",
        "ProcessingInputs": [{"InputName": "raw", "S3Input": {
            "LocalPath": "/opt/ml/processing/input/raw", "S3Uri": "s3://b/raw"}}],
        "AppSpecification": {"ImageUri": "img", "ContainerEntrypoint": ["processing"]},
        "Environment": {},
    }
    path = write_json(tmp_path / "processingjobconfig.json", request)
    assert read_processing_job_config(path) == request


def test_processing_job_config_invalid_json_names_the_file(tmp_path):
    path = write_json(tmp_path / "processingjobconfig.json", "not json")
    with pytest.raises(UserError) as info:
        read_processing_job_config(path)
    assert str(path) in str(info.value)


def test_unreadable_config_names_the_file(tmp_path):
    path = tmp_path / "hyperparameters.json"
    path.write_bytes(b'{"model": "\xff"}')
    with pytest.raises(UserError) as info:
        Hyperparameters.read(path)
    assert str(path) in str(info.value)


# -- environment ------------------------------------------------------------------------
def test_env_int_and_bool(monkeypatch):
    monkeypatch.delenv("X_TEST_INT", raising=False)
    assert contract.env_int("X_TEST_INT", 6) == 6
    monkeypatch.setenv("X_TEST_INT", "12")
    assert contract.env_int("X_TEST_INT", 6) == 12
    monkeypatch.setenv("X_TEST_INT", "lots")
    with pytest.raises(UserError, match="X_TEST_INT.*integer"):
        contract.env_int("X_TEST_INT", 6)
    monkeypatch.setenv("X_TEST_INT", "0")
    with pytest.raises(UserError, match="X_TEST_INT.*at least 1"):
        contract.env_int("X_TEST_INT", 6)
    # SageMaker sets SAGEMAKER_BATCH=true; SDK local mode sets "True".
    for raw, expected in (("true", True), ("True", True), ("false", False), ("", False)):
        monkeypatch.setenv("X_TEST_BOOL", raw)
        assert contract.env_bool("X_TEST_BOOL") is expected
    monkeypatch.setenv("X_TEST_BOOL", "perhaps")
    with pytest.raises(UserError, match="X_TEST_BOOL"):
        contract.env_bool("X_TEST_BOOL")
