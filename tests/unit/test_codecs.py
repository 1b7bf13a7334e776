"""Request decoding and answer encoding, on a schema built from hand-made metadata."""
import io
import json
import math

import numpy as np
import pytest

from sklearn_byoc.common.model_files import Feature, ModelMetadata
from sklearn_byoc.serve import codecs
from sklearn_byoc.serve.codecs import CSV, JSON, JSONLINES, Prediction
from sklearn_byoc.serve.errors import NotAcceptable, RequestError, UnsupportedContentType
from sklearn_byoc.serve.schema import Schema


@pytest.fixture(scope="module")
def schema() -> Schema:
    return Schema(ModelMetadata(
        target="churn", task="classification",
        features=[Feature("age", "numeric"), Feature("plan", "categorical"),
                  Feature("calls", "numeric")],
        classes=["no", "yes"]))


def rows_of(records) -> list[tuple]:
    """Records as plain rows, NaN as None, so they compare with ==."""
    def plain(value):
        if isinstance(value, (float, np.floating)) and math.isnan(value):
            return None
        return value.item() if isinstance(value, np.generic) else value

    columns = [records.columns[name] for name in records.columns]
    assert all(len(c) == records.n for c in columns)
    return [tuple(plain(c[i]) for c in columns) for i in range(records.n)]


def decode(body, content_type, schema):
    if isinstance(body, str):
        body = body.encode("utf-8")
    return codecs.decode(body, codecs.content_type(content_type), schema)


EXPECTED = [(31.0, "gold", 2.0), (45.5, "basic", 0.0)]


# -- content type and accept ---------------------------------------------------------------
@pytest.mark.parametrize("header, kind, charset", [
    ("text/csv", CSV, "utf-8"),
    ("text/csv; charset=utf-8", CSV, "utf-8"),
    ("Text/CSV;Charset=\"UTF-8\"", CSV, "utf-8"),
    ("application/json; charset=ISO-8859-1", JSON, "iso-8859-1"),
    ("application/jsonlines", JSONLINES, "utf-8"),
    ("application/x-ndjson", JSONLINES, "utf-8"),
    (None, CSV, "utf-8"),
    ("", CSV, "utf-8"),
])
def test_content_type(header, kind, charset):
    media = codecs.content_type(header)
    assert media.kind == kind
    assert media.charset == charset


@pytest.mark.parametrize("header", ["application/xml", "image/png", "application/x-protobuf",
                                    "text/csv; charset=klingon"])
def test_unknown_content_type_is_415(header):
    with pytest.raises(UnsupportedContentType) as info:
        codecs.content_type(header)
    assert info.value.status == 415
    assert header.split(";")[0] in str(info.value) or "klingon" in str(info.value)


@pytest.mark.parametrize("header, default, expected", [
    (None, JSON, JSON),
    ("", CSV, CSV),
    ("*/*", JSONLINES, JSONLINES),
    ("text/csv", JSON, CSV),
    ("application/json", CSV, JSON),
    ("application/jsonlines", CSV, JSONLINES),
    ("application/json; charset=utf-8", CSV, JSON),
    ("application/json;q=0.5, text/csv;q=0.9", JSON, CSV),
    ("text/csv;q=0.2, application/jsonlines", CSV, JSONLINES),
    ("text/csv;q=0, application/json", CSV, JSON),
    ("text/html, application/json;q=0.1", CSV, JSON),
    ("text/html, */*;q=0.1", JSON, JSON),
    ("text/*", JSON, CSV),
])
def test_accept(header, default, expected):
    assert codecs.accept_type(header, default) == expected


@pytest.mark.parametrize("header", ["text/html", "application/xml, image/png",
                                    "application/json;q=0"])
def test_unsupported_accept_is_406(header):
    with pytest.raises(NotAcceptable) as info:
        codecs.accept_type(header, CSV)
    assert info.value.status == 406
    assert header in str(info.value)


# -- CSV --------------------------------------------------------------------------------------
def test_csv_without_header(schema):
    assert rows_of(decode("31,gold,2\n45.5,basic,0\n", "text/csv", schema)) == EXPECTED


def test_csv_crlf_blank_lines_and_no_final_newline(schema):
    assert rows_of(decode("31,gold,2\r\n\r\n45.5,basic,0", "text/csv", schema)) == EXPECTED


@pytest.mark.parametrize("body", [
    "age,plan,calls\n31,gold,2\n45.5,basic,0\n",
    "calls,age,plan\n2,31,gold\n0,45.5,basic\n",
    "plan, calls ,age\ngold,2,31\nbasic,0,45.5\n",
    # the target column in the header is ignored with its values
    "churn,calls,plan,age\nyes,2,gold,31\nno,0,basic,45.5\n",
])
def test_csv_with_header_in_any_order(schema, body):
    assert rows_of(decode(body, "text/csv", schema)) == EXPECTED


def test_csv_quoted_cells_and_missing_values(schema):
    records = decode('31,"gold, annual",2\n,,?\n', "text/csv", schema)
    assert rows_of(records) == [(31.0, "gold, annual", 2.0), (None, None, None)]


def test_csv_in_another_charset(schema):
    body = "31,caf\xe9,2\n".encode("latin-1")
    records = codecs.decode(body, codecs.content_type("text/csv; charset=latin-1"), schema)
    assert rows_of(records) == [(31.0, "caf\xe9", 2.0)]


def test_csv_not_in_the_named_charset_is_400(schema):
    with pytest.raises(RequestError) as info:
        decode("31,caf\xe9,2\n".encode("latin-1"), "text/csv", schema)
    assert info.value.status == 400 and "utf-8" in str(info.value)


@pytest.mark.parametrize("body, words", [
    ("31,gold\n", ["row 1 has 2 values", "3 features"]),
    ("31,gold,2\n31,gold,2,9\n", ["row 2 has 4 values", "target column 'churn'"]),
    ("age,plan,colour\n31,gold,red\n", ["unknown column", "'colour'"]),
    ("age,plan\n31,gold\n", ["lacks feature", "'calls'"]),
    ("age,plan,calls\n31,gold\n", ["row 1 has 2 values"]),
    ("age,plan,calls\n", ["header row but no data rows"]),
    ("31,gold,2\nthirty,gold,2\n", ["row 2", "'age'", "'thirty'"]),
    ("31,gold,inf\n", ["row 1", "'calls'"]),
    ("", ["empty"]),
    ("\n \n", ["empty"]),
])
def test_csv_errors_are_400(schema, body, words):
    with pytest.raises(RequestError) as info:
        decode(body, "text/csv", schema)
    assert type(info.value) is RequestError
    assert info.value.status == 400
    for word in words:
        assert word in str(info.value)


# -- JSON -------------------------------------------------------------------------------------
@pytest.mark.parametrize("payload", [
    {"instances": [[31, "gold", 2], [45.5, "basic", 0]]},
    {"instances": [["31", "gold", "2"], ["45.5", "basic", "0"]]},
    {"instances": [{"age": 31, "plan": "gold", "calls": 2},
                   {"calls": 0, "plan": "basic", "age": 45.5, "churn": "no"}]},
    [[31, "gold", 2], [45.5, "basic", 0]],
    [{"age": 31, "plan": "gold", "calls": 2}, {"age": 45.5, "plan": "basic", "calls": 0}],
])
def test_json_rows(schema, payload):
    assert rows_of(decode(json.dumps(payload), "application/json", schema)) == EXPECTED


@pytest.mark.parametrize("payload", [
    [31, "gold", 2],
    {"age": 31, "plan": "gold", "calls": 2},
    {"instances": [[31, "gold", 2]]},
])
def test_json_single_row(schema, payload):
    assert rows_of(decode(json.dumps(payload), "application/json", schema)) == [EXPECTED[0]]


def test_json_null_and_missing_keys_are_missing(schema):
    records = decode('{"instances": [{"age": null, "plan": "gold"}]}', "application/json",
                     schema)
    assert rows_of(records) == [(None, "gold", None)]


@pytest.mark.parametrize("body, words", [
    ('{"instances": [[31, "gold", 2]', ["not valid JSON"]),
    ("[" * 100000 + "]" * 100000, ["nested too deeply"]),
    ('{"instances": "31,gold,2"}', ['"instances" must be a list']),
    ('{"instances": []}', ["holds no rows"]),
    ('"31,gold,2"', ["got a JSON str"]),
    ('{"instances": [[31, "gold"]]}', ["row 1 has 2 values"]),
    ('{"instances": [[31, ["gold"], 2]]}', ["nested list"]),
    ('{"instances": [{"age": 31, "colour": "red"}]}', ["unknown feature", "'colour'"]),
    ('{"instances": [{"age": "old", "plan": "gold", "calls": 1}]}', ["row 1", "'age'", "'old'"]),
    ('{"instances": [[31, "gold", 2], {"age": 1}]}', ["list of rows"]),
])
def test_json_errors_are_400(schema, body, words):
    with pytest.raises(RequestError) as info:
        decode(body, "application/json", schema)
    assert type(info.value) is RequestError and info.value.status == 400
    for word in words:
        assert word in str(info.value)


# -- JSON Lines -------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    '[31, "gold", 2]\n[45.5, "basic", 0]\n',
    '{"age": 31, "plan": "gold", "calls": 2}\n\n{"plan": "basic", "calls": 0, "age": 45.5}',
])
def test_jsonlines_rows(schema, body):
    assert rows_of(decode(body, "application/jsonlines", schema)) == EXPECTED


@pytest.mark.parametrize("body, words", [
    ('[31, "gold", 2]\n[45.5, "basic"\n', ["line 2", "not valid JSON"]),
    ("[31, \"gold\", 2]\n" + "[" * 100000 + "]" * 100000 + "\n", ["line 2", "nested too deeply"]),
    ('[31, "gold", 2]\n[45.5, "basic"]\n', ["row 2 has 2 values"]),
])
def test_jsonlines_errors_are_400(schema, body, words):
    with pytest.raises(RequestError) as info:
        decode(body, "application/jsonlines", schema)
    assert type(info.value) is RequestError and info.value.status == 400
    for word in words:
        assert word in str(info.value)


# -- large CSV bodies -------------------------------------------------------------------------
def large_rows(n: int = 9000) -> list[str]:
    rng = np.random.default_rng(0)
    plans = ["gold", "basic", "silver", ""]
    rows = []
    for i in range(n):
        age = "" if i % 97 == 0 else f"{rng.uniform(18, 90):.2f}"
        rows.append(f"{age},{plans[i % 4]},{int(rng.integers(0, 9))}")
    return rows


def small_path(body: bytes, schema):
    return rows_of(codecs.decode_csv_rows(body.decode("utf-8"), schema))


def test_large_csv_body_gives_the_same_records_as_the_small_path(schema):
    body = ("\n".join(large_rows()) + "\n").encode()
    assert len(body) > codecs.SMALL_CSV_BYTES
    parsed = codecs.decode_csv_large(body, schema)
    assert parsed is not None  # the large path answered, not the fallback
    large = rows_of(parsed)
    assert len(large) == 9000
    assert rows_of(decode(body, "text/csv", schema)) == large
    assert large == small_path(body, schema)
    # and as a row-by-row reading of our own
    first = large_rows()[:3]
    expected = [tuple(None if c == "" else (float(c) if j != 1 else c)
                      for j, c in enumerate(row.split(","))) for row in first]
    assert large[:3] == expected


def test_large_csv_body_with_header_and_crlf(schema):
    rows = large_rows()
    body = ("calls,plan,age\r\n" + "\r\n".join(
        ",".join(reversed(r.split(","))) for r in rows) + "\r\n").encode()
    plain = ("\n".join(rows) + "\n").encode()
    assert rows_of(decode(body, "text/csv", schema)) == small_path(plain, schema)


@pytest.mark.parametrize("bad", ["31,gold", "31"])
def test_large_csv_body_with_a_short_row_is_400(schema, bad):
    rows = large_rows()
    rows[5000] = bad
    body = ("\n".join(rows) + "\n").encode()
    assert len(body) > codecs.SMALL_CSV_BYTES
    for parse in (lambda: decode(body, "text/csv", schema),
                  lambda: codecs.decode_csv_large(body, schema)):
        with pytest.raises(RequestError) as info:
            parse()
        assert f"row 5001 has {bad.count(',') + 1} values" in str(info.value)


def test_large_csv_body_with_a_bad_number_names_row_and_feature(schema):
    rows = large_rows()
    rows[7000] = "old,gold,1"
    with pytest.raises(RequestError) as info:
        decode(("\n".join(rows) + "\n").encode(), "text/csv", schema)
    assert "row 7001" in str(info.value) and "'age'" in str(info.value)


def test_large_quoted_csv_body_with_a_short_row_is_400(schema):
    rows = large_rows()
    rows[10] = '31,"gold, annual",2'
    rows[5000] = "31,gold"
    body = ("\n".join(rows) + "\n").encode()
    assert len(body) > codecs.SMALL_CSV_BYTES
    with pytest.raises(RequestError, match="row 5001 has 2 values"):
        decode(body, "text/csv", schema)


def test_large_csv_body_strips_text_cells_like_the_small_path(schema):
    rows = large_rows()
    rows[3] = "31, gold ,2"
    body = ("\n".join(rows) + "\n").encode()
    assert rows_of(decode(body, "text/csv", schema))[3] == (31.0, "gold", 2.0)


def test_csv_blocks_cover_the_body_in_whole_lines():
    rows = [f"{i},plan,{i % 7}" for i in range(5000)]
    body = ("\n".join(rows) + "\n").encode()
    blocks = list(codecs.csv_blocks(io.BytesIO(body), len(body), 10_000))
    assert len(blocks) > 3
    assert b"".join(block for block, _ in blocks) == body
    for block, first_row in blocks:
        assert block.endswith(b"\n")
        assert block.split(b"\n", 1)[0] == rows[first_row - 1].encode()


# -- encoding ---------------------------------------------------------------------------------
@pytest.fixture
def classified() -> Prediction:
    return Prediction(np.array(["yes", "no", "yes"], dtype=object),
                      np.array([[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]]), ["no", "yes"])


def test_encode_csv(classified):
    assert codecs.encode(classified, CSV, "label") == b"yes\nno\nyes"
    assert codecs.encode(classified, CSV, "probabilities") == \
        b"0.25,0.75\n0.5,0.5\n0.125,0.875"
    assert codecs.encode(classified, CSV, "all") == \
        b"yes,0.25,0.75\nno,0.5,0.5\nyes,0.125,0.875"


def test_encode_json(classified):
    assert json.loads(codecs.encode(classified, JSON, "label")) == \
        {"predictions": ["yes", "no", "yes"]}
    assert json.loads(codecs.encode(classified, JSON, "probabilities")) == {
        "probabilities": [[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]], "classes": ["no", "yes"]}
    assert json.loads(codecs.encode(classified, JSON, "all")) == {
        "predictions": ["yes", "no", "yes"],
        "probabilities": [[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]], "classes": ["no", "yes"]}


def test_encode_jsonlines(classified):
    lines = codecs.encode(classified, JSONLINES, "all").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"prediction": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
        {"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
        {"prediction": "yes", "probabilities": {"no": 0.125, "yes": 0.875}},
    ]
    labels = codecs.encode(classified, JSONLINES, "label").decode().splitlines()
    assert [json.loads(line) for line in labels] == [{"prediction": p} for p in
                                                     ("yes", "no", "yes")]
    proba = codecs.encode(classified, JSONLINES, "probabilities").decode().splitlines()
    assert json.loads(proba[0]) == {"probabilities": {"no": 0.25, "yes": 0.75}}


def test_encode_numeric_classes():
    prediction = Prediction(np.array([1, 0]), np.array([[0.25, 0.75], [1.0, 0.0]]), [0, 1])
    assert codecs.encode(prediction, CSV, "all") == b"1,0.25,0.75\n0,1.0,0.0"
    assert json.loads(codecs.encode(prediction, JSON, "all")) == {
        "predictions": [1, 0], "probabilities": [[0.25, 0.75], [1.0, 0.0]], "classes": [0, 1]}
    first = json.loads(codecs.encode(prediction, JSONLINES, "all").splitlines()[0])
    assert first == {"prediction": 1, "probabilities": {"0": 0.25, "1": 0.75}}


def test_encode_regression():
    prediction = Prediction(np.array([1.5, -0.25, np.nan]))
    assert codecs.encode(prediction, CSV, "label") == b"1.5\n-0.25\n"
    assert json.loads(codecs.encode(prediction, JSON, "label")) == \
        {"predictions": [1.5, -0.25, None]}
    for output in ("probabilities", "all"):
        with pytest.raises(RequestError) as info:
            codecs.encode(prediction, JSON, output)
        assert info.value.status == 400 and "output=label" in str(info.value)


def test_encode_csv_quotes_labels_that_need_it():
    prediction = Prediction(np.array(['a,b', 'say "hi"', "plain"], dtype=object))
    assert codecs.encode(prediction, CSV, "label") == b'"a,b"\n"say ""hi"""\nplain'
