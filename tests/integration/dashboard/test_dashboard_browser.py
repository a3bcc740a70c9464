"""The dashboard in a real Chromium against a real `conveyor server`: the example-style app
(tests/integration/gitops/server_world.py) deployed by a real pipeline (shell executor) at
version 1, then 2. Sign in, the overview; version 3's commit followed on its timeline page
while its pipeline runs and deploys, its job's log streaming live (a masked variable stays
masked), its JUnit results and artifact; version 4's running pipeline canceled from its
page, then its canceled build retried from the job table (and its unit through the API: the
pipeline passes, version 4 rolls out); the environment page, a rollback from the UI that
makes version 1 answer on the published port again, live updates, sign out; a viewer sees
no action and its forged POST is 403; a POST without the CSRF token is 403. axe-core checks
every page; every page is screenshot at 1280x800 and 375 wide (artifacts/screenshots/). The
observing pages: search the logs and open a line, the live tail shows a new replica's line,
a service's page (no metrics in the tests: it says so), alerts and checks, delivery.

The tests run in order and share one server and one browser (CI time)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from conveyor.testing.net import free_port
from tests.integration.dashboard.conftest import Browser
from tests.integration.gitops.server_world import ServerWorld, conveyor

WAIT = 120  # seconds: an upper bound for a wait-until, never a measured threshold
PRODUCTION_PORT = free_port()
CONVEYOR = """\
environments:
  staging:
    branch: main
    poll_interval: 1h
  production:
    promote_from: staging
    overrides:
      web:
        ports: {{"{staging}": {production}}}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, base_image: str) -> Iterator[ServerWorld]:
    w = ServerWorld(tmp_path_factory.mktemp("dash"), base_image, "dashb")
    (w.repo / "conveyor.yaml").write_text(
        CONVEYOR.format(staging=w.port, production=PRODUCTION_PORT)
    )
    w.push("1")
    w.start()
    try:
        w.wait_for(lambda: w.serving() == "1", "version 1 to serve")
        sha = w.push("2")
        assert w.hook(sha, "dash-2") == 202
        w.wait_for(lambda: w.serving() == "2", "version 2 to serve")
        yield w
    finally:
        w.close(conveyor)


@pytest.fixture(scope="module")
def tokens(world: ServerWorld) -> dict[str, str]:
    return {role: world.token(role) for role in ("viewer", "deployer")}


def until(browser: Browser, check: Any, what: str) -> Any:
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # a live region swapped between finding an element and reading it: look again
    return WebDriverWait(
        browser.driver,
        WAIT,
        poll_frequency=0.1,
        ignored_exceptions=[StaleElementReferenceException],
    ).until(lambda _d: check(), message=what)


def css(browser: Browser, selector: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return list(browser.driver.find_elements(By.CSS_SELECTOR, selector))


def check_page(browser: Browser, name: str) -> None:
    """No serious or critical axe violation, and the page's screenshots."""
    bad = browser.axe()
    browser.screenshot(name)
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} — "
        + "; ".join(str(n.get("target")) for n in v.get("nodes", [])[:5])
        for v in bad
    )


def sign_in(browser: Browser, world: ServerWorld, token: str, path: str = "/") -> None:
    browser.driver.get(world.url + path)
    until(browser, lambda: "/signin" in browser.driver.current_url, "the sign-in page")
    field = css(browser, "#token")[0]
    field.send_keys(token)
    field.submit()
    until(browser, lambda: browser.driver.current_url == world.url + path, f"{path} after sign-in")


def test_sign_in_then_the_overview(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    browser.driver.get(world.url + "/")
    assert "/signin" in browser.driver.current_url  # no session: to the sign-in page
    check_page(browser, "signin")
    sign_in(browser, world, tokens["deployer"])
    staging, production = css(browser, "section.card")
    assert "production" in production.text and "none yet" in production.text
    text = staging.text
    assert "staging" in text and "serving" in text
    assert "#2" in text  # the second release serves
    assert "version 2" in text and "by t" in text  # the commit's title and author
    assert "success" in text  # its pipeline
    assert "1/1" in text  # web: one replica ready of one
    assert "in sync" in text
    check_page(browser, "overview")


SECRET = "s3cr3t-dash-t0ken"  # a masked project variable: its value must never show
GATED = """\
stages: [build, test]
build:
  stage: build
  script:
    - echo "the token is $DEPLOY_TOKEN"
    - printf '\\033[32mgreen before the gate\\033[0m\\n'
    - while [ ! -e {gate} ]; do sleep 0.2; done
    - echo "after the gate"
    - echo '<testsuite name="cart" tests="2" failures="1">' > report.xml
    - echo '<testcase classname="cart" name="test_ok"/>' >> report.xml
    - echo '<testcase classname="cart" name="test_total">' >> report.xml
    - echo '<failure message="expected 3">expected 3, got 4</failure>' >> report.xml
    - echo '</testcase></testsuite>' >> report.xml
    - echo kept > out.txt
  artifacts:
    paths: [out.txt]
    reports:
      junit: report.xml
unit:
  stage: test
  needs: [build]
  script:
    - test -f compose.yaml
"""


def pipeline_of(world: ServerWorld, token: str, sha: str) -> dict[str, Any] | None:
    for p in world.api("/environments/staging/pipelines", token):
        if p["sha"] == sha:
            return dict(p)
    return None


def running_job(world: ServerWorld, token: str, sha: str, name: str) -> dict[str, Any] | None:
    """Job `name` of the pipeline of `sha`, once it runs."""
    p = pipeline_of(world, token, sha)
    if p is None:
        return None
    for j in world.api(f"/environments/staging/pipelines/{p['id']}/jobs", token):
        if j["name"] == name and j["status"] == "running":
            return {"pipeline": p["id"], **j}
    return None


def test_a_commit_followed_live(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    """Version 3: its timeline page open while its pipeline runs, its job's log streaming,
    then the pipeline's end, release and rollout appearing on the timeline without a reload."""
    d = browser.driver
    variables = world.work_of("staging") / ".conveyor" / "ci" / "variables.yaml"
    variables.write_text(f'DEPLOY_TOKEN: {{value: "{SECRET}", masked: true}}\n')
    gate = world.root / "gate-3"
    sha = world.push("3", pipeline=GATED.format(gate=gate))
    assert world.hook(sha, "dash-3") == 202
    job = world.wait_for(lambda: running_job(world, tokens["viewer"], sha, "build"), "build")
    pid, jid = job["pipeline"], job["id"]
    # the environment page links the running pipeline's commit to its timeline
    d.get(world.url + "/environments/staging")
    link = f'a[href="/environments/staging/commits/{sha}"]'
    until(browser, lambda: css(browser, link), "the commit's link")
    css(browser, link)[0].click()
    until(browser, lambda: d.current_url.endswith(f"/commits/{sha}"), "the timeline")
    assert "version 3" in d.page_source
    until(browser, lambda: "running" in css(browser, "[data-verdict]")[0].text, "running")
    timeline_tab = d.current_window_handle
    d.execute_script("window.__notReloaded = true")
    check_page(browser, "timeline-running")
    # the job's page in a second tab: the log so far, then lines as they come
    d.switch_to.new_window("tab")
    job_tab = d.current_window_handle
    d.get(f"{world.url}/environments/staging/pipelines/{pid}")
    until(browser, lambda: css(browser, "svg.graph"), "the pipeline's graph")
    assert len(css(browser, "svg.graph .edges path")) == 1  # unit needs build
    assert css(browser, f'a[href="/environments/staging/pipelines/{pid}/cancel"]')
    check_page(browser, "pipeline-running")
    d.get(f"{world.url}/environments/staging/pipelines/{pid}/jobs/{jid}")
    log = lambda: css(browser, "#log")[0].text  # noqa: E731
    until(browser, lambda: "green before the gate" in log(), "the log so far")
    assert css(browser, "#log span.ansi-fg-2")  # its colour
    assert "the token is [MASKED]" in log() and SECRET not in d.page_source
    assert "after the gate" not in log()
    d.execute_script("window.__notReloaded = true")
    gate.touch()
    until(browser, lambda: "after the gate" in log(), "a line streamed live")
    until(browser, lambda: css(browser, "#log[data-log-done]"), "the log's end")
    assert d.execute_script("return window.__notReloaded === true")  # appended, not reloaded
    assert SECRET not in d.page_source
    # the timeline follows: pipeline done, release, rollout, verdict
    d.switch_to.window(timeline_tab)
    until(
        browser,
        lambda: "succeeded" in css(browser, "[data-verdict]")[0].text,
        "the rollout's verdict on the timeline",
    )
    assert d.execute_script("return window.__notReloaded === true")  # swapped, not reloaded
    text = css(browser, "ol.timeline")[0].text
    assert "pipeline #" in text and "build (build)" in text and "release" in text
    check_page(browser, "timeline")
    world.wait_for(lambda: world.serving() == "3", "version 3 to serve")
    # the job's page once complete: JUnit results and the artifact
    d.switch_to.window(job_tab)
    d.get(f"{world.url}/environments/staging/pipelines/{pid}/jobs/{jid}")
    failure = css(browser, "ul.failures li")[0].text
    assert "cart.test_total" in failure and "expected 3" in failure  # its JUnit message
    href = f"/environments/staging/pipelines/{pid}/jobs/{jid}/artifacts/out.txt"
    assert css(browser, f'a[href="{href}"]')
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    got = httpx.get(world.url + href, cookies=cookies, timeout=60)
    assert got.status_code == 200 and got.text == "kept\n"
    check_page(browser, "job")
    d.close()
    d.switch_to.window(timeline_tab)
    d.get(f"{world.url}/environments/staging/pipelines")
    check_page(browser, "pipelines")


def test_cancel_a_running_pipeline(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    d = browser.driver
    sha = world.push("4", pipeline=GATED.format(gate=world.root / "gate-never"))
    assert world.hook(sha, "dash-4") == 202
    job = world.wait_for(lambda: running_job(world, tokens["viewer"], sha, "build"), "build")
    pid = job["pipeline"]
    d.get(f"{world.url}/environments/staging/pipelines/{pid}")
    css(browser, f'a[href="/environments/staging/pipelines/{pid}/cancel"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/cancel"), "the confirm step")
    check_page(browser, "confirm-cancel")
    css(browser, "form.confirm button[type=submit]")[0].click()
    until(browser, lambda: css(browser, ".notice-ok"), "the cancel's outcome")
    world.wait_for(
        lambda: (pipeline_of(world, tokens["viewer"], sha) or {}).get("status") == "canceled",
        "the pipeline to end canceled",
    )
    until(browser, lambda: "canceled" in css(browser, "#live dl.facts")[0].text, "shown live")
    assert world.serving() == "3"  # version 4 was never deployed


def test_retry_the_canceled_job_then_its_commit_rolls_out(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    """Version 4's canceled build retried from its pipeline's job table: a new attempt runs
    (the gate is open now) and succeeds. Its canceled `unit` stays canceled, as on GitLab
    (only skipped jobs after a retried one run again), so the pipeline stays canceled until
    `unit` is retried too (through the API here); then it is green, live on the page, and the
    commit the environment held back rolls out."""
    d = browser.driver
    p = world.api("/environments/staging/pipelines", tokens["viewer"])[0]
    jobs_path = f"/environments/staging/pipelines/{p['id']}/jobs"
    jobs = world.api(jobs_path, tokens["viewer"])
    build = next(j for j in jobs if j["name"] == "build")
    unit = next(j for j in jobs if j["name"] == "unit")
    assert (p["status"], build["status"], unit["status"]) == ("canceled",) * 3
    (world.root / "gate-never").touch()
    base = f"/environments/staging/pipelines/{p['id']}"
    d.get(world.url + base)
    css(browser, f'a[href="{base}/jobs/{build["id"]}/retry"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/retry"), "the confirm step")
    assert "Retry build of pipeline" in d.page_source
    check_page(browser, "confirm-retry")
    css(browser, "form.confirm button[type=submit]")[0].click()
    until(browser, lambda: css(browser, ".notice-ok"), "the retry's outcome")

    def retried() -> bool:
        last = world.api(jobs_path, tokens["viewer"])[-1]
        return bool(last["name"] == "build" and last["status"] == "success")

    world.wait_for(retried, "the new attempt of build to pass")
    until(
        browser,
        lambda: any(
            "attempt 2" in r.text and "success" in r.text
            for r in css(browser, "#live table tbody tr")
        ),
        "the new attempt shown live",
    )
    assert "canceled" in css(browser, "#live dl.facts")[0].text
    auth = {"Authorization": f"Bearer {tokens['deployer']}"}
    r = httpx.post(f"{world.url}/api/v1{jobs_path}/{unit['id']}/retry", headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    until(browser, lambda: "success" in css(browser, "#live dl.facts")[0].text, "green, live")
    check_page(browser, "pipeline-retried")
    world.wait_for(lambda: world.serving() == "4", "version 4 to serve")


def test_roll_back_from_the_environment_page(browser: Browser, world: ServerWorld) -> None:
    d = browser.driver
    css(browser, 'nav.envs a[href="/environments/staging"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/environments/staging"), "staging's page")
    assert "Actions" in d.page_source
    check_page(browser, "environment")
    css(browser, 'a[href="/environments/staging/actions/rollback?release=1"]')[0].click()
    until(browser, lambda: "/actions/rollback" in d.current_url, "the confirm step")
    assert "Roll staging back to release #1?" in d.page_source
    check_page(browser, "confirm-rollback")
    serving = world.serving()
    assert serving == "4"  # asking changed nothing (version 4: its retried pipeline passed)
    css(browser, "form.confirm button[type=submit]")[0].click()
    until(browser, lambda: css(browser, ".notice-ok"), "the rollback's outcome")
    assert d.current_url.endswith("/environments/staging")
    world.wait_for(lambda: world.serving() == "1", "version 1 to answer again")
    # the page shows release 1 serving
    until(browser, lambda: "#1" in css(browser, "#live dl.facts")[0].text, "release 1 shown")
    check_page(browser, "environment-after-rollback")


def test_promote_from_the_environment_page(browser: Browser, world: ServerWorld) -> None:
    d = browser.driver
    css(browser, 'nav.envs a[href="/environments/production"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/environments/production"), "its page")
    assert "none yet" in css(browser, "#live dl.facts")[0].text  # nothing deployed
    css(browser, 'a[href="/environments/production/actions/promote?from=staging"]')[0].click()
    until(browser, lambda: "/actions/promote" in d.current_url, "the confirm step")
    check_page(browser, "confirm-promote")
    css(browser, "form.confirm button[type=submit]")[0].click()
    until(browser, lambda: css(browser, ".notice-ok"), "the promotion's outcome")
    assert world.serving(PRODUCTION_PORT) == "1"  # staging's release, now in production


def test_the_overview_follows_events_live(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    d = browser.driver
    d.get(world.url + "/")
    until(browser, lambda: css(browser, "[data-live-status]")[0].text == "live", "the stream")
    d.execute_script("window.__notReloaded = true")
    auth = {"Authorization": f"Bearer {tokens['deployer']}"}
    r = httpx.post(f"{world.url}/api/v1/environments/staging/suspend", headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    answered = time.monotonic()
    until(
        browser,
        lambda: "suspended" in css(browser, "section.card .card-head")[0].text,
        "the overview to show staging suspended",
    )
    shown = time.monotonic() - answered
    assert d.execute_script("return window.__notReloaded === true")  # a swap, not a reload
    print(f"live update: shown {shown:.2f} s after the API answered")
    r = httpx.post(f"{world.url}/api/v1/environments/staging/resume", headers=auth, timeout=120)
    assert r.status_code == 200, r.text
    until(
        browser,
        lambda: "suspended" not in css(browser, "section.card .card-head")[0].text,
        "the overview to show staging resumed",
    )
    check_page(browser, "overview")  # both environments serving


def test_logs_search_a_line_and_the_live_tail(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    d = browser.driver
    css(browser, 'nav.sections a[href="/logs"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/environments/staging/logs"), "the logs")
    field = css(browser, "#f-text")[0]
    field.send_keys("serving")
    field.submit()
    until(browser, lambda: "text=serving" in d.current_url, "the search's answer")
    lines = [e.text for e in css(browser, "li.logline")]
    assert lines and all("serving" in t for t in lines)
    assert any("serving version 1" in t for t in lines)  # the app's replica after the rollback
    check_page(browser, "logs")
    css(browser, "li.logline a")[0].click()
    until(browser, lambda: "/logs/lines/" in d.current_url, "a line's page")
    assert "serving version" in css(browser, "pre.logmsg")[0].text
    facts = css(browser, "dl.facts")[0].text
    assert "web" in facts and "stdout" in facts
    assert css(browser, "#neighbours li.current")  # the line among its replica's
    check_page(browser, "log-line")
    # the live tail: a rollback starts a replica of release 2, which says so
    d.get(world.url + "/environments/staging/logs?text=serving&follow=1")
    until(browser, lambda: css(browser, "[data-live-status]")[0].text == "live", "the tail")
    before = len(css(browser, "li.logline"))
    auth = {"Authorization": f"Bearer {tokens['deployer']}"}
    r = httpx.post(
        f"{world.url}/api/v1/environments/staging/rollback",
        json={"to_release": 2},
        headers=auth,
        timeout=120,
    )
    assert r.status_code == 200, r.text
    until(
        browser,
        lambda: (
            len(css(browser, "li.logline")) > before
            and "serving version 2" in css(browser, "li.logline")[0].text
        ),
        "the new replica's line on top of the tail",
    )
    check_page(browser, "logs-live")


def test_services_alerts_and_delivery_pages(browser: Browser, world: ServerWorld) -> None:
    d = browser.driver
    d.get(world.url + "/services")
    check_page(browser, "services")
    css(browser, 'a[href="/environments/staging/services/web"]')[0].click()
    until(browser, lambda: d.current_url.endswith("/services/web"), "web's page")
    replicas = css(browser, "section[aria-labelledby=rep-h] tbody tr")
    assert replicas and "#2" in replicas[0].text
    red = css(browser, "section[aria-labelledby=red-h]")[0]
    # the tests run without metrics (CONVEYOR_METRICS=0): the page says so, no empty chart
    assert css(browser, ".uplot") or "No metrics" in red.text, red.text
    check_page(browser, "service")
    d.get(world.url + "/alerts")
    page = css(browser, "main")[0].text
    assert "Firing" in page and "Silences" in page and "Checks (Nagios)" in page
    assert "Nagios does not run for it" in page  # CONVEYOR_CHECKS=off in the tests
    check_page(browser, "alerts")
    d.get(world.url + "/delivery")
    staging = css(browser, "main section.panel")[0]
    assert "Deployment frequency" in staging.text and "Change failure rate" in staging.text
    assert (
        len(
            css(browser, "main section.panel")[0].find_elements(
                "css selector", "table.trend tbody tr"
            )
        )
        == 6
    )
    assert css(browser, 'a[href="/environments/staging/actions/suspend"]')
    check_page(browser, "delivery")


def test_sign_out(browser: Browser, world: ServerWorld) -> None:
    d = browser.driver
    css(browser, "form.signout button")[0].click()
    until(browser, lambda: d.current_url.endswith("/signin"), "the sign-in page")
    d.get(world.url + "/environments/staging")
    assert "/signin" in d.current_url  # the session is over


def test_a_viewer_has_no_action_and_forged_posts_are_403(
    browser: Browser, world: ServerWorld, tokens: dict[str, str]
) -> None:
    d = browser.driver
    sign_in(browser, world, tokens["viewer"], "/environments/staging")
    assert not css(browser, 'a[href*="/actions/"]')
    assert not css(browser, "#actions-h")
    check_page(browser, "environment-viewer")
    pipelines = world.api("/environments/staging/pipelines", tokens["viewer"])
    d.get(f"{world.url}/environments/staging/pipelines/{pipelines[0]['id']}")
    assert not css(browser, 'a[href$="/cancel"]')
    # version 4's pipeline, though the work tree is back at version 1 (its file has no needs)
    assert len(css(browser, "svg.graph .edges path")) == 1
    check_page(browser, "pipeline-viewer")
    # forged: the viewer's own session cookie and CSRF token, posted by hand
    cookies = {c["name"]: c["value"] for c in d.get_cookies()}
    token = re.search(r'name="csrf_token" value="([^"]+)"', d.page_source)
    assert token is not None
    r = httpx.post(
        f"{world.url}/environments/staging/actions/rollback",
        data={"csrf_token": token.group(1), "release": "2"},
        cookies=cookies,
        timeout=60,
    )
    assert r.status_code == 403 and "deployer role" in r.text
    d.get(world.url + "/environments/nope")
    check_page(browser, "not-found")


def test_a_post_without_the_csrf_token_is_403(world: ServerWorld, tokens: dict[str, str]) -> None:
    with httpx.Client(base_url=world.url, timeout=60, follow_redirects=True) as c:
        form = c.get("/signin")
        signin_csrf = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
        assert signin_csrf is not None
        r = c.post(
            "/signin", data={"token": tokens["deployer"], "csrf_token": signin_csrf.group(1)}
        )
        assert r.status_code == 200 and "Overview" in r.text  # followed to the overview
        refused = c.post("/environments/staging/actions/suspend", data={})
        assert refused.status_code == 403
        detail = c.get(
            "/api/v1/environments/staging",
            headers={"Authorization": f"Bearer {tokens['deployer']}"},
        ).json()
        assert detail["environment"]["suspended"] is False
