"""The one inference path, in process: every content type × accept × output, for a model
made like train's, a pipeline saved alone, an estimator fitted on a bare array, and user
handlers written against AWS's documented signatures.

Expected answers come from the scikit-learn models themselves, never from serve.
"""
from __future__ import annotations

import io
import json
import sys
import textwrap
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.model_files import Feature, ModelMetadata, save_model
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.invocation import Body, ModelService, invoke
from sklearn_byoc.serve.media import CSV, JSON, JSONLINES, NPY, RequestContext

NAMES = ["age", "plan", "calls"]
ROWS = [[31.0, "gold", 2.0], [45.5, "basic", 0.0], [22.0, "silver", 7.0], [60.0, "gold", 1.0]]
CONTENT_TYPES = [CSV, JSON, JSONLINES, NPY]
ACCEPTS = [CSV, JSON, JSONLINES, NPY]
OUTPUTS = ["label", "probabilities", "all"]


def training_frame(n: int = 200) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({
        "age": rng.uniform(18, 80, n),
        "plan": rng.choice(["gold", "basic", "silver"], n).astype(object),
        "calls": rng.integers(0, 9, n).astype(float),
    })
    y = np.where((frame["calls"] > 4) | (frame["plan"] == "basic"), "yes", "no")
    return frame, y


def named_pipeline() -> Pipeline:
    frame, y = training_frame()
    pre = ColumnTransformer([
        ("numbers", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()),
         ["age", "calls"]),
        ("text", make_pipeline(SimpleImputer(strategy="most_frequent"),
                               OneHotEncoder(handle_unknown="ignore")), ["plan"]),
    ])
    return Pipeline([("preprocess", pre), ("model", LogisticRegression())]).fit(frame, y)


@pytest.fixture(scope="module")
def builtin_dir(tmp_path_factory) -> Path:
    """A model folder as train writes it: model.joblib and metadata.json."""
    folder = tmp_path_factory.mktemp("builtin")
    model = named_pipeline()
    save_model(folder, model, ModelMetadata(
        target="churn", task="classification",
        features=[Feature("age", "numeric"), Feature("plan", "categorical"),
                  Feature("calls", "numeric")], classes=["no", "yes"]))
    return folder


@pytest.fixture(scope="module")
def bare_pipeline_dir(tmp_path_factory) -> Path:
    """model.joblib alone: a name-based ColumnTransformer pipeline."""
    folder = tmp_path_factory.mktemp("bare-pipeline")
    joblib.dump(named_pipeline(), folder / "model.joblib")
    return folder


@pytest.fixture(scope="module")
def array_model_dir(tmp_path_factory) -> Path:
    """model.pkl alone: an estimator fitted on a bare numeric array."""
    folder = tmp_path_factory.mktemp("array-model")
    frame, y = training_frame()
    X = frame[["age", "calls"]].to_numpy()
    joblib.dump(LogisticRegression().fit(X, y), folder / "model.pkl")
    return folder


@pytest.fixture(autouse=True)
def clean_imports():
    """User code is imported into this process: leave sys.path and sys.modules as found."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        if name == "inference" or name.startswith("_sklearn_byoc_code_") or \
                name in ("helpers",):
            del sys.modules[name]


# -- encoding a request and reading an answer, independently of serve ----------------------
def request_body(rows, names, content_type: str) -> bytes:
    if content_type == CSV:
        return "\n".join(",".join(str(v) for v in r) for r in rows).encode()
    if content_type == JSON:
        return json.dumps({"instances": [dict(zip(names, r)) for r in rows]}).encode()
    if content_type == JSONLINES:
        return "\n".join(json.dumps(r) for r in rows).encode()
    buffer = io.BytesIO()
    np.save(buffer, np.array(rows))  # mixed rows make a <U array, as the SDK's serializer does
    return buffer.getvalue()


def read_answer(body: bytes, accept: str, output: str, classes):
    """(labels, probabilities) from an answer, each None when the output leaves it out."""
    if accept == NPY:
        array = np.load(io.BytesIO(body), allow_pickle=False)
        return (array.tolist(), None) if output == "label" else (None, array.tolist())
    if accept == JSON:
        value = json.loads(body)
        if output != "label":
            assert value["classes"] == list(classes)
        return value.get("predictions"), value.get("probabilities")
    if accept == JSONLINES:
        items = [json.loads(line) for line in body.decode().split("\n")]
        labels = [i["prediction"] for i in items] if output != "probabilities" else None
        proba = [[i["probabilities"][str(c)] for c in classes] for i in items] \
            if output != "label" else None
        return labels, proba
    lines = [line.split(",") for line in body.decode().split("\n")]
    if output == "label":
        return [cells[0] for cells in lines], None
    if output == "probabilities":
        return None, [[float(c) for c in cells] for cells in lines]
    return [cells[0] for cells in lines], [[float(c) for c in cells[1:]] for cells in lines]


def call(service, body: bytes, content_type, accept=None, output=None, **context):
    attributes = f"output={output}" if output else None
    return invoke(service, Body.of(body), RequestContext(
        content_type=content_type, accept=accept, custom_attributes=attributes, **context))


def check_matrix(service, model, rows, names, frame):
    expected_labels = model.predict(frame).tolist()
    expected_proba = model.predict_proba(frame)
    for content_type in CONTENT_TYPES:
        body = request_body(rows, names, content_type)
        for accept in ACCEPTS:
            for output in OUTPUTS:
                where = f"{content_type} -> {accept}, output={output}"
                if accept == NPY and output == "all":
                    with pytest.raises(RequestError) as info:
                        call(service, body, content_type, accept, output)
                    assert info.value.status == 406, where
                    continue
                answer = call(service, body, content_type, accept, output)
                assert answer.content_type == accept, where
                labels, proba = read_answer(answer.body, accept, output, model.classes_)
                if output != "probabilities":
                    assert labels == expected_labels, where
                if output != "label":
                    np.testing.assert_allclose(proba, expected_proba, rtol=1e-9, atol=1e-12,
                                               err_msg=where)


def test_every_format_pair_on_a_model_made_like_trains(builtin_dir):
    service = ModelService(builtin_dir)
    frame = pd.DataFrame(ROWS, columns=NAMES).astype({"plan": object})
    check_matrix(service, service.model.estimator, ROWS, NAMES, frame)


def test_every_format_pair_on_a_pipeline_saved_alone(bare_pipeline_dir):
    service = ModelService(bare_pipeline_dir)
    assert service.model.named and service.model.metadata.target == ""
    kinds = {f.name: f.kind for f in service.model.metadata.features}
    assert kinds == {"age": "numeric", "plan": "categorical", "calls": "numeric"}
    frame = pd.DataFrame(ROWS, columns=NAMES).astype({"plan": object})
    check_matrix(service, service.model.estimator, ROWS, NAMES, frame)


def test_every_format_pair_on_an_estimator_fitted_on_an_array(array_model_dir):
    service = ModelService(array_model_dir)
    assert not service.model.named and service.model.schema.width == 2
    rows = [[r[0], r[2]] for r in ROWS]
    check_matrix(service, service.model.estimator, rows, ["x0", "x1"], np.array(rows))


def test_a_pipeline_saved_alone_answers_the_same_as_with_metadata(builtin_dir,
                                                                 bare_pipeline_dir):
    body = b"age,plan,calls\n31,gold,2\n45.5,basic,0\n"
    answers = [call(ModelService(d), body, CSV, JSON, "all").body
               for d in (builtin_dir, bare_pipeline_dir)]
    assert answers[0] == answers[1]


def test_bare_models_keep_the_caller_error_messages(bare_pipeline_dir, array_model_dir):
    with pytest.raises(RequestError, match="row 1 has 2 values but the model expects 3"):
        call(ModelService(bare_pipeline_dir), b"31,gold\n", CSV)
    with pytest.raises(RequestError, match="unknown feature.*'colour'"):
        call(ModelService(bare_pipeline_dir), b'{"age": 1, "colour": "red"}', JSON)
    with pytest.raises(RequestError, match="row 1 has 3 values but the model expects 2"):
        call(ModelService(array_model_dir), b"1,2,3\n", CSV)


def test_a_bare_model_without_an_imputer_answers_400_for_a_missing_value(array_model_dir):
    """LogisticRegression declares allow_nan=False: a missing cell is the caller's error,
    named by row and feature, in every format, block by block too."""
    service = ModelService(array_model_dir)
    with pytest.raises(RequestError) as info:
        call(service, b"30,2\n31,\n", CSV)
    assert info.value.status == 400
    assert str(info.value) == ("row 2, feature 'x1' is missing, and this LogisticRegression "
                               "model takes no missing values; send a number (or serve a "
                               "model that imputes them)")
    with pytest.raises(RequestError, match="row 1, feature 'x0' is missing"):
        call(service, b"[[null, 2]]", JSON)
    buffer = io.BytesIO()
    np.save(buffer, np.array([[30.0, 1.0], [np.nan, 2.0]]))
    with pytest.raises(RequestError, match="row 2, feature 'x0' is missing"):
        call(service, buffer.getvalue(), NPY)
    rows = b"30,2\n" * 3000 + b"31,\n"
    with pytest.raises(RequestError, match="row 3001, feature 'x1' is missing"):
        invoke(service, Body.of(rows, block_bytes=4096), RequestContext(content_type=CSV))
    # Without a missing value it predicts.
    assert call(service, b"30,2\n", CSV).body in (b"yes", b"no")


def test_a_model_that_takes_missing_values_or_fails_on_its_own_is_not_the_callers_fault(
        tmp_path):
    from sklearn.ensemble import HistGradientBoostingClassifier

    frame, y = training_frame()
    X = frame[["age", "calls"]].to_numpy()
    joblib.dump(HistGradientBoostingClassifier(max_iter=5).fit(X, y), tmp_path / "model.joblib")
    assert call(ModelService(tmp_path), b"30,\n", CSV).body in (b"yes", b"no")

    class Broken(LogisticRegression):
        def predict(self, X):
            raise ValueError("something inside the model")

    from sklearn_byoc.serve.model import ServedModel

    served = ServedModel.wrap(Broken().fit(X, y))
    with pytest.raises(ValueError, match="something inside the model"):
        served.predict(served.schema.from_positional_rows([["30", "2"]]))
    # A missing value beside a failure of the model's own making is still the caller's.
    with pytest.raises(RequestError, match="feature 'x1' is missing"):
        served.predict(served.schema.from_positional_rows([["30", ""]]))


def test_a_csv_answer_with_header_present_names_its_columns(builtin_dir):
    service = ModelService(builtin_dir)
    body = b"31,gold,2\n62,basic,7\n"
    for output, header in (("all", "prediction,no,yes"), ("probabilities", "no,yes"),
                           ("label", "prediction")):
        plain = call(service, body, CSV, "text/csv", output).body.decode()
        named = call(service, body, CSV, "text/csv;header=present", output).body.decode()
        assert named == header + "\n" + plain, output
    assert call(service, body, CSV, "text/csv;header=absent", "all").body.decode() == \
        call(service, body, CSV, "text/csv", "all").body.decode()
    # Other answer types are unchanged by a CSV header parameter they were not chosen by.
    assert json.loads(call(service, body, CSV, "application/json, text/csv;header=present",
                           "all").body)["classes"] == ["no", "yes"]
    with pytest.raises(RequestError, match="header='maybe' must be present or absent"):
        call(service, body, CSV, "text/csv;header=maybe")


def test_a_header_row_is_refused_in_batch_transform(builtin_dir):
    with pytest.raises(RequestError) as info:
        call(ModelService(builtin_dir), b"31,gold,2\n", CSV, "text/csv;header=present", "all",
             batch=True)
    assert info.value.status == 400
    assert "batch transform job joins one answer line per record" in str(info.value)


def test_large_csv_bodies_stream_block_by_block_with_the_same_answer(builtin_dir):
    service = ModelService(builtin_dir)
    rows = "\n".join(",".join(str(v) for v in ROWS[i % 4]) for i in range(4000)).encode()
    whole = invoke(service, Body.of(rows), RequestContext(content_type=CSV)).body
    blocks = Body.of(rows, block_bytes=1000)
    assert blocks.large
    assert invoke(service, blocks, RequestContext(content_type=CSV)).body == whole
    assert whole.decode().split("\n")[:4] == \
        service.model.estimator.predict(pd.DataFrame(ROWS, columns=NAMES)).tolist()


# -- a model's own handlers, written against AWS's documented signatures -------------------
def with_code(model_dir: Path, tmp_path: Path, source: str) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    for item in model_dir.iterdir():
        (folder / item.name).write_bytes(item.read_bytes())
    (folder / "code").mkdir()
    (folder / "code" / "inference.py").write_text(textwrap.dedent(source))
    return folder


def test_output_fn_alone_gets_what_model_predict_returns(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        import json
        def output_fn(prediction, accept):
            # AWS's default predict_fn returns model.predict's array
            return json.dumps({"type": type(prediction).__name__,
                               "values": prediction.tolist(), "accept": accept})
    """)
    answer = call(ModelService(folder), b"31,gold,2\n45.5,basic,0\n", CSV, JSON)
    got = json.loads(answer.body)
    assert got["type"] == "ndarray" and got["accept"] == JSON
    assert got["values"] == named_pipeline().predict(
        pd.DataFrame(ROWS[:2], columns=NAMES)).tolist()


def test_output_fn_alone_with_output_probabilities_gets_predict_proba(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        import json
        def output_fn(prediction, accept):
            return json.dumps(prediction.tolist()), "application/json"
    """)
    answer = call(ModelService(folder), b"31,gold,2\n", CSV, JSON, "probabilities")
    expected = named_pipeline().predict_proba(pd.DataFrame(ROWS[:1], columns=NAMES))
    np.testing.assert_allclose(json.loads(answer.body), expected, rtol=1e-12)


def test_predict_fn_alone_gets_a_dataframe_and_the_estimator(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        def predict_fn(data, model):
            assert type(model).__name__ == "Pipeline", type(model)
            assert list(data.columns) == ["age", "plan", "calls"], data
            return model.predict_proba(data)[:, 1]
    """)
    answer = call(ModelService(folder), b"31,gold,2\n45.5,basic,0\n", CSV, JSON)
    expected = named_pipeline().predict_proba(pd.DataFrame(ROWS[:2], columns=NAMES))[:, 1]
    # AWS's default output_fn writes the array as a JSON list
    np.testing.assert_allclose(json.loads(answer.body), expected, rtol=1e-12)
    assert call(ModelService(folder), b"31,gold,2", CSV, CSV).body.count(b"\n") == 0


def test_predict_fn_alone_on_an_array_model_gets_float32(array_model_dir, tmp_path):
    folder = with_code(array_model_dir, tmp_path, """
        def predict_fn(data, model):
            assert str(data.dtype) == "float32" and data.shape == (1, 2), (data.dtype, data.shape)
            return model.predict(data)
    """)
    answer = call(ModelService(folder), b"31,2\n", CSV, CSV)
    assert answer.body.decode() == named_label(array_model_dir, [[31.0, 2.0]])


def named_label(folder: Path, rows) -> str:
    return str(joblib.load(folder / "model.pkl").predict(np.array(rows, dtype=np.float32))[0])


def test_input_fn_alone_gets_a_str_for_csv_and_keeps_the_built_in_rest(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        def input_fn(body, content_type):
            assert isinstance(body, str), type(body)
            return [dict(zip(["calls", "plan", "age"], line.split(";")))
                    for line in body.splitlines()]
    """)
    answer = call(ModelService(folder), b"2;gold;31\n0;basic;45.5", CSV, JSON, "all")
    expected = named_pipeline().predict(pd.DataFrame(ROWS[:2], columns=NAMES)).tolist()
    assert json.loads(answer.body)["predictions"] == expected


def test_input_fn_gets_bytes_for_other_types(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        def input_fn(body, content_type):
            assert isinstance(body, bytes), (type(body), content_type)
            return [[31, "gold", 2]]
    """)
    for content_type in ("application/x-npy", "text/csv; charset=utf-8"):
        assert call(ModelService(folder), b"x", content_type, CSV).body in (b"yes", b"no")


def test_model_fn_alone_keeps_every_built_in_layer(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        import os, joblib
        def model_fn(model_dir):
            return joblib.load(os.path.join(model_dir, "model.joblib"))
    """)
    service = ModelService(folder)
    builtin = ModelService(builtin_dir)
    for accept in (CSV, JSON):
        body = b"age,plan,calls\n31,gold,2\n45.5,basic,0\n"
        assert call(service, body, CSV, accept, "all").body == \
            call(builtin, body, CSV, accept, "all").body


def test_model_fn_returning_no_estimator_gets_schema_free_arrays(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        class Doubler:
            def predict(self, X):
                return X.sum(axis=1) * 2
        def model_fn(model_dir):
            return Doubler()
    """)
    service = ModelService(folder)
    assert service.model.schema is None
    assert call(service, b"1,2\n3,4.5\n", CSV).body == b"6.0\n15.0"
    assert json.loads(call(service, b'{"instances": [[1, 1]]}', JSON, JSON).body) == \
        {"predictions": [4.0]}


def test_transform_fn_with_another_handler_is_refused_at_start(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        def transform_fn(model, body, content_type, accept):
            return body
        def input_fn(body, content_type):
            return body
    """)
    with pytest.raises(UserError) as info:
        ModelService(folder)
    assert "transform_fn and input_fn" in str(info.value)
    assert "keep transform_fn alone" in str(info.value)


def test_a_handler_may_take_the_request_context(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        import json
        def predict_fn(data, model, context):
            return {"attributes": context.custom_attributes,
                    "inference_id": context.inference_id, "rows": len(data)}
        def output_fn(prediction, accept):
            return json.dumps(prediction)
    """)
    answer = invoke(ModelService(folder), Body.of(b"31,gold,2\n"), RequestContext(
        content_type=CSV, custom_attributes="trace=7", inference_id="abc-123"))
    assert json.loads(answer.body) == {"attributes": "trace=7", "inference_id": "abc-123",
                                       "rows": 1}


def test_the_context_of_a_request_has_its_headers_by_their_usual_names():
    from werkzeug.test import EnvironBuilder

    environ = EnvironBuilder(method="POST", data=b"31,gold,2\n", headers={
        "Content-Type": CSV, "Accept": JSON, "X-Amzn-SageMaker-Custom-Attributes": "trace=7",
        "X-Amzn-SageMaker-Inference-Id": "abc-123", "X-Team-Header": "blue"}).get_environ()
    context = RequestContext.from_environ(environ, default_output="label", request_id="r-1")
    assert (context.content_type, context.accept) == (CSV, JSON)
    assert (context.custom_attributes, context.inference_id) == ("trace=7", "abc-123")
    assert context.headers["X-Team-Header"] == "blue"
    assert context.headers["Content-Type"] == CSV
    assert context.headers["X-Amzn-Sagemaker-Inference-Id"] == "abc-123"
    assert context.headers["Content-Length"] == "10"


def test_execution_parameters_fn_answers_for_the_endpoint(builtin_dir, tmp_path):
    from sklearn_byoc.serve.app import create_app
    from sklearn_byoc.serve.config import ServerConfig

    folder = with_code(builtin_dir, tmp_path, """
        def execution_parameters_fn():
            return {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 2}
    """)
    config = ServerConfig(model_dir=folder, max_payload_mb=6)
    answer = create_app(ModelService(folder), config).test_client().get("/execution-parameters")
    assert answer.get_json() == {"MaxConcurrentTransforms": 1, "MaxPayloadInMB": 2}
    # Without one, the endpoint's own settings answer.
    builtin = create_app(ModelService(builtin_dir), config).test_client()
    assert builtin.get("/execution-parameters").get_json()["MaxPayloadInMB"] == 6


def test_no_internal_type_reaches_a_handler(builtin_dir, tmp_path):
    folder = with_code(builtin_dir, tmp_path, """
        import json
        SEEN = []
        def predict_fn(data, model):
            SEEN.append(type(data).__module__)
            return model.predict(data)
        def output_fn(prediction, accept):
            SEEN.append(type(prediction).__module__)
            return json.dumps(SEEN)
    """)
    for content_type in CONTENT_TYPES:
        body = request_body(ROWS[:1], NAMES, content_type)
        seen = json.loads(call(ModelService(folder), body, content_type, JSON).body)
        assert not any(module.startswith("sklearn_byoc") for module in seen), seen


def test_a_request_is_validated_before_any_layer_runs():
    from sklearn_byoc.serve.errors import NotAcceptable

    png = RequestContext(content_type=CSV, accept="image/png")
    with pytest.raises(NotAcceptable):
        png.validate(writes_answer=True)
    png.validate(writes_answer=False)  # a user's output_fn answers any Accept
    bogus = RequestContext(content_type=CSV, custom_attributes="output=everything")
    for writes_answer in (True, False):
        with pytest.raises(RequestError, match="output='everything' must be one of"):
            bogus.validate(writes_answer=writes_answer)


@pytest.mark.parametrize("content_length, transfer_encoding, length", [
    ("10", None, 10), ("0", None, 0), (None, None, None), (None, "chunked", None),
    ("10", "chunked", None), ("ten", None, None), ("-1", None, None)])
def test_the_announced_length_is_read_from_the_headers(content_length, transfer_encoding,
                                                       length):
    from sklearn_byoc.serve.media import announced_length

    assert announced_length(content_length, transfer_encoding) == length
