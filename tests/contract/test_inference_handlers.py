"""A model folder's own code/inference.py, served by the real serve process."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from scripts.harness import ROOT
from scripts.serve_process import ServeProcess as Server

EXAMPLE = ROOT / "tests" / "fixtures" / "inference_code"
CUSTOMERS = [
    {"tenure_months": 2, "contract": "month-to-month", "monthly_charges": 95.5,
     "support_calls": 4},
    {"tenure_months": 60, "contract": "two-year", "monthly_charges": 30.0, "support_calls": 0},
]


# A row of the bundled data without its target, as CSV.
ROW = "49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no"


def with_code(serving_tree: Path, source: str | None = None, **files: str) -> Path:
    code = serving_tree / "model" / "code"
    if source:
        shutil.copytree(source, code)
    code.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (code / name).write_text(text)
    return serving_tree


def expected_for(serving_tree: Path, rows: list[dict]):
    """What the trained pipeline says for ``rows``, computed without serve."""
    model = joblib.load(serving_tree / "model" / "model.joblib")
    meta = json.loads((serving_tree / "model" / "metadata.json").read_text())
    frame = pd.DataFrame([{f["name"]: row.get(f["name"], np.nan) for f in meta["features"]}
                          for row in rows])
    for feature in meta["features"]:
        if feature["kind"] == "categorical":
            frame[feature["name"]] = frame[feature["name"]].astype(object)
        else:
            frame[feature["name"]] = frame[feature["name"]].astype(float)
    return model.predict(frame).tolist(), model.predict_proba(frame).max(axis=1).tolist()


def test_input_fn_and_output_fn_replace_only_their_layer(serving_tree):
    base = with_code(serving_tree, EXAMPLE)
    labels, _ = expected_for(base, CUSTOMERS)
    with Server(base) as server:
        answer = server.invoke(json.dumps({"customers": CUSTOMERS}), "application/json")
        assert answer.status_code == 200, answer.text
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json() == {"answers": [{"churn": label} for label in labels]}

        # The handler's own validation chooses the status and the message.
        wrong_type = server.invoke("1,2,3", "text/csv")
        assert wrong_type.status_code == 415
        assert "takes application/json" in wrong_type.text
        empty = server.invoke(json.dumps({"customers": []}), "application/json")
        assert empty.status_code == 422
        assert "customers" in empty.text


def test_a_failing_handler_answers_500_with_its_message(serving_tree):
    base = with_code(serving_tree, **{"inference.py": (
        "def predict_fn(data, model):\n"
        "    raise ValueError('the scoring service is misconfigured: no threshold')\n")})
    with Server(base) as server:
        answer = server.invoke("49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,"
                               "west,no", "text/csv")
        assert answer.status_code == 500
        assert "text/plain" in answer.headers["Content-Type"]
        assert "no threshold" in answer.text and "predict_fn" in answer.text
        assert "<html" not in answer.text.lower()
        assert "Traceback" in server.log()


def test_model_fn_and_transform_fn_take_over_completely(serving_tree, tmp_path):
    with_code(serving_tree, **{"inference.py": (
        "import json\n"
        "def model_fn(model_dir):\n"
        "    return {'offset': 10}\n"
        "def transform_fn(model, body, content_type, accept):\n"
        "    numbers = json.loads(body)\n"
        "    return json.dumps([n + model['offset'] for n in numbers]), 'application/json'\n")})
    with Server(serving_tree) as server:
        answer = server.invoke("[1, 2, 3]", "application/json")
        assert answer.status_code == 200, answer.text
        assert answer.json() == [11, 12, 13]


def test_model_fn_alone_gets_schema_free_defaults(serving_tree):
    with_code(serving_tree, **{"inference.py": (
        "class Doubler:\n"
        "    def predict(self, X):\n"
        "        return X.sum(axis=1) * 2\n"
        "def model_fn(model_dir):\n"
        "    return Doubler()\n")})
    with Server(serving_tree) as server:
        answer = server.invoke("1,2\n3,4.5\n", "text/csv")
        assert answer.status_code == 200, answer.text
        assert [float(v) for v in answer.text.split()] == [6.0, 15.0]
        as_json = server.invoke('{"instances": [[1, 1]]}', "application/json",
                                accept="application/json")
        assert as_json.json() == {"predictions": [4.0]}


def test_sagemaker_program_names_a_missing_file(serving_tree):
    with_code(serving_tree, **{"other.py": "x = 1\n"})
    server = Server(serving_tree, env={"SAGEMAKER_PROGRAM": "inference.py"})
    with pytest.raises(RuntimeError) as failure:
        server.start(timeout=30)
    message = str(failure.value)
    assert "SAGEMAKER_PROGRAM='inference.py'" in message and "other.py" in message


@pytest.mark.parametrize("code", ["no code folder", "a code folder without Python"])
def test_sagemaker_program_without_any_code_serves_the_model(serving_tree, code):
    """SDK v3's ModelBuilder sets SAGEMAKER_PROGRAM=inference.py on models without code."""
    if code != "no code folder":
        with_code(serving_tree, **{"README.txt": "notes\n"})
    with Server(serving_tree, env={"SAGEMAKER_PROGRAM": "inference.py"}) as server:
        answer = server.invoke("49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,"
                               "west,no", "text/csv")
        assert answer.status_code == 200, answer.text
        log = server.log()
    warnings = [line for line in log.splitlines() if " WARNING " in line]
    assert any("SAGEMAKER_PROGRAM='inference.py' is ignored" in line
               and "serving it with the built-in handlers" in line for line in warnings), log


def test_an_import_error_in_the_handler_stops_the_container(serving_tree):
    with_code(serving_tree, **{"inference.py": "import not_a_real_module_anywhere\n"})
    server = Server(serving_tree)
    with pytest.raises(RuntimeError) as failure:
        server.start(timeout=30)
    assert "not_a_real_module_anywhere" in str(failure.value)


# -- where the code comes from ---------------------------------------------------------------
LABEL_CODE = '''\
def input_fn(body, content_type):
    return body

def predict_fn(data, model):
    return ["from the submitted code"]
'''


@pytest.mark.parametrize("form", ["archive without suffix", "file:// archive", "folder"])
def test_code_named_by_sagemaker_submit_directory(serving_tree, tmp_path, form):
    from tests.fixtures.code_archives import tar_folder

    source = tmp_path / "source"
    source.mkdir()
    (source / "inference.py").write_text(LABEL_CODE)
    if form == "folder":
        submit = str(source)
    else:
        # SDK local mode mounts local code at /opt/ml/code, an archive as a file.
        archive = tar_folder(source, tmp_path / "code")
        submit = f"file://{archive}" if form.startswith("file") else str(archive)
    with Server(serving_tree, env={"SAGEMAKER_SUBMIT_DIRECTORY": submit,
                                   "SAGEMAKER_PROGRAM": "inference.py"}) as server:
        answer = server.invoke("1", "text/csv", accept="application/json")
        assert answer.status_code == 200, server.log()
        assert answer.json() == ["from the submitted code"]


def test_submit_directory_naming_a_file_that_is_no_archive(serving_tree, tmp_path):
    stray = tmp_path / "notes.txt"
    stray.write_text("not code")
    server = Server(serving_tree, env={"SAGEMAKER_SUBMIT_DIRECTORY": str(stray)})
    with pytest.raises(RuntimeError) as failure:
        server.start(timeout=30)
    assert "not a readable tar archive" in str(failure.value) and str(stray) in str(failure.value)


def test_code_requirements_install_with_relative_wheel_lines(serving_tree):
    from tests.fixtures.code_archives import make_wheel

    code = serving_tree / "model" / "code"
    (code / "wheels").mkdir(parents=True)
    wheel = make_wheel(code / "wheels", name="tinypkg_serve", body="VALUE = 'installed'\n")
    (code / "requirements.txt").write_text(f"./wheels/{wheel.name}\n")
    (code / "inference.py").write_text(
        "import tinypkg_serve\n"
        "def input_fn(body, content_type):\n    return body\n"
        "def predict_fn(data, model):\n    return [tinypkg_serve.VALUE]\n")
    # The server runs from elsewhere: the wheel path is relative to requirements.txt.
    with Server(serving_tree) as server:
        answer = server.invoke("1", "text/csv", accept="application/json")
        assert answer.status_code == 200, server.log()
        assert answer.json() == ["installed"]


def test_execution_parameters_fn_answers_the_route(serving_tree):
    with_code(serving_tree, **{"inference.py": (
        "def execution_parameters_fn():\n"
        "    return {'MaxConcurrentTransforms': 1, 'BatchStrategy': 'SingleRecord',\n"
        "            'MaxPayloadInMB': 3}\n")})
    with Server(serving_tree) as server:
        answer = requests.get(server.url + "/execution-parameters", timeout=30)
        assert answer.status_code == 200
        assert answer.json() == {"MaxConcurrentTransforms": 1, "BatchStrategy": "SingleRecord",
                                 "MaxPayloadInMB": 3}


def test_transform_fn_beside_another_handler_stops_the_start(serving_tree):
    with_code(serving_tree, **{"inference.py": (
        "def transform_fn(model, body, content_type, accept):\n    return body\n"
        "def output_fn(prediction, accept):\n    return prediction\n")})
    server = Server(serving_tree)
    with pytest.raises(RuntimeError) as failure:
        server.start(timeout=30)
    assert "transform_fn and output_fn" in str(failure.value)
