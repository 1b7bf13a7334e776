"""Finding the training data in the channels and splitting it into X and y."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import CSV, PARQUET, Table

log = logging.getLogger("train")

TRAINING_CHANNELS = ("train", "training")
VALIDATION_CHANNELS = ("validation", "valid", "val")
CSV_CONTENT_TYPES = ("text/csv", "csv", "text/plain")
# application/x-parquet is SageMaker's name; application/vnd.apache.parquet the
# IANA-registered one.
PARQUET_CONTENT_TYPES = ("application/x-parquet", "application/parquet",
                         "application/vnd.apache.parquet", "parquet")


@dataclass(frozen=True)
class Channels:
    training: str
    validation: str | None
    header: str  # auto | present | absent, from the channel's ContentType
    # Per channel: (format, "ContentType '...'") when the ContentType names one.
    formats: dict[str, tuple[str, str] | None] = field(default_factory=dict)


def available_channels(paths: Paths, input_config: dict) -> list[str]:
    names = set(input_config)
    if paths.data_dir.is_dir():
        names.update(p.name for p in paths.data_dir.iterdir()
                     if p.is_dir() and not p.name.startswith("."))
    return sorted(names)


def read_content_type(content_type: str, channel: str) -> tuple[tuple[str, str] | None, str]:
    """The format a channel's ContentType names (with where it was said) and its header.

    ``text/csv;header=present`` is SageMaker's way to say a CSV has a header.
    """
    kind, _, params = content_type.partition(";")
    kind = kind.strip().lower()
    said = f"ContentType {content_type!r}"
    if not kind:
        return None, "auto"
    if kind in PARQUET_CONTENT_TYPES:
        return (PARQUET, said), "auto"
    if kind not in CSV_CONTENT_TYPES:
        raise UserError(
            f"channel {channel!r} has ContentType {content_type!r}; the built-in trainer reads "
            "CSV (text/csv) and Parquet (application/x-parquet) - convert the data or bring "
            "your own training script"
        )
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "header":
            value = value.strip().lower()
            if value in ("present", "absent"):
                return (CSV, said), value
    return (CSV, said), "auto"


def choose_channels(paths: Paths, input_config: dict) -> Channels:
    names = available_channels(paths, input_config)
    if not names:
        raise UserError(
            f"no input channel found: {paths.data_dir} has no channel folders; give the "
            "training job a channel named 'train' (Estimator.fit({'train': ...}))"
        )
    training = next((n for n in TRAINING_CHANNELS if n in names), None)
    if training is None:
        if len(names) == 1:
            training = names[0]
        else:
            raise UserError(
                f"cannot tell which channel holds the training data among {', '.join(names)} "
                f"(under {paths.data_dir}); name it 'train' or 'training'"
            )
    validation = next((n for n in VALIDATION_CHANNELS if n in names and n != training), None)
    for name in [training] + ([validation] if validation else []):
        mode = input_config.get(name, {}).get("TrainingInputMode", "File")
        if str(mode).lower() == "pipe":
            raise UserError(
                f"channel {name!r} uses Pipe input mode, which the built-in trainer does not "
                "read; use input_mode='File' or 'FastFile'"
            )
    formats, header = {}, "auto"
    for name in [training] + ([validation] if validation else []):
        content_type = str(input_config.get(name, {}).get("ContentType", "") or "")
        formats[name], channel_header = read_content_type(content_type, name)
        if name == training:
            header = channel_header
    return Channels(training, validation, header, formats)


def feature_kinds(frame: pd.DataFrame) -> dict[str, str]:
    """Each column's kind: numeric, categorical, or date (typed as datetime64 on reading)."""
    return {
        str(name): ("date" if pd.api.types.is_datetime64_any_dtype(frame[name]) else
                    "numeric" if pd.api.types.is_numeric_dtype(frame[name])
                    and not pd.api.types.is_bool_dtype(frame[name]) else "categorical")
        for name in frame.columns
    }


def date_parts(kinds: dict[str, str], table: Table) -> dict[str, list[str]]:
    """Each date feature's parts, ``hour`` where the training data holds times."""
    from sklearn_byoc.common import dates

    return {name: dates.parts_for(table.dates.get(name, True))
            for name, kind in kinds.items() if kind == "date"}


def split_xy(table: Table, target: str, what: str) -> tuple[pd.DataFrame, pd.Series]:
    frame = table.frame
    missing = frame[target].isna()
    if missing.all():
        raise UserError(f"the target column {target!r} of the {what} data is empty in every row")
    if missing.any():
        log.warning("dropping %d %s row(s) with no target value (first at %s)",
                    int(missing.sum()), what, table.where(int(np.flatnonzero(missing)[0])))
        frame = frame.loc[~missing]
    X = frame.drop(columns=[target])
    if X.shape[1] == 0:
        raise UserError(f"the {what} data has only the target column {target!r}; no features")
    return X, frame[target]


def align_validation(X_val: pd.DataFrame, features: list[str], source: Path) -> pd.DataFrame:
    """The validation data's feature columns, in the order of the training ``features``."""
    missing = [c for c in features if c not in X_val.columns]
    if missing:
        raise UserError(
            f"validation data under {source} lacks feature column(s) "
            f"{', '.join(map(str, missing[:20]))} that the training data has"
        )
    return X_val[list(features)]
