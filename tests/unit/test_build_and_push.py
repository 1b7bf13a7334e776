"""build_and_push.sh against stand-in ``aws`` and ``docker`` executables.

The stand-ins come first on PATH, record every call (and what ``docker login``
read on stdin) to a file, and answer the way the real tools do, so each test
checks the exact sequence of calls the script makes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
SCRIPT = ROOT / "build_and_push.sh"
ACCOUNT = "111122223333"
PASSWORD = "ecr-password-for-test"

FAKE_AWS = r'''
import json, os, sys
args = sys.argv[1:]
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(["aws", *args]) + "\n")
fail = os.environ.get("FAKE_FAIL", "")
if args[:2] == ["sts", "get-caller-identity"]:
    print(os.environ["FAKE_ACCOUNT"])
elif args[:3] == ["configure", "get", "region"]:
    region = os.environ.get("FAKE_REGION", "")
    if not region:
        sys.exit(1)  # what the CLI does for an unset value
    print(region)
elif args[:2] == ["ecr", "describe-repositories"]:
    if os.environ.get("FAKE_REPO_EXISTS") != "1":
        print("An error occurred (RepositoryNotFoundException) when calling the "
              "DescribeRepositories operation", file=sys.stderr)
        sys.exit(254)
    print(json.dumps({"repositories": [{"repositoryName": args[3]}]}))
elif args[:2] == ["ecr", "create-repository"]:
    print(json.dumps({"repository": {"repositoryName": args[3]}}))
elif args[:2] == ["ecr", "get-login-password"]:
    if fail == "get-login-password":
        print("Unable to locate credentials", file=sys.stderr)
        sys.exit(253)
    print(os.environ["FAKE_PASSWORD"])
else:
    print("fake aws: unexpected call", args, file=sys.stderr)
    sys.exit(99)
'''

FAKE_DOCKER = r'''
import json, os, sys
args = sys.argv[1:]
entry = ["docker", *args]
if args[:1] == ["login"]:
    entry.append({"stdin": sys.stdin.read()})
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\n")
if args[:1] == [os.environ.get("FAKE_FAIL", "")]:
    print(f"fake docker: {args[0]} failed", file=sys.stderr)
    sys.exit(1)
if args[:1] == ["login"]:
    print("Login Succeeded")
elif args[:1] == ["build"]:
    print("Step 1/2 : FROM python\nSuccessfully built 0123456789ab")
elif args[:1] == ["push"]:
    print("latest: digest: sha256:0000 size: 1234")
'''


@pytest.fixture
def fakes(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, body in (("aws", FAKE_AWS), ("docker", FAKE_DOCKER)):
        path = bin_dir / name
        path.write_text(f"#!{sys.executable}\n{body}")
        path.chmod(0o755)
    log = tmp_path / "calls.jsonl"
    env = {k: v for k, v in os.environ.items()
           if k not in ("AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")}
    env.update(PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}", FAKE_LOG=str(log),
               FAKE_ACCOUNT=ACCOUNT, FAKE_PASSWORD=PASSWORD, FAKE_REGION="eu-west-1",
               FAKE_REPO_EXISTS="1")
    return env, log


def run(fakes, *args, **env):
    base_env, log = fakes
    result = subprocess.run(["bash", str(SCRIPT), *args], env={**base_env, **env},
                            capture_output=True, text=True, timeout=60)
    calls = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return result, calls


def registry(region="eu-west-1", account=ACCOUNT):
    return f"{account}.dkr.ecr.{region}.amazonaws.com"


def tail_calls(name, tag, region="eu-west-1", platform="linux/amd64", account=ACCOUNT):
    """The calls after the repository check: login, build, tag, push."""
    uri = f"{registry(region, account)}/{name}:{tag}"
    return [
        ["aws", "ecr", "get-login-password", "--region", region],
        ["docker", "login", "--username", "AWS", "--password-stdin", registry(region, account),
         {"stdin": PASSWORD + "\n"}],
        ["docker", "build", "--platform", platform, "--tag", f"{name}:{tag}",
         "--file", str(ROOT / "Dockerfile"), str(ROOT)],
        ["docker", "tag", f"{name}:{tag}", uri],
        ["docker", "push", uri],
    ]


LOOKUPS = [
    ["aws", "sts", "get-caller-identity", "--query", "Account", "--output", "text"],
    ["aws", "configure", "get", "region"],
]


def test_existing_repository_is_reused(fakes):
    result, calls = run(fakes, "my-model", "v1")
    assert result.returncode == 0, result.stderr
    assert calls == [
        *LOOKUPS,
        ["aws", "ecr", "describe-repositories", "--repository-names", "my-model",
         "--region", "eu-west-1"],
        *tail_calls("my-model", "v1"),
    ]
    # The URI is the only thing on stdout, so `$(./build_and_push.sh ...)` works;
    # the tools' own output went to stderr.
    assert result.stdout.splitlines() == [f"{registry()}/my-model:v1"]
    assert "Successfully built" in result.stderr


def test_missing_repository_is_created(fakes):
    result, calls = run(fakes, "team/my-model", FAKE_REPO_EXISTS="0")
    assert result.returncode == 0, result.stderr
    assert calls == [
        *LOOKUPS,
        ["aws", "ecr", "describe-repositories", "--repository-names", "team/my-model",
         "--region", "eu-west-1"],
        ["aws", "ecr", "create-repository", "--repository-name", "team/my-model",
         "--region", "eu-west-1", "--image-scanning-configuration", "scanOnPush=true"],
        *tail_calls("team/my-model", "latest"),
    ]
    assert result.stdout.splitlines()[-1] == f"{registry()}/team/my-model:latest"


def test_options_replace_the_lookups_and_pick_arm(fakes):
    result, calls = run(fakes, "--account", "444455556666", "--region", "us-west-2",
                        "--platform", "linux/arm64", "my-model", "2024-06")
    assert result.returncode == 0, result.stderr
    assert calls == [
        ["aws", "ecr", "describe-repositories", "--repository-names", "my-model",
         "--region", "us-west-2"],
        *tail_calls("my-model", "2024-06", region="us-west-2", platform="linux/arm64",
                    account="444455556666"),
    ]
    assert result.stdout.splitlines()[-1] == \
        "444455556666.dkr.ecr.us-west-2.amazonaws.com/my-model:2024-06"


def test_region_from_the_environment_wins_over_the_profile(fakes):
    result, calls = run(fakes, "my-model", AWS_REGION="ap-southeast-2")
    assert result.returncode == 0, result.stderr
    assert ["aws", "configure", "get", "region"] not in calls
    assert calls[1] == ["aws", "ecr", "describe-repositories", "--repository-names",
                        "my-model", "--region", "ap-southeast-2"]
    assert result.stdout.strip() == f"{registry('ap-southeast-2')}/my-model:latest"


def test_china_regions_use_their_own_domain(fakes):
    result, _ = run(fakes, "--region", "cn-north-1", "my-model")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{ACCOUNT}.dkr.ecr.cn-north-1.amazonaws.com.cn/my-model:latest"


def test_build_args_are_passed_to_docker_build(fakes):
    result, calls = run(fakes, "--build-arg", "BASE_IMAGE=python:3.11-slim-bookworm",
                        "my-model")
    assert result.returncode == 0, result.stderr
    build = next(c for c in calls if c[:2] == ["docker", "build"])
    assert build[build.index("--build-arg") + 1] == "BASE_IMAGE=python:3.11-slim-bookworm"


def test_a_sklearn_line_is_a_build_argument_and_names_the_tag(fakes):
    result, calls = run(fakes, "--sklearn-version", "1.2", "my-model", "v1")
    assert result.returncode == 0, result.stderr
    build = next(c for c in calls if c[:2] == ["docker", "build"])
    assert build[build.index("--build-arg") + 1] == "SKLEARN_VERSION=1.2"
    assert build[build.index("--tag") + 1] == "my-model:v1-sklearn1.2"
    assert ["docker", "push", f"{registry()}/my-model:v1-sklearn1.2"] in calls
    assert result.stdout.splitlines() == [f"{registry()}/my-model:v1-sklearn1.2"]


def test_a_sklearn_line_without_a_tag_is_the_tag(fakes):
    result, calls = run(fakes, "--sklearn-version=1.4", "my-model")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"{registry()}/my-model:sklearn1.4"]
    build = next(c for c in calls if c[:2] == ["docker", "build"])
    assert "SKLEARN_VERSION=1.4" in build


def test_an_unknown_sklearn_line_is_refused_with_the_lines(fakes):
    result, calls = run(fakes, "--sklearn-version", "1.3", "my-model")
    assert result.returncode == 2
    assert calls == []
    assert "--sklearn-version 1.3" in result.stderr
    assert "1.2, 1.4, and 1.9 (the default)" in result.stderr


def test_dry_run_prints_every_command_and_runs_none(fakes):
    result, calls = run(fakes, "--dry-run", "--account", ACCOUNT, "--region", "eu-west-1",
                        "my-model", "v1")
    assert result.returncode == 0, result.stderr
    assert calls == []
    uri = f"{registry()}/my-model:v1"
    assert result.stdout.splitlines() == [
        "aws ecr describe-repositories --repository-names my-model --region eu-west-1"
        " || aws ecr create-repository --repository-name my-model --region eu-west-1"
        " --image-scanning-configuration scanOnPush=true",
        f"aws ecr get-login-password --region eu-west-1 | docker login --username AWS"
        f" --password-stdin {registry()}",
        f"docker build --platform linux/amd64 --tag my-model:v1 --file {ROOT / 'Dockerfile'}"
        f" {ROOT}",
        f"docker tag my-model:v1 {uri}",
        f"docker push {uri}",
        uri,
    ]


def test_dry_run_without_options_shows_the_lookups(fakes):
    result, calls = run(fakes, "--dry-run", "my-model")
    assert result.returncode == 0, result.stderr
    assert calls == []
    lines = result.stdout.splitlines()
    assert lines[:2] == ["aws sts get-caller-identity --query Account --output text",
                         "aws configure get region"]
    assert lines[-1] == "<account>.dkr.ecr.<region>.amazonaws.com/my-model:latest"


def test_dry_run_quotes_words_the_shell_would_split(fakes):
    result, _ = run(fakes, "--dry-run", "--region", "eu-west-1", "--build-arg",
                    "LABEL=a b|c", "my-model")
    assert result.returncode == 0, result.stderr
    assert "--build-arg LABEL=a\\ b\\|c " in result.stdout


def test_failed_login_stops_before_building(fakes):
    result, calls = run(fakes, "my-model", FAKE_FAIL="get-login-password")
    assert result.returncode != 0
    assert not [c for c in calls if c[:2] in (["docker", "build"], ["docker", "push"])]
    assert "amazonaws.com" not in result.stdout


def test_failed_push_fails_without_printing_a_uri(fakes):
    result, calls = run(fakes, "my-model", FAKE_FAIL="push")
    assert result.returncode != 0
    assert calls[-1][:2] == ["docker", "push"]
    assert result.stdout.strip() == ""


def test_no_region_anywhere_is_an_error_that_says_what_to_do(fakes):
    result, calls = run(fakes, "my-model", FAKE_REGION="")
    assert result.returncode != 0
    assert "--region" in result.stderr
    assert not [c for c in calls if c[:2] == ["aws", "ecr"]]


@pytest.mark.parametrize("args", [[], ["My_Model"], ["my-model", "bad tag"],
                                  ["--platform", "windows/amd64", "my-model"],
                                  ["--account", "12", "my-model"], ["--bogus", "my-model"],
                                  ["a", "b", "c"]])
def test_bad_arguments_are_refused_before_any_call(fakes, args):
    result, calls = run(fakes, *args)
    assert result.returncode == 2
    assert calls == []
    assert result.stderr


def test_help(fakes):
    result, calls = run(fakes, "--help")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: build_and_push.sh")
    assert "--dry-run" in result.stdout and "--platform" in result.stdout
    assert "--sklearn-version" in result.stdout
    assert calls == []
