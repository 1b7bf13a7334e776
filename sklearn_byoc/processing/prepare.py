"""``processing prepare``: raw CSV or Parquet in, clean train / validation / test splits out.

Pipelines pass a processing job's options as ``ContainerArguments``, so they
are command-line options here.  Outputs, each in its own folder so each can be
a ``ProcessingOutput``:

- ``train/``, ``validation/``, ``test/`` — CSV with a header (or Parquet, with
  ``--output-format parquet``), target first: what ``train`` reads by default,
  and what ``evaluate`` scores;
- ``test_features/`` — the test rows without target or header: the input of a
  batch transform job, where a header line would arrive as a record;
- ``sample_payload/sample_payload.tar.gz`` — a few of those rows, one CSV
  request per file: a model package's ``SamplePayloadUrl``, which Inference
  Recommender sends to the endpoints it load-tests;
- ``problem/problem.json`` — what the data turned out to be: target, task,
  SageMaker's problem type, rows per split, and the objective ``train``
  reports last for that task (what a tuning job should optimise).

When the job runs on several instances (``ShardedByS3Key``), each instance
sees part of the input and all instances upload to the same S3 prefixes, so
file names carry the host name (``train-algo-2.csv``) to keep one instance
from overwriting another's output; the two single files are written by the
first host alone.
"""
from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from sklearn_byoc.common.contract import Paths, ResourceConfig
from sklearn_byoc.common.disk import writing
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.metrics import DEFAULT_OBJECTIVE, MAXIMIZE
from sklearn_byoc.common.contract import HEADER_CHOICES
from sklearn_byoc.common.tables import select
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.common.tables.target import infer_task, resolve_target

log = logging.getLogger("processing")

SPLITS = ("train", "validation", "test")
SAMPLE_PAYLOAD = "sample_payload.tar.gz"
PROBLEM_FILE = "problem.json"
# Requests in the sample payload; each file must fit one InvokeEndpoint call.
SAMPLE_PAYLOAD_REQUESTS = 10
OUTPUT_FORMATS = ("csv", "parquet")


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad option as a job failure instead of exiting."""

    def error(self, message):
        raise UserError(f"{self.prog}: {message} (run '{self.prog} --help' for the options)")


def add_table_options(parser: ArgumentParser, default_target: str, files: str) -> None:
    """--target and --header, as prepare and evaluate both take them."""
    parser.add_argument("--target", default=None,
                        help=f"target column: name or 0-based index (default: {default_target})")
    parser.add_argument("--header", choices=HEADER_CHOICES, default="auto",
                        help=f"whether the {files} start with a header row (default: auto)")


def build_parser(paths: Paths) -> ArgumentParser:
    parser = ArgumentParser(
        prog="processing prepare",
        description="Clean raw CSV or Parquet data and split it into train, validation and "
                    "test sets.",
    )
    parser.add_argument("--input-dir", type=Path, default=paths.processing_dir / "input",
                        help="folder of raw CSV or Parquet files, read recursively "
                             "(default: %(default)s)")
    parser.add_argument("--output-dir", type=Path, default=paths.processing_dir / "output",
                        help="folder that receives train/, validation/, test/ and "
                             "test_features/ (default: %(default)s)")
    add_table_options(parser, "the one column named target, label, class or y, else the "
                              "first column", "raw files")
    parser.add_argument("--task", choices=("auto", "classification", "regression"),
                        default="auto", help="stratify splits when classification "
                                             "(default: inferred from the target)")
    parser.add_argument("--train-fraction", type=float, default=0.7)
    parser.add_argument("--validation-fraction", type=float, default=0.15)
    parser.add_argument("--test-fraction", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=42, help="random seed for the split")
    parser.add_argument("--ignore-columns", type=_column_list, default=[],
                        metavar="NAMES",
                        help="columns left out of every split, by name or 0-based index, "
                             "comma-separated (an identifier, a free-text note)")
    parser.add_argument("--keep-duplicates", action="store_true",
                        help="keep exact duplicate rows (dropped by default)")
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="csv",
                        help="format of train/, validation/ and test/ (test_features/, the "
                             "batch transform input, is always CSV; default: %(default)s)")
    return parser


@dataclass
class Options:
    input_dir: Path
    output_dir: Path
    target: str | None
    header: str
    task: str
    fractions: dict[str, float]
    seed: int
    keep_duplicates: bool
    output_format: str = "csv"
    ignore_columns: list[str] = field(default_factory=list)


def _column_list(text: str) -> list[str]:
    if not text.strip():
        return []  # a pipeline parameter left empty
    items = [item.strip() for item in text.split(",")]
    if not all(items):
        raise argparse.ArgumentTypeError(f"an empty column name in {text!r}: write 'id,note'")
    return items


def parse_options(argv: list[str], paths: Paths) -> Options:
    args = build_parser(paths).parse_args(argv)
    fractions = {"train": args.train_fraction, "validation": args.validation_fraction,
                 "test": args.test_fraction}
    for name, value in fractions.items():
        if not 0 <= value <= 1:
            raise UserError(f"--{name}-fraction must be between 0 and 1, got {value}")
    if fractions["train"] <= 0:
        raise UserError("--train-fraction must be greater than 0")
    total = sum(fractions.values())
    if abs(total - 1) > 1e-6:
        raise UserError(
            "--train-fraction, --validation-fraction and --test-fraction must add up to 1, "
            f"they add up to {total:g}"
        )
    return Options(args.input_dir, args.output_dir, args.target, args.header, args.task,
                   fractions, args.seed, args.keep_duplicates, args.output_format,
                   args.ignore_columns)


def clean(frame: pd.DataFrame, target: str) -> tuple[pd.DataFrame, dict[str, int]]:
    counts = {"rows_read": len(frame)}
    no_target = frame[target].isna()
    frame = frame.loc[~no_target]
    counts["dropped_missing_target"] = int(no_target.sum())
    return frame, counts


def split(frame: pd.DataFrame, target: str, task: str, fractions: dict[str, float],
          seed: int) -> dict[str, pd.DataFrame]:
    from sklearn.model_selection import train_test_split

    def stratify_by(part: pd.DataFrame, n_holdout: int):
        if task != "classification":
            return None
        counts = part[target].value_counts()
        if counts.min() < 2 or n_holdout < len(counts) or len(part) - n_holdout < len(counts):
            log.warning("split is not stratified: some classes have too few rows")
            return None
        return part[target]

    parts: dict[str, pd.DataFrame] = {}
    rest, rest_share = frame, 1.0
    for name in ("test", "validation"):
        share = fractions[name]
        if share <= 0:
            parts[name] = frame.iloc[0:0]
            continue
        n_holdout = int(round(len(rest) * share / rest_share))
        if n_holdout < 1 or len(rest) - n_holdout < 1:
            raise UserError(f"only {len(frame)} usable rows: too few for a {name} share of "
                            f"{share}; add rows or lower --{name}-fraction")
        rest, held = train_test_split(rest, test_size=n_holdout, random_state=seed,
                                      stratify=stratify_by(rest, n_holdout))
        parts[name] = held
        rest_share -= share
    parts["train"] = rest
    return {name: parts[name] for name in SPLITS}


def write_csv(frame: pd.DataFrame, path: Path, *, header: bool, what: str) -> None:
    """Write under a temporary name, then rename: never a half-written file."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with writing(path.parent, what, partial=partial):
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.to_csv(partial, index=False, header=header)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def write_sample_payload(features: pd.DataFrame, path: Path,
                         requests: int = SAMPLE_PAYLOAD_REQUESTS) -> int:
    """A tar.gz of one-row CSV requests (no header, training feature order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    rows = features.head(requests)
    try:
        # No time stamps, in the gzip header or the members: the same rows
        # give the same bytes.
        with open(partial, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz, \
                tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
            for i in range(len(rows)):
                body = rows.iloc[[i]].to_csv(index=False, header=False).encode("utf-8")
                member = tarfile.TarInfo(f"request-{i + 1:02d}.csv")
                member.size = len(body)
                member.mode = 0o644
                tar.addfile(member, io.BytesIO(body))
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return len(rows)


def problem_summary(frame: pd.DataFrame, target: str, task: str,
                    parts: dict[str, pd.DataFrame]) -> dict:
    """problem.json: the problem the data poses, in SageMaker's words."""
    summary = {"target": target, "task": task,
               "features": [str(c) for c in frame.columns if c != target],
               "rows": {name: len(part) for name, part in parts.items()}}
    if task == "classification":
        classes = frame[target].nunique()
        summary["problem_type"] = ("BinaryClassification" if classes == 2
                                   else "MulticlassClassification")
        summary["class_count"] = int(classes)
    else:
        summary["problem_type"] = "Regression"
    # The metric train prints last when no tuning job names one, in the
    # shape of a tuning job's HyperParameterTuningJobObjective.
    metric = DEFAULT_OBJECTIVE[task]
    summary["tuning_objective"] = {"MetricName": f"validation:{metric}",
                                   "Type": "Maximize" if MAXIMIZE[metric] else "Minimize"}
    return summary


def write_json(data: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def prepare(argv: list[str], paths: Paths) -> dict[str, Path]:
    options = parse_options(argv, paths)
    resources = ResourceConfig.read(paths.processing_resourceconfig_file)
    table = read_folder(options.input_dir, header=options.header, what="input",
                        ignore=select.leave_out(options.ignore_columns,
                                                select.option_error("--ignore-columns"),
                                                "--ignore-columns")
                        if options.ignore_columns else None)
    target = resolve_target(table, options.target, option="--target")
    if target in table.ignored:
        raise UserError(f"--ignore-columns names the target column {target!r}: leave it out "
                        "of --ignore-columns, or choose another --target")

    frame, counts = clean(table.frame, target)
    if frame.empty:
        raise UserError(f"no row of the input under {options.input_dir} has a value in the "
                        f"target column {target!r}")
    if not options.keep_duplicates:
        before = len(frame)
        frame = frame.drop_duplicates()
        counts["dropped_duplicates"] = before - len(frame)
    task = infer_task(frame[target]) if options.task == "auto" else options.task
    # Target first: the layout train expects by default, with or without a header.
    frame = frame[[target] + [c for c in frame.columns if c != target]]
    parts = split(frame, target, task, options.fractions, options.seed)

    suffix = f"-{resources.current_host}" if resources.is_distributed else ""
    written = {}
    for name, part in parts.items():
        if name != "train" and options.fractions[name] <= 0:
            continue
        path = options.output_dir / name / f"{name}{suffix}.{options.output_format}"
        if options.output_format == "parquet":
            from sklearn_byoc.common import parquet

            with writing(path.parent, f"the {name} split"):
                parquet.write_file(part, path)
        else:
            write_csv(part, path, header=True, what=f"the {name} split")
        written[name] = path
    if options.fractions["test"] > 0:
        path = options.output_dir / "test_features" / f"test_features{suffix}.csv"
        write_csv(parts["test"].drop(columns=[target]), path, header=False,
                  what="the test features")
        written["test_features"] = path

    summary = problem_summary(frame, target, task, parts)
    requests = 0
    # One file of each name for the whole job: the first host writes it.
    if resources.current_host == resources.hosts[0]:
        sample = parts["test"] if len(parts["test"]) else parts["train"]
        written["sample_payload"] = options.output_dir / "sample_payload" / SAMPLE_PAYLOAD
        requests = write_sample_payload(sample.drop(columns=[target]), written["sample_payload"])
        written["problem"] = options.output_dir / "problem" / PROBLEM_FILE
        write_json(summary, written["problem"])

    log.info("%s; task %s (%s), target %r", ", ".join(f"{k} {v}" for k, v in counts.items()),
             task, summary["problem_type"], target)
    for name, path in written.items():
        if name == "sample_payload":
            log.info("wrote %s: %d one-row requests -> %s", name, requests, path)
        elif name == "problem":
            log.info("wrote %s -> %s", name, path)
        else:
            log.info("wrote %s: %d rows -> %s", name, len(parts.get(name, parts["test"])), path)
    return written
