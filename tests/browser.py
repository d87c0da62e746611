"""Headless Chromium for the tests that look at a page as a person would (the status page, report.html)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def chromium() -> str:
    """The browser's command; fails on CI (scripts/system-deps.sh installs it), skips elsewhere."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed on CI (scripts/system-deps.sh installs it)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return browser


def headless(browser: str, profile: Path, width: int, height: int, *extra: str) -> list[str]:
    """The command line up to the action (``--screenshot=…`` or ``--dump-dom``) and the URL."""
    return [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        *extra,
        f"--user-data-dir={profile}",
    ]
