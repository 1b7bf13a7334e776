"""The formats table: request bodies decoded and answers encoded, on a schema built from
hand-made metadata."""
import io
import json
import math

import numpy as np
import pytest

from sklearn_byoc.common.model_files import Feature, ModelMetadata
from sklearn_byoc.serve import media
from sklearn_byoc.serve.errors import NotAcceptable, RequestError, UnsupportedContentType
from sklearn_byoc.serve.formats import FORMATS, csv_input
from sklearn_byoc.serve.formats.output import Prediction, check_output
from sklearn_byoc.serve.media import CSV, JSON, JSONLINES, MediaType
from sklearn_byoc.serve.schema import Schema
from tests.unit.conftest import churn_metadata


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
    kind = media.content_type(content_type)
    return FORMATS[kind.kind].read(body, kind, schema)


def encode(prediction, accept, output):
    check_output(prediction, output)
    return FORMATS[accept].write(prediction, output)


def reader(schema, header=None):
    return csv_input.CsvReader(schema, MediaType(CSV, header=header))


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
    parsed = media.content_type(header)
    assert parsed.kind == kind
    assert parsed.charset == charset


# text/plain and file-path/raw-bytes: what SDK v3's SchemaBuilder sends for str and bytes samples.
@pytest.mark.parametrize("header", ["application/xml", "image/png", "application/x-protobuf",
                                    "text/csv; charset=klingon", "text/plain",
                                    "file-path/raw-bytes"])
def test_unknown_content_type_is_415(header):
    with pytest.raises(UnsupportedContentType) as info:
        media.content_type(header)
    assert info.value.status == 415
    assert header.split(";")[0] in str(info.value) or "klingon" in str(info.value)
    if "charset" not in header:
        assert "send one of text/csv, application/json" in str(info.value)


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
    assert media.accept_type(header, default) == expected


@pytest.mark.parametrize("header", ["text/html", "application/xml, image/png",
                                    "application/json;q=0"])
def test_unsupported_accept_is_406(header):
    with pytest.raises(NotAcceptable) as info:
        media.accept_type(header, CSV)
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
    records = decode(body, "text/csv; charset=latin-1", schema)
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
    return rows_of(reader(schema).read_rows(body.decode("utf-8")))


def test_large_csv_body_gives_the_same_records_as_the_small_path(schema):
    body = ("\n".join(large_rows()) + "\n").encode()
    assert len(body) > csv_input.SMALL_CSV_BYTES
    parsed = reader(schema).read_large(body)
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
    assert len(body) > csv_input.SMALL_CSV_BYTES
    for parse in (lambda: decode(body, "text/csv", schema),
                  lambda: reader(schema).read_large(body)):
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
    assert len(body) > csv_input.SMALL_CSV_BYTES
    with pytest.raises(RequestError, match="row 5001 has 2 values"):
        decode(body, "text/csv", schema)


def test_large_csv_body_strips_text_cells_like_the_small_path(schema):
    rows = large_rows()
    rows[3] = "31, gold ,2"
    body = ("\n".join(rows) + "\n").encode()
    assert rows_of(decode(body, "text/csv", schema))[3] == (31.0, "gold", 2.0)


def test_only_rows_that_say_how_stream_large_bodies():
    assert [kind for kind, fmt in FORMATS.items() if fmt.streams(MediaType(kind))] == [CSV]
    # Blocks are cut at newline bytes: a body in another charset is read whole.
    assert not FORMATS[CSV].streams(MediaType(CSV, charset="utf-16"))


def test_csv_read_in_blocks_counts_rows_from_the_first_block(schema):
    rows = [f"{i},plan,{i % 7}" for i in range(3000)]
    rows[2500] = "1,plan"
    body = ("\n".join(rows) + "\n").encode()
    records = FORMATS[CSV].read_blocks(io.BytesIO(body), len(body), 10_000, schema,
                                       MediaType(CSV))
    with pytest.raises(RequestError, match="row 2501 has 2 values"):
        list(records)


def test_csv_blocks_cover_the_body_in_whole_lines():
    rows = [f"{i},plan,{i % 7}" for i in range(5000)]
    body = ("\n".join(rows) + "\n").encode()
    blocks = list(csv_input.blocks(io.BytesIO(body), len(body), 10_000))
    assert len(blocks) > 3
    assert b"".join(blocks) == body
    first_row = 1
    for block in blocks:
        assert block.endswith(b"\n")
        assert block.split(b"\n", 1)[0] == rows[first_row - 1].encode()
        first_row += block.count(b"\n")


# -- encoding ---------------------------------------------------------------------------------
@pytest.fixture
def classified() -> Prediction:
    return Prediction(np.array(["yes", "no", "yes"], dtype=object),
                      np.array([[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]]), ["no", "yes"])


def test_encode_csv(classified):
    assert encode(classified, CSV, "label") == b"yes\nno\nyes"
    assert encode(classified, CSV, "probabilities") == \
        b"0.25,0.75\n0.5,0.5\n0.125,0.875"
    assert encode(classified, CSV, "all") == \
        b"yes,0.25,0.75\nno,0.5,0.5\nyes,0.125,0.875"


def test_encode_json(classified):
    assert json.loads(encode(classified, JSON, "label")) == \
        {"predictions": ["yes", "no", "yes"]}
    assert json.loads(encode(classified, JSON, "probabilities")) == {
        "probabilities": [[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]], "classes": ["no", "yes"]}
    assert json.loads(encode(classified, JSON, "all")) == {
        "predictions": ["yes", "no", "yes"],
        "probabilities": [[0.25, 0.75], [0.5, 0.5], [0.125, 0.875]], "classes": ["no", "yes"]}


def test_encode_jsonlines(classified):
    lines = encode(classified, JSONLINES, "all").decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"prediction": "yes", "probabilities": {"no": 0.25, "yes": 0.75}},
        {"prediction": "no", "probabilities": {"no": 0.5, "yes": 0.5}},
        {"prediction": "yes", "probabilities": {"no": 0.125, "yes": 0.875}},
    ]
    labels = encode(classified, JSONLINES, "label").decode().splitlines()
    assert [json.loads(line) for line in labels] == [{"prediction": p} for p in
                                                     ("yes", "no", "yes")]
    proba = encode(classified, JSONLINES, "probabilities").decode().splitlines()
    assert json.loads(proba[0]) == {"probabilities": {"no": 0.25, "yes": 0.75}}


def test_encode_numeric_classes():
    prediction = Prediction(np.array([1, 0]), np.array([[0.25, 0.75], [1.0, 0.0]]), [0, 1])
    assert encode(prediction, CSV, "all") == b"1,0.25,0.75\n0,1.0,0.0"
    assert json.loads(encode(prediction, JSON, "all")) == {
        "predictions": [1, 0], "probabilities": [[0.25, 0.75], [1.0, 0.0]], "classes": [0, 1]}
    first = json.loads(encode(prediction, JSONLINES, "all").splitlines()[0])
    assert first == {"prediction": 1, "probabilities": {"0": 0.25, "1": 0.75}}


def test_encode_regression():
    prediction = Prediction(np.array([1.5, -0.25, np.nan]))
    assert encode(prediction, CSV, "label") == b"1.5\n-0.25\n"
    assert json.loads(encode(prediction, JSON, "label")) == \
        {"predictions": [1.5, -0.25, None]}
    for output in ("probabilities", "all"):
        with pytest.raises(RequestError) as info:
            encode(prediction, JSON, output)
        assert info.value.status == 400 and "output=label" in str(info.value)


def test_encode_csv_quotes_labels_that_need_it():
    prediction = Prediction(np.array(['a,b', 'say "hi"', "plain"], dtype=object))
    assert encode(prediction, CSV, "label") == b'"a,b"\n"say ""hi"""\nplain'


# -- header=present / header=absent ------------------------------------------------------------
@pytest.fixture(scope="module")
def text_schema() -> Schema:
    """A model whose features are all text: a header row looks like a data row."""
    return Schema(ModelMetadata(
        target="churn", task="classification",
        features=[Feature("plan", "categorical"), Feature("region", "categorical")],
        classes=["no", "yes"]))


def test_header_present_is_a_header_even_when_it_could_be_data(text_schema):
    body = "region,plan\nwest,gold\n"
    assert rows_of(decode(body, "text/csv;header=present", text_schema)) == [("gold", "west")]


def test_header_present_with_wrong_names_is_400_not_a_data_row(text_schema):
    # Without the parameter such a row is scored as data (it names none of the
    # features); with header=present it is a header that names the wrong columns.
    body = "colour,size\nwest,gold\n"
    assert decode(body, "text/csv", text_schema).n == 2
    with pytest.raises(RequestError) as info:
        decode(body, "text/csv; header=present", text_schema)
    assert "unknown column(s) 'colour', 'size'" in str(info.value)


def test_header_absent_reads_the_first_row_as_data(text_schema):
    body = "plan,region\ngold,west\n"
    records = decode(body, "text/csv;header=absent", text_schema)
    assert rows_of(records) == [("plan", "region"), ("gold", "west")]


def test_header_parameter_must_be_present_or_absent():
    with pytest.raises(RequestError, match="header='maybe' must be present or absent"):
        media.content_type("text/csv;header=maybe")


def test_header_present_on_a_large_body(schema):
    rows = large_rows()
    body = ("calls,plan,age\n" + "\n".join(
        ",".join(reversed(r.split(","))) for r in rows) + "\n").encode()
    plain = ("\n".join(rows) + "\n").encode()
    assert rows_of(decode(body, "text/csv;header=present", schema)) == small_path(plain, schema)
    with pytest.raises(RequestError, match="unknown column"):
        decode(plain, "text/csv;header=present", schema)


# -- records, not lines ------------------------------------------------------------------------
def test_large_body_row_numbers_count_records_not_blank_lines(schema):
    rows = large_rows()
    rows[5000] = "31,gold"
    body = ("\n\n".join(rows) + "\n").encode()  # a blank line after every record
    with pytest.raises(RequestError, match="row 5001 has 2 values"):
        decode(body, "text/csv", schema)


def test_quoted_newlines_row_numbers_count_records(schema):
    body = '31,"gold\nannual",2\n32,"x\ny",1\n33,gold\n'
    with pytest.raises(RequestError, match="row 3 has 2 values"):
        decode(body, "text/csv", schema)


# -- block splitting ---------------------------------------------------------------------------
def read_in_blocks(body: bytes, schema, block_bytes: int, content_type="text/csv"):
    kind = media.content_type(content_type)
    csv = csv_input.CsvReader(schema, kind)
    rows, first = [], 1
    for block in csv_input.blocks(io.BytesIO(body), len(body), block_bytes):
        records = csv.read(block, first)
        first += records.n
        rows += rows_of(records)
    return rows


def test_blocks_never_cut_inside_a_quoted_value(schema):
    plans = ['"gold\nannual"', '"basic, ""plus""\r\nmonthly"', "silver"]
    rows = [f"{i},{plans[i % 3]},{i % 5}" for i in range(3000)]
    body = ("\n".join(rows) + "\n").encode()
    whole = rows_of(decode(body, "text/csv", schema))
    assert len(whole) == 3000 and whole[0][1] == "gold\nannual"
    for block_bytes in (97, 1000, 4096):
        assert read_in_blocks(body, schema, block_bytes) == whole


def test_a_quoted_newline_across_the_block_size_is_read_as_in_one_piece(schema):
    # The body is cut where a quoted value's newline sits right at the block size.
    head = "1,gold,1\n" * 20
    body = (head + '2,"multi\nline",2\n' + "3,gold,3\n" * 20).encode()
    cut = body.index(b"multi\n") + len(b"multi\n")
    assert read_in_blocks(body, schema, cut) == rows_of(decode(body, "text/csv", schema))


def test_record_end_is_outside_quotes():
    assert csv_input.record_end(b'1,"a\nb",2\n3,"c\n', quoted=True) == len(b'1,"a\nb",2\n')
    assert csv_input.record_end(b'1,"a""\n', quoted=True) == 0
    assert csv_input.record_end(b"1,a\n2,b", quoted=False) == 4


def test_row_numbers_continue_across_blocks(schema):
    rows = [f"{i},gold,1" for i in range(500)]
    rows[400] = "400,gold"
    body = ("\n".join(rows) + "\n").encode()
    with pytest.raises(RequestError, match="row 401 has 2 values"):
        read_in_blocks(body, schema, 1000)


# -- NPY ---------------------------------------------------------------------------------------
def npy(array) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


def test_npy_rows_and_a_1d_array_as_one_row(schema):
    numbers = Schema(ModelMetadata(target="y", task="regression",
                                   features=[Feature("a", "numeric"), Feature("b", "numeric")]))
    two = decode(npy(np.array([[1.0, 2.0], [3.0, np.nan]])), "application/x-npy", numbers)
    assert rows_of(two) == [(1.0, 2.0), (3.0, None)]
    one = decode(npy(np.array([5, 6])), "application/x-npy", numbers)
    assert rows_of(one) == [(5.0, 6.0)]


def test_npy_text_array_is_typed_cell_by_cell_like_csv(schema):
    # np.array of rows mixing numbers and text makes a <U array.
    body = npy(np.array([[31, "gold", 2], [45.5, "basic", 0]]))
    assert np.load(io.BytesIO(body)).dtype.kind == "U"
    assert rows_of(decode(body, "application/x-npy", schema)) == EXPECTED
    assert rows_of(decode(body, "application/x-npy", schema)) == \
        rows_of(decode("31,gold,2\n45.5,basic,0\n", "text/csv", schema))


def test_npy_numbers_for_a_text_feature(schema):
    records = decode(npy(np.array([[31.0, 7.0, 2.0]])), "application/x-npy", schema)
    assert rows_of(records) == [(31.0, "7", 2.0)]


@pytest.mark.parametrize("body, words", [
    (npy(np.array([[31, "gold", 2]], dtype=object)), ["object array", "to_numpy(dtype=str)",
                                                      "CSV or JSON"]),
    (b"31,gold,2", ["not an NPY array"]),
    (npy(np.array([[31, "gold", 2]]))[:-5], ["cut short"]),
    (npy(np.zeros((2, 2, 2))), ["shape (2, 2, 2)"]),
    (npy(np.array([[31, 1]])), ["row 1 has 2 values", "3 features"]),
    (npy(np.array([[31.0, 1.0, np.inf]])), ["row 1", "'calls'", "finite"]),
    (b"", ["empty"]),
], ids=["object", "not npy", "cut short", "3-d", "width", "inf", "empty"])
def test_npy_errors_are_400(schema, body, words):
    with pytest.raises(RequestError) as info:
        decode(body, "application/x-npy", schema)
    assert info.value.status == 400
    for word in words:
        assert word in str(info.value)


def test_npy_answers_load_without_pickle(classified):
    labels = np.load(io.BytesIO(encode(classified, media.NPY, "label")), allow_pickle=False)
    assert labels.dtype.kind == "U" and labels.tolist() == ["yes", "no", "yes"]
    proba = np.load(io.BytesIO(encode(classified, media.NPY, "probabilities")),
                    allow_pickle=False)
    assert proba.dtype == np.float64 and proba.tolist() == classified.probabilities.tolist()
    numeric = Prediction(np.array([1, 0, 2]))
    assert np.load(io.BytesIO(encode(numeric, media.NPY, "label"))).tolist() == [1, 0, 2]


def test_npy_cannot_hold_output_all(classified):
    with pytest.raises(NotAcceptable) as info:
        encode(classified, media.NPY, "all")
    assert info.value.status == 406
    assert "application/json" in str(info.value) and "text/csv" in str(info.value)


# -- columns training ignored (ignore_columns) --------------------------------------------------
@pytest.fixture(scope="module")
def ignoring_schema() -> Schema:
    """Trained on "id,churn,age,plan,calls" with ignore_columns=id."""
    from sklearn_byoc.common.model_files import Column

    return Schema(churn_metadata(
        columns=[Column("id", "ignored"), Column("churn", "target"), Column("age", "feature"),
                 Column("plan", "feature"), Column("calls", "feature")],
        ignored_columns=["id"]))


@pytest.mark.parametrize("body", [
    "31,gold,2\n45.5,basic,0\n",                     # the features alone
    "c-1,31,gold,2\nc-2,45.5,basic,0\n",             # with the ignored column, no target
    "c-1,yes,31,gold,2\nc-2,no,45.5,basic,0\n",      # as the training file had them
    "id,age,plan,calls\nc-1,31,gold,2\nc-2,45.5,basic,0\n",  # a header naming it
], ids=["features", "with ignored", "with ignored and target", "header"])
def test_ignored_columns_are_accepted_and_dropped(ignoring_schema, body):
    assert rows_of(decode(body, "text/csv", ignoring_schema)) == EXPECTED


def test_ignored_columns_in_json_objects_and_lists(ignoring_schema):
    named = {"instances": [{"id": "c-1", "age": 31, "plan": "gold", "calls": 2}]}
    assert rows_of(decode(json.dumps(named), JSON, ignoring_schema)) == [EXPECTED[0]]
    listed = [["c-1", 31, "gold", 2]]
    assert rows_of(decode(json.dumps(listed), JSON, ignoring_schema)) == [EXPECTED[0]]
    body = npy(np.array([[7.0, 1.0, 31.0, 3.0, 2.0]]))
    numbers = rows_of(decode(body, media.NPY, ignoring_schema))
    assert numbers == [(31.0, "3", 2.0)]


def test_a_large_body_with_ignored_columns(ignoring_schema):
    rows = [f"id-{i},{r}" for i, r in enumerate(large_rows())]
    body = ("\n".join(rows) + "\n").encode()
    plain = ("\n".join(large_rows()) + "\n").encode()
    assert rows_of(decode(body, CSV, ignoring_schema)) == \
        rows_of(decode(plain, CSV, ignoring_schema))


def test_a_width_that_fits_no_layout_names_the_ones_that_do(ignoring_schema):
    with pytest.raises(RequestError) as info:
        decode("31,gold\n", CSV, ignoring_schema)
    message = str(info.value)
    assert "row 1 has 2 values" in message and "4 or 5 values" in message and "'id'" in message

