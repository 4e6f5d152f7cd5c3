"""A real browser for the web UI checks: Debian's chromium driven by selenium through
Debian's chromedriver (``.ci/run`` installs both; nothing is downloaded)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from support.browser import FLAGS, chromium


@contextmanager
def browser(width: int = 1400, height: int = 1000) -> Iterator[object]:
    """A headless Chromium session (quit on exit, pass or fail)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    driver_path = shutil.which("chromedriver")
    assert driver_path, "chromedriver is not installed (bash .ci/run installs chromium-driver)"
    with tempfile.TemporaryDirectory(prefix="pegbench-selenium-") as profile:
        options = Options()
        options.binary_location = chromium()
        for flag in (*FLAGS, "--disable-dev-shm-usage", f"--user-data-dir={profile}",
                     f"--window-size={width},{height}"):
            options.add_argument(flag)
        driver = webdriver.Chrome(options=options, service=Service(driver_path))
        try:
            yield driver
        finally:
            driver.quit()


def wait_for(driver, condition, timeout_s: float = 30.0, what: str = "the page"):
    """``condition(driver)`` once truthy (WebDriverWait); a timeout names ``what``."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.25).until(condition)
    except TimeoutException:
        raise AssertionError(f"{what} did not appear within {timeout_s:g} s") from None
