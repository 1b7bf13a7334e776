"""Errors a request can cause, each with the HTTP status it answers with.

The message, for the caller, says what was wrong and how to fix it, quoting
the request's own values where that helps.  The log gets :meth:`log_reason`
instead: the kind of problem and where (row, feature), never a value, since a
cell may be personal data.
"""
from __future__ import annotations

from sklearn_byoc.common.errors import UserError


class RequestError(UserError):
    """The caller's request is wrong; the message says how (answered as a 4xx)."""

    status = 400
    default_kind = "bad request"

    def __init__(self, message: str, *, status: int | None = None, kind: str | None = None,
                 row: int | None = None, feature: str | None = None):
        super().__init__(message, status=status)
        self.kind = kind
        self.row = row
        self.feature = feature

    def log_reason(self) -> str:
        """The problem without the request's values."""
        reason = self.kind or self.default_kind
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.feature is not None:
            where.append(f"feature {self.feature!r}")
        return reason + (f" ({', '.join(where)})" if where else "")


class UnsupportedContentType(RequestError):
    status = 415
    default_kind = "unsupported Content-Type"


class NotAcceptable(RequestError):
    status = 406
    default_kind = "unsupported Accept"
