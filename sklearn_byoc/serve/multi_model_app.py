"""The routes of a multi-model endpoint (``SAGEMAKER_MULTI_MODEL=true``; see multi_model.py).

Every ``/models`` answer has a JSON body, errors included, in the shape of
the multi-model server AWS's containers run: ``{"code": <status>, "type":
<name>, "message": <text>}``.  Invocations answer as on a single-model
endpoint.  ``POST /invocations`` with the ``X-Amzn-SageMaker-Target-Model``
header is an extra of this image: SageMaker itself calls
``POST /models/<name>/invoke``.
"""
from __future__ import annotations

import json

from flask import Flask, Response, request

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve.app import answer_invocation, base_app, note
from sklearn_byoc.serve.config import ServerConfig
from sklearn_byoc.serve.media import TARGET_MODEL
from sklearn_byoc.serve.multi_model import PAGE_SIZE, ModelNotLoaded, MultiModelHost
from sklearn_byoc.serve.user_code import HandlerError

# The exception type names of the multi-model server, by status.
ERROR_TYPES = {400: "BadRequestException", 404: "ModelNotFoundException",
               409: "ConflictStatusException", 413: "BadRequestException",
               500: "InternalServerException", 507: "InsufficientMemoryException"}


def as_json(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, mimetype="application/json")


def json_error(status: int, message: str, kind: str | None = None) -> Response:
    return as_json({"code": status, "type": kind or ERROR_TYPES.get(status, "ServerException"),
                    "message": message}, status)


class ModelApiError(UserError):
    """A /models request that is wrong; answered as a JSON error."""


def create_multi_model_app(host: MultiModelHost, config: ServerConfig) -> Flask:
    app = base_app(config)

    def guarded(view):
        """A /models route whose every error is answered as JSON."""
        def wrapper(*args, **kwargs):
            try:
                return view(*args, **kwargs)
            except UserError as exc:
                note(reason=exc.log_reason() if hasattr(exc, "log_reason") else
                     type(exc).__name__)
                return json_error(exc.status, str(exc), getattr(exc, "type_name", None))
            except HandlerError as exc:
                return json_error(500, f"the model's inference code failed: {exc}")
        wrapper.__name__ = view.__name__
        return wrapper

    def payload() -> dict:
        try:
            body = json.loads(request.get_data(cache=False) or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
            body = None
        if not isinstance(body, dict) or not body.get("model_name") or not body.get("url"):
            raise ModelApiError('send a JSON body {"model_name": ..., "url": ...}')
        return body

    @app.post("/models")
    @guarded
    def load_model():
        body = payload()
        entry, evicted = host.load(str(body["model_name"]), str(body["url"]))
        return as_json({"status": f"model {entry.name!r} loaded", "evicted": evicted})

    @app.get("/models")
    @guarded
    def list_models():
        try:
            size = int(request.args.get("page_size", "") or PAGE_SIZE)
        except ValueError:
            raise ModelApiError("page_size must be a whole number") from None
        entries, token = host.registry.page(request.args.get("next_page_token"),
                                            max(1, min(size, 1000)))
        body = {"models": [{"modelName": e.name, "modelUrl": e.url} for e in entries]}
        if token:
            body["nextPageToken"] = token
        return as_json(body)

    @app.get("/models/<name>")
    @guarded
    def get_model(name):
        entry = host.registry.get(name)
        if entry is None:
            note(reason="model not loaded")
            return json_error(404, f"model {name!r} is not loaded")
        return as_json({"modelName": entry.name, "modelUrl": entry.url})

    @app.delete("/models/<name>")
    @guarded
    def unload_model(name):
        host.unload(name)
        return as_json({"status": f"model {name!r} unloaded"})

    @app.post("/models/<name>/invoke")
    def invoke_model(name):
        note(model=name)
        try:
            service = host.service(name)
        except ModelNotLoaded as exc:
            note(reason=exc.log_reason())
            return json_error(exc.status, str(exc), exc.type_name)
        return answer_invocation(service, config)

    @app.post("/invocations")
    def invocations():
        name = request.headers.get(TARGET_MODEL)
        if not name:
            raise UserError(f"this is a multi-model endpoint: name the model in the "
                            f"{TARGET_MODEL} header or call POST /models/<name>/invoke")
        note(model=name)
        return answer_invocation(host.service(name), config)

    return app
