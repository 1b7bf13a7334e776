"""Hypothesis strategies for hostile ``/invocations`` requests (not a test module).

A request is (Content-Type, Accept, custom attributes, body), each drawn from
a mix of what a real caller sends, what a careless one sends and what an
attacker might try: random bytes, wrong or missing content types, unknown
charsets, empty bodies, very long lines, NaN / inf / 1e309 / numbers with
thousands of digits, latin-1 and UTF-16 text, byte order marks, JSON nested
thousands deep, wrong column counts and names, random Accept headers and
custom attributes.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from hypothesis import strategies as st

from tests.hardening.endpoint import FEATURES

TYPES = ["text/csv", "application/json", "application/jsonlines"]
ALIASES = ["application/csv", "text/x-csv", "text/json", "application/x-jsonlines",
           "application/jsonl", "application/x-ndjson", "TEXT/CSV", "Application/JSON"]
OTHER_TYPES = ["", "image/png", "application/octet-stream", "application/x-npy",
               "application/python-pickle", "multipart/form-data; boundary=x",
               "application/x-www-form-urlencoded", "text/plain", "text/html", "*/*",
               "application/x-recordio-protobuf", "text", "/", ";", "text/csv/extra"]
CHARSETS = ["utf-8", "UTF-8", "utf8", "latin-1", "iso-8859-1", "cp1252", "utf-16",
            "utf-16-le", "utf-32", "ascii", "utf-8-sig", "", "bogus", "base64", "rot13",
            "zlib_codec", "idna", "utf-7", "unicode_escape", "x" * 300]
ENCODINGS = ["utf-8", "utf-8-sig", "latin-1", "utf-16", "utf-16-le", "cp1252"]

# Visible ASCII and inner spaces: what an HTTP client can put in a header.
HEADER_TEXT = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                      max_size=200).map(lambda t: t.replace("\\", "/"))

NUMBERS = ["0", "-1", "3.5", "1e308", "-1e308", "1e309", "-1e309", "1e-400", "nan", "NaN",
           "-nan", "inf", "-inf", "Infinity", "-Infinity", "1_000", "0x10", "1,5", "+7",
           ".5", "5.", "1e", "--1", "9" * 400, "9" * 5000, "0" * 1000 + "1"]
MISSING = ["", "NA", "N/A", "null", "None", "?", "nan", "#N/A", "<NA>"]
CATEGORIES = ["month-to-month", "one-year", "two-year", "dsl", "fiber", "west", "no", "yes",
              "électronique", "中文", "\u202e", "\x00", "a\tb", " padded "]


@dataclass
class Request:
    content_type: str | None
    accept: str | None
    attributes: str | None
    body: bytes

    def headers(self) -> dict[str, str]:
        headers = {}
        if self.content_type is not None:
            headers["Content-Type"] = self.content_type
        if self.accept is not None:
            headers["Accept"] = self.accept
        if self.attributes is not None:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = self.attributes
        return headers


# -- cells and rows -------------------------------------------------------------------
cells = st.one_of(
    st.sampled_from(NUMBERS),
    st.sampled_from(MISSING),
    st.sampled_from(CATEGORIES),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.text(max_size=30),
    st.text(max_size=10).map(lambda t: '"' + t + '"'),  # quoted, maybe with commas
    st.just('"unterminated'),
)


NUMERIC = {"customer_age", "tenure_months", "monthly_charges", "total_charges",
           "support_calls"}
plausible_numbers = st.one_of(st.floats(-1e6, 1e6), st.integers(-1000, 10**6))
plausible_categories = st.one_of(st.sampled_from(CATEGORIES[:8]), st.text(max_size=12))


@st.composite
def plausible_row(draw) -> list:
    """A row the model can take, now and then with one hostile cell."""
    row = [draw(plausible_numbers) if name in NUMERIC else draw(plausible_categories)
           for name in FEATURES]
    if draw(st.integers(0, 14)) == 0:
        row[draw(st.integers(0, len(row) - 1))] = draw(cells)
    return row


def csv_cell(value) -> str:
    text = repr(value) if isinstance(value, float) else str(value)
    if any(c in text for c in ',"\r\n') and not text.startswith('"'):
        return '"' + text.replace('"', '""') + '"'
    return text


@st.composite
def csv_text(draw) -> str:
    width = draw(st.one_of(st.just(len(FEATURES)), st.integers(0, 14)))
    if draw(st.integers(0, 2)) > 0:
        rows = [[csv_cell(v) for v in row]
                for row in draw(st.lists(plausible_row(), min_size=1, max_size=8))]
    else:
        rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), min_size=0,
                             max_size=12))
    lines = [",".join(row) for row in rows]
    header = draw(st.sampled_from(["none"] * 4 + ["features", "shuffled", "with target",
                                                  "unknown", "duplicate"]))
    names = list(FEATURES)
    if header == "shuffled":
        names = draw(st.permutations(names))
    elif header == "with target":
        names = names + ["churn"]
    elif header == "unknown":
        names = names[:-1] + [draw(st.text(min_size=1, max_size=12))]
    elif header == "duplicate":
        names = names[:-1] + [names[0]]
    if header != "none":
        lines.insert(0, ",".join(names))
    newline = draw(st.sampled_from(["\n", "\r\n", "\r", "\n\n"]))
    return newline.join(lines) + draw(st.sampled_from(["", newline]))


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20), st.sampled_from(CATEGORIES + NUMBERS))


def json_values(max_leaves: int = 12):
    return st.recursive(json_scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
        max_leaves=max_leaves)


positional_rows = st.one_of(
    plausible_row(),
    st.lists(json_scalars, min_size=len(FEATURES), max_size=len(FEATURES)))
named_rows = st.one_of(
    plausible_row().map(lambda row: dict(zip(FEATURES, row))),
    st.dictionaries(st.sampled_from(FEATURES + ["churn", "unknown"]), json_values(4),
                    max_size=12))
any_rows = st.one_of(positional_rows, named_rows, st.lists(json_values(4), max_size=14),
                     json_values())


def dumps(value) -> str:
    # allow_nan: NaN and Infinity go out as the bare tokens Python's json accepts.
    return json.dumps(value, allow_nan=True)


@st.composite
def json_text(draw) -> str:
    shape = draw(st.sampled_from(["instances", "list", "row"] * 3
                                 + ["mixed", "anything", "deep", "deep object", "big integer",
                                    "truncated"]))
    if shape == "instances":
        return dumps({"instances": draw(st.lists(positional_rows, min_size=1, max_size=6)
                                        | st.lists(named_rows, min_size=1, max_size=6))})
    if shape == "list":
        return dumps(draw(st.lists(positional_rows, min_size=1, max_size=6)
                          | st.lists(named_rows, min_size=1, max_size=6)))
    if shape == "mixed":
        return dumps(draw(st.lists(any_rows, max_size=6)))
    if shape == "row":
        return dumps(draw(st.one_of(positional_rows, named_rows)))
    if shape == "anything":
        return dumps(draw(json_values(30)))
    depth = draw(st.integers(100, 20000))
    if shape == "deep":
        return "[" * depth + "]" * depth
    if shape == "deep object":
        return '{"a":' * depth + "1" + "}" * depth
    if shape == "big integer":
        digits = draw(st.integers(300, 6000))
        return "[" + "9" * digits + "," + ",".join(["1"] * (len(FEATURES) - 1)) + "]"
    text = dumps({"instances": [draw(positional_rows)]})
    return text[: draw(st.integers(0, max(0, len(text) - 1)))]


@st.composite
def jsonlines_text(draw) -> str:
    lines = draw(st.lists(positional_rows, min_size=1, max_size=6)
                 | st.lists(named_rows, min_size=1, max_size=6)
                 | st.lists(st.one_of(positional_rows, named_rows, json_values(6)), max_size=8))
    text = "\n".join(dumps(line) for line in lines)
    if draw(st.integers(0, 3)) == 0:
        text += "\n" + draw(st.sampled_from(["[", "{", "not json", "[" * 5000, "1e309"]))
    return text


@st.composite
def long_line(draw) -> str:
    kind = draw(st.sampled_from(["many columns", "long cell", "long number"]))
    size = draw(st.integers(1000, 300_000))
    if kind == "many columns":
        return ",".join(["1"] * size)
    if kind == "long cell":
        quote = draw(st.booleans())
        cell = "x" * size
        return ",".join(["1"] * 4 + ['"' + cell + '"' if quote else cell] + ["a"] * 5)
    return "9" * size + "," + ",".join(["1"] * 3 + ["a"] * 6)


texts = st.one_of(csv_text(), json_text(), jsonlines_text(), long_line(),
                  st.sampled_from(["", " ", "\n\n", "\ufeff", ",,,,,,,,,", "null", "[]", "{}"]))
MATCHING = {"text/csv": csv_text(), "application/json": json_text(),
            "application/jsonlines": jsonlines_text()}


@st.composite
def content_types(draw) -> str | None:
    kind = draw(st.one_of(st.sampled_from(TYPES), st.sampled_from(ALIASES),
                          st.sampled_from(OTHER_TYPES), HEADER_TEXT, st.none()))
    if kind is None:
        return None
    if draw(st.integers(0, 3)) == 0:
        kind += "; charset=" + draw(st.sampled_from(CHARSETS))
    if draw(st.integers(0, 9)) == 0:
        kind += draw(st.sampled_from(["; header=present", ";;;", "; q=1", '; charset="utf-8"']))
    return kind


accepts = st.one_of(
    st.none(), st.sampled_from(TYPES + ALIASES + ["*/*", "*", "text/*", "application/*",
                                                  "image/png", "text/csv;q=0",
                                                  "text/csv;q=nan", "application/json;q=1e999",
                                                  "text/csv;q=0.2, application/json;q=0.9",
                                                  ",,,", ";q=1", "text/csv;q=-1"]),
    HEADER_TEXT)

attributes = st.one_of(
    st.none(), st.sampled_from(["output=label", "output=probabilities", "output=all",
                                "output=ALL", "output=", "output=proba", "=", ";;,,",
                                "a=b;output=all", "output=all;output=label",
                                "x" * 1024]),
    HEADER_TEXT)


@st.composite
def hostile_requests(draw) -> Request:
    """Mostly a body of the type its Content-Type names (so that many requests reach the
    model), often not: anything may be paired with anything."""
    if draw(st.integers(0, 9)) < 7:
        kind = draw(st.sampled_from(TYPES))
        text = draw(MATCHING[kind])
        encoding = draw(st.sampled_from(["utf-8"] * 6 + ENCODINGS))
        content_type = kind
        if encoding != "utf-8" and draw(st.booleans()):
            content_type += "; charset=" + encoding
        elif draw(st.integers(0, 4)) == 0:
            content_type = draw(content_types())
        body = text.encode(encoding, errors="replace")
    else:
        content_type = draw(content_types())
        if draw(st.integers(0, 4)) == 0:
            body = draw(st.binary(max_size=4000))
        else:
            body = draw(texts).encode(draw(st.sampled_from(ENCODINGS)), errors="replace")
    accept = draw(st.one_of(st.none(), st.sampled_from(TYPES), st.none(), accepts))
    custom = draw(st.one_of(st.none(), st.sampled_from(["output=label", "output=all",
                                                        "output=probabilities"]), st.none(),
                            attributes))
    return Request(content_type, accept, custom, body)
