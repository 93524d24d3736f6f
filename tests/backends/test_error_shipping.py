"""Errors whose ``__init__`` does not replay keep their type, message and attributes across processes."""

from __future__ import annotations

import pickle

from flyte_nb.data.error_shipping import rebuild_error
from flyte_nb.data.pickling import loads
from flyte_nb.data.serialization import ship_error
from flyte_nb.errors import RecordedError


class ArgError(ValueError):
    def __init__(self, code: int, detail: str) -> None:
        super().__init__(f"error {code}: {detail}")
        self.code = code
        self.detail = detail


def test_an_error_whose_init_takes_other_arguments_keeps_its_class_and_attributes():
    error = loads(ship_error(ArgError(7, "gone")))
    assert type(error) is ArgError and error.code == 7 and error.detail == "gone" and str(error) == "error 7: gone"


def test_an_error_whose_class_cannot_be_loaded_still_matches_its_builtin_base():
    attributes = {"code": pickle.dumps(7)}
    error = rebuild_error(b"not a pickle", "somewhere.ArgError", ("ValueError", "Exception", "BaseException", "object"),
                          ("error 7: gone",), "error 7: gone", attributes)
    assert isinstance(error, ValueError) and isinstance(error, RecordedError)
    assert type(error).__name__ == "ArgError" and error.type_name == "somewhere.ArgError" and error.code == 7
    again = loads(ship_error(error))  # the run store pickles it again
    assert isinstance(again, ValueError) and again.code == 7 and "error 7: gone" in str(again)


def test_errors_travel_without_reducers_the_other_side_may_lack():
    """``distributed`` installs tblib's reducers for every exception; a container without tblib must still load them."""
    import pytest

    pytest.importorskip("distributed")
    import distributed  # noqa: F401 - installs the reducers

    for error in (ValueError("x"), ArgError(7, "gone")):
        data = ship_error(error)
        assert b"tblib" not in data and type(loads(data)) is type(error)
