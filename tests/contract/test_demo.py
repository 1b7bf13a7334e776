"""``scripts/demo.py``: the whole life cycle on the bundled data, as `make demo` runs it."""
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

from scripts.harness import ROOT


def test_demo_runs_end_to_end(tmp_path):
    work = tmp_path / "demo"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"),
                             "--workdir", str(work)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    out = result.stdout

    # The validation metrics, one per line, with the objective among them.
    section = out.split("== validation metrics ==", 1)[1].split("==", 1)[0]
    metrics = dict(re.findall(r"^(validation:\w+)\s+([-+0-9.eE]+)$", section, re.M))
    assert "validation:accuracy" in metrics
    assert 0.5 < float(metrics["validation:accuracy"]) <= 1.0
    saved = json.loads((work / "training-job" / "output" / "data" / "metrics.json").read_text())
    for key, value in metrics.items():
        assert abs(saved["validation"][key.split(":", 1)[1]] - float(value)) < 1e-4

    # The output locations, each under the work folder and present.
    locations = {}
    for label in ("splits (processing)", "model (train)", "model.tar.gz", "metrics.json",
                  "batch predictions"):
        match = re.search(rf"^{re.escape(label)}:\s+(\S+)", out, re.M)
        assert match, f"no {label!r} line in:\n{out}"
        locations[label] = Path(match.group(1))
        assert locations[label].exists(), locations[label]
        assert locations[label].resolve().is_relative_to(work.resolve())

    # One batch prediction per test row, each a class the model knows.
    splits = locations["splits (processing)"]
    with (splits / "test" / "test.csv").open(newline="") as handle:
        test_rows = list(csv.DictReader(handle))
    features = (splits / "test_features" / "test_features.csv").read_text().splitlines()
    predictions = locations["batch predictions"].read_text().splitlines()
    assert len(test_rows) == len(features) == len(predictions) > 0
    assert set(predictions) <= {"yes", "no"}
    assert f"({len(test_rows)} records)" in out
