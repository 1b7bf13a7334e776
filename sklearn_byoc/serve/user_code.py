"""A model's own inference code: found, fetched, its requirements installed, imported.

SageMaker's framework containers let a model bring its own inference code, and
it arrives in one of these places:

- ``code/`` inside the model folder: where the SDK repacks a ``Model``'s
  ``entry_point``/``source_dir`` (it then sets
  ``SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code``);
- ``SAGEMAKER_SUBMIT_DIRECTORY`` naming an ``s3://.../sourcedir.tar.gz``;
- in SDK local mode with local code, a host path mounted at ``/opt/ml/code``
  (a folder, or an archive file without its suffix);
- a ``file://`` URI or a local path to a folder or an archive (an archive is
  recognised by its content, not its name).

The script (``SAGEMAKER_PROGRAM``, default ``inference.py``) may define
``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``, ``transform_fn`` and
``execution_parameters_fn``.  ``code/requirements.txt`` is installed first,
with pip run in that file's folder, into a folder of this model's own under
/tmp (serverless endpoints may write nowhere else); packages the image already
has are kept at the image's versions.

On a single-model endpoint the code is imported as AWS's image imports it:
its folder first on ``sys.path``, modules under their own names.  On a
multi-model endpoint each model's modules live under a prefix of that model's
own (:class:`Namespace`), so two models' ``helpers.py`` never share an entry
in ``sys.modules``.

Fetching, unpacking, pip and importing are ``sklearn_byoc/common/user_code/``,
shared with the training and processing stages; this module holds serve's
policy: where a model's code is, and its handler functions.
"""
from __future__ import annotations

import inspect
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.common.user_code.locate import fetched_once, source_of, unpacked_once
from sklearn_byoc.common.user_code.namespace import Namespace, import_code
from sklearn_byoc.common.user_code.requirements import install_beside_image

log = logging.getLogger("serve")

HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
DEFAULT_PROGRAM = "inference.py"
SUBMIT_DIRECTORY = "SAGEMAKER_SUBMIT_DIRECTORY"
PROGRAM = "SAGEMAKER_PROGRAM"


class HandlerError(Exception):
    """A user handler failed in an unexpected way (answered as 500)."""

    def __init__(self, where: str, exc: BaseException):
        super().__init__(f"{where} raised {type(exc).__name__}: {exc}")


# -- where the code is ------------------------------------------------------------------------
def code_dir(model_dir: Path) -> Path:
    """The folder of the model's inference code (it may not exist)."""
    submit = os.environ.get(SUBMIT_DIRECTORY, "").strip()
    program = program_name()
    if submit:
        source = source_of(submit, SUBMIT_DIRECTORY)
        if isinstance(source, str):
            return fetched_once(source, SUBMIT_DIRECTORY,
                                "check the model's source_dir/entry_point upload")
        if source.is_file():
            return unpacked_once(str(source), SUBMIT_DIRECTORY)
        if source.is_dir() and (source / (program or DEFAULT_PROGRAM)).is_file():
            return source
    return model_dir / "code"


def program_name() -> str:
    return os.environ.get(PROGRAM, "").strip()


def find_program(model_dir: Path) -> Path | None:
    """The user's inference script for ``model_dir``, if it has one."""
    folder = code_dir(model_dir)
    name = program_name()
    if name:
        path = folder / name
        if path.is_file():
            return path
        if not has_code(folder):
            # SDK v3's ModelBuilder sets SAGEMAKER_PROGRAM=inference.py on every model it
            # deploys, with inference code or without.
            log.warning("%s=%r is ignored: %s is not there, and the model has no inference "
                        "code at all (%s %s); serving it with the built-in handlers", PROGRAM,
                        name, path, folder,
                        "holds no Python file" if folder.is_dir() else "does not exist")
            return None
        held = ", ".join(sorted(p.name for p in folder.iterdir()))
        raise UserError(f"{PROGRAM}={name!r} but {path} does not exist; the model's code "
                        f"folder holds: {held}")
    default = folder / DEFAULT_PROGRAM
    return default if default.is_file() else None


def has_code(folder: Path) -> bool:
    """Whether a code location holds any Python code at all."""
    return folder.is_dir() and any(folder.rglob("*.py"))


# -- the handlers -----------------------------------------------------------------------------
@dataclass
class Handler:
    """A user function, called with a request context when it takes one more argument."""

    name: str
    function: Callable
    takes_context: bool = False

    @classmethod
    def of(cls, name: str, function: Callable, arity: int) -> "Handler":
        try:
            params = [p for p in inspect.signature(function).parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            varargs = any(p.kind == p.VAR_POSITIONAL
                          for p in inspect.signature(function).parameters.values())
        except (TypeError, ValueError):
            return cls(name, function)
        return cls(name, function, takes_context=len(params) > arity or varargs)

    def __call__(self, *args, context=None):
        if self.takes_context:
            args = (*args, context)
        try:
            return self.function(*args)
        except UserError:
            raise
        except Exception as exc:
            log.exception("%s failed", self.name)
            raise HandlerError(self.name, exc) from exc


# Arguments each handler takes in AWS's images (the request context comes after them).
ARITY = {"model_fn": 1, "input_fn": 2, "predict_fn": 2, "output_fn": 2, "transform_fn": 4,
         "execution_parameters_fn": 0}


@dataclass
class UserCode:
    """The handlers a model's code defines; every one it leaves out stays built in."""

    program: Path | None = None
    handlers: dict[str, Handler] = field(default_factory=dict)
    namespace: Namespace | None = None
    execution_parameters_fn: Callable | None = None

    def get(self, name: str) -> Handler | None:
        return self.handlers.get(name)

    def loading(self):
        """The context a model is loaded in: its code's modules findable by pickle."""
        from contextlib import nullcontext

        return self.namespace.aliases() if self.namespace is not None else nullcontext()


def load_user_code(model_dir: Path, *, isolated: bool = False) -> UserCode:
    program = find_program(model_dir)
    if program is None:
        return UserCode()
    packages = install_beside_image(program.parent)
    if packages is not None and str(packages) not in sys.path:
        sys.path.insert(0, str(packages))
    module, namespace = import_code(program, isolated)
    handlers = {n: Handler.of(n, getattr(module, n), ARITY[n]) for n in HANDLER_NAMES
                if callable(getattr(module, n, None))}
    if "transform_fn" in handlers and set(handlers) & {"input_fn", "predict_fn", "output_fn"}:
        others = ", ".join(n for n in ("input_fn", "predict_fn", "output_fn") if n in handlers)
        raise UserError(f"{program} defines transform_fn and {others}: transform_fn replaces "
                        "all three; keep transform_fn alone, or drop it and keep the others")
    execution_parameters = getattr(module, "execution_parameters_fn", None)
    log.info("%s defines %s", program,
             ", ".join([*handlers, *(["execution_parameters_fn"] if execution_parameters
                                     else [])]) or "no handler functions")
    return UserCode(program, handlers, namespace,
                    execution_parameters if callable(execution_parameters) else None)
