"""The model folder: complete models only, stale temporary files cleared."""
from __future__ import annotations

import json

import pytest
from sklearn.dummy import DummyClassifier

from sklearn_byoc.common.model_files import (METADATA_FILE, MODEL_FILE, Feature, ModelLoadError,
                                            ModelMetadata, load_model, resolve_model_dir,
                                            save_model)


def metadata() -> ModelMetadata:
    return ModelMetadata(target="y", task="classification", features=[Feature("x", "numeric")],
                         classes=[0, 1])


def test_save_clears_what_a_killed_save_left_behind(tmp_path):
    (tmp_path / f".{MODEL_FILE}.partial").write_bytes(b"half a pickle")
    (tmp_path / f".{METADATA_FILE}.partial").write_text("{")
    model = DummyClassifier().fit([[0], [1]], [0, 1])
    save_model(tmp_path, model, metadata())
    assert sorted(p.name for p in tmp_path.iterdir()) == [METADATA_FILE, MODEL_FILE]
    loaded = load_model(tmp_path)
    assert loaded.metadata.target == "y"
    assert json.loads((tmp_path / METADATA_FILE).read_text())["classes"] == [0, 1]


def test_the_training_columns_and_the_ignored_ones_round_trip(tmp_path):
    from sklearn_byoc.common.model_files import Column

    meta = metadata()
    meta.columns = [Column("id", "ignored"), Column("x", "feature"), Column("y", "target")]
    meta.ignored_columns = ["id"]
    save_model(tmp_path, DummyClassifier().fit([[0], [1]], [0, 1]), meta)
    raw = json.loads((tmp_path / METADATA_FILE).read_text())
    assert raw["columns"] == [{"name": "id", "role": "ignored"}, {"name": "x", "role": "feature"},
                              {"name": "y", "role": "target"}]
    assert raw["ignored_columns"] == ["id"]
    loaded = load_model(tmp_path).metadata
    assert [(c.name, c.role) for c in loaded.columns] == [("id", "ignored"), ("x", "feature"),
                                                          ("y", "target")]
    assert loaded.ignored_columns == ["id"]


def test_metadata_written_before_the_columns_were_recorded_still_loads(tmp_path):
    save_model(tmp_path, DummyClassifier().fit([[0], [1]], [0, 1]), metadata())
    raw = json.loads((tmp_path / METADATA_FILE).read_text())
    del raw["columns"], raw["ignored_columns"]
    (tmp_path / METADATA_FILE).write_text(json.dumps(raw))
    loaded = load_model(tmp_path).metadata
    assert loaded.columns == [] and loaded.ignored_columns == []


def test_a_model_folder_with_nothing_to_serve_says_where_sdk_v3_puts_the_files(tmp_path):
    with pytest.raises(ModelLoadError) as caught:
        resolve_model_dir(tmp_path)
    message = str(caught.value)
    assert "\n" not in message
    assert "mounts only the code/ folder of model_path here" in message
    assert "put the model files in <model_path>/code" in message
