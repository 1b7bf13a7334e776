"""Which part of a channel each host of a training job reads.

- ``ShardedByS3Key``: SageMaker gave each instance its own objects; a host reads all of them.
- ``FullyReplicated`` (and a channel that names no distribution, as SDK v3's local mode
  writes it): every instance has every file, so the hosts split the channel by size.  The
  files' bytes, in the folder's order, are cut into as many equal spans as there are hosts,
  and host *i* reads what starts in span *i*: the lines of a CSV file that start there, the
  row groups of a Parquet file that start there (a row group's start is placed in
  proportion to the rows before it), a whole compressed CSV file (which cannot be cut) when
  it starts there.  Every row is read by exactly one host, and one large file is shared.

A CSV file whose quoted values hold line breaks cannot be cut by bytes; give such data as
several files or as Parquet.
"""
from __future__ import annotations

from pathlib import Path

from sklearn_byoc.common.tables import CSV
from sklearn_byoc.common.tables.read import Share
from sklearn_byoc.common.tables.scan import COMPRESSED_SUFFIXES

SHARDED = "shardedbys3key"


def is_sharded(channel_config: dict) -> bool:
    return str(channel_config.get("S3DistributionType", "")).strip().lower() == SHARDED


def spans(sizes: list[int], host: int, hosts: int) -> tuple[int, int]:
    """The span of the files' bytes, laid end to end, that host ``host`` of ``hosts`` reads."""
    total = sum(sizes)
    return total * host // hosts, total * (host + 1) // hosts


def share_for(host: int, hosts: int, sharded: bool) -> Share:
    """What host number ``host`` (0-based, in the order of resourceconfig.json's hosts) of
    ``hosts`` reads of a channel's data files."""
    def share(paths: list[Path], kind: str) -> dict:
        if sharded or hosts == 1:
            return {path: None for path in paths}
        sizes = [path.stat().st_size for path in paths]
        low, high = spans(sizes, host, hosts)
        parts: dict = {}
        offset = 0
        for path, size in zip(paths, sizes):
            start, end = offset, offset + size
            offset = end
            if kind == CSV:
                if path.name.lower().endswith(COMPRESSED_SUFFIXES):
                    if low <= start < high:
                        parts[path] = None
                elif start < high and end > low:
                    part = (max(low, start) - start, min(high, end) - start)
                    parts[path] = None if part == (0, size) else part
            else:
                groups = _row_groups_starting_in(path, start, size, low, high)
                if groups is not None:
                    parts[path] = groups
        return parts
    return share


def _row_groups_starting_in(path: Path, start: int, size: int, low: int,
                            high: int) -> slice | None:
    from sklearn_byoc.common.parquet import row_group_rows

    if start >= high or start + size <= low:
        return None
    rows = row_group_rows(path)
    total = sum(rows) or 1
    chosen, before = [], 0
    for index, count in enumerate(rows):
        at = start + size * before // total
        if low <= at < high:
            chosen.append(index)
        before += count
    return slice(chosen[0], chosen[-1] + 1) if chosen else None
