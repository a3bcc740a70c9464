"""provision.ansible.events: ansible-runner's event dicts -> ProvisionEvent and the recap."""

from __future__ import annotations

from typing import Any

from conveyor.model.provision import HostRecap
from conveyor.provision.ansible.events import RecapBuilder, render_diff, translate


def _event(name: str, **data: Any) -> dict[str, Any]:
    return {"event": name, "event_data": data}


def test_results_become_typed_events() -> None:
    ok = translate(_event("runner_on_ok", host="a", task="Install", role="base", res={}))
    assert ok is not None and (ok.kind, ok.host, ok.task, ok.role) == (
        "task.ok",
        "a",
        "Install",
        "base",
    )
    changed = translate(_event("runner_on_ok", host="a", task="t", res={"changed": True}))
    assert changed is not None and changed.kind == "task.changed"
    failed = translate(
        _event("runner_on_failed", host="b", task="Install", res={"msg": "No package matching"})
    )
    assert failed is not None and (failed.kind, failed.message) == (
        "task.failed",
        "No package matching",
    )
    ignored = translate(
        _event("runner_on_failed", host="b", task="t", ignore_errors=True, res={"msg": "x"})
    )
    assert ignored is not None and ignored.kind == "task.ok"
    gone = translate(
        _event(
            "runner_on_unreachable",
            host="c",
            task="Gathering Facts",
            res={"msg": "ssh: connect to host 10.9.9.9 port 22: No route"},
        )
    )
    assert gone is not None and gone.kind == "host.unreachable" and "No route" in gone.message
    assert translate(_event("verbose")) is None
    assert translate(_event("runner_item_on_ok", host="a")) is None


def test_failure_message_falls_back_to_stderr_and_items() -> None:
    by_stderr = translate(_event("runner_on_failed", host="a", res={"stderr": "boom\n"}))
    both = translate(_event("runner_on_failed", host="a", res={"msg": "non-zero", "stderr": "why"}))
    assert both is not None and both.message == "non-zero: why"
    assert by_stderr is not None and by_stderr.message == "boom"
    by_item = translate(
        _event("runner_on_failed", host="a", res={"results": [{"failed": True, "msg": "item"}]})
    )
    assert by_item is not None and by_item.message == "item"


def test_diff_is_unified_and_shown_only_for_changes() -> None:
    res = {
        "changed": True,
        "diff": [
            {
                "before": "a\nb\n",
                "after": "a\nc\n",
                "before_header": "/etc/x",
                "after_header": "/etc/x",
            }
        ],
    }
    changed = translate(_event("runner_on_ok", host="a", task="t", res=res))
    assert changed is not None
    assert changed.diff.splitlines() == [
        "--- /etc/x",
        "+++ /etc/x",
        "@@ -1,2 +1,2 @@",
        " a",
        "-b",
        "+c",
    ]
    assert render_diff({"prepared": "+ line"}) == "+ line"
    assert render_diff(None) == ""


def test_recap_names_the_first_failed_task_per_host_in_inventory_order() -> None:
    recap = RecapBuilder()
    events = [
        _event("runner_on_ok", host="a", task="Gather", res={}),
        _event("runner_on_failed", host="b", task="Install HAProxy", res={"msg": "broken apt"}),
        _event("runner_on_failed", host="b", task="Later", res={"msg": "later"}),
        _event("runner_on_unreachable", host="c", task="Gather", res={"msg": "timed out"}),
        _event(
            "playbook_on_stats",
            ok={"a": 30, "b": 4},
            changed={"a": 12},
            failures={"b": 1},
            dark={"c": 1},
            skipped={"a": 8},
        ),
    ]
    for e in events:
        recap.add(e, translate(e))
    hosts = recap.recap(["c", "b", "a"])
    assert hosts == (
        HostRecap(host="c", unreachable=1, failed_task="Gather", message="timed out"),
        HostRecap(host="b", ok=4, failed=1, failed_task="Install HAProxy", message="broken apt"),
        HostRecap(host="a", ok=30, changed=12, skipped=8),
    )
    assert [h.succeeded for h in hosts] == [False, False, True]
