"""release_free_memory gives back what another thread freed (glibc keeps it otherwise)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Fills a thread's arena with small blocks, frees all but the last, and prints the
# resident size (MB) after the free and after release_free_memory.  The last block stays
# alive so that glibc cannot shrink the arena on its own as the blocks are freed (it
# gives back a heap whose top is free: one CI run saw 100 of the 200 MB go that way).
PROGRAM = textwrap.dedent("""
    import sys, threading
    sys.path.insert(0, {root!r})
    from sklearn_byoc.common.memory import release_free_memory

    def rss():
        return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20

    survivor = []

    def fill():
        blocks = [bytes(1000) for _ in range(200_000)]
        survivor.append(blocks.pop())
        del blocks

    thread = threading.Thread(target=fill)
    thread.start()
    thread.join()
    freed = rss()
    release_free_memory()
    print(freed, rss())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_what_a_thread_freed_goes_back_to_the_system():
    out = subprocess.run([sys.executable, "-c", PROGRAM.format(root=str(ROOT))],
                         capture_output=True, text=True, check=True).stdout
    freed, released = map(float, out.split())
    assert freed - released > 100  # of the ~200 MB the thread held
