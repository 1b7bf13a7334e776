"""How the workers share new connections: the fewest first, the handicap as fallback."""
from __future__ import annotations

import gc
import os
import socket
from pathlib import Path
from types import SimpleNamespace

import pytest

from sklearn_byoc.serve import server


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


@pytest.fixture
def busy_worker(listener, monkeypatch):
    sock, _ = listener
    clock = Clock()
    monkeypatch.setattr(server.time, "monotonic", clock)
    accepted = []
    worker = SimpleNamespace(sockets=[sock], _unclaimed_since=None, _defers=lambda: True,
                             accept=lambda lsock: accepted.append(lsock.accept()[0]))
    yield worker, clock, accepted
    for conn in accepted:
        conn.close()


def turn(worker):
    server.SageMakerWorker._accept_unclaimed(worker)


def test_a_new_connection_is_left_to_idle_workers_for_the_handicap(listener, busy_worker):
    _, connect = listener
    worker, clock, accepted = busy_worker
    connect(1)
    turn(worker)
    clock.now += server.ACCEPT_HANDICAP / 2
    turn(worker)
    assert accepted == []
    clock.now += server.ACCEPT_HANDICAP / 2 + 1e-6
    turn(worker)
    assert len(accepted) == 1


def test_a_burst_is_taken_one_per_turn_once_the_handicap_has_passed(listener, busy_worker):
    _, connect = listener
    worker, clock, accepted = busy_worker
    connect(5)
    turn(worker)
    clock.now += server.ACCEPT_HANDICAP + 1e-6
    for taken in range(1, 6):
        turn(worker)
        assert len(accepted) == taken  # no new handicap for each one of the burst
        clock.now += 0.001
    turn(worker)  # the queue is empty: the clock restarts
    connect(1)
    turn(worker)
    clock.now += server.ACCEPT_HANDICAP / 2
    turn(worker)
    assert len(accepted) == 5
    clock.now += server.ACCEPT_HANDICAP / 2 + 1e-6
    turn(worker)
    assert len(accepted) == 6


# -- the connection counts the workers share ------------------------------------------------
def test_counts_written_by_a_forked_worker_are_read_by_the_others():
    counts = server.ConnectionCounts(2)
    mine, theirs = counts.claim(), counts.claim()
    assert {mine, theirs} == {0, 1}
    pid = os.fork()
    if pid == 0:  # the "other worker": writes its count in the shared pages and leaves
        counts.publish(theirs, 3)
        os._exit(0)
    os.waitpid(pid, 0)
    assert counts.fewest_elsewhere(mine) == 3
    assert counts.fewest_elsewhere(theirs) == 0


def test_a_freed_slot_is_ignored_and_given_again():
    counts = server.ConnectionCounts(2)
    first, second = counts.claim(), counts.claim()
    assert counts.claim() is None  # more workers than slots (TTIN): handicap only
    counts.publish(second, 5)
    counts.release(second)
    assert counts.fewest_elsewhere(first) is None  # no other live worker
    assert counts.claim() == second
    assert counts.fewest_elsewhere(first) == 0  # a new worker starts at 0


@pytest.fixture
def frozen():
    yield
    gc.unfreeze()


def test_the_master_hooks_give_each_worker_its_own_slot_and_free_it_at_exit(frozen):
    hooks = server.fork_hooks(2)
    a, b, c = (SimpleNamespace() for _ in range(3))
    hooks["pre_fork"](None, a)
    hooks["pre_fork"](None, b)
    assert a.connection_counts is b.connection_counts
    assert {a.connection_slot, b.connection_slot} == {0, 1}
    hooks["child_exit"](None, a)
    hooks["pre_fork"](None, c)  # the replacement of a
    assert c.connection_slot == a.connection_slot


def test_one_worker_gets_no_slot(frozen):
    worker = SimpleNamespace()
    server.fork_hooks(1)["pre_fork"](None, worker)
    assert not hasattr(worker, "connection_slot")


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


def worker_holding(held, others, workers=2):
    counts = server.ConnectionCounts(workers)
    slots = [counts.claim() for _ in range(workers)]
    for slot, count in zip(slots[1:], others):
        counts.publish(slot, count)
    worker = SimpleNamespace(cfg=SimpleNamespace(workers=workers), nr_conns=held,
                             connection_counts=counts, connection_slot=slots[0])
    return lambda: server.SageMakerWorker._defers(worker)


@pytest.mark.parametrize("held, others, defers", [
    (0, [3], False),   # idle: takes it
    (1, [0], True),    # another worker is idle: its turn
    (4, [4], False),   # nobody holds fewer
    (2, [3], False),
    (3, [2, 5], True),
    (3, [4, 5], False),
])
def test_a_worker_leaves_a_new_connection_only_to_one_holding_fewer(held, others, defers):
    assert worker_holding(held, others, workers=len(others) + 1)() is defers


def test_without_counts_a_busy_worker_always_defers_to_the_handicap():
    worker = SimpleNamespace(cfg=SimpleNamespace(workers=2), nr_conns=1,
                             connection_counts=None, connection_slot=None)
    assert server.SageMakerWorker._defers(worker) is True


def test_a_deferring_worker_takes_a_waiting_connection_once_the_counts_say_so(listener,
                                                                              busy_worker):
    _, connect = listener
    worker, clock, accepted = busy_worker
    others_hold_fewer = [True]
    worker._defers = lambda: others_hold_fewer[0]
    connect(1)
    turn(worker)
    assert accepted == []
    others_hold_fewer[0] = False  # the other worker took connections meanwhile
    clock.now += server.COUNTS_RECHECK
    turn(worker)
    assert len(accepted) == 1  # at once, not after the handicap
