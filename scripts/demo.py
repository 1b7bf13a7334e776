"""Run the whole life cycle on your data (or the bundled data), each stage as its real process.

    prepare -> train -> evaluate -> batch transform of the test split -> serve smoke test

Each stage gets its own /opt/ml-shaped tree under ``work/demo/`` (moved with
SAGEMAKER_BASE_DIR), laid out the way SageMaker lays it out, and runs as
``python <stage>/main.py``; no container and no AWS account are involved.
At the end it prints where every output is, the metrics, and the command
that runs each stage again by hand.

    .venv/bin/python scripts/demo.py                                  the bundled churn data
    .venv/bin/python scripts/demo.py --data my.csv --target label     your CSV file or folder
    make demo DATA=my.csv TARGET=label                                the same, through make
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import shlex
import shutil
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.harness import (processing_tree, run_stage as run_stage_process,  # noqa: E402
                             stage_command, training_tree, written_reason)
from scripts.serve_process import ServeProcess, ServerError  # noqa: E402

BUNDLED = ROOT / "data" / "churn.csv"
BUNDLED_TARGET = "churn"


def shown(path: Path | str) -> str:
    """A path as a user types it here: relative to the working folder when inside it."""
    absolute = Path(os.path.abspath(path))
    try:
        return str(absolute.relative_to(Path.cwd()))
    except ValueError:
        return str(absolute)


def command_line(stage: str, base: Path, args: list[str] = ()) -> str:
    """The shell command that runs ``stage`` on the tree at ``base``, as the demo ran it."""
    python, main, *rest = stage_command(stage, args)
    words = [shown(python), shown(main), *rest]
    return f"SAGEMAKER_BASE_DIR={shlex.quote(shown(base))} " + shlex.join(words)


def run_stage(stage: str, base: Path, args: list[str] = (), env: dict | None = None) -> str:
    """Run ``<stage>/main.py`` against the tree at ``base``; returns its stdout."""
    started = time.monotonic()
    result = run_stage_process(stage, base, args, env, timeout=None)
    sys.stderr.write(result.stderr)
    if result.returncode != 0:
        reason = written_reason(base)
        if reason is not None:
            print(f"\n{stage} failed: {reason}")
        raise SystemExit(f"{stage} exited with {result.returncode}; run it again by hand "
                         f"with:\n  {command_line(stage, base, args)}")
    print(f"[{stage}{' ' + args[0] if stage == 'processing' else ''}] finished in "
          f"{time.monotonic() - started:.1f} s")
    return result.stdout


def http(method: str, url: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 60) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# -- the stages -----------------------------------------------------------------------------
def processing_job(work: Path, data: Path, target: str | None) -> tuple[Path, list[str]]:
    """prepare on a copy of ``data`` (a CSV file or a folder of them); the splits' folder."""
    base = processing_tree(work / "processing-job",
                           {"raw" if data.is_dir() else f"raw/{data.name}": data})
    args = ["prepare"] + (["--target", target] if target is not None else [])
    run_stage("processing", base, args)
    return base / "processing" / "output", args


def training_job(work: Path, splits: Path, model: str, target: str,
                 hyperparameters: dict[str, str] | None = None) -> tuple[Path, dict]:
    channels = ("train", "validation")
    base = training_tree(work / "training-job", {c: splits / c for c in channels},
                         {"model": model, "target": target, **(hyperparameters or {})},
                         content_types={c: "text/csv" for c in channels})
    stdout = run_stage("train", base)
    metrics = {}
    for line in stdout.splitlines():
        key, _, value = line.strip().rstrip(";").partition("=")
        if key.startswith(("train:", "validation:")) and value:
            metrics[key] = float(value)
    # What SageMaker uploads to S3 at the end of the job.
    tarball = base / "output" / "model.tar.gz"
    pack_model(base / "model", tarball)
    return tarball, metrics


def pack_model(model_dir: Path, tarball: Path) -> None:
    """model.tar.gz as SageMaker packs /opt/ml/model: the folder's files at the top."""
    with tarfile.open(tarball, "w:gz") as tar:
        for path in sorted(model_dir.iterdir()):
            tar.add(path, arcname=path.name)


def evaluation_job(work: Path, model_dir: Path, splits: Path) -> tuple[Path, list[str]]:
    """evaluate the trained model on the test split; the folder with evaluation.json."""
    base = processing_tree(work / "evaluation-job", {})
    args = ["evaluate", "--model-dir", shown(model_dir), "--test-dir", shown(splits / "test")]
    run_stage("processing", base, args)
    return base / "processing" / "evaluation", args


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


# -- what the demo shows ----------------------------------------------------------------------
def batch_score(predictions: Path, test_split: Path, target: str, classification: bool) -> str:
    with test_split.open(newline="") as handle:
        truth = [row[target] for row in csv.DictReader(handle)]
    predicted = predictions.read_text().splitlines()
    if len(predicted) != len(truth):
        raise SystemExit(f"{len(predicted)} predictions for {len(truth)} test rows")
    if classification:
        # The CSV answer is the label as text; the test split holds it as text too.
        hits = sum(p == t or _same_number(p, t) for p, t in zip(predicted, truth))
        return f"accuracy {hits / len(truth):.4f}"
    pairs = [(float(p), float(t)) for p, t in zip(predicted, truth) if t != ""]
    rmse = (sum((p - t) ** 2 for p, t in pairs) / len(pairs)) ** 0.5
    return f"rmse {rmse:.4f}"


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return False


def first_test_row(test_split: Path, target: str) -> dict:
    """The first test row without its target, as a JSON object serve takes."""
    with test_split.open(newline="") as handle:
        row = next(csv.DictReader(handle))
    row.pop(target)
    return {name: (None if value == "" else _number_or_text(value))
            for name, value in row.items()}


def _number_or_text(value: str):
    try:
        number = float(value)
    except ValueError:
        return value
    return int(number) if number.is_integer() and "." not in value else number


# The test metrics the summary shows; evaluation.json holds the rest.
SHOWN_METRICS = ("accuracy", "balanced_accuracy", "precision", "recall", "f1",
                 "weighted_precision", "weighted_recall", "weighted_f1", "auc", "log_loss",
                 "accuracy_best_constant_classifier", "mae", "mse", "rmse", "r2")


def report_lines(report: dict) -> list[str]:
    section_name = next(name for name in report if name.endswith("_metrics"))
    section = report[section_name]
    lines = [f"({section_name} in evaluation.json)"]
    for name in SHOWN_METRICS:
        if isinstance(section.get(name, {}).get("value"), (int, float)):
            lines.append(f"{'test:' + name:44s} {section[name]['value']:.4f}")
    gate = report["quality_gate"]
    error = gate["error"].split(" (")[0]
    lines.append(f"{'quality_gate.value':44s} {gate['value']:.4f}")
    lines.append(f"  the share of the baseline's {error} the model removes: 1 - "
                 f"{gate['model_error']:.4f} / {gate['baseline_error']:.4f}; baseline: "
                 f"{gate['baseline']}. A pipeline compares this value with MetricThreshold.")
    return lines


def hyperparameter_pairs(text: str) -> dict[str, str]:
    """'a=1 b="x y"' as {"a": "1", "b": "x y"}: values stay text, as SageMaker sends them."""
    pairs = {}
    for item in shlex.split(text):
        key, equals, value = item.partition("=")
        if not equals or not key:
            raise argparse.ArgumentTypeError(
                f"{item!r} is not KEY=VALUE; write hyperparameters as 'max_depth=6 "
                "ignore_columns=id'")
        if key in ("model", "target"):
            raise argparse.ArgumentTypeError(f"give {key} with --{key} (make demo: "
                                             f"{key.upper()}=...), not among the hyperparameters")
        pairs[key] = value
    return pairs


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/demo.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--data", type=Path, default=None,
                        help="a CSV file, or a folder of them (read recursively), with a "
                             "header row; default: the bundled data/churn.csv")
    parser.add_argument("--target", default=None,
                        help="the column to predict: its name or 0-based index; default: "
                             "churn for the bundled data, else the first column")
    parser.add_argument("--model", default="gradient_boosting",
                        help="the train stage's 'model' hyperparameter (default: %(default)s)")
    parser.add_argument("--hyperparameters", type=hyperparameter_pairs, default={},
                        metavar="'KEY=VALUE ...'",
                        help="more hyperparameters of the training job, e.g. "
                             "'ignore_columns=patient_id max_depth=6' (train --help lists the "
                             "trainer's own; any other goes to the estimator)")
    parser.add_argument("--workdir", type=Path, default=ROOT / "work" / "demo",
                        help="where the stages' trees go; emptied first (default: work/demo)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.data is None:
        data, target = BUNDLED, args.target or BUNDLED_TARGET
    else:
        data, target = args.data, args.target
        if not data.exists():
            raise SystemExit(f"--data {data}: no such file or folder; give a CSV file or a "
                             "folder of CSV files")
    started = time.monotonic()
    work = args.workdir.resolve()
    if work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True)

    splits, prepare_args = processing_job(work, data.resolve(), target)
    problem = json.loads((splits / "problem" / "problem.json").read_text())
    target = problem["target"]
    classification = problem["task"] == "classification"
    tarball, metrics = training_job(work, splits, args.model, target, args.hyperparameters)
    evaluation, evaluate_args = evaluation_job(work, work / "training-job" / "model", splits)
    report = json.loads((evaluation / "evaluation.json").read_text())

    base = work / "endpoint"
    (base / "model").mkdir(parents=True)
    with tarfile.open(tarball) as tar:
        tar.extractall(base / "model", filter="data")
    test_features = splits / "test_features" / "test_features.csv"
    row = first_test_row(splits / "test" / "test.csv", target)
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
        records = batch_transform(endpoint, test_features, predictions)
        score = batch_score(predictions, splits / "test" / "test.csv", target, classification)
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if classification:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = "output=all"
        status, answer = http("POST", endpoint.url + "/invocations",
                              json.dumps({"instances": [row]}).encode(), headers)
        if status != 200:
            raise SystemExit(endpoint.failure(
                f"smoke request failed with {status}: {answer.decode()}"))
    finally:
        exit_code = endpoint.stop()
    if exit_code != 0:
        raise SystemExit(endpoint.failure(f"serve exited with {exit_code} on SIGTERM"))

    print("\n== outputs ==")
    print(f"splits (processing):       {shown(splits)}")
    print(f"problem.json:              {shown(splits / 'problem' / 'problem.json')}")
    print(f"model (train):             {shown(work / 'training-job' / 'model')}")
    print(f"model.tar.gz:              {shown(tarball)}")
    metrics_file = work / "training-job" / "output" / "data" / "metrics.json"
    print(f"metrics.json:              {shown(metrics_file)}")
    print(f"evaluation.json:           {shown(evaluation / 'evaluation.json')}")
    picture = "confusion_matrix.svg" if classification else "residuals.svg"
    print(f"evaluation picture:        {shown(evaluation / picture)}")
    print(f"batch predictions:         {shown(predictions)} ({records} records)")
    print(f"serve log:                 {shown(endpoint.log_path)}")
    print("\n== problem ==")
    print(f"target:                    {target}"
          + ("" if args.target is not None or args.data is None
             else " (the first column; --target picks another)"))
    print(f"problem type:              {problem['problem_type']}")
    print(f"rows (train/validation/test): {problem['rows']['train']}/"
          f"{problem['rows']['validation']}/{problem['rows']['test']}")
    print("\n== validation metrics ==")
    for key, value in metrics.items():
        if key.startswith("validation:"):
            print(f"{key:28s} {value:.4f}")
    print("\n== test metrics (evaluate) ==")
    for line in report_lines(report):
        print(line)
    print("\n== serving ==")
    print(f"cold start to first /ping: {cold_start:.2f} s")
    print(f"batch transform of the test features: {score}")
    print(f"smoke request:             {json.dumps({'instances': [row]}, ensure_ascii=False)}")
    print(f"smoke request answer:      {answer.decode().strip()}")

    print("\n== run a stage again by hand ==")
    print(f"prepare:   {command_line('processing', work / 'processing-job', prepare_args)}")
    print(f"train:     {command_line('train', work / 'training-job')}")
    print(f"evaluate:  {command_line('processing', work / 'evaluation-job', evaluate_args)}")
    print(f"serve:     {command_line('serve', base, ['serve'])}")
    print("call it:   curl -s localhost:8080/invocations -H 'Content-Type: text/csv' "
          f"--data-binary @{shlex.quote(shown(test_features))}")
    print("           curl -s localhost:8080/invocations -H 'Content-Type: application/json' "
          f"-d {shlex.quote(json.dumps({'instances': [row]}, ensure_ascii=False))}")
    print("(each stage reads the tree the demo laid out; docs/by-hand.md says what goes "
          "where)")
    print(f"\nmain job finished in {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
