"""Multi-model endpoints: many models behind one endpoint, loaded on demand.

SageMaker drives the container through a small API (``SAGEMAKER_MULTI_MODEL=true``):

    POST   /models                  {"model_name": ..., "url": ...}  load (409 if loaded,
                                                                      507 if it cannot fit)
    GET    /models                  list, paginated with next_page_token
    GET    /models/<name>           one model (404 if not loaded)
    DELETE /models/<name>           unload (404 if not loaded)
    POST   /models/<name>/invoke    predict, exactly like /invocations

gunicorn runs several worker processes and each request reaches one of
them, so what is loaded is kept in a small SQLite registry under /tmp that
every worker reads: a model registered by one worker is loaded by each other
worker the first time it serves it (once per worker), and a model
unloaded or evicted anywhere disappears from every worker's memory at its
next request.  When a new model would pass the memory budget, the least
recently used models are evicted to make room; a model that cannot fit even
then is refused with 507, which tells SageMaker to unload models itself.
"""
from __future__ import annotations

import importlib
import logging
import os
import sqlite3
import tempfile
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from sklearn_byoc.common.errors import UserError
from sklearn_byoc.serve.errors import RequestError

log = logging.getLogger("serve")

PAGE_SIZE = 100  # models per GET /models page unless page_size asks otherwise
TOUCH_INTERVAL = 1.0  # seconds between last-used updates of one model by one worker
BUDGET_ENV = "SAGEMAKER_MULTI_MODEL_MEMORY_MB"
# What loading a model made by the train stage imports: seconds of work that a
# multi-model endpoint, which starts with no model, would otherwise repeat in
# every worker during its first load or first invoke.
MODEL_LIBRARIES = ("joblib", "pandas", "sklearn.pipeline", "sklearn.compose", "sklearn.impute",
                   "sklearn.preprocessing", "sklearn.tree", "sklearn.ensemble",
                   "sklearn.linear_model", "sklearn.neighbors", "sklearn_byoc.serve.invocation")


class ModelConflict(RequestError):
    status = 409
    default_kind = "model already loaded"
    type_name = "ConflictStatusException"  # the multi-model server's name for it


class ModelNotLoaded(RequestError):
    status = 404
    default_kind = "model not loaded"
    type_name = "ModelNotFoundException"


class InsufficientMemory(RequestError):
    status = 507
    default_kind = "model does not fit the memory budget"
    type_name = "InsufficientMemoryException"


@dataclass
class Entry:
    name: str
    url: str
    size: int
    token: str


def available_memory() -> int:
    """Bytes this container may still use: the cgroup limit if set, else MemAvailable."""
    limit = None
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            text = Path(path).read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:
            limit = int(text)
            break
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
                return min(available, limit) if limit else available
    except OSError:
        pass
    return limit or 1 << 30


def default_budget(workers: int) -> int:
    """Each worker holds its own copy of every model it serves."""
    raw = os.environ.get(BUDGET_ENV, "").strip()
    if raw:
        try:
            return int(float(raw) * 1024 * 1024)
        except ValueError:
            raise UserError(f"{BUDGET_ENV} must be a number of megabytes, got {raw!r}") from None
    return int(available_memory() * 0.6 / max(workers, 1))


def import_model_libraries() -> None:
    """Import what loading a model needs, once, before gunicorn forks the workers."""
    for name in MODEL_LIBRARIES:
        try:
            importlib.import_module(name)
        except ImportError as exc:  # a model that needs it will say so when it loads
            log.warning("cannot import %s ahead of the first model: %s", name, exc)


def human_size(size: int) -> str:
    """Bytes in MB, or in KB below 1 MB (small models and budgets would all read "0 MB")."""
    return f"{size / 2**20:.1f} MB" if size >= 2**20 else f"{size / 2**10:.0f} KB"


def model_size(folder: Path) -> int:
    """Estimated memory of a loaded model: its files' size (pickles load about 1:1)."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()
               and p.name != "model.tar.gz")


class Registry:
    """The set of loaded models, shared by the workers through SQLite."""

    def __init__(self, path: Path, budget: int):
        self.path = path
        self.budget = budget
        self._local = threading.local()
        # The registry is created in the gunicorn master, which then forks the
        # workers: an SQLite connection must not be open across a fork (the
        # children would inherit its file handles and lock state), so this one
        # is closed; every worker thread opens its own in _connect.
        db = self._open()
        try:
            db.executescript("""
                CREATE TABLE IF NOT EXISTS models (
                    name TEXT PRIMARY KEY, url TEXT NOT NULL, size INTEGER NOT NULL,
                    token TEXT NOT NULL, loaded_at REAL NOT NULL, last_used REAL NOT NULL);
                CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER);
                INSERT OR IGNORE INTO meta VALUES ('generation', 0);
            """)
        finally:
            db.close()

    @classmethod
    def create(cls, budget: int) -> "Registry":
        folder = Path(tempfile.mkdtemp(prefix="multi-model-"))
        return cls(folder / "registry.sqlite", budget)

    def _connect(self) -> sqlite3.Connection:
        # One connection per thread and process: connections survive neither a
        # fork nor a hand-over between threads.
        key = (os.getpid(), threading.get_ident())
        db = getattr(self._local, "db", None)
        if db is None or getattr(self._local, "key", None) != key:
            db = self._open()
            self._local.db, self._local.key = db, key
        return db

    def _open(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    def generation(self) -> int:
        return self._connect().execute(
            "SELECT value FROM meta WHERE key='generation'").fetchone()[0]

    def get(self, name: str) -> Entry | None:
        row = self._connect().execute(
            "SELECT name, url, size, token FROM models WHERE name=?", (name,)).fetchone()
        return Entry(*row) if row else None

    def names(self) -> dict[str, str]:
        return dict(self._connect().execute("SELECT name, token FROM models"))

    def page(self, token: str | None, size: int) -> tuple[list[Entry], str | None]:
        rows = self._connect().execute(
            "SELECT name, url, size, token FROM models WHERE name > ? ORDER BY name LIMIT ?",
            (token or "", size + 1)).fetchall()
        entries = [Entry(*r) for r in rows[:size]]
        return entries, (entries[-1].name if len(rows) > size else None)

    def check_fits(self, name: str, size: int) -> None:
        """507 for a model larger than the whole budget (evicting others cannot help)."""
        if size > self.budget:
            raise InsufficientMemory(
                f"model {name!r} needs about {human_size(size)} but the budget per worker "
                f"is {human_size(self.budget)}; raise {BUDGET_ENV} or use a larger instance")

    def add(self, name: str, url: str, size: int) -> tuple[Entry, list[str]]:
        """Register a model, evicting least recently used ones to fit the budget."""
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("SELECT 1 FROM models WHERE name=?", (name,)).fetchone():
                raise ModelConflict(f"model {name!r} is already loaded; unload it first "
                                    f"(DELETE /models/{name}) to load another version")
            self.check_fits(name, size)
            used = db.execute("SELECT COALESCE(SUM(size), 0) FROM models").fetchone()[0]
            evicted = []
            for victim, victim_size in db.execute(
                    "SELECT name, size FROM models ORDER BY last_used").fetchall():
                if used + size <= self.budget:
                    break
                db.execute("DELETE FROM models WHERE name=?", (victim,))
                used -= victim_size
                evicted.append(victim)
            now = time.time()
            entry = Entry(name, url, size, uuid.uuid4().hex)
            db.execute("INSERT INTO models VALUES (?, ?, ?, ?, ?, ?)",
                       (name, url, size, entry.token, now, now))
            db.execute("UPDATE meta SET value = value + 1 WHERE key='generation'")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return entry, evicted

    def remove(self, name: str) -> bool:
        db = self._connect()
        db.execute("BEGIN IMMEDIATE")
        try:
            removed = db.execute("DELETE FROM models WHERE name=?", (name,)).rowcount > 0
            if removed:
                db.execute("UPDATE meta SET value = value + 1 WHERE key='generation'")
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        return removed

    def touch(self, name: str) -> None:
        self._connect().execute("UPDATE models SET last_used=? WHERE name=?",
                                (time.time(), name))


class MultiModelHost:
    """One worker's view: the registry plus the models this worker has in memory."""

    def __init__(self, registry: Registry, load):
        # Built in the gunicorn master (preload_app): what is imported here is
        # shared by every worker instead of being imported by each on its first load.
        import_model_libraries()
        self.registry = registry
        self._load = load  # Path -> a served model (invocation.ModelService)
        self._cache: OrderedDict[str, tuple[str, object]] = OrderedDict()
        self._touched: dict[str, float] = {}
        self._generation = -1
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def _reconcile(self) -> None:
        generation = self.registry.generation()
        if generation == self._generation:
            return
        registered = self.registry.names()
        with self._lock:
            for name in list(self._cache):
                if registered.get(name) != self._cache[name][0]:
                    del self._cache[name]
                    log.info("dropped model %r from this worker (unloaded or evicted)", name)
            self._generation = generation

    def load(self, name: str, url: str) -> tuple[Entry, list[str]]:
        if not name or "/" in name:
            raise RequestError("model_name must be a non-empty name without '/'")
        folder = Path(url)
        if not folder.is_dir():
            raise RequestError(f"model url {url!r} is not a folder in the container")
        if self.registry.get(name) is not None:
            raise ModelConflict(f"model {name!r} is already loaded")
        size = model_size(folder)
        # Refused before it is read: loading it first could itself exhaust the memory.
        self.registry.check_fits(name, size)
        service = self._load(folder)  # fails here, before registering, if the model is bad
        entry, evicted = self.registry.add(name, url, size)
        with self._lock:
            # The memory of evicted models is freed here at once, not at this
            # worker's next invocation.
            for victim in evicted:
                self._cache.pop(victim, None)
            self._cache[name] = (entry.token, service)
        if evicted:
            log.info("evicted %s to make room for %r", ", ".join(map(repr, evicted)), name)
        return entry, evicted

    def service(self, name: str):
        self._reconcile()
        entry = self.registry.get(name)
        if entry is None:
            raise ModelNotLoaded(f"model {name!r} is not loaded; load it with POST /models")
        cached = self._cache.get(name)
        if cached is not None and cached[0] == entry.token:
            service = cached[1]
        else:
            with self._lock:
                gate = self._loading.setdefault(name, threading.Lock())
            with gate:  # one load per worker, however many threads ask at once
                cached = self._cache.get(name)
                if cached is not None and cached[0] == entry.token:
                    service = cached[1]
                else:
                    service = self._load(Path(entry.url))
                    with self._lock:
                        self._cache[name] = (entry.token, service)
        now = time.monotonic()
        if now - self._touched.get(name, 0.0) > TOUCH_INTERVAL:
            self._touched[name] = now
            self.registry.touch(name)
        return service

    def unload(self, name: str) -> None:
        if not self.registry.remove(name):
            raise ModelNotLoaded(f"model {name!r} is not loaded")
        with self._lock:
            self._cache.pop(name, None)

