"""Render an HTML file in headless Chromium: a full-page screenshot and the console errors.

The test side of the self-contained pages (:mod:`plantguard.reports.page`): a page
that a person will open must render, show something, and log no error.  Used by
the report tests and the acceptance tests::

    from browser import is_blank, render

    errors = render(tmp_path / "report.html", tmp_path / "report.png")
    assert errors == []
    assert not is_blank(tmp_path / "report.png")

Chromium is Debian's ``chromium`` package at ``/usr/bin/chromium`` (``make test``
installs it: the ``chromium`` target of the Makefile).  It is driven over the
DevTools protocol on a pipe (``--remote-debugging-pipe``: file descriptors 3 and
4 of the browser, NUL-separated JSON), so no port is opened and nothing beyond
the standard library is needed.  The browser runs with a fresh profile in a
temporary directory, which is removed afterwards.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.image import imread

__all__ = ["CHROMIUM", "BrowserError", "is_blank", "render"]

CHROMIUM = Path(os.environ.get("PLANTGUARD_CHROMIUM", "/usr/bin/chromium"))

#: Taller pages are cut here in the screenshot (Chromium's texture limit is 16384 px).
MAX_HEIGHT = 16_000

_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--remote-debugging-pipe",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-default-apps",
    "--disable-sync",
    "--metrics-recording-only",
    "--mute-audio",
    "--hide-scrollbars",
    "--force-color-profile=srgb",
)


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not answer in time."""


class _Pipe:
    """The DevTools protocol over Chromium's pipe: commands out, replies and events in."""

    def __init__(self, to_browser: int, from_browser: int, deadline: float) -> None:
        self._out = to_browser
        self._in = from_browser
        self._buffer = b""
        self._next_id = 0
        self.deadline = deadline
        self.events: list[dict[str, Any]] = []

    def send(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        """Send a command and wait for its reply; events that arrive meanwhile are kept."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        data = json.dumps(message).encode() + b"\0"
        while data:
            data = data[os.write(self._out, data) :]
        while True:
            reply = self._receive()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise BrowserError(f"{method}: {reply['error'].get('message', reply['error'])}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        """The first event ``method`` (already received or still to come)."""
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._receive()
            if "method" in message:
                self.events.append(message)
                if message["method"] == method:
                    return message

    def _receive(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise BrowserError("Chromium did not answer in time")
            ready, _, _ = select.select([self._in], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise BrowserError("Chromium closed the DevTools pipe (did it crash?)")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        parsed: dict[str, Any] = json.loads(message)
        return parsed


def _high_fd(fd: int) -> int:
    """``fd`` duplicated to a number ≥ 10 (so the 3/4 redirections of the shell cannot clash)."""
    high = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return high


def _console_errors(events: list[dict[str, Any]]) -> list[str]:
    errors = []
    for event in events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(
                str(a.get("value", a.get("description", ""))) for a in params.get("args", [])
            )
            errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            exception = details.get("exception", {})
            errors.append(f"exception: {exception.get('description') or details.get('text', '')}")
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            if entry.get("level") == "error":
                where = f" ({entry['url']})" if entry.get("url") else ""
                errors.append(f"{entry.get('source', 'log')}: {entry.get('text', '')}{where}")
    return errors


def render(
    html: Path,
    png: Path,
    *,
    width: int = 1280,
    height: int = 900,
    timeout: float = 60.0,
) -> list[str]:
    """Open ``html`` in headless Chromium, write a full-page screenshot to ``png``,
    return the console errors (empty when the page is clean).

    ``width`` × ``height`` is the window (CSS pixels); the screenshot covers the
    whole page's height (at most :data:`MAX_HEIGHT`).  Errors are console
    ``error``/``assert`` calls, uncaught exceptions, and the browser's own error
    log entries (a resource that failed to load, a blocked request …), each a line
    of text naming its source.  Raises :class:`BrowserError` if Chromium is not
    installed, does not start or does not finish within ``timeout`` seconds.
    """
    if not CHROMIUM.exists():
        raise BrowserError(
            f"{CHROMIUM} not found: install Debian's chromium (make chromium, "
            "or apt-get install -y chromium)"
        )
    url = Path(html).resolve().as_uri()
    profile = tempfile.mkdtemp(prefix="plantguard-chromium-")
    cmd_read, cmd_write = os.pipe()  # we write commands, the browser reads fd 3
    out_read, out_write = os.pipe()  # the browser writes fd 4, we read
    cmd_read, out_write = _high_fd(cmd_read), _high_fd(out_write)
    command = [
        "/bin/bash",
        "-c",
        f'exec "$0" "$@" 3<&{cmd_read} 4>&{out_write} {cmd_read}<&- {out_write}>&-',
        str(CHROMIUM),
        *_FLAGS,
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        "about:blank",
    ]
    process = subprocess.Popen(
        command,
        pass_fds=(cmd_read, out_write),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(cmd_read)
    os.close(out_write)
    pipe = _Pipe(cmd_write, out_read, time.monotonic() + timeout)
    try:
        target = pipe.send("Target.createTarget", url="about:blank")["targetId"]
        session = pipe.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log"):
            pipe.send(f"{domain}.enable", session)
        pipe.send(
            "Emulation.setDeviceMetricsOverride",
            session,
            width=width,
            height=height,
            deviceScaleFactor=1,
            mobile=False,
        )
        pipe.events.clear()
        navigation = pipe.send("Page.navigate", session, url=url)
        if navigation.get("errorText"):
            raise BrowserError(f"{url}: {navigation['errorText']}")
        pipe.wait_for("Page.loadEventFired")
        # Fonts loaded and two frames painted: what a person would see.
        pipe.send(
            "Runtime.evaluate",
            session,
            expression=(
                "document.fonts.ready.then(() => new Promise("
                "r => requestAnimationFrame(() => requestAnimationFrame(() => r(1)))))"
            ),
            awaitPromise=True,
        )
        metrics = pipe.send("Page.getLayoutMetrics", session)
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        shot = pipe.send(
            "Page.captureScreenshot",
            session,
            format="png",
            captureBeyondViewport=True,
            clip={
                "x": 0,
                "y": 0,
                "width": max(1, min(int(size["width"]), width)),
                "height": max(1, min(int(size["height"]), MAX_HEIGHT)),
                "scale": 1,
            },
        )
        Path(png).write_bytes(base64.b64decode(shot["data"]))
        errors = _console_errors(pipe.events)
        with contextlib.suppress(BrowserError):  # it may close the pipe before answering
            pipe.send("Browser.close")
        return errors
    finally:
        os.close(cmd_write)
        os.close(out_read)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(profile, ignore_errors=True)


def is_blank(png: Path, *, tolerance: float = 0.02, min_fraction: float = 0.005) -> bool:
    """Whether the image is (nearly) one colour: fewer than ``min_fraction`` of its
    pixels differ from the top-left pixel by more than ``tolerance`` (0–1 per channel).

    A white page with only a title is ~1 % ink, a report with plots far more; a page
    that failed to render (white, or Chromium's grey error page) is 0.
    """
    image = np.asarray(imread(str(png)), dtype=np.float64)
    if image.ndim == 2:
        image = image[:, :, None]
    rgb = image[:, :, :3]
    if rgb.size == 0:
        return True
    background = rgb[0, 0]
    differs = np.abs(rgb - background).max(axis=2) > tolerance
    return bool(differs.mean() < min_fraction)
