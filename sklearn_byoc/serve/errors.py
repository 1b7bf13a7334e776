"""Errors a request can cause, each with the HTTP status it answers with."""
from __future__ import annotations

from sklearn_byoc.common.errors import UserError


class RequestError(UserError):
    """The caller's request is wrong; the message says how (answered as a 4xx)."""

    status = 400


class UnsupportedContentType(RequestError):
    status = 415


class NotAcceptable(RequestError):
    status = 406

