"""Value previews load plain data only: a pickle that would run code is named, never loaded."""

from __future__ import annotations

import datetime
import os
import pickle

from flyte_nb.server.preview import preview


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
