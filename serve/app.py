"""The Flask app: routes that dispatch to the codecs and the predictor.

Every answer that is not a prediction is a short plain-text message that
says what was wrong and how to fix it: batch transform shows it in the job
log, and a real-time caller sees it in the exception the SDK raises.
"""
from __future__ import annotations

import json
import logging

from flask import Flask, Response, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from common.errors import UserError
from serve import codecs
from serve.config import ServerConfig
from serve.predictor import Predictor

log = logging.getLogger("serve")

CUSTOM_ATTRIBUTES = "X-Amzn-SageMaker-Custom-Attributes"


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


# CSV bodies larger than this are parsed and predicted block by block, as
# they are read, so a 100 MB batch payload never sits in memory several times.
BLOCK_BYTES = 4 * 1024 * 1024


def invoke(predictor: Predictor, config: ServerConfig, body, content_type: str | None,
           accept: str | None, custom_attributes: str | None) -> tuple[bytes, str]:
    """One invocation, without Flask: (answer body, answer content type).

    ``body`` is the request body, or a callable giving (block, first row)
    pairs for a body read block by block.
    """
    media = codecs.content_type(content_type)
    answer_type = codecs.accept_type(accept, config.default_accept or media.kind)
    output = output_choice(custom_attributes, config.default_output)
    if output != "label" and not predictor.has_probabilities:
        raise UserError(f"output={output} needs class probabilities, which this "
                        f"{predictor.metadata.task} model does not give; use output=label")
    blocks = body(media) if callable(body) else [(body, 1)]
    parts = [
        predictor.predict(codecs.decode(block, media, predictor.schema, first_row=row),
                          probabilities=output != "label")
        for block, row in blocks
    ]
    if not parts:
        raise UserError("the request body is empty; send at least one row")
    return codecs.encode(codecs.Prediction.concat(parts), answer_type, output), answer_type


def request_body():
    """The body at once, or block by block for a large CSV body."""
    length = request.content_length or 0

    def blocks(media: codecs.MediaType):
        if media.kind == codecs.CSV and media.charset in ("utf-8", "utf8") \
                and length > BLOCK_BYTES:
            return codecs.csv_blocks(request.stream, length, BLOCK_BYTES)
        return [(request.get_data(cache=False), 1)]

    return blocks


def create_app(predictor: Predictor, config: ServerConfig) -> Flask:
    app = Flask("serve")
    app.config["MAX_CONTENT_LENGTH"] = config.max_payload_bytes

    @app.get("/ping")
    def ping():
        return Response("", status=200)

    @app.post("/invocations")
    def invocations():
        answer, answer_type = invoke(
            predictor, config, request_body(), request.headers.get("Content-Type"),
            request.headers.get("Accept"), request.headers.get(CUSTOM_ATTRIBUTES),
        )
        return Response(answer, status=200, mimetype=answer_type)

    @app.get("/execution-parameters")
    def execution_parameters():
        return Response(json.dumps(config.execution_parameters()), status=200,
                        mimetype="application/json")

    @app.errorhandler(UserError)
    def user_error(exc: UserError):
        return plain(str(exc), exc.status)

    @app.errorhandler(RequestEntityTooLarge)
    def too_large(_exc):
        return plain(
            f"the request body is larger than the {config.max_payload_mb} MB limit; send "
            "smaller batches, or raise the limit with SAGEMAKER_MAX_PAYLOAD_IN_MB "
            "(batch transform: MaxPayloadInMB)", 413)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        allowed = ""
        if exc.code == 405:
            allowed = " (GET /ping, POST /invocations, GET /execution-parameters)"
        return plain(f"{exc.code} {exc.name}: {request.method} {request.path}{allowed}",
                     exc.code or 500)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("request failed")
        return plain(f"internal error while predicting ({type(exc).__name__}: {exc}); "
                     "the endpoint's log has the traceback", 500)

    return app
