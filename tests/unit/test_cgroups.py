"""The cgroup readers on fake v1 and v2 trees, and the CPU count that follows them."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sklearn_byoc.common.cgroups import Cgroup, cpu_quota_count, machine_memory
from sklearn_byoc.common.contract import cpu_count
from tests.fake_cgroups import GiB, count_an_oom_kill, v1_tree, v2_tree, write

ROOT = Path(__file__).resolve().parents[2]


# -- memory ------------------------------------------------------------------------------------
def test_v2_memory_limit_and_oom_kills(tmp_path):
    root = v2_tree(tmp_path, memory_max="1610612736", oom_kill=2)
    group = Cgroup.find(root)
    assert group.memory_limit() == 1610612736
    assert group.oom_kills() == 2
    count_an_oom_kill(root)
    assert group.oom_kills() == 3


def test_v2_without_a_memory_limit(tmp_path):
    assert Cgroup.find(v2_tree(tmp_path, memory_max="max")).memory_limit() is None


def test_v1_memory_limit_and_oom_kills(tmp_path):
    root = v1_tree(tmp_path, limit_in_bytes=str(3 * GiB), oom_kill=0)
    group = Cgroup.find(root)
    assert group.memory_limit() == 3 * GiB
    assert group.oom_kills() == 0
    count_an_oom_kill(root)
    assert group.oom_kills() == 1


def test_v1_unlimited_reads_as_no_limit(tmp_path):
    # What cgroup v1 writes for "no limit" on a 4 KiB-page machine.
    root = v1_tree(tmp_path, limit_in_bytes="9223372036854771712")
    assert Cgroup.find(root).memory_limit() is None


def test_v1_kernel_without_an_oom_kill_count(tmp_path):
    root = v1_tree(tmp_path)
    # Kernels before 4.13 write no oom_kill line.
    (root / "sys/fs/cgroup/memory/memory.oom_control").write_text(
        "oom_kill_disable 0\nunder_oom 0\n")
    assert Cgroup.find(root).oom_kills() is None


def test_a_parent_groups_limit_applies(tmp_path):
    # No cgroup namespace (a host's systemd slice): the group's own path exists under the
    # mount, and a parent holds the smaller limit.
    root = write(tmp_path, {
        "proc/self/cgroup": "0::/job.slice/stage.scope\n",
        "sys/fs/cgroup/cgroup.controllers": "cpu memory\n",
        "sys/fs/cgroup/job.slice/memory.max": str(GiB),
        "sys/fs/cgroup/job.slice/memory.events": "oom_kill 9\n",
        "sys/fs/cgroup/job.slice/cpu.max": "50000 100000",
        "sys/fs/cgroup/job.slice/stage.scope/memory.max": "max",
        "sys/fs/cgroup/job.slice/stage.scope/memory.events": "oom 1\noom_kill 1\n",
        "sys/fs/cgroup/job.slice/stage.scope/cpu.max": "max 100000",
    })
    group = Cgroup.find(root)
    assert group.memory_limit() == GiB
    assert group.oom_kills() == 1  # the group's own count
    assert group.cpu_limit() == 0.5


def test_hybrid_host_reads_memory_from_v1(tmp_path):
    # systemd's hybrid layout: v1 controllers, plus an empty v2 tree at unified/.
    root = write(tmp_path, {
        "proc/self/cgroup": "4:memory:/jobs/a1\n1:cpu:/\n0::/\n",
        "sys/fs/cgroup/memory/jobs/a1/memory.limit_in_bytes": str(2 * GiB),
        "sys/fs/cgroup/memory/jobs/a1/memory.oom_control": "oom_kill_disable 0\noom_kill 4\n",
        "sys/fs/cgroup/memory/memory.limit_in_bytes": "9223372036854771712",
        "sys/fs/cgroup/cpu/cpu.cfs_quota_us": "-1",
        "sys/fs/cgroup/cpu/cpu.cfs_period_us": "100000",
        "sys/fs/cgroup/unified/cgroup.procs": "",
    })
    group = Cgroup.find(root)
    assert group.memory_limit() == 2 * GiB
    assert group.oom_kills() == 4
    assert group.cpu_limit() is None


def test_no_cgroup_files_at_all(tmp_path):
    group = Cgroup.find(tmp_path)
    assert group.memory_limit() is None
    assert group.oom_kills() is None
    assert group.cpu_limit() is None
    assert machine_memory(tmp_path) is None


def test_machine_memory_from_meminfo(tmp_path):
    assert machine_memory(v2_tree(tmp_path, machine_kib=8 * 2**20)) == 8 * GiB


# -- CPUs --------------------------------------------------------------------------------------
@pytest.mark.parametrize("cpu_max, expected", [("max 100000", None), ("100000 100000", 1),
                                               ("150000 100000", 2), ("50000 100000", 1),
                                               ("400000 100000", 4)])
def test_v2_cpu_quota_rounded_up(tmp_path, cpu_max, expected):
    assert cpu_quota_count(v2_tree(tmp_path, cpu_max=cpu_max)) == expected


@pytest.mark.parametrize("quota, period, expected", [("-1", "100000", None),
                                                     ("250000", "100000", 3),
                                                     ("20000", "10000", 2)])
def test_v1_cpu_quota_rounded_up(tmp_path, quota, period, expected):
    # cpu and cpuacct share the hierarchy "cpu,cpuacct", as Docker's hosts mount it.
    assert cpu_quota_count(v1_tree(tmp_path, quota_us=quota, period_us=period)) == expected


def test_cpu_count_is_the_quota_when_it_is_below_the_affinity_mask(tmp_path):
    cpus = len(os.sched_getaffinity(0))
    assert cpu_count(v2_tree(tmp_path / "one", cpu_max="90000 100000")) == 1
    assert cpu_count(v2_tree(tmp_path / "none", cpu_max="max 100000")) == cpus
    # A quota above the CPUs the process may run on does not add any.
    assert cpu_count(v1_tree(tmp_path / "many", quota_us=str(100000 * (cpus + 8)))) == cpus


def test_cpu_count_follows_the_affinity_mask():
    # taskset / docker --cpuset-cpus: one allowed CPU.
    code = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {str(ROOT)!r})
        os.sched_setaffinity(0, {{min(os.sched_getaffinity(0))}})
        from sklearn_byoc.common.contract import cpu_count
        print(cpu_count())
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == "1"
