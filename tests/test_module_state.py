"""Kernel state lives in the Kernel (``engine/kernel.py``), not in module globals.

Walks every module of flyte_nb with ``ast`` and fails on a module-level mutable container (a dict,
list, set, deque, weak dictionary, executor, counter …) or a ``global`` rebinding that is not on
the allow-list below with the reason it may stay. ``Kernel.reset()`` can only forget what the
Kernel holds: new state goes into a kernel part (``kernel().part(Kind)``), so that ``close()`` and
``reset()`` cover it. UPPER_CASE names are constants and may hold containers that nothing mutates.
"""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import flyte_nb

ROOT = Path(flyte_nb.__file__).parent

MUTABLE_CALLS = {
    "dict", "list", "set", "bytearray", "OrderedDict", "defaultdict", "deque", "Counter", "WeakKeyDictionary",
    "WeakValueDictionary", "WeakSet", "ThreadPoolExecutor", "ProcessPoolExecutor", "Queue", "SimpleQueue", "count",
}
MUTATORS = {"append", "extend", "insert", "add", "update", "setdefault", "pop", "popitem", "clear", "remove",
            "discard", "appendleft", "popleft"}

ALLOWED: dict[str, str] = {
    # identity registries: weak-valued, keyed by a token unique for the process's life; an entry is the
    # object itself, which outlives runs and resets (forgetting it would give a worker's child call a copy
    # of a task defined before the reset instead of the kernel's own object)
    "api/task.py:_live": "weak registry of live tasks by unique token (entries are the objects themselves)",
    "api/semaphore.py:_live": "weak registry of live semaphores by unique token (entries are the objects themselves)",
    # counters that make tokens and default names unique for the process's life: resetting them would
    # hand a new object the token of a live one
    "api/task.py:_numbers": "task tokens stay unique for the process's life",
    "api/semaphore.py:_tokens": "semaphore tokens stay unique for the process's life",
    "api/semaphore.py:_unnamed": "default semaphore names stay unique for the process's life",
    "api/map.py:_worker_maps": "names of the kernel-side pools of maps made in a worker stay unique",
    "engine/names.py:_serial": "run keys are never repeated, not even after a reset",
    "engine/slots.py:_order": "the global acquisition order of pools (no deadlock) spans every pool ever made",
    "engine/rates.py:_order": "the global acquisition order of rates spans every rate ever made",
    # caches that are pure functions of their key
    "data/cache.py:_infos": "derived from the spec alone, dropped by weakref.finalize when the spec dies",
    "errors.py:_DUALS": "the SDK dual of an error class, bounded; weak keys could not die (the value subclasses the key)",
    "data/machine_limits.py:_ME": "this process's (pid, start time), recomputed after a fork",
    "data/origin.py:_kernel_id": "the Jupyter kernel id of this process, which never changes",
    "data/origin.py:_server": "the Jupyter server that started this process, which never changes",
    # import-time wiring, constant once the API modules are imported (a reset must keep it)
    "engine/attempt_state.py:_providers": "note kinds the API modules register at import",
    "engine/attempt_state.py:_handlers": "note kinds the API modules register at import",
    # transient: drained on the engine loop within BATCH_DELAY of the write
    "engine/output.py:_pending": "writes from other threads waiting ≤ BATCH_DELAY for the engine loop",
    # the Dask worker process's own state (not the kernel's): one runner per worker process
    "backends/dask/on_worker.py:_running": "Dask worker process: dask key -> thread running its body",
    "backends/dask/on_worker.py:_topics": "Dask worker process: attempt -> the submitting kernel's topic",
    "backends/dask/on_worker.py:_the_runner": "Dask worker process: its one Runner",
    # kernel state in backends/** left for the backends' rewrite (#12): move into the DaskBackend/kernel part
    "backends/dask/__init__.py:_settings": "TODO(#12): where the dask backend connects; belongs to a kernel part",
    "backends/dask/rates.py:_settler": "TODO(#12): one lazy thread settling cluster rates; belongs to the backend",
}


def _callee(node: ast.expr) -> str:
    func = node.func if isinstance(node, ast.Call) else None
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _is_mutable(value: ast.expr | None) -> bool:
    if isinstance(value, (ast.Dict, ast.List, ast.Set, ast.ListComp, ast.DictComp, ast.SetComp)):
        return True
    return isinstance(value, ast.Call) and _callee(value) in MUTABLE_CALLS


def _mutated(tree: ast.Module, name: str) -> bool:
    for node in ast.walk(tree):
        target = None
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            target = next((t for t in targets if isinstance(t, ast.Subscript)), None)
            target = target.value if target is not None else None
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS:
            target = node.func.value
        if isinstance(target, ast.Name) and target.id == name:
            return True
    return False


@functools.cache
def module_state() -> dict[str, int]:
    """``path:name`` -> line of every module-level mutable container or ``global`` rebinding."""
    found: dict[str, int] = {}
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        where = path.relative_to(ROOT).as_posix()
        for node in tree.body:
            if isinstance(node, (ast.Assign, ast.AnnAssign)) and _is_mutable(node.value):
                for target in node.targets if isinstance(node, ast.Assign) else [node.target]:
                    if not isinstance(target, ast.Name) or target.id == "__all__":
                        continue
                    if target.id.isupper() and not _mutated(tree, target.id):
                        continue  # a constant
                    found.setdefault(f"{where}:{target.id}", node.lineno)
        for node in ast.walk(tree):
            if isinstance(node, ast.Global):
                for name in node.names:
                    found.setdefault(f"{where}:{name}", node.lineno)
    return found


def test_no_module_level_kernel_state_outside_the_kernel():
    new = [f"flyte_nb/{key.split(':')[0]}:{line} {key.split(':')[1]}" for key, line in module_state().items()
           if key not in ALLOWED]
    assert new == [], ("module-level mutable state outside the Kernel: keep it in a kernel part "
                       "(kernel().part(Kind)) or add it to ALLOWED with the reason it may stay:\n" + "\n".join(new))


def test_the_allow_list_names_only_what_exists():
    assert set(ALLOWED) - set(module_state()) == set(), "remove allow-list entries whose global is gone"


def test_only_the_kernel_registers_an_exit_hook():
    hooks = []
    for path in sorted(ROOT.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "register" \
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "atexit":
                hooks.append(f"{path.relative_to(ROOT).as_posix()} {ast.unparse(node.args[0])}")
    assert hooks == ["engine/kernel.py _KERNEL.close"], "only the Kernel's close() runs at exit: close parts there"
