"""What serve's worker uses of gunicorn beyond its documented settings, held to gunicorn.

These fail when a gunicorn upgrade drops a name the worker builds on, before any
server runs.
"""
from __future__ import annotations

import inspect
import re

import gunicorn
import pytest

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import worker


def test_every_listed_name_is_in_the_installed_gunicorn():
    assert worker.missing_gunicorn_internals() == []


def test_the_installed_gunicorn_is_the_tested_line():
    assert gunicorn.__version__.startswith(worker.GUNICORN_TESTED + ".")


def test_every_internal_the_worker_uses_is_listed():
    source = inspect.getsource(worker.SageMakerWorker)
    listed = set(worker.THREAD_WORKER_METHODS) | set(worker.THREAD_WORKER_STATE)
    used = set(re.findall(r"\bself\.(\w+)", source)) | \
        set(re.findall(r"\bsuper\(\)\.(\w+)", source))
    own = {name for name, _ in inspect.getmembers(worker.SageMakerWorker)
           if name in vars(worker.SageMakerWorker)}
    own |= {"health_pool", "_unclaimed_since", "requests_in_progress",
            "_load_lock"}  # set by the worker itself
    public = {"cfg", "sockets", "alive", "log", "init_process"}  # gunicorn's Worker API
    assert used - own - public <= listed, used - own - public - listed
    connection = set(re.findall(r"\bconn\.(\w+)", inspect.getsource(worker.SageMakerWorker)))
    assert connection <= set(worker.CONNECTION_STATE), connection


def test_serve_refuses_to_start_in_one_line_when_a_name_is_gone(monkeypatch):
    monkeypatch.setattr(worker, "THREAD_WORKER_METHODS",
                        worker.THREAD_WORKER_METHODS + ("no_such_method",))
    with pytest.raises(UserError) as error:
        worker.check_gunicorn()
    message = str(error.value)
    assert "ThreadWorker.no_such_method" in message and gunicorn.__version__ in message
    assert "requirements.txt" in message and "\n" not in message
