"""The serve stage under gunicorn on 127.0.0.1, exercised over HTTP.

Expected predictions come from loading model.joblib with joblib here and
running the pipeline on the same raw rows.
"""
from __future__ import annotations

import json
import re
import shutil
import tarfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import requests

from scripts.harness import DATA
from scripts.serve_process import ServeProcess as Server

CUSTOM = "X-Amzn-SageMaker-Custom-Attributes"
CSV, JSON, JSONL = "text/csv", "application/json", "application/jsonlines"


# -- reference predictions --------------------------------------------------------------------
class Reference:
    """Raw rows of the bundled data and what the saved pipeline says about them."""

    def __init__(self, model_dir: Path, rows: pd.DataFrame):
        self.metadata = json.loads((model_dir / "metadata.json").read_text())
        self.names = [f["name"] for f in self.metadata["features"]]
        self.kinds = {f["name"]: f["kind"] for f in self.metadata["features"]}
        self.classes = self.metadata["classes"]
        self.model = joblib.load(model_dir / "model.joblib")
        self.X = rows[self.names].reset_index(drop=True)
        self.target = rows[self.metadata["target"]].reset_index(drop=True)
        frame = self.X.copy()
        for name, kind in self.kinds.items():
            if kind == "categorical":
                frame[name] = frame[name].astype(object).where(frame[name].notna(), np.nan)
        self.labels = [str(v) for v in self.model.predict(frame)]
        self.proba = self.model.predict_proba(frame)

    # the same rows in each request format
    def csv(self, header: bool = False, columns: list[str] | None = None) -> str:
        return self.X[columns or self.names].to_csv(index=False, header=header)

    def list_rows(self) -> list[list]:
        return [[None if pd.isna(v) else (v.item() if hasattr(v, "item") else v) for v in row]
                for row in self.X.itertuples(index=False)]

    def object_rows(self) -> list[dict]:
        return [{k: v for k, v in zip(self.names, row) if v is not None}
                for row in self.list_rows()]

    def body(self, content_type: str) -> str:
        if content_type == CSV:
            return self.csv()
        if content_type == JSON:
            return json.dumps({"instances": self.list_rows()})
        return "".join(json.dumps(row) + "\n" for row in self.object_rows())


@pytest.fixture(scope="module")
def reference(trained_model) -> Reference:
    data = pd.read_csv(DATA)
    with_missing = data[data.isna().any(axis=1)].head(10)
    rows = pd.concat([data.head(30), with_missing]).sample(frac=1, random_state=3)
    assert rows.isna().any(axis=None)
    return Reference(trained_model / "model", rows)


@pytest.fixture(scope="module")
def server(trained_model, tmp_path_factory):
    base = tmp_path_factory.mktemp("endpoint")
    shutil.copytree(trained_model / "model", base / "model")
    with Server(base) as running:
        yield running


def labels_of(answer: requests.Response, accept: str) -> list[str]:
    if accept == CSV:
        return answer.text.splitlines()
    if accept == JSON:
        return [str(v) for v in answer.json()["predictions"]]
    return [str(json.loads(line)["prediction"]) for line in answer.text.splitlines()]


def assert_plain_error(answer: requests.Response, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("text/plain")
    text = answer.text
    assert text.strip(), "an error needs a message"
    assert not re.search(r"<\s*/?\s*(html|!doctype|head|body|title|h1|p)\b", text, re.I)
    assert len(text.strip().splitlines()) == 1
    for word in words:
        assert word in text, f"{word!r} not in {text!r}"


# -- every content type and accept ------------------------------------------------------------
def test_ping(server):
    answer = requests.get(server.url + "/ping", timeout=10)
    assert answer.status_code == 200


@pytest.mark.parametrize("accept", [CSV, JSON, JSONL, None, "*/*"])
@pytest.mark.parametrize("content_type", [CSV, JSON, JSONL])
def test_one_answer_per_row_in_order(server, reference, content_type, accept):
    answer = server.invoke(reference.body(content_type), content_type=content_type,
                           accept=accept)
    assert answer.status_code == 200, answer.text
    answer_type = accept if accept in (CSV, JSON, JSONL) else content_type
    assert answer.headers["Content-Type"].split(";")[0] == answer_type
    assert labels_of(answer, answer_type) == reference.labels


NPY = "application/x-npy"


def npy_rows(reference) -> bytes:
    """What the SDK's NumpySerializer sends for these rows: np.save of np.array(rows)."""
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array([["" if v is None else v for v in row]
                              for row in reference.list_rows()]))
    return buffer.getvalue()


@pytest.mark.parametrize("output", ["label", "probabilities"])
def test_npy_in_and_out_with_exactly_the_npy_content_type(server, reference, output):
    import io

    answer = server.invoke(npy_rows(reference), NPY, accept=NPY, **{CUSTOM: f"output={output}"})
    assert answer.status_code == 200, answer.text
    # NumpyDeserializer compares the answer's type letter for letter; SDK local
    # mode reports the request's Accept instead, so only this test sees it.
    assert answer.headers["Content-Type"] == NPY
    array = np.load(io.BytesIO(answer.content), allow_pickle=False)
    if output == "label":
        assert array.dtype.kind == "U" and array.tolist() == reference.labels
    else:
        np.testing.assert_allclose(array, reference.proba, rtol=1e-9, atol=1e-12)


def test_npy_object_array_is_refused_with_the_fix(server, reference):
    import io

    buffer = io.BytesIO()
    np.save(buffer, np.array(reference.list_rows(), dtype=object))
    answer = server.invoke(buffer.getvalue(), NPY, accept=NPY)
    assert_plain_error(answer, 400, "object array", "to_numpy(dtype=str)")


def test_csv_with_a_header_in_another_order_and_the_target(server, reference):
    columns = list(reversed(reference.names))
    body = reference.X[columns].assign(churn=reference.target).to_csv(index=False)
    answer = server.invoke(body, accept=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines() == reference.labels


def test_single_json_row(server, reference):
    answer = server.invoke(json.dumps(reference.object_rows()[0]), content_type=JSON,
                           accept=JSON)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"predictions": [reference.labels[0]]}


def test_charset_in_content_type(server, reference):
    answer = server.invoke(reference.csv().encode("utf-8"),
                           content_type="text/csv; charset=utf-8", accept=CSV)
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines() == reference.labels


@pytest.mark.parametrize("accept", [CSV, JSON, JSONL])
@pytest.mark.parametrize("output", ["probabilities", "all"])
def test_probabilities_via_custom_attributes(server, reference, accept, output):
    answer = server.invoke(reference.body(JSON), content_type=JSON, accept=accept,
                           **{CUSTOM: f"output={output}"})
    assert answer.status_code == 200, answer.text
    classes = reference.classes
    if accept == CSV:
        rows = [line.split(",") for line in answer.text.splitlines()]
        if output == "all":
            assert [r[0] for r in rows] == reference.labels
            rows = [r[1:] for r in rows]
        proba = np.array(rows, dtype=float)
    elif accept == JSON:
        body = answer.json()
        assert body["classes"] == classes
        assert ("predictions" in body) == (output == "all")
        if output == "all":
            assert [str(v) for v in body["predictions"]] == reference.labels
        proba = np.array(body["probabilities"])
    else:
        items = [json.loads(line) for line in answer.text.splitlines()]
        assert all(list(item["probabilities"]) == [str(c) for c in classes] for item in items)
        assert all(("prediction" in item) == (output == "all") for item in items)
        if output == "all":
            assert [str(item["prediction"]) for item in items] == reference.labels
        proba = np.array([[item["probabilities"][str(c)] for c in classes] for item in items])
    assert proba.shape == reference.proba.shape
    np.testing.assert_allclose(proba, reference.proba, atol=1e-6)


def test_large_csv_body(server, reference, trained_model):
    """A batch-transform sized body (about 5 MB) gives one answer per row, in order."""
    repeats = 5 * 1024 * 1024 // len(reference.csv()) + 1
    body = reference.csv() * repeats
    assert 4.5 * 1024 * 1024 < len(body) < 6 * 1024 * 1024
    answer = server.invoke(body, accept=CSV)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.text.splitlines() == reference.labels * repeats


@pytest.mark.parametrize("with_target", [False, True], ids=["other-order", "with-target"])
def test_large_csv_body_with_a_header(server, reference, with_target):
    columns = list(reversed(reference.names))
    frame = reference.X[columns]
    if with_target:
        frame = frame.assign(churn=reference.target)
    rows = frame.to_csv(index=False, header=False)
    repeats = 5 * 1024 * 1024 // len(rows) + 1
    body = ",".join(frame.columns) + "\n" + rows * repeats
    answer = server.invoke(body, accept=CSV)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.text.splitlines() == reference.labels * repeats


# -- errors -----------------------------------------------------------------------------------
def test_unsupported_content_type_is_415(server, reference):
    answer = server.invoke(reference.csv(), content_type="application/xml")
    assert_plain_error(answer, 415, "application/xml", "text/csv")


def test_unsupported_accept_is_406(server, reference):
    answer = server.invoke(reference.csv(), accept="text/html")
    assert_plain_error(answer, 406, "text/html", "application/json")


@pytest.mark.parametrize("body, content_type, words", [
    ("1,2,3\n", CSV, ["row 1 has 3 values", "10 features"]),
    ("customer_age,colour\n31,red\n", CSV, ["unknown column", "'colour'"]),
    ('{"instances": [{"customer_age": 31, "colour": "red"}]}', JSON,
     ["unknown feature", "'colour'"]),
    ("abc,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,west,no\n", CSV,
     ["row 1", "'customer_age'", "'abc'"]),
    ('[49, 25, "lots", 1161.97, "month-to-month", "electronic-check", "dsl", 1, "west", "no"]'
     "\n", JSONL, ["row 1", "'monthly_charges'", "'lots'"]),
    ("", CSV, ["empty"]),
    ('{"instances": [[49, 25', JSON, ["not valid JSON"]),
    ("[" * 50000 + "]" * 50000, JSON, ["nested too deeply"]),
])
def test_bad_requests_are_400(server, body, content_type, words):
    assert_plain_error(server.invoke(body, content_type=content_type), 400, *words)


def test_bad_output_attribute_is_400(server, reference):
    answer = server.invoke(reference.csv(), **{CUSTOM: "output=everything"})
    assert_plain_error(answer, 400, "output", "everything")


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/predict", 404),
    ("POST", "/models/churn/invoke", 404),
    ("GET", "/invocations", 405),
    ("POST", "/ping", 405),
    ("PUT", "/invocations", 405),
])
def test_unknown_path_and_wrong_method(server, method, path, status):
    answer = requests.request(method, server.url + path, timeout=10)
    assert_plain_error(answer, status, path)


def test_execution_parameters(server):
    answer = requests.get(server.url + "/execution-parameters", timeout=10)
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    params = answer.json()
    payload, concurrency = params["MaxPayloadInMB"], params["MaxConcurrentTransforms"]
    assert isinstance(payload, int) and 1 <= payload <= 6  # the default limit is 6 MB
    assert isinstance(concurrency, int) and concurrency >= 1
    assert payload * concurrency <= 100
    # SDK local mode refuses "MULTI_RECORD"; real SageMaker documents it: omit or be valid.
    assert params.get("BatchStrategy", "MultiRecord") in ("SingleRecord", "MultiRecord")


def test_body_above_the_payload_limit_is_413(serving_tree, reference):
    with Server(serving_tree, env={"SAGEMAKER_MAX_PAYLOAD_IN_MB": "1"}) as limited:
        body = reference.csv() * (2 * 1024 * 1024 // len(reference.csv()) + 1)
        assert len(body) > 2 * 1024 * 1024
        try:
            answer = limited.invoke(body, accept=CSV)
        except requests.ConnectionError:  # pragma: no cover - server closed while sending
            pytest.fail("the server dropped the connection instead of answering 413")
        assert_plain_error(answer, 413, "1 MB", "SAGEMAKER_MAX_PAYLOAD_IN_MB")
        # the limit applies only to large bodies
        small = limited.invoke(reference.csv(), accept=CSV)
        assert small.status_code == 200
        params = requests.get(limited.url + "/execution-parameters", timeout=10).json()
        assert params["MaxPayloadInMB"] == 1


# -- the model folder -------------------------------------------------------------------------
def test_model_tarball_alone_is_unpacked_and_served(serving_tree, reference):
    """SDK local mode leaves model.tar.gz itself in /opt/ml/model."""
    model = serving_tree / "model"
    with tarfile.open(serving_tree / "model.tar.gz", "w:gz") as tar:
        for path in sorted(model.iterdir()):
            tar.add(path, arcname=path.name)
    shutil.rmtree(model)
    model.mkdir()
    shutil.move(serving_tree / "model.tar.gz", model / "model.tar.gz")
    endpoint = Server(serving_tree).start()
    try:
        answer = endpoint.invoke(reference.csv(), accept=CSV)
        assert answer.status_code == 200, answer.text
        assert answer.text.splitlines() == reference.labels
    finally:
        code = endpoint.stop()
    assert code == 0  # SIGTERM: finish and exit cleanly


def start_without_model(base: Path) -> tuple[int, str]:
    """serve on a tree whose model cannot load: its exit code and its log."""
    server = Server(base, workers=None).launch()
    code = server.wait(timeout=120)
    server.stop()
    assert code is not None, server.failure("serve went on running without a model")
    return code, server.log()


def no_folder(base: Path) -> Path:
    return base / "model"


def empty_folder(base: Path) -> Path:
    (base / "model").mkdir()
    return base / "model" / "model.joblib"


def bad_metadata(base: Path, trained: Path) -> Path:
    shutil.copytree(trained / "model", base / "model")
    (base / "model" / "metadata.json").write_text("{not json")
    return base / "model" / "metadata.json"


def test_missing_or_broken_model_stops_serve_with_one_line(tmp_path, trained_model):
    cases = {}
    for name, make in (("no folder", no_folder), ("empty folder", empty_folder),
                       ("bad metadata", lambda b: bad_metadata(b, trained_model))):
        base = tmp_path / name.replace(" ", "-")
        base.mkdir()
        cases[name] = (base, make(base))
    with ThreadPoolExecutor(max_workers=3) as pool:
        results = dict(zip(cases, pool.map(start_without_model, [b for b, _ in cases.values()])))
    for name, (base, named) in cases.items():
        code, log = results[name]
        assert code != 0, (name, log)
        lines = [line for line in log.splitlines() if line.strip()]
        assert len(lines) == 1, (name, lines)
        assert str(named) in lines[0], (name, lines[0])
        assert re.search(r"\bERROR\b", lines[0])
