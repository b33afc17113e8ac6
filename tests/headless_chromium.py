"""Debian's headless Chromium driven by Selenium through the system chromedriver (never downloads).

Used by ``tests/test_view_browser.py`` and ``bench/view_latency.py``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync")


def missing_reason() -> str | None:
    """Why the browser cannot be started here (None: it can)."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not Path(path).is_file():
            return f"{path} not found (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    return None


@contextmanager
def chromium(width: int = 1400, height: int = 1000) -> Iterator:
    """A Selenium Chrome driver on Debian's Chromium with a fresh profile, quit on exit."""
    os.environ["SE_OFFLINE"] = "true"  # selenium-manager must never fetch a driver
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="sesim-chromium-")
    for flag in (*FLAGS, f"--window-size={width},{height}", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_script_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 60):
    """Poll ``script`` (JavaScript returning a value) until it is truthy; return that value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(script)
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for: {script}")


def click(driver, canvas, point: tuple[int, int], scale: int) -> None:
    """Click image pixel ``point = (x, y)`` of a canvas showing ``scale`` screen pixels per image pixel."""
    from selenium.webdriver.common.action_chains import ActionChains

    w, h = canvas.size["width"], canvas.size["height"]
    x, y = (point[0] + 0.5) * scale - w / 2, (point[1] + 0.5) * scale - h / 2  # offsets from the centre
    ActionChains(driver).move_to_element_with_offset(canvas, round(x), round(y)).click().perform()
