"""The one definition of a cell: missing markers, numbers, categories and labels."""
import io
import math

import numpy as np
import pandas as pd
import pytest
from pandas._libs.parsers import STR_NA_VALUES

from sklearn_byoc.common import cells


def test_the_missing_markers_are_pandas_default_na_strings_plus_question_mark():
    # The list pandas' CSV reader uses by default, from pandas itself: an
    # upgrade that changes it fails here instead of splitting train from serve.
    assert cells.PANDAS_MISSING_MARKERS == frozenset(STR_NA_VALUES)
    assert cells.MISSING_MARKERS == frozenset(STR_NA_VALUES) | {"?"}


def test_pandas_reads_every_marker_as_missing_the_way_training_reads_csv():
    markers = sorted(cells.MISSING_MARKERS - {""})
    text = "value\n" + "\n".join(["word"] + markers) + "\n"
    frame = pd.read_csv(io.StringIO(text), na_values=list(cells.EXTRA_MISSING_MARKERS),
                        skipinitialspace=True, keep_default_na=True)
    assert frame["value"].iloc[0] == "word"
    assert frame["value"].iloc[1:].isna().all(), frame["value"].tolist()


@pytest.mark.parametrize("cell", [None, math.nan, np.float64("nan"), "", "  ", "NA", " NA ",
                                  "null", "?", "n/a", "#N/A", pd.NA])
def test_missing_cells(cell):
    assert cells.is_missing(cell)
    assert math.isnan(cells.parse_number(cell))
    assert math.isnan(cells.category_text(cell))


@pytest.mark.parametrize("cell", ["0", "no", "NAN ", "False", 0, 0.0, False, "-"])
def test_cells_that_are_not_missing(cell):
    # "NAN" is no pandas marker (its list is case-sensitive), nor is "-".
    assert not cells.is_missing(cell)


@pytest.mark.parametrize("cell, number", [
    ("1.5", 1.5), (" 2 ", 2.0), ("1e3", 1000.0), ("-0.25", -0.25), (3, 3.0), (2.5, 2.5),
    (np.int64(7), 7.0), (np.float32(0.5), 0.5), ("inf", math.inf), ("1e400", math.inf),
    (10 ** 400, math.inf),
])
def test_parse_number(cell, number):
    got = cells.parse_number(cell)
    assert got == number and type(got) is float


@pytest.mark.parametrize("cell, first_line", [
    ("forty", "expected a number, got 'forty'"),
    (True, "expected a number, got True"),
    (np.bool_(False), "expected a number, got False"),
    ([1, 2], "expected a number, got [1, 2]"),
    ("x" * 100, "expected a number, got 'xxxxxxxx"),
])
def test_parse_number_refuses_what_is_no_number(cell, first_line):
    with pytest.raises(cells.CellError) as info:
        cells.parse_number(cell)
    assert str(info.value).startswith(first_line)
    assert len(str(info.value)) < 120


@pytest.mark.parametrize("cell, text", [
    (" gold ", "gold"), ("Gold", "Gold"), (True, "True"), (False, "False"), (3, "3"),
    (2.0, "2"), (2.5, "2.5"), (np.int64(4), "4"), (np.str_(" a"), "a"),
])
def test_category_text(cell, text):
    assert cells.category_text(cell) == text


def test_category_text_refuses_a_list():
    with pytest.raises(cells.CellError) as info:
        cells.category_text({"a": 1})
    assert str(info.value).startswith("expected a text or number value, got {'a': 1}")


@pytest.mark.parametrize("value, label", [
    (1.0, 1), (np.float64(0.0), 0), (2.5, 2.5), ("yes", "yes"), (np.int64(3), 3), (True, True),
])
def test_label_value(value, label):
    got = cells.label_value(value)
    assert got == label and type(got) is type(label)


def test_is_number():
    assert cells.is_number("12") and cells.is_number(" -1.5e3 ")
    assert not cells.is_number("NA") and not cells.is_number("age")


def test_number_column_parses_each_distinct_cell_and_marks_the_refused_ones():
    values = pd.Series(["1", " 2.5", "NA", None, "ten", "1", "?"], dtype=object)
    numbers, refused = cells.number_column(values)
    assert numbers[:2].tolist() == [1.0, 2.5] and numbers[5] == 1.0
    assert np.isnan(numbers[[2, 3, 4, 6]]).all()
    assert refused.tolist() == [False, False, False, False, True, False, False]


def test_category_column_strips_and_marks_missing():
    values = np.array([" a", "a ", "NA ", None, np.nan, True, "b"], dtype=object)
    texts = cells.category_column(values)
    assert texts[[0, 1, 5, 6]].tolist() == ["a", "a", "True", "b"]
    assert all(isinstance(t, float) and math.isnan(t) for t in texts[[2, 3, 4]])


def test_missing_mask():
    values = pd.Series(["x", " ", "null", None, "y"], dtype=object)
    assert cells.missing_mask(values).tolist() == [False, True, True, True, False]


# serve types request cells in serve/schema.py; until it calls this module, both
# must give the same value for every cell (or both refuse it).
SERVE_CELLS = [None, "", " ", "NA", " null ", "?", "1", " 2.5 ", "1e400", "-inf", "x", "Gold ",
               True, False, 0, 7, 10 ** 400, 1.0, 2.5, math.nan, [1], {"a": 1}]


def _outcome(function, cell):
    try:
        value = function(cell)
    except Exception as exc:  # noqa: BLE001 - both sides' refusals are compared
        return ("refused", type(exc).__name__ in ("CellError", "RequestError"))
    if isinstance(value, float) and math.isnan(value):
        return ("missing",)
    return ("value", type(value), value)


@pytest.mark.parametrize("cell", SERVE_CELLS, ids=repr)
def test_serve_types_request_cells_as_this_module_does(cell):
    from sklearn_byoc.common.model_files import Feature, ModelMetadata
    from sklearn_byoc.serve.schema import Schema

    schema = Schema(ModelMetadata("y", "classification",
                                  [Feature("n", "numeric"), Feature("c", "categorical")]))
    assert _outcome(lambda c: schema._number("n", c, 1), cell) == \
        _outcome(cells.parse_number, cell)
    assert _outcome(lambda c: schema._category("c", c, 1), cell) == \
        _outcome(cells.category_text, cell)


def test_serve_uses_the_same_missing_markers():
    from sklearn_byoc.serve.schema import MISSING_MARKERS

    assert MISSING_MARKERS == cells.MISSING_MARKERS
