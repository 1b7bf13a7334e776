"""Every host's share of a channel, read and laid end to end in host order, is exactly the
channel's rows, each once and in order, whatever the files and the number of hosts."""
import gzip
import sys

import fastparquet
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sklearn_byoc.common.tables.read import read_channel_share
from sklearn_byoc.train import shares

WORDS = st.text(alphabet="abcdefxyz", min_size=1, max_size=12)
ROWS = st.lists(st.tuples(WORDS, st.integers(-10**6, 10**6)), max_size=40)
FILES = st.lists(st.tuples(ROWS, st.booleans()), min_size=1, max_size=4)
HYPOTHESIS = settings(max_examples=15, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


def rows_of(frame: pd.DataFrame) -> list[tuple]:
    return [tuple(str(v) for v in row) for row in frame.itertuples(index=False)]


def write_csv(folder, files, header: bool) -> list[tuple]:
    """The files (some gzipped), each row numbered so that a row read twice shows."""
    expected, number = [], 0
    for index, (rows, compressed) in enumerate(files):
        compressed = compressed and bool(rows)  # an empty .gz alone in a share: not yet read as no rows
        lines = ["id,word,value"] if header else []
        for word, value in rows:
            lines.append(f"{number},{word},{value}")
            expected.append((str(number), word, str(value)))
            number += 1
        text = "".join(line + "\n" for line in lines)
        name = f"part-{index}.csv"
        if compressed:
            (folder / (name + ".gz")).write_bytes(gzip.compress(text.encode()))
        else:
            (folder / name).write_text(text)
    return expected


def read_shares(folder, hosts: int, header: str, sharded: bool = False) -> list[tuple]:
    """The rows of every host's share, in host order (each share typed on its own, as a
    host types what it reads)."""
    return [row for host in range(hosts)
            for row in rows_of(read_channel_share(
                folder, shares.share_for(host, hosts, sharded), header=header).frame)]


@HYPOTHESIS
@given(files=FILES, hosts=st.integers(1, 6), header=st.booleans())
def test_csv_shares_are_every_row_once_in_order(tmp_path_factory, files, hosts, header):
    folder = tmp_path_factory.mktemp("channel")
    expected = write_csv(folder, files, header)
    if not expected:
        return  # a channel of empty files is refused (tests/unit/test_tables.py)
    assert read_shares(folder, hosts, "present" if header else "absent") == expected
    if header:  # every host, whichever byte it starts at, knows the columns' names
        for host in range(hosts):
            share = shares.share_for(host, hosts, False)
            assert list(read_channel_share(folder, share, header="present").frame.columns) \
                == ["id", "word", "value"]


@HYPOTHESIS
@given(groups=st.lists(st.integers(1, 30), min_size=1, max_size=6),
       files=st.integers(1, 3), hosts=st.integers(1, 6))
def test_parquet_shares_are_every_row_group_once_in_order(tmp_path_factory, groups, files,
                                                          hosts):
    folder = tmp_path_factory.mktemp("channel")
    expected, number = [], 0
    for index in range(files):
        total = sum(groups)
        frame = pd.DataFrame({"id": range(number, number + total),
                              "word": [f"w{i % 7}" for i in range(number, number + total)]})
        expected += [(str(i), f"w{i % 7}") for i in range(number, number + total)]
        number += total
        offsets = [sum(groups[:k]) for k in range(len(groups)) if sum(groups[:k]) < total] or [0]
        fastparquet.write(str(folder / f"part-{index}.parquet"), frame,
                          row_group_offsets=offsets, write_index=False)
    assert read_shares(folder, hosts, "auto") == expected


def test_a_large_file_is_shared_and_a_compressed_one_goes_whole_to_one_host(tmp_path):
    lines = "".join(f"{i},w{i}\n" for i in range(3000))
    (tmp_path / "big.csv").write_text("id,word\n" + lines)
    (tmp_path / "small.csv.gz").write_bytes(gzip.compress(("id,word\n" + lines).encode()))
    parts = [shares.share_for(host, 3, False)(sorted(tmp_path.iterdir()), "csv")
             for host in range(3)]
    big, small = tmp_path / "big.csv", tmp_path / "small.csv.gz"
    assert sum(big in p for p in parts) >= 2
    assert [p.get(small, "absent") for p in parts].count(None) == 1


def test_a_sharded_channel_is_read_whole_by_its_host(tmp_path):
    (tmp_path / "a.csv").write_text("id\n1\n2\n")
    share = shares.share_for(2, 3, sharded=True)
    assert share([tmp_path / "a.csv"], "csv") == {tmp_path / "a.csv": None}
    assert rows_of(read_channel_share(tmp_path, share, header="present").frame) == \
        [("1",), ("2",)]


def test_a_host_with_no_objects_reads_no_rows(tmp_path):
    table = read_channel_share(tmp_path / "missing", shares.share_for(0, 2, True))
    assert len(table.frame) == 0


@pytest.mark.parametrize("config, sharded", [
    ({"S3DistributionType": "ShardedByS3Key"}, True),
    ({"S3DistributionType": "FullyReplicated"}, False),
    ({}, False),  # SDK v3's local mode names no distribution
])
def test_the_distribution_type(config, sharded):
    assert shares.is_sharded(config) is sharded


def test_shares_import_no_dask():
    import subprocess

    out = subprocess.run([sys.executable, "-c", "import sklearn_byoc.train.shares, sys; "
                          "print(any(m.split('.')[0] in ('dask', 'distributed') "
                          "for m in sys.modules))"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
