"""``Image.from_uv_script``: the image of a uv script is its header's dependencies (flyte itself left out)."""

from __future__ import annotations

import pytest

import flyte_nb as flyte

SCRIPT = '''# /// script
# requires-python = ">=3.10"
# dependencies = [
#    "polars>=1.0",
#    "flyte==2.0.0",
#    "httpx",
# ]
# ///
import flyte
'''


def test_the_header_dependencies_become_pip_packages(tmp_path):
    script = tmp_path / "job.py"
    script.write_text(SCRIPT)
    image = flyte.Image.from_uv_script(script, name="job", registry="ghcr.io/x").with_apt_packages("curl")
    assert image.pip_packages == ("polars>=1.0", "httpx") and image.apt_packages == ("curl",)
    assert image.name == "job"


def test_a_script_without_a_header_is_a_clear_error(tmp_path):
    script = tmp_path / "plain.py"
    script.write_text("print(1)\n")
    with pytest.raises(flyte.ConfigurationError, match="no '# /// script' header"):
        flyte.Image.from_uv_script(script, name="plain")
    with pytest.raises(flyte.ConfigurationError, match="no script at"):
        flyte.Image.from_uv_script(tmp_path / "missing.py", name="missing")
