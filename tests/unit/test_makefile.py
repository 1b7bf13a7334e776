"""The Makefile's handling of Python versions and of .venv, read through `make -n`.

`make -n` prints the commands it would run without running them; its
checks of the Python version run all the same. A stand-in "python" that only
answers the version question plays each Python, so no venv is built.
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scripts.harness import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def fake_python(folder: Path, version: str) -> Path:
    path = folder / f"python{version}"
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-n", "-C", str(ROOT), *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "MAKEFLAGS": ""})


def test_an_unsupported_python_is_refused_in_one_line(tmp_path):
    python = fake_python(tmp_path, "3.10")
    result = make("demo", f"PYTHON={python}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Python 3.10" in lines[0] and "use 3.11 or 3.12" in lines[0]
    assert "PYTHON=python3.12" in lines[0]


def test_a_missing_python_is_refused_in_one_line(tmp_path):
    result = make("demo", f"PYTHON={tmp_path / 'nothing-here'}", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "no Python at PYTHON=" in lines[0], result.stderr


def venv_made_by(folder: Path, version: str) -> Path:
    """A venv folder as make leaves it: its Python's stamp and up-to-date markers."""
    venv = folder / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / f".python-{version}").touch()
    for marker in ("bin/.runtime", "pins.txt", "bin/.pipeline", "bin/.dev"):
        (venv / marker).touch()
    return venv


@pytest.mark.parametrize("goal", ["demo", "test"])
def test_a_venv_made_by_another_python_is_rebuilt(tmp_path, goal):
    venv = venv_made_by(tmp_path, "3.11")
    python = fake_python(tmp_path, "3.12")
    result = make(goal, f"PYTHON={python}", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert f"rm -rf {venv}" in result.stdout
    assert f"{python} -m venv {venv}" in result.stdout
    assert f"{venv}/bin/pip install --quiet --require-hashes -r requirements.txt" in result.stdout


def test_a_venv_made_by_the_same_python_is_kept(tmp_path):
    venv = venv_made_by(tmp_path, "3.12")
    python = fake_python(tmp_path, "3.12")
    result = make("demo", f"PYTHON={python}", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert "rm -rf" not in result.stdout and "pip install" not in result.stdout
    assert f"{venv}/bin/python scripts/demo.py" in result.stdout


def test_demo_passes_data_and_target_on(tmp_path):
    venv = venv_made_by(tmp_path, "3.12")
    python = fake_python(tmp_path, "3.12")
    result = make("demo", f"PYTHON={python}", f"VENV={venv}", "DATA=my data.csv",
                  "TARGET=size class")
    assert result.returncode == 0, result.stderr
    assert f'{venv}/bin/python scripts/demo.py --data "my data.csv" --target "size class"' \
        in result.stdout


def test_pipeline_tools_install_under_the_image_pins(tmp_path):
    venv = venv_made_by(tmp_path, "3.12")
    (venv / "bin" / ".pipeline").unlink()
    python = fake_python(tmp_path, "3.12")
    result = make("pipeline-tools", f"PYTHON={python}", f"VENV={venv}")
    assert result.returncode == 0, result.stderr
    assert (f"{venv}/bin/pip install --quiet -r requirements-pipeline.txt -c {venv}/pins.txt"
            in result.stdout)
    assert "sagemaker" in (ROOT / "requirements-pipeline.txt").read_text()


def test_clean_removes_the_venv(tmp_path):
    result = make("clean", f"VENV={tmp_path / 'venv'}")
    assert result.returncode == 0, result.stderr
    assert f"rm -rf work .pytest_cache {tmp_path / 'venv'}" in result.stdout
    # The default venv too.
    assert "rm -rf work .pytest_cache .venv" in make("clean").stdout


def test_a_variable_no_target_uses_is_refused_in_one_line(tmp_path):
    result = make("demo", "HPS=max_depth=6", f"VENV={tmp_path / 'venv'}")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "no target uses HPS" in lines[0] and " HP " in lines[0]


def test_demo_passes_model_workdir_and_any_hyperparameter_on(tmp_path):
    result = make("demo", "DATA=my.csv", "TARGET=label", "MODEL=random_forest",
                  "WORKDIR=work/mine", "HP=ignore_columns=patient_id max_depth=6",
                  f"VENV={tmp_path / 'venv'}")
    assert result.returncode == 0, result.stderr
    command = [line for line in result.stdout.splitlines() if "scripts/demo.py" in line]
    assert command, result.stdout
    joined = " ".join(result.stdout.split("\\\n"))
    for part in ('--data "my.csv"', '--target "label"', '--model "random_forest"',
                 '--workdir "work/mine"',
                 "--hyperparameters 'ignore_columns=patient_id max_depth=6'"):
        assert part in joined, joined
