"""gunicorn, configured for SageMaker hosting.

The app (model included) is built once in the master and inherited by every
worker at fork, so workers start at once and share the model's memory pages.
Threaded workers keep ``/ping`` answering while a long request runs.
"""
from __future__ import annotations

import logging
import os
import threading
import time

from gunicorn.app.base import BaseApplication

from serve.config import KEEPALIVE_SECONDS, ServerConfig

log = logging.getLogger("serve")

# SageMaker sends SIGKILL 30 s after SIGTERM: finish in-flight requests before.
GRACEFUL_TIMEOUT = 25


class RequestWatchdog:
    """Bounds every request by SAGEMAKER_MODEL_SERVER_TIMEOUT in threaded workers.

    gunicorn's own timeout only notices a worker whose main loop stalls; with
    threads the loop keeps running while one request hangs forever.  A
    prediction cannot be interrupted from outside, so a request past its
    time ends its worker: the caller's connection closes with an error
    instead of hanging, and the master starts a fresh worker at once.
    """

    def __init__(self, timeout: float):
        self.timeout = timeout
        self.running: dict[int, tuple[float, str]] = {}

    def started(self, worker, req):
        self.running[threading.get_ident()] = (time.monotonic(), f"{req.method} {req.path}")

    def finished(self, worker, req, environ, resp):
        self.running.pop(threading.get_ident(), None)

    def watch(self, worker):
        def loop():
            while True:
                time.sleep(min(1.0, self.timeout / 4))
                now = time.monotonic()
                for started, what in list(self.running.values()):
                    if now - started > self.timeout:
                        worker.log.error(
                            "%s has run %.0f s, past SAGEMAKER_MODEL_SERVER_TIMEOUT=%s s; "
                            "restarting worker %d", what, now - started, self.timeout,
                            os.getpid())
                        os._exit(1)

        threading.Thread(target=loop, name="request-watchdog", daemon=True).start()


def gunicorn_options(config: ServerConfig) -> dict:
    watchdog = RequestWatchdog(config.timeout)
    return {
        "bind": [f"{config.host}:{config.port}"],
        "workers": config.workers,
        "worker_class": "gthread",
        "threads": config.threads,
        # The heartbeat timeout; requests are bounded by the watchdog.
        "timeout": config.timeout + 30,
        "pre_request": watchdog.started,
        "post_request": watchdog.finished,
        "post_worker_init": watchdog.watch,
        "graceful_timeout": GRACEFUL_TIMEOUT,
        "keepalive": KEEPALIVE_SECONDS,
        "accesslog": "-",
        "errorlog": "-",
        "loglevel": "info",
        "access_log_format": '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
        "preload_app": True,
        # Nothing may be written outside /tmp (serverless runs as non-root).
        "control_socket_disable": True,
        "worker_tmp_dir": "/tmp",
        "proc_name": "serve",
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
             "max payload %d MB", config.host, config.port, config.workers, config.threads,
             config.timeout, config.max_payload_mb)
    Server(app, gunicorn_options(config)).run()
    return 0
