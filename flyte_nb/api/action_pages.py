"""A run's actions as a sequence read from the run store page by page, so that memory stays bounded.

A run of a million actions does not keep a million records in the kernel: finished actions leave
memory for the store (``RunState.window``), and ``Run.actions`` / ``StoredRun.actions`` give an
:class:`ActionList` that reads them back in keyset pages (``number > last ORDER BY number``, one
indexed range read per page, whatever the depth). Actions still in memory (running, or among the
recent finished ones) come as the live :class:`~flyte_nb.engine.action.Action`, the others as a
:class:`~.stored.StoredAction`: both have the same reading API.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import Any, overload

from ..data.store import Store
from .stored import ACTIONS_SQL as ACTIONS, StoredAction, rows_of as _rows

PAGE = 1_000  # rows per read: large enough to amortise a statement, small enough to stay light


def pages(store: Store, run_id: int, after: int = -1, size: int = PAGE) -> Iterator[list[dict[str, Any]]]:
    """The run's action rows after action number ``after``, in call order, ``size`` at a time.

    One connection for the whole walk; each page is a statement of its own, so no read transaction
    stays open between pages (the writer's checkpoints go on while a caller iterates slowly).
    """
    with store.reading() as conn:
        conn.row_factory = sqlite3.Row
        while True:
            rows = [dict(row) for row in conn.execute(f"{ACTIONS} AND a.number > ? ORDER BY a.number LIMIT ?",
                                                      (run_id, after, size))]
            if rows:
                yield rows
            if len(rows) < size:
                return
            after = rows[-1]["number"]


class ActionList(Sequence[Any]):
    """The actions of one run in call order; iterating streams them, indexing reads one.

    ``memory`` (a live run's kept actions, by number) wins over the store's row of the same action,
    which may be a batch behind; ``count`` bounds the numbers shown (a live run's count when the list
    was made), or is counted in the store when not given.
    """

    def __init__(self, store: Store | None, run: str, run_id: Callable[[], int], count: int | None = None,
                 memory: dict[int, Any] | None = None) -> None:
        self._store = store
        self._run = run
        self._run_id = run_id
        self._count = count
        self._memory = memory if memory is not None else {}

    def __len__(self) -> int:
        if self._count is None:
            with self._store.reading() as conn:  # type: ignore[union-attr]
                self._count = conn.execute("SELECT count(*) FROM actions WHERE run = ?", (self._run_id(),)).fetchone()[0]
        return self._count

    def __iter__(self) -> Iterator[Any]:
        count = len(self)
        memory = self._memory
        mine = sorted(n for n in memory if n < count)
        at = 0
        if self._store is not None:
            for page in pages(self._store, self._run_id()):
                for row in page:
                    number = row["number"]
                    if number >= count:
                        break
                    while at < len(mine) and mine[at] < number:
                        yield memory[mine[at]]
                        at += 1
                    if at < len(mine) and mine[at] == number:
                        yield memory[number]
                        at += 1
                    else:
                        yield StoredAction(self._store, self._run, row)
        yield from (memory[n] for n in mine[at:])

    @overload
    def __getitem__(self, index: int) -> Any: ...
    @overload
    def __getitem__(self, index: slice) -> list[Any]: ...

    def __getitem__(self, index: int | slice) -> Any:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step > 0:
                return list(islice(self, start, stop, step))
            return [self[i] for i in range(start, stop, step)]
        count = len(self)
        number = index + count if index < 0 else index
        if not 0 <= number < count:
            raise IndexError(f"run {self._run} has {count} actions, no action at index {index}")
        found = self._memory.get(number)
        if found is not None:
            return found
        return self._row(number)

    def _row(self, number: int) -> Any:
        """Numbers are dense (0, 1, ...): by number, else (a dead kernel left gaps) by rank."""
        run_id = self._run_id()
        rows = _rows(self._store, f"{ACTIONS} AND a.number = ?", (run_id, number))  # type: ignore[arg-type]
        if not rows:
            rows = _rows(self._store, f"{ACTIONS} ORDER BY a.number LIMIT 1 OFFSET ?", (run_id, number))  # type: ignore[arg-type]
        if not rows:
            raise IndexError(f"run {self._run} has no recorded action at index {number}")
        return StoredAction(self._store, self._run, rows[0])  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<ActionList of run {self._run}: {len(self)} actions>"


def peak_concurrency(store: Store, run_id: int, task: str | None = None, tag: str | None = None) -> int:
    """The most actions (other than the driver) that ran at one instant, from recorded times.

    The store sorts the start/end edges (ends first at equal times); only a running count is held
    here, whatever the run's size.
    """
    where = ["a.run = ?", "a.parent IS NOT NULL", "a.started_at IS NOT NULL", "a.phase != 'cached'"]
    args: list[Any] = [run_id]
    if task is not None:
        where.append("t.name = ?")
        args.append(task)
    if tag is not None:
        where.append("EXISTS (SELECT 1 FROM json_each(a.tags) WHERE value = ?)")
        args.append(tag)
    chosen = f"SELECT a.started_at AS s, a.ended_at AS e FROM actions a JOIN tasks t ON t.id = a.task WHERE {' AND '.join(where)}"
    level = top = 0
    with store.reading() as conn:
        for _, step in conn.execute(f"WITH c AS ({chosen}) SELECT s, 1 FROM c UNION ALL "
                                    f"SELECT coalesce(e, 1e308), -1 FROM c ORDER BY 1, 2", args):
            level += step
            top = max(top, level)
    return top
