"""observe.checks.status: Nagios's status file (as Nagios 4.4 writes it) read into CheckStatus."""

from __future__ import annotations

from conveyor.model.checks import CheckStatus, Downtime
from conveyor.observe.checks.status import blocks, parse_status

# Trimmed from a status.dat Nagios 4.4.6 wrote for Conveyor's objects (a service in a downtime,
# one failing, one flapping, one never checked).
STATUS = """\
########################################
#          NAGIOS STATUS FILE
########################################

info {
\tcreated=1796565861
\tversion=4.4.6
\t}

programstatus {
\tnagios_pid=7654
\tdaemon_mode=1
\tprogram_start=1796565857
\t}

hoststatus {
\thost_name=localhost
\thas_been_checked=1
\tcurrent_state=0
\tcurrent_attempt=1
\tmax_attempts=3
\tstate_type=1
\tlast_state_change=1796565820
\tplugin_output=OK: Nagios-runs-here
\tlast_check=1796565857
\tproblem_has_been_acknowledged=0
\tis_flapping=0
\tscheduled_downtime_depth=0
\t}

servicestatus {
\thost_name=localhost
\tservice_description=memory
\tcheck_command=conveyor_memory!10!5
\thas_been_checked=1
\tcurrent_state=0
\tcurrent_attempt=1
\tmax_attempts=2
\tstate_type=1
\tlast_state_change=1796565820
\tplugin_output=MEMORY OK - 93.1% available (22435 MiB of 24105 MiB)
\tperformance_data=available=93.1%;10;5;0;100
\tlast_check=1796565861
\tproblem_has_been_acknowledged=0
\tis_flapping=0
\tscheduled_downtime_depth=2
\t_CONVEYOR_SERVICE=0;-
\t_CONVEYOR_KIND=0;memory
\t}

servicestatus {
\thost_name=localhost
\tservice_description=web http 127.0.0.1:18080
\thas_been_checked=1
\tcurrent_state=2
\tcurrent_attempt=1
\tmax_attempts=3
\tstate_type=0
\tlast_state_change=1796565870
\tplugin_output=connect to address 127.0.0.1 and port 18080: Connection refused
\tlast_check=1796565870
\tproblem_has_been_acknowledged=0
\tis_flapping=1
\tscheduled_downtime_depth=0
\t_CONVEYOR_SERVICE=0;web
\t_CONVEYOR_KIND=0;http
\t}

servicestatus {
\thost_name=localhost
\tservice_description=disk /
\thas_been_checked=0
\tcurrent_state=0
\tstate_type=1
\tlast_state_change=0
\tplugin_output=
\tlast_check=0
\t_CONVEYOR_KIND=0;not-a-kind
\t}

servicedowntime {
\thost_name=localhost
\tservice_description=memory
\tdowntime_id=1
\tstart_time=1796565836
\tend_time=1796569436
\tfixed=1
\tis_in_effect=1
\tauthor=me
\tcomment=reboot = planned
\t}

hostdowntime {
\thost_name=localhost
\tdowntime_id=4
\tstart_time=1796570000
\tend_time=1796573600
\tis_in_effect=0
\tauthor=ops
\tcomment=later
\t}
"""


def test_every_host_and_check_is_read_with_its_state_and_flags() -> None:
    status = parse_status(STATUS)
    assert status.created == 1796565861.0
    assert status.pid == 7654
    by_name = {s.check: s for s in status.statuses}
    assert by_name[None] == CheckStatus(
        host="localhost",
        state="UP",
        output="OK: Nagios-runs-here",
        last_check=1796565857.0,
        last_state_change=1796565820.0,
        max_attempts=3,
    )
    memory = by_name["memory"]
    assert (memory.state, memory.kind, memory.service) == ("OK", "memory", None)
    assert memory.in_downtime and not memory.flapping and not memory.problem
    web = by_name["web http 127.0.0.1:18080"]
    assert (web.state, web.state_type, web.service, web.kind) == ("CRITICAL", "soft", "web", "http")
    assert web.flapping and not web.in_downtime and web.problem
    assert web.output.startswith("connect to address")


def test_a_check_not_run_yet_is_pending_with_no_times() -> None:
    disk = next(s for s in parse_status(STATUS).statuses if s.check == "disk /")
    assert disk.state == "PENDING" and not disk.problem
    assert disk.last_check is None and disk.last_state_change is None
    assert disk.kind is None  # an unknown kind is not guessed


def test_downtimes_of_checks_and_hosts() -> None:
    assert parse_status(STATUS).downtimes == [
        Downtime(
            id=1,
            host="localhost",
            check="memory",
            start=1796565836.0,
            end=1796569436.0,
            author="me",
            comment="reboot = planned",  # only the first '=' splits a line
            in_effect=True,
        ),
        Downtime(
            id=4,
            host="localhost",
            check=None,
            start=1796570000.0,
            end=1796573600.0,
            author="ops",
            comment="later",
        ),
    ]


def test_a_file_cut_short_yields_only_its_complete_blocks() -> None:
    cut = STATUS[: STATUS.index("\tis_flapping=1")]
    kinds = [b.kind for b in blocks(cut)]
    assert kinds == ["info", "programstatus", "hoststatus", "servicestatus"]


def test_an_empty_file_says_nothing() -> None:
    status = parse_status("")
    assert (status.created, status.pid, status.statuses, status.downtimes) == (None, None, [], [])
