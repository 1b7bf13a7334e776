"""The model directory: what ``train`` writes and ``serve``/``evaluate`` read.

``/opt/ml/model`` holds two files:

- ``model.joblib`` — the fitted scikit-learn pipeline, preprocessing included,
  so it takes raw feature rows;
- ``metadata.json`` — feature names, order and kinds (a date feature with its
  parts, the columns the pipeline takes in its place), the target, the task,
  the classes, the metrics and the library versions it was trained with, and
  every column of the training data with its role (``columns``: feature,
  target or ignored, in file order; ``ignored_columns``: the names left out
  by ``ignore_columns``), so a request may carry the left-out columns too.

``serve`` also takes a folder holding only ``model.joblib`` (or ``model.pkl``),
as plain scikit-learn code or a training script written for AWS's
scikit-learn image leaves it: the metadata is then read from the estimator.

SageMaker packs the folder into ``model.tar.gz`` and unpacks it into
``/opt/ml/model`` before ``serve`` starts (SDK local mode leaves the tarball
there too).  Both files are written under temporary names and renamed, the
metadata last, so a folder never holds half a model.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from sklearn_byoc.common import compat, dates
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.pickle_versions import WrittenBy

log = logging.getLogger("model")

MODEL_FILE = "model.joblib"
# The names a model file has in folders made elsewhere, in the order they are looked for.
MODEL_FILES = (MODEL_FILE, "model.pkl")
METADATA_FILE = "metadata.json"
TARBALL = "model.tar.gz"
FORMAT_VERSION = 1


class ModelLoadError(UserError):
    """The model folder cannot be used; the message names the file and the problem."""


@dataclass
class Feature:
    name: str
    kind: str  # "numeric", "categorical" or "date"
    # A date feature's parts (common/dates.py), the model's columns <name>__<part> in order.
    parts: list[str] | None = None

    def to_json(self) -> dict:
        if self.kind != "date":
            return {"name": self.name, "kind": self.kind}
        return {"name": self.name, "kind": self.kind, "parts": list(self.parts or []),
                "times": dates.TIME_PART in (self.parts or []),
                "columns": [dates.part_column(self.name, p) for p in self.parts or []]}

    @classmethod
    def from_json(cls, raw: dict) -> "Feature":
        kind = str(raw["kind"])
        parts = dates.check_parts([str(p) for p in raw["parts"]]) if kind == "date" else None
        return cls(str(raw["name"]), kind, parts)


@dataclass
class Column:
    """A column of the training data: its name and its role."""

    name: str
    role: str  # "feature", "target" or "ignored"

    def to_json(self) -> dict:
        return {"name": self.name, "role": self.role}


@dataclass
class ModelMetadata:
    target: str
    task: str  # "classification" or "regression"
    features: list[Feature]
    classes: list[Any] | None = None
    model: str = ""
    estimator: str = ""
    params: dict | None = None
    metrics: dict | None = None
    versions: dict | None = None
    training_rows: int = 0
    header: bool = True
    # Every column of the training data in file order (its position there is its
    # index in this list, the target's included); empty for models saved before.
    columns: list[Column] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)
    # A job on several instances: how many, and how the model used their rows.
    hosts: dict | None = None
    format_version: int = FORMAT_VERSION

    @property
    def feature_names(self) -> list[str]:
        return [f.name for f in self.features]

    @property
    def kinds(self) -> dict[str, str]:
        return {f.name: f.kind for f in self.features}

    @property
    def date_parts(self) -> dict[str, list[str]]:
        """Each date feature's parts."""
        return {f.name: list(f.parts or []) for f in self.features if f.kind == "date"}

    @property
    def model_columns(self) -> list[str]:
        """The columns the fitted pipeline takes, in order: each date feature as its parts."""
        return list(dates.column_kinds(self.kinds, self.date_parts))

    @property
    def is_classifier(self) -> bool:
        return self.task == "classification"

    def to_json(self) -> dict:
        return {
            "format_version": self.format_version,
            "target": self.target,
            "task": self.task,
            "features": [f.to_json() for f in self.features],
            "classes": self.classes,
            "model": self.model,
            "estimator": self.estimator,
            "params": self.params or {},
            "metrics": self.metrics or {},
            "versions": self.versions or library_versions(),
            "training_rows": self.training_rows,
            "header": self.header,
            "columns": [c.to_json() for c in self.columns],
            "ignored_columns": list(self.ignored_columns),
            **({"hosts": self.hosts} if self.hosts else {}),
        }

    @classmethod
    def from_json(cls, raw: dict, source: Path) -> "ModelMetadata":
        try:
            return cls(
                target=str(raw["target"]),
                task=str(raw["task"]),
                features=[Feature.from_json(f) for f in raw["features"]],
                classes=raw.get("classes"),
                model=raw.get("model", ""),
                estimator=raw.get("estimator", ""),
                params=raw.get("params") or {},
                metrics=raw.get("metrics") or {},
                versions=raw.get("versions") or {},
                training_rows=int(raw.get("training_rows", 0)),
                header=bool(raw.get("header", True)),
                columns=[Column(str(c["name"]), str(c["role"]))
                         for c in raw.get("columns") or []],
                ignored_columns=[str(c) for c in raw.get("ignored_columns") or []],
                hosts=raw.get("hosts") or None,
                format_version=int(raw.get("format_version", FORMAT_VERSION)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(
                f"{source} is missing or has a bad field ({exc!r}); it was not written "
                "by this image's train stage, or it was edited"
            ) from exc


def library_versions() -> dict[str, str]:
    import joblib
    import numpy
    import pandas
    import sklearn

    return {
        "python": platform.python_version(),
        # The image's build argument SKLEARN_VERSION: the line a matching image is built for.
        "scikit-learn-line": compat.line_of(sklearn.__version__),
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
        "numpy": numpy.__version__,
        "joblib": joblib.__version__,
    }


def save_model(model_dir: Path, model: Any, metadata: ModelMetadata) -> None:
    import joblib

    from sklearn_byoc.common.disk import writing

    model_tmp = model_dir / f".{MODEL_FILE}.partial"
    meta_tmp = model_dir / f".{METADATA_FILE}.partial"
    text = json.dumps(metadata.to_json(), indent=2, default=str) + "\n"
    try:
        with writing(model_dir, "the model", partial=model_tmp):
            model_dir.mkdir(parents=True, exist_ok=True)
            # A run killed while saving leaves its temporary files behind.
            for tmp in (model_tmp, meta_tmp):
                tmp.unlink(missing_ok=True)
            joblib.dump(model, model_tmp)
        with writing(model_dir, "the model's metadata", partial=meta_tmp,
                     needed=len(text.encode("utf-8"))):
            meta_tmp.write_text(text, encoding="utf-8")
        os.replace(model_tmp, model_dir / MODEL_FILE)
        os.replace(meta_tmp, model_dir / METADATA_FILE)
    finally:
        for tmp in (model_tmp, meta_tmp):
            if tmp.exists():
                tmp.unlink()


def remove_model(model_dir: Path) -> None:
    """Drop a model left by an earlier run on the same tree (metadata first)."""
    for name in (METADATA_FILE, MODEL_FILE):
        try:
            (model_dir / name).unlink()
        except FileNotFoundError:
            pass


@dataclass
class LoadedModel:
    model: Any
    metadata: ModelMetadata | None  # None: a model file without metadata.json
    directory: Path
    written: WrittenBy | None = None  # the scikit-learn that pickled it, read before loading

    @contextlib.contextmanager
    def version_check(self) -> Iterator["VersionCheck"]:
        """Where another scikit-learn pickled the model: the block learns whether it was
        another line (``check.other_line``), a failure inside becomes the one-line refusal,
        and one warning is logged when the block ends well (scikit-learn's own warnings,
        one per estimator, were silenced at load)."""
        written = self.written
        check = VersionCheck(bool(written and written.other_line))
        if written is None or not written.differs:
            yield check
            return
        try:
            yield check
        except Exception as exc:  # noqa: BLE001 - any failure of a model of another line
            if not check.other_line:
                raise
            raise ModelLoadError(written.refusal(exc)) from exc
        log.warning("%s", written.warning(probed=check.probed))


@dataclass
class VersionCheck:
    other_line: bool
    probed: bool = False  # the block predicted with the model


def _describe_folder(folder: Path) -> str:
    try:
        names = sorted(p.name for p in folder.iterdir())
    except OSError:
        return "cannot be listed"
    return "holds: " + (", ".join(names[:10]) if names else "nothing")


def model_file(folder: Path) -> Path | None:
    return next((folder / n for n in MODEL_FILES if (folder / n).is_file()), None)


def resolve_model_dir(model_dir: Path) -> Path:
    """The folder holding the model files; unpacks a lone ``model.tar.gz`` into /tmp."""
    if not model_dir.is_dir():
        raise ModelLoadError(f"model folder {model_dir} does not exist; train a model first "
                             "or point the job at a model.tar.gz made by this image")
    if model_file(model_dir) is not None:
        return model_dir
    tarball = model_dir / TARBALL
    if tarball.is_file():
        from sklearn_byoc.common.archives import safe_extract

        target = Path(tempfile.mkdtemp(prefix="model-"))
        log.info("unpacking %s into %s", tarball, target)
        try:
            safe_extract(tarball, target)
        except (tarfile.TarError, OSError) as exc:
            raise ModelLoadError(f"{tarball} cannot be unpacked: {exc}") from exc
        if model_file(target) is not None:
            return target
        raise ModelLoadError(f"{tarball} does not contain {' or '.join(MODEL_FILES)}; "
                             f"it {_describe_folder(target)}")
    raise ModelLoadError(f"{model_dir / MODEL_FILE} is missing (the folder "
                         f"{_describe_folder(model_dir)}); put the fitted model there as "
                         f"{' or '.join(MODEL_FILES)} (joblib.dump), or train it with this "
                         "image's train stage. SDK v3's ModelBuilder in local mode mounts only "
                         "the code/ folder of model_path here: put the model files in "
                         "<model_path>/code")


def load_metadata(model_dir: Path) -> ModelMetadata:
    path = model_dir / METADATA_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelLoadError(f"{path} is missing; the model folder is incomplete "
                             "(retrain, or copy metadata.json with model.joblib)") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"{path} cannot be read as JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise ModelLoadError(f"{path} must hold a JSON object")
    return ModelMetadata.from_json(raw, path)


def load_model(model_dir: Path, *, require_metadata: bool = True,
               check_versions: bool = True) -> LoadedModel:
    """The model of ``model_dir``; its metadata is None when the folder has none and
    ``require_metadata`` is false.  A model that another scikit-learn line pickled and
    that fails to load is refused with the image that serves it; without
    ``check_versions`` the caller ends the check (``LoadedModel.version_check``)."""
    import joblib

    folder = resolve_model_dir(model_dir)
    if require_metadata or (folder / METADATA_FILE).exists():
        metadata = load_metadata(folder)
    else:
        metadata = None
    # The model folder is trusted: it is the one file a model is unpickled from.
    path = model_file(folder)
    recorded = ((metadata.versions if metadata else None) or {}).get("scikit-learn")
    written = WrittenBy.read(path, recorded)
    try:
        with compat.quiet_version_warnings() if written.differs else contextlib.nullcontext():
            model = joblib.load(path)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        if written.other_line:
            raise ModelLoadError(written.refusal(exc)) from exc
        raise ModelLoadError(
            f"{path} cannot be loaded ({type(exc).__name__}: {exc}); the file is corrupt "
            "or was written by incompatible library versions"
        ) from exc
    if not hasattr(model, "predict"):
        raise ModelLoadError(f"{path} holds a {type(model).__name__}, not a fitted model")
    loaded = LoadedModel(model, metadata, folder, written)
    if check_versions:
        with loaded.version_check():
            pass
    return loaded
