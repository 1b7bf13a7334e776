"""pipeline.py's definition, built offline with the real SageMaker Python SDK v2.

The definition is checked against what the image really does: the JsonGet
path is looked up in an evaluation.json written by ``processing evaluate``
on a model trained by ``train``, and every metric regex is matched against
what ``train`` prints.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("sagemaker", reason="pip install -r requirements-dev.txt (sagemaker<3)")

import pipeline as pl  # noqa: E402
from tests.sagemaker_tree import DATA, ROOT, run_stage, training_tree  # noqa: E402

pytestmark = [
    pytest.mark.sdk,
    # In a PipelineSession, run()/fit()/transform() return step arguments, as intended.
    pytest.mark.filterwarnings("ignore:Running within a PipelineSession"),
    pytest.mark.filterwarnings("ignore:We are deprecating the use of CreateModelStep"),
]

IMAGE = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sklearn-byoc:1.0"
ROLE = "arn:aws:iam::123456789012:role/TestRole"


class NetworkAttempts:
    """Every AWS request or telemetry call the SDK tries, refused and recorded."""

    def __init__(self, monkeypatch, session):
        import requests

        self.calls = []

        def refuse(**kwargs):
            request = kwargs.get("request")
            self.calls.append(getattr(request, "url", kwargs.get("event_name")))
            raise RuntimeError("no AWS call may happen while building a definition")

        def refuse_get(url, *args, **kwargs):
            self.calls.append(url)
            raise requests.exceptions.ConnectionError("no network")

        session.boto_session.events.register("before-send", refuse)
        monkeypatch.setattr(requests, "get", refuse_get)


def build(monkeypatch, **settings) -> tuple[dict, list]:
    session = pl.offline_session("eu-west-1", "test-bucket")
    attempts = NetworkAttempts(monkeypatch, session)
    settings = pl.Settings(image_uri=IMAGE, role=ROLE, bucket="test-bucket", **settings)
    return pl.definition(settings, session), attempts.calls


@pytest.fixture(scope="module")
def monkeymodule():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def standard(monkeymodule):
    return build(monkeymodule)


def steps_by_name(definition: dict) -> dict[str, dict]:
    found = {}

    def walk(steps):
        for step in steps:
            found[step["Name"]] = step
            if step["Type"] == "Condition":
                walk(step["Arguments"]["IfSteps"])
                walk(step["Arguments"]["ElseSteps"])

    walk(definition["Steps"])
    return found


def condition(definition: dict) -> dict:
    return steps_by_name(definition)["CheckQuality"]["Arguments"]


# -- shape ---------------------------------------------------------------------------------
def test_built_without_any_aws_or_network_call(standard):
    _, calls = standard
    assert calls == []


def test_every_step_is_present_with_its_type(standard):
    definition, _ = standard
    types = {name: step["Type"] for name, step in steps_by_name(definition).items()}
    assert types == {
        "Prepare": "Processing", "Train": "Training", "Evaluate": "Processing",
        "CheckQuality": "Condition", "CreateModel-CreateModel": "Model",
        "RegisterModel-RegisterModel": "RegisterModel", "ScoreTestSet": "Transform",
        "QualityTooLow": "Fail",
    }
    check = condition(definition)
    assert [s["Name"] for s in check["ElseSteps"]] == ["QualityTooLow"]


def test_parameters(standard):
    definition, _ = standard
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert set(params) == {"InputData", "ProcessingInstanceType", "ProcessingInstanceCount",
                           "TrainingInstanceType", "TransformInstanceType",
                           "TransformInstanceCount", "MetricThreshold", "ModelApprovalStatus",
                           "Target", "Model"}
    assert params["MetricThreshold"]["Type"] == "Float"
    assert params["ProcessingInstanceCount"]["Type"] == "Integer"
    assert params["TransformInstanceCount"]["Type"] == "Integer"
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"


def test_every_container_is_the_image(standard):
    definition, _ = standard
    images = []

    def collect(node):
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("ImageUri", "TrainingImage", "Image"):
                    images.append(value)
                collect(value)
        elif isinstance(node, list):
            for item in node:
                collect(item)

    collect(definition)
    # Prepare, Train, Evaluate, CreateModel, RegisterModel
    assert len(images) == 5 and set(images) == {IMAGE}


# -- processing: the entrypoint names the shim, the options are arguments -----------------------
def test_prepare_step(standard):
    definition, _ = standard
    args = steps_by_name(definition)["Prepare"]["Arguments"]
    app = args["AppSpecification"]
    # A processing job passes no command: the entrypoint must name the shim.
    assert app["ContainerEntrypoint"] == ["processing", "prepare"]
    assert app["ContainerArguments"] == ["--target", {"Get": "Parameters.Target"},
                                         "--output-dir", "/opt/ml/processing/output"]
    (raw,) = args["ProcessingInputs"]
    assert raw["S3Input"]["S3Uri"] == {"Get": "Parameters.InputData"}
    assert raw["S3Input"]["S3DataDistributionType"] == "ShardedByS3Key"
    assert raw["S3Input"]["LocalPath"] == "/opt/ml/processing/input"
    cluster = args["ProcessingResources"]["ClusterConfig"]
    assert cluster["InstanceCount"] == {"Get": "Parameters.ProcessingInstanceCount"}
    outputs = {o["OutputName"]: o["S3Output"]["LocalPath"]
               for o in args["ProcessingOutputConfig"]["Outputs"]}
    # What sklearn_byoc/processing/prepare.py writes under --output-dir.
    assert outputs == {name: f"/opt/ml/processing/output/{name}"
                       for name in ("train", "validation", "test", "test_features")}
    # Consumers read them as S3 prefixes: none may be a prefix of another
    # (.../test would also match .../test_features/...).
    uris = [render(o["S3Output"]["S3Uri"]) for o in args["ProcessingOutputConfig"]["Outputs"]]
    assert all(uri.startswith("s3://test-bucket/") for uri in uris)
    for uri in uris:
        assert [other for other in uris if other.startswith(uri)] == [uri], uri


def render(expression, execution_id: str = "exec-1") -> str:
    """A Join / Get expression of the definition as the string it is at run time."""
    if isinstance(expression, str):
        return expression
    if "Std:Join" in expression:
        join = expression["Std:Join"]
        return join["On"].join(render(v, execution_id) for v in join["Values"])
    if expression == {"Get": "Execution.PipelineExecutionId"}:
        return execution_id
    raise AssertionError(f"cannot render {expression}")


def test_prepare_arguments_are_understood_by_the_stage(tmp_path):
    """The very arguments of the definition, run through `processing prepare` itself."""
    from tests.sagemaker_tree import processing_tree

    base = processing_tree(tmp_path, {"churn.csv": DATA})
    result = run_stage("processing", base, [
        "prepare", "--target", "churn", "--output-dir", str(base / "processing" / "output")])
    assert result.returncode == 0, result.stderr
    for name in ("train", "validation", "test", "test_features"):
        assert list((base / "processing" / "output" / name).glob("*.csv")), name


def test_evaluate_step_and_its_property_file(standard):
    definition, _ = standard
    step = steps_by_name(definition)["Evaluate"]
    app = step["Arguments"]["AppSpecification"]
    assert app["ContainerEntrypoint"] == ["processing", "evaluate"]
    assert app["ContainerArguments"] == [
        "--model-dir", "/opt/ml/processing/model", "--test-dir", "/opt/ml/processing/test",
        "--output-dir", "/opt/ml/processing/evaluation"]
    inputs = {i["InputName"]: i["S3Input"] for i in step["Arguments"]["ProcessingInputs"]}
    assert inputs["model"]["S3Uri"] == {"Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}
    assert inputs["test"]["S3Uri"] == {
        "Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    (output,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert output["OutputName"] == "evaluation"
    assert output["S3Output"]["LocalPath"] == "/opt/ml/processing/evaluation"
    assert step["PropertyFiles"] == [{"PropertyFileName": "EvaluationReport",
                                      "OutputName": "evaluation",
                                      "FilePath": "evaluation.json"}]


def test_condition_reads_the_report_and_compares_with_the_threshold(standard):
    definition, _ = standard
    (cond,) = condition(definition)["Conditions"]
    assert cond["Type"] == "GreaterThanOrEqualTo"
    assert cond["LeftValue"] == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
        "Path": "binary_classification_metrics.accuracy.value"}}
    assert cond["RightValue"] == {"Get": "Parameters.MetricThreshold"}


def test_register_step_carries_the_evaluation_report(standard):
    definition, _ = standard
    args = steps_by_name(definition)["RegisterModel-RegisterModel"]["Arguments"]
    statistics = args["ModelMetrics"]["ModelQuality"]["Statistics"]
    assert statistics["ContentType"] == "application/json"
    assert statistics["S3Uri"] == {"Std:Join": {"On": "/", "Values": [
        {"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"},
        "evaluation.json"]}}
    assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
    spec = args["InferenceSpecification"]
    assert "text/csv" in spec["SupportedContentTypes"]
    assert spec["Containers"][0]["ModelDataUrl"] == {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}


def test_transform_step_scores_the_headerless_test_features(standard):
    definition, _ = standard
    args = steps_by_name(definition)["ScoreTestSet"]["Arguments"]
    assert args["ModelName"] == {"Get": "Steps.CreateModel-CreateModel.ModelName"}
    assert args["BatchStrategy"] == "MultiRecord"
    assert args["TransformInput"]["SplitType"] == "Line"
    assert args["TransformInput"]["ContentType"] == "text/csv"
    assert args["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"] == {
        "Get": "Steps.Prepare.ProcessingOutputConfig.Outputs['test_features'].S3Output.S3Uri"}
    assert args["TransformOutput"]["AssembleWith"] == "Line"
    assert args["TransformResources"]["InstanceCount"] == {
        "Get": "Parameters.TransformInstanceCount"}


def test_training_step(standard):
    definition, _ = standard
    args = steps_by_name(definition)["Train"]["Arguments"]
    assert args["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    assert args["HyperParameters"] == {"model": {"Get": "Parameters.Model"},
                                       "target": {"Get": "Parameters.Target"}}
    channels = {c["ChannelName"]: c for c in args["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    assert all(c["ContentType"] == "text/csv" for c in channels.values())


# -- against what the stages really do ---------------------------------------------------------
@pytest.fixture(scope="module")
def train_stdout(tmp_path_factory) -> tuple[str, dict]:
    base = training_tree(tmp_path_factory.mktemp("train"), {"train": [DATA]},
                         {"target": "churn"})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((base / "output" / "data" / "metrics.json").read_text())
    return result.stdout + result.stderr, metrics


def test_metric_regexes_match_what_train_prints(standard, train_stdout):
    definition, _ = standard
    output, metrics = train_stdout
    definitions = steps_by_name(definition)["Train"]["Arguments"]["AlgorithmSpecification"][
        "MetricDefinitions"]
    assert definitions
    for entry in definitions:
        found = re.findall(entry["Regex"], output)
        assert found, f"{entry['Name']} ({entry['Regex']}) matches nothing train printed"
        split, _, name = entry["Name"].partition(":")
        # SageMaker takes the last value printed.
        assert float(found[-1]) == pytest.approx(metrics[split][name], abs=1e-6)
    printed = set(re.findall(r"^((?:train|validation):\w+)=", output, re.MULTILINE))
    assert printed == {entry["Name"] for entry in definitions}


def test_jsonget_path_exists_in_what_evaluate_writes(standard, trained_model, tmp_path):
    definition, _ = standard
    (cond,) = condition(definition)["Conditions"]
    path = cond["LeftValue"]["Std:JsonGet"]["Path"]
    test = tmp_path / "processing" / "test"
    test.mkdir(parents=True)
    lines = DATA.read_text().splitlines()
    header = lines[0].split(",")
    index = header.index("churn")
    reordered = [",".join([row.split(",")[index]] + [c for i, c in enumerate(row.split(","))
                                                     if i != index])
                 for row in lines[:400]]
    (test / "test.csv").write_text("\n".join(reordered) + "\n")
    (tmp_path / "processing" / "model").symlink_to(trained_model / "model")
    step = steps_by_name(definition)["Evaluate"]["Arguments"]
    arguments = [a.replace("/opt/ml", str(tmp_path)) for a in
                 step["AppSpecification"]["ContainerArguments"]]
    result = run_stage("processing", tmp_path,
                       step["AppSpecification"]["ContainerEntrypoint"][1:] + arguments)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "processing" / "evaluation" / "evaluation.json").read_text())
    node = report
    for key in path.split("."):
        assert key in node, f"{key!r} of {path} is not in evaluation.json"
        node = node[key]
    assert isinstance(node, float) and 0 <= node <= 1


# -- variants ----------------------------------------------------------------------------------
def test_tuning_variant(monkeymodule):
    definition, calls = build(monkeymodule, tuning=True, max_tuning_jobs=4)
    assert calls == []
    steps = steps_by_name(definition)
    assert "Train" not in steps
    tune = steps["Tune"]
    assert tune["Type"] == "Tuning"
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Maximize",
                                                          "MetricName": "validation:accuracy"}
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4
    ranges = config["ParameterRanges"]
    names = {r["Name"] for kind in ranges.values() for r in kind}
    assert names == set(pl.TUNING_RANGES)
    # The ranges are parameters of the estimator the trainer builds by default.
    from sklearn.ensemble import HistGradientBoostingClassifier

    assert names <= set(HistGradientBoostingClassifier().get_params())
    training = tune["Arguments"]["TrainingJobDefinition"]
    assert training["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    objective_names = {m["Name"] for m in training["AlgorithmSpecification"]["MetricDefinitions"]}
    assert "validation:accuracy" in objective_names
    model_input = {i["InputName"]: i["S3Input"]["S3Uri"]
                   for i in steps["Evaluate"]["Arguments"]["ProcessingInputs"]}["model"]
    values = model_input["Std:Join"]["Values"]
    assert {"Get": "Steps.Tune.TrainingJobSummaries[0].TrainingJobName"} in values
    assert values[-1] == "output/model.tar.gz"


def test_local_variant_has_only_what_local_mode_runs(monkeymodule):
    definition, calls = build(monkeymodule, local=True)
    assert calls == []
    steps = steps_by_name(definition)
    assert {step["Type"] for step in steps.values()} == {
        "Processing", "Training", "Condition", "Model", "Transform", "Fail"}
    params = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    assert params["ProcessingInstanceType"] == "local"
    # Local mode refuses ShardedByS3Key ("not currently supported in Local Mode").
    (raw,) = steps["Prepare"]["Arguments"]["ProcessingInputs"]
    assert raw["S3Input"]["S3DataDistributionType"] == "FullyReplicated"
    assert params["TransformInstanceType"] == "local"
    with pytest.raises(ValueError, match="local mode runs no tuning"):
        pl.Settings(local=True, tuning=True)


def test_regression_variant_compares_rmse_downwards(monkeymodule):
    definition, _ = build(monkeymodule, problem="regression", target="monthly_charges")
    (cond,) = condition(definition)["Conditions"]
    assert cond["Type"] == "LessThanOrEqualTo"
    assert cond["LeftValue"]["Std:JsonGet"]["Path"] == "regression_metrics.rmse.value"
    names = {m["Name"] for m in steps_by_name(definition)["Train"]["Arguments"][
        "AlgorithmSpecification"]["MetricDefinitions"]}
    assert "validation:rmse" in names and "validation:accuracy" not in names


def test_a_metric_missing_from_the_report_is_refused():
    with pytest.raises(ValueError, match="not in the regression report"):
        pl.Settings(problem="regression", metric="accuracy")


# -- command line -------------------------------------------------------------------------------
def test_cli_help_and_definition():
    result = subprocess.run([sys.executable, str(ROOT / "pipeline.py"), "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    for command in ("definition", "upsert", "start", "local"):
        assert command in result.stdout
    result = subprocess.run([sys.executable, str(ROOT / "pipeline.py"), "definition",
                             "--image-uri", IMAGE, "--local"],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    # stdout is the definition alone: the SDK's own messages go to stderr.
    definition = json.loads(result.stdout)
    assert "RegisterModel-RegisterModel" not in steps_by_name(definition)


def test_aws_commands_require_their_settings():
    result = subprocess.run([sys.executable, str(ROOT / "pipeline.py"), "upsert",
                             "--bucket", "b", "--region", "eu-west-1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "--image-uri" in result.stderr and "--role" in result.stderr


def test_cli_upsert_and_start_against_an_api_emulator(tmp_path):
    """The AWS commands, end to end against moto's SageMaker API on 127.0.0.1."""
    import os

    import boto3

    moto_server = pytest.importorskip("moto.server", reason="pip install -r requirements-dev.txt")
    from tests.sagemaker_tree import free_port

    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{port}"
        config = tmp_path / "sdk.yaml"
        config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                          "      TelemetryOptOut: true\n")
        env = {**os.environ, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
               "AWS_ENDPOINT_URL": endpoint, "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config),
               "AWS_CONFIG_FILE": str(tmp_path / "none"),
               "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")}
        env.pop("AWS_PROFILE", None)
        command = [sys.executable, str(ROOT / "pipeline.py"), "start", "--role", ROLE,
                   "--bucket", "test-bucket", "--region", "eu-west-1", "--image-uri", IMAGE,
                   "--input-data", "s3://test-bucket/raw/",
                   "--parameter", "MetricThreshold=0.8"]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "pipeline sklearn-byoc: arn:aws:sagemaker:eu-west-1:" in result.stdout
        assert "/execution/" in result.stdout

        client = boto3.client("sagemaker", region_name="eu-west-1", endpoint_url=endpoint,
                              aws_access_key_id="testing", aws_secret_access_key="testing")
        stored = json.loads(client.describe_pipeline(
            PipelineName="sklearn-byoc")["PipelineDefinition"])
        assert set(steps_by_name(stored)) >= {"Prepare", "Train", "Evaluate", "CheckQuality",
                                              "RegisterModel-RegisterModel", "ScoreTestSet"}
        (execution,) = client.list_pipeline_executions(
            PipelineName="sklearn-byoc")["PipelineExecutionSummaries"]
        parameters = {p["Name"]: p["Value"] for p in client.list_pipeline_parameters_for_execution(
            PipelineExecutionArn=execution["PipelineExecutionArn"])["PipelineParameters"]}
        assert parameters["MetricThreshold"] == "0.8"
        assert parameters["InputData"] == "s3://test-bucket/raw/"

        # upsert again: an update of the same pipeline, with the new image.
        command = [sys.executable, str(ROOT / "pipeline.py"), "upsert", "--role", ROLE,
                   "--bucket", "test-bucket", "--region", "eu-west-1",
                   "--image-uri", IMAGE.replace(":1.0", ":2.0")]
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
        assert result.returncode == 0, result.stderr[-3000:]
        stored = client.describe_pipeline(PipelineName="sklearn-byoc")["PipelineDefinition"]
        assert ":2.0" in stored and ":1.0" not in stored
    finally:
        server.stop()
