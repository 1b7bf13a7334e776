"""Where a user's code is: a submit directory made a folder on disk.

The SDK uploads a framework estimator's or model's ``source_dir`` as
``sourcedir.tar.gz`` to S3; SDK local mode with local code gives a host folder
(or an archive file) instead; ``file://`` URIs name the same.  An archive is
recognised by its content, not its name.
"""
from __future__ import annotations

import functools
import logging
import os
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

from sklearn_byoc.common.archives import safe_extract
from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError

log = logging.getLogger("user_code")

ARCHIVE_NAME = "sourcedir.tar.gz"


def describe_folder(folder: Path, limit: int = 15) -> str:
    """What a folder holds, for a message saying a file is not in it."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    except OSError:
        return "cannot be listed" if folder.exists() else "does not exist"
    if not names:
        return "is empty"
    more = f", ... ({len(names)} entries)" if len(names) > limit else ""
    return "holds: " + ", ".join(names[:limit]) + more


def source_of(value: str, what: str) -> str | Path:
    """A submit directory as an ``s3://`` URI (text) or a local path."""
    parsed = urlparse(value)
    scheme = parsed.scheme.lower()
    if scheme == "s3":
        return value
    if scheme and scheme != "file" and len(scheme) > 1:  # "c:" is not a scheme
        raise UserError(f"{what} {value!r}: only s3:// URIs, file:// URIs and local paths "
                        "are supported")
    return Path(unquote(parsed.path) if scheme == "file" else value)


def fetch_s3(uri: str, destination: Path, *, what: str, hint: str,
             region: str | None = None) -> None:
    from sklearn_byoc.common.s3 import download_object  # boto3 only when code is in S3

    log.info("downloading %s", uri)
    download_object(uri, destination, what=what, hint_missing=hint, region=region)


def unpack(archive: Path, target: Path, *, source: str, what: str,
           max_bytes: int | None = None) -> Path:
    """Unpack a code archive into ``target``; a zip or a stray file is refused in one line."""
    if zipfile.is_zipfile(archive) and not tarfile.is_tarfile(archive):
        raise UserError(f"{what}: {source} is a zip archive; pack the code as tar.gz (what "
                        f"the SDK uploads as {ARCHIVE_NAME})")
    if not tarfile.is_tarfile(archive):
        raise UserError(f"{what}: {source} is a file but not a readable tar archive; name "
                        "the code's folder, or a .tar.gz of it")
    log.info("unpacking %s into %s", source, target)
    safe_extract(archive, target, max_bytes=max_bytes)
    return target


# -- a folder per process (inference code: every model of an endpoint may share it) ---------
@functools.lru_cache(maxsize=None)
def fetched_once(uri: str, what: str, hint: str) -> Path:
    """Fetched and unpacked once per process, however many models use it."""
    folder = Path(tempfile.mkdtemp(prefix="sagemaker-code-"))
    archive = folder / ARCHIVE_NAME
    fetch_s3(uri, archive, what=what, hint=hint)
    return unpack(archive, folder / "code", source=uri, what=what)


@functools.lru_cache(maxsize=None)
def unpacked_once(path: str, what: str) -> Path:
    return unpack(Path(path), Path(tempfile.mkdtemp(prefix="sagemaker-code-")) / "code",
                  source=path, what=what)


# -- a folder per job (training and processing scripts) --------------------------------------
@dataclass
class CodeFolder:
    path: Path
    temporary: bool = False
    """True when the folder was made for this run and is removed after it."""

    def cleanup(self) -> None:
        if self.temporary:
            shutil.rmtree(self.path, ignore_errors=True)


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


def unpack_job_code(archive: Path, paths: Paths, *, source: str, what: str,
                    max_bytes: int | None = None) -> CodeFolder:
    folder = fresh_folder(paths)
    try:
        unpack(archive, folder.path, source=source, what=what, max_bytes=max_bytes)
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


SUBMIT_KEY = "sagemaker_submit_directory"


def locate_code(paths: Paths, submit_directory: str | None, *, region: str | None = None,
                max_bytes: int | None = None) -> CodeFolder:
    """The folder holding a job's code (``sagemaker_submit_directory``), fetched and
    unpacked as needed; without one, the image's ``/opt/ml/code``."""
    if not submit_directory:
        if paths.code_dir.is_dir():
            return CodeFolder(paths.code_dir)
        raise UserError(
            f"sagemaker_program is set but there is no code to run: no {SUBMIT_KEY} was "
            f"given and {paths.code_dir} does not exist")
    source = source_of(submit_directory, SUBMIT_KEY)
    if isinstance(source, str):
        with tempfile.TemporaryDirectory(prefix="sagemaker-download-") as tmp:
            archive = Path(tmp) / ARCHIVE_NAME
            fetch_s3(source, archive, what=SUBMIT_KEY,
                     hint="check the estimator's source_dir/entry_point upload", region=region)
            return unpack_job_code(archive, paths, source=source, what=SUBMIT_KEY,
                                   max_bytes=max_bytes)
    if source.is_dir():
        return CodeFolder(source)
    if source.is_file():
        return unpack_job_code(source, paths, source=str(source), what=SUBMIT_KEY,
                               max_bytes=max_bytes)
    raise UserError(f"{SUBMIT_KEY} {submit_directory!r} does not exist")
