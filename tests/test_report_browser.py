"""The report in a real headless Chromium: it loads from file:// with no console error and no
network request, and shows every paper table, every figure (decoded) and the SynthFaces banner.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
NUL-terminated JSON on file descriptors 3 and 4), so no websocket client is needed. The report
is rendered from fixture artifacts (tests/report_fixture.py), not by running the workflow.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from report_fixture import write_fixture

from facerepro.report.html import build
from facerepro.report.tables import PAPERS, load_references

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = ("Debian's chromium is not installed: `apt-get install chromium` (as root; `make "
           "test` does this when apt is usable)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--window-size=1200,3000", "--remote-debugging-pipe"]
WIDTH = 1200


class Browser:
    """One headless Chromium and the DevTools messages it sends, events kept in order."""

    def __init__(self, binary: str, profile: Path, stderr: Path) -> None:
        to_chrome, self._out = os.pipe()       # we write commands, Chromium reads fd 3
        self._in, from_chrome = os.pipe()      # Chromium writes fd 4, we read

        def pipes_on_3_and_4() -> None:
            # copy above 4 first so that neither end is closed by the other's dup2
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome, from_chrome)]
            os.dup2(high[0], 3)
            os.dup2(high[1], 4)

        self._stderr = stderr.open("w")
        self.process = subprocess.Popen(
            [binary, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=pipes_on_3_and_4, stdout=subprocess.DEVNULL,
            stderr=self._stderr)
        os.close(to_chrome)
        os.close(from_chrome)
        self.events: list[dict] = []
        self._buffer = b""
        self._next_id = 0

    def _receive(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            ready, _, _ = select.select([self._in], [], [], max(0.0, deadline - time.time()))
            chunk = os.read(self._in, 1 << 20) if ready else b""
            if not chunk:
                raise TimeoutError("Chromium did not answer (it exited, or hung)")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        return json.loads(message)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             timeout: float = 30.0) -> dict:
        """Send one command and return its result; events that arrive meanwhile are kept."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") != self._next_id:
                self.events.append(reply)
            elif "error" in reply:
                raise RuntimeError(f"{method}: {reply['error']}")
            else:
                return reply["result"]

    def wait_for(self, event: str, session: str, timeout: float = 30.0) -> None:
        deadline = time.time() + timeout
        while not any(e.get("method") == event and e.get("sessionId") == session
                      for e in self.events):
            self.events.append(self._receive(deadline))

    def open(self, url: str) -> str:
        """A new tab with every domain the checks need enabled, loaded with ``url``; returns
        its session id."""
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target,
                                                      "flatten": True})["sessionId"]
        for domain in ("Network", "Runtime", "Log", "Page"):
            self.call(f"{domain}.enable", session=session)
        self.call("Emulation.setDeviceMetricsOverride", {"width": WIDTH, "height": 3000,
                                                         "deviceScaleFactor": 1,
                                                         "mobile": False}, session)
        self.call("Page.navigate", {"url": url}, session)
        self.wait_for("Page.loadEventFired", session)
        return session

    def evaluate(self, session: str, expression: str) -> object:
        result = self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                "returnByValue": True}, session)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"]["value"]

    def problems(self, session: str) -> dict[str, list[str]]:
        """Console errors, uncaught exceptions, failed loads, and requests for anything but
        ``data:`` and ``file:`` URLs, of one tab."""
        out: dict[str, list[str]] = {"console": [], "exceptions": [], "log": [], "network": []}
        for event in (e for e in self.events if e.get("sessionId") == session):
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                out["console"].append(" ".join(str(a.get("value")) for a in params["args"]))
            elif method == "Runtime.exceptionThrown":
                out["exceptions"].append(params["exceptionDetails"].get("text", ""))
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                out["log"].append(params["entry"]["text"])
            elif method == "Network.requestWillBeSent":
                url = params["request"]["url"]
                if not url.startswith(("data:", "file:")):
                    out["network"].append(url)
        return out

    def screenshot(self, session: str, dest: Path) -> None:
        """The whole page, WIDTH pixels wide."""
        height = self.call("Page.getLayoutMetrics", session=session)["cssContentSize"]["height"]
        shot = self.call("Page.captureScreenshot", {
            "format": "png", "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": WIDTH, "height": height, "scale": 1}}, session)
        dest.write_bytes(base64.b64decode(shot["data"]))

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self._out)
        os.close(self._in)
        self._stderr.close()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if CHROMIUM is None:
        pytest.skip(INSTALL)
    work = tmp_path_factory.mktemp("chromium")
    chrome = Browser(CHROMIUM, work / "profile", work / "stderr.log")
    yield chrome
    chrome.close()


# Every image's decoded width: img.decode() rejects an image that cannot be decoded.
IMAGES_JS = """Promise.all([...document.images].map(img => img.decode().then(
    () => ({alt: img.alt, width: img.naturalWidth, scheme: img.src.split(':')[0]}),
    () => ({alt: img.alt, width: 0, scheme: img.src.split(':')[0]}))))"""
TABLES_JS = "[...document.querySelectorAll('table')].map(t => t.id)"


def test_report_loads_offline_with_every_table_and_figure(browser, tmp_path):
    fixture = write_fixture(tmp_path / "artifacts")
    page = tmp_path / "index.html"
    build(fixture["config"], **fixture["kwargs"], dest=page, figures_dir=tmp_path / "figures")
    session = browser.open(page.as_uri())

    assert browser.problems(session) == {"console": [], "exceptions": [], "log": [],
                                         "network": []}
    images = browser.evaluate(session, IMAGES_JS)
    assert len(images) == fixture["figures"] + fixture["qa"]
    assert [i for i in images if i["width"] == 0 or i["scheme"] != "data"] == []
    assert len(list((tmp_path / "figures").rglob("*.png"))) == fixture["figures"]

    expected = {"verification-table", "identification-table", "analyses-table", "runs-table",
                "datasets-table", "landmarks-table", "packages-table", "wall-times-table"}
    for paper in load_references():
        for table in paper["tables"]:
            expected.add(f"table-{table['id']}")
            if table.get("claims"):
                expected.add(f"claims-{table['id']}")
    tables = browser.evaluate(session, TABLES_JS)
    assert sorted(tables) == sorted(expected)          # each once, none missing, none extra
    sections = browser.evaluate(session, "[...document.querySelectorAll('h2[id^=paper-]')]"
                                         ".map(h => h.id)")
    assert sections == [f"paper-{key}" for key in PAPERS]
    banner = browser.evaluate(session, "document.getElementById('synthetic-banner')"
                                       "?.getBoundingClientRect().height ?? 0")
    assert banner > 0                                  # rendered, not only present

    shot = tmp_path / "report.png"
    browser.screenshot(session, shot)
    assert shot.stat().st_size > 50_000


def test_the_checks_catch_a_page_that_breaks_the_rules(browser, tmp_path):
    """The same checks on a page with a console error, a remote image and a broken image: each
    is caught (port 9 on the loopback: nothing leaves the machine)."""
    page = tmp_path / "bad.html"
    page.write_text('<!doctype html><img alt="remote" src="http://127.0.0.1:9/x.png">'
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom")</script>')
    session = browser.open(page.as_uri())
    problems = browser.problems(session)
    assert problems["console"] == ["boom"]
    assert problems["network"] == ["http://127.0.0.1:9/x.png"]
    widths = {i["alt"]: i["width"] for i in browser.evaluate(session, IMAGES_JS)}
    assert widths == {"remote": 0, "broken": 0}
