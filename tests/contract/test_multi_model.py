"""Multi-model endpoints: ``serve`` with SAGEMAKER_MULTI_MODEL=true and no /opt/ml/model.

SageMaker drives such a container through its model API: it unpacks each
model.tar.gz into a folder of the container and sends ``POST /models
{"model_name", "url": <that folder>}``, then ``POST /models/<name>/invoke``
for every request aimed at the model, ``DELETE /models/<name>`` to unload it,
and reacts to 507 by unloading models itself.  The models here come from the
project's own train stage, on small slices of the bundled data.

Timings (ms) are printed: run with ``pytest -s`` to see them.
"""
from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import requests

from sklearn_byoc.serve.app import create_app
from sklearn_byoc.serve.config import ServerConfig
from sklearn_byoc.serve.invocation import ModelService
from tests.contract.hosting import PID_INFERENCE, add_inference_code, summary_ms, train_many
from scripts.harness import DATA
from scripts.serve_process import ServeProcess as Server

TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
TIMINGS: dict[str, list[float]] = {"load": [], "first invoke": [], "invoke": [], "evict": []}


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return pd.read_csv(DATA)


@pytest.fixture(scope="module")
def models(tmp_path_factory, frame, trained_model) -> dict[str, Path]:
    """Model folders made by the train stage: four small ones of about the same size
    (two classifiers, two regressors), and the suite's gradient boosting classifier
    on the whole data set as a much larger one."""
    def rows(start, stop):
        return frame.iloc[start:stop].to_csv(index=False)

    small = {"max_depth": 4, "model": "decision_tree"}
    jobs = {
        "churn_a": (rows(0, 300), {**small, "target": "churn"}),
        "churn_b": (rows(300, 600), {**small, "target": "churn"}),
        "charges": (rows(600, 900), {**small, "target": "monthly_charges",
                                      "task": "regression"}),
        "tenure": (rows(900, 1200), {**small, "target": "tenure_months",
                                     "task": "regression"}),
    }
    folders = train_many(tmp_path_factory.mktemp("mme-models"), jobs)
    return {**folders, "big": trained_model / "model"}


def size_of(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def endpoint(tmp_path_factory):
    """One multi-model endpoint with two workers and the default memory budget."""
    base = tmp_path_factory.mktemp("mme")
    server = Server(base, {"SAGEMAKER_MULTI_MODEL": "true"}, workers=2)
    server.start()
    yield server
    server.stop()
    print("\nmulti-model timings:")
    for what, values in TIMINGS.items():
        if values:
            print(f"  {what}: {summary_ms(values)}")


# -- the model API, as SageMaker calls it ---------------------------------------------
def load(server, name, url, expect=200) -> requests.Response:
    began = time.monotonic()
    response = requests.post(server.url + "/models",
                             json={"model_name": name, "url": str(url)}, timeout=60)
    elapsed = time.monotonic() - began
    assert response.status_code == expect, response.text
    if expect == 200:
        TIMINGS["evict" if response.json()["evicted"] else "load"].append(elapsed)
    return response


def unload(server, name, expect=200) -> requests.Response:
    response = requests.delete(f"{server.url}/models/{name}", timeout=60)
    assert response.status_code == expect, response.text
    return response


def get(server, name) -> requests.Response:
    return requests.get(f"{server.url}/models/{name}", timeout=60)


def invoke(server, name, body, content_type="text/csv", accept=None, **headers):
    sent = {"Content-Type": content_type, **headers}
    if accept:
        sent["Accept"] = accept
    return requests.post(f"{server.url}/models/{name}/invoke", data=body, headers=sent,
                         timeout=60)


def listing(server, **params) -> dict:
    response = requests.get(server.url + "/models", params=params, timeout=60)
    assert response.status_code == 200, response.text
    return response.json()


def all_pages(server, page_size) -> list[list[str]]:
    pages, token = [], None
    for _ in range(100):
        params = {"page_size": page_size}
        if token:
            params["next_page_token"] = token
        body = listing(server, **params)
        pages.append([m["modelName"] for m in body["models"]])
        token = body.get("nextPageToken")
        if not token:
            return pages
    raise AssertionError("the listing never ended")


def feature_rows(frame, start, stop, target="churn") -> str:
    """Rows as a client sends them: features in training order, no header, no target."""
    return frame.drop(columns=[target]).iloc[start:stop].to_csv(index=False, header=False)


@pytest.fixture
def cleanup(endpoint):
    """Unloads whatever a test left loaded, so tests see only their own models."""
    yield
    for entry in listing(endpoint, page_size=1000)["models"]:
        requests.delete(f"{endpoint.url}/models/{entry['modelName']}", timeout=60)


def single_model_answer(folder: Path, body, headers) -> tuple[int, bytes]:
    """What a single-model endpoint for ``folder`` answers (the app in-process)."""
    app = create_app(ModelService(folder), ServerConfig(model_dir=folder))
    response = app.test_client().post("/invocations", data=body, headers=headers)
    return response.status_code, response.data


# -- tests -----------------------------------------------------------------------------
def test_every_worker_sees_loads_and_unloads(endpoint, models, frame, tmp_path, cleanup):
    """A load handled by one worker serves from every worker; an unload stops all of them.

    This is the module's first test on ``endpoint``: the model here is the first
    each worker loads, and it reports whether scikit-learn was imported by then.
    """
    folder = tmp_path / "pid-model"
    shutil.copytree(models["churn_a"], folder)
    add_inference_code(folder, PID_INFERENCE)
    rows = feature_rows(frame, 0, 2)
    workers = endpoint.worker_pids()
    assert len(workers) == 2, workers

    load(endpoint, "which", folder)
    served_by, answers, preloaded = set(), [], set()
    for _ in range(200):  # bounded; stops as soon as both workers have answered
        began = time.monotonic()
        answer = invoke(endpoint, "which", rows)
        elapsed = time.monotonic() - began
        answers.append(answer.status_code)
        pid, imported = map(int, answer.text.split(",")) if answer.status_code == 200 \
            else (None, None)
        preloaded.add(imported)
        TIMINGS["invoke" if pid in served_by else "first invoke"].append(elapsed)
        served_by.add(pid)
        if len(served_by) == 2 and len(answers) >= 20:
            break
    assert set(answers) == {200}
    assert served_by == workers
    # The libraries a model needs were imported once, in the master before the
    # workers forked, not by each worker during its first load (seconds each).
    assert preloaded == {1}

    unload(endpoint, "which")
    after = [invoke(endpoint, "which", rows) for _ in range(40)]
    assert [a.status_code for a in after] == [404] * 40, {a.text for a in after}

    # Loaded again under the same name from another folder: no worker keeps the old one.
    load(endpoint, "which", models["churn_a"])
    expected = single_model_answer(models["churn_a"], rows, {"Content-Type": "text/csv"})
    again = [invoke(endpoint, "which", rows) for _ in range(40)]
    assert {(a.status_code, a.content) for a in again} == {expected}


def test_load_get_invoke_unload(endpoint, models, frame, cleanup):
    rows = feature_rows(frame, 1500, 1520)
    first = load(endpoint, "churn-a", models["churn_a"])
    assert first.json() == {"status": "model 'churn-a' loaded", "evicted": []}

    again = load(endpoint, "churn-a", models["churn_b"], expect=409)
    assert "already loaded" in again.text and "churn-a" in again.text

    found = get(endpoint, "churn-a")
    assert found.status_code == 200
    assert found.json() == {"modelName": "churn-a", "modelUrl": str(models["churn_a"])}
    missing = get(endpoint, "nobody")
    assert missing.status_code == 404 and "'nobody' is not loaded" in missing.text

    answer = invoke(endpoint, "churn-a", rows)
    assert answer.status_code == 200, answer.text
    expected = single_model_answer(models["churn_a"], rows, {"Content-Type": "text/csv"})
    assert (answer.status_code, answer.content) == expected
    assert answer.text.splitlines() and set(answer.text.split()) <= {"yes", "no"}
    # The same model through /invocations with the target-model header.
    targeted = endpoint.invoke(rows, **{TARGET_MODEL: "churn-a"})
    assert (targeted.status_code, targeted.content) == expected
    untargeted = endpoint.invoke(rows)
    assert untargeted.status_code == 400 and TARGET_MODEL in untargeted.text

    gone = unload(endpoint, "churn-a")
    assert "unloaded" in gone.text
    after = invoke(endpoint, "churn-a", rows)
    assert after.status_code == 404 and "not loaded" in after.text
    assert get(endpoint, "churn-a").status_code == 404
    assert unload(endpoint, "churn-a", expect=404).text.strip()


def test_classifiers_and_regressors_side_by_side(endpoint, models, frame, cleanup):
    for name in ("churn_a", "churn_b", "charges", "tenure"):
        load(endpoint, name, models[name])
    targets = {"churn_a": "churn", "churn_b": "churn", "charges": "monthly_charges",
               "tenure": "tenure_months"}
    for name, target in targets.items():
        rows = feature_rows(frame, 2000, 2050, target)
        for _ in range(3):
            began = time.monotonic()
            answer = invoke(endpoint, name, rows, accept="application/json")
            TIMINGS["invoke"].append(time.monotonic() - began)
            assert answer.status_code == 200, answer.text
        expected = single_model_answer(models[name], rows, {"Content-Type": "text/csv",
                                                            "Accept": "application/json"})
        assert (answer.status_code, answer.content) == expected
        predictions = answer.json()["predictions"]
        assert len(predictions) == 50
        if target == "churn":
            assert set(predictions) <= {"yes", "no"}
        else:
            assert all(isinstance(p, float) for p in predictions)


def test_list_is_paginated(endpoint, models, cleanup):
    names = [f"model-{i:02d}" for i in range(7)]
    for name in names:
        load(endpoint, name, models["churn_a"])
    whole = listing(endpoint)
    assert [m["modelName"] for m in whole["models"]] == names
    assert "nextPageToken" not in whole
    assert all(m["modelUrl"] == str(models["churn_a"]) for m in whole["models"])

    pages = all_pages(endpoint, page_size=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [n for page in pages for n in page] == names
    # A page size that divides the count: the last full page has no token.
    assert [len(p) for p in all_pages(endpoint, page_size=7)] == [7]

    unload(endpoint, "model-03")
    assert [n for page in all_pages(endpoint, page_size=2) for n in page] \
        == [n for n in names if n != "model-03"]

    bad = requests.get(endpoint.url + "/models", params={"page_size": "many"}, timeout=60)
    assert bad.status_code == 400 and "page_size" in bad.text


INVALID_REQUESTS = {
    "unsupported content type": ({"Content-Type": "application/x-parquet"}, "rows", 415),
    "unacceptable accept": ({"Content-Type": "text/csv", "Accept": "image/png"}, "rows", 406),
    "too few columns": ({"Content-Type": "text/csv"}, b"1,2,3\n", 400),
    "empty body": ({"Content-Type": "text/csv"}, b"", 400),
    "bad json": ({"Content-Type": "application/json"}, b"{\"instances\": [", 400),
    "probabilities from a regressor": (
        {"Content-Type": "text/csv", "X-Amzn-SageMaker-Custom-Attributes":
         "output=probabilities"}, "rows", 400),
}


@pytest.mark.parametrize("case", list(INVALID_REQUESTS))
def test_invoke_errors_are_those_of_a_single_model_endpoint(endpoint, models, frame, case,
                                                           cleanup):
    headers, body, status = INVALID_REQUESTS[case]
    name = "charges" if "regressor" in case else "churn_a"
    target = "monthly_charges" if name == "charges" else "churn"
    if body == "rows":
        body = feature_rows(frame, 0, 5, target).encode()
    load(endpoint, name, models[name])
    answer = requests.post(f"{endpoint.url}/models/{name}/invoke", data=body, headers=headers,
                           timeout=60)
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    assert len(answer.text.strip()) > 20  # a message, not a bare status
    assert (answer.status_code, answer.content) == single_model_answer(models[name], body,
                                                                       headers)


def test_invoke_with_other_formats(endpoint, models, frame, cleanup):
    load(endpoint, "churn", models["churn_a"])
    rows = frame.drop(columns=["churn"]).iloc[100:110]
    bodies = {
        "application/json": json.dumps({"instances": rows.to_dict(orient="records")}),
        "application/jsonlines": rows.to_json(orient="records", lines=True),
    }
    for content_type, body in bodies.items():
        for accept in ("text/csv", "application/json", "application/jsonlines"):
            headers = {"Content-Type": content_type, "Accept": accept,
                       "X-Amzn-SageMaker-Custom-Attributes": "output=all"}
            answer = requests.post(f"{endpoint.url}/models/churn/invoke", data=body,
                                   headers=headers, timeout=60)
            assert answer.status_code == 200, answer.text
            assert answer.headers["Content-Type"].startswith(accept)
            assert (200, answer.content) == single_model_answer(models["churn_a"], body,
                                                                headers)


def test_bad_load_requests_say_what_is_wrong(endpoint, models, tmp_path, cleanup):
    def post(body, **kwargs):
        return requests.post(endpoint.url + "/models", data=body, timeout=60, **kwargs)

    missing = tmp_path / "no-such-folder"
    answer = post(json.dumps({"model_name": "x", "url": str(missing)}))
    assert 400 <= answer.status_code < 500
    assert str(missing) in answer.text and "not a folder" in answer.text

    empty = tmp_path / "empty"
    empty.mkdir()
    answer = post(json.dumps({"model_name": "x", "url": str(empty)}))
    assert 400 <= answer.status_code < 500
    assert "model.joblib" in answer.text, answer.text

    for body in (b"not json", b"[]", json.dumps({"model_name": "x"}).encode(),
                 json.dumps({"url": str(models["churn_a"])}).encode()):
        answer = post(body, headers={"Content-Type": "application/json"})
        assert answer.status_code == 400 and "model_name" in answer.text, (body, answer.text)

    answer = post(json.dumps({"model_name": "a/b", "url": str(models["churn_a"])}))
    assert answer.status_code == 400 and "'/'" in answer.text
    # None of these left anything behind.
    assert listing(endpoint)["models"] == []


def test_invokes_never_fail_while_other_models_come_and_go(endpoint, models, frame, cleanup):
    load(endpoint, "steady", models["churn_a"])
    rows = feature_rows(frame, 0, 20)
    expected = single_model_answer(models["churn_a"], rows, {"Content-Type": "text/csv"})
    results: list[tuple[str, int, bytes]] = []
    done = threading.Event()

    def steady_client():
        for _ in range(60):
            if done.is_set():
                break
            answer = invoke(endpoint, "steady", rows)
            results.append(("steady", answer.status_code, answer.content))

    def churning_client():
        for i in range(60):
            if done.is_set():
                break
            answer = invoke(endpoint, f"moving-{i % 3}",
                            feature_rows(frame, 0, 5, "monthly_charges"))
            results.append(("moving", answer.status_code, answer.content))

    clients = [threading.Thread(target=steady_client) for _ in range(3)]
    clients.append(threading.Thread(target=churning_client))
    for client in clients:
        client.start()
    api = []
    try:
        for cycle in range(8):
            for i in range(3):
                api.append(load(endpoint, f"moving-{i}", models["charges"]).status_code)
            for i in range(3):
                api.append(unload(endpoint, f"moving-{i}").status_code)
    finally:
        done.set()
        for client in clients:
            client.join(timeout=120)
    assert not any(c.is_alive() for c in clients)
    assert set(api) == {200}
    steady = [(s, body) for who, s, body in results if who == "steady"]
    assert steady and set(steady) == {expected}
    moving = {s for who, s, _ in results if who == "moving"}
    assert moving <= {200, 404}, [r for r in results if r[1] >= 500][:3]


def test_memory_pressure_evicts_the_least_recently_used(models, frame, tmp_path):
    a, b, c, d = (models[n] for n in ("churn_a", "churn_b", "charges", "tenure"))
    sizes = {p: size_of(p) for p in (a, b, c, d)}
    # Room for any three of the four small models, never for all four.
    budget = max(sum(sizes.values()) - s for s in sizes.values()) + 64
    assert budget < sum(sizes.values())
    assert size_of(models["big"]) > budget
    server = Server(tmp_path, {"SAGEMAKER_MULTI_MODEL": "true",
                               "SAGEMAKER_MULTI_MODEL_MEMORY_MB": f"{budget / 2**20:.9f}"},
                    workers=2)
    with server:
        for name, folder in (("a", a), ("b", b), ("c", c)):
            assert load(server, name, folder).json()["evicted"] == []
        churn_rows = feature_rows(frame, 0, 3)
        # Use a and c: b, loaded after a, is now the least recently used.
        assert invoke(server, "a", churn_rows).status_code == 200
        time.sleep(0.05)
        assert invoke(server, "c", feature_rows(frame, 0, 3, "monthly_charges")) \
            .status_code == 200
        time.sleep(0.05)

        answer = load(server, "d", d)
        assert answer.json()["evicted"] == ["b"]
        assert [m["modelName"] for m in listing(server)["models"]] == ["a", "c", "d"]
        assert get(server, "b").status_code == 404
        evicted = [invoke(server, "b", churn_rows) for _ in range(10)]
        assert {e.status_code for e in evicted} == {404}
        assert invoke(server, "d", feature_rows(frame, 0, 3, "tenure_months")) \
            .status_code == 200

        too_big = load(server, "big", models["big"], expect=507)
        assert "'big'" in too_big.text and "SAGEMAKER_MULTI_MODEL_MEMORY_MB" in too_big.text
        # The message gives both sizes (small sizes in KB, not as "0 MB").
        assert f"about {size_of(models['big']) / 1024:.0f} KB" in too_big.text, too_big.text
        assert f"is {budget / 1024:.0f} KB" in too_big.text, too_big.text
        # Refusing it evicted nothing.
        assert [m["modelName"] for m in listing(server)["models"]] == ["a", "c", "d"]
        assert invoke(server, "a", churn_rows).status_code == 200
