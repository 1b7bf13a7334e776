"""CSV read in chunks types every column as a parse of the whole column does.

pandas parses a large file in chunks (and in this pandas, in threads by byte range); a
column whose chunks hold different kinds of cells would come out mixed.  Each test builds
the expected frame the way the reader did before chunks: one whole-file parse
(``low_memory=False``) typed by ``type_columns``.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common import cells
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables import Table, csv_chunks
from sklearn_byoc.common.tables.columns import type_columns
from sklearn_byoc.common.tables.read import read_csv_file, read_folder

ROWS = 200_000
HALF = ROWS // 2


def whole_parse(source, header: bool = True, nrows=None) -> pd.DataFrame:
    """The file as one parse of each whole column, typed (the reader before chunks)."""
    frame = pd.read_csv(source, header=0 if header else None, encoding="utf-8",
                        skipinitialspace=True, na_values=list(cells.EXTRA_MISSING_MARKERS),
                        low_memory=False, nrows=nrows)
    frame.columns = [str(c).strip() for c in frame.columns] if header \
        else [f"column_{i}" for i in range(frame.shape[1])]
    # with the file and its first row's record number, messages name lines as the reader does
    where = dict(files=[source], file_starts=[0], first_records=[2 if header else 1]) \
        if isinstance(source, Path) else {}
    return type_columns(Table(frame, header, **where))


def same(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert list(got.columns) == list(expected.columns)
    for name in expected.columns:
        assert got[name].dtype == expected[name].dtype, name
        if expected[name].dtype == object:
            # repr tells True from "True" and 2 from "2" and 2.0
            assert got[name].map(repr).tolist() == expected[name].map(repr).tolist(), name
        else:
            pd.testing.assert_series_equal(got[name], expected[name], check_exact=True)


def big_csv(path: Path) -> Path:
    i = np.arange(ROWS)
    late = i >= HALF
    columns = {
        "num": (i * 0.25).astype(str),
        # numbers ("3.50" parses as 3.5 alone) in the first half, words in the second
        "late_text": np.where(late, np.char.add("w", (i % 7).astype(str)),
                              np.char.add((i % 100).astype(str), ".50")),
        "zip": np.where(late, np.char.add("K1A ", (i % 10).astype(str)),
                        np.char.zfill((i % 1000).astype(str), 5)),
        "flag": np.where(late, np.where(i % 2, "maybe", "unknown"),
                         np.where(i % 2, "True", "False")),
        "word": np.where(i % 11 == 0, np.where(i % 3, " ?", "NA"),
                         np.char.add(np.where(i % 5, "level_", " level_"),
                                     (i % 20).astype(str))),
        "bools": np.where(i % 13 == 0, "", np.where(i % 2, "TRUE", "false")),
        # " NA " is missing to the cells rules, not to pandas: text in some chunks only
        "padded_missing": np.where(i < 300, "NA ", (i % 50).astype(str)),
        # a word in the sampled rows, numbers in most of the others: category text
        "word_then_numbers": np.where(i < 30_000, "abc", (i % 9).astype(str)),
        # numbers in the sampled rows, a word in 20 % of the others: category text
        "numbers_then_words": np.where((i > 1000) & (i % 5 == 0), "xyz",
                                       (i % 9).astype(str)),
    }
    pd.DataFrame(columns).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def big(tmp_path_factory) -> Path:
    return big_csv(tmp_path_factory.mktemp("chunks") / "data.csv")


@pytest.mark.filterwarnings("ignore::pandas.errors.DtypeWarning")
def test_the_file_parses_mixed_in_chunks(big):
    """The file really makes pandas' chunked parse mix kinds in a column (else the tests
    below could not fail)."""
    chunked = pd.read_csv(big, skipinitialspace=True, na_values=["?"])
    for name in ("late_text", "zip", "flag", "padded_missing"):
        assert pd.api.types.infer_dtype(chunked[name], skipna=True) not in ("string", "empty"), \
            name


def test_each_column_is_typed_as_its_whole_parse(big):
    expected = whole_parse(big)
    table = read_folder(big.parent)
    same(table.frame, expected)
    # what that is, spelled out for the columns the chunks would get wrong
    frame = table.frame
    assert frame["late_text"][0] == "0.50" and frame["zip"][1] == "00001"
    assert frame["flag"][1] == "True" and frame["flag"][HALF + 1] == "maybe"
    assert frame["bools"].iloc[1] is True and frame["bools"].iloc[2] is False
    assert frame["padded_missing"].dtype == np.float64
    assert frame["word"][5] == "level_5" and pd.isna(frame["word"][0])


def test_a_stray_word_fails_with_the_message_of_the_whole_parse(tmp_path):
    i = np.arange(ROWS)
    pd.DataFrame({
        **{f"x{k}": (i % 9).astype(str) for k in range(8)},
        "amount": np.where(i == ROWS - 7, "12 kg", np.char.add((i % 90).astype(str), ".0")),
    }).to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(UserError) as old:
        whole_parse(tmp_path / "data.csv")
    with pytest.raises(UserError) as new:
        read_folder(tmp_path)
    assert "'12 kg'" in str(new.value) and f"line {ROWS - 7 + 2} of" in str(new.value)
    assert str(new.value) == str(old.value)


def test_a_word_in_the_sample_of_a_numeric_column_fails_alike(tmp_path):
    """Text in the sampled rows (read as categories), numbers in all the others."""
    i = np.arange(ROWS)
    pd.DataFrame({"x": np.where(i == 3, "n/a yet", (i % 9).astype(str)), "y": i}) \
        .to_csv(tmp_path / "data.csv", index=False)
    with pytest.raises(UserError, match=r"column 'x' holds numbers except 'n/a yet' at "
                                        r"line 5 of .*data.csv \(1 such value"):
        read_folder(tmp_path)


def test_a_byte_range_part_and_no_rows(big):
    size = big.stat().st_size
    start, end = size // 3, 2 * size // 3
    frame, has_header = read_csv_file(big, part=(start, end))
    assert has_header
    from sklearn_byoc.common.tables.read import csv_part

    same(type_columns(Table(frame, True)),
         whole_parse(io.BytesIO(csv_part(big, start, end, True))))
    empty, has_header = read_csv_file(big, part=(0, 0))
    assert has_header and empty.empty
    same(type_columns(Table(empty, True)), whole_parse(big, nrows=0))


@pytest.mark.filterwarnings("ignore::pandas.errors.DtypeWarning")
def test_no_header_missing_markers_and_leading_spaces(tmp_path):
    i = np.arange(ROWS)
    lines = np.char.add(np.char.add(np.where(i % 4 == 0, "", np.where(i % 7 == 0, " NA", " 7")),
                                    ","),
                        np.where(i >= HALF, np.where(i % 3, " ?", "b"), "01"))
    # more columns: pandas parses fewer rows per chunk
    lines = np.char.add(lines, ",1,2,3,4,5,6,7,8,9,10,11,12,13,14")
    (tmp_path / "data.csv").write_text("\n".join(lines.tolist()) + "\n")
    chunked = pd.read_csv(tmp_path / "data.csv", header=None, skipinitialspace=True,
                          na_values=["?"])
    assert pd.api.types.infer_dtype(chunked[1], skipna=True) == "mixed-integer"
    table = read_folder(tmp_path)
    assert not table.has_header
    same(table.frame, whole_parse(tmp_path / "data.csv", header=False))
    assert table.frame["column_1"][0] == "01" and table.frame["column_0"].dtype == np.float64


def test_small_files_read_as_before(tmp_path):
    text = "a,b,c,d\n x,1,True,02139\n?,2,, 02140\ny,NA,false,K1A\n"
    (tmp_path / "data.csv").write_text(text)
    same(read_folder(tmp_path).frame, whole_parse(tmp_path / "data.csv"))


def test_category_cells_come_in_the_order_rows_show_them():
    codes, uniques = cells.distinct(pd.Categorical(["b", None, "a", "b", "c"]))
    assert uniques.tolist() == ["b", "a", "c"] and codes.tolist() == [0, -1, 1, 0, 2]
    assert all(type(u) is str for u in uniques)


def test_the_frame_as_read_holds_the_cells_of_the_whole_parse(big):
    """Before typing: text read as categories holds the same cells; every other column is
    the whole parse's, dtype and all (True/False columns as pandas gives them)."""
    frame, _ = read_csv_file(big)
    whole = pd.read_csv(big, skipinitialspace=True, na_values=["?"], low_memory=False)
    assert list(frame.columns) == list(whole.columns)
    for name in whole.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            column = column.astype(object)
        else:
            assert column.dtype == whole[name].dtype, name
        assert column.map(repr).tolist() == whole[name].astype(object).map(repr).tolist(), name
    assert frame["bools"].dtype == object and frame["bools"].iloc[1] is True


@pytest.mark.filterwarnings("ignore::pandas.errors.DtypeWarning")
def test_integers_beyond_int64_in_later_chunks_stay_uint64(tmp_path):
    """An int64 chunk joined to a uint64 one makes float64; the whole column is uint64."""
    i = np.arange(ROWS)
    pd.DataFrame({**{f"x{k}": i % 9 for k in range(8)},
                  "big": np.where(i >= HALF, (np.uint64(2**63) + i.astype(np.uint64)).astype(str),
                                  (i % 9).astype(str))}).to_csv(tmp_path / "d.csv", index=False)
    assert pd.read_csv(tmp_path / "d.csv")["big"].dtype == np.float64  # the chunks, joined
    frame = read_folder(tmp_path).frame
    assert frame["big"].dtype == np.uint64 and frame["big"].iloc[-1] == 2**63 + ROWS - 1
    same(frame, whole_parse(tmp_path / "d.csv"))


def test_files_stack_as_their_whole_parses_stacked(tmp_path):
    """Text columns read as categories in each file stack with any categories, with a
    file where the column is all missing, and with a file where it is numbers."""
    files = {"a.csv": "t,u,n,v\nx,p,1,k\ny,q,2,l\n", "b.csv": "t,u,n,v\nz,?,3,m\nx,NA,4,k\n",
             "c.csv": "t,u,n,v\n,5,5,n\n?,6,6, n\n", "d.csv": "t,u,n,v\nNA,r,7,o\nw,True,8,k\n"}
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    stacked = pd.concat([pd.read_csv(tmp_path / name, skipinitialspace=True, na_values=["?"],
                                     low_memory=False) for name in sorted(files)],
                        ignore_index=True)
    expected = type_columns(Table(stacked, True))
    got = read_folder(tmp_path).frame
    same(got, expected)
    assert got["t"].tolist()[:4] == ["x", "y", "z", "x"] and got["u"][4] == "5"
    assert got["v"].tolist() == ["k", "l", "m", "k", "n", "n", "o", "k"]



def test_the_sample_names_the_columns_holding_text():
    rows = [["1", "a", "", "NA", "2024-01-01", " 3.5"],
            ["2", "b", "", "?", "2024-01-02", "1e3"]]
    assert csv_chunks.text_columns(rows) == [1, 4]
    assert csv_chunks.text_columns([]) == []
