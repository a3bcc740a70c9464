"""conveyor.yaml's fleet (`hosts:`, `inventory:` or `hosts_from:`): a good corpus that loads
the same through the whole file's loader and the fleet-only one, a bad corpus whose files each
name the message expected (file, line, field, did-you-mean), and `ansible-inventory --list`
JSON -> Fleet."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError, SpecErrors
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.spec.conveyor_file import parse_conveyor
from conveyor.spec.fleet import fleet_from_inventory, load_fleet_file, parse_fleet

CORPUS = Path(__file__).parent / "fleet"
GOOD = sorted((CORPUS / "good").glob("*.yaml"))
BAD = sorted((CORPUS / "bad").glob("*.yaml"))
BASE = Path("/srv/app")


@pytest.mark.parametrize("path", GOOD, ids=lambda p: p.stem)
def test_good_corpus_loads_the_same_both_ways(path: Path) -> None:
    text = path.read_text()
    assert parse_conveyor(text, base=BASE).fleet == parse_fleet(text, base=BASE)


def test_full_file_sets_every_field() -> None:
    fleet = parse_fleet((CORPUS / "good" / "full.yaml").read_text(), base=BASE)
    assert fleet == Fleet(
        hosts=(
            FleetHost(
                name="web1",
                address="10.0.0.5",
                user="deploy",
                port=2222,
                key="/srv/app/keys/deploy",  # relative to conveyor.yaml
                roles=("app", "edge"),
                labels={"zone": "a", "ssd": "true"},
                line=4,  # the host's key
            ),
            FleetHost(name="mon1", address="mon1.example.com", roles=("monitor",), line=11),
        )
    )
    assert fleet.host("web1") is not None and fleet.with_role("edge")[0].name == "web1"


def test_defaults_and_absent_fleet() -> None:
    fleet = parse_fleet((CORPUS / "good" / "defaults.yaml").read_text())
    (host,) = fleet.hosts
    assert (host.user, host.port, host.key, host.roles, host.labels) == (
        "root",
        22,
        None,
        ("app",),
        {},
    )
    assert parse_fleet((CORPUS / "good" / "no_fleet.yaml").read_text()) == Fleet()


def test_inventory_is_kept_as_a_path_for_ansible_to_read() -> None:
    fleet = parse_fleet((CORPUS / "good" / "inventory.yaml").read_text(), base=BASE)
    assert fleet == Fleet(inventory_file="/srv/app/ansible/hosts.ini")
    assert not fleet  # no hosts until app/ has Ansible read the file


def test_hosts_from_aws_is_a_fleet_learned_later() -> None:
    fleet = parse_fleet((CORPUS / "good" / "hosts_from.yaml").read_text(), base=BASE)
    assert fleet == Fleet(hosts_from="aws", line=3)
    assert not fleet.hosts and fleet.is_fleet  # app/ asks AWS for the hosts


def test_load_fleet_file_reads_checks_and_tolerates_no_environments(tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "hosts:\n  a: {address: 10.0.0.5}\nchecks:\n  disk: [/, /var]\n"
    )
    read = load_fleet_file(tmp_path / "conveyor.yaml", "conveyor.yaml")
    assert [h.name for h in read.fleet.hosts] == ["a"]
    assert read.checks.disk_paths == ("/", "/var")
    assert load_fleet_file(tmp_path / "absent.yaml").fleet == Fleet()


def _messages(exc: SpecError | SpecErrors) -> list[str]:
    errors = exc.errors if isinstance(exc, SpecErrors) else [exc]
    return [e.render() for e in errors]


@pytest.mark.parametrize("path", BAD, ids=lambda p: p.stem)
def test_bad_corpus_names_file_line_and_field(path: Path) -> None:
    text = path.read_text()
    expected = text.splitlines()[0].removeprefix("# expect: ")
    # Unknown top-level keys are the whole file's loader's to refuse.
    parsers = [parse_conveyor] if path.stem == "typo_top" else [parse_conveyor, parse_fleet]
    for parse in parsers:
        with pytest.raises((SpecError, SpecErrors)) as info:
            parse(text)
        messages = _messages(info.value)
        assert any(m.startswith(expected) for m in messages), messages


def test_several_problems_reported_together() -> None:
    text = "hosts:\n  a: {address: 10.0.0.5, port: 0}\n  b: {address: x, roles: []}\n"
    with pytest.raises(SpecErrors) as info:
        parse_fleet(text)
    assert [m.split(":")[1] for m in _messages(info.value)] == ["2", "3"]


# --- ansible-inventory --list ----------------------------------------------------------------

LISTING = {
    "_meta": {
        "hostvars": {
            "web1": {
                "ansible_host": "10.0.0.5",
                "ansible_user": "deploy",
                "ansible_port": 2222,
                "ansible_ssh_private_key_file": "/keys/deploy",
                "conveyor_labels": {"zone": "a", "gpu": 1},
            },
            "edge1": {"ansible_host": "10.0.0.9"},
        }
    },
    "all": {"children": ["ungrouped", "eu", "edge", "monitor"]},
    "eu": {"children": ["app"]},
    "app": {"children": ["app_eu"]},
    "app_eu": {"hosts": ["web1"]},
    "edge": {"hosts": ["edge1"]},
    "monitor": {"hosts": ["edge1"]},
    "ungrouped": {"hosts": ["lonely"]},
}


def test_inventory_listing_becomes_the_same_fleet() -> None:
    fleet = fleet_from_inventory(LISTING, "hosts.ini")
    assert fleet.inventory_file == "hosts.ini"
    assert [(h.name, h.address, h.user, h.port, h.key, h.roles, h.labels) for h in fleet.hosts] == [
        ("lonely", "lonely", "root", 22, None, ("app",), {}),
        ("web1", "10.0.0.5", "deploy", 2222, "/keys/deploy", ("app",), {"zone": "a", "gpu": "1"}),
        ("edge1", "10.0.0.9", "root", 22, None, ("edge", "monitor"), {}),
    ]


def test_inventory_problems_name_the_file_host_and_variable() -> None:
    bad = {
        "_meta": {"hostvars": {"web1": {"ansible_port": "x", "conveyor_labels": ["a"]}}},
        "all": {"hosts": ["web1"]},
    }
    with pytest.raises(SpecErrors) as info:
        fleet_from_inventory(bad, "hosts.ini")
    assert sorted(_messages(info.value)) == [
        "hosts.ini: web1.ansible_port: must be an integer, got 'x'",
        "hosts.ini: web1.conveyor_labels: must be a mapping of label -> value, got a list",
    ]
