"""The "Running a stage by hand" recipe (docs/by-hand.md), run as written on a CSV the project
never saw.

The shell block is taken from docs/by-hand.md itself; only the values of its
first lines (DATA, TARGET, JOB, PORT) change, as a user sets them, and the
interpreter is the one running the tests. The data has column names with
spaces, symbols and non-ASCII letters, missing values, and a text target
that is neither the first nor the last column.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from scripts.harness import ROOT
from scripts.serve_process import free_port

pytestmark = pytest.mark.slow

TARGET = "size class"
CLASSES = {"small flat", "family flat", "big & airy"}


def recipe() -> str:
    page = (ROOT / "docs" / "by-hand.md").read_text(encoding="utf-8")
    section = page.split("# Running a stage by hand", 1)[1]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert blocks, "no ```sh block in docs/by-hand.md, 'Running a stage by hand'"
    return blocks[0]


def with_values(script: str, values: dict[str, str]) -> str:
    """Set the recipe's variables the way a user edits its first lines."""
    for name, value in values.items():
        script, count = re.subn(rf"^{name}=\S+", f"{name}={shlex.quote(value)}", script,
                                count=1, flags=re.M)
        assert count == 1, f"the recipe does not start by setting {name}"
    return script.replace(".venv/bin/python", shlex.quote(sys.executable))


def unusual_csv(path: Path, n: int = 600) -> Path:
    rng = np.random.default_rng(12)
    area = rng.uniform(30, 220, n).round(1)
    # The size class follows the area, blurred: a model gets most rows right, not all.
    blurred = area + rng.normal(0, 12, n)
    size = np.select([blurred < 70, blurred < 140], ["small flat", "family flat"], "big & airy")
    frame = pd.DataFrame({
        "Floor Area (m²)": area,
        TARGET: size,
        "city/district": rng.choice(["Nord-Ost", "Süd", "Altstadt"], n),
        "price €": (area * 3100 + rng.normal(0, 20000, n)).round(-2),
        "built-year": rng.integers(1900, 2024, n).astype(float),
    })
    frame.loc[rng.random(n) < 0.05, "built-year"] = np.nan
    frame.to_csv(path, index=False)
    return path


def test_the_readme_recipe_runs_as_written(tmp_path):
    data = unusual_csv(tmp_path / "my flats.csv")
    job = tmp_path / "job"
    script = with_values(recipe(), {"DATA": str(data), "TARGET": TARGET, "JOB": str(job),
                                    "PORT": str(free_port())})
    process = subprocess.Popen(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True)
    try:
        out, err = process.communicate(timeout=600)
    finally:
        # serve, if the script stopped before its kill line
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    assert process.returncode == 0, out[-3000:] + err[-3000:]

    # 1. prepare's splits, target first
    output = job / "processing" / "output"
    test = pd.read_csv(output / "test" / "test.csv")
    assert test.columns[0] == TARGET
    # 2. train's model
    assert json.loads((job / "model" / "metadata.json").read_text())["target"] == TARGET
    # 3. evaluate's report, printed by the recipe too
    report = json.loads((job / "processing" / "evaluation" / "evaluation.json").read_text())
    assert report["quality_gate"]["problem_type"] == "MulticlassClassification"
    assert '"multiclass_classification_metrics"' in out
    assert (job / "processing" / "evaluation" / "confusion_matrix.svg").is_file()

    # 4. the CSV call: one label per test row, in order; the JSON call's answer; the
    # NPY call's array of the first three labels
    lines = out.strip().splitlines()
    npy_answer = lines[-1]
    answer = json.loads(lines[-2])
    labels = lines[-2 - len(test):-2]
    # Right after the end of the printed evaluation.json.
    assert lines[-3 - len(test)] == "}"
    assert re.findall(r"'([^']*)'", npy_answer) == labels[:3], npy_answer
    assert set(labels) <= CLASSES
    accuracy = float(np.mean(np.array(labels) == test[TARGET].to_numpy()))
    assert accuracy == pytest.approx(
        report["multiclass_classification_metrics"]["accuracy"]["value"])
    assert answer["predictions"] == [labels[0]]
    assert set(answer["classes"]) == CLASSES and len(answer["probabilities"][0]) == 3

    # 5. model.tar.gz: the model folder's files at the top, loadable as SageMaker unpacks it
    with tarfile.open(job / "model.tar.gz") as tar:
        names = {Path(n).as_posix().removeprefix("./") for n in tar.getnames()} - {"", "."}
    assert {"model.joblib", "metadata.json"} <= names
    assert all("/" not in n for n in names - {"code"}), names
    from sklearn_byoc.common.model_files import load_model

    packed = tmp_path / "packed"
    packed.mkdir()
    (packed / "model.tar.gz").write_bytes((job / "model.tar.gz").read_bytes())
    assert load_model(packed).metadata.target == TARGET


def test_the_recipe_sets_its_variables_first():
    lines = [line for line in recipe().splitlines() if line.strip()]
    assert [line.split("=", 1)[0] for line in lines[:4]] == ["DATA", "TARGET", "JOB", "PORT"]
