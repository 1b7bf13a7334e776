"""Multi-model endpoints with models that bring their own code, and the /models API's JSON.

Each model's code is imported under a prefix of its own, so two models'
``helpers.py`` stay two modules; each model's ``code/requirements.txt``
installs into a folder of its own, and one server holds one version of a
package.
"""
from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
import requests

from tests.fixtures.code_archives import make_wheel
from scripts.serve_process import ServeProcess as Server
from tests.contract.test_inference_handlers import ROW

INFERENCE = """
    import json
    import helpers
    from common.names import NAME

    def input_fn(body, content_type):
        return body

    def predict_fn(data, model):
        return [helpers.VALUE, NAME]

    def output_fn(prediction, accept):
        import helpers as late  # imported when a request runs, not at load
        return json.dumps(prediction + [late.VALUE]), "application/json"
"""


def model_with_code(trained_model: Path, target: Path, files: dict[str, str]) -> Path:
    shutil.copytree(trained_model / "model", target, ignore=shutil.ignore_patterns("code"))
    for name, text in files.items():
        path = target / "code" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return target


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    base = tmp_path_factory.mktemp("mme-code")
    # Two workers: a model loaded by one is loaded by the other on its first invoke.
    with Server(base, {"SAGEMAKER_MULTI_MODEL": "true"}, workers=2) as server:
        yield server


def load(server, name, folder) -> requests.Response:
    return requests.post(server.url + "/models", json={"model_name": name, "url": str(folder)},
                         timeout=120)


def invoke(server, name, body=b"1", **headers) -> requests.Response:
    return requests.post(f"{server.url}/models/{name}/invoke", data=body,
                         headers={"Content-Type": "text/csv", **headers}, timeout=60)


def test_two_models_with_same_named_modules_keep_their_own(endpoint, trained_model, tmp_path):
    for letter in "ab":
        folder = model_with_code(trained_model, tmp_path / letter, {
            "inference.py": INFERENCE, "helpers.py": f"VALUE = 'helpers of {letter}'\n",
            "common/__init__.py": "", "common/names.py": f"NAME = 'model {letter}'\n"})
        assert load(endpoint, f"code-{letter}", folder).status_code == 200
    try:
        # Enough invokes to reach both workers, alternating between the models.
        for _ in range(6):
            for letter in "ab":
                answer = invoke(endpoint, f"code-{letter}")
                assert answer.status_code == 200, endpoint.log()
                assert answer.json() == [f"helpers of {letter}", f"model {letter}",
                                         f"helpers of {letter}"]
    finally:
        for letter in "ab":
            requests.delete(f"{endpoint.url}/models/code-{letter}", timeout=60)


def test_each_models_requirements_install_apart_and_one_version_is_held(endpoint,
                                                                        trained_model,
                                                                        tmp_path):
    def with_requirement(name: str, version: str) -> Path:
        folder = model_with_code(trained_model, tmp_path / name, {"inference.py": """
            import tinypkg_mm
            def input_fn(body, content_type):
                return body
            def predict_fn(data, model):
                return [tinypkg_mm.VALUE]
        """})
        wheels = folder / "code" / "wheels"
        wheels.mkdir()
        wheel = make_wheel(wheels, name="tinypkg_mm", version=version,
                           body=f"VALUE = '{version}'\n")
        # A relative line: pip runs in the requirements file's own folder.
        (folder / "code" / "requirements.txt").write_text(f"./wheels/{wheel.name}\n")
        return folder

    first = with_requirement("first", "1.0")
    assert load(endpoint, "needs-1.0", first).status_code == 200, endpoint.log()
    try:
        for _ in range(4):
            answer = invoke(endpoint, "needs-1.0", Accept="application/json")
            assert answer.status_code == 200 and answer.json() == ["1.0"], endpoint.log()
        second = load(endpoint, "needs-2.0", with_requirement("second", "2.0"))
        assert second.status_code == 400, second.text
        error = second.json()
        assert error["code"] == 400
        assert "tinypkg-mm 2.0" in error["message"] and "tinypkg-mm 1.0" in error["message"]
        assert "one version of a package" in error["message"]
        same = load(endpoint, "also-1.0", with_requirement("third", "1.0"))
        assert same.status_code == 200, same.text
    finally:
        for name in ("needs-1.0", "needs-2.0", "also-1.0"):
            requests.delete(f"{endpoint.url}/models/{name}", timeout=60)


def test_every_models_answer_is_json_errors_included(endpoint, trained_model, tmp_path):
    folder = model_with_code(trained_model, tmp_path / "plain", {})
    loaded = load(endpoint, "plain", folder)
    assert loaded.status_code == 200 and loaded.headers["Content-Type"] == "application/json"
    try:
        conflict = load(endpoint, "plain", folder)
        assert conflict.status_code == 409
        assert conflict.json()["code"] == 409 and conflict.json()["type"] == \
            "ConflictStatusException" and "already loaded" in conflict.json()["message"]
        got = requests.get(endpoint.url + "/models/plain", timeout=30)
        assert got.json() == {"modelName": "plain", "modelUrl": str(folder)}
        listed = requests.get(endpoint.url + "/models", timeout=30).json()
        assert {"modelName": "plain", "modelUrl": str(folder)} in listed["models"]
        for method, path in [("GET", "/models/nothing"), ("DELETE", "/models/nothing"),
                             ("POST", "/models/nothing/invoke")]:
            answer = requests.request(method, endpoint.url + path, timeout=30)
            assert answer.status_code == 404, (method, path)
            body = answer.json()
            assert body == {"code": 404, "type": "ModelNotFoundException",
                            "message": body["message"]} and "'nothing'" in body["message"]
        bad = requests.post(endpoint.url + "/models", data=b"not json", timeout=30)
        assert bad.status_code == 400 and "model_name" in bad.json()["message"]
        page = requests.get(endpoint.url + "/models?page_size=x", timeout=30)
        assert page.status_code == 400 and "page_size" in page.json()["message"]
    finally:
        requests.delete(f"{endpoint.url}/models/plain", timeout=60)
    assert json.loads(requests.delete(f"{endpoint.url}/models/plain", timeout=30).text)[
        "code"] == 404


def test_sagemaker_program_with_no_code_serves_each_model_the_built_in_way(trained_model,
                                                                            tmp_path):
    folder = model_with_code(trained_model, tmp_path / "plain", {})
    with Server(tmp_path / "ml", {"SAGEMAKER_MULTI_MODEL": "true",
                                  "SAGEMAKER_PROGRAM": "inference.py"}) as server:
        assert load(server, "plain", folder).status_code == 200, server.log()
        answer = invoke(server, "plain", ROW.encode())
        assert answer.status_code == 200, server.log()
        assert "no inference code at all" in server.log()
        with_code_missing = model_with_code(trained_model, tmp_path / "other",
                                            {"other.py": "x = 1\n"})
        refused = load(server, "other", with_code_missing)
        assert refused.status_code >= 400
        assert "SAGEMAKER_PROGRAM='inference.py'" in refused.text
