"""A ``docker compose`` stand-in that runs SageMaker SDK local mode's services.

SageMaker Python SDK v2 local mode writes a compose file per job and runs
``docker compose -f FILE up --build --abort-on-container-exit``; this program
reads that file and runs each service in the real image with the container
tool of ``tests/container_tool.py`` (docker with a daemon, or podman/buildah
with chroot isolation where there is none).

What it honours of each service, which is everything the SDK writes:

- ``image``; ``command`` (``train`` / ``serve``) or ``entrypoint`` (a
  processing job's ContainerEntrypoint + ContainerArguments), with
  ``docker run`` semantics;
- ``volumes`` (``host:container[:z|:ro]``) as bind mounts; ``environment``;
- ``ports: ["H:8080"]`` for ``serve``: the containers share the host's
  network (chroot isolation has no network namespace), so publishing a port
  is emulated by making ``serve`` listen on 127.0.0.1:H itself
  (``serve --host 127.0.0.1 --port H``), loopback only;
- several ``train`` services (a training job with ``instance_count > 1``): the
  containers share the host's network, so each service gets its own loopback
  address (127.0.0.2, 127.0.0.3, … in the file's order) and every container
  gets a hosts file, mounted at /etc/hosts, where each service name and its
  network aliases resolve to that address: each instance reaches the others by
  name, as on the job's own network;
- ``container_name``, ``tty`` and ``stdin_open`` carry nothing a host-network
  container needs; a GPU request is refused.

``up --abort-on-container-exit``: when one container exits the others are
stopped, and the exit code is that of the first container to exit.
SIGTERM or SIGINT (how the SDK stops a serving container), or ``down -f
FILE``, stop every container gracefully: SIGTERM to the stage, SIGKILL 10 s
later, as ``docker compose`` does.

Why a detached runner: to stop a local endpoint the SDK sends SIGTERM to
every child process of the compose process and then to the compose process
itself.  ``buildah run`` answers SIGTERM by SIGKILLing the command, so the
containers must not be children of the process the SDK started.  That
process starts a runner that detaches (double fork), relays its output, and
passes signals on to it; the runner starts and stops the containers.

Other commands, for the fake ``docker``: ``version``, ``images -q IMAGE``,
``pull IMAGE``, ``run --rm -v HOST:CONTAINER IMAGE COMMAND`` (SDK v3's clean-up),
``context inspect``.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
VERSION = "Docker Compose version v2.29.7 (stand-in: tests/fakes/compose.py)"
STOP_TIMEOUT = 10  # docker compose's default grace period before SIGKILL
STATE_ENV = "SAGEMAKER_FAKES_STATE"


def state_dir() -> Path:
    """Where each running `up` leaves a record (runner pid, compose file, status)."""
    path = Path(os.environ.get(STATE_ENV) or f"/tmp/sagemaker-fakes-{os.getuid()}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def container_tool():
    """tests/container_tool.py's tool, looked up without these stand-ins on PATH."""
    path = [p for p in os.environ.get("PATH", "").split(os.pathsep)
            if p and Path(p).resolve() != HERE]
    os.environ["PATH"] = os.pathsep.join(path)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests import container_tool as ct

    return ct, ct.detect()


def say(text: str) -> None:
    sys.stdout.write(text.rstrip("\n") + "\n")
    sys.stdout.flush()


# -- the compose file ---------------------------------------------------------------------------
class ComposeError(Exception):
    pass


def load_services(path: Path) -> dict[str, dict]:
    import yaml

    try:
        content = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ComposeError(f"cannot read compose file {path}: {exc}") from exc
    services = (content or {}).get("services") or {}
    if not services:
        raise ComposeError(f"{path} defines no services")
    return services


def words(value) -> list[str] | None:
    if value is None:
        return None
    return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]


def service_plan(name: str, spec: dict, ct) -> dict:
    """What to run for one service: image, command/entrypoint, mounts, environment."""
    if spec.get("deploy") or spec.get("runtime"):
        raise ComposeError(f"service {name}: GPUs (instance_type='local_gpu') are not "
                           "available to the stand-in")
    image = spec.get("image")
    if not image:
        raise ComposeError(f"service {name} names no image")
    try:
        mounts = bind_mounts(spec.get("volumes") or [], ct)
    except ValueError as exc:
        raise ComposeError(f"service {name}: {exc}") from exc
    command, entrypoint = words(spec.get("command")), words(spec.get("entrypoint"))
    ports = [str(p) for p in spec.get("ports") or []]
    if ports:
        if len(ports) != 1:
            raise ComposeError(f"service {name}: the stand-in publishes one port, got {ports}")
        host_port, _, container_port = ports[0].rpartition(":")
        try:
            command = publish(command, container_port, host_port)
        except ValueError as exc:
            raise ComposeError(f"service {name}: {exc}") from exc
    return {"name": name, "image": image, "command": command, "entrypoint": entrypoint,
            "mounts": mounts, "env": env_dict(spec.get("environment"))}


def env_dict(env) -> dict[str, str]:
    """An environment given as a mapping or as ``KEY=VALUE`` items, as a dict."""
    if isinstance(env, list):
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): str(v) for k, v in (env or {}).items()}


def bind_mounts(volumes: list[str], ct) -> list:
    """``host:container[:options]`` binds as mounts, parents first; ValueError if malformed."""
    mounts = []
    for volume in volumes:
        parts = volume.split(":")
        if len(parts) < 2:
            raise ValueError(f"volume {volume!r} is not host:container")
        options = set(parts[2].split(",")) if len(parts) > 2 else set()
        source = Path(parts[0])
        # docker creates a missing bind-mount source as an empty folder; the
        # SDK relies on it (it never creates <host>/output/data itself).
        source.mkdir(parents=True, exist_ok=True)
        mounts.append(ct.Mount(source, parts[1].rstrip("/") or "/", read_only="ro" in options))
    # docker mounts parents before children (/opt/ml/output, then
    # /opt/ml/output/data), whatever order they are listed in.
    return sorted(mounts, key=lambda m: len(Path(m.target).parts))


def publish(command: list[str] | None, container_port: str, host_port: str) -> list[str]:
    """``command`` with container port ``container_port`` published on ``host_port``.

    The containers share the host's network (chroot isolation has no network
    namespace), so `serve` itself listens where the port would be published:
    ``serve --host 127.0.0.1 --port H``, loopback only.  ValueError for
    anything else (another command, another container port)."""
    if command is None or command[:1] != ["serve"]:
        raise ValueError(f"the stand-in publishes a port only for 'serve', not {command}")
    if container_port.split("/")[0] != "8080" or container_port.endswith("/udp"):
        raise ValueError(f"serve listens on 8080/tcp, not {container_port}")
    return command + ["--host", "127.0.0.1", "--port", host_port or "8080"]


def hosts_file(services: dict[str, dict], record: Path) -> Path | None:
    """With several training services: a hosts file giving each service (and its aliases)
    a loopback address of its own; None otherwise."""
    training = [name for name, spec in services.items()
                if (words(spec.get("command")) or [None])[0] == "train"]
    if len(training) < 2:
        return None
    lines = ["127.0.0.1 localhost"]
    for index, name in enumerate(training):
        aliases = set()
        networks = services[name].get("networks") or {}
        for network in networks.values() if isinstance(networks, dict) else ():
            aliases.update((network or {}).get("aliases") or [])
        lines.append(f"127.0.0.{index + 2} {' '.join([name, *sorted(aliases - {name})])}")
    path = record / "hosts"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the runner: starts, watches and stops the containers ---------------------------------------
class Runner:
    def __init__(self, services: dict[str, dict], abort_on_exit: bool,
                 stopping: threading.Event):
        self.services = services
        self.abort_on_exit = abort_on_exit
        self.containers: dict[str, object] = {}
        self.stopping = stopping
        self.first_exit: int | None = None
        self.relays: list[threading.Thread] = []

    def relay(self, name: str, stream) -> None:
        for raw in iter(stream.readline, b""):
            say(f"{name}  | {raw.decode('utf-8', 'replace').rstrip()}")
        stream.close()

    def start(self, tool, ct, record: Path) -> None:
        plans = [service_plan(name, spec, ct) for name, spec in self.services.items()]
        hosts = hosts_file(self.services, record)
        if hosts is not None:
            for plan in plans:
                plan["mounts"].append(ct.Mount(hosts, "/etc/hosts", read_only=True))
        for plan in plans:
            if not tool.exists(plan["image"]):
                raise ComposeError(f"image {plan['image']} is not on this machine (the "
                                   "stand-in pulls nothing); build it first")
        say("Attaching to " + ", ".join(self.services))
        for plan in plans:
            if self.stopping.is_set():
                break
            container = tool.start(plan["image"], plan["command"], entrypoint=plan["entrypoint"],
                                   mounts=plan["mounts"], env=plan["env"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            self.containers[plan["name"]] = container
            thread = threading.Thread(target=self.relay,
                                      args=(plan["name"], container.process.stdout), daemon=True)
            thread.start()
            self.relays.append(thread)

    def wait(self) -> int:
        """Until a container exits (or all, without --abort-on-container-exit) or a stop."""
        while not self.stopping.is_set():
            codes = {name: c.returncode for name, c in self.containers.items()}
            for name, code in codes.items():
                if code is not None and self.first_exit is None:
                    self.first_exit = code
                    say(f"{name} exited with code {code}")
            done = [c for c in codes.values() if c is not None]
            if (self.abort_on_exit and done) or len(done) == len(codes):
                break
            time.sleep(0.1)
        self.stop_all()
        if self.first_exit is not None:
            return self.first_exit
        codes = [c.returncode for c in self.containers.values()]
        return next((code for code in codes if code), 0)

    def stop_all(self) -> None:
        running = [(name, c) for name, c in self.containers.items() if c.returncode is None]
        if running:
            say("Stopping " + ", ".join(name for name, _ in running))
        threads = [threading.Thread(target=c.stop, kwargs={"timeout": STOP_TIMEOUT})
                   for _, c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for container in self.containers.values():
            container.remove()
        for thread in self.relays:
            thread.join(timeout=5)


def run_runner(record: Path, compose_file: Path, abort_on_exit: bool) -> int:
    """The detached process: writes its pid, runs the services, writes the exit code."""
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    (record / "compose_file").write_text(str(compose_file))
    (record / "pid").write_text(str(os.getpid()))
    code = 1
    runner = None
    try:
        services = load_services(compose_file)
        ct, tool = container_tool()
        if tool is None:
            raise ComposeError("no container tool: " + ct.INSTALL_HINT)
        runner = Runner(services, abort_on_exit, stopping)
        runner.start(tool, ct, record)
        code = runner.wait()
    except ComposeError as exc:
        say(f"compose stand-in: {exc}")
        code = 1
    except BaseException as exc:  # noqa: BLE001 - reported, containers stopped
        say(f"compose stand-in: {type(exc).__name__}: {exc}")
        code = 1
    finally:
        if runner is not None and runner.containers:
            runner.stop_all()
        (record / "status").write_text(str(code))
    return code


def detach_and_run(record: Path, compose_file: Path, abort_on_exit: bool) -> None:
    """Double fork: the runner ends up a child of init, not of the SDK's process."""
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    os._exit(run_runner(record, compose_file, abort_on_exit))


# -- the process the SDK starts -------------------------------------------------------------------
def up(compose_file: Path, abort_on_exit: bool, detach: bool) -> int:
    record = state_dir() / f"up-{os.getpid()}-{time.monotonic_ns()}"
    record.mkdir()
    read_end, write_end = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    # The first child lives only for one more fork. Started as a new interpreter it lived
    # for its start-up, and an endpoint deleted then made SDK v3's kill_child_processes
    # (sagemaker/core/local/utils.py) list it, then fail on os.kill once it had gone.
    child = os.fork()
    if child == 0:
        devnull = os.open(os.devnull, os.O_RDONLY)
        for source, target in ((devnull, 0), (write_end, 1), (write_end, 2)):
            os.dup2(source, target)
        os.close(devnull)
        os.close(write_end)
        os.close(read_end)
        detach_and_run(record, compose_file, abort_on_exit)
        os._exit(1)  # not reached: detach_and_run ends the process
    os.close(write_end)
    os.waitpid(child, 0)  # returns at once: the runner has detached
    if detach:
        os.close(read_end)
        return 0

    def runner_pid() -> int | None:
        try:
            return int((record / "pid").read_text())
        except (OSError, ValueError):
            return None

    def forward(signum, _frame):
        deadline = time.monotonic() + 5
        while (pid := runner_pid()) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid is not None:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    with os.fdopen(read_end, "rb") as stream:
        for line in iter(stream.readline, b""):
            sys.stdout.buffer.write(line)
            sys.stdout.flush()
    try:
        return int((record / "status").read_text())
    except (OSError, ValueError):
        say("compose stand-in: the runner ended without an exit status")
        return 1


def down(compose_file: Path, timeout: float = 60) -> int:
    """Stop the `up` of ``compose_file``, if one runs."""
    for record in state_dir().glob("up-*"):
        try:
            if Path((record / "compose_file").read_text()) != compose_file:
                continue
            pid = int((record / "pid").read_text())
        except (OSError, ValueError):
            continue
        if (record / "status").exists():
            continue
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while not (record / "status").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    return 0


def running_records() -> list[tuple[Path, int]]:
    """(record, runner pid) of every `up` whose runner has not finished."""
    found = []
    for record in state_dir().glob("up-*"):
        try:
            pid = int((record / "pid").read_text())
        except (OSError, ValueError):
            continue
        if not (record / "status").exists():
            found.append((record, pid))
    return found


def run_once(argv: list[str]) -> int:
    """``docker run --rm [--network N] -v HOST:CONTAINER ... IMAGE COMMAND...``: what SDK v3's
    local training runs to chmod root-owned outputs before removing them."""
    mounts, rest = [], list(argv)
    ct, tool = container_tool()
    while rest and rest[0].startswith("-"):
        flag = rest.pop(0)
        if flag == "--rm":
            continue  # the stand-in's containers are always removed
        if flag == "--network" and rest:
            rest.pop(0)  # host network: chroot isolation has no other
        elif flag == "-v" and rest:
            host, _, target = rest.pop(0).partition(":")
            mounts.append(ct.Mount(Path(host), target.split(":")[0]))
        else:
            print(f"stand-in docker: 'docker run {flag}' is not supported", file=sys.stderr)
            return 1
    if not rest:
        print("stand-in docker: 'docker run' names no image", file=sys.stderr)
        return 1
    if tool is None:
        print("stand-in docker: no container tool: " + ct.INSTALL_HINT, file=sys.stderr)
        return 1
    result = tool.run(rest[0], rest[1:] or None, mounts=mounts)
    sys.stdout.write(result.stdout)
    sys.stderr.write(result.stderr)
    return result.returncode


def context(argv: list[str]) -> int:
    """``docker context inspect``: the default context, whose endpoint is $DOCKER_HOST
    when set (as docker reports it), else the default socket."""
    if argv != ["inspect"]:
        print(f"stand-in docker: 'docker context {' '.join(argv)}' is not supported; only "
              "'docker context inspect' is", file=sys.stderr)
        return 1
    host = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    print(json.dumps([{"Name": "default", "Metadata": {},
                       "Endpoints": {"docker": {"Host": host, "SkipTLSVerify": False}}}],
                     indent=4))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] in (["version"], ["--version"]):
        print(VERSION)
        return 0
    if argv[:1] == ["images"]:  # docker images -q IMAGE
        image = [a for a in argv[1:] if not a.startswith("-")]
        ct, tool = container_tool()
        if tool and image and tool.exists(image[0]):
            print(image[0])  # docker prints the image id; the SDK only asks "any?"
        return 0
    if argv[:1] == ["pull"]:  # present locally is as good as pulled; nothing else is
        ct, tool = container_tool()
        image = argv[-1]
        if tool and tool.exists(image):
            return 0
        print(f"stand-in docker: cannot pull {image}: no registry is reachable",
              file=sys.stderr)
        return 1

    if argv[:1] == ["run"]:
        return run_once(argv[1:])
    if argv[:1] == ["context"]:
        return context(argv[1:])

    parser = argparse.ArgumentParser(prog="docker compose")
    parser.add_argument("-f", "--file", type=Path, action="append", required=True)
    parser.add_argument("-p", "--project-name")
    sub = parser.add_subparsers(dest="command", required=True)
    up_parser = sub.add_parser("up")
    up_parser.add_argument("--build", action="store_true")
    up_parser.add_argument("--abort-on-container-exit", action="store_true")
    up_parser.add_argument("-d", "--detach", action="store_true")
    sub.add_parser("down")
    args = parser.parse_args(argv)
    if len(args.file) != 1:
        parser.error("the stand-in reads exactly one compose file")
    compose_file = args.file[0].resolve()
    if args.command == "down":
        return down(compose_file)
    return up(compose_file, args.abort_on_container_exit, args.detach)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
