"""The user-facing API (the Flyte 2 surface)."""
