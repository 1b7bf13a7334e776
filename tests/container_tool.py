"""Build this project's image and run it the way SageMaker does, with whatever
container tool the machine has.

Two back ends:

- ``docker``, when a daemon answers (``docker info`` succeeds);
- ``podman`` + ``buildah`` with chroot isolation, for machines without a
  daemon or without the kernel features for namespaced containers.  podman
  builds (``podman build --isolation chroot``); ``buildah run --isolation
  chroot`` runs.  That isolation has no PID or network namespace: the
  container's processes are ordinary host processes and share the host's
  network, so a server bound to 127.0.0.1 inside is reachable from the host.

The API, shared by every suite that needs the image::

    tool = detect()                          # Docker, Buildah or None
    base = ensure_base_image(tool)           # the Dockerfile's base, or a stand-in
    tag = build_image(tool, base=base)
    result = tool.run(tag, ["train"], mounts=[Mount(tree, "/opt/ml")])
    with tool.start(tag, ["serve"], env={...}, user="65534:65534") as container:
        ...
        container.stop()                     # SIGTERM to the stage, then waits

``command`` and ``entrypoint`` follow ``docker run``: ``command`` replaces the
image's CMD, ``entrypoint`` (a list) replaces ENTRYPOINT and drops CMD.
``buildah run`` ignores both image settings, so the buildah back end applies
them itself; that way a test of the image's ENTRYPOINT/CMD means the same
with either tool.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from signal import SIGKILL, SIGTERM, Signals
from typing import IO, Iterable, Sequence

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
IMAGE_TAG = "localhost/sagemaker-sklearn-byoc:test"
# Stands in for the Dockerfile's default base where no registry can be pulled
# from: Debian bookworm, whose python3 is 3.11 like python:3.11-slim-bookworm.
STANDIN_BASE_TAG = "localhost/sagemaker-sklearn-byoc-base:bookworm"
STANDIN_SUITE = "bookworm"
STANDIN_PACKAGES = ("python3", "python3-venv", "ca-certificates")
DEBIAN_MIRROR = os.environ.get("DEBIAN_MIRROR", "http://deb.debian.org/debian")
# The CA bundle the host trusts.  Mounted into builds so that pip inside
# reaches the package index through whatever TLS-inspecting proxy the host
# trusts (the base image's own bundle lacks that CA).
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# Containers this module creates are named <prefix><pid of the creating
# process>-<random>, so leftovers of an interrupted run can be told apart from
# the containers of a run still going on (another test session, say).
CONTAINER_PREFIX = "byoc-test-"
# What python:3.11-slim sets; the stand-in base mimics it.
STANDIN_CHANGES = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
    'CMD ["python3"]',
)

INSTALL_HINT = (
    "install Docker with a running daemon, or podman, buildah and "
    "debootstrap (Debian/Ubuntu: apt-get install podman buildah debootstrap uidmap "
    "fuse-overlayfs)"
)


class ContainerToolMissing(RuntimeError):
    """No usable container tool (or a piece one needs) on this machine."""


class ContainerToolError(RuntimeError):
    """A container tool command failed."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")


@dataclass(frozen=True)
class Mount:
    """A bind mount: host ``source`` at ``target`` inside the container."""

    source: Path
    target: str
    read_only: bool = False

    def spec(self) -> str:
        return f"{Path(self.source).resolve()}:{self.target}" + (":ro" if self.read_only else "")


def _check(cmd: Sequence[str], timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kwargs)
    if result.returncode != 0:
        raise ContainerToolError(
            f"{' '.join(cmd)} exited with {result.returncode}:\n{result.stdout[-4000:]}"
            f"{result.stderr[-4000:]}")
    return result


# buildah re-executes itself from a sealed in-memory copy of its binary before it
# starts a container (containers/storage's unshare re-exec).  Sealing that copy
# (fcntl F_ADD_SEALS with F_SEAL_WRITE) can fail with EBUSY while the kernel still
# holds a reference to its pages: seen once in 1,237 tests of one CI run, on
# `buildah run` of a processing job, with the container's command never started.
TOOL_START_FAILURES = ("Close_Fd sealing memfd copy: Device or resource busy",
                       "Error sealing memfd copy: Device or resource busy")


def tool_failed_before_start(result: subprocess.CompletedProcess) -> bool:
    """Whether a run failed in the container tool's own start, before the command ran:
    nothing on stdout, and stderr only the tool's start failure and its exit line."""
    if result.returncode == 0 or result.stdout.strip():
        return False
    lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
    return bool(lines) and lines[0] in TOOL_START_FAILURES and \
        all(line == "Error: exit status 1" for line in lines[1:])


def container_name() -> str:
    return f"{CONTAINER_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:8]}"


def is_leftover(name: str, include_own: bool = False) -> bool:
    """A container of ours whose creating process has gone (or is this one,
    with ``include_own``)."""
    match = re.fullmatch(re.escape(CONTAINER_PREFIX) + r"(\d+)-[0-9a-f]+", name)
    if not match:
        return False
    pid = int(match.group(1))
    if pid == os.getpid():
        return include_own
    try:
        with open(f"/proc/{pid}/stat") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in ("Z", "X")  # ended, not yet reaped by its parent


def compose_argv(config: dict, command: Sequence[str] | None,
                 entrypoint: Sequence[str] | None) -> list[str]:
    """What ``docker run`` executes for an image config and run options."""
    if entrypoint is not None:
        # An entrypoint given at run time also drops the image's CMD.
        return [*entrypoint, *(command or [])]
    image_entrypoint = list(config.get("Entrypoint") or [])
    cmd = list(command) if command is not None else list(config.get("Cmd") or [])
    argv = image_entrypoint + cmd
    if not argv:
        raise ContainerToolError("the image has neither ENTRYPOINT nor CMD and no command "
                                 "was given")
    return argv


# -- processes -------------------------------------------------------------------------------
def _process_table() -> dict[int, tuple[int, int, list[str]]]:
    """pid -> (parent pid, session id, argv) for every process we can see."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                argv = [a.decode(errors="replace") for a in fh.read().split(b"\0") if a]
        except OSError:
            continue
        # The command name in parentheses may itself hold spaces and parentheses.
        fields = stat[stat.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), int(fields[3]), argv)
    return table


def descendants(pid: int) -> list[int]:
    table = _process_table()
    children: dict[int, list[int]] = {}
    for child, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(child)
    found, queue = [], [pid]
    while queue:
        for child in children.get(queue.pop(0), []):
            found.append(child)
            queue.append(child)
    return found


class Container:
    """A running container: ``process`` is the tool's client process."""

    def __init__(self, tool: "Tool", name: str, process: subprocess.Popen, argv: list[str]):
        self.tool = tool
        self.name = name
        self.process = process
        self.argv = argv
        self._removed = False

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def signal(self, sig: int = SIGTERM) -> None:
        """Deliver ``sig`` to the container's main process (the stage)."""
        self.tool.signal(self, sig)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=timeout)

    def stop(self, timeout: float = 30, sig: int = SIGTERM) -> int:
        """``sig`` to the stage, then SIGKILL to everything after ``timeout`` s.

        Returns the container's exit status (the stage's exit code)."""
        if self.process.poll() is None:
            self.signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.remove()
        return self.process.returncode

    def kill(self) -> None:
        self.tool.kill(self)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass

    def remove(self) -> None:
        """Kill whatever is left of the container and delete it."""
        if not self._removed:
            self.kill()
            self.tool.remove(self.name)
            self._removed = True

    def __enter__(self) -> "Container":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


# -- tools -----------------------------------------------------------------------------------
class Tool:
    """What every back end offers."""

    name = "?"

    def exists(self, image: str) -> bool:
        raise NotImplementedError

    def pull(self, image: str, timeout: float = 300) -> bool:
        try:
            return subprocess.run([self.name, "pull", image], capture_output=True,
                                  timeout=timeout).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def import_rootfs(self, rootfs: Path, tag: str, changes: Iterable[str] = ()) -> None:
        cmd = [self.name, "import"]
        for change in changes:
            cmd += ["--change", change]
        cmd += ["-", tag]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."],
                               stdout=subprocess.PIPE)
        try:
            result = subprocess.run(cmd, stdin=tar.stdout, capture_output=True, text=True,
                                    timeout=900)
        finally:
            tar.stdout.close()
            tar.wait()
        if result.returncode != 0 or tar.returncode != 0:
            raise ContainerToolError(f"importing {rootfs} as {tag} failed:\n{result.stderr}")

    def build_command(self, context: Path, tag: str, dockerfile: Path,
                      build_args: dict[str, str]) -> list[str]:
        raise NotImplementedError

    def build(self, context: Path = ROOT, tag: str = IMAGE_TAG, *,
              dockerfile: Path = DOCKERFILE, build_args: dict[str, str] | None = None,
              log: Path | None = None, timeout: float = 1800) -> str:
        cmd = self.build_command(Path(context), tag, Path(dockerfile), dict(build_args or {}))
        log = log or Path(tempfile.gettempdir()) / f"{CONTAINER_PREFIX}build.log"
        with open(log, "w") as out:
            result = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, timeout=timeout)
        if result.returncode != 0:
            raise ContainerToolError(f"{' '.join(cmd)} exited with {result.returncode}; "
                                     f"the end of {log}:\n{log.read_text()[-6000:]}")
        return tag

    def image_inspect(self, image: str) -> dict:
        """The image's record: Id, RepoTags, Config, Size, ..."""
        return json.loads(_check([self.name, "image", "inspect", image]).stdout)[0]

    def image_config(self, image: str) -> dict:
        """The image's config: Entrypoint, Cmd, Env, Labels, ExposedPorts, WorkingDir."""
        return self.image_inspect(image).get("Config") or {}

    def image_size(self, image: str) -> int:
        raw = json.loads(_check([self.name, "image", "inspect", image]).stdout)
        return int(raw[0]["Size"])

    def remove_image(self, image: str) -> None:
        subprocess.run([self.name, "rmi", "-f", image], capture_output=True, timeout=300)

    def start(self, image: str, command: Sequence[str] | None = None, *,
              entrypoint: Sequence[str] | None = None, mounts: Iterable[Mount] = (),
              env: dict[str, str] | None = None, user: str | None = None,
              stdout: IO | int | None = None, stderr: IO | int | None = None) -> Container:
        """Start a container and return at once."""
        raise NotImplementedError

    def run(self, image: str, command: Sequence[str] | None = None, *,
            entrypoint: Sequence[str] | None = None, mounts: Iterable[Mount] = (),
            env: dict[str, str] | None = None, user: str | None = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run a container to completion; stdout and stderr are captured as text.

        A run the tool itself failed to start, before the container's command ran
        (:func:`tool_failed_before_start`), is started once more."""
        result = self._run_once(image, command, entrypoint=entrypoint, mounts=mounts, env=env,
                                user=user, timeout=timeout)
        if tool_failed_before_start(result):
            print(f"container tool failed before the container started, starting it again: "
                  f"{result.stderr.strip()}", file=sys.stderr)
            result = self._run_once(image, command, entrypoint=entrypoint, mounts=mounts,
                                    env=env, user=user, timeout=timeout)
        return result

    def _run_once(self, image, command, *, entrypoint, mounts, env, user,
                  timeout) -> subprocess.CompletedProcess:
        container = self.start(image, command, entrypoint=entrypoint, mounts=mounts, env=env,
                               user=user, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = container.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            container.stop(timeout=10)
            out, err = container.process.communicate()
            raise ContainerToolError(f"{container.argv} did not finish within {timeout} s:\n"
                                     f"{out.decode(errors='replace')[-3000:]}"
                                     f"{err.decode(errors='replace')[-3000:]}") from None
        finally:
            container.remove()
        return subprocess.CompletedProcess(container.argv, container.process.returncode,
                                           out.decode(errors="replace"),
                                           err.decode(errors="replace"))

    def signal(self, container: Container, sig: int) -> None:
        raise NotImplementedError

    def kill(self, container: Container) -> None:
        raise NotImplementedError

    def remove(self, name: str) -> None:
        raise NotImplementedError

    def remove_leftovers(self, include_own: bool = False) -> None:
        """Remove the containers of runs that ended without removing them
        (and this process's own, with ``include_own``); never those of
        another process still running."""


class Docker(Tool):
    name = "docker"

    def exists(self, image: str) -> bool:
        return subprocess.run(["docker", "image", "inspect", image],
                              capture_output=True).returncode == 0

    def build_command(self, context, tag, dockerfile, build_args):
        cmd = ["docker", "build", "--tag", tag, "--file", str(dockerfile)]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        return cmd + [str(context)]

    def start(self, image, command=None, *, entrypoint=None, mounts=(), env=None, user=None,
              stdout=None, stderr=None):
        name = container_name()
        # Host networking: the same view chroot isolation gives, so a server
        # bound to 127.0.0.1 inside is reachable from the test.
        cmd = ["docker", "run", "--name", name, "--network", "host"]
        for mount in mounts:
            cmd += ["--volume", mount.spec()]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        if user:
            cmd += ["--user", user]
        args = list(command or [])
        if entrypoint is not None:
            # docker takes one word for --entrypoint; the rest become arguments.
            cmd += ["--entrypoint", entrypoint[0]]
            args = [*entrypoint[1:], *args]
        cmd += [image, *args]
        argv = compose_argv(self.image_config(image), command, entrypoint)
        process = subprocess.Popen(cmd, stdout=stdout, stderr=stderr, start_new_session=True)
        return Container(self, name, process, argv)

    def signal(self, container, sig):
        subprocess.run(["docker", "kill", "--signal", Signals(sig).name, container.name],
                       capture_output=True, timeout=60)

    def kill(self, container):
        subprocess.run(["docker", "kill", container.name], capture_output=True, timeout=60)

    def remove(self, name):
        subprocess.run(["docker", "rm", "--force", name], capture_output=True, timeout=120)

    def remove_leftovers(self, include_own=False):
        listed = subprocess.run(["docker", "ps", "--all", "--format", "{{.Names}}", "--filter",
                                 f"name={CONTAINER_PREFIX}"], capture_output=True, text=True)
        for name in listed.stdout.split():
            if is_leftover(name, include_own):
                self.remove(name)


class Buildah(Tool):
    """podman builds and stores images; buildah runs them with chroot isolation."""

    name = "podman"

    def exists(self, image: str) -> bool:
        return subprocess.run(["podman", "image", "exists", image],
                              capture_output=True).returncode == 0

    def build_command(self, context, tag, dockerfile, build_args):
        # chroot isolation: RUN steps need no user namespaces or cgroups.
        # --pull=never: the base is already local (see ensure_base_image).
        cmd = ["podman", "build", "--isolation", "chroot", "--pull=never", "--tag", tag,
               "--file", str(dockerfile)]
        if HOST_CA_BUNDLE.is_file():
            cmd += ["--volume", f"{HOST_CA_BUNDLE}:{HOST_CA_BUNDLE}:ro"]
        for key, value in build_args.items():
            cmd += ["--build-arg", f"{key}={value}"]
        return cmd + [str(context)]

    def start(self, image, command=None, *, entrypoint=None, mounts=(), env=None, user=None,
              stdout=None, stderr=None):
        argv = compose_argv(self.image_config(image), command, entrypoint)
        name = container_name()
        _check(["buildah", "from", "--pull=never", "--quiet", "--name", name, image])
        cmd = ["buildah", "run", "--isolation", "chroot"]
        mounts = list(mounts)
        if any(m.target == "/etc/hosts" for m in mounts):
            # Else buildah writes its own /etc/hosts over the one mounted there.
            cmd.append("--no-hosts")
        for mount in mounts:
            cmd += ["--volume", mount.spec()]
        for key, value in (env or {}).items():
            cmd += ["--env", f"{key}={value}"]
        if user:
            cmd += ["--user", user]
        cmd += [name, "--", *argv]
        try:
            process = subprocess.Popen(cmd, stdout=stdout, stderr=stderr,
                                       start_new_session=True)
        except BaseException:
            self.remove(name)
            raise
        return Container(self, name, process, argv)

    @staticmethod
    def stage_pids(container: Container) -> list[int]:
        """The container's main process(es).

        ``buildah run`` starts a runtime helper, which starts
        ``buildah-chroot-exec``, which chroots and starts the command as its
        child.  A signal sent to ``buildah run`` itself is not passed on: it
        SIGKILLs the command.  So signals go straight to the command, which is
        the stage itself because the shims ``exec`` Python.
        """
        table = _process_table()
        tree = set(descendants(container.process.pid))
        helpers = {pid for pid in tree
                   if table.get(pid, (0, 0, []))[2][:1]
                   and os.path.basename(table[pid][2][0]) == "buildah-chroot-exec"}
        return [pid for pid in tree if table.get(pid, (0, 0, []))[0] in helpers]

    def signal(self, container, sig):
        deadline = time.monotonic() + 10
        while container.process.poll() is None:
            pids = self.stage_pids(container)
            if pids:
                for pid in pids:
                    try:
                        os.kill(pid, sig)
                    except ProcessLookupError:
                        pass
                return
            if time.monotonic() > deadline:
                # Still starting: no stage process yet to signal.
                self.kill(container)
                return
            time.sleep(0.05)

    def kill(self, container):
        # chroot isolation adds no PID namespace: the container's processes
        # are host processes in the session the client was started in
        # (start_new_session), including any a stage left orphaned.
        session = container.process.pid
        for pid, (_, sid, _) in _process_table().items():
            if sid == session:
                try:
                    os.kill(pid, SIGKILL)
                except ProcessLookupError:
                    pass

    def remove(self, name):
        subprocess.run(["buildah", "rm", name], capture_output=True, timeout=120)

    def remove_leftovers(self, include_own=False):
        listed = subprocess.run(["buildah", "containers", "--format", "{{.ContainerName}}"],
                                capture_output=True, text=True)
        for name in listed.stdout.split():
            if is_leftover(name, include_own):
                self.remove(name)


def detect() -> Tool | None:
    """docker when a daemon answers, else podman + buildah, else None."""
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "info"], capture_output=True,
                              timeout=30).returncode == 0:
                return Docker()
        except subprocess.TimeoutExpired:
            pass
    if shutil.which("podman") and shutil.which("buildah"):
        return Buildah()
    return None


# -- images ----------------------------------------------------------------------------------
def default_base_image(dockerfile: Path = DOCKERFILE) -> str:
    """The default of the Dockerfile's ``ARG BASE_IMAGE``."""
    match = re.search(r"^ARG\s+BASE_IMAGE=(\S+)", Path(dockerfile).read_text(), re.MULTILINE)
    if not match:
        raise ValueError(f"{dockerfile} has no 'ARG BASE_IMAGE=<default>' line")
    return match.group(1).strip("\"'")


def build_standin_base(tool: Tool, tag: str = STANDIN_BASE_TAG, timeout: float = 1200) -> str:
    """A Debian bookworm image with python3 and venv, made without any registry."""
    if not shutil.which("debootstrap"):
        raise ContainerToolMissing("the base image cannot be pulled and debootstrap, which "
                                   "builds a stand-in, is missing; " + INSTALL_HINT)
    if os.geteuid() != 0:
        raise ContainerToolMissing("the base image cannot be pulled and debootstrap needs "
                                   "root to build a stand-in")
    with tempfile.TemporaryDirectory(prefix=CONTAINER_PREFIX + "rootfs-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        _check(["debootstrap", "--variant=minbase", "--include=" + ",".join(STANDIN_PACKAGES),
                STANDIN_SUITE, str(rootfs), DEBIAN_MIRROR], timeout=timeout)
        # What a slim image leaves out: downloaded packages and package lists.
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for path in (rootfs / leftover).glob("*"):
                if path.is_file():
                    path.unlink()
        tool.import_rootfs(rootfs, tag, STANDIN_CHANGES)
    return tag


def ensure_base_image(tool: Tool, image: str | None = None,
                      standin: str = STANDIN_BASE_TAG, pull_timeout: float = 300) -> str:
    """A base image present locally: ``image`` (default: the Dockerfile's),
    pulled if need be, else a stand-in built once and kept."""
    image = image or default_base_image()
    if tool.exists(image):
        return image
    if tool.exists(standin):
        # Made here before because pulling failed: no need to try again.
        return standin
    if tool.pull(image, timeout=pull_timeout):
        return image
    return build_standin_base(tool, standin)


def default_sklearn_line(dockerfile: Path = DOCKERFILE) -> str:
    """The default of the Dockerfile's ``ARG SKLEARN_VERSION``: the line requirements.txt locks."""
    match = re.search(r"^ARG\s+SKLEARN_VERSION=(\S+)", Path(dockerfile).read_text(), re.MULTILINE)
    if not match:
        raise ValueError(f"{dockerfile} has no 'ARG SKLEARN_VERSION=<default>' line")
    return match.group(1).strip("\"'")


def sklearn_lines(root: Path = ROOT) -> list[str]:
    """Every line the image can be built for: each lock under requirements/, and the default."""
    older = [p.name[len("sklearn-"):-len(".txt")]
             for p in (root / "requirements").glob("sklearn-*.txt")]
    lines = {*older, default_sklearn_line(root / "Dockerfile")}
    return sorted(lines, key=lambda line: tuple(int(part) for part in line.split(".")))


def build_image(tool: Tool, tag: str = IMAGE_TAG, base: str | None = None,
                context: Path = ROOT, sklearn_version: str | None = None, **kwargs) -> str:
    """Build the project's image on ``base`` (default: the Dockerfile's) for the scikit-learn
    line ``sklearn_version`` (default: the Dockerfile's); returns the tag."""
    build_args = {}
    if base and base != default_base_image():
        build_args["BASE_IMAGE"] = base
    if sklearn_version and sklearn_version != default_sklearn_line():
        if sklearn_version not in sklearn_lines():
            raise ValueError(f"scikit-learn line {sklearn_version!r} has no lock; the image can "
                             f"be built for {', '.join(sklearn_lines())}")
        build_args["SKLEARN_VERSION"] = sklearn_version
    return tool.build(context, tag, build_args=build_args, **kwargs)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m tests.container_tool build [--tag T] [--base IMAGE] [--sklearn-version
    LINE]`` (``make image``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m tests.container_tool",
                                     description="Build the project's image locally.")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="build the image (a stand-in base if none can be "
                                         "pulled)")
    build.add_argument("--tag", default="localhost/sagemaker-sklearn-byoc:latest")
    build.add_argument("--base", default=None,
                       help="base image (default: the Dockerfile's BASE_IMAGE)")
    build.add_argument("--sklearn-version", default=None, metavar="LINE",
                       help="the scikit-learn line, the Dockerfile's SKLEARN_VERSION: "
                            f"{', '.join(sklearn_lines())} (default "
                            f"{default_sklearn_line()})")
    args = parser.parse_args(argv)
    if args.sklearn_version is not None and args.sklearn_version not in sklearn_lines():
        parser.error(f"--sklearn-version {args.sklearn_version}: the image can be built for "
                     f"the scikit-learn lines {', '.join(sklearn_lines())}")

    tool = detect()
    if tool is None:
        parser.exit(1, f"no container tool: {INSTALL_HINT}\n")
    started = time.monotonic()
    base = ensure_base_image(tool, args.base)
    log = Path(tempfile.gettempdir()) / f"{CONTAINER_PREFIX}build.log"
    line = args.sklearn_version or default_sklearn_line()
    print(f"building {args.tag} (scikit-learn {line}) on {base} with {tool.name} "
          f"(log: {log})", flush=True)
    tag = build_image(tool, args.tag, base=base, sklearn_version=line, log=log)
    print(f"built {tag}: {tool.image_size(tag) / 1e6:.0f} MB in "
          f"{time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
