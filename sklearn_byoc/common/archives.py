"""Unpacking ``tar.gz`` archives (model tarballs, user code) without trusting them.

Every member is checked before anything is written: no absolute paths, no
``..``, no links pointing outside the target, no devices or FIFOs, and a cap
on the total unpacked size.  A refused archive names the member and the rule
it broke.  Python's own ``data`` filter runs as a second line of defence.
"""
from __future__ import annotations

import os
import tarfile
from pathlib import Path, PurePosixPath

from sklearn_byoc.common.errors import UserError

DEFAULT_MAX_BYTES = 2 * 1024**3  # 2 GiB unpacked
MAX_BYTES_ENV = "SAGEMAKER_MAX_ARCHIVE_BYTES"


class ArchiveError(UserError):
    pass


def _max_bytes() -> int:
    raw = os.environ.get(MAX_BYTES_ENV, "").strip()
    return int(raw) if raw.isdigit() else DEFAULT_MAX_BYTES


def _inside(target: Path, relative: str) -> bool:
    resolved = (target / relative).resolve()
    root = target.resolve()
    return resolved == root or root in resolved.parents


def check_member(member: tarfile.TarInfo, target: Path) -> str | None:
    """Why ``member`` must not be unpacked into ``target``, or None when it is safe."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in path.parts:
        return "path climbs out of the target with '..'"
    if not _inside(target, name):
        return "path resolves outside the target"
    if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
        return "device or FIFO"
    if member.issym():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or not _inside(target, str(path.parent / link)):
            return f"symbolic link to {member.linkname!r} points outside the target"
    if member.islnk():
        link = PurePosixPath(member.linkname)
        if link.is_absolute() or ".." in link.parts or not _inside(target, member.linkname):
            return f"hard link to {member.linkname!r} points outside the target"
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        return "unsupported member type"
    return None


def safe_extract(archive: Path, target: Path, *, max_bytes: int | None = None) -> list[str]:
    """Unpack ``archive`` into ``target``; returns the member names."""
    limit = _max_bytes() if max_bytes is None else max_bytes
    target.mkdir(parents=True, exist_ok=True)
    try:
        tar = tarfile.open(archive, "r:*")
    except (tarfile.TarError, OSError) as exc:
        raise ArchiveError(f"{archive} is not a readable tar archive: {exc}") from exc
    with tar:
        try:
            members = tar.getmembers()
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArchiveError(f"{archive} is truncated or corrupt: {exc}") from exc
        total = 0
        for member in members:
            why = check_member(member, target)
            if why:
                raise ArchiveError(f"{archive}: refused member {member.name!r}: {why}")
            total += max(member.size, 0)
            if total > limit:
                raise ArchiveError(
                    f"{archive}: refused member {member.name!r}: unpacked size passes the "
                    f"{limit} byte cap (raise {MAX_BYTES_ENV} if the archive is meant to be "
                    "this large)"
                )
        try:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(target, members=members, filter="data")
            else:  # Python before 3.11.4: the checks above are the only line of defence
                tar.extractall(target, members=members)
        except (tarfile.TarError, OSError) as exc:
            raise ArchiveError(f"{archive} could not be unpacked: {exc}") from exc
    return [m.name for m in members]
