"""Parquet files: what a channel's part files become, and the errors that name them."""
from pathlib import Path

import fastparquet
import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common import parquet
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.common.tables.target import resolve_target

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parquet"


def write(path: Path, frame: pd.DataFrame, **options) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fastparquet.write(str(path), frame, **options)
    return path


def churn_like(n: int = 30) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "tenure": rng.integers(0, 60, n),
        "charges": rng.uniform(10, 90, n).round(2),
        "plan": pd.Series(rng.choice(["basic", " gold", "family"], n), dtype=object),
        "paperless": rng.random(n) < 0.5,
        "churn": pd.Series(rng.choice(["yes", "no"], n), dtype=object),
    })


def test_a_spark_like_folder_of_part_files_reads_as_one_table(tmp_path):
    frame = churn_like(30)
    write(tmp_path / "part-00000-3f2a.c000", frame.iloc[:10], compression="SNAPPY",
          write_index=False)
    write(tmp_path / "day=2" / "part-00001.snappy.parquet", frame.iloc[10:],
          compression="SNAPPY", write_index=False)
    (tmp_path / "_SUCCESS").write_text("")
    (tmp_path / ".part-00000-3f2a.c000.crc").write_bytes(b"crc\x00")
    table = read_folder(tmp_path)
    assert table.format == "parquet" and table.has_header
    assert len(table.frame) == 30
    assert list(table.frame.columns) == ["tenure", "charges", "plan", "paperless", "churn"]
    # Typed as CSV cells are: text stripped, booleans kept for a target, numbers numeric.
    assert table.frame["plan"].dtype == object
    assert set(table.frame["plan"]) == {"basic", "gold", "family"}
    # Files in path order: day=2/ sorts before part-00000.
    expected = pd.concat([frame.iloc[10:], frame.iloc[:10]])
    assert table.frame["paperless"].tolist() == expected["paperless"].tolist()
    assert table.frame["tenure"].tolist() == expected["tenure"].tolist()
    assert pd.api.types.is_integer_dtype(table.frame["tenure"])
    assert resolve_target(table, "churn") == "churn"


def test_nullable_columns_become_plain_numpy_values(tmp_path):
    frame = pd.DataFrame({
        "count": pd.array([1, None, 3], dtype="Int64"),
        "flag": pd.array([True, None, False], dtype="boolean"),
        "ratio": pd.array([0.5, None, 1.5], dtype="Float64"),
        "level": pd.Categorical(["a", None, "b"]),
    })
    read, unsupported = parquet.read_file(write(tmp_path / "f.parquet", frame, write_index=False))
    assert unsupported == {}
    assert read["count"].dtype == np.float64 and np.isnan(read["count"][1])
    assert read["ratio"].dtype == np.float64
    assert read["flag"].dtype == object and read["flag"][0] is True
    assert pd.isna(read["flag"][1])
    assert read["level"].dtype == object and read["level"].tolist()[0] == "a"


def test_a_column_no_estimator_takes_fails_naming_its_parquet_type_unless_ignored(tmp_path):
    nested = FIXTURES / "pyarrow-nested.parquet"
    (tmp_path / "part-0.parquet").write_bytes(nested.read_bytes())
    with pytest.raises(UserError) as info:
        read_folder(tmp_path)
    assert str(info.value).startswith(
        f"column 'tags' holds Parquet type list<int64> in {tmp_path / 'part-0.parquet'}, "
        "which no estimator takes")
    # The option that leaves out every such column, spelled as it is passed.
    assert "ignore_columns=tags,blob" in str(info.value)
    assert "1 more such column(s): 'blob'" in str(info.value)
    table = read_folder(tmp_path, ignore=lambda t: ["tags", "blob"])
    assert "tags" not in table.frame.columns and table.ignored == ["tags", "blob"]
    # fastparquet reads a struct's fields as columns of their own.
    assert table.frame["address.city"].tolist()[0] == "Oslo"


def test_parquet_types_are_named_as_arrow_names_them():
    import fastparquet

    types = parquet.column_types(fastparquet.ParquetFile(
        str(FIXTURES / "pyarrow-nested.parquet")).schema)
    assert types == {"key": "int64", "tags": "list<int64>",
                     "address": "struct<city: string, zip: int64>", "blob": "binary",
                     "score": "double",
                     # fastparquet lists a struct's fields as columns too, and reads them so.
                     "address.city": "string", "address.zip": "int64"}
    spark = sorted((FIXTURES / "spark-dated").glob("part-*"))[0]
    types = parquet.column_types(fastparquet.ParquetFile(str(spark)).schema)
    assert types["signup"] == "date32" and types["last_seen"] == "timestamp[ns] (INT96)"
    types = parquet.column_types(fastparquet.ParquetFile(
        str(FIXTURES / "pandas-dated.parquet")).schema)
    assert types["shipped"] == "timestamp[us, tz=UTC]" and types["noted"] == "timestamp[us]"


def test_a_timedelta_column_fails_naming_it(tmp_path):
    frame = churn_like(10)
    frame["waited"] = pd.to_timedelta(range(10), unit="s")
    write(tmp_path / "part-0.parquet", frame, write_index=False)
    with pytest.raises(UserError, match="column 'waited' holds .*ignore_columns=waited"):
        read_folder(tmp_path)


def test_a_stray_word_in_a_text_column_of_numbers_names_the_row(tmp_path):
    # Athena UNLOAD of a table declared all-string: numbers stored as text.
    frame = pd.DataFrame({"age": [str(i) for i in range(20)], "y": ["a", "b"] * 10})
    frame.loc[13, "age"] = "forty"
    path = write(tmp_path / "20240101_0001", frame, write_index=False)
    with pytest.raises(UserError) as info:
        read_folder(tmp_path)
    assert str(info.value).startswith(f"column 'age' holds numbers except 'forty' at row 14 of "
                                      f"{path}")


def test_a_text_column_of_numbers_is_numeric(tmp_path):
    frame = pd.DataFrame({"age": [str(i) for i in range(20)], "y": ["a", "b"] * 10})
    write(tmp_path / "part-0", frame, write_index=False)
    assert read_folder(tmp_path).frame["age"].tolist() == [float(i) for i in range(20)]


def test_a_damaged_parquet_file_names_itself(tmp_path):
    good = write(tmp_path / "part-0.parquet", churn_like(5), write_index=False)
    bad = tmp_path / "part-1.parquet"
    bad.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])  # cut in half
    with pytest.raises(UserError) as info:
        read_folder(tmp_path)
    message = str(info.value)
    assert message.startswith(f"{bad} cannot be read as Parquet (")
    assert message.endswith("it is damaged or not Parquet: write it again or remove it")


def test_an_encoding_fastparquet_lacks_says_how_to_write_the_file(tmp_path, monkeypatch):
    path = write(tmp_path / "part-0.parquet", churn_like(5), write_index=False)

    class Refusing:
        def __init__(self, _path):
            raise NotImplementedError("Encoding 7")

    monkeypatch.setattr(fastparquet, "ParquetFile", Refusing)
    with pytest.raises(UserError) as info:
        parquet.read_file(path)
    assert str(info.value) == (
        f"{path} cannot be read as Parquet (NotImplementedError: Encoding 7); write it with "
        "data page version 1 and the default encodings (Spark's, pyarrow's and pandas' "
        "defaults) or as CSV")


def test_parquet_part_files_without_rows_are_skipped(tmp_path):
    frame = churn_like(8)
    write(tmp_path / "part-0.parquet", frame, write_index=False)
    write(tmp_path / "part-1.parquet", frame.iloc[:0], write_index=False)
    table = read_folder(tmp_path)
    assert len(table.frame) == 8 and len(table.files) == 1


def test_parquet_files_must_agree_on_their_columns(tmp_path):
    write(tmp_path / "part-0.parquet", churn_like(5), write_index=False)
    bad = write(tmp_path / "part-1.parquet", churn_like(5).rename(columns={"plan": "tier"}),
                write_index=False)
    with pytest.raises(UserError) as info:
        read_folder(tmp_path)
    assert str(info.value).startswith(f"{bad} has different columns from")
    assert "missing: plan" in str(info.value) and "extra: tier" in str(info.value)


def test_a_folder_mixing_csv_and_parquet_names_both(tmp_path):
    write(tmp_path / "part-0.parquet", churn_like(5), write_index=False)
    (tmp_path / "extra.csv").write_text("tenure,churn\n1,yes\n")
    with pytest.raises(UserError) as info:
        read_folder(tmp_path, what="channel 'train'")
    assert str(info.value) == (
        f"channel 'train' folder {tmp_path} mixes Parquet files (part-0.parquet) and CSV files "
        "(extra.csv); keep one format per channel")


@pytest.mark.parametrize("expected, kind, content_type", [
    ("csv", "parquet", "text/csv"), ("parquet", "csv", "application/x-parquet")])
def test_a_content_type_that_disagrees_with_the_files_names_both(tmp_path, expected, kind,
                                                                 content_type):
    if kind == "parquet":
        write(tmp_path / "part-0", churn_like(5), write_index=False)
        held = "Parquet files (part-0)"
    else:
        (tmp_path / "part-0.csv").write_text("tenure,churn\n1,yes\n")
        held = "CSV files (part-0.csv)"
    with pytest.raises(UserError) as info:
        read_folder(tmp_path, what="channel 'train'",
                    expected=(expected, f"ContentType {content_type!r}"))
    assert str(info.value).startswith(
        f"channel 'train' has ContentType {content_type!r} but its folder {tmp_path} holds "
        f"{held}; set the ContentType to ")


def test_written_splits_read_back_as_they_were(tmp_path):
    frame = pd.DataFrame({"churn": ["yes", "no", None], "tenure": [1.0, np.nan, 3.0],
                          "plan": ["gold", np.nan, "basic"], "flag": [True, np.nan, False]},
                         ).astype({"churn": object, "plan": object, "flag": object})
    path = tmp_path / "train" / "train.parquet"
    parquet.write_file(frame, path)
    assert path.read_bytes()[:4] == b"PAR1"
    assert not list(path.parent.glob(".*partial"))
    read, _ = parquet.read_file(path)
    assert read.columns.tolist() == ["churn", "tenure", "plan", "flag"]
    assert read["churn"].tolist()[:2] == ["yes", "no"] and pd.isna(read["churn"][2])
    assert read["tenure"].tolist()[0] == 1.0 and np.isnan(read["tenure"][1])
    assert read["flag"].tolist()[0] is True and read["flag"].tolist()[2] is False


# One table of 60 rows (nullable ints, floats with nulls, a pandas Categorical, text with
# nulls, booleans) written once by pyarrow 26, Polars 2.1 and DuckDB 2.0 with their default
# settings; none of them is a dependency of the image or of the tests.
WRITERS = ("pyarrow-defaults", "polars-defaults", "duckdb-defaults")


@pytest.mark.parametrize("writer", WRITERS)
def test_files_other_writers_make_with_their_defaults_read_alike(tmp_path, writer):
    (tmp_path / "part-0").write_bytes((FIXTURES / f"{writer}.parquet").read_bytes())
    table = read_folder(tmp_path)
    frame = table.frame
    assert frame.columns.tolist() == ["tenure", "charges", "plan", "region", "paperless", "churn"]
    assert len(frame) == 60
    assert frame.isna().sum().to_dict() == {"tenure": 7, "charges": 6, "plan": 0, "region": 5,
                                            "paperless": 0, "churn": 0}
    assert pd.api.types.is_float_dtype(frame["tenure"])
    assert set(frame["plan"]) == {"basic", "gold", "family"}
    assert set(frame["churn"]) == {"yes", "no"}
    assert frame["paperless"].map(type).eq(bool).all()


def test_the_writers_agree_cell_for_cell():
    frames = []
    for writer in WRITERS:
        frame, unsupported = parquet.read_file(FIXTURES / f"{writer}.parquet")
        assert unsupported == {}
        frames.append(frame)
    for other in frames[1:]:
        pd.testing.assert_frame_equal(other, frames[0], check_dtype=False)
