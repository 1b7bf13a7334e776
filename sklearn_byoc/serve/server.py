"""gunicorn, configured for SageMaker hosting.

The app (model included) is built once in the master and inherited by every
worker at fork, so workers start at once and share the model's memory pages.

Workers are gunicorn's threaded workers with two additions SageMaker needs:

- health checks have threads of their own.  SageMaker fails a container whose
  ``GET /ping`` takes more than 2 s, and an async-inference request may run
  for up to an hour; in a plain threaded worker a ping waits in the same
  queue as the invocations and can miss its deadline when every thread is
  busy.  Here a new request is peeked at before it is queued, and a ping goes
  to a small pool that invocations never occupy;
- connections are spread over the workers.  A threaded worker accepts every
  connection it can, so two batch-transform requests arriving together could
  land in one worker (sharing one core and one GIL) while another sat idle.
  Here each worker publishes how many connections it holds
  (:class:`ConnectionCounts`); a worker that holds some takes a new one at
  once only when no other worker holds fewer, and otherwise leaves it to them
  for ``ACCEPT_HANDICAP`` seconds (the fallback for a worker too busy to take
  what it was left);
- every request is bounded by SAGEMAKER_MODEL_SERVER_TIMEOUT (see
  :class:`RequestWatchdog`).
"""
from __future__ import annotations

import gc
import logging
import mmap
import os
import select
import selectors
import socket
import threading
import time
from concurrent import futures
from functools import partial

from gunicorn import glogging
from gunicorn import util as gunicorn_util
from gunicorn.app.base import BaseApplication
from gunicorn.workers.gthread import ThreadWorker

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve.config import KEEPALIVE_SECONDS, ServerConfig

log = logging.getLogger("serve")

# SageMaker sends SIGKILL 30 s after SIGTERM: finish in-flight requests before.
GRACEFUL_TIMEOUT = 25
HEALTH_THREADS = 2
# Seconds a busy worker leaves a new connection to a worker holding fewer before taking it
# itself.  The one holding fewer waits on the listener and is woken by the kernel as the
# connection arrives; at 20 ms an idle worker still won beside two CPU-bound processes on
# 2 cores (tests/contract/test_worker_spread.py under make test-busy BUSY=2).
ACCEPT_HANDICAP = 0.02
# How often a worker that leaves new connections to others reads the counts again: another
# worker's count is only seen once it is written, and two workers that each read the
# other's old count would both wait out the handicap.
COUNTS_RECHECK = 0.002
PING = (b"GET /ping ", b"GET /ping?", b"HEAD /ping ")


# -- what this module uses of gunicorn beyond its documented settings -----------------------
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


class ConnectionCounts:
    """How many connections each worker holds, in memory the master shares with its workers.

    The master gives a worker a slot just before forking it and frees the slot
    when the worker exits; the worker writes its own count there and reads the
    others'.  A slot is one aligned 4-byte integer, so a read never sees half a
    write.
    """

    FREE = -1

    def __init__(self, slots: int):
        # An anonymous mapping is MAP_SHARED: every worker forked later writes the same pages.
        self._memory = mmap.mmap(-1, 4 * max(1, slots))
        self._counts = memoryview(self._memory).cast("i")
        for slot in range(len(self._counts)):
            self._counts[slot] = self.FREE

    def claim(self) -> int | None:
        """A free slot, now counting 0 (None when every slot is taken: more workers than
        configured, after a TTIN signal; such a worker spreads by the handicap alone)."""
        for slot in range(len(self._counts)):
            if self._counts[slot] == self.FREE:
                self._counts[slot] = 0
                return slot
        return None

    def release(self, slot: int | None) -> None:
        if slot is not None:
            self._counts[slot] = self.FREE

    def publish(self, slot: int, count: int) -> None:
        self._counts[slot] = count

    def fewest_elsewhere(self, slot: int) -> int | None:
        """The fewest connections another live worker holds (None when there is none)."""
        others = [count for index, count in enumerate(self._counts)
                  if index != slot and count != self.FREE]
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
        super().init_process()

    # -- spreading connections ---------------------------------------------------
    # Set by the master before the fork (see fork_hooks).
    connection_counts: ConnectionCounts | None = None
    connection_slot: int | None = None

    def accept(self, listener):
        super().accept(listener)
        self._publish()

    def _publish(self):
        if self.connection_counts is not None and self.connection_slot is not None:
            self.connection_counts.publish(self.connection_slot, self.nr_conns)

    def _defers(self) -> bool:
        """Whether a new connection is left to other workers first."""
        if self.cfg.workers < 2 or self.nr_conns == 0:
            return False  # nobody to leave it to / idle: take it
        if self.connection_counts is None or self.connection_slot is None:
            return True
        fewest = self.connection_counts.fewest_elsewhere(self.connection_slot)
        return fewest is not None and fewest < self.nr_conns

    def set_accept_enabled(self, enabled):
        if enabled and self._defers():
            enabled = False  # see _accept_unclaimed
        super().set_accept_enabled(enabled)

    def wait_for_and_dispatch_events(self, timeout):
        self._publish()
        busy = self.alive and self.cfg.workers > 1 and \
            0 < self.nr_conns < self.worker_connections
        if not busy:
            self._unclaimed_since = None
            return super().wait_for_and_dispatch_events(timeout)
        defers = self._defers()
        if self._accepting == defers:
            super().set_accept_enabled(not defers)
        super().wait_for_and_dispatch_events(
            min(timeout, COUNTS_RECHECK if defers else ACCEPT_HANDICAP))
        if defers:
            self._accept_unclaimed()
        else:
            self._unclaimed_since = None

    def _accept_unclaimed(self):
        """Take a connection that no worker holding fewer has taken for ACCEPT_HANDICAP s."""
        try:
            waiting = select.select(self.sockets, [], [], 0)[0]
        except (OSError, ValueError):
            return
        now = time.monotonic()
        if not waiting:
            self._unclaimed_since = None
        elif not self._defers():
            # The others' counts have changed since the turn began: none holds fewer now.
            self._unclaimed_since = None
            for listener in waiting:
                self.accept(listener)
        elif self._unclaimed_since is None:
            self._unclaimed_since = now
        elif now - self._unclaimed_since >= ACCEPT_HANDICAP:
            # Connections have waited that long: the workers left them are busy too.  The
            # clock is not restarted while some still wait, so a burst is taken one per
            # turn of each deferring worker's loop, not one per ACCEPT_HANDICAP.
            for listener in waiting:
                self.accept(listener)  # another worker may still win: accept() allows it

    def enqueue_req(self, conn):
        head = self._peek(conn)
        if head is None:
            # A new connection whose request has not arrived yet: wait for it on
            # the poller (as gunicorn does for slow clients) rather than in a
            # request thread, so it can be routed once it is readable.
            self._wait_for_request(conn)
            return
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


class ServeLogger(glogging.Logger):
    """gunicorn's own lines through the stage's handler (one format, one level).

    Requests are logged by the app (serve/access.py), not by gunicorn: a health
    check that passes leaves no line.
    """

    def setup(self, cfg):
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            logger.handlers.clear()
            logger.propagate = True
            logger.setLevel(logging.NOTSET)


class RequestWatchdog:
    """Bounds every request by SAGEMAKER_MODEL_SERVER_TIMEOUT in threaded workers.

    gunicorn's own timeout only notices a worker whose main loop stalls; with
    threads the loop keeps running while one request hangs forever.  A
    prediction cannot be interrupted from outside, so a request past its
    time has its connection closed (the caller gets an error, not a hang),
    the worker stops taking requests, lets the others it is serving finish,
    and exits; the master starts a fresh worker in its place.
    """

    def __init__(self, timeout: float, grace: float = GRACEFUL_TIMEOUT):
        self.timeout = timeout
        self.grace = grace
        self.running: dict[int, tuple[float, str, object]] = {}

    def started(self, worker, req):
        sock = getattr(getattr(req, "unreader", None), "sock", None)
        self.running[threading.get_ident()] = (time.monotonic(), f"{req.method} {req.path}",
                                               sock)

    def finished(self, worker, req, environ, resp):
        self.running.pop(threading.get_ident(), None)

    def watch(self, worker):
        threading.Thread(target=self._loop, args=(worker,), name="request-watchdog",
                         daemon=True).start()

    def _loop(self, worker):
        while True:
            time.sleep(min(1.0, self.timeout / 4))
            now = time.monotonic()
            stuck = {ident: entry for ident, entry in list(self.running.items())
                     if now - entry[0] > self.timeout}
            if stuck:
                self._retire(worker, stuck, now)

    def _retire(self, worker, stuck, now):
        for started, what, sock in stuck.values():
            worker.log.error("%s has run %.0f s, past SAGEMAKER_MODEL_SERVER_TIMEOUT=%s s; "
                             "closing its connection and replacing worker %d", what,
                             now - started, self.timeout, os.getpid())
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        # Stop taking requests; the arbiter starts a replacement when we exit.
        worker.alive = False
        worker.method_queue.defer(lambda: None)
        deadline = time.monotonic() + self.grace
        while time.monotonic() < deadline:
            if not any(ident not in stuck for ident in list(self.running)):
                break
            time.sleep(0.05)
        # The stuck thread cannot be joined, so a normal exit would hang on it.
        os._exit(1)


def announced_length(req) -> int:
    for name, value in req.headers:
        if name == "CONTENT-LENGTH":
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


def fork_hooks(workers: int) -> dict:
    """The master's hooks around forking a worker.

    Before each fork, everything the master holds (the model, every imported
    module) is moved out of the garbage collector's reach with ``gc.freeze()``:
    a full collection in a worker walked those ~125,000 objects, measured at
    130 ms during which the worker answered nothing, and wrote to every page it
    walked, undoing the sharing of the model's memory.  Frozen, the same
    collection took 0.45 ms.  With several workers, each also gets its slot in
    one ConnectionCounts.
    """
    counts = ConnectionCounts(workers) if workers > 1 else None

    def pre_fork(arbiter, worker):
        gc.freeze()
        if counts is not None:
            worker.connection_counts = counts
            worker.connection_slot = counts.claim()

    def child_exit(arbiter, worker):
        if counts is not None:
            counts.release(getattr(worker, "connection_slot", None))

    return {"pre_fork": pre_fork, "child_exit": child_exit}


def gunicorn_options(config: ServerConfig) -> dict:
    watchdog = RequestWatchdog(config.timeout)

    def pre_request(worker, req):
        watchdog.started(worker, req)
        if announced_length(req) > config.max_payload_bytes:
            # The app answers 413 without reading the body; closing the
            # connection afterwards spares reading (and discarding) it all
            # just to keep the connection for another request.
            req.must_close = True

    return {
        "bind": [f"{config.host}:{config.port}"],
        "workers": config.workers,
        "worker_class": "sklearn_byoc.serve.server.SageMakerWorker",
        "threads": config.threads,
        # The heartbeat timeout; requests are bounded by the watchdog.
        "timeout": config.timeout + 30,
        "pre_request": pre_request,
        "post_request": watchdog.finished,
        "post_worker_init": watchdog.watch,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE_SECONDS,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": logging.getLevelName(config.log_level).lower(),
        "logger_class": "sklearn_byoc.serve.server.ServeLogger",
        "preload_app": True,
        # Nothing may be written outside /tmp (serverless runs as non-root).
        "control_socket_disable": True,
        "worker_tmp_dir": "/tmp",
        "proc_name": "serve",
        **fork_hooks(config.workers),
    }


class Server(BaseApplication):
    def __init__(self, app, options: dict):
        self.application = app
        self.options = options
        super().__init__()

    def load_config(self):
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        return self.application


def run(app, config: ServerConfig) -> int:
    log.info("listening on %s:%d with %d worker(s) x %d thread(s), timeout %d s, "
             "max payload %d MB%s", config.host, config.port, config.workers, config.threads,
             config.timeout, config.max_payload_mb,
             " (batch transform)" if config.batch else "")
    Server(app, gunicorn_options(config)).run()
    return 0
