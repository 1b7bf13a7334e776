"""The Flask app: routes that dispatch to the codecs and the model.

Every answer that is not a prediction is a short plain-text message that
says what was wrong and how to fix it: batch transform shows it in the job
log, and a real-time caller sees it in the exception the SDK raises.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import codecs
from sklearn_byoc.serve.config import ServerConfig
from sklearn_byoc.serve.handlers import HandlerError, ModelService
from sklearn_byoc.serve.multi_model import PAGE_SIZE

log = logging.getLogger("serve")

try:  # the errors gunicorn raises while the app reads a request body
    from gunicorn.http.errors import NoMoreData, ParseException

    UnreadableBody: tuple = (ParseException, NoMoreData)
except ImportError:  # pragma: no cover - the app runs without gunicorn in unit tests
    UnreadableBody = ()

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"
TARGET_MODEL = "X-Amzn-SageMaker-Target-Model"
# CSV bodies larger than this are parsed and predicted block by block, as
# they are read, so a 100 MB batch payload never sits in memory several times.
BLOCK_BYTES = 4 * 1024 * 1024


def plain(message: str, status: int) -> Response:
    return Response(message.rstrip() + "\n", status=status, mimetype="text/plain")


def output_choice(custom_attributes: str | None, default: str) -> str:
    """``output=probabilities`` in the custom attributes header picks the answer's content."""
    if not custom_attributes:
        return default
    for part in custom_attributes.replace(";", ",").split(","):
        key, _, value = part.partition("=")
        if key.strip().lower() == "output":
            choice = value.strip().lower()
            if choice not in codecs.OUTPUTS:
                raise UserError(f"custom attribute output={value.strip()!r} must be one of "
                                f"{', '.join(codecs.OUTPUTS)}")
            return choice
    return default


def invoke(service: ModelService, config: ServerConfig, body, content_type: str | None,
           accept: str | None, custom_attributes: str | None) -> tuple[bytes, str]:
    """One invocation, without Flask: (answer body, answer content type).

    ``body`` is the request body, or a callable that, given the request's
    media type, returns (block, first row) pairs for a body read block by block.
    """
    output = output_choice(custom_attributes, config.default_output)
    if not service.is_builtin:
        data = b"".join(b for b, _ in body(None)) if callable(body) else body
        return service.invoke_custom(data, content_type, accept, output)
    predictor = service.predictor
    media = codecs.content_type(content_type)
    answer_type = codecs.accept_type(accept, config.default_accept or media.kind)
    if output != "label" and not predictor.has_probabilities:
        raise UserError(f"output={output} needs class probabilities, which this "
                        f"{predictor.metadata.task} model does not give; use output=label")
    blocks = body(media) if callable(body) else [(body, 1)]
    parts, mapping, header_rows = [], None, 0
    for block, row in blocks:
        # A header row in the first block names the columns of every block,
        # and is not a data row.
        records = codecs.decode(block, media, predictor.schema, first_row=row - header_rows,
                                mapping=mapping)
        if row == 1 and records.mapping is not None:
            mapping, header_rows = records.mapping, 1
        parts.append(predictor.predict(records, probabilities=output != "label"))
    if not parts:
        raise UserError("the request body is empty; send at least one row")
    return codecs.encode(codecs.Prediction.concat(parts), answer_type, output), answer_type


def request_body():
    """The body at once, or block by block for a large CSV body."""
    length = request.content_length or 0

    def blocks(media):
        if media is not None and media.kind == codecs.CSV \
                and media.charset in ("utf-8", "utf8") and length > BLOCK_BYTES:
            return codecs.csv_blocks(request.stream, length, BLOCK_BYTES)
        return [(whole_body(), 1)]

    return blocks


def whole_body() -> bytes:
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        # werkzeug stops reading a chunked body at the limit without an error:
        # a byte left behind it means the body was larger, not that it ended there.
        if request.environ["wsgi.input"].read(1):
            raise RequestEntityTooLarge()
    return data


def answer_invocation(service: ModelService, config: ServerConfig) -> Response:
    answer, answer_type = invoke(
        service, config, request_body(), request.headers.get("Content-Type"),
        request.headers.get("Accept"), request.headers.get(CUSTOM_ATTRIBUTES),
    )
    return Response(answer, status=200, mimetype=answer_type)


def _base_app(config: ServerConfig) -> Flask:
    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_payload_bytes

    @app.get("/ping")
    def ping():
        return Response("", status=200)

    @app.get("/execution-parameters")
    def execution_parameters():
        return Response(json.dumps(config.execution_parameters()), status=200,
                        mimetype="application/json")

    @app.errorhandler(UserError)
    def user_error(exc: UserError):
        return plain(str(exc), exc.status)

    @app.errorhandler(HandlerError)
    def handler_error(exc: HandlerError):
        return plain(f"the model's inference code failed: {exc}", 500)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return plain(
            f"the request body is larger than the {config.max_payload_mb} MB limit; send "
            "smaller batches, or raise the limit with SAGEMAKER_MAX_PAYLOAD_IN_MB "
            "(batch transform: MaxPayloadInMB)", 413)

    def unreadable_body(exc: Exception):
        # gunicorn reads the body as the app asks for it: a malformed chunked
        # encoding or a body cut short is the caller's error, not the model's.
        return plain(f"the request body cannot be read ({type(exc).__name__}: {exc}); send "
                     "a complete body with a correct Content-Length or chunked encoding", 400)

    for error in UnreadableBody:
        app.register_error_handler(error, unreadable_body)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return plain(f"{exc.code} {exc.name}: {request.method} {request.path}", exc.code or 500)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("request failed")
        return plain(f"internal error while predicting ({type(exc).__name__}: {exc}); "
                     "the endpoint's log has the traceback", 500)

    return app


def create_app(service: ModelService, config: ServerConfig) -> Flask:
    """The app of a single-model endpoint or a batch transform job."""
    app = _base_app(config)

    @app.post("/invocations")
    def invocations():
        return answer_invocation(service, config)

    return app


def create_multi_model_app(host, config: ServerConfig) -> Flask:
    """The app of a multi-model endpoint (see serve/multi_model.py)."""
    app = _base_app(config)

    @app.post("/models")
    def load_model():
        try:
            payload = json.loads(request.get_data(cache=False) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            raise UserError('send a JSON body {"model_name": ..., "url": ...}') from None
        if not isinstance(payload, dict) or not payload.get("model_name") \
                or not payload.get("url"):
            raise UserError('send a JSON body {"model_name": ..., "url": ...}')
        entry, evicted = host.load(str(payload["model_name"]), str(payload["url"]))
        body = {"status": f"model {entry.name!r} loaded", "evicted": evicted}
        return Response(json.dumps(body), status=200, mimetype="application/json")

    @app.get("/models")
    def list_models():
        try:
            size = int(request.args.get("page_size", "") or PAGE_SIZE)
        except ValueError:
            raise UserError("page_size must be a whole number") from None
        entries, token = host.registry.page(request.args.get("next_page_token"),
                                            max(1, min(size, 1000)))
        body = {"models": [{"modelName": e.name, "modelUrl": e.url} for e in entries]}
        if token:
            body["nextPageToken"] = token
        return Response(json.dumps(body), status=200, mimetype="application/json")

    @app.get("/models/<name>")
    def get_model(name):
        entry = host.registry.get(name)
        if entry is None:
            return plain(f"model {name!r} is not loaded", 404)
        return Response(json.dumps({"modelName": entry.name, "modelUrl": entry.url}),
                        status=200, mimetype="application/json")

    @app.delete("/models/<name>")
    def unload_model(name):
        host.unload(name)
        return Response(json.dumps({"status": f"model {name!r} unloaded"}), status=200,
                        mimetype="application/json")

    @app.post("/models/<name>/invoke")
    def invoke_model(name):
        return answer_invocation(host.service(name), config)

    @app.post("/invocations")
    def invocations():
        name = request.headers.get(TARGET_MODEL)
        if not name:
            raise UserError(f"this is a multi-model endpoint: name the model in the "
                            f"{TARGET_MODEL} header or call POST /models/<name>/invoke")
        return answer_invocation(host.service(name), config)

    return app
