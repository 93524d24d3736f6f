"""The magics in a real kernel: %environment, %%task, %%run, %flyte, and every UsageError path."""

from __future__ import annotations

import re

import pytest
from tests.notebook.kernel import Kernel

WIDGET = "application/vnd.jupyter.widget-view+json"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = Kernel(tmp_path_factory.mktemp("magics-kernel"))
    try:
        k.ok("""
            %load_ext flyte_nb
            import asyncio
            import flyte_nb
            from flyte_nb.api.run import kernel_runs

            def run_named(name):
                return next(r for r in kernel_runs() if r.name == name)
        """)
        yield k
    finally:
        k.close()


@pytest.fixture(scope="module")
def defined(kernel):
    """``etl`` by %environment, ``fetch`` (in etl) and ``square`` (in the default environment) by %%task."""
    kernel.ok("%environment etl --backend inline --concurrency 2 --cpu 1 --memory 256Mi --env A=1 B=2 --env C=3 "
              "--cache auto --image python:3.11-slim")
    kernel.ok("""
        %%task etl --retries 2 --backoff 10ms,2,50ms --timeout 5s --tags io,db
        SCALE = 10

        async def fetch(i: int) -> int:
            await asyncio.sleep(0.01)
            return i * SCALE
    """)
    kernel.ok("""
        %%task --retries 3 --cache
        def square(x: int) -> int:
            return x * x
    """)
    return kernel


def usage_error(kernel: Kernel, code: str) -> str:
    """Run ``code``, expect a UsageError shown as one line with no traceback; return its message."""
    outputs, error = kernel.call(code)
    assert error is not None, f"no error from:\n{code}\noutputs:\n{outputs.text}"
    assert error["ename"] == "UsageError", (error, outputs.text)
    assert not error["traceback"], error["traceback"]
    assert not [m for m in outputs if m["msg_type"] == "error"], "a UsageError shows no traceback"
    lines = outputs.stderr.splitlines()
    assert lines == [f"UsageError: {error['evalue']}"], outputs.stderr
    assert "flyte_nb/" not in outputs.text and "Traceback" not in outputs.text
    return error["evalue"]


# ---------------------------------------------------------------------------------- %environment
def test_environment_binds_a_task_environment(defined):
    kernel = defined
    out = kernel.ok("""
        print(type(etl).__name__, etl.name, etl.backend, etl.concurrency, etl.image)
        print(sorted(etl.env_vars.items()), etl.resources.cpu, etl.resources.memory, etl.cache.behavior)
    """)
    assert out.stdout == ("TaskEnvironment etl inline 2 python:3.11-slim\n"
                          "[('A', '1'), ('B', '2'), ('C', '3')] 1 256Mi auto\n")
    # IPython's own %env is untouched
    assert kernel.ok("%env FLYTE_NB_MAGICS_TEST=yes\nimport os; print(os.environ['FLYTE_NB_MAGICS_TEST'])").stdout \
        .endswith("yes\n")


def test_help_of_every_magic(kernel):
    for magic, expected in [
        ("%environment --help", ["%environment", "NAME", "--backend B", "--concurrency N", "--env"]),
        ("%%task --help\npass", ["%task", "ENV", "--retries N", "--backoff", "--timeout T", "--cache", "--tags"]),
        ("%%run --help\npass", ["%run", "--name N", "--throttle", "--no-wait", "--out VAR"]),
        ("%flyte --help", ["%flyte", "init", "runs", "status", "abort"]),
        ("%flyte runs --help", ["--limit N", "--status S"]),
        ("%flyte_nb abort --help", ["NAME"]),
    ]:
        text = kernel.ok(magic).stdout
        for word in expected:
            assert word in text, (magic, word, text)
    docs = kernel.ok("""
        magics = get_ipython().magics_manager.magics
        for kind, name in [("line", "environment"), ("cell", "task"), ("cell", "run"), ("line", "flyte"), ("line", "flyte_nb")]:
            print(name, "::" in magics[kind][name].__doc__)
    """)
    assert docs.stdout.split() == ["environment", "True", "task", "True", "run", "True", "flyte", "True",
                                   "flyte_nb", "True"]


# ---------------------------------------------------------------------------------- %%task
def test_task_from_a_cell_keeps_its_source_and_options(defined):
    out = defined.ok("""
        print(fetch.name, fetch.is_async, fetch.retries, fetch.timeout, fetch.tags)
        print(repr(fetch.source))
        print(await fetch(4))  # outside a run: a plain call
    """)
    lines = out.stdout.splitlines()
    assert lines[0] == "etl.fetch True RetryPolicy(count=2, base=0.01, factor=2.0, cap=0.05) 5.0 ('io', 'db')"
    assert lines[1] == repr("SCALE = 10\n\nasync def fetch(i: int) -> int:\n    await asyncio.sleep(0.01)\n"
                            "    return i * SCALE\n")
    assert lines[2] == "40"


def test_task_defaults_to_the_default_environment(defined):
    out = defined.ok("print(square.name, square.is_async, square.retries.count, square.retries.base, "
                    "square.cache.behavior, square(7))")
    assert out.stdout == "default.square False 3 0.0 auto 49\n"


def test_task_finds_an_environment_by_its_name(kernel):
    kernel.ok('some_variable = flyte_nb.TaskEnvironment("reports-env")')
    kernel.ok("""
        %%task reports-env
        def report() -> str:
            return "ok"
    """)
    assert kernel.ok("print(report.name, report())").stdout == "reports-env.report ok\n"


def test_user_errors_in_a_task_cell_keep_their_type(kernel):
    outputs, error = kernel.call("""
        %%task
        LIMIT = undefined_name
        def never(): pass
    """)
    assert error["ename"] == "NameError"
    assert "undefined_name" in outputs.text


# ---------------------------------------------------------------------------------- %%run
def test_run_with_gather_and_map_binds_out(defined):
    kernel = defined
    out = kernel.ok("""
        %%run --name gather-map --throttle io=1 --out total
        fetched = await asyncio.gather(*(fetch(i) for i in range(4)))
        squares = list(flyte_nb.map(square, range(5), concurrency=2))
        streamed = [s async for s in flyte_nb.map.aio(square, range(3), concurrency=2)]
        sum(fetched) + sum(squares) + sum(streamed)
    """)
    assert out.result is None, "with --out the output is bound, not shown"
    views = out.data(WIDGET)
    assert len(views) == 1, "the run's live widget appears under the cell"
    assert out.data("text/plain")[0].startswith("Run gather-map")
    check = kernel.ok("""
        r = run_named("gather-map")
        print(total, r.phase, r.peak_concurrency(tag="io"), r.peak_concurrency(square), len(r.actions))
    """)
    # 60 + 30 + 5; fetch is tagged io and throttled to 1; map concurrency 2; 1 driver + 4 + 5 + 3 actions
    assert check.stdout == "95 succeeded 1 2 13\n"


def test_run_output_is_the_cell_result_without_out(defined):
    kernel = defined
    out = kernel.ok("""
        %%run --name result-shown
        values = await asyncio.gather(fetch(1), fetch(2))
        values
    """)
    assert out.result == "[10, 20]"
    assert kernel.ok("print('values' in globals())").stdout == "False\n", "the cell's variables are the run's"


def test_run_errors_keep_their_type_without_engine_frames(defined):
    kernel = defined
    _, error = kernel.call("""
        %%run --name failing
        def check(x):
            if x > 1:
                raise ValueError(f"too big: {x}")
        check(await fetch(1))
    """)
    assert error["ename"] == "ValueError" and error["evalue"].startswith("too big: 10")
    tb = ANSI.sub("", "\n".join(error["traceback"]))
    assert "check(await fetch(1))" in tb and 'raise ValueError(f"too big: {x}")' in tb
    assert "flyte_nb/engine" not in tb and "concurrent/futures" not in tb
    assert kernel.ok('print(run_named("failing").phase)').stdout == "failed\n"


def test_no_wait_returns_at_once_and_binds_out_later(defined):
    kernel = defined
    kernel.ok("1 + 1")  # warm
    started = kernel.ok("""
        %%run --name live-run --no-wait --out late
        await asyncio.sleep(1.0)
        "finished"
    """)
    assert started.seconds < 0.5, started.seconds
    assert started.data(WIDGET), "the run is shown at once"
    times = []
    for _ in range(5):
        quick, error = kernel.call("2 + 2")
        assert error is None and quick.result == "4"
        times.append(quick.seconds)
    assert sorted(times)[2] < 0.1, f"median cell round trip {sorted(times)[2] * 1000:.0f} ms while a run was live"
    status = kernel.ok("print(run_named('live-run').phase, 'late' in globals())\n%flyte status")
    lines = status.stdout.splitlines()
    assert lines[0] == "running False"
    assert lines[1].split()[:3] == ["NAME", "PHASE", "ELAPSED"] and "SUCCEEDED" in lines[1]
    assert any(line.split()[:2] == ["live-run", "running"] for line in lines[2:]), status.stdout
    bound = kernel.ok("""
        import time
        deadline = time.monotonic() + 5
        while "late" not in globals() and time.monotonic() < deadline:
            time.sleep(0.02)
        print(late, run_named("live-run").phase)
    """)
    assert bound.stdout == "finished succeeded\n"


def test_interrupting_a_waiting_run_cell_aborts_its_run(kernel):
    _, error = kernel.call("%%run --name interrupted\nawait asyncio.sleep(30)", interrupt_after=0.5)
    assert error["ename"] == "KeyboardInterrupt"
    assert kernel.ok('print(run_named("interrupted").phase)').stdout == "aborted\n"


def test_flyte_abort_stops_a_live_run(kernel):
    kernel.ok("""
        %%run --name to-abort --no-wait --out never
        await asyncio.sleep(30)
    """)
    out = kernel.ok("%flyte abort to-abort")
    assert out.stdout == "aborted run to-abort: aborted\n"
    again = kernel.ok("%flyte_nb abort to-abort\nprint('never' in globals())")
    assert again.stdout == "run to-abort already ended (aborted); nothing to abort\nFalse\n"
    assert "to-abort" not in kernel.ok("%flyte status").stdout


def test_flyte_runs_and_init(kernel):
    for name in ("runs-a", "runs-b"):
        kernel.ok(f"%%run --name {name}\nawait asyncio.sleep(0.01)")
    kernel.call("%%run --name runs-failed\n1 / 0")
    table = kernel.ok("%flyte runs").stdout.splitlines()
    assert table[0].split() == ["NAME", "STATUS", "STARTED", "DURATION", "ACTIONS", "FAILED"]
    names = [line.split()[0] for line in table[1:]]
    assert names[:3] == ["runs-failed", "runs-b", "runs-a"], "newest first"
    assert table[1].split()[1] == "failed" and table[2].split()[1] == "succeeded"
    succeeded = kernel.ok("%flyte runs --status succeeded --limit 1").stdout.splitlines()
    assert len(succeeded) == 2 and succeeded[1].split()[1] == "succeeded"
    assert kernel.ok("%flyte runs --status queued").stdout == "no runs with status 'queued'\n"
    init = kernel.ok("%flyte init --backend inline").stdout
    assert init.startswith("flyte_nb: default backend 'inline'; files under ") and init.rstrip().endswith("flyte_nb")


def test_unload_and_reload(kernel):
    _, error = kernel.call("%unload_ext flyte_nb\n%flyte status")
    assert error["ename"] == "UsageError" and "not found" in error["evalue"]
    out = kernel.ok("""
        %reload_ext flyte_nb
        %flyte status
        from flyte_nb.engine.kernel import kernel
        print(len(kernel().listeners) == len(set(kernel().listeners)))
    """)
    assert out.stdout.splitlines()[-1] == "True", "reloading does not subscribe listeners twice"


# ---------------------------------------------------------------------------------- UsageErrors
ONE_FUNCTION = "def f():\n    return 1\n"


@pytest.mark.parametrize("code, message", [
    ("%%task\nX = 1\n", "defines none"),
    ("%%task\ndef a(): pass\ndef b(): pass\n", "defines 2: a, b"),
    ("%%task nowhere\n" + ONE_FUNCTION, "unknown environment 'nowhere'"),
    ("%%task asyncio\n" + ONE_FUNCTION, "'asyncio' is a module, not a TaskEnvironment"),
    ("%%task --retries x\n" + ONE_FUNCTION, "argument --retries: invalid int value: 'x'"),
    ("%%task --retries -1\n" + ONE_FUNCTION, "--retries must be a whole number >= 0"),
    ("%%task --retries 2 --backoff 1s,x\n" + ONE_FUNCTION, "--backoff factor must be a number >= 1"),
    ("%%task --retries 2 --backoff soon\n" + ONE_FUNCTION, "--backoff base must be a duration"),
    ("%%task --retries 2 --backoff 1s,2,3s,4\n" + ONE_FUNCTION, "--backoff must be BASE[,FACTOR[,CAP]]"),
    ("%%task --retries 2 --backoff 10s,2,1s\n" + ONE_FUNCTION, "must not be less than its base"),
    ("%%task --backoff 1s,2,30s\n" + ONE_FUNCTION, "--backoff needs --retries N"),
    ("%%task --timeout soon\n" + ONE_FUNCTION, "--timeout must be a duration"),
    ("%%task --tags a,,b\n" + ONE_FUNCTION, "--tags must be comma-separated"),
    ("%%task --bogus\n" + ONE_FUNCTION, "unrecognized arguments: --bogus"),
    ("%%task\ndef broken(:\n", "the cell is not valid Python"),
    ("%%task\ndef gen():\n    yield 1\n", "task `gen` is a generator"),
    ("%environment e2 --backend mainframe", "unknown backend 'mainframe'; choose one of: "),
    ("%environment e2 --env NOVALUE", "bad --env pair 'NOVALUE'"),
    ("%environment e2 --env =x", "bad --env pair '=x'"),
    ("%environment my-env", "NAME must be a Python identifier"),
    ("%environment e2 --concurrency 0", "--concurrency must be a whole number >= 1, got 0"),
    ("%environment e2 --memory lots", "memory must look like"),
    ("%environment e2 --cache sometimes", "argument --cache: invalid choice"),
    ("%environment", "the following arguments are required: NAME"),
    ("%%run --throttle db\n1\n", "bad --throttle 'db'"),
    ("%%run --throttle db=x\n1\n", "bad --throttle 'db=x'"),
    ("%%run --throttle db=0\n1\n", "bad --throttle 'db=0'"),
    ("%%run --throttle db=2 io\n1\n", "bad --throttle 'io'"),
    ("%%run --out 1x\n1\n", "--out VAR must be a Python identifier"),
    ("%%run --name a/b\n1\n", "run name must not contain '/'"),
    ("%%run\nyield 1\n", "the cell cannot yield"),
    ("%%run\nx = (\n", "the cell is not valid Python"),
    ("%flyte abort nobody", "no run named 'nobody' in this kernel"),
    ("%flyte bogus", "unknown %flyte command 'bogus'; use one of: init, runs, status, abort"),
    ("%flyte_nb bogus", "unknown %flyte command 'bogus'"),
    ("%flyte", "%flyte needs a command"),
    ("%flyte abort", "the following arguments are required: NAME"),
    ("%flyte runs --limit 0", "--limit must be a whole number >= 1"),
    ("%flyte runs --status done", "argument --status: invalid choice: 'done'"),
    ("%flyte init --backend mainframe", "unknown backend 'mainframe'"),
])
def test_usage_errors_are_one_line(kernel, code, message):
    kernel.ok("%load_ext flyte_nb")  # idempotent; the reload test may have run first
    assert message in usage_error(kernel, code)


def test_an_unknown_backend_names_the_valid_ones(kernel):
    from flyte_nb.backends.base import known_backends

    kernel.ok("%load_ext flyte_nb")
    message = usage_error(kernel, "%environment e3 --backend mainframe")
    assert message == f"unknown backend 'mainframe'; choose one of: {', '.join(sorted(known_backends()))}"
    assert "e3" not in kernel.ok("print(list(globals()))").stdout


def test_a_failed_task_cell_binds_nothing(defined):
    kernel = defined
    kernel.ok("%load_ext flyte_nb")
    usage_error(kernel, "%%task --timeout soon\ndef not_bound(): pass\n")
    usage_error(kernel, "%%task\ndef gen_not_bound():\n    yield 1\n")
    usage_error(kernel, "%%task etl\n@etl.task\ndef double_wrapped(): pass\n")
    out = kernel.ok("print([n for n in ('not_bound', 'gen_not_bound', 'double_wrapped') if n in globals()])")
    assert out.stdout == "[]\n"


def test_runs_table_reads_run_store_records():
    """``%flyte runs`` shows live ``Run`` handles and run store records (objects or rows) alike."""
    from types import SimpleNamespace

    from flyte_nb.notebook.magics import _run_row

    stored = SimpleNamespace(name="old-run", phase="failed", started_at=0.0, duration=2.25,
                             counts={"succeeded": 3, "failed": 1, "timed_out": 1})
    row = {"name": "row-run", "status": "succeeded", "started_at": None, "duration": None, "n_actions": 4}
    assert _run_row(stored)[:2] == ["old-run", "failed"]
    assert _run_row(stored)[3:] == ["2.2s", "5", "2"]
    assert _run_row(row) == ["row-run", "succeeded", "-", "-", "4", "-"]
