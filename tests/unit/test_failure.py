"""Failure reporting: the one-line reason files, stale files and exit codes."""
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path


from sklearn_byoc.common.errors import StageStopped, UserError
from sklearn_byoc.common.failure import (EXIT_INTERNAL_ERROR, EXIT_STOPPED, EXIT_USER_ERROR, one_line,
                            reason_for)

ROOT = Path(__file__).resolve().parents[2]

# A stage whose behaviour the test picks through the environment.
STAGE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from sklearn_byoc.common.errors import UserError
    from sklearn_byoc.common.failure import run_stage

    def main():
        what = os.environ["WHAT"]
        print("stage started", flush=True)
        if what == "user":
            raise UserError("channel 'train' is empty:\\n  add   files\\tthere")
        if what == "internal":
            {{}}["missing"]
        if what == "wait":
            time.sleep(30)
        if what == "exit3":
            sys.exit(3)

    out = Path(os.environ["OUT"])
    files = [out / name for name in os.environ["FILES"].split(",")]
    run_stage("demo", main, files)
""")


def run(tmp_path: Path, what: str, files=("failure",)) -> subprocess.CompletedProcess:
    script = tmp_path / "stage.py"
    script.write_text(STAGE.format(root=str(ROOT)))
    env = {**os.environ, "WHAT": what, "OUT": str(tmp_path / "output"),
           "FILES": ",".join(files)}
    return subprocess.run([sys.executable, str(script)], env=env, capture_output=True,
                          text=True, timeout=60)


def test_success_exits_zero_and_writes_no_reason(tmp_path):
    result = run(tmp_path, "ok")
    assert result.returncode == 0
    assert not (tmp_path / "output" / "failure").exists()


def test_user_error_writes_one_line_reason_and_exits_one(tmp_path):
    result = run(tmp_path, "user")
    assert result.returncode == EXIT_USER_ERROR == 1
    text = (tmp_path / "output" / "failure").read_text()
    assert text == "channel 'train' is empty: add files there\n"
    # The last log line says the same as the failure file.
    assert result.stderr.rstrip().splitlines()[-1].endswith(text.strip())


def test_unexpected_error_is_internal_with_exit_two(tmp_path):
    result = run(tmp_path, "internal")
    assert result.returncode == EXIT_INTERNAL_ERROR == 2
    text = (tmp_path / "output" / "failure").read_text()
    assert len(text.splitlines()) == 1
    assert "KeyError" in text and "missing" in text
    # The full traceback is in the log, not in the reason.
    assert "Traceback (most recent call last)" in result.stderr
    assert "Traceback" not in text


def test_processing_writes_message_and_failure(tmp_path):
    result = run(tmp_path, "user", files=("message", "failure"))
    assert result.returncode == 1
    for name in ("message", "failure"):
        assert (tmp_path / "output" / name).read_text() == \
            "channel 'train' is empty: add files there\n"


def test_stale_failure_file_is_removed_on_rerun(tmp_path):
    assert run(tmp_path, "user", files=("message", "failure")).returncode == 1
    assert (tmp_path / "output" / "failure").exists()
    result = run(tmp_path, "ok", files=("message", "failure"))
    assert result.returncode == 0
    assert not (tmp_path / "output" / "failure").exists()
    assert not (tmp_path / "output" / "message").exists()


def test_explicit_exit_code_passes_through(tmp_path):
    assert run(tmp_path, "exit3").returncode == 3


def test_sigterm_stops_the_stage_with_a_reason(tmp_path):
    script = tmp_path / "stage.py"
    script.write_text(STAGE.format(root=str(ROOT)))
    env = {**os.environ, "WHAT": "wait", "OUT": str(tmp_path / "output"), "FILES": "failure"}
    process = subprocess.Popen([sys.executable, str(script)], env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "stage started"
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()
        process.stderr.close()
    assert code == EXIT_STOPPED == 143
    assert (tmp_path / "output" / "failure").read_text() == "stopped by SIGTERM\n"


def test_reason_for_kinds_of_errors():
    assert reason_for(UserError("bad column")) == ("bad column", 1)
    assert reason_for(StageStopped("stopped by SIGINT")) == ("stopped by SIGINT", 143)
    reason, code = reason_for(MemoryError())
    assert code == 2 and "memory" in reason
    reason, code = reason_for(RuntimeError())
    assert code == 2 and "RuntimeError" in reason


def test_one_line_collapses_whitespace():
    assert one_line("a\n b\t\tc \r\n") == "a b c"
    assert one_line("") == ""
