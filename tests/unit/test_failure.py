"""Failure reporting: the one-line reason files, stale files and exit codes."""
import errno
import os
import resource
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sklearn_byoc.common import cgroups
from sklearn_byoc.common.child_process import ChildResult
from sklearn_byoc.common.errors import StageStopped, UserError
from sklearn_byoc.common.failure import (EXIT_INTERNAL_ERROR, EXIT_STOPPED, EXIT_USER_ERROR,
                                         has_reason, memory_limit_text, one_line, reason_for,
                                         release_reason, reserve_reason, write_reason)
from sklearn_byoc.common.supervisor import worker_reason
from sklearn_byoc.common.user_code import program as up
from tests.fake_cgroups import GiB, v1_tree, v2_tree

ROOT = Path(__file__).resolve().parents[2]

# A stage whose behaviour the test picks through the environment.
STAGE = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    sys.path.insert(0, {root!r})
    from sklearn_byoc.common.errors import UserError
    from sklearn_byoc.common import failure
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
        if what == "no_room_left":
            # Nothing can be allocated any more, not even for the reason.
            def no_room(*args):
                raise MemoryError()
            failure.reason_for = no_room
            raise MemoryError()

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
    # The last log line says the same as the failure file, and it is the only one.
    assert result.stderr.rstrip().splitlines()[-1].endswith(text.strip())
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_unexpected_error_is_internal_with_exit_two(tmp_path):
    result = run(tmp_path, "internal")
    assert result.returncode == EXIT_INTERNAL_ERROR == 2
    text = (tmp_path / "output" / "failure").read_text()
    assert len(text.splitlines()) == 1
    assert "KeyError" in text and "missing" in text
    # The full traceback is in the log, not in the reason.
    assert "Traceback (most recent call last)" in result.stderr
    assert "Traceback" not in text


def test_no_room_even_for_the_reason_still_writes_one(tmp_path):
    result = run(tmp_path, "no_room_left")
    assert result.returncode == EXIT_INTERNAL_ERROR
    assert (tmp_path / "output" / "failure").read_text() == (
        "ran out of memory (MemoryError): use an instance type with more memory, or give the "
        "job less data at once\n")


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
    reason, code = reason_for(MemoryError(), "train", "the training", "use more memory")
    assert code == 2
    assert reason.startswith("ran out of memory: the training could not allocate more memory "
                             "(MemoryError) at a peak of ")
    assert reason.endswith("; use more memory")
    reason, code = reason_for(RuntimeError())
    assert code == 2 and "RuntimeError" in reason
    full = OSError(errno.ENOSPC, "No space left on device", "/opt/ml/model/model.joblib")
    reason, code = reason_for(full, "train")
    assert code == 1
    assert reason.startswith("no space left on the device while writing model.joblib to "
                             "/opt/ml/model")
    assert "training job's VolumeSizeInGB" in reason


# -- the reason files ---------------------------------------------------------------------------
def test_reserved_reason_files_start_empty_with_room_kept(tmp_path):
    files = [tmp_path / "output" / "message", tmp_path / "output" / "failure"]
    files[1].parent.mkdir()
    files[1].write_text("an earlier run's reason\n")
    reserve_reason(files)
    for path in files:
        info = path.stat()
        assert info.st_size == 0  # an empty file is no reason
        # fallocate(FALLOC_FL_KEEP_SIZE): blocks held beyond the end of the file.
        assert info.st_blocks * 512 >= 4096, "no room kept (does this file system support it?)"
    assert not has_reason(files)


def test_a_reason_written_in_place_replaces_a_longer_one(tmp_path):
    path = tmp_path / "failure"
    reserve_reason([path])
    write_reason("a long first reason,\nover two lines", [path])
    assert path.read_text() == "a long first reason, over two lines\n"
    write_reason("short", [path])
    assert path.read_text() == "short\n"
    assert has_reason([path])


def test_release_removes_only_empty_files(tmp_path):
    empty, written = tmp_path / "message", tmp_path / "failure"
    reserve_reason([empty, written])
    write_reason("the program's own reason", [written])
    release_reason([empty, written, tmp_path / "never-made"])
    assert not empty.exists()
    assert written.read_text() == "the program's own reason\n"


# -- the memory figures -------------------------------------------------------------------------
def test_the_limit_named_is_the_one_that_binds(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "SYSTEM_ROOT", v2_tree(tmp_path / "v2", memory_max=str(2 * GiB)))
    assert memory_limit_text() == "the container's 2.0 GiB limit"
    monkeypatch.setattr(cgroups, "SYSTEM_ROOT", v2_tree(tmp_path / "none", memory_max="max"))
    assert memory_limit_text() == "the 16.0 GiB of this machine"
    # A container limit above what the machine has does not bind.
    monkeypatch.setattr(cgroups, "SYSTEM_ROOT", v1_tree(tmp_path / "v1",
                                                        limit_in_bytes=str(64 * GiB)))
    assert memory_limit_text() == "the 16.0 GiB of this machine"
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY and hard < 768 * GiB:
        pytest.skip("the hard RLIMIT_AS is below 768 GiB")
    resource.setrlimit(resource.RLIMIT_AS, (768 * GiB, hard))
    try:
        assert memory_limit_text() == "its 768.0 GiB address-space limit (RLIMIT_AS)"
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# -- a worker that ended without a reason -------------------------------------------------------
KILLED = 128 + signal.SIGKILL


@pytest.mark.parametrize("result, expected", [
    (ChildResult(KILLED, [], signal_number=signal.SIGKILL, peak_bytes=300 * 2**20, oom_kills=1),
     "ran out of memory: the training was killed by the kernel's out-of-memory killer at a "
     "peak of 300.0 MiB of the container's 2.0 GiB limit; fewer rows"),
    (ChildResult(KILLED, [], signal_number=signal.SIGKILL, peak_bytes=None, oom_kills=1),
     "ran out of memory: the training was killed by the kernel's out-of-memory killer; "
     "fewer rows"),
    (ChildResult(KILLED, [], signal_number=signal.SIGKILL, peak_bytes=2**30, oom_kills=None),
     "ran out of memory: the training was killed by SIGKILL with no stop request, which is "
     "what the kernel's out-of-memory killer does (this host does not count its kills) at a "
     "peak of 1.0 GiB of the container's 2.0 GiB limit; fewer rows"),
    (ChildResult(KILLED, [], signal_number=signal.SIGKILL, peak_bytes=2**30, oom_kills=0),
     "the training was killed by SIGKILL from outside the job (exit code 137): not by a stop "
     "request, and not by the kernel's out-of-memory killer (the container's count of its "
     "kills did not change)"),
    (ChildResult(KILLED, [], stopped_by="SIGTERM", signal_number=signal.SIGKILL, oom_kills=1),
     "stopped by SIGTERM: the training was killed (SIGKILL) before it stopped"),
    (ChildResult(KILLED, [], stopped_by="SIGTERM", killed=True, signal_number=signal.SIGKILL),
     "stopped by SIGTERM: the training ignored it and was killed"),
    (ChildResult(139, ["Fatal Python error: Segmentation fault"],
                 signal_number=signal.SIGSEGV),
     "internal error: the training died of SIGSEGV (exit code 139); its last error line: "
     "Fatal Python error: Segmentation fault; the job log has its output"),
    (ChildResult(3, []),
     "internal error: the training exited with code 3 without a reason; the job log has its "
     "output"),
])
def test_worker_reason(tmp_path, monkeypatch, result, expected):
    monkeypatch.setattr(cgroups, "SYSTEM_ROOT", v2_tree(tmp_path, memory_max=str(2 * GiB)))
    assert worker_reason("the training", result, "fewer rows") == expected


def test_script_mode_reasons_for_memory_and_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(cgroups, "SYSTEM_ROOT", v1_tree(tmp_path, limit_in_bytes=str(GiB)))
    oom = ChildResult(KILLED, ["Epoch 3/10"], signal_number=signal.SIGKILL,
                      peak_bytes=900 * 2**20, oom_kills=1)
    assert up.failure_reason("user script train.py", oom) == (
        "ran out of memory: user script train.py was killed by the kernel's out-of-memory "
        "killer (exited with code 137) at a peak of 900.0 MiB of the container's 1.0 GiB "
        "limit; use an instance type with more memory, or make the program use less")
    raised = ChildResult(1, ["Traceback (most recent call last):", "MemoryError"],
                         peak_bytes=700 * 2**20)
    assert up.failure_reason("user script train.py", raised).startswith(
        "ran out of memory: user script train.py raised MemoryError (user script train.py "
        "exited with code 1) at a peak of 700.0 MiB of the container's 1.0 GiB limit")
    full = ChildResult(1, ["OSError: [Errno 28] No space left on device: '/opt/ml/model/m'"])
    assert up.failure_reason("user script train.py", full) == (
        "OSError: [Errno 28] No space left on device: '/opt/ml/model/m' (user script train.py "
        "exited with code 1): the job's storage volume is full; raise the training job's "
        "VolumeSizeInGB (the SDK estimator's volume_size, 30 GB by default)")
    child_killed = ChildResult(1, ["joblib...TerminatedWorkerError: A worker was killed"],
                               oom_kills=2)
    assert up.failure_reason("user script train.py", child_killed).endswith(
        "(user script train.py exited with code 1); meanwhile the kernel's out-of-memory "
        "killer killed 2 process(es) of the job: use an instance type with more memory, or "
        "make the program use less")


def test_one_line_collapses_whitespace():
    assert one_line("a\n b\t\tc \r\n") == "a b c"
    assert one_line("") == ""


def worker_target(args):
    """What the supervised worker below runs (found by import path)."""
    print("worker output, not flushed")  # noqa: T201 - the line the test looks for
    if args[0] == "exit3":
        sys.exit(3)
    if args[0] == "text":
        sys.exit("the worker gave up")
    if args[0] == "child":
        # A child left running, as joblib's process pool leaves its workers until the
        # interpreter's exit shuts them down: the worker must exit normally.
        import atexit
        subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],  # to our exit
                         stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
        atexit.register(print, "exit handlers ran", flush=True)


SUPERVISED = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from pathlib import Path
    from sklearn_byoc.common.failure import run_stage
    from sklearn_byoc.common.supervisor import run_worker

    files = [Path(sys.argv[2])]
    run_stage("demo", lambda: run_worker("demo", "tests.unit.test_failure:worker_target",
                                         [sys.argv[1]], files, what="the demo", level=20),
              files)
""")


@pytest.mark.parametrize("what, code", [("ok", 0), ("exit3", 3), ("text", 1), ("child", 0)])
def test_a_worker_ends_with_its_exit_code_and_its_output_written(tmp_path, what, code):
    script = tmp_path / "supervised.py"
    script.write_text(SUPERVISED.format(root=str(ROOT)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # a pipe buffers
    result = subprocess.run([sys.executable, str(script), what, str(tmp_path / "failure")],
                            capture_output=True, text=True, timeout=60, env=env)
    assert result.returncode == code, result.stderr
    assert "worker output, not flushed" in result.stdout
    if what == "text":
        assert "the worker gave up" in result.stderr
    assert ("exit handlers ran" in result.stdout) == (what == "child")
