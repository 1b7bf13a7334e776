"""Serving settings, from the environment SageMaker (or the user) sets.

:data:`ENVIRONMENT` lists every variable serve reads; ``serve --help`` prints it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sklearn_byoc.common.contract import Paths, cpu_count, env_bool, env_int
from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve import media

DEFAULT_PORT = 8080
DEFAULT_TIMEOUT = 60
DEFAULT_THREADS = 4
DEFAULT_MAX_PAYLOAD_MB = 6
SERVERLESS_MAX_PAYLOAD_MB = 4  # serverless endpoints cap payloads at 4 MB
# Batch transform: MaxConcurrentTransforms x MaxPayloadInMB must not pass 100.
BATCH_BUDGET_MB = 100
KEEPALIVE_SECONDS = 75  # longer than the 60 s idle timeout of pooling clients

# Every environment variable serve reads, with what it sets: ``serve --help`` prints this
# table, and tests/unit/test_serve_help.py fails when serve reads one it does not list.
ENVIRONMENT = (
    ("SAGEMAKER_BASE_DIR", "the tree that stands for /opt/ml (the model: <base>/model)"),
    ("SAGEMAKER_MODEL_DIR", "the model folder itself (default <base>/model)"),
    ("SAGEMAKER_BIND_TO_PORT", f"port to listen on (default {DEFAULT_PORT})"),
    ("SAGEMAKER_MODEL_SERVER_WORKERS", "worker processes (default: one per CPU)"),
    ("SAGEMAKER_MODEL_SERVER_THREADS", f"threads per worker (default {DEFAULT_THREADS})"),
    ("SAGEMAKER_MODEL_SERVER_TIMEOUT", f"seconds a request may take (default {DEFAULT_TIMEOUT})"),
    ("SAGEMAKER_MAX_PAYLOAD_IN_MB", f"largest request body (default {DEFAULT_MAX_PAYLOAD_MB}; "
                                    f"serverless {SERVERLESS_MAX_PAYLOAD_MB})"),
    ("SAGEMAKER_BATCH", "true: a batch transform job"),
    ("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "answer format when Accept is missing or */*"),
    ("SAGEMAKER_INFERENCE_OUTPUT", "default output: label, probabilities or all"),
    ("SAGEMAKER_MULTI_MODEL", "true: a multi-model endpoint (models load on POST /models)"),
    ("SAGEMAKER_MULTI_MODEL_MEMORY_MB", "multi-model: memory budget per worker"),
    ("SAGEMAKER_SERVERLESS", "true: serverless defaults (1 worker, 4 MB payloads)"),
    ("SAGEMAKER_PROGRAM", "your inference code's file (model_fn, input_fn, ...)"),
    ("SAGEMAKER_SUBMIT_DIRECTORY", "where that code is: a folder, a .tar.gz or s3:// URL"),
    ("SAGEMAKER_MAX_ARCHIVE_BYTES", "largest unpacked code archive"),
    ("SAGEMAKER_CONTAINER_LOG_LEVEL", "10 (DEBUG), 20 (INFO, the default), 30, 40, or a name"),
)


@dataclass(frozen=True)
class ServerConfig:
    model_dir: Path
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    workers: int = 1
    threads: int = DEFAULT_THREADS
    timeout: int = DEFAULT_TIMEOUT
    max_payload_mb: int = DEFAULT_MAX_PAYLOAD_MB
    batch: bool = False
    default_accept: str | None = None
    default_output: str = "label"
    multi_model: bool = False
    serverless: bool = False
    log_level: int = 20  # logging.INFO

    @classmethod
    def from_env(cls, *, host: str | None = None, port: int | None = None) -> "ServerConfig":
        paths = Paths.from_env()
        default_accept = os.environ.get("SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT", "").strip()
        if default_accept:
            canonical = media.canonical_type(default_accept)
            if canonical is None:
                raise UserError(
                    f"SAGEMAKER_DEFAULT_INVOCATIONS_ACCEPT={default_accept!r} is not a supported "
                    f"type; use one of {', '.join(media.MEDIA_TYPES)}"
                )
            default_accept = canonical
        output = os.environ.get("SAGEMAKER_INFERENCE_OUTPUT", "label").strip().lower() or "label"
        if output not in media.OUTPUTS:
            raise UserError(f"SAGEMAKER_INFERENCE_OUTPUT={output!r} must be one of "
                            f"{', '.join(media.OUTPUTS)}")
        model_dir = Path(os.environ.get("SAGEMAKER_MODEL_DIR") or paths.model_dir)
        serverless = env_bool("SAGEMAKER_SERVERLESS", False)
        # A serverless endpoint is one small container per concurrent request.
        default_workers = 1 if serverless else cpu_count()
        default_payload = SERVERLESS_MAX_PAYLOAD_MB if serverless else DEFAULT_MAX_PAYLOAD_MB
        return cls(
            model_dir=model_dir,
            host=host or "0.0.0.0",
            port=port or env_int("SAGEMAKER_BIND_TO_PORT", DEFAULT_PORT),
            workers=env_int("SAGEMAKER_MODEL_SERVER_WORKERS", default_workers),
            threads=env_int("SAGEMAKER_MODEL_SERVER_THREADS", DEFAULT_THREADS),
            timeout=env_int("SAGEMAKER_MODEL_SERVER_TIMEOUT", DEFAULT_TIMEOUT),
            max_payload_mb=env_int("SAGEMAKER_MAX_PAYLOAD_IN_MB", default_payload),
            batch=env_bool("SAGEMAKER_BATCH", False),
            default_accept=default_accept or None,
            default_output=output,
            multi_model=env_bool("SAGEMAKER_MULTI_MODEL", False),
            serverless=serverless,
        )

    @property
    def max_payload_bytes(self) -> int:
        return self.max_payload_mb * 1024 * 1024

    def execution_parameters(self) -> dict:
        """What batch transform should send: one request per worker, within the 100 MB budget."""
        concurrency = self.workers
        payload = max(1, min(self.max_payload_mb, BATCH_BUDGET_MB // concurrency))
        return {"MaxConcurrentTransforms": concurrency, "MaxPayloadInMB": payload}
