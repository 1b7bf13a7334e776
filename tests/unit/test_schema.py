"""The serving schema: typing request cells the way training typed the data."""
import math

import numpy as np
import pytest

from sklearn_byoc.serve.errors import RequestError


def test_schema_follows_the_metadata(schema):
    assert schema.names == ["age", "plan", "calls"]
    assert schema.width == 3
    assert schema.position == {"age": 0, "plan": 1, "calls": 2}
    assert schema.target == "churn"
    assert schema.describe() == "3 features in this order: age, plan, calls"


def test_numeric_cells(schema):
    values = schema.numeric_column("age", ["31", " 42.5 ", "", "NA", "?", None, 7, 1.5])
    assert values.dtype == np.float64
    assert values[:2].tolist() == [31.0, 42.5]
    assert all(math.isnan(v) for v in values[2:6])
    assert values[6:].tolist() == [7.0, 1.5]


@pytest.mark.parametrize("cell", ["thirty", [1], "1e999", "inf"])
def test_bad_numeric_cell_names_row_and_feature(schema, cell):
    with pytest.raises(RequestError) as info:
        schema.numeric_column("age", ["1", cell], first_row=5)
    assert "row 6" in str(info.value)
    assert "'age'" in str(info.value)
    assert info.value.status == 400


@pytest.mark.parametrize("cells", [[True], ["1", False]])
def test_boolean_for_a_numeric_feature_is_refused(schema, cells):
    with pytest.raises(RequestError, match="feature 'age': expected a number"):
        schema.numeric_column("age", cells)


def test_categorical_cells_are_text_like_training(schema):
    values = schema.categorical_column("plan", ["gold", " basic ", "", "NA", None, 3, 2.0, 2.5,
                                                True, float("nan")])
    assert values[0] == "gold" and values[1] == "basic"
    assert all(isinstance(v, float) and math.isnan(v) for v in values[2:5])
    # numbers are the text CSV would have held
    assert values[5:8].tolist() == ["3", "2", "2.5"]
    assert values[8] == "True"
    assert math.isnan(values[9])


def test_categorical_nested_value_is_refused(schema):
    with pytest.raises(RequestError, match="row 1, feature 'plan'"):
        schema.categorical_column("plan", [{"a": 1}])


def test_positional_rows(schema):
    records = schema.from_positional_rows([["31", "gold", "2"], [40, "basic", None]])
    assert records.n == 2
    assert list(records.columns) == ["age", "plan", "calls"]
    frame = records.frame()
    assert frame["age"].tolist() == [31.0, 40.0]
    assert frame["plan"].tolist() == ["gold", "basic"]
    assert frame["calls"].iloc[0] == 2.0 and math.isnan(frame["calls"].iloc[1])


def test_positional_row_of_wrong_width(schema):
    with pytest.raises(RequestError) as info:
        schema.from_positional_rows([["31", "gold", "2"], ["31", "gold"]])
    assert "row 2 has 2 values" in str(info.value)
    assert "age, plan, calls" in str(info.value)
    with pytest.raises(RequestError, match="target column 'churn' is included"):
        schema.from_positional_rows([["no", "31", "gold", "2"]])


def test_named_rows_any_order_missing_key_is_missing(schema):
    records = schema.from_named_rows([{"calls": 1, "plan": "gold", "age": 30},
                                      {"age": 50, "churn": "yes", "plan": "basic"}])
    frame = records.frame()
    assert list(frame.columns) == ["age", "plan", "calls"]
    assert frame["age"].tolist() == [30.0, 50.0]
    assert frame["calls"].iloc[0] == 1.0 and math.isnan(frame["calls"].iloc[1])


def test_named_rows_unknown_and_unrelated_keys(schema):
    with pytest.raises(RequestError) as info:
        schema.from_named_rows([{"age": 1}, {"age": 2, "colour": "red"}])
    assert "row 2" in str(info.value) and "'colour'" in str(info.value)
    with pytest.raises(RequestError, match="row 1 names none of the model's features"):
        schema.from_named_rows([{"churn": "yes"}])
