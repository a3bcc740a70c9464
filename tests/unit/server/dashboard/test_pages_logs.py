"""The logs page in process over the in-memory backend: search, a line's fields and
neighbours, the live tail's messages."""

from __future__ import annotations

from conveyor.server.dashboard.pages_logs import line_message
from tests.unit.server.dashboard.conftest import Dash


def _fill(dash: Dash) -> None:
    """Lines in the order a store gets them (one replica's in its time order)."""
    b = dash.backend
    for i in range(12):
        b.add_log("staging", f"tick {i}", replica="web-1", level="info", ts=1000.0 + i)
        if i == 5:
            b.add_log("staging", "other replica", replica="web-2", ts=1005.5)
            b.add_log(
                "staging",
                "order failed",
                replica="web-1",
                level="error",
                fields={"status": "500", "path": "/orders"},
                ts=1005.6,
            )


def test_the_logs_page_searches_with_the_filters_of_conveyor_logs(dash: Dash) -> None:
    _fill(dash)
    dash.sign_in("viewer")
    assert dash.client.get("/logs", follow_redirects=False).headers["location"] == (
        "/environments/staging/logs"
    )
    every = dash.client.get("/environments/staging/logs")
    assert every.status_code == 200
    stored = len(dash.backend.envs["staging"].log_records)
    assert stored >= 14 and every.text.count('<li class="logline') == stored
    assert every.text.index("order failed") < every.text.index("tick 0")  # newest first
    errors = dash.client.get("/environments/staging/logs", params={"level": "error"})
    assert "order failed" in errors.text and "tick 3" not in errors.text
    by_field = dash.client.get("/environments/staging/logs", params={"field": "status=500"})
    assert by_field.text.count('<li class="logline') == 1
    words = dash.client.get("/environments/staging/logs", params={"text": "tick", "service": "db"})
    assert "No line matches" in words.text
    bad = dash.client.get("/environments/staging/logs", params={"since": "soonish"})
    assert bad.status_code == 200 and "since:" in bad.text and 'role="alert"' in bad.text
    assert dash.client.get("/environments/nope/logs").status_code == 404


def test_a_line_shows_its_fields_and_its_replicas_neighbours(dash: Dash) -> None:
    _fill(dash)
    dash.sign_in("viewer")
    records = dash.backend.envs["staging"].log_records
    failed = next(r for r in records if r.message == "order failed")
    page = dash.client.get(f"/environments/staging/logs/lines/{failed.id}")
    assert page.status_code == 200
    assert "/orders" in page.text and ">status<" in page.text
    around = page.text.split('id="neighbours"', 1)[1]
    # five lines before and five after, from web-1 only, oldest first
    shown = [f"tick {i}" for i in range(1, 11)]
    for text in shown:
        assert f">{text}<" in around, text
    assert ">tick 0<" not in around and ">tick 11<" not in around and "other replica" not in around
    assert around.index(">tick 5<") < around.index("this line") < around.index(">tick 6<")
    assert dash.client.get("/environments/staging/logs/lines/99999").status_code == 404


def test_the_live_tail_message_is_the_rendered_line_escaped(dash: Dash) -> None:
    record = dash.backend.add_log("staging", "<script>x</script> done", replica="web-1")
    message = line_message("staging", record)
    assert message.startswith("event: line\n") and f"id: {record.id}\n" in message
    assert "<script>" not in message and "&lt;script&gt;" in message
    assert message.endswith("\n\n")
    assert all(line.startswith(("event:", "id:", "data:")) for line in message.strip().split("\n"))


def test_the_logs_pages_need_a_session(dash: Dash) -> None:
    for path in ("/logs", "/environments/staging/logs", "/environments/staging/logs/live",
                 "/environments/staging/logs/lines/1"):  # fmt: skip
        r = dash.client.get(path, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/signin"), path


def test_on_a_fleet_a_line_names_its_host_and_the_form_filters_by_it(dash: Dash) -> None:
    b = dash.backend
    b.add_log("staging", "served on h1", replica="web-1-1", host="h1", ts=1000.0)
    on_h2 = b.add_log("staging", "served on h2", replica="web-1-2", host="h2", ts=1001.0)
    dash.sign_in("viewer")
    page = dash.client.get("/environments/staging/logs", params={"host": "h2"})
    assert page.text.count('<li class="logline') == 1
    assert "web-1-2@h2" in page.text and "served on h1" not in page.text
    line = dash.client.get(f"/environments/staging/logs/lines/{on_h2.id}")
    assert ">Host</dt><dd" in line.text and ">h2</dd>" in line.text
