"""observe.checks.commands: external commands as Nagios reads them."""

from __future__ import annotations

import pytest

from conveyor.observe.checks.commands import cancel_downtime, schedule_downtime


def test_a_downtime_of_a_check_is_fixed_from_start_to_end() -> None:
    line = schedule_downtime("box", "web http 127.0.0.1:8080", 100.7, 3700.2, "ann", "deploy")
    assert line == (
        "SCHEDULE_SVC_DOWNTIME;box;web http 127.0.0.1:8080;100;3700;1;0;3600;ann;deploy"
    )


def test_a_downtime_of_the_host() -> None:
    assert schedule_downtime("box", None, 0, 60, "ann", "reboot") == (
        "SCHEDULE_HOST_DOWNTIME;box;0;60;1;0;60;ann;reboot"
    )


def test_free_text_cannot_add_fields_or_commands() -> None:
    line = schedule_downtime("box", "load", 0, 60, "a;b", "x;y\n[1] SHUTDOWN_PROGRAM")
    assert line.count(";") == 9  # the fields of SCHEDULE_SVC_DOWNTIME, no more
    assert "\n" not in line
    assert line.endswith(";a b;x y [1] SHUTDOWN_PROGRAM")
    assert schedule_downtime("box", "load", 0, 60, "", "").endswith(";-;-")


@pytest.mark.parametrize(("host", "check"), [("bo;x", "load"), ("box", "lo\nad"), ("", "load")])
def test_names_nagios_cannot_have_are_refused(host: str, check: str) -> None:
    with pytest.raises(ValueError, match="not a Nagios name"):
        schedule_downtime(host, check, 0, 60, "a", "c")


def test_a_downtime_ends_after_it_starts() -> None:
    with pytest.raises(ValueError, match="ends after it starts"):
        schedule_downtime("box", "load", 60, 60, "a", "c")


def test_cancel() -> None:
    assert cancel_downtime(7) == "DEL_SVC_DOWNTIME;7"
    assert cancel_downtime(8, host=True) == "DEL_HOST_DOWNTIME;8"
