"""The Flask app: routes that hand a request to :func:`invocation.invoke` and back.

Every answer that is not a prediction is a short plain-text message that
says what was wrong and how to fix it: batch transform shows it in the job
log, and a real-time caller sees it in the exception the SDK raises.
"""
from __future__ import annotations

import json
import logging
import time
import uuid

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import access
from sklearn_byoc.serve.config import ServerConfig
from sklearn_byoc.serve.errors import RequestError
from sklearn_byoc.serve.invocation import Body, ModelService, invoke
from sklearn_byoc.serve.media import INFERENCE_ID, RequestContext
from sklearn_byoc.serve.user_code import HandlerError

log = logging.getLogger("serve")

try:  # the errors gunicorn raises while the app reads a request body
    from gunicorn.http.errors import NoMoreData, ParseException

    UnreadableBody: tuple = (ParseException, NoMoreData)
except ImportError:  # pragma: no cover - the app runs without gunicorn in unit tests
    UnreadableBody = ()


def plain(message: str, status: int) -> Response:
    return Response(message.rstrip() + "\n", status=status, mimetype="text/plain")


def whole_body() -> bytes:
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # werkzeug stops reading a chunked body at the limit without an error:
        # a byte left behind it means the body was larger, not that it ended there.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def request_body() -> Body:
    length = request.content_length or 0
    return Body(whole_body, request.stream if length else None, length)


def request_context(config: ServerConfig) -> RequestContext:
    return RequestContext.from_headers(request.headers, default_accept=config.default_accept,
                                       default_output=config.default_output,
                                       request_id=g.request_id)


def answer_invocation(service: ModelService, config: ServerConfig) -> Response:
    answer = invoke(service, request_body(), request_context(config))
    g.answer = answer
    response = Response(answer.body, status=answer.status)
    # Set as given: NumpyDeserializer compares the type exactly (no charset added).
    response.headers["Content-Type"] = answer.content_type
    return response


def base_app(config: ServerConfig, execution_parameters=None) -> Flask:
    """The routes every endpoint has; ``execution_parameters`` is a user's
    execution_parameters_fn, answering GET /execution-parameters in place of the built-in."""
    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_payload_bytes

    @app.before_request
    def start_request():
        g.started = time.perf_counter()
        g.request_id = request.headers.get(INFERENCE_ID) or uuid.uuid4().hex[:16]
        g.id_token = access.current_request.set(g.request_id)

    @app.after_request
    def log_request(response: Response):
        answer = g.get("answer")
        access.log_request(request.method, request.path, response.status_code,
                           response.content_length, time.perf_counter() - g.started,
                           rows=answer.rows if answer else None,
                           timings=answer.timings if answer else None,
                           model=g.get("model"), reason=g.get("reason"))
        return response

    @app.after_request
    def read_the_rest(response: Response):
        # gunicorn 27's threaded worker fails the next request on a kept-alive
        # connection whose last body was not read to its end (a 406 or 415 is
        # answered before the body is decoded): measured, 66 of 200 requests
        # alternating 406 / 200 on one connection got no answer.  A body within the
        # limit is read here; any other (above the limit, chunked, cut short)
        # ends with the connection closed, so the client's next request opens a new one.
        length = request.content_length
        if request.method in ("GET", "HEAD") and not length:
            return response
        try:
            if length and length <= config.max_payload_bytes and \
                    not request.headers.get("Transfer-Encoding"):
                stream = request.stream
                while stream.read(1 << 16):
                    pass
                return response
        except Exception:  # noqa: BLE001 - the caller's body broke off: close below
            pass
        if length or request.headers.get("Transfer-Encoding"):
            response.headers["Connection"] = "close"
        return response

    @app.teardown_request
    def end_request(_exc):
        token = g.pop("id_token", None)
        if token is not None:
            access.current_request.reset(token)

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
        g.reason = exc.log_reason() if isinstance(exc, RequestError) else \
            f"{type(exc).__name__}"
        return plain(str(exc), exc.status)

    @app.errorhandler(HandlerError)
    def handler_error(exc: HandlerError):
        return plain(f"the model's inference code failed: {exc}", 500)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        g.reason = "body above the payload limit"
        return plain(
            f"the request body is larger than the {config.max_payload_mb} MB limit; send "
            "smaller batches, or raise the limit with SAGEMAKER_MAX_PAYLOAD_IN_MB "
            "(batch transform: MaxPayloadInMB)", 413)

    def unreadable_body(exc: Exception):
        # gunicorn reads the body as the app asks for it: a malformed chunked
        # encoding or a body cut short is the caller's error, not the model's.
        g.reason = f"unreadable body ({type(exc).__name__})"
        return plain(f"the request body cannot be read ({type(exc).__name__}: {exc}); send "
                     "a complete body with a correct Content-Length or chunked encoding", 400)

    for error in UnreadableBody:
        app.register_error_handler(error, unreadable_body)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        g.reason = f"{exc.code} {exc.name}"
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
