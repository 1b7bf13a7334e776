"""Date features: which columns are dates, the part columns they become, and the same
parts from files (train, evaluate) and from request cells (serve).

Expected parts are worked out by hand or with Python's ``datetime``, never by
``common/dates.py``.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from sklearn_byoc.common import cells, dates
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.model_files import (Feature, ModelLoadError, ModelMetadata,
                                             load_metadata)
from sklearn_byoc.common.tables.columns import conform_features
from sklearn_byoc.common.tables.read import read_folder
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.schema import Schema
from sklearn_byoc.train import data

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "parquet"
ALL_PARTS = ["year", "month", "day", "day_of_week", "day_of_year", "hour", "days_since_epoch"]


def days_since_epoch(when: dt.datetime) -> float:
    return (when - dt.datetime(1970, 1, 1)).total_seconds() / 86400


def parts_of(text: str, parts=ALL_PARTS) -> dict[str, float]:
    value = dates.parse_date(text)
    return {k.split("__")[1]: v[0] for k, v in dates.expand("d", np.array([value]),
                                                             parts).items()}


# -- cells -----------------------------------------------------------------------------------
def test_a_zoned_date_time_is_taken_at_its_utc_instant():
    # 00:30 at UTC+2 on 1 March 2024 is 22:30 UTC on Thursday 29 February (a leap day).
    assert parts_of("2024-03-01 00:30:00+02:00") == {
        "year": 2024, "month": 2, "day": 29, "day_of_week": 3, "day_of_year": 60, "hour": 22,
        "days_since_epoch": days_since_epoch(dt.datetime(2024, 2, 29, 22, 30))}
    assert parts_of("2024-03-01T12:30:00Z")["hour"] == 12
    assert parts_of("2024-03-01T12:30:00-0530")["hour"] == 18  # 18:00 UTC


def test_a_naive_date_time_is_taken_as_written():
    got = parts_of("2024-03-01T12:30:00")
    # Friday 1 March 2024: Monday is 0.
    assert got == {"year": 2024, "month": 3, "day": 1, "day_of_week": 4, "day_of_year": 61,
                   "hour": 12, "days_since_epoch": 19783 + 12.5 / 24}
    assert (dt.date(2024, 3, 1) - dt.date(1970, 1, 1)).days == 19783


def test_dates_before_1970_and_a_9999_sentinel_have_their_parts():
    assert parts_of("1969-12-31")["days_since_epoch"] == -1
    assert parts_of("1969-12-31")["day_of_week"] == 2  # a Wednesday
    far = parts_of("9999-12-31")
    assert far["year"] == 9999 and far["day_of_year"] == 365
    assert far["days_since_epoch"] == (dt.date(9999, 12, 31) - dt.date(1970, 1, 1)).days


@pytest.mark.parametrize("text", ["2024-02-30", "2024-03-01T25:00", "01/03/2024", "yesterday",
                                  "2024-03", "20240301"])
def test_a_cell_that_is_no_iso_date_is_refused_saying_what_was_expected(text):
    with pytest.raises(cells.CellError, match="ISO-8601|out of range"):
        dates.parse_date(text)


def test_missing_cells_are_nan_in_every_part():
    values, refused = dates.date_column(np.array(["2024-03-01", None, "", "NA", "?"],
                                                 dtype=object))
    assert not refused.any()
    for part in dates.expand("d", values, ALL_PARTS).values():
        assert not math.isnan(part[0]) and np.isnan(part[1:]).all()


def test_the_model_columns_put_each_date_feature_parts_in_its_place():
    kinds = {"a": "numeric", "when": "date", "b": "categorical"}
    assert list(dates.column_kinds(kinds, {"when": dates.parts_for(False)})) == [
        "a", "when__year", "when__month", "when__day", "when__day_of_week",
        "when__day_of_year", "when__days_since_epoch", "b"]


# -- text columns ----------------------------------------------------------------------------
def write_csv(folder: Path, text: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_text(text)
    return folder


def test_a_csv_column_of_iso_dates_is_a_date_feature_with_hours_only_where_times_are(tmp_path):
    # "midnight" writes a time, but every one is midnight: as a date column, no hour.
    folder = write_csv(tmp_path, "day,stamp,note,midnight,y\n"
                                 "2024-03-01,2024-03-01 12:30:00+02:00,a,2024-03-01T00:00:00,1\n"
                                 "2024-03-02,,b,2024-03-02 00:00,0\n"
                                 ",2024-03-03T08:00:00Z,c,,1\n")
    table = read_folder(folder)
    assert table.dates == {"day": False, "stamp": True, "midnight": False}
    table.frame = table.frame.drop(columns=["midnight"])
    kinds = data.feature_kinds(table.frame.drop(columns=["y"]))
    assert kinds == {"day": "date", "stamp": "date", "note": "categorical"}
    X = conform_features(table.frame.drop(columns=["y"]), kinds, table, "training data",
                         data.date_parts(kinds, table))
    assert [c for c in X.columns if c.startswith("day__")] == [
        "day__year", "day__month", "day__day", "day__day_of_week", "day__day_of_year",
        "day__days_since_epoch"]
    assert X["stamp__hour"].tolist()[0] == 10 and math.isnan(X["stamp__hour"][1])
    assert X["stamp__hour"][2] == 8 and math.isnan(X["day__year"][2])
    assert X.columns[-1] == "note"


def test_a_column_of_dates_but_a_few_fails_naming_the_first_other_cell(tmp_path):
    rows = "".join(f"2024-03-{d:02d},{d}\n" for d in range(1, 21))
    folder = write_csv(tmp_path, "day,y\n" + rows.replace("2024-03-07", "7 March"))
    with pytest.raises(UserError) as info:
        read_folder(folder)
    assert str(info.value).startswith(
        f"column 'day' holds ISO-8601 dates except '7 March' at line 8 of {folder / 'train.csv'}"
        " (1 such value(s))")


def test_a_column_mostly_of_other_text_stays_text(tmp_path):
    rows = "".join(f"{'2024-03-01' if d < 5 else f'code {d}'},{d}\n" for d in range(20))
    table = read_folder(write_csv(tmp_path, "ref,y\n" + rows))
    assert table.dates == {} and table.frame["ref"].tolist()[:2] == ["2024-03-01"] * 2


# -- Parquet files as Spark and pandas write them --------------------------------------------
def test_the_spark_folder_reads_its_date32_and_int96_columns_as_dates():
    table = read_folder(FIXTURES / "spark-dated")
    frame = table.frame
    assert len(frame) == 240 and table.dates == {"signup": False, "last_seen": True}
    assert str(frame["signup"].dtype) == "datetime64[us]"
    assert frame["customer_id"].dtype == object  # left for the identifier rule
    # Every 17th row from the 6th has no last_seen: 14 of 240.
    assert int(frame["last_seen"].isna().sum()) == 14
    assert frame["signup"].min() >= pd.Timestamp("2021-01-01")
    assert frame["signup"].max() <= pd.Timestamp("2023-09-27")
    assert (frame["signup"] == frame["signup"].dt.normalize()).all()


def test_the_pandas_file_reads_its_date32_and_zoned_timestamp_as_utc_dates(tmp_path):
    (tmp_path / "orders.parquet").write_bytes((FIXTURES / "pandas-dated.parquet").read_bytes())
    table = read_folder(tmp_path)
    assert table.dates == {"ordered": False, "shipped": True, "noted": True}
    kinds = data.feature_kinds(table.frame.drop(columns=["returned"]))
    X = conform_features(table.frame.drop(columns=["returned"]), kinds, table, "training data",
                         data.date_parts(kinds, table))
    first = X.iloc[0]
    # ordered 2024-02-29 (a date32 under pandas' metadata).
    assert (first["ordered__year"], first["ordered__month"], first["ordered__day"]) == \
        (2024, 2, 29)
    assert "ordered__hour" not in X.columns
    # shipped 2024-03-01 00:30 in Berlin (UTC+1 in winter) is 23:30 UTC on 29 February.
    assert (first["shipped__day"], first["shipped__hour"]) == (29, 23)
    assert first["shipped__days_since_epoch"] == days_since_epoch(dt.datetime(2024, 2, 29,
                                                                              23, 30))
    # noted is naive: 2024-03-01 23:15 as written.
    assert (first["noted__day"], first["noted__hour"]) == (1, 23)
    assert math.isnan(X["ordered__year"][3]) and math.isnan(X["shipped__hour"][4])


# -- metadata and serve's schema -------------------------------------------------------------
def date_metadata() -> ModelMetadata:
    return ModelMetadata(target="y", task="classification", features=[
        Feature("amount", "numeric"), Feature("when", "date", dates.parts_for(True)),
        Feature("plan", "categorical")])


def test_metadata_records_a_date_feature_with_its_parts_and_reads_it_back(tmp_path):
    raw = date_metadata().to_json()
    assert raw["features"][1] == {
        "name": "when", "kind": "date", "parts": ALL_PARTS, "times": True,
        "columns": [f"when__{p}" for p in ALL_PARTS]}
    path = tmp_path / "metadata.json"
    path.write_text(json.dumps(raw))
    back = load_metadata(tmp_path)
    assert back.features[1].parts == ALL_PARTS
    assert back.model_columns == ["amount", *[f"when__{p}" for p in ALL_PARTS], "plan"]
    raw["features"][1]["parts"] = ["year", "week"]
    path.write_text(json.dumps(raw))
    with pytest.raises(ModelLoadError, match="unknown date part 'week'"):
        load_metadata(tmp_path)


def test_serve_takes_the_date_as_one_column_in_feature_order_and_hands_on_its_parts():
    schema = Schema(date_metadata())
    # Headerless rows: the features as training read them, the date as one column.
    records = schema.from_positional_rows([["3.5", "2024-03-01 00:30:00+02:00", "gold"],
                                           ["1", "", "basic"]])
    assert list(records.columns) == ["amount", *[f"when__{p}" for p in ALL_PARTS], "plan"]
    assert records.columns["when__day"].tolist()[0] == 29
    assert np.isnan(records.columns["when__hour"][1])
    frame = records.frame()
    assert frame.dtypes["when__year"] == np.float64
    named = schema.from_named_rows([{"amount": 3.5, "when": "2024-03-01T12:30:00Z",
                                     "plan": "gold"}])
    assert named.columns["when__hour"].tolist() == [12.0]


@pytest.mark.parametrize("cell", ["soon", 20240301, True, ["2024-03-01"]])
def test_serve_refuses_a_cell_that_is_no_date_naming_row_and_feature(cell):
    schema = Schema(date_metadata())
    with pytest.raises(RequestError) as info:
        schema.from_named_rows([{"amount": 1, "when": "2024-03-01", "plan": "a"},
                                {"amount": 1, "when": cell, "plan": "a"}])
    assert str(info.value).startswith("row 2, feature 'when': ")
    assert info.value.row == 2 and info.value.feature == "when"


def test_a_large_csv_body_gives_the_parts_row_by_row_parsing_gives():
    from sklearn_byoc.serve.formats import csv_input
    from sklearn_byoc.serve.media import CSV, MediaType

    schema = Schema(date_metadata())
    rows = [[str(i), f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T{i % 24:02d}:15:00+01:00"
             if i % 9 else "", "gold" if i % 2 else "basic"] for i in range(4000)]
    body = "\n".join(",".join(r) for r in rows).encode()
    assert len(body) > csv_input.SMALL_CSV_BYTES
    large = csv_input.CsvReader(schema, MediaType(CSV)).read(body)
    by_rows = schema.from_positional_rows(rows)
    pd.testing.assert_frame_equal(large.frame(), by_rows.frame(), check_dtype=False)
    assert large.columns["when__hour"][1] == 0  # 01:15 at UTC+1
    with pytest.raises(RequestError, match="row 3001, feature 'when': expected an ISO-8601"):
        csv_input.CsvReader(schema, MediaType(CSV)).read(body.replace(
            b"\n3000,2024-01-05T00:15:00+01:00,", b"\n3000,5 Jan,"))


def test_a_cell_that_is_no_date_in_a_date_feature_of_test_data_names_it(tmp_path):
    # The model's date feature, read from a test split where the column is text.
    table = read_folder(write_csv(tmp_path, "when,y\n" + "".join(
        f"{'next week' if d == 3 else f'2024-03-{d:02d}'},1\n" for d in range(1, 4))))
    assert table.dates == {}  # a third of the cells are no date: text
    with pytest.raises(UserError) as info:
        conform_features(table.frame[["when"]], {"when": "date"}, table, "test data",
                         {"when": dates.parts_for(False)})
    assert str(info.value) == (
        "feature 'when' is a date in the model but the test data holds 'next week' (first at "
        f"line 4 of {tmp_path / 'train.csv'}); write it as an ISO-8601 date (2024-03-01 or "
        "2024-03-01T12:30:00) or leave the cell empty")
