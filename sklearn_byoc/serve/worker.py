"""serve's gunicorn worker: gunicorn's threaded worker with two additions SageMaker needs.

- health checks have threads of their own.  SageMaker fails a container whose
  ``GET /ping`` takes more than 2 s, and an async-inference request may run
  for up to an hour; in a plain threaded worker a ping waits in the same
  queue as the invocations and can miss its deadline when every thread is
  busy.  Here a new request is peeked at before it is queued, and a ping goes
  to a small pool that invocations never occupy;
- connections are spread over the workers.  A threaded worker accepts every
  connection it can, so two batch-transform requests arriving together could
  land in one worker (sharing one core and one GIL) while another sat idle.
  Here each worker publishes its load (requests in progress, then
  connections: :class:`WorkerLoads`); a worker that holds connections takes a
  new one at once only when no other worker is less loaded, and otherwise
  leaves it to them for ``ACCEPT_HANDICAP`` seconds (the fallback for a worker
  too busy to take what it was left).

The gunicorn names it uses beyond gunicorn's documented settings are listed
below, checked before serve starts (:func:`check_gunicorn`) and tested.
"""
from __future__ import annotations

import logging
import mmap
import select
import selectors
import socket
import threading
import time
from concurrent import futures
from functools import partial

from gunicorn import util as gunicorn_util
from gunicorn.workers.gthread import ThreadWorker

from sklearn_byoc.common.errors import UserError

log = logging.getLogger("serve")

HEALTH_THREADS = 2
# Seconds a busy worker leaves a new connection to a less loaded worker before taking it
# itself.  The less loaded one waits on the listener and is woken by the kernel as the
# connection arrives; at 20 ms an idle worker still won beside two CPU-bound processes on
# 2 cores (tests/contract/test_worker_spread.py under make test-busy BUSY=2).
ACCEPT_HANDICAP = 0.02
# How often a worker that leaves new connections to others reads the loads again: another
# worker's load is only seen once it is written, and two workers that each read the
# other's old load would both wait out the handicap.
LOADS_RECHECK = 0.002
PING = (b"GET /ping ", b"GET /ping?", b"HEAD /ping ")


# -- what this module uses of gunicorn beyond its documented settings ---------------------
# The worker below builds on gunicorn's threaded worker (tested with gunicorn 27.0).  Every
# name it uses that gunicorn does not document is listed here; missing_gunicorn_internals()
# checks them before serve starts, and a unit test fails when a gunicorn upgrade drops one.
GUNICORN_TESTED = "27.0"
THREAD_WORKER_METHODS = ("enqueue_req", "set_accept_enabled", "wait_for_and_dispatch_events",
                         "handle_quit", "handle", "accept", "finish_request",
                         "on_pending_socket_readable")
THREAD_WORKER_STATE = ("_accepting", "pending_conns", "poller", "nr_conns",
                       "worker_connections", "method_queue")
CONNECTION_STATE = ("parser", "sock", "initialized", "data_ready", "timeout")
UNREADER_STATE = ("buf",)
UTIL_FUNCTIONS = ("write_error", "write_nonblock")


def missing_gunicorn_internals() -> list[str]:
    """The names above that the installed gunicorn lacks (an empty list when all are there)."""
    import inspect

    from gunicorn.http import unreader
    from gunicorn.workers import gthread

    missing = [f"ThreadWorker.{name}" for name in THREAD_WORKER_METHODS
               if not callable(getattr(ThreadWorker, name, None))]
    # Instance state is set in methods, not on the class: look for its assignment.
    worker_source = inspect.getsource(gthread.ThreadWorker)
    missing += [f"ThreadWorker.{name}" for name in THREAD_WORKER_STATE
                if f"self.{name} =" not in worker_source]
    connection = getattr(gthread, "TConn", None)
    connection_source = inspect.getsource(connection) if connection else ""
    missing += [f"TConn.{name}" for name in CONNECTION_STATE
                if f"self.{name} =" not in connection_source]
    unreader_source = inspect.getsource(unreader)
    missing += [f"Unreader.{name}" for name in UNREADER_STATE
                if f"self.{name} =" not in unreader_source]
    missing += [f"gunicorn.util.{name}" for name in UTIL_FUNCTIONS
                if not callable(getattr(gunicorn_util, name, None))]
    return missing


def check_gunicorn() -> None:
    """Refuse to start, in one line, on a gunicorn without what the worker builds on."""
    import gunicorn

    missing = missing_gunicorn_internals()
    if missing:
        raise UserError(
            f"gunicorn {gunicorn.__version__} lacks {', '.join(missing)}, which serve's worker "
            f"uses (tested with gunicorn {GUNICORN_TESTED}); install the gunicorn that "
            "requirements.txt pins")
    if not gunicorn.__version__.startswith(GUNICORN_TESTED + "."):
        log.warning("gunicorn %s: serve's worker was tested with gunicorn %s",
                    gunicorn.__version__, GUNICORN_TESTED)


def write_plain_error(sock, status_int, reason, mesg):
    """gunicorn's answer to a request it cannot parse, as plain text instead of HTML.

    Every error the container gives is a short plain message: batch transform
    prints it in the job log, and callers parse no HTML.
    """
    body = f"{status_int} {reason}: {mesg or 'the request could not be read'}\n"
    encoded = body.encode("utf-8", "replace")
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(encoded)}\r\n\r\n")
    gunicorn_util.write_nonblock(sock, head.encode("latin-1") + encoded)


class WorkerLoads:
    """What each worker is serving, in memory the master shares with its workers.

    A worker's load is the requests it has in progress, then the connections it
    holds (kept-alive ones included), packed in one aligned 4-byte integer so
    that a read never sees half a write and packed loads compare in that order.
    The master gives a worker a slot just before forking it and frees the slot
    when the worker exits; the worker writes its own load there and reads the
    others'.
    """

    FREE = -1
    _CONNECTIONS = 1 << 16

    def __init__(self, slots: int):
        # An anonymous mapping is MAP_SHARED: every worker forked later writes the same pages.
        self._memory = mmap.mmap(-1, 4 * max(1, slots))
        self._loads = memoryview(self._memory).cast("i")
        for slot in range(len(self._loads)):
            self._loads[slot] = self.FREE

    @classmethod
    def load(cls, requests: int, connections: int) -> int:
        return min(requests, 0x7FFE) * cls._CONNECTIONS + min(connections, cls._CONNECTIONS - 1)

    def claim(self) -> int | None:
        """A free slot, now at load 0 (None when every slot is taken: more workers than
        configured, after a TTIN signal; such a worker spreads by the handicap alone)."""
        for slot in range(len(self._loads)):
            if self._loads[slot] == self.FREE:
                self._loads[slot] = 0
                return slot
        return None

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self._loads[slot] = self.FREE

    def publish(self, slot: int, requests: int, connections: int) -> None:
        self._loads[slot] = self.load(requests, connections)

    def lightest_elsewhere(self, slot: int) -> int | None:
        """The lowest load of another live worker (None when there is none)."""
        others = [load for index, load in enumerate(self._loads)
                  if index != slot and load != self.FREE]
        return min(others, default=None)


class SageMakerWorker(ThreadWorker):
    """A threaded worker whose health checks never wait behind invocations."""

    def init_process(self):
        # Malformed requests (bad request line, oversized headers) are answered
        # by gunicorn before the app sees them.
        gunicorn_util.write_error = write_plain_error
        self.health_pool = futures.ThreadPoolExecutor(HEALTH_THREADS,
                                                      thread_name_prefix="health")
        self._unclaimed_since = None
        # Requests handed to a thread (pings included) whose answer is not yet written:
        # counted up in the loop's thread, down in the request threads.
        self.requests_in_progress = 0
        self._load_lock = threading.Lock()
        super().init_process()

    # -- spreading connections ---------------------------------------------------
    # Set by the master before the fork (see server.fork_hooks).
    worker_loads: WorkerLoads | None = None
    load_slot: int | None = None

    def accept(self, listener):
        # Every worker listening is woken for a new connection (level-triggered epoll).
        if self._defers():
            # Left to a less loaded worker.  Not listening meanwhile, or each turn of the
            # loop would wake for it again; _accept_unclaimed looks at it again.
            if self._unclaimed_since is None:
                self._unclaimed_since = time.monotonic()
            super().set_accept_enabled(False)
            return
        self._take(listener)

    def _take(self, listener):
        super().accept(listener)  # another worker may have taken it first: accept() allows it
        self._publish()

    def handle(self, conn):
        try:
            return super().handle(conn)
        finally:
            # Here, in the request's thread, as soon as the answer is written: a client
            # that opens a new connection for its next request must find this worker
            # free, not waiting for its loop to see the request done.
            with self._load_lock:
                self.requests_in_progress -= 1
            self._publish()

    def _publish(self):
        if self.worker_loads is not None and self.load_slot is not None:
            self.worker_loads.publish(self.load_slot, self.requests_in_progress, self.nr_conns)

    def _defers(self) -> bool:
        """Whether a new connection is left to other workers first: one of them has fewer
        requests in progress, or as many and fewer connections, or (while this one is
        predicting) the same.

        Connections alone would not do: a client that opens one for each request
        leaves the last one kept alive until it closes, and the worker that just
        answered would look as loaded as the one still predicting.
        """
        if self.cfg.workers < 2 or self.nr_conns == 0:
            return False  # nobody to leave it to / idle: take it
        if self.worker_loads is None or self.load_slot is None:
            return True
        lightest = self.worker_loads.lightest_elsewhere(self.load_slot)
        if lightest is None:
            return False
        mine = WorkerLoads.load(self.requests_in_progress, self.nr_conns)
        return lightest < mine or (lightest == mine and self.requests_in_progress > 0)

    def set_accept_enabled(self, enabled):
        if enabled and self._unclaimed_since is not None:
            return  # a connection left to another worker still waits: _accept_unclaimed
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        self._publish()  # connections gunicorn closed in the last turn (kept-alive, timed out)
        if self._unclaimed_since is None:
            return super().wait_for_and_dispatch_events(timeout)
        super().wait_for_and_dispatch_events(min(timeout, LOADS_RECHECK))
        self._accept_unclaimed()

    def _accept_unclaimed(self):
        """Look again at the connections left to less loaded workers: listen again once
        they are taken; take one when this worker has become the least loaded, or when
        they have waited ACCEPT_HANDICAP seconds (the others are busy too)."""
        try:
            waiting = select.select(self.sockets, [], [], 0)[0]
        except (OSError, ValueError):
            waiting = []
        if waiting and self.alive:
            if not self._defers() or \
                    time.monotonic() - self._unclaimed_since >= ACCEPT_HANDICAP:
                # The clock is not restarted while some still wait, so a burst (a client
                # opening its pool) is taken one per turn, not one per ACCEPT_HANDICAP.
                self._take(waiting[0])
            return
        self._unclaimed_since = None
        if self.alive and self.nr_conns < self.worker_connections:
            super().set_accept_enabled(True)

    def enqueue_req(self, conn):
        head = self._peek(conn)
        if head is None:
            # A new connection whose request has not arrived yet: wait for it on
            # the poller (as gunicorn does for slow clients) rather than in a
            # request thread, so it can be routed once it is readable.
            self._wait_for_request(conn)
            return
        with self._load_lock:
            self.requests_in_progress += 1  # until handle() has answered
        if head.startswith(PING):
            future = self.health_pool.submit(self.handle, conn)
            future.add_done_callback(
                lambda done: self.method_queue.defer(self.finish_request, conn, done))
            return
        super().enqueue_req(conn)

    @staticmethod
    def _peek(conn) -> bytes | None:
        """The first bytes of the next request, or None when none are there yet."""
        parser = conn.parser
        if parser is not None:
            buffered = parser.unreader.buf.getvalue()
            if buffered:
                return buffered[:16]
        try:
            head = conn.sock.recv(16, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return None if not (conn.initialized or conn.data_ready) else b""
        except OSError:
            return b""  # let the normal path deal with a broken socket
        return head

    def _wait_for_request(self, conn):
        conn.sock.setblocking(False)
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ,
                             partial(self.on_pending_socket_readable, conn))

    def handle_quit(self, sig, frame):
        self.health_pool.shutdown(wait=False)
        super().handle_quit(sig, frame)


