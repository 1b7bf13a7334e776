"""Script mode as SageMaker runs it: ``train`` (and ``processing run``) as a process on an
/opt/ml tree, with the user's code named by the hyperparameters a framework
estimator sends (JSON-encoded: ``sagemaker_program = "\\"train.py\\""``)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from tests.fixtures.code_archives import (USER_SCRIPT, S3Emulator, hostile_archive,
                                          make_wheel, tar_folder)
from scripts.harness import DATA, ROOT, failure_reason, processing_tree, run_stage, training_tree
from scripts.serve_process import ServeProcess as Server


def framework_hps(program: str, submit: str | None = None, **user) -> dict:
    """Hyperparameters the way SKLearn(entry_point=..., hyperparameters=...) sends them."""
    hps = {"sagemaker_program": json.dumps(program),
           "sagemaker_container_log_level": "20",
           "sagemaker_job_name": json.dumps("script-mode-job"),
           "sagemaker_region": json.dumps("us-east-1")}
    if submit is not None:
        hps["sagemaker_submit_directory"] = json.dumps(submit)
    hps.update({k: json.dumps(v) for k, v in user.items()})
    return hps


def write_code(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return folder


def small_training_tree(base: Path, hps: dict) -> Path:
    return training_tree(base, {"train": {"part.csv": "a,b,churn\n1,x,no\n2,y,yes\n"}}, hps)


# -- the example script, end to end ------------------------------------------------------
def test_example_script_trains_a_model_that_serve_answers_with(tmp_path):
    archive = tar_folder(USER_SCRIPT, tmp_path / "sourcedir.tar.gz")
    base = training_tree(tmp_path / "job", {"train": [DATA]},
                         framework_hps("train.py", str(archive), n_estimators=20,
                                       target="churn", max_depth=8))
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    assert not (base / "output" / "failure").exists()
    # The metric line reaches the log, where MetricDefinitions regexes read it.
    line = next(x for x in result.stdout.splitlines() if x.startswith("validation:accuracy="))
    assert 0.5 < float(line.split("=")[1].rstrip(";")) <= 1
    assert "--max_depth 8 --n_estimators 20 --target churn" in result.stderr
    metadata = json.loads((base / "model" / "metadata.json").read_text())
    assert metadata["target"] == "churn" and metadata["params"]["n_estimators"] == 20

    with Server(base) as server:
        answer = server.invoke("49,25,46.22,1161.97,month-to-month,electronic-check,dsl,1,"
                               "west,no\n")
        assert answer.status_code == 200, answer.text
        assert answer.text.strip() in ("yes", "no")


# -- what the script sees ------------------------------------------------------------------
SHOW = """
    import json, os, sys
    import helper  # a module beside the script: the code folder is on PYTHONPATH
    seen = {"argv": sys.argv[1:], "cwd": os.getcwd(), "helper": helper.NAME,
            "env": {k: v for k, v in os.environ.items() if k.startswith("SM_")},
            "pythonpath": os.environ.get("PYTHONPATH", "")}
    out = os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "seen.json")
    with open(out, "w") as f:
        json.dump(seen, f)
"""


def test_script_gets_the_toolkits_arguments_and_variables(tmp_path):
    base = tmp_path / "job"
    hps = framework_hps("show.py", lr=0.05, name="forest", flag=True, layers=[64, 32],
                        k=3)
    hps["_tuning_objective_metric"] = "validation:accuracy"
    hps["plain"] = "text"  # the generic Estimator's str(value)
    training_tree(base, {"train": {"a.csv": "1\n"}, "validation": {"b.csv": "2\n"}}, hps,
                  hosts=["algo-1-abcde", "algo-2-abcde"])
    # No submit directory: the code is already in /opt/ml/code.
    write_code(base / "code", {"show.py": SHOW, "helper.py": "NAME = 'helper'\n"})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    seen = json.loads((base / "output" / "data" / "seen.json").read_text())
    assert seen["argv"] == ["--flag", "True", "-k", "3", "--layers", "[64, 32]",
                            "--lr", "0.05", "--name", "forest", "--plain", "text"]
    assert seen["helper"] == "helper"
    assert Path(seen["cwd"]) == base / "code"
    assert seen["pythonpath"].split(os.pathsep)[0] == str(base / "code")
    env = seen["env"]
    assert env["SM_MODEL_DIR"] == str(base / "model")
    assert env["SM_CHANNEL_TRAIN"] == str(base / "input" / "data" / "train")
    assert env["SM_CHANNEL_VALIDATION"] == str(base / "input" / "data" / "validation")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]
    assert json.loads(env["SM_HPS"]) == {"lr": 0.05, "name": "forest", "flag": True,
                                         "layers": [64, 32], "k": 3, "plain": "text"}
    assert env["SM_HP_LR"] == "0.05" and env["SM_HP_FLAG"] == "true"
    assert json.loads(env["SM_HOSTS"]) == ["algo-1-abcde", "algo-2-abcde"]
    assert env["SM_CURRENT_HOST"] == "algo-1-abcde"
    assert env["SM_NETWORK_INTERFACE_NAME"] == "eth0"
    assert env["SM_MODULE_NAME"] == "show" and env["SM_USER_ENTRY_POINT"] == "show.py"
    assert env["SM_MODULE_DIR"] == str(base / "code")
    assert env["SM_LOG_LEVEL"] == "20"
    assert json.loads(env["SM_USER_ARGS"]) == seen["argv"]
    assert int(env["SM_NUM_CPUS"]) >= 1 and env["SM_NUM_GPUS"].isdigit()
    assert env["SM_INPUT_CONFIG_DIR"] == str(base / "input" / "config")
    whole = json.loads(env["SM_TRAINING_ENV"])
    assert whole["job_name"] == "script-mode-job"
    assert whole["hyperparameters"]["name"] == "forest"
    assert "_tuning_objective_metric" not in whole["hyperparameters"]
    for name in ("SM_OUTPUT_DIR", "SM_INPUT_DIR", "SM_INPUT_DATA_CONFIG",
                 "SM_RESOURCE_CONFIG", "SM_FRAMEWORK_PARAMS"):
        assert name in env


def test_module_and_executable_programs(tmp_path):
    base = small_training_tree(tmp_path / "module", framework_hps("pkg.main", epochs=2))
    write_code(base / "code", {
        "pkg/__init__.py": "",
        "pkg/main.py": """
            import os, sys
            open(os.path.join(os.environ["SM_MODEL_DIR"], "args.txt"), "w").write(
                " ".join(sys.argv[1:]))
        """})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    assert (base / "model" / "args.txt").read_text() == "--epochs 2"

    base = small_training_tree(tmp_path / "shell", framework_hps("run.sh", epochs=2))
    write_code(base / "code", {"run.sh": 'echo "$@" > "$SM_MODEL_DIR/args.txt"\n'})
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    assert (base / "model" / "args.txt").read_text() == "--epochs 2\n"


# -- where the code comes from ----------------------------------------------------------------
def test_code_from_s3(tmp_path):
    code = write_code(tmp_path / "src", {
        "train.py": """
            import os
            from lib.io import save
            save(os.environ["SM_MODEL_DIR"], os.environ["SM_MODULE_DIR"])
        """,
        "lib/__init__.py": "",
        "lib/io.py": """
            import os
            def save(folder, text):
                open(os.path.join(folder, "module_dir.txt"), "w").write(text)
        """})
    archive = tar_folder(code, tmp_path / "sourcedir.tar.gz")
    with S3Emulator() as s3:
        uri = s3.put("sagemaker-us-east-1-123", "job/source/sourcedir.tar.gz", archive)
        base = small_training_tree(tmp_path / "job", framework_hps("train.py", uri))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(s3.env)
        result = subprocess.run([sys.executable, str(ROOT / "train" / "main.py")],
                                env={**env, "SAGEMAKER_BASE_DIR": str(base)},
                                capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    # SM_MODULE_DIR is the submit directory as given, as the toolkit reports it.
    assert (base / "model" / "module_dir.txt").read_text() == uri
    assert (base / "code" / "lib" / "io.py").is_file()  # unpacked into /opt/ml/code


def test_code_from_a_local_folder_with_a_file_uri(tmp_path):
    code = write_code(tmp_path / "src", {"fit.py": """
        import os
        open(os.path.join(os.environ["SM_MODEL_DIR"], "done"), "w").write("yes")
    """})
    base = small_training_tree(tmp_path / "job", framework_hps("fit.py", code.as_uri()))
    result = run_stage("train", base)
    assert result.returncode == 0, result.stderr
    assert (base / "model" / "done").read_text() == "yes"


@pytest.mark.parametrize("kind, member", [("traversal", "../evil.py"),
                                          ("symlink", "evil_link"),
                                          ("hardlink", "evil_hard")])
def test_hostile_code_archive_fails_the_job_naming_the_member(tmp_path, kind, member):
    archive = hostile_archive(kind, tmp_path / "sourcedir.tar.gz")
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(archive)))
    result = run_stage("train", base)
    assert result.returncode == 1
    reason = failure_reason(base)
    assert f"refused member {member!r}" in reason
    assert not (tmp_path / "job" / "evil.py").exists()


def test_oversize_code_archive_fails_the_job(tmp_path):
    archive = hostile_archive("oversize", tmp_path / "sourcedir.tar.gz")
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(archive)))
    result = run_stage("train", base, env={"SAGEMAKER_MAX_ARCHIVE_BYTES": "1000"})
    assert result.returncode == 1
    assert "refused member 'evil_big.bin'" in failure_reason(base)
    assert "byte cap" in failure_reason(base)


def test_missing_program_and_missing_code(tmp_path):
    base = small_training_tree(tmp_path / "a", framework_hps("nope.py", str(USER_SCRIPT)))
    assert run_stage("train", base).returncode == 1
    assert "'nope.py' is not in the code folder" in failure_reason(base)
    assert "train.py" in failure_reason(base)  # what the folder holds instead

    base = small_training_tree(tmp_path / "b", framework_hps("train.py"))
    assert run_stage("train", base).returncode == 1
    assert "no sagemaker_submit_directory" in failure_reason(base)


# -- requirements.txt ------------------------------------------------------------------------------
def test_requirements_are_installed_before_the_script_runs(tmp_path):
    code = write_code(tmp_path / "src", {
        "requirements.txt": "--no-index\n./tinypkg_sm-1.0-py3-none-any.whl\n",
        "train.py": """
            import os, tinypkg_sm
            open(os.path.join(os.environ["SM_MODEL_DIR"], "value"), "w").write(
                str(tinypkg_sm.VALUE))
        """})
    make_wheel(code)
    archive = tar_folder(code, tmp_path / "sourcedir.tar.gz")
    site = tmp_path / "site"
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(archive)))
    # pip installs into a folder of the test, never into the test's environment.
    result = run_stage("train", base, env={"PIP_TARGET": str(site), "PYTHONPATH": str(site)})
    assert result.returncode == 0, result.stderr
    assert (base / "model" / "value").read_text() == "42"
    assert "installing the packages in" in result.stderr


def test_failed_requirements_fail_the_job_with_pips_error(tmp_path):
    code = write_code(tmp_path / "src", {
        "requirements.txt": "--no-index\nno-such-package-sm==9.9\n",
        "train.py": "raise SystemExit('must not run')\n"})
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(code)))
    result = run_stage("train", base, env={"PIP_TARGET": str(tmp_path / "site")})
    assert result.returncode == 1
    reason = failure_reason(base)
    assert f"installing {code / 'requirements.txt'} failed" in reason
    assert "ERROR:" in reason and "no-such-package-sm" in reason
    assert "must not run" not in result.stderr


# -- how a script ends ---------------------------------------------------------------------------
def test_failing_script_surfaces_its_own_error(tmp_path):
    code = write_code(tmp_path / "src", {"train.py": """
        import sys
        print("starting", flush=True)
        def fit():
            raise ValueError("target column 'label' is not in the data")
        fit()
    """})
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(code)))
    result = run_stage("train", base)
    assert result.returncode == 1
    assert failure_reason(base) == ("ValueError: target column 'label' is not in the data "
                                    "(user script train.py exited with code 1)\n")
    assert "Traceback (most recent call last)" in result.stderr  # the log has it all
    assert "starting" in result.stdout


def test_exit_code_passes_through_and_own_failure_file_is_kept(tmp_path):
    code = write_code(tmp_path / "src", {"train.py": """
        import os, sys
        with open("/".join([os.environ["SM_OUTPUT_DIR"], "failure"]), "w") as f:
            f.write("my own reason")
        sys.exit(3)
    """})
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(code)))
    result = run_stage("train", base)
    assert result.returncode == 3
    assert failure_reason(base) == "my own reason"


def test_rerun_clears_an_earlier_failure(tmp_path):
    code = write_code(tmp_path / "src", {"train.py": "print('fine')\n"})
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(code)))
    (base / "output").mkdir()
    (base / "output" / "failure").write_text("old failure")
    assert run_stage("train", base).returncode == 0
    assert not (base / "output" / "failure").exists()


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"train ended early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.05)


def test_sigterm_to_train_reaches_the_script(tmp_path):
    signals = tmp_path / "signals.txt"
    ready = tmp_path / "ready"
    code = write_code(tmp_path / "src", {"train.py": f"""
        import signal, sys, time
        from pathlib import Path
        def stop(signum, frame):
            Path({str(signals)!r}).write_text(signal.Signals(signum).name)
            print("saving a checkpoint and stopping", file=sys.stderr, flush=True)
            sys.exit(0)
        signal.signal(signal.SIGTERM, stop)
        Path({str(ready)!r}).write_text("ready")
        time.sleep(120)
    """})
    base = small_training_tree(tmp_path / "job", framework_hps("train.py", str(code)))
    process = subprocess.Popen([sys.executable, str(ROOT / "train" / "main.py"), "train"],
                               env={**os.environ, "SAGEMAKER_BASE_DIR": str(base)},
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(ready, process)
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert signals.read_text() == "SIGTERM"
    assert process.returncode == 143  # a stopped job never reads as Completed
    assert failure_reason(base) == (
        "stopped by SIGTERM: user script train.py exited with code 0 (its last error line: "
        "saving a checkpoint and stopping)\n")
    assert "passing it to the program" in err


# -- processing run ---------------------------------------------------------------------------------
ECHO = """
    import json, os, sys
    out = os.path.join(os.environ["SAGEMAKER_BASE_DIR"], "processing", "output")
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "seen.json"), "w") as f:
        json.dump({"argv": sys.argv[1:], "cwd": os.getcwd()}, f)
    code = int(os.environ.get("EXIT_CODE", "0"))
    if code:
        print("Traceback (most recent call last):", file=sys.stderr)
        print(f"RuntimeError: failed on purpose with {code}", file=sys.stderr)
    sys.exit(code)
"""


@pytest.mark.parametrize("form", ["run", "bare"])
def test_processing_runs_a_user_script_with_its_arguments(tmp_path, form):
    base = processing_tree(tmp_path / "job", {})
    script = write_code(base / "processing" / "input" / "code", {"step.py": ECHO}) / "step.py"
    args = ["--input", "/opt/ml/processing/input/data", "plain", "--flag"]
    argv = (["run"] if form == "run" else []) + [str(script), *args]
    result = run_stage("processing", base, argv)
    assert result.returncode == 0, result.stderr
    seen = json.loads((base / "processing" / "output" / "seen.json").read_text())
    assert seen["argv"] == args
    assert not (base / "output" / "message").exists()


def test_processing_script_failure_is_the_jobs(tmp_path):
    base = processing_tree(tmp_path / "job", {})
    script = write_code(tmp_path / "code", {"step.py": ECHO}) / "step.py"
    result = run_stage("processing", base, ["run", str(script)], env={"EXIT_CODE": "4"})
    assert result.returncode == 4
    expected = "RuntimeError: failed on purpose with 4 (user script step.py exited with code 4)\n"
    assert failure_reason(base, "message") == expected
    assert failure_reason(base, "failure") == expected


def test_processing_run_needs_an_existing_script(tmp_path):
    base = processing_tree(tmp_path / "job", {})
    result = run_stage("processing", base, ["run"])
    assert result.returncode == 1
    assert "processing run needs a script" in failure_reason(base, "message")
    result = run_stage("processing", base, ["run", "missing.py"])
    assert result.returncode == 1
    assert "'missing.py' does not exist" in failure_reason(base, "message")
    result = run_stage("processing", base, ["run", "--help"])
    assert result.returncode == 0 and "processing run SCRIPT" in result.stdout
