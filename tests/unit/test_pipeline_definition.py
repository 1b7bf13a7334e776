"""pipeline.py's definition, built offline with the real SageMaker Python SDK v2.

The definition is checked against what the image really does: every JsonGet
path is looked up in the file ``processing prepare`` or ``processing
evaluate`` writes, for a binary, a multiclass and a regression target, on
models trained by ``train``; every metric regex is matched against what
``train`` prints for each task.
"""
from __future__ import annotations

import copy
import json
import re
import subprocess
import sys

import pytest

pytest.importorskip("sagemaker", reason="pip install -r requirements-dev.txt (sagemaker<3)")

import pipeline as pl  # noqa: E402
from scripts.harness import DATA, ROOT, run_stage, training_tree  # noqa: E402

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
                           "Target", "Model", "IgnoreColumns", "Hyperparameters"}
    assert params["MetricThreshold"]["Type"] == "Float"
    assert params["ProcessingInstanceCount"]["Type"] == "Integer"
    assert params["TransformInstanceCount"]["Type"] == "Integer"
    assert params["ModelApprovalStatus"]["DefaultValue"] == "PendingManualApproval"
    # A share of the best constant prediction's error: the same bar whatever
    # the problem and the target's units.
    assert params["MetricThreshold"]["DefaultValue"] == 0.1


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
                                         "--ignore-columns", {"Get": "Parameters.IgnoreColumns"},
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
                       for name in ("train", "validation", "test", "test_features",
                                    "sample_payload", "problem")}
    assert steps_by_name(definition)["Prepare"]["PropertyFiles"] == [
        {"PropertyFileName": "Problem", "OutputName": "problem", "FilePath": "problem.json"}]
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
    from scripts.harness import processing_tree

    base = processing_tree(tmp_path, {"churn.csv": DATA})
    result = run_stage("processing", base, [
        "prepare", "--target", "churn", "--output-dir", str(base / "processing" / "output")])
    assert result.returncode == 0, result.stderr
    for name in ("train", "validation", "test", "test_features"):
        assert list((base / "processing" / "output" / name).glob("*.csv")), name
    assert (base / "processing" / "output" / "problem" / "problem.json").is_file()
    assert (base / "processing" / "output" / "sample_payload" / "sample_payload.tar.gz").is_file()


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


def test_condition_reads_the_gate_value_and_compares_with_the_threshold(standard):
    definition, _ = standard
    (cond,) = condition(definition)["Conditions"]
    assert cond["Type"] == "GreaterThanOrEqualTo"
    assert cond["LeftValue"] == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
        "Path": "quality_gate.value"}}
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
    assert spec["Containers"][0]["ModelDataUrl"] == {
        "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}


def test_register_step_carries_what_inference_recommender_needs(standard):
    import sklearn

    from sklearn_byoc.common.compat import line_of

    definition, _ = standard
    args = steps_by_name(definition)["RegisterModel-RegisterModel"]["Arguments"]
    spec = args["InferenceSpecification"]
    # Every request format serve takes, NPY being what SKLearnPredictor sends.
    assert set(spec["SupportedContentTypes"]) == {
        "text/csv", "application/json", "application/jsonlines", "application/x-npy"}
    assert args["Domain"] == "MACHINE_LEARNING"
    # The task follows the execution: evaluate reads it from the model.
    assert args["Task"] == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"},
        "Path": "quality_gate.task"}}
    container = spec["Containers"][0]
    assert container["Framework"] == "SAGEMAKER-SCIKIT-LEARN"
    # The scikit-learn the default image pins (its lock; a venv of another line runs
    # another scikit-learn).
    pinned = re.search(r"^scikit-learn==([\w.]+)", (ROOT / "requirements.txt").read_text(),
                       re.M).group(1)
    assert container["FrameworkVersion"] == pinned
    if line_of(sklearn.__version__) == line_of(pinned):
        assert pinned == sklearn.__version__
    # The tar.gz prepare writes, under the prefix its output goes to.
    prepare = steps_by_name(definition)["Prepare"]["Arguments"]
    (payload,) = [o["S3Output"]["S3Uri"] for o in prepare["ProcessingOutputConfig"]["Outputs"]
                  if o["OutputName"] == "sample_payload"]
    url = render(args["SamplePayloadUrl"])
    assert url == render(payload) + "sample_payload.tar.gz"
    assert url.startswith("s3://test-bucket/") and url.endswith(".tar.gz")


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
                                       "target": {"Get": "Parameters.Target"},
                                       "hyperparameters": {"Get": "Parameters.Hyperparameters"}}
    channels = {c["ChannelName"]: c for c in args["InputDataConfig"]}
    assert set(channels) == {"train", "validation"}
    assert all(c["ContentType"] == "text/csv" for c in channels.values())


# -- against what the stages really do, for every problem type --------------------------------
# Targets of the bundled data: one per problem type the one definition serves.
PROBLEMS = {"binary": "churn", "multiclass": "internet_service",
            "regression": "monthly_charges"}
# Parameters of each problem's execution besides Target (the others keep their defaults).
EXECUTION_PARAMETERS = {
    "multiclass": {"IgnoreColumns": "region,customer_age",
                   "Hyperparameters": '{"max_iter": 50, "holdout_fraction": 0.25}'},
}


def with_parameters(node, definition: dict, values: dict):
    """``node`` with each {"Get": "Parameters.X"} replaced by X's value in ``values``, else
    its default in the definition: what the service passes to the job."""
    defaults = {p["Name"]: p["DefaultValue"] for p in definition["Parameters"]}
    if isinstance(node, dict) and set(node) == {"Get"} \
            and node["Get"].startswith("Parameters."):
        name = node["Get"].split(".", 1)[1]
        return str(values.get(name, defaults[name]))
    if isinstance(node, dict):
        return {k: with_parameters(v, definition, values) for k, v in node.items()}
    if isinstance(node, list):
        return [with_parameters(v, definition, values) for v in node]
    return node


def run_step(step: dict, base) -> subprocess.CompletedProcess:
    """A processing step of the definition, run by `processing` on the tree at ``base``:
    its very entrypoint and arguments, /opt/ml moved to the tree."""
    app = step["Arguments"]["AppSpecification"]
    arguments = []
    for a in app["ContainerArguments"]:
        arguments.append(a.replace("/opt/ml", str(base)) if isinstance(a, str) else a)
    return run_stage("processing", base, app["ContainerEntrypoint"][1:] + arguments)


@pytest.fixture(scope="module")
def executions(monkeymodule, tmp_path_factory) -> dict[str, dict]:
    """For each problem type: prepare, train and evaluate as the definition runs them,
    on the bundled data with that problem's target; the files each step wrote."""
    definition, _ = build(monkeymodule)
    steps = steps_by_name(definition)
    found = {}
    for problem, target in PROBLEMS.items():
        from scripts.harness import processing_tree

        base = processing_tree(tmp_path_factory.mktemp(f"prepare-{problem}"),
                               {"data.csv": DATA})
        values = {"Target": target, **EXECUTION_PARAMETERS.get(problem, {})}
        prepare = with_parameters(steps["Prepare"], definition, values)
        assert target in prepare["Arguments"]["AppSpecification"]["ContainerArguments"]
        result = run_step(prepare, base)
        assert result.returncode == 0, result.stderr
        splits = base / "processing" / "output"

        job = training_tree(tmp_path_factory.mktemp(f"train-{problem}"),
                            {"train": [splits / "train" / "train.csv"],
                             "validation": [splits / "validation" / "validation.csv"]},
                            with_parameters(steps["Train"]["Arguments"]["HyperParameters"],
                                            definition, values))
        trained = run_stage("train", job)
        assert trained.returncode == 0, trained.stderr

        evaluation = tmp_path_factory.mktemp(f"evaluate-{problem}")
        (evaluation / "processing").mkdir()
        (evaluation / "processing" / "model").symlink_to(job / "model")
        (evaluation / "processing" / "test").symlink_to(splits / "test")
        result = run_step(steps["Evaluate"], evaluation)
        assert result.returncode == 0, result.stderr
        found[problem] = {
            "Problem": json.loads((splits / "problem" / "problem.json").read_text()),
            "EvaluationReport": json.loads(
                (evaluation / "processing" / "evaluation" / "evaluation.json").read_text()),
            "train output": trained.stdout + trained.stderr,
            "metrics": json.loads((job / "output" / "data" / "metrics.json").read_text()),
            "metadata": json.loads((job / "model" / "metadata.json").read_text()),
            "train header": (splits / "train" / "train.csv").read_text().split("\n", 1)[0],
        }
    return found


def test_ignore_columns_and_hyperparameters_parameters_reach_prepare_and_train(executions):
    multiclass = executions["multiclass"]
    assert "region" not in multiclass["train header"].split(",")
    assert "customer_age" not in multiclass["train header"].split(",")
    assert "churn" in multiclass["train header"].split(",")
    assert multiclass["metadata"]["params"]["max_iter"] == 50
    # The other executions keep every column.
    assert "region" in executions["binary"]["train header"].split(",")


def json_gets(node) -> list[dict]:
    found = []
    if isinstance(node, dict):
        if "Std:JsonGet" in node:
            found.append(node["Std:JsonGet"])
        for value in node.values():
            found += json_gets(value)
    elif isinstance(node, list):
        for item in node:
            found += json_gets(item)
    return found


def resolve(document: dict, path: str):
    node = document
    for key in path.split("."):
        assert isinstance(node, dict) and key in node, f"{key!r} of {path} is missing"
        node = node[key]
    return node


def test_every_jsonget_path_resolves_in_what_the_steps_write(standard, monkeymodule,
                                                             executions):
    definition, _ = standard
    tuned, _ = build(monkeymodule, tuning=True)
    gets = json_gets(definition) + json_gets(tuned)
    paths = {(g["PropertyFile"]["Get"].rsplit(".", 1)[1], g["Path"]) for g in gets}
    assert paths == {("EvaluationReport", "quality_gate.value"),
                     ("EvaluationReport", "quality_gate.task"),
                     ("Problem", "tuning_objective.MetricName"),
                     ("Problem", "tuning_objective.Type")}
    for problem, files in executions.items():
        for file, path in paths:
            resolve(files[file], path)
        gate = resolve(files["EvaluationReport"], "quality_gate.value")
        assert isinstance(gate, float) and 0 < gate <= 1, (problem, gate)
        # The bundled data's targets are all learnable: every one clears the
        # default threshold, whatever its units.
        assert gate >= pl.DEFAULT_THRESHOLD, (problem, gate)


def test_the_values_follow_the_problem_of_each_execution(executions):
    expected = {"binary": ("CLASSIFICATION", "binary_classification_metrics",
                           "validation:accuracy", "Maximize"),
                "multiclass": ("CLASSIFICATION", "multiclass_classification_metrics",
                               "validation:accuracy", "Maximize"),
                "regression": ("REGRESSION", "regression_metrics", "validation:rmse",
                               "Minimize")}
    for problem, (task, section, metric, direction) in expected.items():
        files = executions[problem]
        assert resolve(files["EvaluationReport"], "quality_gate.task") == task
        assert section in files["EvaluationReport"]
        assert resolve(files["Problem"], "tuning_objective.MetricName") == metric
        assert resolve(files["Problem"], "tuning_objective.Type") == direction
        # The objective is a metric train printed, last, for that task.
        printed = re.findall(r"^((?:train|validation):\w+)=", files["train output"],
                             re.MULTILINE)
        assert printed[-1] == metric, problem


def test_metric_regexes_match_what_train_prints_for_every_task(standard, executions):
    definition, _ = standard
    definitions = steps_by_name(definition)["Train"]["Arguments"]["AlgorithmSpecification"][
        "MetricDefinitions"]
    # CreateTrainingJob takes at most 40 MetricDefinitions.
    assert 0 < len(definitions) <= 40
    matched = set()
    for problem, files in executions.items():
        output, metrics = files["train output"], files["metrics"]
        for entry in definitions:
            found = re.findall(entry["Regex"], output)
            if not found:
                continue
            matched.add(entry["Name"])
            split, _, name = entry["Name"].partition(":")
            # SageMaker takes the last value printed.
            assert float(found[-1]) == pytest.approx(metrics[split][name], abs=1e-6)
        printed = set(re.findall(r"^((?:train|validation):\w+)=", output, re.MULTILINE))
        assert printed <= {entry["Name"] for entry in definitions}, problem
    assert matched == {entry["Name"] for entry in definitions}


# -- variants ----------------------------------------------------------------------------------
def test_tuning_variant(monkeymodule):
    definition, calls = build(monkeymodule, tuning=True, max_tuning_jobs=4)
    assert calls == []
    steps = steps_by_name(definition)
    assert "Train" not in steps
    tune = steps["Tune"]
    assert tune["Type"] == "Tuning"
    config = tune["Arguments"]["HyperParameterTuningJobConfig"]
    assert config["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 4
    ranges = config["ParameterRanges"]
    names = {r["Name"] for kind in ranges.values() for r in kind}
    assert names == set(pl.TUNING_RANGES)
    # The ranges are parameters of the estimators the trainer builds by default.
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    assert names <= set(HistGradientBoostingClassifier().get_params())
    assert names <= set(HistGradientBoostingRegressor().get_params())
    training = tune["Arguments"]["TrainingJobDefinition"]
    assert training["AlgorithmSpecification"]["TrainingImage"] == IMAGE
    # The objective is read at run time from what prepare found the task to be.
    objective = config["HyperParameterTuningJobObjective"]
    problem_file = {"Get": "Steps.Prepare.PropertyFiles.Problem"}
    assert objective == {
        "Type": {"Std:JsonGet": {"PropertyFile": problem_file, "Path": "tuning_objective.Type"}},
        "MetricName": {"Std:JsonGet": {"PropertyFile": problem_file,
                                       "Path": "tuning_objective.MetricName"}}}
    objective_names = {m["Name"] for m in training["AlgorithmSpecification"]["MetricDefinitions"]}
    assert {"validation:accuracy", "validation:rmse"} <= objective_names
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


def test_one_definition_whatever_the_default_target(monkeymodule):
    """Nothing in the definition depends on the problem but the Target default."""
    churn, _ = build(monkeymodule)
    price, _ = build(monkeymodule, target="monthly_charges")
    churn_params = {p["Name"]: p for p in churn.pop("Parameters")}
    price_params = {p["Name"]: p for p in price.pop("Parameters")}
    assert churn == price
    assert churn_params.pop("Target")["DefaultValue"] == "churn"
    assert price_params.pop("Target")["DefaultValue"] == "monthly_charges"
    assert churn_params == price_params


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
    from scripts.serve_process import free_port

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


# -- one line when AWS (or the emulator) is out of reach -------------------------------------
def offline_env(tmp_path, **extra) -> dict:
    """No credentials anywhere boto3 looks (instance metadata included); no telemetry."""
    import os

    config = tmp_path / "sdk.yaml"
    config.write_text("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                      "      TelemetryOptOut: true\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update({"AWS_CONFIG_FILE": str(tmp_path / "none"),
                "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
                "AWS_EC2_METADATA_DISABLED": "true", "AWS_MAX_ATTEMPTS": "1",
                "SAGEMAKER_USER_CONFIG_OVERRIDE": str(config), **extra})
    return env


def closed_port() -> str:
    from scripts.serve_process import free_port

    return f"http://127.0.0.1:{free_port()}"


AWS_ARGS = ["--role", ROLE, "--bucket", "b", "--region", "eu-west-1", "--image-uri", IMAGE]


@pytest.mark.parametrize("command, extra_env, expected", [
    (["upsert", *AWS_ARGS], {}, ["pipeline.py upsert: no AWS credentials found",
                                 "AWS_ACCESS_KEY_ID"]),
    (["start", *AWS_ARGS], {}, ["pipeline.py start: no AWS credentials found", "AWS_PROFILE"]),
    (["local", "--image-uri", "img", "--bucket", "b", "--s3-endpoint-url", "http://x:1"], {},
     ["pipeline.py local: no AWS credentials found", "any values will do for moto_server"]),
    (["start", *AWS_ARGS], {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y",
                            "AWS_ENDPOINT_URL": "CLOSED"},
     ["pipeline.py start: cannot reach http://127.0.0.1:", "check --region"]),
    (["local", "--image-uri", "img", "--bucket", "b", "--s3-endpoint-url", "CLOSED",
      "--data", str(DATA)], {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"},
     ["pipeline.py local: cannot reach http://127.0.0.1:", "moto_server -H 127.0.0.1"]),
])
def test_no_account_or_endpoint_fails_in_one_line(tmp_path, command, extra_env, expected):
    port = closed_port()
    command = [port if a == "CLOSED" else a for a in command]
    extra_env = {k: (port if v == "CLOSED" else v) for k, v in extra_env.items()}
    result = subprocess.run([sys.executable, str(ROOT / "pipeline.py"), *command],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path,
                            env=offline_env(tmp_path, **extra_env))
    assert result.returncode == 1, result.stderr[-3000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr[-3000:]
    for text in expected:
        assert text in lines[0], lines[0]
    assert result.stdout == ""


def test_without_the_sdk_pipeline_py_says_how_to_install_it(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "sagemaker" else real(name, *a))
    with pytest.raises(SystemExit, match=r"make pipeline-tools"):
        pl.main(["definition"])
