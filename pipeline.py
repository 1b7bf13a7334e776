#!/usr/bin/env python3
"""The model-building pipeline of this image, for SageMaker Pipelines (Python SDK v2).

(The SDK v3 form of these steps, with sagemaker.mlops: docs/sdk-v3.md; a v3 processing
step run in a local pipeline, which the tests run: examples/sdk_v3_local.py.)

    Prepare (processing prepare) -> Train (or Tune) -> Evaluate (processing evaluate)
      -> CheckQuality: evaluation.json's quality_gate.value against MetricThreshold
           passes: CreateModel -> RegisterModel (with evaluation.json as ModelMetrics)
                   -> ScoreTestSet (batch transform of the test features)
           fails:  QualityTooLow (a FailStep)

Every step runs this image.  One definition serves binary, multiclass and
regression targets: the problem is found from the data at each execution
(prepare writes problem.json, evaluate reads it from the model), and the
gate value is the share of the best constant prediction's error the model
removes, which means the same for every problem.  Commands (after
``make pipeline-tools``)::

    .venv/bin/python pipeline.py definition [--tuning]   the definition JSON; offline, no AWS
    .venv/bin/python pipeline.py upsert --role ARN --bucket B --region R --image-uri URI
    .venv/bin/python pipeline.py start  --role ARN --bucket B --region R --image-uri URI
                        [--input-data s3://...] [--parameter Target=label ...] [--wait]
                        (--parameter IgnoreColumns=patient_id,note
                         --parameter 'Hyperparameters={"max_depth": 6}')
    .venv/bin/python pipeline.py local  --image-uri IMAGE --bucket B [--s3-endpoint-url URL]
                        [--data data/churn.csv] [--parameter Name=Value ...]

``local`` runs the pipeline on this machine with ``LocalPipelineSession``:
docker compose runs each job, S3 (or an S3 emulator given by
``--s3-endpoint-url``) holds the data.  Local mode runs neither tuning nor
model registration, so its pipeline has neither.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

# The v2 SDK prints a deprecation banner on import; v2 is the line this
# pipeline is written for (v3 dropped Estimator and Transformer).
os.environ.setdefault("SAGEMAKER_SUPPRESS_V2_WARNING", "1")

ROOT = Path(__file__).resolve().parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sklearn_byoc.common.metrics import (CLASSIFICATION_METRICS, REGRESSION_METRICS,  # noqa: E402
                                          metric_regex)

log = logging.getLogger("pipeline")

# -- what the image reads and writes ------------------------------------------------------
PROCESSING = "/opt/ml/processing"
# What `processing prepare` writes, one folder each (sklearn_byoc/processing/prepare.py).
SPLITS = ("train", "validation", "test", "test_features")
PREPARE_OUTPUTS = SPLITS + ("sample_payload", "problem")
SAMPLE_PAYLOAD_FILE = "sample_payload.tar.gz"
PROBLEM_FILE = "problem.json"
# Where the tuning objective for the data's task sits in problem.json.
OBJECTIVE_NAME_PATH = "tuning_objective.MetricName"
OBJECTIVE_TYPE_PATH = "tuning_objective.Type"
REPORT_FILE = "evaluation.json"
# evaluation.json's problem-independent gate value and the model package Task
# of the problem evaluate found (sklearn_byoc/processing/evaluate.py).
GATE_JSON_PATH = "quality_gate.value"
TASK_JSON_PATH = "quality_gate.task"
# The model must remove at least this share of the error of the best constant
# prediction (the majority class, or the mean): the same bar for every problem.
DEFAULT_THRESHOLD = 0.1
# The request formats of `serve` (sklearn_byoc/serve/formats/), declared on the model package (NPY is what
# the SDK's SKLearnPredictor sends).
CONTENT_TYPES = ["text/csv", "application/json", "application/jsonlines", "application/x-npy"]
# Inference Recommender's names: the model package's Domain and its container's Framework.
DOMAIN = "MACHINE_LEARNING"
FRAMEWORK = "SAGEMAKER-SCIKIT-LEARN"
# Hyperparameter ranges of the built-in trainer's default model,
# HistGradientBoosting (sklearn_byoc/train/estimators.py passes them to the estimator).
TUNING_RANGES = {
    "learning_rate": ("continuous", 0.01, 0.3, "Logarithmic"),
    "max_iter": ("integer", 50, 400, "Auto"),
    "max_leaf_nodes": ("integer", 8, 64, "Auto"),
}
# An account number reserved for documentation: the offline definition names
# no real account.
PLACEHOLDER_ACCOUNT = "111122223333"
PLACEHOLDER_ROLE = f"arn:aws:iam::{PLACEHOLDER_ACCOUNT}:role/SageMakerExecutionRole"
PLACEHOLDER_IMAGE = f"{PLACEHOLDER_ACCOUNT}.dkr.ecr.us-east-1.amazonaws.com/sagemaker-sklearn-byoc:latest"
# SDK defaults config that turns off the SDK's usage reporting, which sends
# an HTTP request per job call: a definition built offline and a local run
# must not reach the network.
NO_TELEMETRY = {"SchemaVersion": "1.0",
                "SageMaker": {"PythonSDK": {"Modules": {"TelemetryOptOut": True}}}}


def metric_definitions() -> list[dict[str, str]]:
    """One MetricDefinition per line `train` prints (``validation:accuracy=0.72;``),
    for classification and regression alike: a job reports the ones its task prints."""
    names = CLASSIFICATION_METRICS + tuple(n for n in REGRESSION_METRICS
                                           if n not in CLASSIFICATION_METRICS)
    return [{"Name": f"{split}:{name}", "Regex": metric_regex(split, name)}
            for split in ("train", "validation") for name in names]


def framework_version() -> str:
    """The scikit-learn version the image pins (requirements.in)."""
    for line in (ROOT / "requirements.in").read_text().splitlines():
        name, sep, version = line.split("#")[0].strip().partition("==")
        if sep and name.lower() == "scikit-learn":
            return version.strip()
    raise RuntimeError("requirements.in pins no scikit-learn version")


@dataclass(frozen=True)
class Settings:
    """What shapes the pipeline's definition (parameters can change at each run)."""

    image_uri: str = PLACEHOLDER_IMAGE
    role: str = PLACEHOLDER_ROLE
    bucket: str = "sagemaker-sklearn-byoc"
    prefix: str = "sklearn-byoc"
    name: str = "sklearn-byoc"
    target: str = "churn"
    model: str = "gradient_boosting"
    model_package_group: str = "sklearn-byoc"
    tuning: bool = False
    max_tuning_jobs: int = 6
    max_parallel_tuning_jobs: int = 2
    local: bool = False  # LocalPipelineSession: no tuning, no registration
    parameter_defaults: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.local and self.tuning:
            raise ValueError("local mode runs no tuning jobs; build the local pipeline "
                             "without tuning")

    @property
    def s3_base(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


# -- sessions -----------------------------------------------------------------------------
def offline_session(region: str = "us-east-1", bucket: str = Settings.bucket):
    """A PipelineSession that never calls AWS: enough to build a definition."""
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    boto = boto3.Session(region_name=region, aws_access_key_id="offline",
                         aws_secret_access_key="offline")
    return PipelineSession(boto_session=boto, default_bucket=bucket,
                           sagemaker_config=NO_TELEMETRY)


def aws_session(region: str, bucket: str):
    import boto3
    from sagemaker.workflow.pipeline_context import PipelineSession

    return PipelineSession(boto_session=boto3.Session(region_name=region),
                           default_bucket=bucket)


def local_session(region: str, bucket: str, s3_endpoint_url: str | None = None,
                  serving_port: int | None = None, container_root: str | None = None):
    """A LocalPipelineSession: jobs run in docker compose, data in S3 or an emulator."""
    import boto3
    from sagemaker.workflow.pipeline_context import LocalPipelineSession

    session = LocalPipelineSession(boto_session=boto3.Session(region_name=region),
                                   default_bucket=bucket, s3_endpoint_url=s3_endpoint_url)
    session.sagemaker_config = NO_TELEMETRY
    local = {"local_code": True}
    if serving_port:
        local["serving_port"] = serving_port  # where the SDK expects `serve` on the host
    if container_root:
        local["container_root"] = container_root
    session.config = {"local": local}
    return session


# -- the pipeline ---------------------------------------------------------------------------
@dataclass
class Parameters:
    input_data: object
    processing_instance_type: object
    processing_instance_count: object
    training_instance_type: object
    transform_instance_type: object
    transform_instance_count: object
    threshold: object
    approval_status: object
    target: object
    model: object
    ignore_columns: object
    hyperparameters: object

    def all(self) -> list:
        return [self.input_data, self.processing_instance_type, self.processing_instance_count,
                self.training_instance_type, self.transform_instance_type,
                self.transform_instance_count, self.threshold, self.approval_status,
                self.target, self.model, self.ignore_columns, self.hyperparameters]


def make_parameters(settings: Settings) -> Parameters:
    from sagemaker.workflow.parameters import (ParameterFloat, ParameterInteger,
                                               ParameterString)

    instance = "local" if settings.local else "ml.m5.xlarge"
    defaults = {
        "InputData": f"{settings.s3_base}/input/",
        "ProcessingInstanceType": instance,
        "ProcessingInstanceCount": 1,
        "TrainingInstanceType": instance,
        "TransformInstanceType": instance,
        "TransformInstanceCount": 1,
        "MetricThreshold": DEFAULT_THRESHOLD,
        "ModelApprovalStatus": "PendingManualApproval",
        "Target": settings.target,
        "Model": settings.model,
        "IgnoreColumns": "",
        "Hyperparameters": "{}",
        **settings.parameter_defaults,
    }
    return Parameters(
        # Raw CSV under an S3 prefix; with several processing instances each
        # gets a share of the objects (ShardedByS3Key).
        input_data=ParameterString("InputData", defaults["InputData"]),
        processing_instance_type=ParameterString("ProcessingInstanceType",
                                                 defaults["ProcessingInstanceType"]),
        processing_instance_count=ParameterInteger("ProcessingInstanceCount",
                                                   int(defaults["ProcessingInstanceCount"])),
        training_instance_type=ParameterString("TrainingInstanceType",
                                               defaults["TrainingInstanceType"]),
        transform_instance_type=ParameterString("TransformInstanceType",
                                                defaults["TransformInstanceType"]),
        transform_instance_count=ParameterInteger("TransformInstanceCount",
                                                  int(defaults["TransformInstanceCount"])),
        threshold=ParameterFloat("MetricThreshold", float(defaults["MetricThreshold"])),
        approval_status=ParameterString("ModelApprovalStatus", defaults["ModelApprovalStatus"],
                                        enum_values=["PendingManualApproval", "Approved",
                                                     "Rejected"]),
        target=ParameterString("Target", defaults["Target"]),
        model=ParameterString("Model", defaults["Model"]),
        # Columns left out of every split, so out of the model: "patient_id,note".
        ignore_columns=ParameterString("IgnoreColumns", defaults["IgnoreColumns"]),
        # Any other hyperparameters of the trainer, as one JSON object: train reads the
        # key "hyperparameters" as if each were given on its own.
        hyperparameters=ParameterString("Hyperparameters", defaults["Hyperparameters"]),
    )


def build_pipeline(settings: Settings, session):
    """The Pipeline object; nothing is sent anywhere until upsert() or start()."""
    from sagemaker.estimator import Estimator
    from sagemaker.inputs import TrainingInput
    from sagemaker.model import Model
    from sagemaker.model_metrics import MetricsSource, ModelMetrics
    from sagemaker.processing import ProcessingInput, ProcessingOutput, Processor
    from sagemaker.transformer import Transformer
    from sagemaker.workflow.condition_step import ConditionStep
    from sagemaker.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.workflow.execution_variables import ExecutionVariables
    from sagemaker.workflow.fail_step import FailStep
    from sagemaker.workflow.functions import Join, JsonGet
    from sagemaker.workflow.model_step import ModelStep
    from sagemaker.workflow.pipeline import Pipeline
    from sagemaker.workflow.properties import PropertyFile
    from sagemaker.workflow.steps import ProcessingStep, TrainingStep, TransformStep

    p = make_parameters(settings)
    # Each execution writes under its own prefix, so runs never mix outputs.
    run_prefix = Join(on="/", values=[settings.s3_base, "runs",
                                      ExecutionVariables.PIPELINE_EXECUTION_ID])

    def under(*parts: str):
        return Join(on="/", values=[run_prefix, *parts])

    # 1. Prepare: a processing job passes no command, so the entrypoint names
    #    the image's `processing` shim and the mode; options are arguments.
    prepare = Processor(
        image_uri=settings.image_uri, role=settings.role,
        entrypoint=["processing", "prepare"],
        instance_type=p.processing_instance_type, instance_count=p.processing_instance_count,
        base_job_name=f"{settings.name}-prepare", sagemaker_session=session,
    )
    # What the data turned out to be: the tuning objective follows its task.
    problem = PropertyFile(name="Problem", output_name="problem", path=PROBLEM_FILE)
    step_prepare = ProcessingStep(
        name="Prepare",
        step_args=prepare.run(
            # Several instances each read a share of the objects; local mode
            # refuses ShardedByS3Key outright, and runs one instance anyway.
            inputs=[ProcessingInput(source=p.input_data, destination=f"{PROCESSING}/input",
                                    input_name="raw",
                                    s3_data_distribution_type="FullyReplicated" if settings.local
                                    else "ShardedByS3Key")],
            # A trailing slash: an S3Prefix input reads every key that starts
            # with its URI, so .../test alone would also pull in .../test_features.
            outputs=[ProcessingOutput(output_name=name, source=f"{PROCESSING}/output/{name}",
                                      destination=under("prepare", name, ""))
                     for name in PREPARE_OUTPUTS],
            arguments=["--target", p.target, "--ignore-columns", p.ignore_columns,
                       "--output-dir", f"{PROCESSING}/output"],
        ),
        property_files=[problem],
    )

    def split_uri(name: str):
        return step_prepare.properties.ProcessingOutputConfig.Outputs[name].S3Output.S3Uri

    # 2. Train (or tune): `train` prints `validation:accuracy=0.72;` lines,
    #    which these metric definitions turn into job metrics.
    estimator = Estimator(
        image_uri=settings.image_uri, role=settings.role,
        instance_type=p.training_instance_type, instance_count=1,
        output_path=under("training"),
        hyperparameters={"model": p.model, "target": p.target,
                         "hyperparameters": p.hyperparameters},
        metric_definitions=metric_definitions(),
        base_job_name=f"{settings.name}-train",
        # The image has no profiler or debugger hooks.
        disable_profiler=True, debugger_hook_config=False,
        sagemaker_session=session,
    )
    channels = {name: TrainingInput(split_uri(name), content_type="text/csv")
                for name in ("train", "validation")}
    if settings.tuning:
        # The objective train reports for the data's task, as prepare found it.
        objective = {field: JsonGet(step_name=step_prepare.name, property_file=problem,
                                    json_path=path)
                     for field, path in (("name", OBJECTIVE_NAME_PATH),
                                         ("type", OBJECTIVE_TYPE_PATH))}
        step_fit, model_data = tuning_step(settings, estimator, channels, objective, under)
    else:
        step_fit = TrainingStep(name="Train", step_args=estimator.fit(channels))
        model_data = step_fit.properties.ModelArtifacts.S3ModelArtifacts

    # 3. Evaluate the model on the test split; evaluation.json is the report.
    evaluator = Processor(
        image_uri=settings.image_uri, role=settings.role,
        entrypoint=["processing", "evaluate"],
        instance_type=p.processing_instance_type, instance_count=1,
        base_job_name=f"{settings.name}-evaluate", sagemaker_session=session,
    )
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path=REPORT_FILE)
    step_evaluate = ProcessingStep(
        name="Evaluate",
        step_args=evaluator.run(
            inputs=[ProcessingInput(source=model_data, destination=f"{PROCESSING}/model",
                                    input_name="model"),
                    ProcessingInput(source=split_uri("test"), destination=f"{PROCESSING}/test",
                                    input_name="test")],
            outputs=[ProcessingOutput(output_name="evaluation",
                                      source=f"{PROCESSING}/evaluation",
                                      destination=under("evaluation"))],
            arguments=["--model-dir", f"{PROCESSING}/model", "--test-dir", f"{PROCESSING}/test",
                       "--output-dir", f"{PROCESSING}/evaluation"],
        ),
        property_files=[report],
    )
    evaluation_uri = step_evaluate.properties.ProcessingOutputConfig.Outputs[
        "evaluation"].S3Output.S3Uri

    # 4. The model, its registration and the batch scoring of the test split.
    model = Model(image_uri=settings.image_uri, model_data=model_data, role=settings.role,
                  name=None, sagemaker_session=session)
    step_create = ModelStep(name="CreateModel",
                            step_args=model.create(instance_type=p.transform_instance_type))
    if_steps = [step_create]
    if not settings.local:
        metrics = ModelMetrics(model_statistics=MetricsSource(
            s3_uri=Join(on="/", values=[evaluation_uri, REPORT_FILE]),
            content_type="application/json"))
        # What Inference Recommender needs of a model package: sample
        # requests (one tar.gz), Domain, Task, Framework and its version.
        step_register = ModelStep(name="RegisterModel", step_args=model.register(
            content_types=CONTENT_TYPES, response_types=CONTENT_TYPES,
            inference_instances=["ml.m5.large", "ml.m5.xlarge", "ml.c5.xlarge"],
            transform_instances=["ml.m5.xlarge", "ml.c5.xlarge"],
            model_package_group_name=settings.model_package_group,
            approval_status=p.approval_status, model_metrics=metrics,
            sample_payload_url=under("prepare", "sample_payload", SAMPLE_PAYLOAD_FILE),
            domain=DOMAIN,
            task=JsonGet(step_name=step_evaluate.name, property_file=report,
                         json_path=TASK_JSON_PATH),
            framework=FRAMEWORK, framework_version=framework_version(),
        ))
        if_steps.append(step_register)

    # Batch transform: the headerless test features, many lines per request,
    # one prediction line per input line (the layout JoinSource=Input needs).
    transformer = Transformer(
        model_name=step_create.properties.ModelName,
        instance_type=p.transform_instance_type, instance_count=p.transform_instance_count,
        strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=under("transform"), base_transform_job_name=f"{settings.name}-transform",
        sagemaker_session=session,
    )
    step_transform = TransformStep(name="ScoreTestSet", step_args=transformer.transform(
        data=split_uri("test_features"), content_type="text/csv", split_type="Line"))
    if_steps.append(step_transform)

    # 5. The quality gate: one value, larger is better, whatever the problem.
    value = JsonGet(step_name=step_evaluate.name, property_file=report,
                    json_path=GATE_JSON_PATH)
    step_fail = FailStep(name="QualityTooLow", error_message=Join(on=" ", values=[
        "the model removes", value, "of the error of the best constant prediction on the test "
        "rows, below MetricThreshold", p.threshold, f"(see {REPORT_FILE} under", evaluation_uri,
        ")"]))
    step_check = ConditionStep(
        name="CheckQuality",
        conditions=[ConditionGreaterThanOrEqualTo(left=value, right=p.threshold)],
        if_steps=if_steps, else_steps=[step_fail])

    return Pipeline(name=settings.name, parameters=p.all(),
                    steps=[step_prepare, step_fit, step_evaluate, step_check],
                    sagemaker_session=session)


def tuning_step(settings: Settings, estimator, channels, objective: dict, under):
    """A TuningStep over the built-in trainer's hyperparameters; returns (step, best model).

    ``objective``: the metric's name and direction ("Maximize"/"Minimize"),
    values or pipeline variables resolved at run time."""
    from sagemaker.parameter import ContinuousParameter, IntegerParameter
    from sagemaker.tuner import HyperparameterTuner
    from sagemaker.workflow.functions import Join
    from sagemaker.workflow.steps import TuningStep

    ranges = {}
    for name, (kind, low, high, scaling) in TUNING_RANGES.items():
        cls = ContinuousParameter if kind == "continuous" else IntegerParameter
        ranges[name] = cls(low, high, scaling_type=scaling)
    tuner = HyperparameterTuner(
        estimator, objective_metric_name=objective["name"], hyperparameter_ranges=ranges,
        metric_definitions=estimator.metric_definitions, objective_type=objective["type"],
        max_jobs=settings.max_tuning_jobs, max_parallel_jobs=settings.max_parallel_tuning_jobs,
        base_tuning_job_name=f"{settings.name}-tune",
    )
    step = TuningStep(name="Tune", step_args=tuner.fit(channels))
    # Each training job of a tuning job writes
    # <output_path>/<training job name>/output/model.tar.gz; index 0 is the best.
    best = Join(on="/", values=[
        under("training"), step.properties.TrainingJobSummaries[0].TrainingJobName,
        "output/model.tar.gz"])
    return step, best


def definition(settings: Settings, session=None) -> dict:
    session = session or offline_session(bucket=settings.bucket)
    return json.loads(build_pipeline(settings, session).definition())


# -- command line -------------------------------------------------------------------------
def parse_parameters(pairs: list[str]) -> dict[str, str]:
    values = {}
    for pair in pairs or []:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise SystemExit(f"--parameter wants Name=Value, got {pair!r}")
        values[name] = value
    return values


def typed_parameters(pipeline, values: dict) -> dict:
    """Command-line strings as the parameters' types (local mode checks them)."""
    from sagemaker.workflow.parameters import ParameterTypeEnum

    declared = {p.name: p for p in pipeline.parameters}
    typed = {}
    for name, value in values.items():
        if name not in declared:
            raise SystemExit(f"unknown pipeline parameter {name!r}; the parameters are "
                             + ", ".join(declared))
        kind = declared[name].parameter_type
        try:
            if kind == ParameterTypeEnum.INTEGER:
                value = int(value)
            elif kind == ParameterTypeEnum.FLOAT:
                value = float(value)
            elif kind == ParameterTypeEnum.BOOLEAN:
                value = str(value).lower() in ("1", "true", "yes")
        except ValueError:
            raise SystemExit(f"pipeline parameter {name} wants a {kind.value}, "
                             f"got {value!r}") from None
        typed[name] = value
    return typed


def build_cli() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pipeline.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub, aws: bool):
        sub.add_argument("--image-uri", required=aws, default=PLACEHOLDER_IMAGE,
                         help="the image every step runs (ECR URI on AWS)")
        sub.add_argument("--bucket", required=aws, default=Settings.bucket,
                         help="S3 bucket for the pipeline's data and outputs")
        sub.add_argument("--prefix", default=Settings.prefix, help="S3 key prefix")
        sub.add_argument("--name", default=Settings.name, help="pipeline name")
        sub.add_argument("--target", default=Settings.target,
                         help="default of the Target parameter (default: churn)")
        sub.add_argument("--model-package-group", default=Settings.model_package_group)

    sub = commands.add_parser("definition", help="print the definition JSON (offline)")
    common(sub, aws=False)
    sub.add_argument("--role", default=PLACEHOLDER_ROLE)
    sub.add_argument("--region", default="us-east-1")
    sub.add_argument("--tuning", action="store_true", help="tune instead of one training job")
    sub.add_argument("--local", action="store_true",
                     help="the variant `local` runs (no tuning, no registration)")

    for name, text in (("upsert", "create or update the pipeline on SageMaker"),
                       ("start", "upsert, then start an execution")):
        sub = commands.add_parser(name, help=text)
        common(sub, aws=True)
        sub.add_argument("--role", required=True, help="SageMaker execution role ARN")
        sub.add_argument("--region", required=True)
        sub.add_argument("--tuning", action="store_true")
        if name == "start":
            sub.add_argument("--input-data", help="S3 prefix of the raw CSV (InputData)")
            sub.add_argument("--parameter", action="append", metavar="NAME=VALUE",
                             help="a pipeline parameter for this execution (repeatable)")
            sub.add_argument("--wait", action="store_true",
                             help="wait for the execution to end")

    sub = commands.add_parser("local", help="run the pipeline here with LocalPipelineSession")
    common(sub, aws=False)
    sub.set_defaults(image_uri=None)
    sub.add_argument("--role", default=PLACEHOLDER_ROLE,
                     help="any role ARN (local mode does not assume it)")
    sub.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", "us-east-1"))
    sub.add_argument("--s3-endpoint-url", default=None,
                     help="an S3 emulator, e.g. http://127.0.0.1:5000 (moto_server)")
    sub.add_argument("--data", type=Path, default=None,
                     help="a local CSV file to upload as the input data first")
    sub.add_argument("--input-data", help="S3 prefix of the raw CSV (InputData)")
    sub.add_argument("--parameter", action="append", metavar="NAME=VALUE")
    sub.add_argument("--serving-port", type=int, default=None,
                     help="host port where local mode expects `serve` (default 8080)")
    return parser


def settings_from(args, *, local: bool = False) -> Settings:
    return Settings(image_uri=args.image_uri, role=args.role, bucket=args.bucket,
                    prefix=args.prefix, name=args.name, target=args.target,
                    model_package_group=args.model_package_group,
                    tuning=getattr(args, "tuning", False) and not local, local=local)


def list_steps(execution) -> list[dict]:
    """The execution's steps in the order they ran.

    SageMaker lists them newest first; local mode lists them in pipeline
    order, wrapped in a dict.
    """
    steps = execution.list_steps()
    if isinstance(steps, dict):
        return steps["PipelineExecutionSteps"]
    return list(reversed(steps))


def describe_steps(execution) -> list[dict]:
    return [{"name": s.get("StepName"), "status": s.get("StepStatus"),
             "failure": s.get("FailureReason")} for s in list_steps(execution)]


def route_sdk_logs(level: int = logging.WARNING) -> None:
    """SDK messages to stderr, so stdout carries only what this script prints.

    The SDK's config logger writes to stdout unless the "sagemaker" logger
    already has a handler, and logs every config lookup at INFO.
    """
    sdk = logging.getLogger("sagemaker")
    if not sdk.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        sdk.addHandler(handler)
        sdk.propagate = False
    sdk.setLevel(level)
    logging.getLogger("sagemaker.config").setLevel(logging.WARNING)
    # Announces usage reporting on every job call, even when it is turned off,
    # and logs a traceback for each report it cannot send (no network).
    logging.getLogger("sagemaker.telemetry").setLevel(logging.CRITICAL)
    for name in ("botocore", "boto3", "urllib3"):
        logging.getLogger(name).setLevel(logging.WARNING)
    # "Popping out 'TrainingJobName' ...": job names are set at execution time.
    for name in ("sagemaker.workflow.utilities", "sagemaker.workflow._utils"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # In a PipelineSession, run()/fit()/transform() return step arguments.
    warnings.filterwarnings("ignore", message="Running within a PipelineSession")


# -- what a missing account or endpoint looks like, in one line ----------------------------
CREDENTIALS_HINT = {
    "aws": "set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (`aws configure` "
           "writes them), or run where an IAM role provides them",
    "local": "local mode reaches S3 through boto3 even when the bucket is an emulator: set "
             "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (any values will do for "
             "moto_server), or an AWS_PROFILE for real S3",
}
ENDPOINT_HINT = {
    "aws": "check --region and the network (AWS_ENDPOINT_URL, if set, must answer)",
    "local": "start an S3 emulator (.venv/bin/moto_server -H 127.0.0.1 -p 5000 &) and pass "
             "--s3-endpoint-url http://127.0.0.1:5000, or drop --s3-endpoint-url to use S3",
}


class AwsUnavailable(SystemExit):
    """A command that needs AWS (or an emulator) cannot reach it; the message says why."""


def require_sdk() -> None:
    import importlib.util

    # Looked up, not imported: importing it before route_sdk_logs() would
    # let its config logger write to stdout.
    if importlib.util.find_spec("sagemaker") is None:
        raise SystemExit("pipeline.py needs the SageMaker Python SDK v2, which is not "
                         f"installed for {sys.executable}: run `make pipeline-tools`, then "
                         ".venv/bin/python pipeline.py ...")


def require_credentials(command: str, region: str, kind: str) -> None:
    """Fail at once, in one line, when boto3 finds no credentials at all."""
    import boto3

    if boto3.Session(region_name=region).get_credentials() is None:
        raise AwsUnavailable(f"pipeline.py {command}: no AWS credentials found; "
                             + CREDENTIALS_HINT[kind])


def explain_aws_error(exc: Exception, command: str, kind: str) -> str | None:
    """One line for the errors a missing account or endpoint causes; None for others."""
    from botocore import exceptions as bx

    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return f"pipeline.py {command}: {exc}; {CREDENTIALS_HINT[kind]}"
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        url = exc.kwargs.get("endpoint_url", "the endpoint")
        return f"pipeline.py {command}: cannot reach {url}; {ENDPOINT_HINT[kind]}"
    if isinstance(exc, bx.NoRegionError):
        return f"pipeline.py {command}: no AWS region; pass --region or set AWS_DEFAULT_REGION"
    if isinstance(exc, bx.ClientError):
        error = exc.response.get("Error", {})
        code = error.get("Code", "error")
        if code in ("InvalidClientTokenId", "UnrecognizedClientException", "ExpiredToken",
                    "ExpiredTokenException", "InvalidAccessKeyId", "SignatureDoesNotMatch",
                    "AccessDenied", "AccessDeniedException"):
            return (f"pipeline.py {command}: AWS refused {exc.operation_name} ({code}: "
                    f"{error.get('Message', '')}); {CREDENTIALS_HINT[kind]}, with rights "
                    "to SageMaker and the bucket")
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_cli().parse_args(argv)
    require_sdk()
    kind = "local" if args.command == "local" else "aws"
    try:
        return run_command(args)
    except SystemExit:
        raise
    except Exception as exc:
        line = explain_aws_error(exc, args.command, kind)
        if line is None:
            raise
        raise AwsUnavailable(line) from None


def run_command(args) -> int:
    route_sdk_logs(logging.INFO if args.command == "local" else logging.WARNING)
    if args.command == "definition":
        settings = settings_from(args, local=args.local)
        session = offline_session(args.region, args.bucket)
        print(json.dumps(definition(settings, session), indent=2))
        return 0

    if args.command in ("upsert", "start"):
        require_credentials(args.command, args.region, "aws")
        settings = settings_from(args)
        session = aws_session(args.region, args.bucket)
        pipeline = build_pipeline(settings, session)
        answer = pipeline.upsert(role_arn=args.role)
        print(f"pipeline {settings.name}: {answer['PipelineArn']}")
        if args.command == "upsert":
            return 0
        parameters = parse_parameters(args.parameter)
        if args.input_data:
            parameters["InputData"] = args.input_data
        execution = pipeline.start(parameters=typed_parameters(pipeline, parameters) or None)
        print(f"execution: {execution.arn}")
        if args.wait:
            execution.wait(delay=30, max_attempts=240)
            for step in describe_steps(execution):
                print(f"  {step['name']:24s} {step['status']}"
                      + (f"  {step['failure']}" if step["failure"] else ""))
            return 0 if execution.describe()["PipelineExecutionStatus"] == "Succeeded" else 1
        return 0

    # local
    if not args.image_uri:
        raise SystemExit("local needs --image-uri: a tag of this image on this machine")
    require_credentials("local", args.region, "local")
    settings = settings_from(args, local=True)
    session = local_session(args.region, args.bucket, args.s3_endpoint_url, args.serving_port)
    return run_local(settings, session, data=args.data, input_data=args.input_data,
                     parameters=parse_parameters(args.parameter))


def run_local(settings: Settings, session, *, data: Path | None = None,
              input_data: str | None = None, parameters: dict | None = None) -> int:
    """Run the local variant once; prints each step's outcome; 0 when it succeeded."""
    parameters = dict(parameters or {})
    if data is not None:
        bucket = session.default_bucket()  # created when missing, as the SDK does
        key_prefix = f"{settings.prefix}/input"
        uri = session.upload_data(str(data), bucket=bucket, key_prefix=key_prefix)
        parameters.setdefault("InputData", uri.rsplit("/", 1)[0] + "/")
    if input_data:
        parameters["InputData"] = input_data
    pipeline = build_pipeline(settings, session)
    parameters = typed_parameters(pipeline, parameters)
    pipeline.upsert(role_arn=settings.role)
    started = time.monotonic()
    execution = pipeline.start(parameters=parameters or None)
    elapsed = time.monotonic() - started
    status = execution.describe()
    for step in describe_steps(execution):
        print(f"  {step['name']:24s} {step['status']}"
              + (f"  {step['failure']}" if step["failure"] else ""))
    print(f"pipeline {status['PipelineExecutionStatus']} in {elapsed:.0f} s"
          + (f": {status.get('FailureReason')}" if status.get("FailureReason") else ""))
    return 0 if status["PipelineExecutionStatus"] == "Succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
