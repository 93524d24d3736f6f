"""The report routes: an action's detail says where its report is; the page is served sandboxed."""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.server.conftest import TOKEN, run_script

SCRIPT = '''
import flyte_nb as flyte

env = flyte.TaskEnvironment("srv-report", backend="process")

@env.task
async def child() -> int:
    return 1

@env.task
async def main() -> int:
    flyte.report.log("<h1>served</h1>")
    return await child()

flyte.with_runcontext(name="served-report").run(main).wait()
'''


def _page(url: str, path: str) -> tuple[int, str, dict]:
    request = urllib.request.Request(f"{url}/{path}", headers={"Authorization": f"token {TOKEN}"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode(), dict(response.headers)
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), dict(error.headers)


def test_an_action_with_a_report_links_a_sandboxed_page(server, client):
    run_script(server["home"], SCRIPT)
    status, detail, _ = client.get("runs/served-report/actions/0")
    assert status == 200 and detail["report"] == "flyte-nb/reports/served-report/a0"
    status, child, _ = client.get("runs/served-report/actions/1")
    assert status == 200 and child["report"] is None
    status, page, headers = _page(server["url"], detail["report"])
    assert status == 200 and "<h1>served</h1>" in page
    assert headers["Content-Security-Policy"].startswith("sandbox allow-scripts")
    assert headers["Content-Type"].startswith("text/html")


def test_missing_reports_and_paths_out_of_the_folder_are_404(server):
    (server["home"] / "secret.html").write_text("<p>not a report</p>")  # beside the reports folder
    for path in ("flyte-nb/reports/..%2F/secret", "flyte-nb/reports/..%2Freports%2F..%2F/secret", "flyte-nb/reports/served-report/a1", "flyte-nb/reports/nope/a0",
                 "flyte-nb/reports/..%2F..%2Fetc/passwd", "flyte-nb/reports/%2E%2E/store"):
        status, _, _ = _page(server["url"], path)
        assert status == 404, path
    request = urllib.request.Request(f"{server['url']}/flyte-nb/reports/served-report/a0")  # no token
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # sent to the login page
            assert "/login" in response.url and "<h1>served</h1>" not in response.read().decode()
    except urllib.error.HTTPError as error:
        assert error.code == 403
