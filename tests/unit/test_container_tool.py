"""The test helper's container runs: which failures are the tool's own, before the
container's command ran (restarted once), and which are the container's (kept)."""
from __future__ import annotations

import subprocess

from tests.container_tool import tool_failed_before_start


def result(code: int, stdout: str = "", stderr: str = "") -> subprocess.CompletedProcess:
    return subprocess.CompletedProcess(["buildah", "run"], code, stdout, stderr)


def test_buildahs_failed_self_copy_is_a_failure_before_start():
    seen = "Close_Fd sealing memfd copy: Device or resource busy\nError: exit status 1\n"
    assert tool_failed_before_start(result(1, stderr=seen))


def test_a_container_that_ran_and_failed_is_not_restarted():
    assert not tool_failed_before_start(result(0))
    # the stage ran: its own reason on stderr
    assert not tool_failed_before_start(result(1, stderr="processing prepare failed: no CSV\n"))
    # the stage printed something before the same words appeared
    assert not tool_failed_before_start(result(
        1, stdout="prepared 10 rows\n",
        stderr="Close_Fd sealing memfd copy: Device or resource busy\n"))
    # the tool's words followed by output of the stage
    assert not tool_failed_before_start(result(
        1, stderr="Close_Fd sealing memfd copy: Device or resource busy\nTraceback ...\n"))
