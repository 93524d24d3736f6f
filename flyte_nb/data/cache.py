"""Cache keys and the run's :class:`ActionCache` (Flyte 2's ``cache="auto"`` and ``Cache(...)``).

A key is BLAKE2b over the task's *identity* and its *inputs*:

- identity: the task name; then ``Cache.version`` / ``version_override`` when set (the user vouches
  that the code did not change meaningfully), else the code: the cell source when the task came
  from a notebook cell, else ``inspect.getsource``, else the bytecode and constants; then ``salt``.
  Editing a cell body therefore changes the key; helpers the task calls are not part of it.
- inputs: the call bound to parameter names with defaults filled in (``f(1)`` and ``f(x=1)`` are
  one key), minus ``ignored_inputs``, pickled. Values that pickle differently from run to run (a
  set of strings under hash randomisation) only cause misses, never wrong hits.

Lookups run on the engine thread for every action of a cached task, so they never touch SQLite
per action: a task's entries are loaded once per run (only the ones newer than this kernel has
seen), small outputs come with them, and new entries go through the recorder's batched writer.
:meth:`Run.retry_failed` matches on the same keys: for actions of uncached tasks they are derived
from the recorded identity and inputs when the retry starts, so recording pays no hashing for them.
"""

from __future__ import annotations

import collections
import functools
import hashlib
import inspect
import logging
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from ..engine.spec import MISS, TaskSpec
from ..engine.kernel import kernel
from ..errors import StoreError
from .pickling import for_store, loads
from .records import CacheEntry
from .store import Store

if TYPE_CHECKING:
    from ..engine.action import Action

log = logging.getLogger("flyte_nb.store")

PRELOAD_MAX = 4096  # outputs up to this size are loaded with the cache index, larger ones on a hit
PRELOAD_BUDGET = 64 * 2**20  # bytes of outputs one kernel keeps in memory per store


# ------------------------------------------------------------------- values


class Note(str):
    """Why a value was not recorded (it could not be pickled); stored instead of the value."""


# ----------------------------------------------------------------- identity
def _code_bytes(code: Any) -> bytes:
    parts = [code.co_code, repr(code.co_names).encode()]
    for const in code.co_consts:
        parts.append(_code_bytes(const) if inspect.iscode(const) else repr(const).encode())
    return b"\0".join(parts)


def code_fingerprint(func: Callable[..., Any], source: str | None = None) -> bytes:
    """What identifies a task's code: cell source, else module source, else bytecode."""
    if source:
        return b"src:" + source.encode()
    extra = b""
    func = inspect.unwrap(func)  # a task function wrapped to set its env vars is fingerprinted as itself
    while isinstance(func, functools.partial):
        try:
            extra += for_store((func.args, func.keywords))
        except Exception:  # noqa: BLE001 - unpicklable bound arguments: their repr is the best we have
            extra += repr((func.args, func.keywords)).encode()
        func = func.func
    try:
        return b"src:" + inspect.getsource(func).encode() + extra
    except (OSError, TypeError):
        pass
    code = getattr(inspect.unwrap(func), "__code__", None)
    if code is not None:
        return b"code:" + _code_bytes(code) + extra
    return b"type:" + f"{type(func).__module__}.{type(func).__qualname__}".encode() + extra


class _TaskInfo:
    """Per task spec, computed once: its identity and how to bind its calls."""

    __slots__ = ("code", "defaults", "identity", "ignored", "names", "positional", "signature")

    def __init__(self, spec: TaskSpec) -> None:
        policy = spec.cache
        version = (getattr(policy, "version_override", None) or getattr(policy, "version", None)) if policy else None
        salt = getattr(policy, "salt", "") or "" if policy else ""
        ignored = getattr(policy, "ignored_inputs", ()) if policy else ()
        self.ignored = frozenset((ignored,) if isinstance(ignored, str) else ignored)
        h = hashlib.blake2b(digest_size=16)
        for part in (spec.name.encode(), b"v:" + version.encode() if version else code_fingerprint(spec.func, spec.source),
                     salt.encode()):
            h.update(len(part).to_bytes(8, "little") + part)
        self.identity = h.digest()
        self.code = h.hexdigest()
        try:
            self.signature: inspect.Signature | None = inspect.signature(spec.func)
        except (TypeError, ValueError):
            self.signature = None
        params = list(self.signature.parameters.values()) if self.signature else []
        simple = self.signature is not None and all(
            p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) for p in params)
        self.names = tuple(p.name for p in params) if simple else None
        self.positional = sum(p.kind is p.POSITIONAL_OR_KEYWORD for p in params)
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}

    def bind(self, args: tuple, kwargs: dict) -> dict[str, Any] | None:
        """The call's inputs by parameter name, defaults filled in; None if it does not fit."""
        names = self.names
        if names is not None:
            if not kwargs and len(args) == len(names):
                return dict(zip(names, args))
            if len(args) <= self.positional and not (kwargs.keys() & set(names[:len(args)])):
                given = dict(zip(names, args))
                given.update(kwargs)
                defaults = self.defaults
                bound = {}
                for name in names:
                    if name in given:
                        bound[name] = given.pop(name)
                    elif name in defaults:
                        bound[name] = defaults[name]
                    else:
                        return None
                return None if given else bound
            return None
        if self.signature is None:
            return None
        try:
            call = self.signature.bind(*args, **kwargs)
        except TypeError:
            return None
        call.apply_defaults()
        return dict(call.arguments)


_infos: dict[int, _TaskInfo] = {}  # by id(spec), dropped when the spec dies (faster than a WeakKeyDictionary)


def task_info(spec: TaskSpec) -> _TaskInfo:
    info = _infos.get(id(spec))
    if info is None:
        info = _infos[id(spec)] = _TaskInfo(spec)
        weakref.finalize(spec, _infos.pop, id(spec), None)
    return info


def bind_inputs(spec: TaskSpec, args: tuple, kwargs: dict) -> dict[str, Any]:
    """Inputs by parameter name (what ``Run.inputs()`` shows); ``*args``/``**kwargs`` when they do not bind."""
    bound = task_info(spec).bind(args, kwargs)
    return bound if bound is not None else {"*args": args, "**kwargs": kwargs}


class Prepared(NamedTuple):
    """One call, ready for the cache and the record."""

    inputs: bytes  # pickled inputs by parameter name
    key: str | None  # None when the call does not bind to the task's parameters
    code: str  # task identity


def prepare(spec: TaskSpec, args: tuple, kwargs: dict) -> Prepared:
    """Bind, pickle and key one call (raises if the inputs cannot be pickled)."""
    info = task_info(spec)
    bound = info.bind(args, kwargs)
    if bound is None:
        return Prepared(for_store({"*args": args, "**kwargs": kwargs}), None, info.code)
    data = for_store(bound)
    keyed = data
    if info.ignored:
        keyed = for_store({k: v for k, v in bound.items() if k not in info.ignored})
    return Prepared(data, key_of(info.identity, keyed), info.code)


def key_of(identity: bytes, inputs: bytes) -> str:
    return hashlib.blake2b(identity + inputs, digest_size=16).hexdigest()


def encode_inputs(spec: TaskSpec, args: tuple, kwargs: dict) -> bytes | Prepared:
    """The recorded inputs of an uncached task's call: only pickled, the key is derived if ever needed."""
    info = task_info(spec)
    bound = info.bind(args, kwargs)
    if bound is None:
        return Prepared(for_store({"*args": args, "**kwargs": kwargs}), None, info.code)
    return for_store(bound)


# -------------------------------------------------------------------- index
Entry = bytes | str | tuple
"""A cached output: its bytes, the digest of its value file, or where to fetch it from
(``("cache", key)`` / ``("action", run, number)``) when it was too large to preload."""


class CacheIndex:
    """This kernel's view of a store's cache entries, per task identity (engine thread, but for ``written``).

    An entry this kernel stored is newer than any row of its key that a refresh may read before the
    writer has committed it (``overwrite_cache`` replaces an entry): such keys are ``unwritten``
    until the writer says so, and refreshes leave them alone meanwhile.
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self.entries: dict[str, dict[str, Entry]] = {}
        self.seen: dict[str, int] = {}  # highest cache row id loaded, per identity
        self.preloaded = 0
        self.unwritten: collections.Counter[str] = collections.Counter()
        self._lock = threading.Lock()

    def stored(self, code: str, key: str, output: bytes) -> None:
        """An entry this kernel computed; its row is on its way to the store."""
        with self._lock:
            self.unwritten[key] += 1
        self.add(code, key, output)

    def written(self, keys: Iterable[str]) -> None:
        """The writer committed these rows (writer thread)."""
        with self._lock:
            self.unwritten.subtract(keys)
            for key in [k for k, n in self.unwritten.items() if n <= 0]:
                del self.unwritten[key]

    def refresh(self, code: str) -> dict[str, Entry]:
        """Load the entries of one task identity that other runs and kernels added since last time."""
        entries = self.entries.setdefault(code, {})
        last = self.seen.get(code, 0)
        with self.store.reading() as conn:
            rows = conn.execute(
                "SELECT id, key, CASE WHEN typeof(output) = 'text' OR length(output) <= ? THEN output END "
                "FROM cache WHERE code = ? AND id > ? ORDER BY id", (PRELOAD_MAX, code, last)).fetchall()
        for row_id, key, output in rows:
            if key not in self.unwritten:
                self.add(code, key, output if output is not None else ("cache", key))
            last = row_id
        self.seen[code] = last
        return entries

    def add(self, code: str, key: str, output: Entry) -> None:
        if isinstance(output, bytes):
            if len(output) > PRELOAD_MAX or self.preloaded + len(output) > PRELOAD_BUDGET:
                output = ("cache", key)
            else:
                self.preloaded += len(output)
        self.entries.setdefault(code, {})[key] = output


class _Indexes(dict):
    """This kernel's cache index of each store (a :class:`.kernel.Kernel` part)."""


def cache_index(store: Store) -> CacheIndex:
    indexes = kernel().part(_Indexes)
    index = indexes.get(store)
    if index is None:
        index = indexes[store] = CacheIndex(store)
    return index


def previous_outputs(store: Store, run: str) -> dict[str, Entry]:
    """What a run produced, by cache key: the "cache" a retry of it reads first.

    Actions of cached tasks carry their key; for the others it is derived here from the recorded
    task identity and inputs, exactly as :func:`prepare` would compute it.
    """
    with store.reading() as conn:
        rows = conn.execute(
            "SELECT a.run, a.number, t.code, a.cache_key, CASE WHEN a.cache_key IS NULL THEN a.inputs END, "
            "CASE WHEN typeof(a.outputs) = 'text' OR length(a.outputs) <= ? THEN a.outputs END "
            "FROM actions a JOIN tasks t ON t.id = a.task WHERE a.run = (SELECT id FROM runs WHERE name = ?) "
            "AND a.phase IN ('succeeded', 'cached') AND a.outputs IS NOT NULL "
            "AND (a.cache_key IS NOT NULL OR a.inputs IS NOT NULL)", (PRELOAD_MAX, run)).fetchall()
    found: dict[str, Entry] = {}
    for run_id, number, code, key, inputs, output in rows:
        if key is None:
            key = key_of(bytes.fromhex(code), store.unpack(inputs))
        found[key] = output if output is not None else ("action", run_id, number)
    return found


# ---------------------------------------------------------------- run cache
class RunCache:
    """The :class:`~flyte_nb.engine.spec.ActionCache` of one run.

    ``read``: serve hits (off with ``overwrite_cache``/``disable_run_cache``); ``write``: record
    successes of cached tasks (off with ``disable_run_cache``); ``previous``: a failed run's
    outputs, served first to every task (``retry_failed``). ``sink`` hands new entries to the writer.
    What it computes is kept per action number for the recorder, which takes it at the action's end.
    """

    def __init__(self, store: Store, sink: Callable[[CacheEntry], Any], *, read: bool = True, write: bool = True,
                 previous: dict[str, Entry] | None = None) -> None:
        self.db = store  # not `store`: that is the ActionCache method
        self.index = cache_index(store)
        self.sink = sink
        self.read = read
        self.write = write
        self.previous = previous
        self.every_task = previous is not None  # else only tasks with a cache policy need lookup/store
        self.prepared: dict[int, Prepared] = {}
        self.hits: dict[int, bytes | str] = {}  # action number → the output served (bytes, or digest of its file)
        self.outputs: dict[int, bytes | Note] = {}  # action number → pickled output of a cached task, or why not
        self._fresh: set[str] = set()
        self._reader: sqlite3.Connection | None = None
        self._warned: set[str] = set()

    def lookup(self, action: Action, args: tuple, kwargs: dict) -> Any:
        spec = action.spec
        cached = spec.cache is not None
        if not cached and self.previous is None:
            return MISS
        try:
            prepared = prepare(spec, args, kwargs)
        except Exception as error:  # noqa: BLE001 - unpicklable inputs: no caching for this call
            self._warn(spec.name, f"inputs of task {spec.name} cannot be pickled, so it is not cached: {error!r}")
            return MISS
        self.prepared[action.number] = prepared
        if prepared.key is None:
            return MISS
        entry = self.previous.get(prepared.key) if self.previous is not None else None
        if entry is None and cached and self.read:
            entry = self._entries(prepared.code).get(prepared.key)
        if entry is None:
            return MISS
        try:
            data = self._fetch(entry)
            value = loads(data)
        except Exception as error:  # noqa: BLE001 - a damaged or unloadable entry is a miss
            self._warn(spec.name, f"cached output of task {spec.name} could not be loaded, recomputing: {error!r}")
            return MISS
        self.hits[action.number] = entry if isinstance(entry, str) else data
        return value

    def store(self, action: Action, args: tuple, kwargs: dict, result: Any) -> None:
        spec = action.spec
        if spec.cache is None or not self.write:
            return
        prepared = self.prepared.get(action.number)
        if prepared is None or prepared.key is None:
            return
        try:
            data = for_store(result)  # now, on the engine thread: a caller mutating the result must not change the cache
        except Exception as error:  # noqa: BLE001
            self.outputs[action.number] = Note(f"output not recorded: {type(error).__name__}: {error}")
            self._warn(spec.name, f"output of task {spec.name} cannot be pickled, so it is not cached: {error!r}")
            return
        self.outputs[action.number] = data
        self.index.stored(prepared.code, prepared.key, data)
        self.sink(CacheEntry(prepared.key, prepared.code, spec.name, action.number, data))

    def release(self, number: int) -> tuple[Prepared | None, bytes | str | None, bytes | Note | None]:
        """Hand what was computed for an action to the recorder and forget it."""
        return self.prepared.pop(number, None), self.hits.pop(number, None), self.outputs.pop(number, None)

    def close(self) -> None:
        self.prepared.clear()
        self.hits.clear()
        self.outputs.clear()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _entries(self, code: str) -> dict[str, Entry]:
        if code not in self._fresh:
            self._fresh.add(code)
            try:
                return self.index.refresh(code)
            except StoreError as error:
                self._warn(code, f"the cache index could not be loaded, running without hits: {error}")
        return self.index.entries.get(code, {})

    def _fetch(self, entry: Entry) -> bytes:
        if isinstance(entry, bytes):
            return entry
        if isinstance(entry, str):
            return self.db.unpack(entry)
        if self._reader is None:
            self._reader = self.db.connect()
        if entry[0] == "cache":
            row = self._reader.execute("SELECT output FROM cache WHERE key = ?", entry[1:]).fetchone()
        else:
            row = self._reader.execute("SELECT outputs FROM actions WHERE run = ? AND number = ?", entry[1:]).fetchone()
        if row is None or row[0] is None:
            raise StoreError(f"cached output {entry} is no longer in the run store")
        return self.db.unpack(row[0])

    def _warn(self, what: str, message: str) -> None:
        if what not in self._warned:
            self._warned.add(what)
            log.warning("flyte_nb: %s", message)
