"""The Flask app: routes that hand a request to :func:`invocation.invoke` and back.

Every answer that is not a prediction is a short plain-text message that
says what was wrong and how to fix it: batch transform shows it in the job
log, and a real-time caller sees it in the exception the SDK raises.
"""
from __future__ import annotations

import json
import logging
import time
from functools import partial

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import access
from sklearn_byoc.serve.config import ServerConfig
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.invocation import Body, ModelService, invoke
from sklearn_byoc.serve.media import (INFERENCE_ID_KEY, RequestContext, announced_length,
                                      new_request_id)
from sklearn_byoc.serve.user_code import HandlerError

log = logging.getLogger("serve")

try:  # the errors gunicorn raises while the app reads a request body
    from gunicorn.http.errors import NoMoreData, ParseException

    UnreadableBody: tuple = (ParseException, NoMoreData)
except ImportError:  # pragma: no cover - the app runs without gunicorn in unit tests
    UnreadableBody = ()


def plain(message: str, status: int) -> Response:
    return Response(message.rstrip() + "\n", status=status, mimetype="text/plain")


def whole_body(length: int | None) -> bytes:
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if length is None and limit is not None and len(data) >= limit:
        # werkzeug stops reading a chunked body at the limit without an error:
        # a byte left behind it means the body was larger, not that it ended there.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


# What the entry of a request (RequestLog) read of it, and what its handling tells its
# access line, kept in the WSGI environ.
NOTES = "sklearn_byoc.access"


def request_body() -> Body:
    length = request.environ[NOTES]["length"]
    return Body(partial(whole_body, length), request.stream if length else None, length or 0)


def note(**fields) -> None:
    """Adds ``answer``, ``model`` or ``reason`` to the running request's access line."""
    request.environ.setdefault(NOTES, {}).update(fields)


def request_context(config: ServerConfig) -> RequestContext:
    return RequestContext.from_environ(request.environ, default_accept=config.default_accept,
                                       default_output=config.default_output,
                                       batch=config.batch, request_id=request.environ[NOTES]["request_id"])


def answer_invocation(service: ModelService, config: ServerConfig) -> Response:
    answer = invoke(service, request_body(), request_context(config))
    note(answer=answer)
    response = Response(answer.body, status=answer.status)
    # Set as given: NumpyDeserializer compares the type exactly (no charset added).
    response.headers["Content-Type"] = answer.content_type
    return response


class RequestLog:
    """WSGI middleware around the app: each request's id, its access line, and the
    rest of a body the app left unread.

    Around the app rather than in Flask's request hooks: one call a request
    instead of three, the hooks' share of a one-row prediction.
    """

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    def __call__(self, environ, start_response):
        started = time.perf_counter()
        # The caller's X-Amzn-SageMaker-Inference-Id, else one made here.
        request_id = environ.get(INFERENCE_ID_KEY) or new_request_id()
        # Content-Length is read here, once, and passed on (request_body reads the notes).
        length = announced_length(environ.get("CONTENT_LENGTH"),
                                  environ.get("HTTP_TRANSFER_ENCODING"))
        notes = environ[NOTES] = {"request_id": request_id, "length": length}
        token = access.current_request.set(request_id)
        answered = []

        def finish(status: str, headers: list, exc_info=None):
            if not self.read_the_rest(environ, length):
                headers.append(("Connection", "close"))
            answered.append((status, headers))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, finish)
        finally:
            if answered:
                self.log(environ, notes, answered[-1], time.perf_counter() - started)
            access.current_request.reset(token)

    def read_the_rest(self, environ, length: int | None) -> bool:
        """Whether the connection may be kept alive: the body is read to its end.

        gunicorn 27's threaded worker fails the next request on a kept-alive
        connection whose last body was not read to its end (a 406 or 415 is
        answered before the body is decoded): measured, 66 of 200 requests
        alternating 406 / 200 on one connection got no answer.  A body within the
        limit is read here; any other (above the limit, chunked, cut short) ends
        with the connection closed, so the client's next request opens a new one.
        """
        chunked = bool(environ.get("HTTP_TRANSFER_ENCODING"))
        if not length:
            return not chunked
        if chunked or length > self.max_body:
            return False
        stream = environ["wsgi.input"]
        try:
            while stream.read(1 << 16):
                pass
        except Exception:  # noqa: BLE001 - the caller's body broke off
            return False
        return True

    @staticmethod
    def log(environ, notes: dict, answered: tuple, seconds: float) -> None:
        status, headers = answered
        size = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        answer = notes.get("answer")
        access.log_request(environ.get("REQUEST_METHOD", ""), environ.get("PATH_INFO", ""),
                           int(status[:3]), size, seconds,
                           rows=answer.rows if answer else None,
                           timings=answer.timings if answer else None,
                           model=notes.get("model"), reason=notes.get("reason"))


def base_app(config: ServerConfig, execution_parameters=None) -> Flask:
    """The routes every endpoint has; ``execution_parameters`` is a user's
    execution_parameters_fn, answering GET /execution-parameters in place of the built-in."""
    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_payload_bytes
    app.wsgi_app = RequestLog(app.wsgi_app, config.max_payload_bytes)

    @app.get("/ping")
    def ping():
        return Response("", status=200)

    @app.get("/execution-parameters")
    def execution_parameters_route():
        if execution_parameters is not None:
            return execution_parameters()
        return Response(json.dumps(config.execution_parameters()), status=200,
                        mimetype="application/json")

    @app.errorhandler(UserError)
    def user_error(exc: UserError):
        note(reason=exc.log_reason() if isinstance(exc, RequestError) else
             type(exc).__name__)
        return plain(str(exc), exc.status)

    @app.errorhandler(HandlerError)
    def handler_error(exc: HandlerError):
        return plain(f"the model's inference code failed: {exc}", 500)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        note(reason="body above the payload limit")
        return plain(
            f"the request body is larger than the {config.max_payload_mb} MB limit; send "
            "smaller batches, or raise the limit with SAGEMAKER_MAX_PAYLOAD_IN_MB "
            "(batch transform: MaxPayloadInMB)", 413)

    def unreadable_body(exc: Exception):
        # gunicorn reads the body as the app asks for it: a malformed chunked
        # encoding or a body cut short is the caller's error, not the model's.
        note(reason=f"unreadable body ({type(exc).__name__})")
        return plain(f"the request body cannot be read ({type(exc).__name__}: {exc}); send "
                     "a complete body with a correct Content-Length or chunked encoding", 400)

    for error in UnreadableBody:
        app.register_error_handler(error, unreadable_body)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        note(reason=f"{exc.code} {exc.name}")
        return plain(f"{exc.code} {exc.name}: {request.method} {request.path}", exc.code or 500)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("request failed")
        return plain(f"internal error while predicting ({type(exc).__name__}: {exc}); "
                     "the endpoint's log has the traceback", 500)

    return app


def create_app(service: ModelService, config: ServerConfig) -> Flask:
    """The app of a single-model endpoint or a batch transform job."""
    app = base_app(config, service.code.execution_parameters_fn)

    @app.post("/invocations")
    def invocations():
        return answer_invocation(service, config)

    return app
