"""Importing a model's inference code.

On a single-model endpoint the code is imported as AWS's image imports it: its
folder first on ``sys.path``, modules under their own names.  On a multi-model
endpoint each model's modules live under a prefix of that model's own
(:class:`Namespace`), so two models' ``helpers.py`` never share an entry in
``sys.modules``.
"""
from __future__ import annotations

import builtins
import hashlib
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from pathlib import Path

from sklearn_byoc.common.errors import UserError

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
