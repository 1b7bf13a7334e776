"""gunicorn, configured for SageMaker hosting.

The app (model included) is built once in the master and inherited by every
worker at fork, so workers start at once and share the model's memory pages.
Threaded workers keep ``/ping`` answering while a long request runs.
"""
from __future__ import annotations

import logging

from gunicorn.app.base import BaseApplication

from serve.config import KEEPALIVE_SECONDS, ServerConfig

log = logging.getLogger("serve")

# SageMaker sends SIGKILL 30 s after SIGTERM: finish in-flight requests before.
GRACEFUL_TIMEOUT = 25


def gunicorn_options(config: ServerConfig) -> dict:
    return {
        "bind": [f"{config.host}:{config.port}"],
        "workers": config.workers,
        "worker_class": "gthread",
        "threads": config.threads,
        "timeout": config.timeout,
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
