"""serve, as a process, on models pickled by the older scikit-learn lines
(tests/fixtures/old_sklearn): each line serves its own models with that
line's own predictions, and serves or refuses another line's as measured
(tests/old_sklearn.py): refused with one log line that names both versions
and the build argument of a matching image, or served with one WARNING line.

Runs on every line (make test-lines).
"""
from __future__ import annotations

import json
import re
import shutil

import pytest
import sklearn

from sklearn_byoc.common import compat
from tests.old_sklearn import ALL, REFUSED, assert_predictions_match, build_argument, refusal_start
from scripts.serve_process import ServeProcess as Server

RUNNING = sklearn.__version__
LINE = compat.line_of(RUNNING)
pytestmark = pytest.mark.slow


def log_lines(text: str, level: str) -> list[str]:
    return [line for line in text.splitlines() if re.search(rf"^\S+ \S+ serve {level} ", line)]


@pytest.mark.parametrize("fixture", ALL, ids=str)
def test_serve_serves_or_refuses_each_old_model(fixture, tmp_path):
    base = tmp_path / "endpoint"
    shutil.copytree(fixture.folder, base / "model")
    server = Server(base, workers=1)
    if fixture.outcome(LINE) == REFUSED:
        with pytest.raises(RuntimeError, match="serve exited with 1"):
            server.start()
        server.stop()
        log = server.log()
        errors = log_lines(log, "ERROR")
        assert len(errors) == 1, log
        reason = errors[0].split(" ERROR cannot start: ", 1)[1]
        path = base / "model" / fixture.model_file.name
        assert reason.startswith(refusal_start(fixture, path, RUNNING)), reason
        assert build_argument(fixture) in reason
        assert "Traceback" not in log
        return
    with server:
        answer = server.invoke(
            json.dumps({"instances": fixture.request["instances"]}),
            content_type="application/json", accept="application/json",
            **{"X-Amzn-SageMaker-Custom-Attributes": "output=all"})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert_predictions_match(fixture, body["predictions"], body["probabilities"],
                                 body["classes"])
    log = server.log()
    # One line in place of scikit-learn's warning for every estimator of the model.
    assert "InconsistentVersionWarning" not in log and "Trying to unpickle" not in log, log
    warnings = log_lines(log, "WARNING")
    if fixture.line == LINE:
        assert warnings == [], log
    else:
        assert len(warnings) == 1, log
        assert f"pickled by scikit-learn {fixture.version} and this image runs {RUNNING}" \
            in warnings[0]
        assert build_argument(fixture) in warnings[0]


def test_a_model_trained_here_records_its_line(trained_model):
    metadata = json.loads((trained_model / "model" / "metadata.json").read_text())
    assert metadata["versions"]["scikit-learn"] == RUNNING
    assert metadata["versions"]["scikit-learn-line"] == LINE

