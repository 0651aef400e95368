"""A real headless Chromium driven through chromium-driver (WebDriver), from Debian's packages.

Missing, they are installed with apt-get when the tests run as root (as CI does); elsewhere the
tests that need them skip, saying why. The browser starts with a fresh profile and without any
of its own network traffic (updates, sync, safe browsing), so it talks to the page under test
only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

PACKAGES = ("chromium", "chromium-driver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--window-size=1280,1000",
)


def _skip(reason: str) -> None:
    print(f"status page browser test skipped: {reason}")  # shown with -s and in the CI log
    pytest.skip(reason)


def find_or_install() -> tuple[str, str]:
    """The chromium and chromedriver executables; apt-get installs them as root if missing."""
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if all(found):
        return found[0] or "", found[1] or ""
    if os.geteuid() != 0:
        _skip("chromium and chromium-driver are not installed, and installing needs root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *PACKAGES]):
        try:
            done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            _skip(f"cannot install {' '.join(PACKAGES)}: {exc}")
        if done.returncode != 0:
            _skip(f"cannot install {' '.join(PACKAGES)}: {done.stderr[-500:]}")
    found = shutil.which("chromium"), shutil.which("chromedriver")
    if not all(found):
        _skip(f"{' '.join(PACKAGES)} installed, yet chromium or chromedriver is not on PATH")
    return found[0] or "", found[1] or ""


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a profile of its own, quit at the end of the test."""
    chromium, chromedriver = find_or_install()
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(options=options, service=Service(executable_path=chromedriver))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
