"""The one version of flyte_nb (read by hatch for the wheel and by the labextension build)."""

__version__ = "0.1.0"
