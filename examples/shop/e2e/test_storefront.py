"""Browser tests of the shop's storefront: Chromium driven by Selenium, against SHOP_URL.

The pipeline runs them in Conveyor's browser-test image (conveyor/selenium), which sets
CHROME_BIN, CHROMEDRIVER and SCREENSHOTS; screenshots of each step go to $SCREENSHOTS
(default: screenshots/), kept as job artifacts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

SHOP_URL = os.environ.get("SHOP_URL", "http://127.0.0.1:8080/")
SHOTS = Path(os.environ.get("SCREENSHOTS", "screenshots"))


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROME_BIN", "/usr/bin/chromium")
    # the image passes these to Chromium already; spelled out so the tests run anywhere:
    # headless, no sandbox in a container, no background traffic off this machine
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        service=Service(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver")), options=options
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def stock(driver: WebDriver, product: str) -> int:
    return int(driver.find_element(By.CSS_SELECTOR, f"#product-{product} .stock").text)


def test_storefront_lists_products(browser: WebDriver) -> None:
    browser.get(SHOP_URL)
    browser.save_screenshot(str(SHOTS / "01-storefront.png"))
    assert browser.title == "Shop"
    rows = browser.find_elements(By.CSS_SELECTOR, "#products tr[id^=product-]")
    assert len(rows) >= 3


def test_ordering_lowers_the_stock(browser: WebDriver) -> None:
    browser.get(SHOP_URL)
    product = browser.find_elements(By.CSS_SELECTOR, "#products tr[id^=product-]")[0]
    pid = product.get_attribute("id").removeprefix("product-")
    before = stock(browser, pid)
    product.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    browser.save_screenshot(str(SHOTS / "02-ordered.png"))
    assert "placed" in browser.find_element(By.ID, "message").text
    assert stock(browser, pid) == before - 1
