"""The status page in a real browser: health, progress, reasons, search, hostile names as text.

`DROPBOX_IMPORTER_SCREENSHOT=docs/status-page.png` writes the README's screenshot on the way.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By

from tests.daemon.harness import DaemonProcess, free_port, wait_for, write_config
from tests.daemon.test_status_daemon import box_of, status
from tests.web.browser import browser

pytestmark = pytest.mark.slow
__all__ = ["browser"]  # the fixture, used by name

HOSTILE = "<script>alert('owned')<!--.csv"


def _cells(row: Any) -> list[str]:
    return [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]


def test_the_status_page_in_a_browser(
    tmp_path: Path, make_sandbox: Callable[..., Any], browser: webdriver.Chrome
) -> None:
    sandbox = make_sandbox(rows_per_second=150.0, job_overhead_seconds=0.05, window_seconds=2.0)
    acme, globex = tmp_path / "acme", tmp_path / "globex"
    config = write_config(
        tmp_path,
        base_url=sandbox.base_url,
        client_id=sandbox.settings.client_id,
        client_secret=sandbox.settings.client_secret,
        dropboxes={"acme": {"root": str(acme)}, "globex": {"root": str(globex)}},
    )
    port = free_port()
    data = yaml.safe_load(config.read_text())
    data["web"] = {"listen": f"127.0.0.1:{port}"}
    config.write_text(yaml.safe_dump(data))
    daemon = DaemonProcess(config, tmp_path / "daemon.log").start()
    url = f"http://127.0.0.1:{port}/"
    try:
        for root in (acme, globex):
            (root / "inbox" / "csv").mkdir(parents=True)
        (acme / "inbox" / "csv" / "newsletter.csv").write_text("email\nada@example.com\n")
        wait_for((acme / "done" / "csv" / "newsletter.csv").exists, what="newsletter.csv done")
        (globex / "inbox" / "csv" / HOSTILE).write_text("emial\nx@example.com\n")
        wait_for((globex / "failed" / "csv" / HOSTILE).exists, what="the hostile file failed")
        rows = "".join(f"lead{n}@example.com\n" for n in range(3000))
        (acme / "inbox" / "csv" / "big-export.csv").write_text("email\n" + rows)
        wait_for(
            lambda: any(
                f["rows"]["processed"] > 0 for f in box_of(status(config)[0], "acme")["in_flight"]
            ),
            timeout=30,
            what="the big file importing",
        )

        browser.get(url)
        assert browser.title == "dropbox-importer"
        assert browser.find_element(By.ID, "daemon").text.startswith("Daemon running since")
        (instance,) = browser.find_elements(By.CSS_SELECTOR, "#instances tbody tr")
        assert _cells(instance)[:2] == ["main", "ok"]

        (flying,) = browser.find_elements(By.CSS_SELECTOR, "#box-acme table.in-flight tbody tr")
        progress = flying.find_element(By.TAG_NAME, "progress")
        assert 0 < int(progress.get_attribute("value") or 0) < 3000
        assert progress.get_attribute("max") == "3000"
        assert "importing:" in _cells(flying)[-1]
        screenshot = os.environ.get("DROPBOX_IMPORTER_SCREENSHOT")
        if screenshot:  # a third of the way through reads better than a bar just begun

            def shown() -> int:
                browser.refresh()
                bar = browser.find_element(By.CSS_SELECTOR, "#box-acme progress")
                return int(bar.get_attribute("value") or 0)

            wait_for(lambda: shown() > 1000, timeout=30, what="a third imported")
            browser.save_screenshot(screenshot)

        (failed,) = browser.find_elements(By.CSS_SELECTOR, "#box-globex table.recent tbody tr")
        cells = _cells(failed)
        assert cells[1] == "failed"
        assert cells[2] == f"csv/{HOSTILE}"  # the name as text, not as markup
        assert "line 1: the lookup field 'email' is not a column of the header" in cells[4]
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018 - reading it raises when there is none
        assert browser.find_elements(By.TAG_NAME, "script") == []

        search = browser.find_element(By.NAME, "file")
        search.send_keys("script")
        search.submit()
        wait_for(lambda: "file=script" in browser.current_url, what="the search")
        found = browser.find_elements(By.CSS_SELECTOR, "table.recent tbody tr")
        assert [_cells(row)[2] for row in found] == [f"csv/{HOSTILE}"]
        assert browser.find_elements(By.CSS_SELECTOR, "#box-acme table.recent tbody tr") == []

        found[0].find_element(By.TAG_NAME, "a").click()
        wait_for(lambda: "/files/" in browser.current_url, what="the file's page")
        assert browser.find_element(By.ID, "file-title").text == f"csv/{HOSTILE}"
        events = [
            _cells(row)[1] for row in browser.find_elements(By.CSS_SELECTOR, "table.history tr")[1:]
        ]
        assert events[:2] == ["uploaded", "claimed"] and events[-1] == "failed"
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text  # noqa: B018
    finally:
        assert daemon.stop() == 0
