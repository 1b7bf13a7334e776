"""``serve``: the SageMaker inference entry point (real-time endpoints and batch transform).

Loads the model from /opt/ml/model once, then runs the Flask app under
gunicorn, listening on 0.0.0.0:8080 (or ``SAGEMAKER_BIND_TO_PORT``).  A model
that cannot be loaded stops the container at once with one log line that
names the file and the problem, so the endpoint fails its health check with
a reason instead of answering errors.

    serve [--host HOST] [--port PORT]

The options are for running outside a container (tests, local runs); in a
container SageMaker passes only the word ``serve``.
"""
import os
import sys

# One worker per core already uses every core: numerical libraries must not
# start thread pools of their own in each worker (they read these at import).
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse
import dataclasses
import logging

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.failure import one_line
from sklearn_byoc.common.logs import LOG_LEVEL_ENV, configure_logging, log_level, set_level

log = logging.getLogger("serve")


DESCRIPTION = """\
Serve the model over HTTP: GET /ping, POST /invocations (SageMaker starts the image with
the command "serve"). The model is read once, at start, from /opt/ml/model
($SAGEMAKER_BASE_DIR/model when SAGEMAKER_BASE_DIR is set, or $SAGEMAKER_MODEL_DIR): the
files a training job wrote (model.joblib, metadata.json), a bare model.joblib or .pkl,
or your own code (code/ with model_fn)."""


def help_epilog() -> str:
    from sklearn_byoc.serve.config import ENVIRONMENT

    width = max(len(name) for name, _ in ENVIRONMENT)
    return "environment settings:\n" + "\n".join(
        f"  {name:<{width}}  {what}" for name, what in ENVIRONMENT)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="serve", description=DESCRIPTION,
                                     epilog=help_epilog(),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", nargs="?", choices=["serve"], help=argparse.SUPPRESS)
    parser.add_argument("--host", default=None, help="address to bind (default 0.0.0.0)")
    parser.add_argument("--port", type=int, default=None,
                        help="port (default $SAGEMAKER_BIND_TO_PORT or 8080)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    configure_logging("serve")
    # What the SDK's container_log_level sends ("20" by default for SKLearnModel).
    level = log_level(os.environ.get(LOG_LEVEL_ENV), f"the environment variable {LOG_LEVEL_ENV}")
    set_level(level)
    from sklearn_byoc.serve.access import install_request_ids
    from sklearn_byoc.serve.user_code import HandlerError

    from sklearn_byoc.serve.server import run
    from sklearn_byoc.serve.worker import check_gunicorn

    install_request_ids()
    try:
        check_gunicorn()
        app, config = build_app(args)
    except (UserError, HandlerError) as exc:
        log.error("cannot start: %s", one_line(str(exc)))
        return 1
    return run(app, config)


def build_app(args):
    from sklearn_byoc.serve.app import create_app
    from sklearn_byoc.serve.config import ServerConfig
    from sklearn_byoc.serve.invocation import ModelService

    config = ServerConfig.from_env(host=args.host, port=args.port)
    config = dataclasses.replace(config, log_level=logging.getLogger().level)
    if config.multi_model:
        from sklearn_byoc.serve.multi_model import MultiModelHost, Registry, default_budget
        from sklearn_byoc.serve.multi_model_app import create_multi_model_app

        from sklearn_byoc.common.user_code.requirements import packages_root

        packages_root()  # before the fork: every worker installs models' packages there
        registry = Registry.create(default_budget(config.workers))
        log.info("multi-model endpoint: models load on POST /models; memory budget "
                 "%d MB per worker", registry.budget // 2**20)
        host = MultiModelHost(registry, lambda folder: ModelService(folder, isolated=True))
        return create_multi_model_app(host, config), config
    return create_app(ModelService(config.model_dir), config), config


def run(argv: list[str]) -> None:
    """The ``serve`` command; exits with the server's status."""
    sys.exit(main(argv))
