"""Which fleet host a service's backup or restore runs on (plan.backup_hosts): the host that
holds its named volumes (down: an error naming it), else a host running a replica of it."""

from __future__ import annotations

import pytest

from conveyor.errors import BackupError
from conveyor.plan.backup_hosts import HostSeen, backup_host, hosts_seen
from conveyor.plan.fleet_files import volumes_by_key


def _up(name: str, volumes: tuple[str, ...] = (), running: tuple[str, ...] = ()) -> HostSeen:
    return HostSeen(name, True, frozenset(volumes), frozenset(running))


def test_the_host_holding_the_volume_even_when_the_replica_runs_elsewhere_too() -> None:
    hosts = [_up("h1", running=("files",)), _up("h2", ("files",), ("files",)), _up("h3")]
    assert backup_host("files", ("files",), hosts) == "h2"


def test_a_volume_on_a_host_that_is_down_is_an_error_naming_the_host() -> None:
    hosts = [
        _up("h1", running=("db",)),
        HostSeen("h2", False, frozenset({"db-data"}), error="ssh: connect timed out"),
    ]
    with pytest.raises(BackupError) as caught:
        backup_host("db", ("db-data",), hosts)
    message = str(caught.value)
    assert message.startswith("volume db-data of service db is on host h2, which is down")
    assert "ssh: connect timed out" in message


def test_volumes_on_several_hosts_are_refused_naming_them() -> None:
    hosts = [_up("h1", ("data",)), _up("h2"), _up("h3", ("data", "logs"))]
    with pytest.raises(BackupError, match=r"several hosts \(h1: data; h3: data\)"):
        backup_host("db", ("data",), hosts)


def test_another_service_s_volume_does_not_count() -> None:
    hosts = [_up("h1", ("cache",), ("cache",)), _up("h2", running=("db",))]
    assert backup_host("db", ("db-data",), hosts) == "h2"


def test_a_database_without_volumes_is_dumped_where_a_replica_runs() -> None:
    hosts = [_up("h1"), _up("h2", running=("db",)), _up("h3", running=("db",))]
    assert backup_host("db", (), hosts) == "h2"


def test_nowhere_is_an_error_that_names_the_hosts_that_did_not_answer() -> None:
    hosts = [_up("h1"), HostSeen("h2", False)]
    with pytest.raises(BackupError) as caught:
        backup_host("db", ("db-data",), hosts)
    assert "no volume (db-data) and no running replica" in str(caught.value)
    assert "(not answering: h2)" in str(caught.value)


def test_hosts_seen_keeps_the_inventory_order_and_remembers_for_the_silent() -> None:
    seen = hosts_seen(
        ["h1", "h2", "h3"],
        answered={"h3": (["a"], ["web"]), "h1": ([], [])},
        remembered={"h2": ["db-data"], "h1": ["stale"]},
        errors={"h2": "no route"},
    )
    assert seen == [
        HostSeen("h1", True),  # it answered: what it said, not what was remembered
        HostSeen("h2", False, frozenset({"db-data"}), error="no route"),
        HostSeen("h3", True, frozenset({"a"}), frozenset({"web"})),
    ]


def test_volumes_by_key_keeps_the_project_s_own_on_inventory_hosts() -> None:
    known = {
        "h2": ["shop_data", "shop-prod_data", "other_x"],
        "h1": ["shop_data", "shop_logs"],
        "gone": ["shop_data"],
    }
    assert volumes_by_key(known, "shop", ["h1", "h2"]) == {
        "data": ["h1", "h2"],
        "logs": ["h1"],
    }
    assert volumes_by_key(known, "shop-prod", ["h1", "h2"]) == {"data": ["h2"]}
