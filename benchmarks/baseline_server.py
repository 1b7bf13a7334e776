"""The baseline: a predictor built the way the classic SageMaker
"scikit_bring_your_own" example builds one, serving the same model file.

What it does, per request, and nothing more:

- ``text/csv``: ``pandas.read_csv(io.StringIO(body), header=None)``, the
  columns renamed to the model's feature names (this project's model is a
  pipeline keyed by column names; they come from ``metadata.json``), then
  ``model.predict``, then ``pandas.DataFrame(predictions).to_csv(header=False,
  index=False)``;
- ``application/json`` (the classic predictor has no JSON input; this is the
  natural pandas analog): ``pandas.DataFrame(json.loads(body)["instances"],
  columns=names)`` → ``model.predict`` → ``json.dumps``;
- anything else: 415.

The model is loaded with joblib once per worker, on the first request that
needs it (``/ping`` included), as the classic predictor does.  It runs as a
Flask app under gunicorn *sync* workers:

    BASELINE_MODEL_DIR=<model folder> gunicorn --worker-class sync --workers N \\
        --timeout 60 --bind 127.0.0.1:PORT --no-control-socket --pythonpath benchmarks \\
        baseline_server:app
"""
from __future__ import annotations

import io
import json
import os
from pathlib import Path

import flask
import joblib
import pandas as pd

MODEL_DIR = Path(os.environ.get("BASELINE_MODEL_DIR", "/opt/ml/model"))


def load(model_dir: Path):
    """The fitted model, with joblib, and its feature names from metadata.json."""
    metadata = json.loads((model_dir / "metadata.json").read_text(encoding="utf-8"))
    names = [feature["name"] for feature in metadata["features"]]
    return joblib.load(model_dir / "model.joblib"), names


def predict_csv(model, names: list[str], body: bytes) -> str:
    frame = pd.read_csv(io.StringIO(body.decode("utf-8")), header=None)
    frame.columns = names
    predictions = model.predict(frame)
    out = io.StringIO()
    pd.DataFrame({"results": predictions}).to_csv(out, header=False, index=False)
    return out.getvalue()


def predict_json(model, names: list[str], body: bytes) -> str:
    frame = pd.DataFrame(json.loads(body.decode("utf-8"))["instances"], columns=names)
    predictions = model.predict(frame)
    return json.dumps({"predictions": predictions.tolist()})


class ScoringService:
    """Holds the model once loaded; each worker process has its own."""

    model = None
    feature_names: list[str] | None = None

    @classmethod
    def get_model(cls):
        if cls.model is None:
            cls.model, cls.feature_names = load(MODEL_DIR)
        return cls.model


app = flask.Flask(__name__)


@app.route("/ping", methods=["GET"])
def ping():
    healthy = ScoringService.get_model() is not None
    return flask.Response(response="\n", status=200 if healthy else 404,
                          mimetype="application/json")


@app.route("/invocations", methods=["POST"])
def invocations():
    kind = flask.request.mimetype
    model = ScoringService.get_model()
    if kind == "text/csv":
        answer = predict_csv(model, ScoringService.feature_names, flask.request.data)
        return flask.Response(response=answer, status=200, mimetype="text/csv")
    if kind == "application/json":
        answer = predict_json(model, ScoringService.feature_names, flask.request.data)
        return flask.Response(response=answer, status=200, mimetype="application/json")
    return flask.Response(response="This predictor only supports CSV (and JSON) data",
                          status=415, mimetype="text/plain")
