"""``scripts/demo.py --data ... --target ...``: the life cycle on a file the project never saw.

Column names with spaces and symbols, the target neither first nor last,
missing values; once with a text target (classification), once with a
numeric one (regression). The rerun commands the demo prints are run as
printed, in a shell, to check they are exact.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.harness import ROOT

pytestmark = pytest.mark.slow


def own_data(path: Path, seed: int = 3, n: int = 700) -> Path:
    rng = np.random.default_rng(seed)
    area = rng.uniform(30, 220, n).round(1)
    district = rng.choice(["Nord-Ost", "Süd", "Altstadt"], n)
    year = rng.integers(1900, 2024, n)
    price = (area * 3100 + np.where(district == "Altstadt", 90000, 0) - (2024 - year) * 400
             + rng.normal(0, 20000, n)).round(-2)
    # A text target that follows the features: the flat's size class.
    size = np.select([area < 70, area < 140], ["small flat", "family flat"], "big & airy")
    frame = pd.DataFrame({"Floor Area (m²)": area, "size class": size, "city/district": district,
                          "price €": price, "built-year": year})
    frame.loc[rng.random(n) < 0.03, "built-year"] = np.nan
    frame.to_csv(path, index=False)
    return path


def run_demo(tmp_path: Path, target: str, *more: str) -> tuple[str, Path]:
    data = own_data(tmp_path / "my flats.csv")
    work = tmp_path / "demo"
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"),
                             "--data", str(data), "--target", target, "--workdir", str(work),
                             *more],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout, work


def located(out: str, label: str, cwd: Path) -> Path:
    match = re.search(rf"^{re.escape(label)}:\s+(\S+)", out, re.M)
    assert match, f"no {label!r} line in:\n{out}"
    return cwd / match.group(1)


def rerun_commands(out: str) -> dict[str, str]:
    section = out.split("== run a stage again by hand ==", 1)[1]
    return dict(re.findall(r"^(prepare|train|evaluate|serve):\s+(.+)$", section, re.M))


@pytest.mark.parametrize("target, section, problem_type, hyperparameters", [
    ("size class", "multiclass_classification_metrics", "MulticlassClassification", ""),
    ("price €", "regression_metrics", "Regression", "ignore_columns=built-year max_iter=50"),
])
def test_demo_on_a_file_of_ones_own(tmp_path, target, section, problem_type, hyperparameters):
    out, work = run_demo(tmp_path, target, "--hyperparameters", hyperparameters)
    metadata = json.loads((work / "training-job" / "model" / "metadata.json").read_text())
    assert metadata["ignored_columns"] == (["built-year"] if hyperparameters else [])
    assert metadata["params"].get("max_iter") == (50 if hyperparameters else None)
    assert f"target:                    {target}" in out
    assert f"problem type:              {problem_type}" in out

    report = json.loads(located(out, "evaluation.json", tmp_path).read_text())
    assert section in report
    assert report["quality_gate"]["problem_type"] == problem_type
    gate = float(re.search(r"^quality_gate\.value\s+([-0-9.]+)$", out, re.M).group(1))
    assert gate == pytest.approx(report["quality_gate"]["value"], abs=1e-4)
    # The data is learnable: the model beats the best constant prediction clearly.
    assert gate > 0.5
    assert located(out, "evaluation picture", tmp_path).read_text().startswith("<svg")

    splits = located(out, "splits (processing)", tmp_path)
    test = pd.read_csv(splits / "test" / "test.csv")
    predictions = located(out, "batch predictions", tmp_path).read_text().splitlines()
    assert len(predictions) == len(test) > 0
    if problem_type == "Regression":
        assert all(float(p) > 0 for p in predictions)
        assert re.search(r"^batch transform of the test features: rmse [0-9.]+$", out, re.M)
    else:
        assert set(predictions) <= {"small flat", "family flat", "big & airy"}
        assert re.search(r"^batch transform of the test features: accuracy (0\.\d+|1\.0+)$",
                         out, re.M)
    answer = re.search(r"^smoke request answer:\s+(.+)$", out, re.M).group(1)
    assert len(json.loads(answer)["predictions"]) == 1

    # The printed commands rerun each stage, as printed, from where the demo ran.
    commands = rerun_commands(out)
    assert set(commands) == {"prepare", "train", "evaluate", "serve"}
    evaluation = located(out, "evaluation.json", tmp_path)
    evaluation.unlink()
    for stage in ("prepare", "train", "evaluate"):
        result = subprocess.run(commands[stage], shell=True, cwd=tmp_path, capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, (stage, commands[stage], result.stderr[-3000:])
    assert json.loads(evaluation.read_text())["quality_gate"]["problem_type"] == problem_type


def test_demo_refuses_data_that_is_not_there(tmp_path):
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"),
                             "--data", str(tmp_path / "nope.csv"), "--target", "y",
                             "--workdir", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "nope.csv: no such file or folder" in result.stderr


def test_demo_names_a_target_that_is_not_a_column(tmp_path):
    data = own_data(tmp_path / "flats.csv")
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"),
                             "--data", str(data), "--target", "prize",
                             "--workdir", str(tmp_path / "demo")],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    # prepare's own reason, and the command that runs it again.
    assert "processing failed:" in result.stdout and "'prize'" in result.stdout
    assert "processing/main.py prepare --target prize" in result.stderr


def test_help_documents_the_options():
    result = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py"), "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    for option in ("--data", "--target", "--model", "--workdir"):
        assert option in result.stdout
    assert "make demo DATA=" in result.stdout
