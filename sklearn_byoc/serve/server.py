"""gunicorn, configured for SageMaker hosting: the application, its settings and hooks.

The app (model included) is built once in the master and inherited by every
worker at fork, so workers start at once and share the model's memory pages.
Workers are serve's own threaded workers (worker.py: health checks on threads
of their own, connections spread to the least loaded worker), and every
request is bounded by SAGEMAKER_MODEL_SERVER_TIMEOUT (see :class:`RequestWatchdog`).
"""
from __future__ import annotations

import gc
import logging
import os
import socket
import threading
import time

from gunicorn import glogging
from gunicorn.app.base import BaseApplication

from sklearn_byoc.serve.config import KEEPALIVE_SECONDS, ServerConfig
from sklearn_byoc.serve.media import announced_length
from sklearn_byoc.serve.worker import WorkerLoads

log = logging.getLogger("serve")

# SageMaker sends SIGKILL 30 s after SIGTERM: finish in-flight requests before.
GRACEFUL_TIMEOUT = 25


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


def fork_hooks(workers: int) -> dict:
    """The master's hooks around forking a worker.

    Before each fork, everything the master holds (the model, every imported
    module) is moved out of the garbage collector's reach with ``gc.freeze()``:
    a full collection in a worker walked those ~125,000 objects, measured at
    130 ms during which the worker answered nothing, and wrote to every page it
    walked, undoing the sharing of the model's memory.  Frozen, the same
    collection took 0.45 ms.  With several workers, each also gets its slot in
    one WorkerLoads.
    """
    loads = WorkerLoads(workers) if workers > 1 else None

    def pre_fork(arbiter, worker):
        gc.freeze()
        if loads is not None:
            worker.worker_loads = loads
            worker.load_slot = loads.claim()

    def child_exit(arbiter, worker):
        if loads is not None:
            loads.release(getattr(worker, "load_slot", None))

    return {"pre_fork": pre_fork, "child_exit": child_exit}


def gunicorn_options(config: ServerConfig) -> dict:
    watchdog = RequestWatchdog(config.timeout)

    def pre_request(worker, req):
        watchdog.started(worker, req)
        # Before the WSGI environ exists: gunicorn's parsed request is read here.
        value = next((v for name, v in req.headers if name == "CONTENT-LENGTH"), None)
        if (announced_length(value) or 0) > config.max_payload_bytes:
            # The app answers 413 without reading the body; closing the
            # connection afterwards spares reading (and discarding) it all
            # just to keep the connection for another request.
            req.must_close = True

    return {
        "bind": [f"{config.host}:{config.port}"],
        "workers": config.workers,
        "worker_class": "sklearn_byoc.serve.worker.SageMakerWorker",
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
