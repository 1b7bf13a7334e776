"""sklearn_byoc/serve/openapi.yaml describes what ``serve`` really answers.

* The file is a valid OpenAPI 3 document whose routes are the app's routes.
* Schemathesis generates requests from it (valid and deliberately invalid
  ones: ``HARDENING_OPENAPI_EXAMPLES`` per mode, default 300) and sends them to
  a real ``serve``: no 5xx, and every answer's status, content type and body
  are ones the document lists.
* Valid requests in every answer format and output are checked against the
  document's response schemas.
"""
from __future__ import annotations

import os
from pathlib import Path

import joblib
import pytest
import requests
import yaml
from sklearn.dummy import DummyClassifier
from hypothesis import HealthCheck, given, settings

from sklearn_byoc.serve.app import create_app
from sklearn_byoc.serve.invocation import ModelService
from sklearn_byoc.serve.config import ServerConfig
from tests.hardening.endpoint import FEATURES, ROW, endpoint_tree
from scripts.harness import ROOT
from scripts.serve_process import ServeProcess as Server

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis import checks as st_checks  # noqa: E402

SPEC = ROOT / "sklearn_byoc" / "serve" / "openapi.yaml"
EXAMPLES = int(os.environ.get("HARDENING_OPENAPI_EXAMPLES", "300"))
SENT = {"requests": 0}


@schemathesis.serializer("text/csv", "application/jsonlines")
def text_body(_context, value):
    """CSV and JSON Lines bodies are text: send the generated string as it is."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    return str(value).encode("utf-8")


def conformance_checks():
    return [st_checks.not_a_server_error, st_checks.status_code_conformance,
            st_checks.content_type_conformance, st_checks.response_schema_conformance]


@pytest.fixture(scope="module")
def schema():
    return schemathesis.openapi.from_path(str(SPEC))


@pytest.fixture(scope="module")
def endpoint(trained_model, tmp_path_factory):
    base = endpoint_tree(trained_model, tmp_path_factory.mktemp("openapi"))
    server = Server(base, workers=2).start()
    server.initial = (server.wait_for_workers(2), server.booted())
    yield server
    server.stop()
    print(f"\nopenapi: {SENT['requests']} requests")


@pytest.fixture(scope="module")
def session():
    with requests.Session() as s:
        yield s


def test_the_document_is_valid_openapi_3():
    validator = pytest.importorskip("openapi_spec_validator")
    document = yaml.safe_load(SPEC.read_text())
    validator.validate(document)
    assert document["openapi"].startswith("3.")


def test_the_document_lists_exactly_the_routes_of_the_app(tmp_path):
    joblib.dump(DummyClassifier().fit([[0], [1]], [0, 1]), tmp_path / "model.joblib")
    app = create_app(ModelService(tmp_path), ServerConfig(model_dir=tmp_path))
    served = {(rule.rule, method.lower()) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"} if rule.endpoint != "static"}
    document = yaml.safe_load(SPEC.read_text())
    described = {(path, method) for path, item in document["paths"].items()
                 for method in item if method in ("get", "post", "put", "delete", "patch")}
    assert described == served


def operation(schema, label):
    for result in schema.get_all_operations():
        op = result.ok()
        if op.label == label:
            return op
    raise AssertionError(f"{label} is not in {SPEC}")


@pytest.mark.parametrize("label, mode", [
    ("GET /ping", GenerationMode.POSITIVE),
    ("GET /execution-parameters", GenerationMode.POSITIVE),
    ("POST /invocations", GenerationMode.POSITIVE),
    ("POST /invocations", GenerationMode.NEGATIVE),
])
def test_generated_requests_get_documented_answers(schema, endpoint, session, label, mode):
    op = operation(schema, label)

    @settings(max_examples=EXAMPLES if label.startswith("POST") else 5, deadline=None,
              database=None, suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case):
        SENT["requests"] += 1
        answer = case.call(base_url=endpoint.url, session=session, timeout=30)
        case.validate_response(answer, checks=conformance_checks())

    run()
    pids, booted = endpoint.initial
    assert endpoint.worker_pids() == pids and endpoint.booted() == booted


@pytest.mark.parametrize("accept", ["text/csv", "application/json", "application/jsonlines"])
@pytest.mark.parametrize("output", ["label", "probabilities", "all"])
@pytest.mark.parametrize("media_type, body", [
    ("text/csv", ROW + "\n" + ROW),
    ("application/json", {"instances": [dict(zip(FEATURES, ROW.split(",")))]}),
    ("application/jsonlines", '{"customer_age": 49}\n{"region": "west"}\n'),
])
def test_predictions_match_the_documented_schemas(schema, endpoint, session, accept, output,
                                                   media_type, body):
    op = operation(schema, "POST /invocations")
    case = op.Case(media_type=media_type, body=body,
                   headers={"Accept": accept,
                            "X-Amzn-SageMaker-Custom-Attributes": f"output={output}"})
    SENT["requests"] += 1
    answer = case.call(base_url=endpoint.url, session=session, timeout=30)
    assert answer.status_code == 200, answer.text
    case.validate_response(answer, checks=conformance_checks())


def test_execution_parameters_match_the_documented_schema(schema, endpoint, session):
    case = operation(schema, "GET /execution-parameters").Case()
    SENT["requests"] += 1
    answer = case.call(base_url=endpoint.url, session=session, timeout=30)
    assert answer.status_code == 200
    case.validate_response(answer, checks=conformance_checks())
    assert answer.json() == {"MaxConcurrentTransforms": 2, "MaxPayloadInMB": 6}
