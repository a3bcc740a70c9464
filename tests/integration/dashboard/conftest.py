"""A real Chromium for the dashboard's browser tests: Debian's `chromium` driven through its
`chromedriver` by Selenium, headless, one per session. The driver's path is given, so
Selenium Manager never looks for one on the network. Its PID and the browser's (its
children) are recorded and stopped by PID at the end if `quit` left any."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/lib/chromium/chromium"  # the binary: /usr/bin/chromium is a wrapper script
AXE = Path(__file__).parent / "assets" / "axe.min.js"
WIDTHS = {"desktop": (1280, 800), "phone": (375, 812)}


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state, ppid, …), None when gone."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _started(pid: int) -> str | None:
    fields = _stat(pid)
    return fields[19] if fields else None  # starttime: tells a reused PID from ours


def _descendants(pid: int) -> list[int]:
    """Every descendant of `pid`, from /proc (the browser and its helpers)."""
    by_parent: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        fields = _stat(int(entry.name)) if entry.name.isdigit() else None
        if fields:
            by_parent.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in by_parent.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class Browser:
    driver: Any  # selenium.webdriver.Chrome
    shots: Path
    pids: dict[int, str | None] = field(default_factory=dict)  # PID -> its start time

    def viewport(self, width: int, height: int) -> None:
        """An exact viewport (the headless window's size includes no chrome, but be sure)."""
        self.driver.execute_cdp_cmd(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def screenshot(self, name: str) -> list[Path]:
        """The whole page at each width (1280x800 and 375 wide), as PNGs under `shots`."""
        saved = []
        for label, (width, height) in WIDTHS.items():
            self.viewport(width, height)
            full = int(self.driver.execute_script("return document.documentElement.scrollHeight"))
            self.viewport(width, max(height, full))
            path = self.shots / f"{name}-{label}.png"
            self.driver.save_screenshot(str(path))
            saved.append(path)
        self.viewport(*WIDTHS["desktop"])
        return saved

    def axe(self) -> list[dict[str, Any]]:
        """axe-core's serious and critical violations on the page as it is (WCAG 2 A/AA)."""
        if not self.driver.execute_script("return typeof window.axe === 'object'"):
            self.driver.execute_script(AXE.read_text())
        violations: list[dict[str, Any]] = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(document, {runOnly: {type: 'tag', values: "
            "['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})"
            ".then(r => done(r.violations), e => done([{id: 'axe-error', impact: 'critical',"
            " help: String(e), nodes: []}]));"
        )
        return [v for v in violations if v.get("impact") in ("serious", "critical")]


def artifacts_dir() -> Path:
    root = os.environ.get("CONVEYOR_ARTIFACTS")
    base = Path(root) if root else Path(__file__).resolve().parents[3] / "artifacts"
    shots = base / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    return shots


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    if not (os.path.exists(CHROMEDRIVER) and os.path.exists(CHROMIUM)):
        pytest.skip("chromium and chromium-driver are not installed (scripts/install-host.sh)")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager, if ever asked, stays off the network
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--window-size=1280,800",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--lang=en-US",
    ):
        options.add_argument(arg)
    service = Service(executable_path=shutil.which("chromedriver") or CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_script_timeout(60)
    assert service.process is not None
    pids = {p: _started(p) for p in [service.process.pid, *_descendants(service.process.pid)]}
    b = Browser(driver, artifacts_dir(), pids)
    b.viewport(*WIDTHS["desktop"])
    try:
        yield b
    finally:
        with contextlib.suppress(Exception):
            driver.quit()
        # whatever quit left, by the PIDs recorded at the start (still the same processes)
        for pid, started in pids.items():
            if started is not None and _started(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
