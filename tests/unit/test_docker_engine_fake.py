"""tests/fakes/docker_engine.py in-process, with no container run: what it answers,
what it refuses (each refusal naming the call or option), and the docker CLI
stand-in's ``docker context inspect``."""
from __future__ import annotations

import http.client
import importlib.util
import io
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from tests import container_tool as ct

FAKES = Path(__file__).resolve().parent.parent / "fakes"
_spec = importlib.util.spec_from_file_location("docker_engine", FAKES / "docker_engine.py")
engine_module = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(engine_module)

IMAGE = "localhost/byoc:test"


class StoreOnly:
    """A container tool whose store holds IMAGE; starting a container is not expected."""

    def exists(self, image):
        return image == IMAGE

    def image_inspect(self, image):
        return {"Id": "sha256:" + "0" * 64, "RepoTags": [image], "Size": 1,
                "Config": {"Cmd": ["python", "-m", "default"]}}


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path):
        super().__init__("localhost")
        self.path = path

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)


@pytest.fixture
def call():
    folder = tempfile.mkdtemp(prefix="engine-")
    server = engine_module.Server(Path(folder) / "docker.sock",
                                  engine_module.Engine(StoreOnly(), ct))
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def request(method, path, body=None):
        conn = UnixConnection(str(server.socket_path))
        data = json.dumps(body).encode() if body is not None else None
        conn.request(method, path, body=data,
                     headers={"Content-Type": "application/json"} if data else {})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        kind = response.getheader("Content-Type", "")
        return response.status, json.loads(raw) if kind == "application/json" and raw else raw

    request.engine = server.engine
    yield request
    server.close()
    os.rmdir(folder)


def serve_body(**host):
    return {"Image": IMAGE, "Cmd": ["serve"], "Env": ["SAGEMAKER_PROGRAM=inference.py"],
            "Tty": False, "HostConfig": {"AutoRemove": True, **host}}


def test_ping_and_version_under_any_api_prefix(call):
    assert call("GET", "/_ping") == (200, b"OK")
    assert call("GET", "/v1.41/_ping") == (200, b"OK")
    status, version = call("GET", "/version")
    assert status == 200 and version["ApiVersion"] == engine_module.API_VERSION


@pytest.mark.parametrize("method, path", [("GET", "/v1.45/containers/json"),
                                          ("POST", "/v1.45/containers/abc/exec"),
                                          ("POST", "/v1.45/build")])
def test_a_call_it_does_not_support_fails_naming_itself(call, method, path):
    status, answer = call(method, path)
    assert status == 501
    assert f"{method} {path.removeprefix('/v1.45')} is not a call" in answer["message"]


def test_a_pull_is_answered_from_the_local_store_or_refused_saying_so(call):
    status, answer = call("POST", f"/v1.45/images/create?fromImage={IMAGE}")
    assert status == 200 and "local image store" in answer[0]["status"]
    status, answer = call("POST", "/v1.45/images/create?fromImage=elsewhere/img&tag=1")
    assert status == 404 and "elsewhere/img:1" in answer["message"]
    assert "build it first" in answer["message"]
    status, answer = call("GET", f"/v1.45/images/{IMAGE}/json")
    assert status == 200 and answer["RepoTags"] == [IMAGE]


def test_create_publishes_8080_by_serves_own_address_and_keeps_env_and_binds(call, tmp_path):
    model = tmp_path / "model" / "code"
    body = serve_body(Binds=[f"{model}:/opt/ml/model/:rw"],
                      PortBindings={"8080/tcp": [{"HostIp": "", "HostPort": "8081"}]})
    status, created = call("POST", "/v1.45/containers/create", body)
    assert status == 201
    status, info = call("GET", f"/v1.45/containers/{created['Id']}/json")
    assert status == 200 and info["State"]["Status"] == "created"
    assert info["Config"]["Cmd"] == ["serve", "--host", "127.0.0.1", "--port", "8081"]
    assert info["Config"]["Env"] == ["SAGEMAKER_PROGRAM=inference.py"]
    assert info["Mounts"] == [{"Source": str(model), "Destination": "/opt/ml/model", "RW": True}]
    assert model.is_dir()  # docker makes a missing bind source
    assert call("DELETE", f"/v1.45/containers/{created['Id']}")[0] == 204
    status, answer = call("GET", f"/v1.45/containers/{created['Id']}/json")
    assert status == 404 and "No such container" in answer["message"]


@pytest.mark.parametrize("body, message", [
    (serve_body(Privileged=True), "HostConfig.Privileged"),
    ({**serve_body(), "User": "root"}, "'User'"),
    (serve_body(PortBindings={"9000/tcp": [{"HostPort": "9000"}]}), "8080/tcp, not 9000/tcp"),
    ({**serve_body(), "Cmd": ["train"],
      "HostConfig": {"PortBindings": {"8080/tcp": [{"HostPort": "8080"}]}}}, "only for 'serve'"),
    ({**serve_body(), "Image": "missing:1"}, "No such image: missing:1"),
])
def test_create_refuses_what_it_cannot_honour_naming_it(call, body, message):
    status, answer = call("POST", "/v1.45/containers/create", body)
    assert status in (400, 404) and message in answer["message"], answer


def test_logs_are_docker_frames_of_the_streams_asked_for(call):
    status, created = call("POST", "/v1.45/containers/create", serve_body())
    record = call.engine.record(created["Id"])
    record.relay(1, io.BytesIO(b"out 1\nout 2\n"))
    record.relay(2, io.BytesIO(b"err 1\n"))
    path = f"/v1.45/containers/{created['Id']}/logs?stdout=1&stderr=%s&tail=all&follow=0"
    frame = lambda kind, text: struct.pack(">BxxxL", kind, len(text)) + text  # noqa: E731
    assert call("GET", path % 1) == (200, frame(1, b"out 1\n") + frame(1, b"out 2\n")
                                     + frame(2, b"err 1\n"))
    assert call("GET", path % 0) == (200, frame(1, b"out 1\n") + frame(1, b"out 2\n"))
    status, answer = call("GET", f"/v1.45/containers/{created['Id']}/logs?stdout=1&tail=5"
                                 "&timestamps=1")
    assert status == 400 and "['timestamps', 'tail']" in answer["message"]


def test_calls_on_an_unknown_container_are_404(call):
    for method, path in [("POST", "/v1.45/containers/nope/start"),
                         ("POST", "/v1.45/containers/nope/kill"),
                         ("GET", "/v1.45/containers/nope/logs?follow=1")]:
        status, answer = call(method, path)
        assert status == 404 and "No such container: nope" in answer["message"]


def context_host(env):
    """What SageMaker local mode (v2 and v3 alike) reads of `docker context inspect`."""
    out = subprocess.run([str(FAKES / "docker"), "context", "inspect"], capture_output=True,
                         text=True, env={**os.environ, "SAGEMAKER_FAKES_PYTHON": sys.executable,
                                         **env})
    assert out.returncode == 0 and not out.stderr, out.stderr
    return json.loads(out.stdout)[0]["Endpoints"]["docker"]["Host"]


def test_docker_context_inspect_reports_docker_host_or_the_default_socket(monkeypatch):
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    assert context_host({}) == "unix:///var/run/docker.sock"
    socket_host = "unix:///tmp/x/docker.sock"
    assert context_host({"DOCKER_HOST": socket_host}) == socket_host
    assert context_host({"DOCKER_HOST": "tcp://10.0.0.5:2375"}) == "tcp://10.0.0.5:2375"
