"""The report page in a real headless Chromium (Debian's ``chromium``): it renders on a
phone-sized screen without sideways scrolling, its charts are there with data, the console
stays clean, and screenshots are kept in tests/artifacts/. Chromium is driven over the
DevTools protocol on a pipe (--remote-debugging-pipe), so no extra client library."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import select
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.report_seed import seed
from tests.test_report_page import serve_reports

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


class DevTools:
    """A Chromium child speaking CDP over fds 3 (commands in) and 4 (replies out): JSON
    messages, each ended by a NUL byte."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_chrome, self._writer = os.pipe()
        self._reader, from_chrome = os.pipe()
        self.proc = subprocess.Popen(
            [
                "bash",
                "-c",
                f'exec "$0" "$@" 3<&{to_chrome} 4>&{from_chrome}',
                binary,
                "--headless=new",
                "--disable-gpu",
                "--no-sandbox",  # CI runs as root
                "--remote-debugging-pipe",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--disable-background-networking",
                "--disable-sync",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
            ],
            pass_fds=(to_chrome, from_chrome),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome)
        os.close(from_chrome)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._reader], [], [], left)[0]:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._reader, 1 << 20)
            if not chunk:
                raise RuntimeError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        decoded: dict[str, Any] = json.loads(message)
        return decoded

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next_id += 1
        ident = self._next_id
        message: dict[str, Any] = {"id": ident, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self._writer, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + 20
        while True:
            reply = self._read(deadline)
            if reply.get("id") == ident:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = 20) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == method:
                    return self.events.pop(i)
            self.events.append(self._read(deadline))

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._reader)
        os.close(self._writer)


# What the page shows, measured in the page itself.
PROBE = """JSON.stringify({
  title: document.title,
  lang: document.documentElement.lang,
  charts: [...document.querySelectorAll('svg.chart')].map(s => ({
      points: +s.dataset.points, marks: s.querySelectorAll('rect, circle').length,
      titled: !!s.querySelector('title'), width: s.getBoundingClientRect().width})),
  figures: document.querySelectorAll('figure figcaption').length,
  empty: document.querySelectorAll('.empty').length,
  heat: document.querySelectorAll('table.heat td').length,
  overflow: document.documentElement.scrollWidth - window.innerWidth,
  resources: performance.getEntriesByType('resource').map(e => e.name),
})"""


def browse(binary: str, url: str, authorization: str, profile: Path) -> dict[str, Any]:
    """Open ``url`` as a phone would, then as a desktop; return what the page measured,
    console problems and two screenshots."""
    chrome = DevTools(binary, profile)
    try:
        target = chrome.call("Target.createTarget", url="about:blank")["targetId"]
        session = chrome.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            chrome.call(f"{domain}.enable", session)
        chrome.call(
            "Network.setExtraHTTPHeaders", session, headers={"Authorization": authorization}
        )
        shots = {}
        probe: dict[str, Any] = {}
        dom = ""
        for name, width, mobile in (("phone", 390, True), ("desktop", 1280, False)):
            chrome.call(
                "Emulation.setDeviceMetricsOverride",
                session,
                width=width,
                height=844,
                deviceScaleFactor=2 if mobile else 1,
                mobile=mobile,
            )
            chrome.call("Page.navigate", session, url=url)
            chrome.wait_for("Page.loadEventFired")
            value = chrome.call("Runtime.evaluate", session, expression=PROBE, returnByValue=True)[
                "result"
            ]["value"]
            probe[name] = json.loads(value)
            dom = chrome.call(
                "Runtime.evaluate",
                session,
                expression="document.documentElement.outerHTML",
                returnByValue=True,
            )["result"]["value"]
            height = chrome.call("Page.getLayoutMetrics", session)["cssContentSize"]["height"]
            shot = chrome.call(
                "Page.captureScreenshot",
                session,
                format="png",
                captureBeyondViewport=True,
                clip={"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
            )
            shots[name] = base64.b64decode(shot["data"])
        problems = [
            e
            for e in chrome.events
            if e.get("method") == "Runtime.exceptionThrown"
            or (
                e.get("method") == "Runtime.consoleAPICalled"
                and e["params"]["type"] in ("error", "warning", "assert")
            )
            or (
                e.get("method") == "Log.entryAdded"
                and e["params"]["entry"]["level"] in ("error", "warning")
            )
        ]
        return {"probe": probe, "problems": problems, "shots": shots, "dom": dom}
    finally:
        chrome.close()


async def test_report_page_in_chromium(db_url, tmp_path):
    binary = find_chromium()
    if binary is None:
        pytest.skip(
            "no Chromium found (chromium, chromium-browser, google-chrome); on Debian:"
            " apt-get install chromium (.ci/run does)"
        )
    async with await psycopg.AsyncConnection.connect(db_url, autocommit=True) as conn:
        await seed(conn)
    async with serve_reports(db_url) as served:
        login = base64.b64encode(f"ops:{served.admin}".encode()).decode()
        seen = await asyncio.to_thread(
            browse, binary, f"{served.url}/reports", f"Basic {login}", tmp_path / "profile"
        )
    ARTIFACTS.mkdir(exist_ok=True)
    for name, png in seen["shots"].items():
        assert png.startswith(b"\x89PNG") and len(png) > 10_000
        (ARTIFACTS / f"report-{name}.png").write_bytes(png)
    (ARTIFACTS / "report.html").write_text(seen["dom"], encoding="utf-8")
    assert seen["problems"] == []  # no exception, console error or failed load
    for name, probe in seen["probe"].items():
        assert probe["title"] == "Journeys report" and probe["lang"] == "en"
        assert len(probe["charts"]) == 10, name
        for chart in probe["charts"]:
            # a mark per bar, segment or answered week (weeks without answers are gaps)
            assert chart["points"] > 0 and chart["marks"] > 0 and chart["titled"]
            assert chart["width"] > 200, name  # drawn at a readable size
        assert probe["figures"] == 11 and probe["empty"] == 0  # the charts and the matrix
        assert probe["heat"] == 9  # 3 segments before x 3 after
        assert probe["overflow"] <= 0, f"{name}: the page scrolls sideways"
        assert probe["resources"] == []  # nothing fetched besides the page itself
