"""The environment both SDK suites (tests/sdk: v2, tests/sdk3: v3) drive local mode in.

The ``docker`` / ``docker compose`` stand-ins of ``tests/fakes`` come first on PATH,
credentials are fake, the SDK's usage reporting is off (it would call STS and S3 for
every job), and every AWS endpoint points at ``endpoint_url`` on loopback, so a stray
call lands there and never on the internet.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from scripts.harness import ROOT

FAKES = ROOT / "tests" / "fakes"
# SDK defaults config (SAGEMAKER_USER_CONFIG_OVERRIDE).
NO_TELEMETRY = """\
SchemaVersion: '1.0'
SageMaker:
  PythonSDK:
    Modules:
      TelemetryOptOut: true
"""


def use_stand_ins(patch: pytest.MonkeyPatch, state: Path, endpoint_url: str,
                  region: str) -> None:
    """Sets the environment with ``patch``; ``state`` is the stand-ins' own folder."""
    config = state / "sdk-config.yaml"
    config.write_text(NO_TELEMETRY)
    patch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    patch.setenv("SAGEMAKER_FAKES_PYTHON", sys.executable)
    patch.setenv("SAGEMAKER_FAKES_STATE", str(state))
    patch.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", region)
    patch.setenv("AWS_REGION", region)
    patch.setenv("AWS_ENDPOINT_URL", endpoint_url)
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE"):
        patch.delenv(name, raising=False)
    patch.setenv("AWS_CONFIG_FILE", str(state / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(state / "no-aws-credentials"))
