"""What the kernel lets this container use: memory, CPUs, and its out-of-memory kills.

A container's limits are those of its control group (cgroup).  Two layouts
exist, and hosts run either:

- cgroup v2 (one tree at ``/sys/fs/cgroup``): ``memory.max``,
  ``memory.events`` (its ``oom_kill`` line counts processes of the group the
  kernel's out-of-memory killer killed), ``cpu.max`` (``"quota period"`` or
  ``"max period"``);
- cgroup v1 (one tree per controller, ``/sys/fs/cgroup/memory``,
  ``/sys/fs/cgroup/cpu``): ``memory.limit_in_bytes``, ``memory.oom_control``
  (``oom_kill`` line, kernel 4.13 and later), ``cpu.cfs_quota_us`` (-1: none)
  and ``cpu.cfs_period_us``.

``/proc/self/cgroup`` names this process's group in each tree.  Inside a
container with its own cgroup namespace that is ``/`` and the tree's top is
the group; without one, the host's path is given while the container sees
its own group mounted at the top: both are tried.  A limit set on a parent
group applies too, so limits are read up to the top of the mount.

Every reader takes the folder that stands for ``/`` (``root``), so tests
give fake trees.  Nothing here imports more than the standard library's
basics: the stage supervisors use it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM_ROOT = Path("/")
CGROUP_MOUNT = Path("sys/fs/cgroup")
# cgroup v1 writes "no limit" as the largest page-aligned 64-bit count.
_V1_UNLIMITED = 2**62


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None


def _keyed(text: str | None, key: str) -> int | None:
    """The number after ``key`` in a "key value" per line file."""
    for line in (text or "").splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            try:
                return int(value.strip())
            except ValueError:
                return None
    return None


def _number(text: str | None) -> int | None:
    try:
        return int((text or "").strip())
    except ValueError:
        return None


@dataclass(frozen=True)
class Cgroup:
    """This process's control groups, as ``/proc/self/cgroup`` names them under ``root``."""

    root: Path = SYSTEM_ROOT
    v1: dict[str, tuple[str, str]] = field(default_factory=dict)
    """controller -> (the hierarchy's controller list as written, e.g. "cpu,cpuacct"; path)"""
    v2: str | None = None

    @classmethod
    def find(cls, root: Path | None = None) -> "Cgroup":
        root = SYSTEM_ROOT if root is None else Path(root)
        v1: dict[str, tuple[str, str]] = {}
        v2 = None
        for line in (_read(root / "proc/self/cgroup") or "").splitlines():
            parts = line.split(":", 2)
            if len(parts) != 3:
                continue
            _, controllers, path = parts
            if not controllers:
                v2 = path
                continue
            for controller in controllers.split(","):
                v1[controller] = (controllers, path)
        return cls(root, v1, v2)

    # -- where the files are ------------------------------------------------------------------
    def _chain(self, top: Path, path: str) -> list[Path]:
        """The group's folder and its parents up to the mount's top, nearest first."""
        own = top / path.lstrip("/")
        if path.strip("/") and own.is_dir():
            chain = [own]
            while chain[-1] != top and top in chain[-1].parents:
                chain.append(chain[-1].parent)
            return chain
        return [top] if top.is_dir() else []

    def _v1_chain(self, controller: str) -> list[Path]:
        if controller not in self.v1:
            return []
        listed, path = self.v1[controller]
        for mount in (controller, listed):
            chain = self._chain(self.root / CGROUP_MOUNT / mount, path)
            if chain:
                return chain
        return []

    def _v2_chain(self) -> list[Path]:
        top = self.root / CGROUP_MOUNT
        if self.v2 is None or not (top / "cgroup.controllers").is_file():
            return []
        return self._chain(top, self.v2)

    def _memory_v1(self) -> bool:
        return bool(self._v1_chain("memory"))

    # -- memory -------------------------------------------------------------------------------
    def memory_limit(self) -> int | None:
        """The smallest memory limit in bytes on this group and its parents, or None."""
        limits = []
        if self._memory_v1():
            for folder in self._v1_chain("memory"):
                value = _number(_read(folder / "memory.limit_in_bytes"))
                if value is not None and 0 < value < _V1_UNLIMITED:
                    limits.append(value)
        else:
            for folder in self._v2_chain():
                value = _number(_read(folder / "memory.max"))  # "max" reads as None
                if value is not None and value > 0:
                    limits.append(value)
        return min(limits) if limits else None

    def oom_kills(self) -> int | None:
        """How many processes of this group the out-of-memory killer has killed, or None
        when the kernel does not say."""
        if self._memory_v1():
            folder = self._v1_chain("memory")[0]
            return _keyed(_read(folder / "memory.oom_control"), "oom_kill")
        chain = self._v2_chain()
        if not chain:
            return None
        return _keyed(_read(chain[0] / "memory.events"), "oom_kill")

    # -- CPU ----------------------------------------------------------------------------------
    def cpu_limit(self) -> float | None:
        """The CPU quota in CPUs (1.5 = one and a half), the smallest up the tree, or None."""
        quotas = []
        if self._v1_chain("cpu"):
            for folder in self._v1_chain("cpu"):
                quota = _number(_read(folder / "cpu.cfs_quota_us"))
                period = _number(_read(folder / "cpu.cfs_period_us"))
                if quota is not None and quota > 0 and period:
                    quotas.append(quota / period)
        else:
            for folder in self._v2_chain():
                words = (_read(folder / "cpu.max") or "").split()
                if len(words) == 2 and words[0] != "max":
                    quota, period = _number(words[0]), _number(words[1])
                    if quota and period:
                        quotas.append(quota / period)
        return min(quotas) if quotas else None


def machine_memory(root: Path | None = None) -> int | None:
    """The machine's memory in bytes (``MemTotal`` of ``/proc/meminfo``)."""
    root = SYSTEM_ROOT if root is None else Path(root)
    for line in (_read(root / "proc/meminfo") or "").splitlines():
        if line.startswith("MemTotal:"):
            words = line.split()
            try:
                return int(words[1]) * 1024  # the kernel writes kB
            except (IndexError, ValueError):
                return None
    return None


def cpu_quota_count(root: Path | None = None) -> int | None:
    """The cgroup CPU quota rounded up to whole CPUs, or None when there is none."""
    quota = Cgroup.find(root).cpu_limit()
    return max(1, math.ceil(quota)) if quota is not None else None
