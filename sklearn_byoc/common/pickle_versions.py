"""Which scikit-learn pickled a model file, read without unpickling it.

scikit-learn adds ``_sklearn_version`` (its own version) to the state each
of its own estimators pickles (``BaseEstimator.__getstate__``, for classes
of ``sklearn.*`` modules; versions before 0.18 recorded none), and the
pickle stores that state as a dict right before the BUILD opcode that hands
it to the new object.  This module walks the file's opcodes
(``pickletools.genops``) with a small symbolic stack that records what each
opcode would build: nothing is imported and nothing the file names is
called, so a model can be inspected before any library tries to load it.

Files written by ``joblib.dump`` need two more things, done the way joblib
reads them:

- compression: joblib picks the decompressor by the file's first bytes
  (zlib, gzip, bz2, xz, lzma; lz4 when that package is installed);
- arrays: joblib pickles a ``NumpyArrayWrapper`` (shape, dtype, order) and
  writes the array's raw bytes right after its BUILD opcode, outside the
  pickle; an array of objects follows as a nested pickle of its own.  Those
  bytes are skipped (or the nested pickle walked, since it may hold
  estimators too).
"""
from __future__ import annotations

import bz2
import gzip
import io
import logging
import lzma
import pickletools
import re
import zlib
from collections import Counter
from pathlib import Path
from typing import IO

from sklearn_byoc.common import compat

log = logging.getLogger("model")

VERSION_KEY = "_sklearn_version"
CHUNK = 1 << 20
# Bytes longer than this (array data in plain pickles) are not kept on the
# symbolic stack: nothing here needs them, and a model may hold gigabytes.
KEEP_BYTES = 256


class Unreadable(Exception):
    """The file is not a pickle (or joblib file) this module can walk."""


# -- what the opcodes build ---------------------------------------------------------------
class Global:
    """A name the pickle imports (GLOBAL, STACK_GLOBAL, INST): never imported here."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name


class Obj:
    """What a REDUCE, NEWOBJ, OBJ or INST would make: what is called, with what, and the
    state BUILD would give it."""

    __slots__ = ("callable", "args", "state")

    def __init__(self, callable_, args):
        self.callable, self.args, self.state = callable_, args, None

    def class_name(self) -> str:
        target = self.callable
        # Protocols 0 and 1 build plain objects with copyreg._reconstructor(cls, ...).
        if isinstance(target, Global) and target.name == "_reconstructor" and \
                isinstance(self.args, tuple) and self.args:
            target = self.args[0]
        return f"{target.module}.{target.name}" if isinstance(target, Global) else "?"


OPAQUE = object()  # a value nothing here needs (persistent ids, buffers, big bytes)
LITERALS = frozenset({
    "INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "STRING", "BINSTRING",
    "SHORT_BINSTRING", "BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8", "UNICODE",
    "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "BINFLOAT", "FLOAT",
})
CONSTANTS = {"NONE": None, "NEWTRUE": True, "NEWFALSE": False}


def _hashable(key):
    try:
        hash(key)
    except TypeError:
        return OPAQUE
    return key


class _Walk:
    """The symbolic stack machine; ``found`` counts (version, class) pairs."""

    def __init__(self):
        self.found: Counter = Counter()

    def pickle(self, stream: IO[bytes]) -> None:
        """One pickle, from its first opcode to STOP."""
        stack: list = []
        metastack: list = []
        memo: dict = {}

        def pop_mark() -> list:
            nonlocal stack
            items, stack = stack, metastack.pop()
            return items

        for opcode, arg, _ in pickletools.genops(stream):
            name = opcode.name
            if name in LITERALS:
                if isinstance(arg, (bytes, bytearray)) and len(arg) > KEEP_BYTES:
                    arg = OPAQUE
                stack.append(arg)
            elif name in CONSTANTS:
                stack.append(CONSTANTS[name])
            elif name in ("EMPTY_LIST", "EMPTY_SET"):
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "EMPTY_DICT":
                stack.append({})
            elif name == "MARK":
                metastack.append(stack)
                stack = []
            elif name in ("LIST", "TUPLE", "FROZENSET"):
                items = pop_mark()
                stack.append(items if name == "LIST" else tuple(items))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                size = int(name[-1])
                items = tuple(stack[-size:])
                del stack[-size:]
                stack.append(items)
            elif name == "DICT":
                items = pop_mark()
                stack.append({_hashable(k): v for k, v in zip(items[::2], items[1::2])})
            elif name == "APPEND":
                value = stack.pop()
                if isinstance(stack[-1], list):
                    stack[-1].append(value)
            elif name in ("APPENDS", "ADDITEMS"):
                items = pop_mark()
                if isinstance(stack[-1], list):
                    stack[-1].extend(items)
            elif name == "SETITEM":
                value, key = stack.pop(), stack.pop()
                if isinstance(stack[-1], dict):
                    stack[-1][_hashable(key)] = value
            elif name == "SETITEMS":
                items = pop_mark()
                if isinstance(stack[-1], dict):
                    for key, value in zip(items[::2], items[1::2]):
                        stack[-1][_hashable(key)] = value
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    pop_mark()
            elif name == "POP_MARK":
                pop_mark()
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                stack.append(memo[arg])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name in ("EXT1", "EXT2", "EXT4"):
                stack.append(Global("copyreg extension", str(arg)))
            elif name == "GLOBAL":
                module, _, attr = arg.partition(" ")
                stack.append(Global(module, attr))
            elif name == "STACK_GLOBAL":
                attr, module = stack.pop(), stack.pop()
                stack.append(Global(str(module), str(attr)))
            elif name in ("REDUCE", "NEWOBJ"):
                args = stack.pop()
                stack.append(Obj(stack.pop(), args))
            elif name == "NEWOBJ_EX":
                stack.pop()  # keyword arguments
                args = stack.pop()
                stack.append(Obj(stack.pop(), args))
            elif name == "OBJ":
                items = pop_mark()
                stack.append(Obj(items[0], tuple(items[1:])))
            elif name == "INST":
                module, _, attr = arg.partition(" ")
                stack.append(Obj(Global(module, attr), tuple(pop_mark())))
            elif name == "BUILD":
                state = stack.pop()
                self.build(stack, state, stream)
            elif name == "PERSID":
                stack.append(OPAQUE)
            elif name == "BINPERSID":
                stack[-1] = OPAQUE
            elif name == "NEXT_BUFFER":
                stack.append(OPAQUE)
            elif name in ("PROTO", "FRAME", "READONLY_BUFFER", "STOP"):
                pass
            else:  # an opcode of a protocol newer than this Python knows
                raise Unreadable(f"opcode {name} is not understood")

    def build(self, stack: list, state, stream: IO[bytes]) -> None:
        target = stack[-1]
        # A state may be (dict, slots dict) for objects with __slots__.
        attributes = state[0] if isinstance(state, tuple) and len(state) == 2 else state
        if isinstance(attributes, dict) and isinstance(attributes.get(VERSION_KEY), str):
            owner = target.class_name() if isinstance(target, Obj) else "?"
            self.found[(attributes[VERSION_KEY], owner)] += 1
        if not isinstance(target, Obj):
            return
        target.state = state
        callable_ = target.callable
        if isinstance(callable_, Global) and callable_.name == "NumpyArrayWrapper" and \
                callable_.module.endswith("numpy_pickle") and isinstance(state, dict):
            self.skip_array(state, stream)
            stack[-1] = OPAQUE  # joblib puts the array it read in the wrapper's place

    def skip_array(self, state: dict, stream: IO[bytes]) -> None:
        """The array joblib wrote after a NumpyArrayWrapper, as joblib's read_array reads it."""
        shape = state.get("shape")
        if not isinstance(shape, tuple) or not all(isinstance(n, int) for n in shape):
            raise Unreadable(f"a joblib array wrapper has the shape {shape!r}")
        itemsize, has_objects = dtype_layout(state.get("dtype"))
        if has_objects:
            self.pickle(stream)
            return
        if state.get("numpy_array_alignment_bytes") is not None:
            # joblib >= 1.2: one byte giving the padding length, then the padding.
            padding = stream.read(1)
            if len(padding) != 1:
                raise Unreadable("the file ends inside an array's padding")
            _skip(stream, padding[0])
        count = 1
        for n in shape:
            count *= n
        _skip(stream, count * itemsize)


def _skip(stream: IO[bytes], size: int) -> None:
    while size > 0:
        read = len(stream.read(min(size, CHUNK)))
        if read == 0:
            raise Unreadable("the file ends inside an array's data")
        size -= read


TYPESTR = re.compile(r"^[<>|=]?([a-zA-Z])(\d*)")


def dtype_layout(dtype) -> tuple[int, bool]:
    """(item size in bytes, holds Python objects) of a pickled numpy dtype.

    numpy pickles a dtype as ``numpy.dtype(typestr, False, True)`` with the state
    ``(version, byte order, subarray, names, fields, elsize, alignment, flags[,
    metadata])``: elsize is -1 for the fixed-size types, whose size is the
    typestr's digits ("f8"), and flag 0x01 marks a dtype that holds objects.
    """
    if not isinstance(dtype, Obj) or not isinstance(dtype.args, tuple) or not dtype.args \
            or not isinstance(dtype.args[0], str):
        raise Unreadable("a joblib array wrapper holds no readable dtype")
    match = TYPESTR.match(dtype.args[0])
    if not match:
        raise Unreadable(f"dtype {dtype.args[0]!r} is not understood")
    kind, digits = match.groups()
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize = state[5] if len(state) > 5 and isinstance(state[5], int) else -1
    flags = state[7] if len(state) > 7 and isinstance(state[7], int) else 0
    if kind == "O" or flags & 0x01:
        return 8, True
    if elsize >= 0:
        return elsize, False
    if digits:
        return int(digits), False
    raise Unreadable(f"the size of dtype {dtype.args[0]!r} is not known")


# -- files --------------------------------------------------------------------------------
class _Inflate(io.RawIOBase):
    """A zlib stream read as a file (joblib's zlib files are one raw zlib stream)."""

    def __init__(self, raw: IO[bytes]):
        self._raw = raw
        self._inflate = zlib.decompressobj(zlib.MAX_WBITS)
        self._pending = b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._pending:
            if self._inflate.eof:
                return 0
            data = self._inflate.unconsumed_tail or self._raw.read(CHUNK)
            if not data:
                return 0
            self._pending = self._inflate.decompress(data, CHUNK)
        size = min(len(buffer), len(self._pending))
        buffer[:size] = self._pending[:size]
        self._pending = self._pending[size:]
        return size


class _ReadOnly:
    """Only ``read`` and ``readline``: genops asks a stream for its position when it has
    ``tell``, which decompressing streams cannot always answer."""

    def __init__(self, stream: IO[bytes]):
        self.read, self.readline = stream.read, stream.readline


def _lz4(raw: IO[bytes]) -> IO[bytes]:
    try:
        import lz4.frame
    except ImportError:
        raise Unreadable("the file is lz4-compressed and the lz4 package is not "
                         "installed") from None
    return lz4.frame.open(raw, "rb")


# joblib's own order and magic numbers (joblib/compressor.py); "ZF" marks the
# files of joblib < 0.10, whose arrays lie in files of their own.
COMPRESSIONS = (
    (b"\x78", lambda raw: io.BufferedReader(_Inflate(raw), CHUNK)),
    (b"\x1f\x8b", lambda raw: gzip.GzipFile(fileobj=raw, mode="rb")),
    (b"BZ", lambda raw: bz2.BZ2File(raw, "rb")),
    (b"\x5d\x00", lambda raw: lzma.LZMAFile(raw, "rb", format=lzma.FORMAT_ALONE)),
    (b"\xfd\x37\x7a\x58\x5a", lambda raw: lzma.LZMAFile(raw, "rb", format=lzma.FORMAT_XZ)),
    (b"\x04\x22\x4d\x18", _lz4),
)


def sklearn_versions(path: Path) -> Counter:
    """(version, class) → how many objects of that class in ``path`` recorded that
    scikit-learn version; empty when none did (not scikit-learn objects, or
    pickled by a scikit-learn older than 0.18).  Raises Unreadable."""
    walk = _Walk()
    try:
        with open(path, "rb") as raw:
            head = raw.read(8)
            raw.seek(0)
            if head.startswith(b"ZF"):
                raise Unreadable("the file was written by joblib < 0.10")
            opener = next((open_ for magic, open_ in COMPRESSIONS if head.startswith(magic)),
                          None)
            stream = opener(raw) if opener else raw
            walk.pickle(_ReadOnly(stream))
    except Unreadable:
        raise
    except (OSError, EOFError, ValueError, IndexError, KeyError, TypeError, AttributeError,
            lzma.LZMAError, zlib.error) as exc:
        raise Unreadable(f"{type(exc).__name__}: {exc}") from exc
    return walk.found


# -- what the versions mean for this image ------------------------------------------------
class WrittenBy:
    """The scikit-learn a model file was pickled by, set against the one this image runs."""

    def __init__(self, path: Path, versions: tuple[str, ...], running: str):
        self.path = path
        self.versions = versions  # most objects first; () when nothing recorded one
        self.running = running

    @classmethod
    def read(cls, path: Path, recorded: str | None = None) -> "WrittenBy":
        """From the file's pickle; else ``recorded`` (metadata.json's version), if any."""
        try:
            found = sklearn_versions(path)
        except Unreadable as exc:
            log.debug("%s: no scikit-learn version read from it (%s)", path, exc)
            found = Counter()
        counts: Counter = Counter()
        for (version, _), n in found.items():
            counts[version] += n
        versions = tuple(v for v, _ in counts.most_common())
        if not versions and recorded:
            versions = (recorded,)
        return cls(path, versions, compat.sklearn_version())

    @property
    def differs(self) -> bool:
        return any(v != self.running for v in self.versions)

    @property
    def other_line(self) -> bool:
        """Pickled by another major.minor line than the image's."""
        return any(compat.line_of(v) != compat.line_of(self.running) for v in self.versions)

    def _foreign(self) -> str:
        return next((v for v in self.versions
                     if compat.line_of(v) != compat.line_of(self.running)), self.versions[0])

    def _written(self) -> str:
        return f"{self.path} was pickled by scikit-learn {' and '.join(self.versions)}"

    def build_hint(self) -> str:
        line = compat.line_of(self._foreign())
        if line in compat.LINES:
            return (f"build the image for its line with --build-arg {compat.BUILD_ARG}={line} "
                    f"(make image SKLEARN={line}, build_and_push.sh --sklearn-version {line})")
        return (f"no image line holds scikit-learn {line} ({compat.BUILD_ARG} can be "
                f"{', '.join(compat.LINES)}): retrain the model with one of those")

    def refusal(self, exc: BaseException) -> str:
        """One line: why this image will not serve the model, and the image that will."""
        return (f"{self._written()} and this image runs scikit-learn {self.running}, which "
                f"cannot use it ({type(exc).__name__}); {self.build_hint()}, or retrain it "
                f"with scikit-learn {compat.line_of(self.running)}")

    def warning(self, probed: bool) -> str:
        """One line, in place of scikit-learn's warning for each estimator."""
        if not self.other_line:
            return (f"{self._written()} and this image runs {self.running}, of the same "
                    f"{compat.line_of(self.running)} line")
        checked = "it loads and predicts a probe row" if probed else "it loads"
        return (f"{self._written()} and this image runs {self.running}: {checked}, so it is "
                "served, but scikit-learn does not promise the same predictions across "
                f"versions; {self.build_hint()}")
