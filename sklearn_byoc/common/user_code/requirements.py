"""A user's ``requirements.txt``, installed with pip.

pip always runs in the file's folder, so relative lines (``./wheels/x.whl``)
mean what they mean to someone running pip there.  Two destinations:

- a training or processing script's packages go into the interpreter that runs
  it (:func:`install_into_interpreter`): the job is that script's alone;
- a model's inference code gets a folder of its own under /tmp (serverless
  endpoints may write nowhere else) and the image's packages stay at the
  image's versions (:func:`install_beside_image`): the server runs on them.
"""
from __future__ import annotations

import fcntl
import functools
import hashlib
import importlib.metadata
import logging
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

from sklearn_byoc.common.child_process import run_child
from sklearn_byoc.common.errors import StageStopped, UserError

log = logging.getLogger("user_code")

REQUIREMENTS_FILE = "requirements.txt"
CONSTRAINTS_FILE = "image-constraints.txt"
PIP = [sys.executable, "-m", "pip", "install", "--no-input", "--disable-pip-version-check"]


def requirement_files(code_dir: Path, program_dir: Path) -> list[Path]:
    """``requirements.txt`` at the code root (where the SDK's source_dir puts it) and
    next to the program when that is a sub-folder."""
    found = []
    for folder in (code_dir, program_dir):
        candidate = folder / REQUIREMENTS_FILE
        if candidate.is_file() and candidate.resolve() not in [f.resolve() for f in found]:
            found.append(candidate)
    return found


def pip_error(stderr_lines: list[str], lines: int = 3) -> str:
    """pip's own explanation: its last ``ERROR:`` lines, else its last lines."""
    tail = [line.strip() for line in stderr_lines if line.strip()]
    errors = [line for line in tail if line.startswith("ERROR:")]
    chosen = errors[-lines:] if errors else tail[-lines:]
    return " | ".join(chosen) if chosen else "pip printed nothing on stderr"


def pip_failed(requirements: Path, returncode: int, stderr_lines: list[str],
               advice: str = "") -> UserError:
    return UserError(f"installing {requirements} failed (pip exited with code {returncode}): "
                     f"{pip_error(stderr_lines)}{advice}")


# -- into the interpreter (a job's script) ---------------------------------------------------
def install_into_interpreter(requirements: Path, env: dict[str, str] | None = None) -> None:
    """``python -m pip install -r requirements.txt`` for the interpreter that runs the code;
    a stop request (SIGTERM) stops pip and the stage."""
    log.info("installing the packages in %s", requirements)
    result = run_child([*PIP, "-r", str(requirements)], env=env, cwd=requirements.parent)
    if result.stopped_by:
        raise StageStopped(f"stopped by {result.stopped_by} while installing {requirements}")
    if result.returncode != 0:
        raise pip_failed(requirements, result.returncode, result.stderr_tail)
    log.info("installed the packages in %s", requirements)


# -- beside the image (a model's inference code) ---------------------------------------------
@functools.lru_cache(maxsize=None)
def packages_root() -> Path:
    """The folder every model's packages install under, one per server: made in the
    gunicorn master (serve/cli.py), so the workers it forks share it.

    It also holds the image's constraints: every distribution of the image
    pinned at its version (requirements may add packages, never replace one the
    server runs), read before any model's packages join sys.path.
    """
    root = Path(tempfile.mkdtemp(prefix="serve-packages-"))
    pins = sorted({f"{d.metadata['Name']}=={d.version}"
                   for d in importlib.metadata.distributions() if d.metadata["Name"]})
    (root / CONSTRAINTS_FILE).write_text("\n".join(pins) + "\n")
    return root


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def site_folder(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix),
                                                    "platbase": str(prefix)}))


def install_beside_image(folder: Path) -> Path | None:
    """Install ``folder/requirements.txt`` into a folder of this code's own; returns the
    folder to put on ``sys.path``.

    Several worker processes may load one model at once: one installs, under a
    lock, and the others find it installed.
    """
    requirements = folder / REQUIREMENTS_FILE
    if not requirements.is_file():
        return None
    root = packages_root()
    prefix = root / hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = prefix / ".installed"
    with open(root / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.is_file() and marker.read_text() == wanted):
            log.info("installing %s into %s", requirements, prefix)
            result = subprocess.run(
                [*PIP, "--quiet", "--no-cache-dir", "--no-warn-script-location",
                 "--prefix", str(prefix), "--constraint", str(root / CONSTRAINTS_FILE),
                 "--requirement", REQUIREMENTS_FILE],
                cwd=requirements.parent, capture_output=True, text=True)
            if result.returncode != 0:
                raise pip_failed(requirements, result.returncode, result.stderr.splitlines(),
                                 "; packages the image has stay at its versions (pin those, "
                                 "or leave them out)")
            marker.write_text(wanted)
    _check_versions(prefix, root, requirements)
    return site_folder(prefix)


def distributions(site: Path) -> dict[str, str]:
    return {_normalize(d.metadata["Name"]): d.version
            for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"]}


def _check_versions(prefix: Path, root: Path, requirements: Path) -> None:
    """One server holds one version of a package: a model's packages are compared with
    those every other model's code installed in this container (any worker may have
    imported them, and Python cannot unload a module)."""
    own = distributions(site_folder(prefix))
    for other in sorted(root.iterdir()):
        if not other.is_dir() or other == prefix or not (other / ".installed").is_file():
            continue
        for name, version in distributions(site_folder(other)).items():
            if name in own and own[name] != version:
                # Never imported (the check comes first): it must not count against others.
                shutil.rmtree(prefix, ignore_errors=True)
                raise UserError(
                    f"{requirements} installs {name} {own[name]}, but another model on this "
                    f"endpoint installed {name} {version}; one server holds one version of a "
                    "package: pin the same version in both models' requirements.txt, or "
                    "serve them on separate endpoints")
