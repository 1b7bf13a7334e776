"""How the workers share new connections: the least loaded first, the handicap as fallback."""
from __future__ import annotations

import gc
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from sklearn_byoc.serve import server
from sklearn_byoc.serve import worker as worker_module
from sklearn_byoc.serve.worker import ACCEPT_HANDICAP, LOADS_RECHECK, SageMakerWorker, WorkerLoads


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def listener():
    sock = socket.create_server(("127.0.0.1", 0), backlog=64)
    sock.setblocking(False)
    clients = []

    def connect(count):
        for _ in range(count):
            clients.append(socket.create_connection(sock.getsockname()))

    yield sock, connect
    for client in clients:
        client.close()
    sock.close()


class Worker(SageMakerWorker):
    """The worker's spreading methods on a real listener, without gunicorn's process:
    gunicorn's own accept and listening switch are recorded instead of run."""

    def __init__(self, sock):  # noqa: super().__init__ would build a whole gunicorn worker
        self.sockets = [sock]
        self.alive = True
        self.nr_conns = 1
        self.worker_connections = 1000
        self._unclaimed_since = None
        self.others_lighter = True
        self.accepted = []
        self.listening = True

    def _defers(self):
        return self.others_lighter

    def _take(self, listener):
        self.accepted.append(listener.accept()[0])


@pytest.fixture
def busy_worker(listener, monkeypatch):
    sock, _ = listener
    clock = Clock()
    monkeypatch.setattr(worker_module.time, "monotonic", clock)
    monkeypatch.setattr(worker_module.ThreadWorker, "set_accept_enabled",
                        lambda self, enabled: setattr(self, "listening", enabled))
    worker = Worker(sock)
    yield worker, clock
    for conn in worker.accepted:
        conn.close()


def woken(worker):
    """The poller reports the listener readable: gunicorn calls accept()."""
    worker.accept(worker.sockets[0])


def turn(worker):
    SageMakerWorker._accept_unclaimed(worker)


def taken_only_after_the_handicap(worker, clock, already: int):
    """The connection left waiting is not taken within ACCEPT_HANDICAP, and is just after."""
    clock.now += ACCEPT_HANDICAP / 2
    turn(worker)
    assert len(worker.accepted) == already
    clock.now += ACCEPT_HANDICAP / 2 + 1e-6
    turn(worker)
    assert len(worker.accepted) == already + 1


def test_a_connection_left_to_a_lighter_worker_is_taken_after_the_handicap(listener,
                                                                             busy_worker):
    _, connect = listener
    worker, clock = busy_worker
    connect(1)
    woken(worker)
    assert worker.accepted == [] and worker.listening is False  # no spinning on it
    worker.set_accept_enabled(True)  # gunicorn's loop asks to listen again: not yet
    assert worker.listening is False
    taken_only_after_the_handicap(worker, clock, already=0)


def test_once_another_worker_took_it_this_one_listens_again(listener, busy_worker):
    sock, connect = listener
    worker, clock = busy_worker
    connect(1)
    woken(worker)
    sock.accept()[0].close()  # the lighter worker takes it
    clock.now += LOADS_RECHECK
    turn(worker)
    assert worker.accepted == [] and worker.listening is True
    assert worker._unclaimed_since is None
    connect(1)  # a later connection gets a whole handicap again
    woken(worker)
    clock.now += ACCEPT_HANDICAP / 2
    turn(worker)
    assert worker.accepted == []


def test_it_is_taken_at_once_when_the_loads_change_meanwhile(listener, busy_worker):
    _, connect = listener
    worker, clock = busy_worker
    connect(1)
    woken(worker)
    worker.others_lighter = False  # the other worker took connections meanwhile
    clock.now += LOADS_RECHECK
    turn(worker)
    assert len(worker.accepted) == 1  # not after the handicap


def test_a_burst_is_taken_one_per_turn_once_the_handicap_has_passed(listener, busy_worker):
    _, connect = listener
    worker, clock = busy_worker
    connect(5)
    woken(worker)
    clock.now += ACCEPT_HANDICAP + 1e-6
    for taken in range(1, 6):
        turn(worker)
        assert len(worker.accepted) == taken  # no new handicap for each one of the burst
        clock.now += LOADS_RECHECK
    turn(worker)  # none waits: listening again, the clock restarts
    assert worker.listening is True
    connect(1)
    woken(worker)
    taken_only_after_the_handicap(worker, clock, already=5)


def test_a_worker_that_is_not_deferring_takes_it_when_woken(listener, busy_worker):
    _, connect = listener
    worker, _ = busy_worker
    worker.others_lighter = False
    connect(1)
    woken(worker)
    assert len(worker.accepted) == 1 and worker._unclaimed_since is None


# -- the loads the workers share -------------------------------------------------------------
def test_loads_written_by_a_forked_worker_are_read_by_the_others():
    loads = WorkerLoads(2)
    mine, theirs = loads.claim(), loads.claim()
    assert {mine, theirs} == {0, 1}
    pid = os.fork()
    if pid == 0:  # the "other worker": writes its load in the shared pages and leaves
        loads.publish(theirs, 1, 3)
        os._exit(0)
    os.waitpid(pid, 0)
    assert loads.lightest_elsewhere(mine) == WorkerLoads.load(1, 3)
    assert loads.lightest_elsewhere(theirs) == WorkerLoads.load(0, 0)


def test_requests_in_progress_weigh_more_than_connections():
    assert WorkerLoads.load(0, 50) < WorkerLoads.load(1, 1) < WorkerLoads.load(1, 2)
    assert WorkerLoads.load(0, 1 << 20) < WorkerLoads.load(1, 0)  # connections capped


def test_a_freed_slot_is_ignored_and_given_again():
    loads = WorkerLoads(2)
    first, second = loads.claim(), loads.claim()
    assert loads.claim() is None  # more workers than slots (TTIN): handicap only
    loads.publish(second, 2, 5)
    loads.release(second)
    assert loads.lightest_elsewhere(first) is None  # no other live worker
    assert loads.claim() == second
    assert loads.lightest_elsewhere(first) == 0  # a new worker starts unloaded


@pytest.fixture
def frozen():
    yield
    gc.unfreeze()


def test_the_master_hooks_give_each_worker_its_own_slot_and_free_it_at_exit(frozen):
    hooks = server.fork_hooks(2)
    a, b, c = (SimpleNamespace() for _ in range(3))
    hooks["pre_fork"](None, a)
    hooks["pre_fork"](None, b)
    assert a.worker_loads is b.worker_loads
    assert {a.load_slot, b.load_slot} == {0, 1}
    hooks["child_exit"](None, a)
    hooks["pre_fork"](None, c)  # the replacement of a
    assert c.load_slot == a.load_slot


def test_one_worker_gets_no_slot(frozen):
    worker = SimpleNamespace()
    server.fork_hooks(1)["pre_fork"](None, worker)
    assert not hasattr(worker, "load_slot")


def test_a_worker_is_forked_with_the_masters_objects_out_of_the_collectors_reach(frozen):
    model = {"weights": [[0.5] * 4 for _ in range(10)]}  # what the master loaded
    assert gc.get_freeze_count() == 0
    server.fork_hooks(2)["pre_fork"](None, SimpleNamespace())
    assert gc.get_freeze_count() > 0
    assert all(item is not model for item in gc.get_objects())  # no collection walks it


def test_the_server_forks_through_the_hooks():
    from sklearn_byoc.serve.config import ServerConfig

    for workers in (1, 2):
        options = server.gunicorn_options(ServerConfig(model_dir=Path("/opt/ml/model"),
                                                       workers=workers))
        assert {"pre_fork", "child_exit"} <= set(options)


# -- which worker a new connection is left to ------------------------------------------------
def deciding_worker(requests, connections, others):
    """A worker holding ``connections`` with ``requests`` in progress; ``others``: the
    (requests, connections) of the other workers."""
    loads = WorkerLoads(len(others) + 1)
    slots = [loads.claim() for _ in range(len(others) + 1)]
    for slot, (their_requests, their_connections) in zip(slots[1:], others):
        loads.publish(slot, their_requests, their_connections)
    return SimpleNamespace(cfg=SimpleNamespace(workers=len(others) + 1), nr_conns=connections,
                           requests_in_progress=requests, worker_loads=loads,
                           load_slot=slots[0])


@pytest.mark.parametrize("mine, others, defers", [
    ((0, 0), [(1, 3)], False),          # idle: takes it
    ((1, 1), [(0, 0)], True),           # another worker is idle: its turn
    ((0, 1), [(1, 1)], False),          # answered, its connection kept alive: takes it
    ((1, 1), [(0, 1)], True),           # ... and the one still predicting leaves it
    ((1, 4), [(1, 4)], True),           # as loaded, and predicting: leaves it
    ((0, 4), [(0, 4)], False),          # as loaded, nothing in progress: takes it
    ((1, 2), [(1, 3)], False),
    ((2, 3), [(1, 9), (3, 0)], True),
    ((2, 3), [(2, 4), (3, 0)], False),
])
def test_a_new_connection_is_left_only_to_a_less_loaded_worker(mine, others, defers):
    worker = deciding_worker(*mine, others)
    assert SageMakerWorker._defers(worker) is defers


def test_without_loads_a_busy_worker_always_defers_to_the_handicap():
    worker = SimpleNamespace(cfg=SimpleNamespace(workers=2), nr_conns=1,
                             requests_in_progress=1, worker_loads=None, load_slot=None)
    assert SageMakerWorker._defers(worker) is True


def test_a_request_counts_in_the_load_until_its_answer_is_written(listener, monkeypatch):
    sock, _ = listener
    worker = Worker(sock)
    worker.cfg = SimpleNamespace(workers=2)
    worker.worker_loads = WorkerLoads(2)
    worker.load_slot = worker.worker_loads.claim()
    other = worker.worker_loads.claim()
    worker._load_lock = worker_module.threading.Lock()
    seen = []

    def gunicorn_handle(self, conn):
        seen.append(worker.worker_loads.lightest_elsewhere(other))
        if conn == "broken":
            raise OSError("the client went away")
        return False, conn

    monkeypatch.setattr(worker_module.ThreadWorker, "handle", gunicorn_handle)
    worker.requests_in_progress = 1  # counted by enqueue_req
    worker._publish()
    assert worker.handle("conn") == (False, "conn")
    worker.requests_in_progress = 1
    worker._publish()
    with pytest.raises(OSError):
        worker.handle("broken")
    assert seen == [WorkerLoads.load(1, 1)] * 2  # in progress while gunicorn answers it
    assert worker.requests_in_progress == 0
    # Published at once, from the request's thread: not at the loop's next turn.
    assert worker.worker_loads.lightest_elsewhere(other) == WorkerLoads.load(0, 1)
