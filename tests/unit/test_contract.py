"""The SageMaker contract module: paths, config file readers, the environment."""
import json
from pathlib import Path

import pytest

from sklearn_byoc.common import contract
from sklearn_byoc.common.contract import Paths, ResourceConfig, read_input_data_config
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
        p.processing_dir: "processing",
        p.processingjobconfig_file: "config/processingjobconfig.json",
        p.processing_resourceconfig_file: "config/resourceconfig.json",
    }
    for path, relative in expected.items():
        assert path == tmp_path / relative


def write_json(path: Path, value) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(value if isinstance(value, str) else json.dumps(value))
    return path


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


def test_unreadable_config_names_the_file(tmp_path):
    path = tmp_path / "inputdataconfig.json"
    path.write_bytes(b'{"train": "\xff"}')
    with pytest.raises(UserError) as info:
        read_input_data_config(path)
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
