"""A full disk, reported as something the user can fix.

A SageMaker job writes its model, output data and splits to the ML storage
volume, whose size the job sets: ``ResourceConfig.VolumeSizeInGB`` of a
training job (the SDK estimator's ``volume_size``) and
``ProcessingResources.ClusterConfig.VolumeSizeInGB`` of a processing job (the
SDK ``Processor``'s ``volume_size_in_gb``), 30 GB by default in the SDK.
Instance types with local NVMe storage use that instead, whose size is fixed.
"""
from __future__ import annotations

import errno
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from sklearn_byoc.common.errors import UserError

# EDQUOT: a quota on the volume, which reads the same to the user.
DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)

VOLUME_SETTINGS = {
    "train": "raise the training job's VolumeSizeInGB (the SDK estimator's volume_size, "
             "30 GB by default)",
    "processing": "raise the processing job's VolumeSizeInGB (the SDK Processor's "
                  "volume_size_in_gb, 30 GB by default)",
}
DEFAULT_SETTING = "give the job a larger storage volume (VolumeSizeInGB)"


def size_text(size: int) -> str:
    """Bytes as a person reads them: ``812 bytes``, ``4.0 KiB``, ``1.9 GiB``."""
    if size < 1024:
        return f"{size} bytes"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    return f"{size} bytes"  # pragma: no cover


def is_disk_full(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in DISK_FULL_ERRNOS


class NoSpaceLeft(UserError):
    """The volume holding ``folder`` filled up while ``what`` was written there."""

    def __init__(self, folder: Path, what: str, *, file: str | None = None,
                 needed: int | None = None, written: int | None = None):
        self.folder = Path(folder)
        self.what = what
        self.file = file
        self.needed = needed
        self.written = written
        self.free, self.total = _usage(self.folder)
        super().__init__(self.describe())

    def describe(self, stage: str | None = None) -> str:
        figures = []
        name = self.file or "it"
        if self.needed:
            figures.append(f"{name} needs {size_text(self.needed)}")
        elif self.written:
            figures.append(f"{name} needs more than the {size_text(self.written)} written "
                           "before the volume filled")
        if self.free is not None and self.total:
            figures.append(f"{size_text(self.free)} free of {size_text(self.total)}")
        detail = f" ({'; '.join(figures)})" if figures else ""
        setting = VOLUME_SETTINGS.get(stage or "", DEFAULT_SETTING)
        return (f"no space left on the device while writing {self.what} to {self.folder}"
                f"{detail}: {setting}; instance types with local NVMe storage have a fixed "
                "size, so pick a larger one")


def _usage(folder: Path) -> tuple[int | None, int | None]:
    for candidate in (folder, *folder.parents):
        try:
            usage = shutil.disk_usage(candidate)
        except OSError:
            continue
        return usage.free, usage.total
    return None, None


def from_os_error(exc: OSError, what: str | None = None) -> NoSpaceLeft:
    """A disk-full ``OSError`` raised anywhere, as far as it tells where."""
    path = Path(exc.filename) if exc.filename else None
    folder = path.parent if path is not None else Path.cwd()
    return NoSpaceLeft(folder, what or (f"{path.name}" if path is not None else "a file"))


@contextmanager
def writing(folder: Path, what: str, *, partial: Path | None = None,
            needed: int | None = None, file: str | None = None) -> Iterator[None]:
    """Turn a full disk while writing ``what`` into ``folder`` into :class:`NoSpaceLeft`.

    ``partial`` is the temporary file being written: how much of it got written
    tells at least how much room the file needs, and it is removed, so the
    space it took is free again for the failure reason and the next try.
    """
    try:
        yield
    except OSError as exc:
        if not is_disk_full(exc):
            raise
        written = None
        if partial is not None:
            try:
                if partial.is_file():
                    written = partial.stat().st_size
                partial.unlink(missing_ok=True)
            except OSError:
                pass
        if file is None and partial is not None:
            file = partial.name.removeprefix(".").removesuffix(".partial")
        raise NoSpaceLeft(folder, what, file=file, needed=needed, written=written) from exc
