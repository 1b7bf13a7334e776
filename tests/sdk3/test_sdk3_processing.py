"""SDK v3's local processing and local pipeline, through examples/sdk_v3_local.py,
running the image's `processing prepare` (moto's S3 as the default bucket)."""
from __future__ import annotations

import shutil

import pytest

from scripts.harness import DATA

pytest.importorskip("sagemaker.train", reason="make test-sdk3 (SDK v3 in .venv-sdk3)")

from tests.sdk3.conftest import BUCKET, example  # noqa: E402


@pytest.fixture
def raw_dir(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    shutil.copy(DATA, folder / "churn.csv")
    return folder


def data_rows() -> int:
    with DATA.open() as fh:
        return sum(1 for _ in fh) - 1


def test_local_processing_job(local_mode, local_session, raw_dir, tmp_path):
    from sagemaker.core.local import LocalSession

    train = example.prepare_local(local_mode, raw_dir, tmp_path / "out",
                                  local_session(LocalSession))
    lines = (train / "train.csv").read_text().splitlines()
    assert example.TARGET in lines[0].split(",")
    assert data_rows() // 2 < len(lines) - 1 < data_rows()


def test_local_pipeline_with_a_processing_step(local_mode, local_session, raw_dir):
    import boto3
    from sagemaker.core.workflow.pipeline_context import LocalPipelineSession as StepSession
    from sagemaker.mlops.local import LocalPipelineSession as RunSession

    prefix = "pipeline-prepare"
    steps = example.prepare_pipeline(local_mode, raw_dir, f"s3://{BUCKET}/{prefix}",
                                     local_session(StepSession), local_session(RunSession))
    statuses = {s["StepName"]: s["StepStatus"] for s in steps["PipelineExecutionSteps"]}
    assert statuses == {"Prepare": "Succeeded"}, steps
    listed = boto3.client("s3", region_name="us-east-1").list_objects_v2(
        Bucket=BUCKET, Prefix=f"{prefix}/train/")
    assert [o["Key"] for o in listed.get("Contents", [])] == [f"{prefix}/train/train.csv"]
