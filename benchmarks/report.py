"""What every benchmark script prints: aligned tables, PASS/FAIL verdicts and the closing tally."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Check:
    """One target of a benchmark and whether this run met it."""

    name: str
    ok: bool


def fmt_time(seconds: float) -> str:
    return f"{seconds * 1e3:8.1f} ms" if seconds < 10 else f"{seconds:8.2f} s "


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """The first column left-aligned, the others right-aligned, each as wide as its widest cell."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    line = "  " + "  ".join("{:<%d}" % w if i == 0 else "{:>%d}" % w for i, w in enumerate(widths))
    print(line.format(*headers))
    print("  " + "  ".join("-" * w for w in widths))
    for row in rows:
        print(line.format(*row))


def tally(checks: Sequence[Check], strict: bool) -> int:
    """Print how many targets were met; the exit status (1 only with ``strict`` and a miss)."""
    failed = [c.name for c in checks if not c.ok]
    print(f"\n{len(checks) - len(failed)}/{len(checks)} targets met" + (": FAILED " + "; ".join(failed) if failed else ""))
    return 1 if failed and strict else 0
