"""``flyte_nb.group`` and ``flyte_nb.tags``: blocks that label the actions started inside them."""

from __future__ import annotations

from contextvars import ContextVar, Token
from typing import Any, Generic, TypeVar

from ..engine.context import current_group, current_tags
from ..errors import ConfigurationError
from .task import check_tags

V = TypeVar("V")


class _Scope(Generic[V]):
    """Sets a context variable for the duration of a ``with`` or ``async with`` block."""

    _var: ContextVar[V]

    def __init__(self) -> None:
        self._tokens: list[Token[V]] = []

    def _value(self) -> V:
        raise NotImplementedError

    def __enter__(self) -> _Scope[V]:
        self._tokens.append(self._var.set(self._value()))
        return self

    def __exit__(self, *exc: Any) -> None:
        self._var.reset(self._tokens.pop())

    async def __aenter__(self) -> _Scope[V]:
        return self.__enter__()

    async def __aexit__(self, *exc: Any) -> None:
        self.__exit__(*exc)


class group(_Scope[str | None]):
    """Actions started in this block form a named group (one progress row in the UI).

    Nested groups join their names with ``/``.
    """

    _var = current_group

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ConfigurationError(f"group needs a non-empty name, got {name!r}")
        super().__init__()
        self.name = name

    def _value(self) -> str:
        outer = current_group.get()
        return f"{outer}/{self.name}" if outer else self.name


class tags(_Scope[tuple[str, ...]]):
    """Actions started in this block carry these tags (Prefect-style), so run throttles apply."""

    _var = current_tags

    def __init__(self, *names: str) -> None:
        if not names:
            raise ConfigurationError("tags(...) needs at least one tag name")
        super().__init__()
        self.names = check_tags(names)

    def _value(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(current_tags.get() + self.names))
