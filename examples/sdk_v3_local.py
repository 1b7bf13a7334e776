"""The image driven by the SageMaker Python SDK v3 in local container mode.

    pip install 'sagemaker>=3,<4'
    python examples/sdk_v3_local.py IMAGE WORKDIR

trains on data/churn.csv with the image's built-in trainer (``ModelTrainer``),
then scores the same file's features in a local batch transform
(``Transformer`` on a ``LocalSession``).  Each step is a function, so the same
calls run in tests/sdk3.  Docker (or a stand-in for it) must be on PATH.

The other functions, which tests/sdk3 also runs: ``deploy_local`` / ``stop_local``
(``ModelBuilder`` on a folder from ``model_folder``; it needs the Docker Engine API,
and a Docker daemon pulls the image from its registry first), ``prepare_local`` (a
local processing job) and ``prepare_pipeline`` (a local pipeline with that job as its
step); both upload their input folder to the session's default S3 bucket.
"""
from __future__ import annotations

import csv
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data" / "churn.csv"
TARGET = "churn"
ROLE = "arn:aws:iam::111122223333:role/Local"  # an ARN is taken as given


def train_builtin(image: str, data_dir: Path, workdir: Path,
                  hyperparameters: dict | None = None) -> Path:
    """The image's own trainer; returns the model.tar.gz v3 leaves on the host."""
    from sagemaker.train import ModelTrainer
    from sagemaker.core.training.configs import InputData
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        local_container_root=str(workdir),
        base_job_name="byoc-builtin",
        hyperparameters={"target": TARGET, **(hyperparameters or {})},
    )
    # v3 takes local folders as they are (a file:// URI is refused); no
    # command: the image picks `train` from the job's input/config.
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=str(data_dir))])
    return workdir / "compressed_artifacts" / "model.tar.gz"


def train_script(image: str, data_dir: Path, source_dir: Path, workdir: Path) -> Path:
    """Script mode: v3 runs ``train.py`` from ``source_dir`` with the image's python3."""
    from sagemaker.train import ModelTrainer
    from sagemaker.core.training.configs import InputData, SourceCode
    from sagemaker.train.model_trainer import Mode

    trainer = ModelTrainer(
        training_image=image,
        training_mode=Mode.LOCAL_CONTAINER,
        local_container_root=str(workdir),
        base_job_name="byoc-script",
        source_code=SourceCode(source_dir=str(source_dir), entry_script="train.py"),
        hyperparameters={"target": TARGET},
    )
    trainer.train(input_data_config=[InputData(channel_name="train", data_source=str(data_dir))])
    return workdir / "compressed_artifacts" / "model.tar.gz"


def features_file(source: Path, target: Path) -> Path:
    """``source`` without its target column and header: what a transform job scores."""
    with source.open(newline="") as fh:
        rows = list(csv.reader(fh))
    drop = rows[0].index(TARGET)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as fh:
        csv.writer(fh).writerows([v for i, v in enumerate(row) if i != drop] for row in rows[1:])
    return target


def batch_transform(image: str, model_tar: Path, input_dir: Path, output_dir: Path,
                    workdir: Path) -> Path:
    """A local transform job over every file of ``input_dir``; returns the output folder."""
    import boto3
    from sagemaker.core.local import LocalSession
    from sagemaker.core.transformer import Transformer

    workdir.mkdir(parents=True, exist_ok=True)  # v3 makes its temporary folders inside
    session = LocalSession(boto_session=boto3.Session(region_name="us-east-1"))
    session.config = {"local": {"local_code": True, "container_root": str(workdir)}}
    session.sagemaker_client.create_model(
        ModelName="byoc-v3-model", ExecutionRoleArn=ROLE,
        PrimaryContainer={"Image": image, "ModelDataUrl": f"file://{model_tar}",
                          "Environment": {}})
    transformer = Transformer(
        model_name="byoc-v3-model", instance_count=1, instance_type="local",
        strategy="MultiRecord", assemble_with="Line", accept="text/csv",
        output_path=f"file://{output_dir}", base_transform_job_name="byoc-v3-transform",
        sagemaker_session=session)
    transformer.transform(f"file://{input_dir}", content_type="text/csv", split_type="Line",
                          wait=True)
    return output_dir


def model_folder(model_tar: Path, folder: Path) -> Path:
    """A ``ModelBuilder`` model folder holding ``model_tar``'s files.

    v3's local serving mounts only ``<model_path>/code`` at /opt/ml/model, so
    the model's files go there."""
    code = folder / "code"
    code.mkdir(parents=True, exist_ok=True)
    with tarfile.open(model_tar) as tar:
        tar.extractall(code, filter="data")
    return folder


def deploy_local(image: str, model_dir: Path, sample_input, sample_output,
                 endpoint_name: str | None = None):
    """``ModelBuilder`` in local container mode; returns (builder, endpoint).

    The request's type follows ``sample_input`` (a DataFrame sends text/csv, a
    list application/json, a NumPy array application/x-npy) and the answer's
    ``sample_output`` (a list or dict: application/json).  Stop it with ``stop_local``.
    Each deploy needs a fresh endpoint name: v3 keeps a deleted local endpoint's
    name for the life of the process and hands the old endpoint back for it."""
    import uuid

    from sagemaker.serve.builder.schema_builder import SchemaBuilder
    from sagemaker.serve.mode.function_pointers import Mode
    from sagemaker.serve.model_builder import ModelBuilder
    from sagemaker.serve.utils.types import ModelServer

    builder = ModelBuilder(
        image_uri=image, model_path=str(model_dir), model_server=ModelServer.MMS,
        mode=Mode.LOCAL_CONTAINER, role_arn=ROLE,
        # Without it, build() asks STS for the account to name a default S3 bucket,
        # even in local mode.
        s3_model_data_url=f"file://{Path(model_dir).resolve()}",
        schema_builder=SchemaBuilder(sample_input, sample_output))
    builder.build()
    name = endpoint_name or f"byoc-v3-{uuid.uuid4().hex[:8]}"
    return builder, builder.deploy(endpoint_name=name)


def stop_local(builder, endpoint) -> None:
    """Deleting a v3 local endpoint leaves the container v3 started through the Docker
    Engine API running (on port 8080); its local mode object stops it."""
    from sagemaker.serve.mode.function_pointers import Mode

    try:
        endpoint.delete()
    finally:
        builder.modes[str(Mode.LOCAL_CONTAINER)].destroy_server()


def _prepare_job(image: str, raw_dir: Path, output_uri: str, session):
    """A ``Processor`` running the image's ``processing prepare`` on ``raw_dir``, and the
    arguments of its ``run``: the train split goes to ``<output_uri>/train``."""
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import (ProcessingInput, ProcessingOutput, ProcessingS3Input,
                                       ProcessingS3Output)

    processor = Processor(image_uri=image, role=ROLE, instance_count=1, instance_type="local",
                          entrypoint=["processing", "prepare"], sagemaker_session=session)
    # v3 uploads a local input folder to the session's default bucket, even in local
    # mode; an output may stay local (file://).
    run = dict(
        inputs=[ProcessingInput(input_name="raw", s3_input=ProcessingS3Input(
            s3_uri=str(raw_dir), local_path="/opt/ml/processing/input",
            s3_data_type="S3Prefix", s3_input_mode="File"))],
        outputs=[ProcessingOutput(output_name="train", s3_output=ProcessingS3Output(
            s3_uri=f"{output_uri}/train", local_path="/opt/ml/processing/output/train",
            s3_upload_mode="EndOfJob"))],
        arguments=["--target", TARGET], logs=False)
    return processor, run


def prepare_local(image: str, raw_dir: Path, output_dir: Path, session) -> Path:
    """The image's ``processing prepare`` as a v3 local processing job on a
    ``LocalSession``; returns the folder of the train split."""
    processor, run = _prepare_job(image, raw_dir, f"file://{output_dir}", session)
    processor.run(**run)
    return output_dir / "train"


def prepare_pipeline(image: str, raw_dir: Path, output_uri: str, step_session,
                     run_session) -> dict:
    """The same job as the one step of a local pipeline; returns the execution's steps.

    In sagemaker 3.27 a local pipeline takes two sessions: ``step_session``, a
    ``sagemaker.core.workflow.pipeline_context.LocalPipelineSession``, turns ``run()``
    into step arguments; ``run_session``, a ``sagemaker.mlops.local.LocalPipelineSession``,
    holds and runs the pipeline.  ``Pipeline.create()`` and ``start()`` cannot be used
    locally: they call ``create_pipeline`` / ``start_pipeline_execution`` on the local
    SageMaker client, which v3 moved onto the mlops session."""
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import ProcessingStep

    processor, run = _prepare_job(image, raw_dir, output_uri, step_session)
    step = ProcessingStep(name="Prepare", step_args=processor.run(**run))
    pipeline = Pipeline(name="byoc-v3-prepare", steps=[step], sagemaker_session=run_session)
    run_session.create_pipeline(pipeline, "the image's processing prepare")
    execution = run_session.start_pipeline_execution(PipelineName=pipeline.name)
    return execution.list_steps()


def model_files(model_tar: Path) -> list[str]:
    with tarfile.open(model_tar) as tar:
        return sorted(tar.getnames())


def main(image: str, workdir: Path) -> None:
    data_dir = workdir / "train"
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "churn.csv").write_bytes(DATA.read_bytes())
    model_tar = train_builtin(image, data_dir, workdir / "training")
    print("model:", model_tar, model_files(model_tar))
    features = features_file(DATA, workdir / "features" / "churn.csv")
    out = batch_transform(image, model_tar, features.parent, workdir / "scored", workdir / "tf")
    print("scored:", sorted(p.name for p in out.iterdir()))


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python examples/sdk_v3_local.py IMAGE WORKDIR")
    main(sys.argv[1], Path(sys.argv[2]).resolve())
