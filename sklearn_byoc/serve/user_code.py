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
"""
from __future__ import annotations

import builtins
import functools
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import importlib.util
import inspect
import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
import threading
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlparse

from sklearn_byoc.common.errors import UserError

log = logging.getLogger("serve")

HANDLER_NAMES = ("model_fn", "input_fn", "predict_fn", "output_fn", "transform_fn")
DEFAULT_PROGRAM = "inference.py"
REQUIREMENTS_FILE = "requirements.txt"
CONSTRAINTS_FILE = "image-constraints.txt"
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
        parsed = urlparse(submit)
        scheme = parsed.scheme.lower()
        if scheme == "s3":
            return fetched_code(submit)
        if scheme and scheme != "file" and len(scheme) > 1:  # "c:" is not a scheme
            raise UserError(f"{SUBMIT_DIRECTORY}={submit!r}: only s3:// URIs, file:// URIs "
                            "and local paths are supported")
        local = Path(unquote(parsed.path) if scheme == "file" else submit)
        if local.is_file():
            return unpacked_code(str(local))
        if local.is_dir() and (local / (program or DEFAULT_PROGRAM)).is_file():
            return local
    return model_dir / "code"


def program_name() -> str:
    return os.environ.get(PROGRAM, "").strip()


@functools.lru_cache(maxsize=None)
def fetched_code(uri: str) -> Path:
    """Fetched once per process, however many models (multi-model endpoints) use it."""
    from sklearn_byoc.common.s3 import download_object

    folder = Path(tempfile.mkdtemp(prefix="serve-code-"))
    archive = folder / "sourcedir.tar.gz"
    download_object(uri, archive, what=SUBMIT_DIRECTORY,
                    hint_missing="check the model's source_dir/entry_point upload")
    return _unpack(archive, folder / "code", uri)


@functools.lru_cache(maxsize=None)
def unpacked_code(path: str) -> Path:
    return _unpack(Path(path), Path(tempfile.mkdtemp(prefix="serve-code-")) / "code", path)


def _unpack(archive: Path, target: Path, source: str) -> Path:
    from sklearn_byoc.common.archives import safe_extract

    if zipfile.is_zipfile(archive) and not tarfile.is_tarfile(archive):
        raise UserError(f"{SUBMIT_DIRECTORY}: {source} is a zip archive; pack the code as "
                        "tar.gz (what the SDK uploads as sourcedir.tar.gz)")
    if not tarfile.is_tarfile(archive):
        raise UserError(f"{SUBMIT_DIRECTORY}: {source} is a file but not a tar archive; "
                        "name the code's folder, or a .tar.gz of it")
    log.info("unpacking %s into %s", source, target)
    safe_extract(archive, target)
    return target


def find_program(model_dir: Path) -> Path | None:
    """The user's inference script for ``model_dir``, if it has one."""
    folder = code_dir(model_dir)
    name = program_name()
    if name:
        path = folder / name
        if path.is_file():
            return path
        if not holds_code(folder):
            # SDK v3's local ModelBuilder sets SAGEMAKER_PROGRAM=inference.py on every
            # model, inference code or none: with no code anywhere it names nothing.
            log.warning("%s=%r names %s, which does not exist, and the model has no "
                        "inference code at all: ignoring %s and serving with the built-in "
                        "handlers", PROGRAM, name, path, PROGRAM)
            return None
        raise UserError(f"{PROGRAM}={name!r} but {path} does not exist; the model's code "
                        f"folder holds: {', '.join(sorted(p.name for p in folder.iterdir()))}")
    default = folder / DEFAULT_PROGRAM
    return default if default.is_file() else None


def holds_code(folder: Path) -> bool:
    """Whether ``folder`` holds any file (an absent or empty code folder is no code)."""
    return folder.is_dir() and any(p.is_file() for p in folder.rglob("*"))


# -- requirements.txt -------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def packages_root() -> Path:
    """The folder every model's packages install under, one per server: made in the
    gunicorn master (serve/cli.py), so the workers it forks share it.

    It also holds the image's constraints: every distribution of the image
    pinned at its version (requirements may add packages, never replace one the
    server runs), read before any model's packages join sys.path.
    """
    root = Path(tempfile.mkdtemp(prefix="serve-packages-"))
    pins = sorted({f"{d.metadata['Name']}=={d.version}"
                   for d in importlib.metadata.distributions() if d.metadata["Name"]})
    (root / CONSTRAINTS_FILE).write_text("\n".join(pins) + "\n")
    return root


def _normalize(name: str) -> str:
    return name.lower().replace("_", "-").replace(".", "-")


def site_folder(prefix: Path) -> Path:
    return Path(sysconfig.get_path("purelib", vars={"base": str(prefix),
                                                    "platbase": str(prefix)}))


def install_requirements(folder: Path) -> Path | None:
    """Install ``folder/requirements.txt`` into a folder of this code's own; returns the
    folder to put on ``sys.path``.

    Several worker processes may load one model at once: one installs, under a
    lock, and the others find it installed.
    """
    import fcntl

    requirements = folder / REQUIREMENTS_FILE
    if not requirements.is_file():
        return None
    root = packages_root()
    prefix = root / hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:16]
    wanted = hashlib.sha256(requirements.read_bytes()).hexdigest()
    marker = prefix / ".installed"
    with open(root / f"{prefix.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (marker.is_file() and marker.read_text() == wanted):
            _pip_install(requirements, prefix)
            marker.write_text(wanted)
    _check_versions(prefix, root, requirements)
    return site_folder(prefix)


def _pip_install(requirements: Path, prefix: Path) -> None:
    log.info("installing %s into %s", requirements, prefix)
    # pip runs in the file's folder, so relative lines (./wheels/x.whl) mean what
    # they mean to someone running pip there.
    result = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-input", "--no-cache-dir", "--no-warn-script-location", "--prefix", str(prefix),
         "--constraint", str(packages_root() / CONSTRAINTS_FILE),
         "--requirement", REQUIREMENTS_FILE],
        cwd=requirements.parent, capture_output=True, text=True)
    if result.returncode != 0:
        lines = [x.strip() for x in result.stderr.strip().splitlines() if x.strip()]
        errors = [x for x in lines if x.startswith("ERROR:")] or lines[-3:]
        raise UserError(f"installing {requirements} failed (pip exit {result.returncode}): "
                        f"{' | '.join(errors[-3:]) or 'pip printed nothing'}; packages the "
                        "image has stay at its versions (pin those, or leave them out)")


def distributions(site: Path) -> dict[str, str]:
    return {_normalize(d.metadata["Name"]): d.version
            for d in importlib.metadata.distributions(path=[str(site)]) if d.metadata["Name"]}


def _check_versions(prefix: Path, root: Path, requirements: Path) -> None:
    """One server holds one version of a package: a model's packages are compared with
    those every other model's code installed in this container (any worker may have
    imported them, and Python cannot unload a module)."""
    own = distributions(site_folder(prefix))
    for other in sorted(root.iterdir()):
        if not other.is_dir() or other == prefix or not (other / ".installed").is_file():
            continue
        for name, version in distributions(site_folder(other)).items():
            if name in own and own[name] != version:
                # Never imported (the check comes first): it must not count against others.
                shutil.rmtree(prefix, ignore_errors=True)
                raise UserError(
                    f"{requirements} installs {name} {own[name]}, but another model on this "
                    f"endpoint installed {name} {version}; one server holds one version of a "
                    "package: pin the same version in both models' requirements.txt, or "
                    "serve them on separate endpoints")


# -- importing the code -----------------------------------------------------------------------
_ORIGINAL_IMPORT = builtins.__import__


class Namespace:
    """One model's modules, imported under a prefix of their own.

    Every module of the code folder is executed with its own ``__import__``,
    which maps the folder's top-level names (``helpers``, ``common.x``) to the
    prefixed modules; every other import is the usual one.
    """

    _lock = threading.Lock()
    _by_prefix: dict[str, "Namespace"] = {}

    def __init__(self, folder: Path):
        digest = hashlib.sha256(str(folder.resolve()).encode()).hexdigest()[:12]
        self.prefix = f"_sklearn_byoc_code_{digest}"
        self.folder = folder
        self.own = {p.stem if p.suffix == ".py" else p.name for p in folder.iterdir()
                    if (p.suffix == ".py" and p.is_file()) or
                    (p.is_dir() and p.name.isidentifier())}
        self.builtins = dict(vars(builtins))
        self.builtins["__import__"] = self._import
        with self._lock:
            if self.prefix not in sys.modules:
                package = importlib.util.module_from_spec(
                    importlib.machinery.ModuleSpec(self.prefix, None, is_package=True))
                package.__path__ = [str(folder)]
                sys.modules[self.prefix] = package
            self._by_prefix[self.prefix] = self
            if not any(isinstance(f, _NamespaceFinder) for f in sys.meta_path):
                sys.meta_path.insert(0, _NamespaceFinder())

    def import_program(self, program: Path):
        return importlib.import_module(f"{self.prefix}.{program.stem}")

    def _import(self, name, globals=None, locals=None, fromlist=(), level=0):
        top = name.partition(".")[0]
        if level == 0 and top in self.own:
            module = _ORIGINAL_IMPORT(f"{self.prefix}.{name}", globals, locals, fromlist, 0)
            return module if fromlist else sys.modules[f"{self.prefix}.{top}"]
        return _ORIGINAL_IMPORT(name, globals, locals, fromlist, level)

    def aliases(self) -> "_Aliases":
        """While a model loads, the code's modules also under their own names, so that a
        pickle naming ``helpers.MyTransformer`` finds this model's ``helpers``."""
        return _Aliases(self)


class _Aliases:
    active = threading.local()

    def __init__(self, namespace: Namespace):
        self.namespace = namespace
        self.before: set[str] = set()

    def __enter__(self):
        self.before = set(sys.modules)
        _Aliases.active.namespace = self.namespace
        return self

    def __exit__(self, *exc):
        _Aliases.active.namespace = None
        for name in set(sys.modules) - self.before:
            module = sys.modules.get(name)
            if name.partition(".")[0] in self.namespace.own and \
                    getattr(module, "__name__", "").startswith(self.namespace.prefix + "."):
                del sys.modules[name]


class _AliasLoader(importlib.abc.Loader):
    """Gives the prefixed module under its plain name, unchanged."""

    def __init__(self, target: str):
        self.target = target
        self.spec = None

    def create_module(self, spec):
        module = importlib.import_module(self.target)
        self.spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self.spec  # importlib set the alias's spec on it


class _Loader(importlib.abc.Loader):
    def __init__(self, inner, namespace: Namespace):
        self.inner = inner
        self.namespace = namespace

    def create_module(self, spec):
        return self.inner.create_module(spec)

    def exec_module(self, module):
        module.__dict__["__builtins__"] = self.namespace.builtins
        self.inner.exec_module(module)


class _NamespaceFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix = fullname.partition(".")[0]
        loading = getattr(_Aliases.active, "namespace", None)
        if loading is not None and prefix in loading.own:
            return importlib.machinery.ModuleSpec(
                fullname, _AliasLoader(f"{loading.prefix}.{fullname}"))
        namespace = Namespace._by_prefix.get(prefix)
        if namespace is None or fullname == prefix:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is not None and spec.loader is not None and \
                hasattr(spec.loader, "exec_module"):
            spec.loader = _Loader(spec.loader, namespace)
        return spec


def import_code(program: Path, isolated: bool):
    """Import the user's script; returns (module, namespace or None)."""
    folder = program.parent
    try:
        if not isolated:
            if str(folder) not in sys.path:
                sys.path.insert(0, str(folder))
            spec = importlib.util.spec_from_file_location(program.stem, program)
            module = importlib.util.module_from_spec(spec)
            sys.modules[program.stem] = module
            spec.loader.exec_module(module)
            return module, None
        namespace = Namespace(folder)
        return namespace.import_program(program), namespace
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"importing {program} failed: {type(exc).__name__}: {exc}") from exc


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
    packages = install_requirements(program.parent)
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


def call(handler: Handler | None, default: Callable[..., Any], *args, context=None):
    """The user's handler when there is one, else the built-in layer."""
    if handler is None:
        return default(*args)
    return handler(*args, context=context)
