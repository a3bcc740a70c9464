"""Chromium through Selenium and Debian's chromedriver, as the image sets them up."""

import os
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By


def test_the_page_renders() -> None:
    page = Path("page.html").resolve()
    page.write_text('<title>Selenium check</title><p id="n"></p><script>n.textContent = 6 * 7</script>')
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ["CHROME_BIN"]
    driver = webdriver.Chrome(service=Service(os.environ["CHROMEDRIVER"]), options=options)
    try:
        driver.get(page.as_uri())
        assert driver.title == "Selenium check"
        assert driver.find_element(By.ID, "n").text == "42"
        shots = Path(os.environ["SCREENSHOTS"])
        shots.mkdir(exist_ok=True)
        assert driver.save_screenshot(str(shots / "page.png"))
    finally:
        driver.quit()

