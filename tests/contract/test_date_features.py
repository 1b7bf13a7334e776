"""Date columns from one command: train on a folder as Spark writes it (date32 and INT96
timestamp columns), then serve ISO-8601 dates in CSV and JSON requests, and load
model.joblib where this package is not installed.

The train stage runs as a process; serve runs in process.  Expected predictions come
from the saved pipeline given part columns worked out here with Python's ``datetime``.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import joblib
import pandas as pd
import pytest

from scripts.harness import run_stage, training_tree
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.invocation import Body, ModelService, invoke
from sklearn_byoc.serve.media import CSV, JSON, RequestContext

SPARK = Path(__file__).resolve().parent.parent / "fixtures" / "parquet" / "spark-dated"
# Requests: the features in the order training read them (customer_id was left out as an
# identifier, churned is the target), each date as one ISO-8601 cell.
ROWS = [["2021-05-04", "2024-03-01 00:30:00+02:00", "gold", "40.5"],
        ["2023-01-31", "2024-06-15T12:00:00Z", "basic", "12"],
        ["2022-12-25", "", "family", "99.9"]]
FEATURES = ["signup", "last_seen", "plan", "spend"]


def parts(value: str, name: str, times: bool) -> dict[str, float]:
    """A date cell's part columns, worked out with datetime (the expected values)."""
    keys = ["year", "month", "day", "day_of_week", "day_of_year"] + (["hour"] if times else []) \
        + ["days_since_epoch"]
    if not value:
        return {f"{name}__{k}": float("nan") for k in keys}
    when = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    found = {"year": when.year, "month": when.month, "day": when.day,
             "day_of_week": when.weekday(), "day_of_year": when.timetuple().tm_yday,
             "hour": when.hour,
             "days_since_epoch": (when - dt.datetime(1970, 1, 1)).total_seconds() / 86400}
    return {f"{name}__{k}": float(found[k]) for k in keys}


def part_frame(rows) -> pd.DataFrame:
    return pd.DataFrame([{**parts(r[0], "signup", False), **parts(r[1], "last_seen", True),
                          "plan": r[2], "spend": float(r[3])} for r in rows])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = training_tree(tmp_path_factory.mktemp("dates"), {"train": SPARK},
                         {"target": "churned"})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr[-2000:]
    return base, result


def test_training_on_a_spark_folder_records_each_date_column_with_its_parts(trained):
    base, result = trained
    metadata = json.loads((base / "model" / "metadata.json").read_text())
    assert [(f["name"], f["kind"]) for f in metadata["features"]] == [
        ("signup", "date"), ("last_seen", "date"), ("plan", "categorical"),
        ("spend", "numeric")]
    signup, last_seen = metadata["features"][:2]
    assert signup["times"] is False and "hour" not in signup["parts"]
    assert last_seen["times"] is True and last_seen["columns"] == list(
        parts("2024-01-01", "last_seen", True))
    # The id column, distinct on every one of the 240 rows, is left out with a warning.
    assert metadata["ignored_columns"] == ["customer_id"]
    assert "WARNING leaving out column 'customer_id'" in result.stderr
    pipeline = joblib.load(base / "model" / "model.joblib")
    assert list(pipeline.feature_names_in_) == list(part_frame(ROWS).columns)


def test_serve_answers_csv_and_json_requests_holding_iso_dates(trained):
    base, _ = trained
    expected = joblib.load(base / "model" / "model.joblib").predict(part_frame(ROWS)).tolist()
    service = ModelService(base / "model")
    # The numpy fast paths serve this model: they see only the numeric parts.
    assert service.model.fast is not None and service.model.numpy_model is not None
    # What the pipeline is given: the parts worked out here, column for column.
    records = service.model.schema.from_positional_rows(ROWS)
    pd.testing.assert_frame_equal(records.frame(), part_frame(ROWS), check_dtype=False)
    body = "\n".join(",".join(r) for r in ROWS).encode()
    answer = invoke(service, Body.of(body), RequestContext(content_type=CSV, accept=JSON))
    assert json.loads(answer.body)["predictions"] == expected
    named = [dict(zip(FEATURES, [r[0], r[1] or None, r[2], float(r[3])])) for r in ROWS]
    answer = invoke(service, Body.of(json.dumps({"instances": named}).encode()),
                    RequestContext(content_type=JSON, accept=JSON))
    assert json.loads(answer.body)["predictions"] == expected
    with pytest.raises(RequestError) as info:
        invoke(service, Body.of(b"2021-05-04,2024-03-01,gold,1\n2021-05-04,03/01/24,gold,1\n"),
               RequestContext(content_type=CSV))
    assert info.value.status == 400
    assert str(info.value).startswith("row 2, feature 'last_seen': expected an ISO-8601 date")


def test_model_joblib_loads_with_scikit_learn_alone(trained, tmp_path):
    base, _ = trained
    # -I: neither this checkout nor PYTHONPATH is importable, as on a machine with only
    # scikit-learn; the parts go in as the user would send them.
    script = (
        "import json, sys, joblib, pandas as pd\n"
        f"model = joblib.load({str(base / 'model' / 'model.joblib')!r})\n"
        "rows = pd.DataFrame(json.loads(sys.stdin.read()))\n"
        "assert not [m for m in sys.modules if m.startswith('sklearn_byoc')]\n"
        "print(json.dumps(model.predict(rows).tolist()))\n")
    frame = part_frame(ROWS)
    result = subprocess.run([sys.executable, "-I", "-c", script], cwd=tmp_path, text=True,
                            input=frame.to_json(orient="columns"), capture_output=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    expected = joblib.load(base / "model" / "model.joblib").predict(frame).tolist()
    assert json.loads(result.stdout) == expected


def test_evaluate_reads_the_dates_of_a_csv_test_split_as_training_did(trained, tmp_path):
    from sklearn_byoc.common.contract import Paths
    from sklearn_byoc.common.tables.read import read_folder
    from sklearn_byoc.processing import evaluate as ev, report as layout

    base, _ = trained
    frame = read_folder(SPARK).frame
    # As text: the dates as ISO days, the timestamps with a UTC offset of +01:00.
    rows = [[s.strftime("%Y-%m-%d"),
             "" if pd.isna(t) else (t + pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S+01:00"),
             p, str(v)] for s, t, p, v in zip(frame["signup"], frame["last_seen"], frame["plan"],
                                             frame["spend"])]
    test_dir = tmp_path / "test"
    test_dir.mkdir()
    split = pd.DataFrame(rows, columns=FEATURES)
    split.insert(0, "churned", frame["churned"])
    split.to_csv(test_dir / "test.csv", index=False)
    out = tmp_path / "evaluation"
    ev.evaluate(["--model-dir", str(base / "model"), "--test-dir", str(test_dir),
                 "--output-dir", str(out), "--bootstrap", "0"], Paths(tmp_path))
    report = json.loads((out / ev.REPORT_FILE).read_text())
    predicted = joblib.load(base / "model" / "model.joblib").predict(part_frame(rows))
    expected = float((predicted == frame["churned"].to_numpy()).mean())
    assert report[layout.BINARY]["accuracy"]["value"] == pytest.approx(expected)
