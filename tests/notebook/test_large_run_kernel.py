"""A real kernel stays responsive while a million-action run (store on, widget shown) is live."""

from __future__ import annotations

import statistics

from tests.notebook.kernel import Kernel
from tests.programs import fan_out

START = fan_out("live-million", concurrency=100, aio=True) + '''
run = flyte.with_runcontext(name="live-million").run(main, 1_000_000)
run
'''

# how the engine steps back: its thread's nice value above the shell's, and the switch interval
PRIORITY = '''
import os, sys, threading
engine = next(t for t in threading.enumerate() if t.name == "flyte_nb-engine")
nice = os.getpriority(os.PRIO_PROCESS, engine.native_id) - os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
print(nice, sys.getswitchinterval())
'''


def test_cells_answer_at_once_while_a_million_action_run_is_live(tmp_path):
    """The issue's target: < 100 ms per cell while the run is live, and little more than idle.

    Measured on 2 cores at a load of 15-17: idle 12-21 ms, live 44-68 ms (before the engine stepped
    back: 77-148 ms). The second bound catches a regression on a machine quiet enough that even
    a starved shell answers within 100 ms.
    """
    kernel = Kernel(tmp_path)
    try:
        idle = statistics.median(kernel.ok("1 + 1").seconds for _ in range(15))  # this machine, right now
        kernel.ok(START)
        kernel.ok("import time\nwhile run.state.action_count < 20_000: time.sleep(0.05)", timeout=120)
        answers = [kernel.ok("1 + 1") for _ in range(15)]
        assert all(a.result == "2" for a in answers)
        live = kernel.ok("print(run.phase, run.state.action_count, len(run.state.kept))").stdout.split()
        took = statistics.median(a.seconds for a in answers)
        assert live[0] == "running", f"the run ended before the cells were timed: {live}"
        timed = f"{took * 1e3:.0f} ms (median; idle {idle * 1e3:.0f} ms): {[round(a.seconds * 1e3) for a in answers]}"
        assert took < 0.100, f"cells took {timed} while the run was live"
        assert took - idle < 0.050, f"the live run added too much to a cell's round trip: {timed}"
        assert int(live[2]) <= 10_000 + 200  # the window and what is in flight, however far the run is
        assert kernel.ok(PRIORITY).stdout.split() == ["10", "0.001"]  # while the engine is busy
        kernel.ok("run.abort(); run.wait(); time.sleep(0.1)")
        assert kernel.ok(PRIORITY).stdout.split() == ["10", "0.005"]  # idle: the kernel's own interval again
    finally:
        kernel.close()
