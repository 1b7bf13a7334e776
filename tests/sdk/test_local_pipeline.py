"""pipeline.py's local variant, run by LocalPipelineSession against the image.

processing prepare -> train -> processing evaluate -> condition -> create model
-> batch transform, with moto's S3 server as the bucket; once with the default
threshold, which the model passes, and once with one it cannot reach (the
FailStep); then one definition executed with a multiclass and a regression
target, chosen by the Target parameter of each execution.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
import pytest

import pipeline as pl
from scripts.harness import DATA

from .conftest import BUCKET, ROLE


def objects(session, prefix: str) -> dict[str, bytes]:
    listed = session.s3_client.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
    return {item["Key"]: session.s3_client.get_object(Bucket=BUCKET, Key=item["Key"])["Body"]
            .read() for item in listed.get("Contents", [])}


def run(sdk_image, session, name: str, **parameters):
    settings = pl.Settings(image_uri=sdk_image, role=ROLE, bucket=BUCKET, prefix=name,
                           name=name, local=True)
    session.default_bucket()
    data = session.upload_data(str(DATA), bucket=BUCKET, key_prefix=f"{name}/input")
    pipeline = pl.build_pipeline(settings, session)
    pipeline.upsert(role_arn=ROLE)
    started = time.monotonic()
    execution = pipeline.start(parameters={"InputData": data.rsplit("/", 1)[0] + "/",
                                           **parameters})
    elapsed = time.monotonic() - started
    steps = {s["StepName"]: s for s in pl.list_steps(execution)}
    return execution, steps, elapsed


def test_pipeline_passes_the_gate_and_scores_the_test_set(sdk_image, session_factory, figures,
                                                         no_leftovers):
    session = session_factory(pipeline=True)
    # The default MetricThreshold.
    execution, steps, elapsed = run(sdk_image, session, "pass")
    figures["local pipeline, passing branch (wall time)"] = f"{elapsed:.0f} s"
    description = execution.describe()
    assert description["PipelineExecutionStatus"] == "Succeeded", (
        description.get("FailureReason"), {n: s.get("FailureReason") for n, s in steps.items()})
    status = {name: step["StepStatus"] for name, step in steps.items()}
    assert status == {"Prepare": "Succeeded", "Train": "Succeeded", "Evaluate": "Succeeded",
                      "CheckQuality": "Succeeded", "CreateModel-CreateModel": "Succeeded",
                      "ScoreTestSet": "Succeeded"}
    assert steps["CheckQuality"]["Metadata"]["Condition"]["Outcome"] is True

    stored = objects(session, "pass/runs/")
    reports = {k: v for k, v in stored.items() if k.endswith("/evaluation/evaluation.json")}
    assert len(reports) == 1, sorted(stored)
    report = json.loads(next(iter(reports.values())))
    accuracy = report["binary_classification_metrics"]["accuracy"]["value"]
    assert 0.5 <= accuracy <= 1
    assert report["quality_gate"]["value"] >= pl.DEFAULT_THRESHOLD
    # What RegisterModel would get on AWS: the sample payload prepare wrote.
    assert [k for k in stored if k.endswith("/prepare/sample_payload/sample_payload.tar.gz")]

    # One prediction line per test row, in order, for the test features.
    test_features = [v for k, v in stored.items() if k.endswith("test_features.csv")]
    outputs = [v for k, v in stored.items() if "/transform/" in k and k.endswith(".out")]
    assert len(test_features) == 1 and len(outputs) == 1, sorted(stored)
    rows = test_features[0].decode().splitlines()
    # AssembleWith=Line: a line break after each response, so exactly one
    # line per record when the responses carry none of their own.
    predictions = outputs[0].decode().split("\n")
    assert predictions[-1] == ""
    predictions = predictions[:-1]
    assert "" not in predictions, "empty lines in the batch output"
    assert len(predictions) == len(rows)
    assert set(predictions) <= {"yes", "no"}
    # The batch predictions score as evaluate said.
    tests = [v for k, v in stored.items() if k.endswith("/prepare/test/test.csv")]
    truth = pd.read_csv(pd.io.common.BytesIO(tests[0]))["churn"].tolist()
    batch_accuracy = sum(p == t for p, t in zip(predictions, truth)) / len(truth)
    assert batch_accuracy == pytest.approx(accuracy, abs=1e-9)


def test_pipeline_below_threshold_ends_in_the_fail_step(sdk_image, session_factory, figures,
                                                       no_leftovers):
    session = session_factory(pipeline=True)
    execution, steps, elapsed = run(sdk_image, session, "fail", MetricThreshold=0.99)
    figures["local pipeline, failing branch (wall time)"] = f"{elapsed:.0f} s"
    description = execution.describe()
    assert description["PipelineExecutionStatus"] == "Failed"
    status = {name: step["StepStatus"] for name, step in steps.items()}
    assert status == {"Prepare": "Succeeded", "Train": "Succeeded", "Evaluate": "Succeeded",
                      "CheckQuality": "Succeeded", "QualityTooLow": "Failed"}
    assert steps["CheckQuality"]["Metadata"]["Condition"]["Outcome"] is False
    reason = steps["QualityTooLow"]["FailureReason"]
    assert "of the error of the best constant prediction" in reason
    assert "below MetricThreshold 0.99" in reason
    assert not [k for k in objects(session, "fail/runs/") if "/transform/" in k]


# Targets of the bundled data besides churn: one definition, the problem
# chosen by each execution's Target.
OTHER_PROBLEMS = {
    "internet_service": ("multiclass_classification_metrics", "MulticlassClassification"),
    "monthly_charges": ("regression_metrics", "Regression"),
}


@pytest.mark.parametrize("target", sorted(OTHER_PROBLEMS))
def test_one_definition_runs_every_problem_type(sdk_image, session_factory, figures, target,
                                               no_leftovers):
    section, problem_type = OTHER_PROBLEMS[target]
    session = session_factory(pipeline=True)
    name = target.replace("_", "-")
    execution, steps, elapsed = run(sdk_image, session, name, Target=target)
    figures[f"local pipeline, Target={target} (wall time)"] = f"{elapsed:.0f} s"
    description = execution.describe()
    assert description["PipelineExecutionStatus"] == "Succeeded", (
        description.get("FailureReason"), {n: s.get("FailureReason") for n, s in steps.items()})
    assert steps["CheckQuality"]["Metadata"]["Condition"]["Outcome"] is True

    stored = objects(session, f"{name}/runs/")
    (report,) = [json.loads(v) for k, v in stored.items()
                 if k.endswith("/evaluation/evaluation.json")]
    assert section in report
    assert report["quality_gate"]["problem_type"] == problem_type
    (problem,) = [json.loads(v) for k, v in stored.items() if k.endswith("/problem/problem.json")]
    assert problem["target"] == target and problem["problem_type"] == problem_type

    (test,) = [v for k, v in stored.items() if k.endswith("/prepare/test/test.csv")]
    truth = pd.read_csv(pd.io.common.BytesIO(test))[target]
    (output,) = [v for k, v in stored.items() if "/transform/" in k and k.endswith(".out")]
    predictions = output.decode().split("\n")[:-1]
    assert len(predictions) == len(truth)
    if problem_type == "Regression":
        values = [float(p) for p in predictions]
        # Better than the mean on the test rows, as the gate said.
        mse = sum((v - t) ** 2 for v, t in zip(values, truth)) / len(truth)
        assert mse < truth.var(ddof=0)
    else:
        assert set(predictions) <= set(truth.astype(str))


def test_cli_local_command(sdk_image, local_mode, moto_s3, tmp_path):
    """`python pipeline.py local` as a user runs it, against the S3 emulator."""
    import os
    import subprocess
    import sys

    from scripts.harness import ROOT
    from scripts.serve_process import free_port

    result = subprocess.run(
        [sys.executable, str(ROOT / "pipeline.py"), "local", "--image-uri", sdk_image,
         "--bucket", BUCKET, "--prefix", "cli", "--name", "cli", "--s3-endpoint-url", moto_s3,
         "--data", str(DATA), "--serving-port", str(free_port()),
         "--parameter", "MetricThreshold=0.99"],
        capture_output=True, text=True, timeout=1800, cwd=tmp_path, env=dict(os.environ))
    # The end of both streams: the step lines and the last container's own log.
    explained = (f"exit {result.returncode}\n--- stdout (end) ---\n{result.stdout[-6000:]}"
                 f"\n--- stderr (end) ---\n{result.stderr[-3000:]}")
    # The gate fails at 0.99: the command says so and exits non-zero.
    assert result.returncode == 1, explained
    assert "QualityTooLow" in result.stdout and "Failed" in result.stdout, explained
    assert "Evaluate" in result.stdout, explained
    assert Path(tmp_path).is_dir()
