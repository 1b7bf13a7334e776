"""Getting the user's code ready to run: fetch, unpack, install its requirements.

Framework estimators (``SKLearn(entry_point=..., source_dir=...)``) upload the
source folder as ``sourcedir.tar.gz`` to S3 and name it in the
``sagemaker_submit_directory`` hyperparameter.  SDK local mode with local code
mounts the folder at ``/opt/ml/code`` instead and names that folder.  An image
built on this one may also carry its code in ``/opt/ml/code`` and set no
submit directory at all.  Every one of these ends as a folder on disk.
"""
from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sklearn_byoc.common.archives import safe_extract
from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.s3 import download_object
from sklearn_byoc.common.child_process import ChildResult, run_child

log = logging.getLogger("train")

REQUIREMENTS_FILE = "requirements.txt"


@dataclass
class CodeFolder:
    path: Path
    temporary: bool = False
    """True when the folder was made for this run and is removed after it."""

    def cleanup(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


def describe_folder(folder: Path, limit: int = 15) -> str:
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "cannot be listed"
    if not names:
        return "is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "holds: " + ", ".join(names[:limit]) + more


def fresh_folder(paths: Paths) -> CodeFolder:
    """An empty folder to unpack code into: ``code_dir`` when it is free, else a temp dir.

    A folder that already holds files (code baked into an image, or an earlier
    run on the same tree) is never mixed with the new code nor deleted.
    """
    target = paths.code_dir
    try:
        target.mkdir(parents=True, exist_ok=True)
        if not any(target.iterdir()) and os.access(target, os.W_OK):
            return CodeFolder(target)
        log.info("%s already holds files; unpacking the code into a new folder instead",
                 target)
    except OSError as exc:  # read-only /opt/ml, or not ours to write
        log.info("cannot use %s for the code (%s); unpacking it into a new folder", target, exc)
    return CodeFolder(Path(tempfile.mkdtemp(prefix="sagemaker-code-")), temporary=True)


def fetch_s3(uri: str, destination: Path, region: str | None = None) -> None:
    download_object(uri, destination, what="sagemaker_submit_directory",
                    hint_missing="check the estimator's source_dir/entry_point upload",
                    region=region)


def unpack(archive: Path, paths: Paths, *, source: str, max_bytes: int | None = None
           ) -> CodeFolder:
    folder = fresh_folder(paths)
    log.info("unpacking %s into %s", source, folder.path)
    try:
        safe_extract(archive, folder.path, max_bytes=max_bytes)
    except BaseException:
        if folder.temporary:
            folder.cleanup()
        else:  # leave code_dir as empty as it was found
            for child in list(folder.path.iterdir()):
                if child.is_dir() and not child.is_symlink():
                    shutil.rmtree(child, ignore_errors=True)
                else:
                    child.unlink(missing_ok=True)
        raise
    return folder


def locate_code(paths: Paths, submit_directory: str | None, *, region: str | None = None,
                max_bytes: int | None = None) -> CodeFolder:
    """The folder holding the user's code, fetched and unpacked as needed."""
    if not submit_directory:
        if paths.code_dir.is_dir():
            return CodeFolder(paths.code_dir)
        raise UserError(
            f"sagemaker_program is set but there is no code to run: no "
            f"sagemaker_submit_directory was given and {paths.code_dir} does not exist"
        )
    parsed = urlparse(submit_directory)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        with tempfile.TemporaryDirectory(prefix="sagemaker-download-") as tmp:
            archive = Path(tmp) / "sourcedir.tar.gz"
            log.info("downloading %s", submit_directory)
            fetch_s3(submit_directory, archive, region)
            return unpack(archive, paths, source=submit_directory, max_bytes=max_bytes)
    if scheme == "file":
        local = Path(unquote(parsed.path))
    elif scheme and len(scheme) > 1:  # "c:" is not a scheme
        raise UserError(f"sagemaker_submit_directory {submit_directory!r}: only s3:// URIs, "
                        "file:// URIs and local paths are supported")
    else:
        local = Path(submit_directory)
    if local.is_dir():
        return CodeFolder(local)
    if local.is_file():
        return unpack(local, paths, source=str(local), max_bytes=max_bytes)
    raise UserError(f"sagemaker_submit_directory {submit_directory!r} does not exist")


# -- requirements.txt ------------------------------------------------------------
def requirement_files(code_dir: Path, program_dir: Path) -> list[Path]:
    """``requirements.txt`` at the code root (where the SDK's source_dir puts it) and
    next to the program when that is a sub-folder."""
    found = []
    for folder in (code_dir, program_dir):
        candidate = folder / REQUIREMENTS_FILE
        if candidate.is_file() and candidate.resolve() not in [f.resolve() for f in found]:
            found.append(candidate)
    return found


def pip_error(result: ChildResult, lines: int = 3) -> str:
    """pip's own explanation: its last ``ERROR:`` lines, else its last lines."""
    tail = [line.strip() for line in result.stderr_tail if line.strip()]
    errors = [line for line in tail if line.startswith("ERROR:")]
    chosen = errors[-lines:] if errors else tail[-lines:]
    return " | ".join(chosen) if chosen else "pip printed nothing on stderr"


def install_requirements(requirements: Path, env: dict[str, str] | None = None) -> None:
    """``python -m pip install -r requirements.txt`` into the interpreter that runs the code.

    pip runs in the file's folder, so relative paths in it (``./wheels/x.whl``)
    mean what they mean to someone running pip there.
    """
    argv = [sys.executable, "-m", "pip", "install", "--no-input",
            "--disable-pip-version-check", "-r", str(requirements)]
    log.info("installing the packages in %s", requirements)
    result = run_child(argv, env=env, cwd=requirements.parent)
    if result.stopped_by:
        from sklearn_byoc.common.errors import StageStopped

        raise StageStopped(f"stopped by {result.stopped_by} while installing {requirements}")
    if result.returncode != 0:
        raise UserError(f"installing {requirements} failed (pip exited with code "
                        f"{result.returncode}): {pip_error(result)}")
    log.info("installed the packages in %s", requirements)
