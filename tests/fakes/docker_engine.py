"""A Docker Engine API stand-in for SageMaker Python SDK v3's local serving.

v3's ``ModelBuilder`` in ``Mode.LOCAL_CONTAINER`` talks to the Docker Engine
through the ``docker`` Python package (``docker.from_env()``, which reads
``DOCKER_HOST``).  This program serves that API on a unix socket:

    python tests/fakes/docker_engine.py /tmp/x/docker.sock
    DOCKER_HOST=unix:///tmp/x/docker.sock python my_model_builder_script.py

and answers only the calls v3's local serving makes (sagemaker/serve/mode/
local_container_mode.py and model_server/*/server.py): ping and version, a pull
answered from the local image store, image inspect, container create / start /
inspect / logs / kill / stop / wait / delete.  Any other call is answered 501
with its method and path, never with a silent success.

Containers run like compose.py's services, with the container tool of
tests/container_tool.py: the image's Entrypoint/Cmd under ``docker run`` rules,
the create body's Env and Binds, and a published port by ``compose.publish``
(host network: ``serve`` itself listens on 127.0.0.1:<host port>).  Output is
kept per stream and served as Docker's multiplexed log frames.
"""
from __future__ import annotations

import json
import re
import signal
import socketserver
import struct
import subprocess
import sys
import threading
import uuid
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import compose  # noqa: E402  (the sibling stand-in: container tool and port publishing)

API_VERSION = "1.45"  # what docker 7.x asks for; it reads the answer of GET /version
STOP_TIMEOUT = 10  # docker's default grace period for `stop`
TRUE = ("1", "true", "True")  # a query flag as docker-py (1/0) or requests (True) sends it
# Create options the stand-in honours; any other one given a value is refused.
# ExposedPorts and Volumes only mirror PortBindings and Binds; Attach*/Tty false
# change nothing for a detached container.
HONOURED = {"Image", "Cmd", "Entrypoint", "Env", "HostConfig", "ExposedPorts", "Volumes",
            "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce"}
HOST_HONOURED = {"Binds", "PortBindings", "AutoRemove", "NetworkMode"}


class EngineError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Record:
    """One container: what to run, then the running container and its output."""

    def __init__(self, cid: str, name: str, plan: dict, auto_remove: bool):
        self.id, self.name, self.plan, self.auto_remove = cid, name, plan, auto_remove
        self.container = None  # container_tool.Container once started
        self.frames: list[bytes] = []  # multiplexed log frames, in order of arrival
        self.changed = threading.Condition()
        self.exit_code: int | None = None

    @property
    def status(self) -> str:
        if self.container is None:
            return "created"
        return "running" if self.exit_code is None else "exited"

    def relay(self, stream_type: int, pipe) -> None:
        for line in iter(pipe.readline, b""):
            with self.changed:
                self.frames.append(struct.pack(">BxxxL", stream_type, len(line)) + line)
                self.changed.notify_all()
        pipe.close()


class Engine:
    """The API's state: containers by id; images through the container tool."""

    def __init__(self, tool, ct):
        self.tool, self.ct = tool, ct
        self.records: dict[str, Record] = {}
        self.lock = threading.Lock()

    def record(self, ref: str) -> Record:
        with self.lock:
            for record in self.records.values():
                if ref in (record.id, record.name) or (len(ref) >= 12
                                                       and record.id.startswith(ref)):
                    return record
        raise EngineError(404, f"No such container: {ref}")

    # -- images ---------------------------------------------------------------------------------
    def pull(self, query: dict) -> list[dict]:
        image = query.get("fromImage", "")
        tag = query.get("tag") or "latest"
        name = image if "@" in image or re.search(r":[^/]+$", image) else f"{image}:{tag}"
        if not self.tool.exists(name):
            raise EngineError(404, f"pull access denied for {name}: the stand-in pulls only "
                                   "from the local image store, where it is not; build it first")
        return [{"status": f"Status: Image is up to date for {name} (local image store)"}]

    def image(self, name: str) -> dict:
        if not self.tool.exists(name):
            raise EngineError(404, f"No such image: {name}")
        info = self.tool.image_inspect(name)
        return {key: info.get(key) for key in ("Id", "RepoTags", "Created", "Size", "Config")}

    # -- containers -----------------------------------------------------------------------------
    def create(self, query: dict, body: dict) -> dict:
        host = body.get("HostConfig") or {}
        refused = sorted([k for k, v in body.items() if v and k not in HONOURED]
                         + [f"HostConfig.{k}" for k, v in host.items()
                            if v and k not in HOST_HONOURED])
        if refused:
            raise EngineError(400, f"the stand-in does not support the create options {refused}")
        if host.get("NetworkMode") not in (None, "", "default", "host", "bridge"):
            raise EngineError(400, f"network mode {host['NetworkMode']!r}: containers share "
                                   "the host's network here")
        image = body.get("Image") or ""
        if not self.tool.exists(image):
            raise EngineError(404, f"No such image: {image}")
        command = body.get("Cmd")
        for container_port, bindings in (host.get("PortBindings") or {}).items():
            if len(bindings or []) != 1:
                raise EngineError(400, f"port {container_port}: one host binding, got {bindings}")
            try:
                command = compose.publish(command, container_port, bindings[0].get("HostPort"))
            except ValueError as exc:
                raise EngineError(400, str(exc)) from exc
        try:
            mounts = compose.bind_mounts(host.get("Binds") or [], self.ct)
        except ValueError as exc:
            raise EngineError(400, str(exc)) from exc
        env = compose.env_dict(body.get("Env"))
        plan = {"image": image, "command": command, "entrypoint": body.get("Entrypoint"),
                "mounts": mounts, "env": env}
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        name = query.get("name") or f"standin_{cid[:12]}"
        with self.lock:
            self.records[cid] = Record(cid, name, plan, bool(host.get("AutoRemove")))
        return {"Id": cid, "Warnings": []}

    def start(self, record: Record) -> None:
        if record.container is not None:
            return  # docker answers 304 for a started container; nothing to do either way
        plan = record.plan
        record.container = self.tool.start(
            plan["image"], plan["command"], entrypoint=plan["entrypoint"], mounts=plan["mounts"],
            env=plan["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        relays = [threading.Thread(target=record.relay, args=(kind, pipe), daemon=True)
                  for kind, pipe in ((1, record.container.process.stdout),
                                     (2, record.container.process.stderr))]
        for thread in relays:
            thread.start()
        threading.Thread(target=self.watch, args=(record, relays), daemon=True).start()

    def watch(self, record: Record, relays: list[threading.Thread]) -> None:
        code = record.container.wait()
        for thread in relays:
            thread.join(timeout=5)
        with record.changed:
            record.exit_code = code
            record.changed.notify_all()
        if record.auto_remove:
            self.remove(record)

    def inspect(self, record: Record) -> dict:
        plan = record.plan
        return {"Id": record.id, "Name": "/" + record.name, "Image": plan["image"],
                "State": {"Status": record.status, "Running": record.status == "running",
                          "ExitCode": record.exit_code or 0},
                "Config": {"Image": plan["image"], "Cmd": plan["command"], "Tty": False,
                           "Entrypoint": plan["entrypoint"],
                           "Env": [f"{k}={v}" for k, v in plan["env"].items()]},
                "Mounts": [{"Source": str(m.source), "Destination": m.target,
                            "RW": not m.read_only} for m in plan["mounts"]]}

    def logs(self, record: Record, query: dict):
        """The frames so far of the streams asked for; with ``follow``, then each new one
        until the container exits."""
        unsupported = sorted(k for k in ("timestamps", "since", "until")
                             if query.get(k, "0") not in ("0", "false", "False"))
        if query.get("tail", "all") != "all":
            unsupported.append("tail")
        if unsupported:
            raise EngineError(400, f"the stand-in's logs do not support {unsupported}")
        follow = query.get("follow") in TRUE
        wanted = {kind for kind, name in ((1, "stdout"), (2, "stderr")) if query.get(name) in TRUE}
        return self._frames(record, follow, wanted)

    @staticmethod
    def _frames(record: Record, follow: bool, wanted: set[int]):
        sent = 0
        while True:
            with record.changed:
                while follow and sent == len(record.frames) and record.exit_code is None:
                    record.changed.wait(timeout=1)
                frames, sent = record.frames[sent:], len(record.frames)
                done = not follow or (record.exit_code is not None and sent == len(record.frames))
            yield from (frame for frame in frames if frame[0] in wanted)
            if done:
                return

    def kill(self, record: Record, sig: str | None) -> None:
        if record.status != "running":
            raise EngineError(409, f"Container {record.id} is not running")
        # SIGKILL is docker kill's default; a signal comes as a number or a name.
        number = (int(sig or signal.SIGKILL) if not sig or sig.isdigit()
                  else signal.Signals["SIG" + sig.removeprefix("SIG")])
        if number == signal.SIGKILL:
            record.container.kill()
        else:
            record.container.signal(number)

    def stop(self, record: Record, timeout: str | None) -> None:
        if record.status == "running":
            record.container.stop(timeout=float(timeout or STOP_TIMEOUT))

    def wait(self, record: Record) -> dict:
        with record.changed:
            while record.status != "exited" and record.container is not None:
                record.changed.wait(timeout=1)
        return {"StatusCode": record.exit_code or 0, "Error": None}

    def remove(self, record: Record, force: bool = True) -> None:
        if record.status == "running" and not force:
            raise EngineError(409, f"You cannot remove a running container {record.id}")
        if record.container is not None:
            record.container.remove()
        with self.lock:
            self.records.pop(record.id, None)

    def shutdown(self) -> None:
        """Stop every container still running, as a stopping daemon would."""
        for record in list(self.records.values()):
            if record.status == "running":
                record.container.stop(timeout=STOP_TIMEOUT)
            self.remove(record)


def container_routes(engine: Engine):
    """(method, path pattern, handler(match, query, body) -> (status, answer)) rows."""
    c, rec, flag = r"/containers/([^/]+)", engine.record, TRUE.__contains__
    return [
        ("GET", r"/_ping", lambda m, q, b: (200, "OK")),
        ("GET", r"/version", lambda m, q, b: (200, {
            "Version": "27.0.0-standin", "ApiVersion": API_VERSION, "MinAPIVersion": "1.24",
            "Os": "linux", "Arch": "amd64"})),
        ("POST", r"/images/create", lambda m, q, b: (200, engine.pull(q))),
        ("GET", r"/images/(.+)/json", lambda m, q, b: (200, engine.image(m[1]))),
        ("POST", r"/containers/create", lambda m, q, b: (201, engine.create(q, b))),
        ("POST", c + r"/start", lambda m, q, b: (204, engine.start(rec(m[1])))),
        ("GET", c + r"/json", lambda m, q, b: (200, engine.inspect(rec(m[1])))),
        ("GET", c + r"/logs", lambda m, q, b: (200, engine.logs(rec(m[1]), q))),
        ("POST", c + r"/kill", lambda m, q, b: (204, engine.kill(rec(m[1]), q.get("signal")))),
        ("POST", c + r"/stop", lambda m, q, b: (204, engine.stop(rec(m[1]), q.get("t")))),
        ("POST", c + r"/wait", lambda m, q, b: (200, engine.wait(rec(m[1])))),
        ("DELETE", c, lambda m, q, b: (204, engine.remove(rec(m[1]), flag(q.get("force"))))),
    ]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "docker-engine-standin"

    def log_message(self, *args) -> None:  # quiet: the SDK's own log says what it called
        pass

    def answer(self, status: int, payload) -> None:
        if payload is not None and not isinstance(payload, (str, dict, list)):
            # A log stream: raw frames, the connection closed at its end.
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            try:
                for frame in payload:
                    self.wfile.write(frame)
                    self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client closed the stream
            return
        is_json = isinstance(payload, (dict, list))
        data = b"" if payload is None else (json.dumps(payload) if is_json else payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if is_json else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def dispatch(self) -> None:
        url = urlsplit(self.path)
        path = re.sub(r"^/v1\.\d+(?=/)", "", unquote(url.path))
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        for method, pattern, handler in self.server.routes:
            match = re.fullmatch(pattern, path)
            if method == self.command and match:
                try:
                    body = json.loads(raw) if raw else {}
                    self.answer(*handler(match, query, body))
                except EngineError as exc:
                    self.answer(exc.status, {"message": str(exc)})
                except Exception as exc:  # noqa: BLE001 - reported to the client
                    self.answer(500, {"message": f"stand-in docker engine: "
                                                 f"{type(exc).__name__}: {exc}"})
                return
        self.answer(501, {"message": f"stand-in docker engine: {self.command} {path} is not a "
                                     "call SageMaker's local serving makes; it is not supported"})

    do_GET = do_POST = do_DELETE = do_PUT = dispatch


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, socket_path: Path, engine: Engine):
        socket_path = Path(socket_path)
        socket_path.unlink(missing_ok=True)
        super().__init__(str(socket_path), Handler)
        self.socket_path, self.engine = socket_path, engine
        self.routes = container_routes(engine)

    def get_request(self):
        request, _ = super().get_request()
        return request, ("stand-in", 0)  # BaseHTTPRequestHandler wants a (host, port)

    def close(self) -> None:
        self.shutdown()
        self.server_close()
        self.engine.shutdown()
        self.socket_path.unlink(missing_ok=True)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python tests/fakes/docker_engine.py SOCKET_PATH", file=sys.stderr)
        return 2
    ct, tool = compose.container_tool()
    if tool is None:
        print("stand-in docker engine: no container tool: " + ct.INSTALL_HINT, file=sys.stderr)
        return 1
    server = Server(Path(argv[0]), Engine(tool, ct))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    print(f"stand-in docker engine: DOCKER_HOST=unix://{server.socket_path}", flush=True)
    stopping.wait()
    server.close()  # and every container still running
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
