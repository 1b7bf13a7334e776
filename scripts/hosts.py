"""A training job on several hosts, on one machine: one ``train`` process per host.

Each host gets its own /opt/ml tree (``SAGEMAKER_BASE_DIR``) with its own
``resourceconfig.json``, and its own name resolution: the process starts in a private mount
namespace (``unshare -m``, root only) with a hosts file bind-mounted over /etc/hosts, where
``algo-1``, ``algo-2``, … resolve to 127.0.0.2, 127.0.0.3, …  With ``memory`` set, each host
process runs in a cgroup (v1 memory controller) capped at that many bytes, as an instance of
that size would be.  Nothing in the image knows it runs here: this is how SageMaker lays out
each instance, one machine over.

Not part of the image: tests and ``benchmarks/train_hosts.py`` use it.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CGROUP_MEMORY = Path("/sys/fs/cgroup/memory")


def host_names(n: int) -> list[str]:
    return [f"algo-{i + 1}" for i in range(n)]


def address(index: int) -> str:
    return f"127.0.0.{index + 2}"


def can_run() -> str | None:
    """Why hosts cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (unshare -m and a bind mount per host)"
    if shutil.which("unshare") is None:
        return "needs unshare (util-linux)"
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    if probe.returncode != 0:
        return f"unshare -m fails here: {probe.stderr.decode().strip()}"
    return None


def can_cap_memory() -> bool:
    return CGROUP_MEMORY.is_dir() and os.access(CGROUP_MEMORY, os.W_OK)


@dataclass
class Host:
    name: str
    base: Path
    process: subprocess.Popen | None = None
    log: Path | None = None
    cgroup: Path | None = None
    peak: int | None = None  # the cgroup's peak memory, kept when the cgroup goes

    @property
    def failure(self) -> str:
        path = self.base / "output" / "failure"
        return path.read_text() if path.exists() else ""

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log and self.log.exists() else ""

    def peak_memory(self) -> int | None:
        """The host's peak memory in bytes (its cgroup's, when capped)."""
        if self.cgroup is None:
            return self.peak
        try:
            return int((self.cgroup / "memory.max_usage_in_bytes").read_text())
        except OSError:
            return self.peak


@dataclass
class Job:
    """The hosts of one training job, each with its tree under ``root``."""

    root: Path
    hosts: list[Host] = field(default_factory=list)

    @classmethod
    def lay_out(cls, root: Path, n: int, hyperparameters: dict[str, str],
                channels: dict[str, dict[str, list[Path]]],
                distribution: str | None = "FullyReplicated") -> "Job":
        """``channels``: channel -> host -> files that host's channel folder holds (a
        FullyReplicated channel: every host the same files; ShardedByS3Key: each its own).
        ``distribution`` None writes no S3DistributionType, as SDK v3's local mode does."""
        names = host_names(n)
        job = cls(root)
        (root / "hosts").parent.mkdir(parents=True, exist_ok=True)
        (root / "hosts").write_text("127.0.0.1 localhost\n" + "".join(
            f"{address(i)} {name}\n" for i, name in enumerate(names)))
        for name in names:
            base = root / name
            config = base / "input" / "config"
            config.mkdir(parents=True, exist_ok=True)
            data_config = {}
            for channel, by_host in channels.items():
                folder = base / "input" / "data" / channel
                folder.mkdir(parents=True, exist_ok=True)
                for path in by_host.get(name, []):
                    link = folder / Path(path).name
                    if not link.exists():
                        os.link(path, link) if _same_device(path, folder) \
                            else shutil.copy(path, link)
                entry = {"TrainingInputMode": "File", "RecordWrapperType": "None"}
                if distribution:
                    entry["S3DistributionType"] = distribution
                data_config[channel] = entry
            (config / "hyperparameters.json").write_text(
                json.dumps({k: str(v) for k, v in hyperparameters.items()}))
            (config / "inputdataconfig.json").write_text(json.dumps(data_config))
            (config / "resourceconfig.json").write_text(json.dumps(
                {"current_host": name, "hosts": names, "network_interface_name": "eth0",
                 "current_instance_type": "local"}))
            job.hosts.append(Host(name, base))
        return job

    def start(self, names: list[str] | None = None, memory: int | None = None,
              env: dict[str, str] | None = None) -> None:
        for host in self.hosts:
            if names is not None and host.name not in names:
                continue
            host.log = self.root / f"{host.name}.log"
            join = ""
            if memory is not None:
                host.cgroup = CGROUP_MEMORY / f"sklearn-byoc-{os.getpid()}-{host.name}"
                host.cgroup.mkdir(exist_ok=True)
                (host.cgroup / "memory.limit_in_bytes").write_text(str(memory))
                join = f"echo $$ > {host.cgroup / 'cgroup.procs'} && "
            command = (f"mount --bind {self.root / 'hosts'} /etc/hosts && {join}exec "
                       f"{sys.executable} {ROOT / 'train' / 'main.py'} train")
            with host.log.open("wb") as log:
                host.process = subprocess.Popen(
                    ["unshare", "-m", "sh", "-c", command], stdout=log, stderr=subprocess.STDOUT,
                    env={**os.environ, "SAGEMAKER_BASE_DIR": str(host.base), **(env or {})},
                    start_new_session=True)

    def host(self, name: str) -> Host:
        return next(h for h in self.hosts if h.name == name)

    def wait(self, timeout: float) -> dict[str, int | None]:
        """Each host's exit code (None: still running at the deadline, then killed)."""
        deadline = time.monotonic() + timeout
        codes = {}
        for host in self.hosts:
            if host.process is None:
                continue
            try:
                codes[host.name] = host.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[host.name] = None
        self.stop()
        return codes

    def wait_for_line(self, name: str, text: str, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if text in self.host(name).output():
                return True
            if self.host(name).process.poll() is not None:
                return False
            time.sleep(0.2)
        return False

    def signal(self, name: str, signum: int) -> None:
        """``signum`` to a host's train process (as SageMaker signals an instance)."""
        process = self.host(name).process
        os.killpg(process.pid, signum) if signum == signal.SIGKILL else \
            os.kill(process.pid, signum)

    def stop(self) -> None:
        for host in self.hosts:
            if host.process is not None and host.process.poll() is None:
                os.killpg(host.process.pid, signal.SIGKILL)
                host.process.wait()
            if host.cgroup is not None and host.cgroup.exists():
                host.peak = host.peak_memory()
                try:
                    host.cgroup.rmdir()
                    host.cgroup = None
                except OSError:
                    pass


def _same_device(path: Path, folder: Path) -> bool:
    return os.stat(path).st_dev == os.stat(folder).st_dev
