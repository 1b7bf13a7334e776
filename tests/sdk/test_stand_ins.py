"""The docker and docker compose stand-ins behave as the SDK expects of the real ones."""
from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

# sh keeps running until SIGTERM, then exits 0: a stand-in for a well-behaved stage.
WAIT_FOR_TERM = ["sh", "-c", "trap 'echo got TERM; exit 0' TERM; echo ready; "
                 "while true; do sleep 0.2; done"]


def compose_file(folder: Path, services: dict) -> Path:
    path = folder / "docker-compose.yaml"
    path.write_text(yaml.safe_dump({"version": "2.3", "services": services}))
    return path


def up(path: Path, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(["docker", "compose", "-f", str(path), "up", "--build",
                             "--abort-on-container-exit"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def wait_for_line(process: subprocess.Popen, text: str, timeout: float = 120) -> list[str]:
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        seen.append(line)
        if text in line:
            return seen
    raise AssertionError(f"{text!r} not seen in:\n{''.join(seen)}")


def test_the_sdk_finds_compose_and_localhost(local_mode):
    from sagemaker.local.image import _SageMakerContainer
    from sagemaker.local.utils import get_docker_host

    assert _SageMakerContainer._get_compose_cmd_prefix() == ["docker", "compose"]
    assert get_docker_host() == "localhost"


def test_docker_images_and_pull_use_the_local_store(sdk_image, local_mode):
    present = subprocess.run(["docker", "images", "-q", sdk_image], capture_output=True,
                             text=True, timeout=120)
    assert present.returncode == 0 and present.stdout.strip()
    absent = subprocess.run(["docker", "images", "-q", "localhost/no-such-image:1"],
                            capture_output=True, text=True, timeout=120)
    assert absent.returncode == 0 and absent.stdout.strip() == ""
    pulled = subprocess.run(["docker", "pull", "localhost/no-such-image:1"],
                            capture_output=True, text=True, timeout=120)
    assert pulled.returncode == 1 and "no registry" in pulled.stderr


def test_volumes_environment_and_exit_code(sdk_image, local_mode, tmp_path):
    data = tmp_path / "not-yet"  # docker creates a missing bind-mount source
    path = compose_file(tmp_path, {"algo-1-abcde": {
        "image": sdk_image, "entrypoint": ["sh", "-c", 'echo "$GREETING" > /data/out.txt; exit 7'],
        "environment": ["GREETING=hello=world"], "volumes": [f"{data}:/data"],
        "tty": True, "stdin_open": True,
        "networks": {"sagemaker-local": {"aliases": ["algo-1-abcde"]}}}})
    process = up(path)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 7, output
    assert (data / "out.txt").read_text() == "hello=world\n"
    assert "algo-1-abcde exited with code 7" in output


def test_first_exit_stops_the_others(sdk_image, local_mode, tmp_path):
    path = compose_file(tmp_path, {
        "algo-1-aaaaa": {"image": sdk_image, "entrypoint": WAIT_FOR_TERM},
        "algo-2-bbbbb": {"image": sdk_image, "entrypoint": ["sh", "-c", "sleep 3; exit 3"]},
    })
    process = up(path)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 3, output
    assert "algo-1-aaaaa  | got TERM" in output


@pytest.mark.parametrize("how", ["sigterm", "down"])
def test_stop_is_graceful(sdk_image, local_mode, tmp_path, how):
    """What delete_endpoint does (SIGTERM to compose's children, then to compose), or down."""
    path = compose_file(tmp_path, {"algo-1-ccccc": {"image": sdk_image,
                                                    "entrypoint": WAIT_FOR_TERM}})
    process = up(path)
    try:
        wait_for_line(process, "ready")
        # The SDK signals every child of the compose process first: there must be
        # none that would take the container down with it.
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                  text=True).stdout.split()
        assert children == []
        if how == "sigterm":
            process.send_signal(signal.SIGTERM)
        else:
            down = subprocess.run(["docker", "compose", "-f", str(path), "down"],
                                  capture_output=True, text=True, timeout=120)
            assert down.returncode == 0, down.stderr
        output, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
    assert "got TERM" in output
    assert process.returncode == 0, output


def test_no_child_of_compose_lingers_while_it_starts(sdk_image, local_mode, tmp_path):
    """SDK v3 may delete an endpoint while compose starts (its health check can pass on
    another container): it lists compose's children, then signals each, so a child that
    lives a while and then ends makes that os.kill fail (ProcessLookupError)."""
    path = compose_file(tmp_path, {"algo-1-ddddd": {"image": sdk_image,
                                                    "entrypoint": WAIT_FOR_TERM}})
    process = up(path)
    seen: dict[str, int] = {}
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and process.poll() is None:
            for pid in subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True,
                                      text=True).stdout.split():
                seen[pid] = seen.get(pid, 0) + 1
            time.sleep(0.01)
        wait_for_line(process, "ready")
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                process.kill()
    # A fork that ends at once may be caught by one listing, never by two.
    assert [pid for pid, times in seen.items() if times > 1] == []


def test_a_gpu_request_is_refused(local_mode, tmp_path):
    path = compose_file(tmp_path, {"algo-1-abcde": {
        "image": "any", "command": "train",
        "deploy": {"resources": {"reservations": {"devices": [{"count": "all"}]}}}}})
    process = up(path)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 1
    assert "GPUs" in output
