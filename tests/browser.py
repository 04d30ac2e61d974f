"""A real browser and a real server for the monitor: Debian's chromium driven by Selenium through
chromium-driver (``make test`` installs both), and the monitor's app under uvicorn on 127.0.0.1."""

from __future__ import annotations

import contextlib
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


@contextlib.contextmanager
def chromium(width: int = 1200, height: int = 900) -> Iterator[object]:
    """A headless Chromium with a fresh profile; AssertionError naming the fix when it is not installed."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    assert CHROMEDRIVER.exists() and CHROMIUM.exists(), (
        "the monitor's browser tests need Debian's chromium and chromium-driver: `make test` installs them "
        "(apt-get install -y chromium chromium-driver)")
    with tempfile.TemporaryDirectory(prefix="framefarm-chromium-") as profile:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in (*FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
        try:
            driver.set_page_load_timeout(60)
            yield driver
        finally:
            driver.quit()


@contextlib.contextmanager
def serving(app: object) -> Iterator[str]:
    """``app`` under uvicorn on a free port of 127.0.0.1, as ``framefarm monitor`` serves it; yields its URL."""
    import uvicorn

    from framefarm.cli.monitor import bind
    from tests.helpers import eventually

    listener = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        eventually(lambda: server.started, timeout=30, what="the monitor serving")
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        listener.close()
