"""Script mode: argument mapping, SM_* variables, fetching and unpacking the code,
requirements.txt, and running the program as a child process."""
from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from sklearn_byoc.common.contract import Paths
from sklearn_byoc.common.errors import UserError
from tests.fixtures.code_archives import (HOSTILE_KINDS, USER_SCRIPT, S3Emulator,
                                          hostile_archive, make_wheel, tar_folder)
from sklearn_byoc.train import script_mode as sm
from sklearn_byoc.common.child_process import ChildResult, exit_status, run_child
from sklearn_byoc.common.user_code import program as up
from sklearn_byoc.common.user_code.locate import fresh_folder, locate_code
from sklearn_byoc.common.user_code.requirements import (install_into_interpreter, pip_error,
                                                        requirement_files)

ROOT = Path(__file__).resolve().parents[2]


# -- decoding and arguments --------------------------------------------------------
@pytest.mark.parametrize("raw, expected", [
    ('"abc"', "abc"),            # framework estimator: json.dumps("abc")
    ("abc", "abc"),              # generic Estimator: str("abc")
    ("0.1", "0.1"),
    ("1e-3", "1e-3"),            # numbers keep the text they were sent as
    ("10", "10"),
    ("007", "007"),              # not JSON: stays text
    ("true", "True"),            # json.dumps(True), shown like the toolkit shows it
    ("false", "False"),
    ("True", "True"),            # str(True) from the generic Estimator
    ("null", ""),
    ("[1, 2]", "[1, 2]"),
    ('["a", "b"]', '["a", "b"]'),
    ('{"a": 1, "b": [2]}', '{"a": 1, "b": [2]}'),
    ('"\\"quoted\\""', '"quoted"'),
    ("", ""),
    ('"with space"', "with space"),
])
def test_arg_text_decodes_json_encoded_values(raw, expected):
    assert sm.arg_text(raw) == expected


def test_user_hyperparameters_exclude_sagemaker_keys_and_tuning_metric():
    raw = {"sagemaker_program": '"train.py"', "sagemaker_submit_directory": '"s3://b/k"',
           "sagemaker_container_log_level": "20", "_tuning_objective_metric": "acc",
           "lr": "0.1", "_private": "x", "epochs": "3"}
    user, platform = sm.split_hyperparameters(raw)
    assert user == {"_private": "x", "epochs": "3", "lr": "0.1"}
    assert set(platform) == {"sagemaker_program", "sagemaker_submit_directory",
                             "sagemaker_container_log_level", "_tuning_objective_metric"}


def test_to_args_sorted_pairs_and_one_dash_for_one_letter_keys():
    args = sm.to_args({"n_estimators": "100", "k": "3", "name": '"forest"', "flag": "true",
                       "layers": "[64, 32]"})
    assert args == ["--flag", "True", "-k", "3", "--layers", "[64, 32]",
                    "--n_estimators", "100", "--name", "forest"]


def test_to_args_empty():
    assert sm.to_args({}) == []


# -- the environment ----------------------------------------------------------------
def make_tree(base: Path) -> Paths:
    config = base / "input" / "config"
    config.mkdir(parents=True)
    (config / "resourceconfig.json").write_text(json.dumps(
        {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"],
         "network_interface_name": "ethwe", "current_instance_type": "ml.m5.large"}))
    for channel in ("train", "Validation"):
        (base / "input" / "data" / channel).mkdir(parents=True)
    return Paths(base)


def environment(paths: Paths, hps: dict, input_config=None, program="train.py",
                submit="s3://b/k/sourcedir.tar.gz"):
    input_config = input_config if input_config is not None else {
        "train": {"TrainingInputMode": "File"}, "Validation": {"TrainingInputMode": "File"}}
    resource = json.loads(paths.training_resourceconfig_file.read_text())
    env = sm.training_env(paths, hps, input_config, resource, program, submit,
                          paths.code_dir)
    args = sm.to_args(sm.split_hyperparameters(hps)[0])
    return env, sm.env_vars(env, args), args


HPS = {"sagemaker_program": '"train.py"',
       "sagemaker_submit_directory": '"s3://b/k/sourcedir.tar.gz"',
       "sagemaker_container_log_level": "10", "sagemaker_job_name": '"job-1"',
       "sagemaker_mpi_enabled": "false", "_tuning_objective_metric": '"validation:acc"',
       "lr": "0.05", "name": '"forest"', "flag": "true", "layers": "[64, 32]",
       "plain": "text", "learning-rate": "1e-3"}


def test_env_vars_describe_the_job_like_the_toolkit(tmp_path):
    paths = make_tree(tmp_path)
    _env, out, args = environment(paths, HPS)
    base = str(tmp_path)
    assert out["SM_MODEL_DIR"] == f"{base}/model"
    assert out["SM_OUTPUT_DATA_DIR"] == f"{base}/output/data"
    assert out["SM_OUTPUT_DIR"] == f"{base}/output"
    assert out["SM_INPUT_DIR"] == f"{base}/input"
    assert out["SM_INPUT_CONFIG_DIR"] == f"{base}/input/config"
    assert json.loads(out["SM_CHANNELS"]) == ["Validation", "train"]
    assert out["SM_CHANNEL_TRAIN"] == f"{base}/input/data/train"
    assert out["SM_CHANNEL_VALIDATION"] == f"{base}/input/data/Validation"
    assert json.loads(out["SM_HOSTS"]) == ["algo-1", "algo-2"]
    assert out["SM_CURRENT_HOST"] == "algo-2"
    assert out["SM_NETWORK_INTERFACE_NAME"] == "ethwe"
    # sagemaker-training-toolkit's value: multiprocessing.cpu_count()
    assert out["SM_NUM_CPUS"] == str(multiprocessing.cpu_count())
    assert out["SM_NUM_GPUS"].isdigit()
    assert out["SM_MODULE_NAME"] == "train"
    assert out["SM_USER_ENTRY_POINT"] == "train.py"
    assert out["SM_MODULE_DIR"] == "s3://b/k/sourcedir.tar.gz"
    assert out["SM_LOG_LEVEL"] == "10"
    assert json.loads(out["SM_FRAMEWORK_PARAMS"]) == {"sagemaker_mpi_enabled": False}
    assert json.loads(out["SM_INPUT_DATA_CONFIG"])["train"] == {"TrainingInputMode": "File"}
    assert json.loads(out["SM_RESOURCE_CONFIG"])["current_instance_type"] == "ml.m5.large"
    # Hyperparameters: decoded in SM_HPS, text or compact JSON in SM_HP_<NAME>.
    assert json.loads(out["SM_HPS"]) == {"lr": 0.05, "name": "forest", "flag": True,
                                         "layers": [64, 32], "plain": "text",
                                         "learning-rate": 0.001}
    assert out["SM_HP_LR"] == "0.05"
    assert out["SM_HP_NAME"] == "forest"
    assert out["SM_HP_FLAG"] == "true"
    assert out["SM_HP_LAYERS"] == "[64,32]"
    assert out["SM_HP_PLAIN"] == "text"
    assert out["SM_HP_LEARNING-RATE"] == "0.001"
    assert not any(k.startswith("SM_HP_SAGEMAKER") or k == "SM_HP__TUNING_OBJECTIVE_METRIC"
                   for k in out)
    assert json.loads(out["SM_USER_ARGS"]) == args
    assert args == ["--flag", "True", "--layers", "[64, 32]", "--learning-rate", "1e-3",
                    "--lr", "0.05", "--name", "forest", "--plain", "text"]


def test_training_env_is_the_whole_environment_as_json(tmp_path):
    paths = make_tree(tmp_path)
    env, out, _ = environment(paths, HPS)
    whole = json.loads(out["SM_TRAINING_ENV"])
    assert whole == json.loads(json.dumps(env))
    assert whole["hyperparameters"]["name"] == "forest"
    assert whole["channel_input_dirs"]["train"] == out["SM_CHANNEL_TRAIN"]
    assert whole["job_name"] == "job-1"
    assert whole["current_instance_type"] == "ml.m5.large"
    assert whole["master_hostname"] == "algo-1" and whole["is_master"] is False
    assert whole["module_dir"] == out["SM_MODULE_DIR"]


def test_defaults_without_submit_directory_or_log_level(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINING_JOB_NAME", raising=False)
    paths = make_tree(tmp_path)
    env, out, _ = environment(paths, {"sagemaker_program": "pkg.main"}, submit=None,
                              program="pkg.main")
    assert out["SM_MODULE_DIR"] == str(paths.code_dir)
    assert out["SM_MODULE_NAME"] == "pkg.main"
    assert out["SM_LOG_LEVEL"] == "20"
    assert out["SM_HPS"] == "{}"
    assert out["SM_USER_ARGS"] == "[]"
    assert env["job_name"] is None


def test_channels_fall_back_to_data_folders_without_inputdataconfig(tmp_path):
    paths = make_tree(tmp_path)
    _env, out, _ = environment(paths, {}, input_config={})
    assert json.loads(out["SM_CHANNELS"]) == ["Validation", "train"]


def test_variables_an_environment_cannot_hold_are_dropped(tmp_path):
    paths = make_tree(tmp_path)
    _env, out, _ = environment(paths, {"a=b": "1", "ok": "2"})
    assert "SM_HP_A=B" not in out
    assert out["SM_HP_OK"] == "2"


def test_child_environment_puts_code_first_on_pythonpath(tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", "/opt/program")
    env = up.child_environment({"SM_X": "1"}, tmp_path)
    assert env["PYTHONPATH"] == f"{tmp_path}{os.pathsep}/opt/program"
    assert env["SM_X"] == "1"
    assert env["PYTHONUNBUFFERED"]
    monkeypatch.delenv("PYTHONPATH")
    assert up.child_environment({}, tmp_path)["PYTHONPATH"] == str(tmp_path)


# -- which program, started how ------------------------------------------------------
def test_resolve_program_kinds(tmp_path):
    (tmp_path / "train.py").write_text("print(1)\n")
    program = up.resolve_program(tmp_path, "train.py", sm.PROGRAM_KEY)
    assert program.argv_prefix == [sys.executable, str(tmp_path / "train.py")]

    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "fit.py").write_text("")
    program = up.resolve_program(tmp_path, "sub/fit.py", sm.PROGRAM_KEY)
    assert program.folder == tmp_path / "sub"

    assert up.resolve_program(tmp_path, "pkg.main", sm.PROGRAM_KEY).argv_prefix == [
        sys.executable, "-m", "pkg.main"]

    tool = tmp_path / "run"
    tool.write_text("#!/bin/sh\necho hi\n")
    tool.chmod(0o755)
    assert up.resolve_program(tmp_path, "run", sm.PROGRAM_KEY).argv_prefix == [str(tool)]
    # The executable bit lost on the way: the "#!" line names the interpreter.
    tool.chmod(0o644)
    assert up.resolve_program(tmp_path, "run", sm.PROGRAM_KEY).argv_prefix == ["/bin/sh", str(tool)]
    tool.write_text("#!/usr/bin/env python3\nprint(1)\n")
    assert up.resolve_program(tmp_path, "run", sm.PROGRAM_KEY).argv_prefix == [
        "/usr/bin/env", "python3", str(tool)]
    assert not os.access(tool, os.X_OK)  # the user's file is left as it is
    # No "#!" line, executable or not: /bin/sh runs it, as the toolkit does.
    bare = tmp_path / "fit.sh"
    bare.write_text("echo hi\n")
    bare.chmod(0o755)
    assert up.resolve_program(tmp_path, "fit.sh", sm.PROGRAM_KEY).argv_prefix == ["/bin/sh", str(bare)]


@pytest.mark.parametrize("name", ["missing.py", "sub/missing.py", "not a module!", ""])
def test_resolve_program_refuses_what_is_not_there(tmp_path, name):
    (tmp_path / "other.py").write_text("")
    with pytest.raises(UserError) as info:
        up.resolve_program(tmp_path, name, sm.PROGRAM_KEY)
    if name:
        assert repr(name) in str(info.value)
        assert "other.py" in str(info.value)  # says what the folder holds


def test_module_name():
    assert sm.module_name("train.py") == "train"
    assert sm.module_name("pkg.main") == "pkg.main"


# -- the code folder ------------------------------------------------------------------
def test_folder_submit_directory_is_used_in_place(tmp_path):
    paths = Paths(tmp_path / "ml")
    code = locate_code(paths, str(USER_SCRIPT))
    assert code.path == USER_SCRIPT and not code.temporary
    code = locate_code(paths, USER_SCRIPT.as_uri())  # file:// URI
    assert code.path == USER_SCRIPT


def test_code_dir_is_used_without_submit_directory(tmp_path):
    paths = Paths(tmp_path / "ml")
    with pytest.raises(UserError, match="no sagemaker_submit_directory"):
        locate_code(paths, None)
    paths.code_dir.mkdir(parents=True)
    assert locate_code(paths, None).path == paths.code_dir


def test_archive_is_unpacked_into_the_empty_code_dir(tmp_path):
    paths = Paths(tmp_path / "ml")
    archive = tar_folder(USER_SCRIPT, tmp_path / "sourcedir.tar.gz")
    code = locate_code(paths, str(archive))
    assert code.path == paths.code_dir and not code.temporary
    assert (paths.code_dir / "train.py").read_text() == (USER_SCRIPT / "train.py").read_text()


def test_archive_never_mixes_with_files_already_in_code_dir(tmp_path):
    paths = Paths(tmp_path / "ml")
    paths.code_dir.mkdir(parents=True)
    (paths.code_dir / "stale.py").write_text("old")
    archive = tar_folder(USER_SCRIPT, tmp_path / "sourcedir.tar.gz")
    code = locate_code(paths, f"file://{archive}")
    try:
        assert code.temporary and code.path != paths.code_dir
        assert (code.path / "train.py").exists() and not (code.path / "stale.py").exists()
        assert sorted(p.name for p in paths.code_dir.iterdir()) == ["stale.py"]
    finally:
        code.cleanup()
    assert not code.path.exists()


def test_fresh_folder_falls_back_when_code_dir_cannot_be_made(tmp_path):
    blocker = tmp_path / "ml"
    blocker.write_text("a file where the folder should be")
    folder = fresh_folder(Paths(blocker))
    try:
        assert folder.temporary and folder.path.is_dir()
    finally:
        folder.cleanup()


@pytest.mark.parametrize("kind", HOSTILE_KINDS)
def test_hostile_archives_are_refused_naming_the_member(tmp_path, kind):
    paths = Paths(tmp_path / "job" / "ml")
    archive = hostile_archive(kind, tmp_path / "hostile.tar.gz")
    with pytest.raises(UserError) as info:
        locate_code(paths, str(archive), max_bytes=1024 if kind == "oversize" else None)
    message = str(info.value)
    assert "refused member" in message and "evil" in message
    # Nothing was unpacked, inside the code folder or beside it.
    written = [p for p in tmp_path.rglob("*") if p.name != "hostile.tar.gz"]
    assert all(p.is_dir() and not p.is_symlink() for p in written), written
    assert not any(paths.code_dir.iterdir())
    assert not Path("/tmp/evil-absolute.py").exists()


def test_size_cap_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SAGEMAKER_MAX_ARCHIVE_BYTES", "100")
    archive = hostile_archive("oversize", tmp_path / "big.tar.gz")
    with pytest.raises(UserError, match="byte cap"):
        locate_code(Paths(tmp_path / "ml"), str(archive))


def test_not_an_archive_or_missing(tmp_path):
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tarball")
    with pytest.raises(UserError, match="not a readable tar archive"):
        locate_code(Paths(tmp_path / "ml"), str(junk))
    with pytest.raises(UserError, match="does not exist"):
        locate_code(Paths(tmp_path / "ml"), str(tmp_path / "nope.tar.gz"))
    with pytest.raises(UserError, match="only s3://"):
        locate_code(Paths(tmp_path / "ml"), "https://example.com/code.tar.gz")


# -- S3, against moto's server on loopback ---------------------------------------------
@pytest.fixture
def s3(monkeypatch):
    with S3Emulator() as emulator:
        monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
        monkeypatch.delenv("AWS_PROFILE", raising=False)
        monkeypatch.delenv("AWS_REGION", raising=False)
        for key, value in emulator.env.items():
            monkeypatch.setenv(key, value)
        yield emulator


def test_s3_submit_directory_is_downloaded_and_unpacked(tmp_path, s3):
    archive = tar_folder(USER_SCRIPT, tmp_path / "sourcedir.tar.gz")
    uri = s3.put("code-bucket", "job-1/source/sourcedir.tar.gz", archive)
    paths = Paths(tmp_path / "ml")
    code = locate_code(paths, uri)
    assert code.path == paths.code_dir
    assert (paths.code_dir / "train.py").read_bytes() == (USER_SCRIPT / "train.py").read_bytes()


def test_s3_missing_object_is_a_clear_error(tmp_path, s3):
    s3.put("code-bucket", "other.tar.gz", tar_folder(USER_SCRIPT, tmp_path / "a.tar.gz"))
    with pytest.raises(UserError) as info:
        locate_code(Paths(tmp_path / "ml"), "s3://code-bucket/missing/sourcedir.tar.gz")
    assert "s3://code-bucket/missing/sourcedir.tar.gz" in str(info.value)
    assert "404" in str(info.value) or "NoSuch" in str(info.value)


def test_s3_hostile_archive_is_refused(tmp_path, s3):
    uri = s3.put("code-bucket", "evil.tar.gz", hostile_archive("traversal", tmp_path / "e.tgz"))
    with pytest.raises(UserError, match="refused member '../evil.py'"):
        locate_code(Paths(tmp_path / "ml"), uri)


def test_s3_uri_must_name_an_object(tmp_path):
    with pytest.raises(UserError, match="must name one S3 object"):
        locate_code(Paths(tmp_path / "ml"), "s3://bucket-only")


def test_boto3_is_not_imported_for_the_built_in_trainer():
    code = ("import sys; sys.path.insert(0, %r); import sklearn_byoc.train.cli, sklearn_byoc.train.script_mode, "
            "sklearn_byoc.common.user_code.locate; print('boto3' in sys.modules)" % str(ROOT))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- requirements.txt ---------------------------------------------------------------------
@pytest.fixture
def pip_target(tmp_path, monkeypatch):
    """pip installs into a folder of the test (PIP_TARGET), never into the test's own
    environment, and --no-index in the files keeps it off the network."""
    target = tmp_path / "site"
    monkeypatch.setenv("PIP_TARGET", str(target))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    return target


def test_requirements_are_installed_with_this_interpreter(tmp_path, pip_target):
    code = tmp_path / "code"
    (code / "wheels").mkdir(parents=True)
    make_wheel(code / "wheels")
    requirements = code / "requirements.txt"
    # A path relative to the file's folder, as a user writes it.
    requirements.write_text("--no-index\n./wheels/tinypkg_sm-1.0-py3-none-any.whl\n")
    install_into_interpreter(requirements)
    assert (pip_target / "tinypkg_sm" / "__init__.py").read_text() == "VALUE = 42\n"


def test_failed_install_names_the_file_and_pips_error(tmp_path, pip_target):
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("--no-index\n./missing-0.1-py3-none-any.whl\n")
    with pytest.raises(UserError) as info:
        install_into_interpreter(requirements)
    message = str(info.value)
    assert str(requirements) in message and "pip exited with code" in message
    assert "ERROR:" in message and "missing-0.1" in message


def test_requirement_files_at_the_root_and_next_to_the_program(tmp_path):
    (tmp_path / "sub").mkdir()
    assert requirement_files(tmp_path, tmp_path / "sub") == []
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / "sub" / "requirements.txt").write_text("")
    assert requirement_files(tmp_path, tmp_path / "sub") == [
        tmp_path / "requirements.txt", tmp_path / "sub" / "requirements.txt"]
    assert requirement_files(tmp_path, tmp_path) == [tmp_path / "requirements.txt"]


def test_pip_error_prefers_error_lines():
    stderr = ["Processing x", "ERROR: Could not find a version", "",
              "ERROR: No matching distribution found for foo", "notice: x"]
    assert pip_error(stderr) == ("ERROR: Could not find a version | ERROR: No matching "
                                 "distribution found for foo")
    assert pip_error(["a", "b"]) == "a | b"
    assert pip_error([]) == "pip printed nothing on stderr"


# -- the child process ------------------------------------------------------------------
def python(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def test_child_exit_code_and_stderr_tail(capfd):
    result = run_child(python("""
        import sys
        print("to stdout", flush=True)
        for i in range(80):
            print(f"line {i}", file=sys.stderr)
        sys.stderr.write("progress 10%\\rprogress 100%\\n")
        sys.stderr.write("ValueError: the last line")
        sys.exit(3)
    """))
    assert result.returncode == 3 and result.stopped_by is None
    assert len(result.stderr_tail) == 50
    assert result.stderr_tail[-2] == "progress 100%"
    assert result.last_error_line() == "ValueError: the last line"
    out, err = capfd.readouterr()
    assert "to stdout" in out
    assert "line 0\n" in err and "ValueError: the last line" in err  # forwarded live


def test_child_killed_by_a_signal_reports_128_plus_n():
    result = run_child(python("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"))
    assert result.returncode == 137
    assert exit_status(-15) == 143 and exit_status(2) == 2


def sigterm_self_when(ready: Path) -> threading.Thread:
    """SIGTERM to this process once the child says it is ready, as SageMaker's stop
    reaches the stage; the handlers run_child installs receive it."""
    def send():
        _wait_for(ready)
        os.kill(os.getpid(), signal.SIGTERM)

    thread = threading.Thread(target=send)
    thread.start()
    return thread


def test_sigterm_is_forwarded_to_the_child(tmp_path):
    seen = tmp_path / "seen"
    ready = tmp_path / "ready"
    code = f"""
        import signal, sys, time
        from pathlib import Path
        def stop(signum, frame):
            Path({str(seen)!r}).write_text(signal.Signals(signum).name)
            sys.exit(7)
        signal.signal(signal.SIGTERM, stop)
        Path({str(ready)!r}).write_text("ready")
        time.sleep(60)
    """
    previous = signal.getsignal(signal.SIGTERM)
    timer = sigterm_self_when(ready)
    result = run_child(python(code), kill_after=30)
    timer.join()
    assert seen.read_text() == "SIGTERM"
    assert result.stopped_by == "SIGTERM" and result.returncode == 7 and not result.killed
    assert signal.getsignal(signal.SIGTERM) is previous  # handlers restored


def test_child_ignoring_sigterm_is_killed_after_the_grace_period(tmp_path):
    ready = tmp_path / "ready"
    code = f"""
        import signal, time
        from pathlib import Path
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        Path({str(ready)!r}).write_text("ready")
        time.sleep(60)
    """
    timer = sigterm_self_when(ready)
    result = run_child(python(code), kill_after=1)
    timer.join()
    assert result.killed and result.stopped_by == "SIGTERM"
    assert result.returncode == 128 + signal.SIGKILL


def _wait_for(path: Path, timeout: float = 30) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.02)


# -- failure reasons -----------------------------------------------------------------------
def test_failure_reason_puts_the_programs_error_first():
    result = ChildResult(1, ["Traceback (most recent call last):", "  File x",
                             "ValueError: bad column", ""])
    assert up.failure_reason("user script train.py", result) == (
        "ValueError: bad column (user script train.py exited with code 1)")
    assert up.failure_reason("user script t.sh", ChildResult(2, [])) == (
        "user script t.sh exited with code 2 and printed nothing on stderr")
    long = ChildResult(1, ["E" * 5000])
    reason = up.failure_reason("user script train.py", long)
    assert len(reason) < 1024 and reason.endswith("exited with code 1)")


def test_failure_reason_for_a_stop():
    stopped = ChildResult(143, ["bye"], stopped_by="SIGTERM")
    assert up.failure_reason("user script a.py", stopped) == (
        "stopped by SIGTERM: user script a.py exited with code 143 (its last error line: bye)")
    killed = ChildResult(137, [], stopped_by="SIGTERM", killed=True)
    assert up.failure_reason("user script a.py", killed) == (
        "stopped by SIGTERM: user script a.py ignored SIGTERM and was killed")


def test_finish_keeps_a_reason_the_program_wrote(tmp_path):
    failure = tmp_path / "failure"
    failure.write_text("my own reason\n")
    with pytest.raises(SystemExit) as info:
        up.finish("user script a.py", ChildResult(4, ["x"]), [failure])
    assert info.value.code == 4
    assert failure.read_text() == "my own reason\n"


def test_finish_writes_the_reason_and_exits_with_the_programs_code(tmp_path):
    files = [tmp_path / "message", tmp_path / "failure"]
    with pytest.raises(SystemExit) as info:
        up.finish("user script a.py", ChildResult(5, ["KeyError: 'x'"]), files)
    assert info.value.code == 5
    for path in files:
        assert path.read_text() == "KeyError: 'x' (user script a.py exited with code 5)\n"


def test_finish_success_and_stopped_success(tmp_path):
    failure = tmp_path / "failure"
    up.finish("user script a.py", ChildResult(0, []), [failure])
    assert not failure.exists()
    with pytest.raises(SystemExit) as info:
        up.finish("user script a.py", ChildResult(0, [], stopped_by="SIGTERM"), [failure])
    assert info.value.code == 143
    assert failure.read_text().startswith("stopped by SIGTERM")
