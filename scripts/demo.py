"""Run the whole life cycle on the bundled data, each stage as its real process.

    processing -> train -> batch transform of the test split -> serve smoke test

Each stage gets its own /opt/ml-shaped tree under ``work/demo/`` (moved with
SAGEMAKER_BASE_DIR), laid out the way SageMaker lays it out, and runs as
``python <stage>/main.py``; no container and no AWS account are involved.

    python scripts/demo.py [--workdir work/demo] [--model gradient_boosting]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.serve_process import ServeProcess, ServerError  # noqa: E402

DATA = ROOT / "data" / "churn.csv"
TARGET = "churn"


def run_stage(stage: str, base: Path, args: list[str] = (), env: dict | None = None) -> str:
    """Run ``<stage>/main.py`` against the tree at ``base``; returns its stdout."""
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(ROOT / stage / "main.py"), *args],
        env={**os.environ, "SAGEMAKER_BASE_DIR": str(base), **(env or {})},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        for name in ("failure", "message"):
            reason = base / "output" / name
            if reason.exists():
                print(f"\n{stage} failed: {reason.read_text().strip()}")
                break
        raise SystemExit(f"{stage} exited with {result.returncode}")
    print(f"[{stage}] finished in {time.monotonic() - started:.1f} s")
    return result.stdout


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def processing_job(work: Path) -> Path:
    base = work / "processing-job"
    raw = base / "processing" / "input" / "raw"
    raw.mkdir(parents=True)
    shutil.copy(DATA, raw / DATA.name)
    run_stage("processing", base, ["prepare", "--target", TARGET])
    return base / "processing" / "output"


def training_job(work: Path, splits: Path, model: str) -> tuple[Path, dict[str, float]]:
    base = work / "training-job"
    config = base / "input" / "config"
    config.mkdir(parents=True)
    channels = {}
    for channel in ("train", "validation"):
        shutil.copytree(splits / channel, base / "input" / "data" / channel)
        channels[channel] = {"ContentType": "text/csv", "TrainingInputMode": "File",
                             "S3DistributionType": "FullyReplicated",
                             "RecordWrapperType": "None"}
    # SageMaker writes every hyperparameter as a string.
    (config / "hyperparameters.json").write_text(json.dumps({"model": model,
                                                             "target": TARGET}))
    (config / "inputdataconfig.json").write_text(json.dumps(channels))
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": "eth0"}))
    stdout = run_stage("train", base)
    metrics = {}
    for line in stdout.splitlines():
        key, _, value = line.strip().rstrip(";").partition("=")
        if key.startswith(("train:", "validation:")) and value:
            metrics[key] = float(value)
    # What SageMaker uploads to S3 at the end of the job.
    tarball = base / "output" / "model.tar.gz"
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted((base / "model").iterdir()):
            tar.add(path, arcname=path.name)
    return tarball, metrics


def batch_transform(endpoint: ServeProcess, source: Path, out: Path) -> int:
    """What a MultiRecord, SplitType=Line transform job does with one input file."""
    status, body = http("GET", endpoint.url + "/execution-parameters")
    limit = json.loads(body)["MaxPayloadInMB"] * 1024 * 1024 if status == 200 else 6 * 1024**2
    lines = source.read_bytes().splitlines(keepends=True)
    chunks, current, size = [], [], 0
    for line in lines:
        if current and size + len(line) > limit:
            chunks.append(b"".join(current))
            current, size = [], 0
        current.append(line)
        size += len(line)
    if current:
        chunks.append(b"".join(current))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as sink:
        for chunk in chunks:
            status, answer = http("POST", endpoint.url + "/invocations", chunk,
                                  {"Content-Type": "text/csv", "Accept": "text/csv"})
            if status != 200:
                raise SystemExit(endpoint.failure(
                    f"batch request failed with {status}: {answer.decode()}"))
            sink.write(answer)
    return len(lines)


def accuracy(predictions: Path, test_split: Path) -> float:
    with test_split.open(newline="") as handle:
        truth = [row[TARGET] for row in csv.DictReader(handle)]
    predicted = predictions.read_text().splitlines()
    if len(predicted) != len(truth):
        raise SystemExit(f"{len(predicted)} predictions for {len(truth)} test rows")
    return sum(p == t for p, t in zip(predicted, truth)) / len(truth)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=ROOT / "work" / "demo")
    parser.add_argument("--model", default="gradient_boosting",
                        help="the train stage's 'model' hyperparameter")
    args = parser.parse_args()
    started = time.monotonic()
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    splits = processing_job(work)
    tarball, metrics = training_job(work, splits, args.model)

    base = work / "endpoint"
    (base / "model").mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(base / "model", filter="data")
    # What a batch transform job sets; serve picks its worker count itself.
    endpoint = ServeProcess(base, {"SAGEMAKER_BATCH": "true"}, workers=None,
                            log_path=work / "serve.log")
    try:
        endpoint.start(timeout=60)
    except ServerError as exc:
        raise SystemExit(str(exc)) from None
    try:
        cold_start = endpoint.started_in
        predictions = work / "transform" / "test_features.csv.out"
        records = batch_transform(endpoint, splits / "test_features" / "test_features.csv",
                                  predictions)
        test_accuracy = accuracy(predictions, splits / "test" / "test.csv")
        status, answer = http(
            "POST", endpoint.url + "/invocations",
            json.dumps({"instances": [{"tenure_months": 2, "contract": "month-to-month",
                                       "monthly_charges": 95.5, "support_calls": 4}]}).encode(),
            {"Content-Type": "application/json", "Accept": "application/json",
             "X-Amzn-SageMaker-Custom-Attributes": "output=all"})
        if status != 200:
            raise SystemExit(endpoint.failure(
                f"smoke request failed with {status}: {answer.decode()}"))
    finally:
        exit_code = endpoint.stop()
    if exit_code != 0:
        raise SystemExit(endpoint.failure(f"serve exited with {exit_code} on SIGTERM"))

    print("\n== outputs ==")
    print(f"splits (processing):       {splits}")
    print(f"model (train):             {work / 'training-job' / 'model'}")
    print(f"model.tar.gz:              {tarball}")
    print(f"metrics.json:              {work / 'training-job' / 'output' / 'data' / 'metrics.json'}")
    print(f"batch predictions:         {predictions} ({records} records)")
    print(f"serve log:                 {endpoint.log_path}")
    print("\n== validation metrics ==")
    for key, value in metrics.items():
        if key.startswith("validation:"):
            print(f"{key:28s} {value:.4f}")
    print("\n== serving ==")
    print(f"cold start to first /ping: {cold_start:.2f} s")
    print(f"test accuracy (batch):     {test_accuracy:.4f}")
    print(f"smoke request answer:      {answer.decode().strip()}")
    print(f"\nmain job finished in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
