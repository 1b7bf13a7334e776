"""How a busy worker takes connections that no idle worker has taken."""
from __future__ import annotations

import socket
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
    worker = SimpleNamespace(sockets=[sock], _unclaimed_since=None,
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
