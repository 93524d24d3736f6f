"""Execute example notebooks in a real Jupyter kernel and print their closing checks.

Usage: ``python scripts/run_notebooks.py notebooks/*.ipynb``

Each notebook runs top to bottom with nbclient (kernel ``python3``, 300 s per cell, working
directory = the notebook's folder, IPC transport). Notebooks are never written back. For each one this prints
its name, PASS or FAIL, the wall time, and the text output of its last code cell (the closing
check) or the error. The exit status is 1 if any notebook raised, 2 on bad usage.
"""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from jupyter_client.manager import KernelManager
from jupyter_core.paths import jupyter_runtime_dir
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

CELL_TIMEOUT = 300
KERNEL = "python3"


@dataclass
class Outcome:
    """What happened to one notebook."""

    name: str
    passed: bool
    seconds: float
    closing: str


def text_of(cell: nbformat.NotebookNode) -> str:
    """The text a code cell showed: streams, plain-text results and error lines."""
    parts: list[str] = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(output.get("text", ""))
        elif kind in ("execute_result", "display_data"):
            parts.append(output.get("data", {}).get("text/plain", "") + "\n")
        elif kind == "error":
            parts.append(f"{output.get('ename')}: {output.get('evalue')}\n")
    return "".join(parts).rstrip("\n")


def failing_cell(notebook: nbformat.NotebookNode) -> str:
    """Which code cell stopped the notebook (the first with an error output, else the last run)."""
    number, last = 0, "a cell"
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        number += 1
        if cell.get("execution_count") is not None:
            last = f"code cell {number}"
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            return f"code cell {number}"
    return last


def run_notebook(path: Path) -> Outcome:
    """Execute ``path`` in memory (the file is left untouched) and report the outcome."""
    notebook = nbformat.read(path, as_version=4)
    # IPC transport: the kernel listens on unix sockets in the (private) runtime folder, not on
    # unencrypted TCP ports, so there is nothing to warn about (jupyter_client warns for TCP).
    # The socket path must be absolute: the kernel starts in the notebook's folder, this process does not.
    sockets = Path(jupyter_runtime_dir()) / f"kernel-{uuid.uuid4().hex[:12]}"
    sockets.parent.mkdir(parents=True, exist_ok=True)
    kernel = KernelManager(kernel_name=KERNEL, transport="ipc", ip=str(sockets))
    client = NotebookClient(
        notebook,
        km=kernel,
        timeout=CELL_TIMEOUT,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(path.parent.resolve())}},
    )
    start = time.perf_counter()
    error: str | None = None
    try:
        client.execute()
    except CellExecutionError as exc:
        error = f"{exc.ename}: {exc.evalue}"
    except (CellTimeoutError, DeadKernelError, RuntimeError) as exc:  # RuntimeError: kernel did not start
        lines = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {lines[0] if lines else ''}"
    finally:  # a kernel manager we pass in is ours to stop (nbclient only stops the ones it made)
        if kernel.has_kernel:
            kernel.shutdown_kernel(now=False)
        kernel.cleanup_resources()
    seconds = time.perf_counter() - start
    if error is not None:
        return Outcome(path.name, False, seconds, f"{failing_cell(notebook)}: {error}")
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    closing = text_of(code_cells[-1]) if code_cells else ""
    return Outcome(path.name, True, seconds, closing)


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: run_notebooks.py NOTEBOOK.ipynb [NOTEBOOK.ipynb ...]", file=sys.stderr)
        return 2
    outcomes: list[Outcome] = []
    for arg in argv:
        path = Path(arg)
        if not path.is_file():
            print(f"{arg}: no such notebook", file=sys.stderr)
            outcomes.append(Outcome(path.name, False, 0.0, "no such notebook"))
            continue
        outcome = run_notebook(path)
        outcomes.append(outcome)
        status = "PASS" if outcome.passed else "FAIL"
        print(f"== {outcome.name}: {status} in {outcome.seconds:.1f} s")
        for line in outcome.closing.splitlines():
            print(f"   {line}")
        sys.stdout.flush()
    failed = [o.name for o in outcomes if not o.passed]
    tail = f"; failed: {', '.join(failed)}" if failed else ""
    print(f"{len(outcomes) - len(failed)}/{len(outcomes)} notebooks passed{tail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
