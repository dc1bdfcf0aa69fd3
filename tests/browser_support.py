"""A real browser for the browser tests, and the web servers it talks to.

* :func:`chromium` starts Debian's headless Chromium through its ``chromedriver`` with
  Selenium (no browser is ever downloaded: the binaries are the ones ``.ci/run`` installs
  with apt). Where there is no Chromium, or no Selenium, the test skips and says which;
  under CI (``CI`` set) on a machine with apt-get a missing browser is a failure instead, so
  a broken install step cannot pass as a skip.
* :class:`WSGIServer` and :class:`ASGIServer` serve an app on 127.0.0.1 on a free port in
  a background thread (werkzeug's server, uvicorn), started before the app exists when the
  app needs its own address (the sandbox forwards webhooks to it).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("PAYGATE_CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("PAYGATE_CHROMEDRIVER", "/usr/bin/chromedriver"))

# common.md's flags: headless, nothing fetched from the network by the browser itself
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1024,900",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
)


def _unavailable(reason: str) -> None:
    if os.environ.get("CI") and shutil.which("apt-get"):
        # .ci/run installs the browser where apt-get is: its absence is a broken step
        pytest.fail(f"{reason} (CI installs it: see .ci/run)")
    pytest.skip(reason)


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium driven by Selenium, closed (and its profile removed) on exit."""
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not os.access(binary, os.X_OK):
            _unavailable(
                f"no browser: {binary} not found (apt-get install chromium chromium-driver)"
            )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (pip install --group browser)")
    profile = tempfile.mkdtemp(prefix="paygate-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # an explicit driver path: Selenium Manager (which downloads drivers) never runs
    service = Service(str(CHROMEDRIVER), log_output=os.devnull)
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(condition: Callable[[], Any], *, timeout: float = 15.0, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(0.05)


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


class WSGIServer:
    """A WSGI app on a free 127.0.0.1 port (werkzeug, threaded). Its address is known at
    construction; the app may be set afterwards (``server.app = ...``)."""

    def __init__(self, app: Any = None) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self._socket = _listening_socket()
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = make_server(
            "127.0.0.1", self.port, self._dispatch, threaded=True, fd=self._socket.fileno()
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"wsgi-{self.port}", daemon=True
        )

    def _dispatch(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.app is None:
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"not ready"]
        return self.app(environ, start_response)

    def __enter__(self) -> WSGIServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)
        self._socket.close()


class ASGIServer:
    """An ASGI app on a free 127.0.0.1 port (uvicorn in a thread with its own event loop)."""

    def __init__(self, app: Any = None) -> None:
        self.app = app
        self._socket = _listening_socket()
        self.port = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server: Any = None
        self._thread = threading.Thread(target=self._run, name=f"asgi-{self.port}", daemon=True)

    async def _dispatch(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            message = await receive()
            while message["type"] != "lifespan.shutdown":
                await send({"type": message["type"] + ".complete"})
                message = await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        assert self.app is not None, "the app is not set yet"
        await self.app(scope, receive, send)

    def _run(self) -> None:
        import uvicorn

        config = uvicorn.Config(
            self._dispatch, interface="asgi3", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config)
        asyncio.run(self._server.serve(sockets=[self._socket]))

    def __enter__(self) -> ASGIServer:
        self._thread.start()
        wait_for(lambda: self._server is not None and self._server.started, what="uvicorn")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.should_exit = True
        self._thread.join(10)
        self._socket.close()
