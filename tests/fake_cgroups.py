"""Fake ``/`` trees holding the files the kernel gives a container about its cgroup, laid
out as a cgroup v1 host (Docker on Amazon Linux 2) or a cgroup v2 host writes them."""
from __future__ import annotations

import re
from pathlib import Path

GiB = 2**30


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def v2_tree(root: Path, *, memory_max: str = str(2 * GiB), cpu_max: str = "max 100000",
            oom_kill: int = 0, machine_kib: int = 16 * 2**20) -> Path:
    """A container with its own cgroup namespace: its group is the tree's top."""
    return write(root, {
        "proc/self/cgroup": "0::/\n",
        "proc/meminfo": f"MemTotal:       {machine_kib} kB\nMemFree:         1024 kB\n",
        "sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory pids\n",
        "sys/fs/cgroup/memory.max": memory_max + "\n",
        "sys/fs/cgroup/memory.events": (f"low 0\nhigh 0\nmax 3\noom 1\noom_kill {oom_kill}\n"
                                        "oom_group_kill 0\n"),
        "sys/fs/cgroup/cpu.max": cpu_max + "\n",
    })


def v1_tree(root: Path, *, limit_in_bytes: str = str(2 * GiB), quota_us: str = "-1",
            period_us: str = "100000", oom_kill: int = 0, machine_kib: int = 16 * 2**20) -> Path:
    """Docker on a cgroup v1 host: /proc/self/cgroup names the host's path, and the
    container sees its own group mounted at each controller's top; cpu and cpuacct
    share one hierarchy."""
    return write(root, {
        "proc/self/cgroup": ("12:pids:/docker/4f2a\n11:memory:/docker/4f2a\n"
                             "4:cpu,cpuacct:/docker/4f2a\n1:name=systemd:/docker/4f2a\n"),
        "proc/meminfo": f"MemTotal:       {machine_kib} kB\nMemFree:         1024 kB\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": limit_in_bytes + "\n",
        "sys/fs/cgroup/memory/memory.oom_control": (f"oom_kill_disable 0\nunder_oom 0\n"
                                                    f"oom_kill {oom_kill}\n"),
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us": quota_us + "\n",
        "sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us": period_us + "\n",
    })


def count_an_oom_kill(root: Path) -> None:
    """What the kernel does when its out-of-memory killer kills a process of the group."""
    for name in ("sys/fs/cgroup/memory.events", "sys/fs/cgroup/memory/memory.oom_control"):
        path = root / name
        if path.exists():
            path.write_text(re.sub(r"oom_kill (\d+)", lambda m: f"oom_kill {int(m[1]) + 1}",
                                   path.read_text()))
            return
    raise AssertionError(f"no cgroup memory files under {root}")
