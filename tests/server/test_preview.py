"""Value previews load plain data only: a pickle that would run code is named, never loaded."""

from __future__ import annotations

import collections
import datetime
import decimal
import fractions
import os
import pickle
import time
import tracemalloc
import uuid

from flyte_nb.server.preview import LOAD_MAX, PREVIEW_CHARS, preview


class Custom:
    pass


class Exploit:
    def __reduce__(self):
        return (os.system, ("touch /tmp/flyte-nb-preview-pwned",))


def test_plain_values_are_shown():
    data = pickle.dumps({"x": [1, 2.5, "three"], "when": datetime.date(2026, 1, 2)})
    assert preview(data) == {"preview": "{'when': datetime.date(2026, 1, 2), 'x': [1, 2.5, 'three']}",
                             "size": len(data)}


def test_long_values_are_cut():
    text = preview(pickle.dumps(list(range(10_000))))["preview"]
    assert text.endswith("...]") and len(text) < 400


def test_other_classes_are_named_not_loaded(tmp_path):
    assert preview(pickle.dumps(Custom()))["preview"] == (
        f"<a value of type {__name__}.Custom: load it in a kernel with flyte_nb.get_run(...)>")
    marker = "/tmp/flyte-nb-preview-pwned"
    if os.path.exists(marker):
        os.remove(marker)
    assert "posix.system" in preview(pickle.dumps(Exploit()))["preview"]
    assert not os.path.exists(marker)


def test_damaged_data_and_none():
    assert preview(b"not a pickle")["preview"].startswith("<not readable here: ")
    assert preview(None) == {"preview": None, "size": None}


class Reduces:
    """Pickles as ``callable(*args)``: how a hostile (or merely odd) store asks the loader for work."""

    def __init__(self, callable, *args):
        self.callable, self.args = callable, args

    def __reduce__(self):
        return self.callable, self.args


def _costly() -> dict[str, bytes]:
    text = "x" * 100_000
    shared = [1] * 30
    for _ in range(8):
        shared = [shared] * 30  # 30**9 leaves through the memo, a few hundred bytes of pickle
    return {
        "bytearray(500_000_000)": pickle.dumps(Reduces(bytearray, 500_000_000)),
        "bytes(500_000_000)": pickle.dumps(Reduces(bytes, 500_000_000)),
        "list(range(30_000_000))": pickle.dumps(Reduces(list, range(30_000_000))),
        "list(text) x 100, one text": pickle.dumps([Reduces(list, text) for _ in range(100)]),
        "a 4 GB bytes declared, 1 byte given": b"\x80\x05\x8e" + (4 << 30).to_bytes(8, "little") + b"x.",
        "2**20000": pickle.dumps(2**20000),
        "Fraction of two huge ints": pickle.dumps(Reduces(fractions.Fraction, 7**200_000, 3**200_000)),
        "shared nesting": pickle.dumps(shared),
        "300,000 operations": pickle.dumps([0] * 300_000),
    }


def test_previews_of_costly_values_are_bounded_in_time_memory_and_size():
    """Each of these took seconds and gigabytes (or raised, failing the whole action detail)."""
    for what, data in _costly().items():
        tracemalloc.start()
        started = time.perf_counter()
        shown = preview(data)
        took = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert took < 3, f"{what}: {took:.1f} s"
        assert peak < 40e6, f"{what}: {peak / 1e6:.0f} MB"
        assert shown["size"] == len(data) and len(shown["preview"]) <= PREVIEW_CHARS, what
    assert preview(pickle.dumps(2**20000))["preview"] == "<int of about 6,021 digits>"
    assert "too costly" in preview(pickle.dumps(Reduces(bytearray, 500_000_000)))["preview"]


def test_small_values_built_by_constructors_still_show():
    value = [collections.OrderedDict(a=1), collections.Counter("aab"), collections.deque([1]),
             collections.defaultdict(list, k=[2]), fractions.Fraction(1, 3), decimal.Decimal("1.5"),
             uuid.UUID(int=1), complex(1, 2), range(10**18), bytearray(b"ab"), datetime.timedelta(days=999_999_999)]
    assert preview(pickle.dumps(value))["preview"] == repr(value)


def test_a_value_too_large_to_load_is_sized_not_read():
    assert preview(None, 100_000_000) == {
        "preview": "<a value of 100.0 MB: too large to preview here; load it in a kernel with flyte_nb.get_run(...)>",
        "size": 100_000_000}
    assert "too large" in preview(pickle.dumps(b"x" * (LOAD_MAX + 1)))["preview"]
    assert preview(pickle.dumps(b"x" * 5000))["preview"] == repr(b"x" * 400) + "..."
