"""The worker side of every backend: one protocol (``protocol``), one runner (``runner``), one entry (``main``)."""
