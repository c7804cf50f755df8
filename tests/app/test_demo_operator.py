"""The demo, seen as an operator sees it: its alerts in a real Alertmanager, its fleet in the
dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``, driven
by Selenium).

One shortened demo run (its own broker, training, model server, Flink job and simulated fleet);
the checks run in its ``on_ready`` hook, with everything still up.
"""

from __future__ import annotations

import numpy as np
import pytest
import requests

from sensorwatch.app.demo import run_demo
from sensorwatch.core.config import Settings
from sensorwatch.core.optional import system_program
from sensorwatch.core.retry import wait_until
from webhook import Receiver

pytestmark = pytest.mark.integration


def chromium():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = system_program("chromium", "chromium")
    for arg in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,1000",
    ):
        opts.add_argument(arg)
    return webdriver.Chrome(options=opts, service=Service(system_program("chromedriver", "chromium-driver")))


def firing(am) -> set[str]:
    return {a["labels"]["incident_id"] for a in am.alerts()}


def received_total(am_url: str) -> float:
    """Alertmanager's own count of alerts it received (firing and resolved)."""
    text = requests.get(f"{am_url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("alertmanager_alerts_received_total{")
    )


def test_the_demo_reaches_alertmanager_and_the_dashboard_in_a_browser(tmp_path):
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    settings = Settings()
    settings.stack.work_dir = tmp_path / "stack"
    receiver = Receiver()
    checked = []

    def check(run) -> None:
        wanted = [r for r in run.incidents if not r["learning"]]
        opened = {r["incident_id"] for r in wanted if r["event"] == "opened"}
        closed = {r["incident_id"] for r in wanted if r["event"] == "closed"}
        assert opened, "the demo's fleet opened no incident to look at"
        # --- Alertmanager: every incident reached it; what it notified is exactly the incidents
        am = run.alertmanager
        assert am is not None, "prometheus-alertmanager is part of the set-up"
        assert received_total(am.url) >= len(opened)
        still_open = opened - closed
        # what Alertmanager still holds as firing, beyond the incidents still open, and their records
        assert wait_until(lambda: firing(am) == still_open, 30), (
            sorted(firing(am) - still_open),
            sorted(still_open - firing(am)),
            [(r["event"], r["start"], r["end"]) for r in run.incidents if r["incident_id"] in firing(am) - still_open][
                :6
            ],
        )
        # resolved notifications follow the firing ones of incidents that closed
        assert wait_until(
            lambda: (
                {i for i, st in receiver.got if st == "firing"} & closed
                <= {i for i, st in receiver.got if st == "resolved"}
            ),
            60,
        ), receiver.got
        assert wait_until(lambda: still_open <= {i for i, st in receiver.got if st == "firing"}, 30), receiver.got
        fired = [i for i, st in receiver.got if st == "firing"]
        resolved = [i for i, st in receiver.got if st == "resolved"]
        assert fired and len(fired) == len(set(fired)) and len(resolved) == len(set(resolved)), "no duplicates"
        assert set(fired) <= opened and set(resolved) <= closed
        # --- the dashboard in Chromium
        browser = chromium()
        try:
            # the table is replaced in place when records arrive: a stale element is looked up again
            wait = WebDriverWait(browser, 30, ignored_exceptions=(StaleElementReferenceException,))

            def rows(b) -> set[str]:
                return {e.get_attribute("data-sensor") for e in b.find_elements(By.CSS_SELECTOR, "tr[data-sensor]")}

            browser.get(run.dashboard_url)
            # every sensor of the demo fleet is listed (the feed may still be a moment behind the ledger)
            wait.until(lambda b: set(run.fleet.sensors) <= rows(b))
            # live updates arrive (server-sent events): the record count is filled in
            wait.until(lambda b: int(b.find_element(By.CSS_SELECTOR, "#live [data-field=records]").text) > 0)
            incident = next(r for r in wanted if r["event"] == "opened")
            wait.until(
                lambda b: b.find_element(By.CSS_SELECTOR, f'tr[data-sensor="{incident["sensor"]}"] a').click() or 1
            )
            wait.until(ec.title_contains(incident["sensor"]))
            span = wait.until(
                lambda b: b.find_element(
                    By.CSS_SELECTOR, f'#chart rect.incident-span[data-incident="{incident["incident_id"]}"]'
                )
            )
            assert span.size["width"] > 0 and span.size["height"] > 0
            assert browser.find_elements(By.CSS_SELECTOR, "#chart path.score-line")
            assert browser.find_element(By.CSS_SELECTOR, f'tr[data-incident="{incident["incident_id"]}"]')
            shot = tmp_path / "sensor.png"
            assert browser.save_screenshot(str(shot))
            import matplotlib.image

            pixels = matplotlib.image.imread(str(shot))
            assert pixels.std() > 0.05 and len(np.unique(pixels.reshape(-1, pixels.shape[-1]), axis=0)) > 50
            # the models page: the model that scored it, with its state on the real model server
            model = incident["model_name"]
            browser.get(f"{run.dashboard_url}/models/{model}")
            badges = browser.find_elements(By.CSS_SELECTOR, "section.version .badge")
            assert badges and "AVAILABLE" in badges[0].text, browser.page_source[-3000:]
        finally:
            browser.quit()
        checked.append(len(opened))

    rc = run_demo(
        settings, duration_s=900.0, speed=40.0, on_ready=check, alert_webhook=receiver.url, wait_for_enter=False
    )
    receiver.close()
    assert rc == 0 and checked
