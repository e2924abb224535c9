"""Headless Chromium (Debian's `chromium` package) driven by Playwright; nothing is downloaded at test time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = os.environ.get("COMMGRID_TEST_CHROMIUM", "/usr/bin/chromium")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API holds an event loop while it runs, which the asyncio tests after these
    must not find."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (`apt-get install -y chromium`;"
                    " .ci/run does it).")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory) -> Path:
    """Where the console tests save their screenshots: `COMMGRID_TEST_SCREENSHOTS=docs` refreshes the README's;
    by default a scratch folder, so running the tests leaves the checkout as it was."""
    chosen = os.environ.get("COMMGRID_TEST_SCREENSHOTS")
    return Path(chosen) if chosen else tmp_path_factory.mktemp("screenshots")
