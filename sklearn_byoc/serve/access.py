"""What the endpoint's log says of each request.

SageMaker sends ``GET /ping`` every few seconds: a health check that passes
leaves no line.  Every other request leaves one access line, at INFO for a
success, with its status, bytes, rows and the time spent decoding, predicting
and encoding (and on a multi-model endpoint the model's name).  A caller's
error (4xx) logs its reason at WARNING, without the request's values (a cell
may be personal data) and at most :data:`REASONS_PER_WINDOW` times a
:data:`WINDOW_SECONDS` per worker, so a client stuck in a loop cannot flood
the log; a server error (5xx) logs at ERROR, its traceback beside it.

Each line logged while a request runs carries its id: the
``X-Amzn-SageMaker-Inference-Id`` the caller gave, else one the container makes.
"""
from __future__ import annotations

import contextvars
import logging
import threading
import time

log = logging.getLogger("serve.access")

REASONS_PER_WINDOW = 10
WINDOW_SECONDS = 60.0

current_request: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "current_request", default=None)


class RequestIdFilter(logging.Filter):
    """Puts the running request's id on every record logged while it runs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = current_request.get()
        return True


def install_request_ids() -> None:
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RequestIdFilter) for f in handler.filters):
            handler.addFilter(RequestIdFilter())


class ReasonLimiter:
    """At most ``limit`` reasons per ``window`` seconds; counts the ones held back."""

    def __init__(self, limit: int = REASONS_PER_WINDOW, window: float = WINDOW_SECONDS,
                 clock=time.monotonic):
        self.limit, self.window, self.clock = limit, window, clock
        self.started = clock()
        self.used = 0
        self.held = 0
        self._lock = threading.Lock()

    def admit(self) -> tuple[bool, int]:
        """(whether this reason may be logged, how many were held back before it)."""
        with self._lock:
            now = self.clock()
            if now - self.started >= self.window:
                self.started, self.used = now, 0
            if self.used < self.limit:
                self.used += 1
                held, self.held = self.held, 0
                return True, held
            self.held += 1
            return False, 0


limiter = ReasonLimiter()


def log_request(method: str, path: str, status: int, size: int | None, seconds: float, *,
                rows: int | None = None, timings: dict | None = None, model: str | None = None,
                reason: str | None = None) -> None:
    """The one access line of a request."""
    if path == "/ping" and status == 200:
        return
    fields = {"method": method, "path": path, "status": status, "bytes": size,
              "duration_ms": round(seconds * 1000, 2), "rows": rows, "model": model}
    for layer, spent in (timings or {}).items():
        fields[f"{layer}_ms"] = round(spent * 1000, 3)
    text = f"{method} {path} {status} {size if size is not None else '-'} B"
    if rows is not None:
        text += f" {rows} rows"
    text += f" {fields['duration_ms']:.1f} ms"
    if timings:
        text += " (" + ", ".join(f"{layer} {spent * 1000:.2f}" for layer, spent in
                                 timings.items()) + ")"
    if model:
        text += f" model={model}"
    level = logging.INFO
    if status >= 500:
        level = logging.ERROR
    elif status >= 400 and reason:
        admitted, held = limiter.admit()
        if admitted:
            level = logging.WARNING
            fields["reason"] = reason
            text += f": {reason}"
            if held:
                fields["reasons_not_logged"] = held
                text += f" ({held} more caller errors not logged since the last)"
    if not log.isEnabledFor(level):
        return
    # makeRecord + handle: the same record without logging's walk up the stack to find
    # the caller (always this function), a third of the line's cost on every request.
    log.handle(log.makeRecord(log.name, level, __file__, 0, "%s", (text,), None,
                              func="log_request", extra=fields))
