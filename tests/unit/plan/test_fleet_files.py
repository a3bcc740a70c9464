"""plan.fleet_files: which of a replica's files a fleet copies (secrets, configs, project bind
mounts; not the hosts' own paths), where the copies land (content-addressed, the mode in the
name), mounts rewritten to them, which copies a host keeps, and named volumes pinning their
service to the hosts holding them."""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import pytest

from conveyor.model.endpoint import Endpoint
from conveyor.model.placement import ServicePlacement
from conveyor.model.release import Observed, ObservedReplica
from conveyor.model.stack import Stack
from conveyor.plan.actions import Plan, Step
from conveyor.plan.fleet_files import (
    config_modes,
    copy_digest,
    digest_in,
    host_binds,
    host_path,
    inside,
    kept,
    named_volumes,
    project_binds,
    release_files,
    rewrite_binds,
    rewrite_files,
    split_volumes,
    volume_pins,
)
from conveyor.spec.compose import load_stack

COMPOSE = """
services:
  web:
    image: web
    volumes:
      - ./nginx.conf:/etc/nginx/nginx.conf:ro
      - ./html:/usr/share/nginx/html
      - /srv/data:/data
      - ../elsewhere.txt:/elsewhere.txt
      - db:/var/db
      - ext:/ext
      - {type: tmpfs, target: /tmp}
    configs:
      - {source: app, target: /etc/app.conf, mode: 0440}
      - inline
    secrets: [token]
  db:
    image: db
    volumes: [db:/var/lib/db, logs:/var/log/db]
  cache:
    image: cache
configs:
  app: {file: ./app.conf}
  inline: {content: hello}
secrets:
  token: {file: ./token.txt}
volumes:
  db: {}
  logs: {}
  ext: {external: true}
"""

A = "a" * 64
B = "b" * 64


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    (tmp_path / "compose.yaml").write_text(COMPOSE)
    for name in ("app.conf", "token.txt"):  # the loader checks config and secret files exist
        (tmp_path / name).write_text(name)
    return load_stack(tmp_path / "compose.yaml", environ={})


def test_project_bind_mounts_are_copied_and_the_hosts_own_paths_are_not(
    stack: Stack, tmp_path: Path
) -> None:
    web = stack.services["web"]
    assert project_binds(web, stack) == (str(tmp_path / "nginx.conf"), str(tmp_path / "html"))
    # Outside the project directory: absolute, or up from it.
    assert host_binds(web, stack) == ("/srv/data", str(tmp_path.parent / "elsewhere.txt"))


def test_inside_is_by_path_components_not_by_prefix() -> None:
    root = PurePosixPath("/srv/app")
    assert inside("/srv/app/x.conf", root)
    assert inside("/srv/app", root)
    assert not inside("/srv/application/x.conf", root)
    assert not inside("/srv", root)


def test_a_release_records_file_configs_file_secrets_and_project_binds(
    stack: Stack, tmp_path: Path
) -> None:
    assert release_files(stack.services["web"], stack) == (
        str(tmp_path / "app.conf"),
        str(tmp_path / "token.txt"),
        str(tmp_path / "nginx.conf"),
        str(tmp_path / "html"),
    )
    assert release_files(stack.services["cache"], stack) == ()


def test_the_mode_compose_asks_for_is_part_of_a_copys_name(stack: Stack) -> None:
    assert config_modes(stack.services["web"]) == {"/etc/app.conf": 0o440}
    assert copy_digest(A) == A  # no mode asked: the content's digest itself
    assert copy_digest(A, 0o440) != A
    assert copy_digest(A, 0o440) != copy_digest(A, 0o400)
    assert copy_digest(A, 0o440) == copy_digest(A, 0o440)
    assert len(copy_digest(A, 0o440)) == 64


def test_copies_land_in_the_projects_files_directory_under_their_digest() -> None:
    path = host_path("shop", A, "/home/me/shop/nginx.conf")
    assert path == f"/var/lib/conveyor/shop/files/{A}/nginx.conf"
    assert digest_in(path, "shop") == A
    assert digest_in(f"/var/lib/conveyor/shop/files/{A}/html/index.html", "shop") == A
    assert digest_in(path, "other") is None  # another project's copies are not ours
    assert digest_in("/srv/data", "shop") is None
    assert digest_in("/var/lib/conveyor/shop/files/.incoming.x/f", "shop") is None


def test_bind_mounts_are_rewritten_to_their_copies_and_nothing_else_changes(
    stack: Stack, tmp_path: Path
) -> None:
    web = stack.services["web"]
    moved = {str(tmp_path / "nginx.conf"): host_path("shop", A, "nginx.conf")}
    out = rewrite_binds(web, moved)
    sources = [m.source for m in out.volumes]
    assert sources[0] == host_path("shop", A, "nginx.conf")
    assert out.volumes[0].read_only and out.volumes[0].target == "/etc/nginx/nginx.conf"
    assert sources[1:] == [m.source for m in web.volumes[1:]]
    assert rewrite_binds(web, {}) is web


def test_secret_and_config_files_are_rewritten_by_container_path() -> None:
    files = {"/run/secrets/token": "/p/token.txt", "/etc/app.conf": "/p/app.conf"}
    out = rewrite_files(files, {"/etc/app.conf": "/var/lib/conveyor/p/files/x/app.conf"})
    assert out == {
        "/run/secrets/token": "/p/token.txt",
        "/etc/app.conf": "/var/lib/conveyor/p/files/x/app.conf",
    }


def test_a_host_keeps_the_copies_its_containers_mount_and_those_about_to_be() -> None:
    mounted = [
        f"/var/lib/conveyor/shop/files/{A}/nginx.conf",
        "/srv/data",
        f"/var/lib/conveyor/other/files/{B}/x",  # another project's
    ]
    assert kept(mounted, "shop") == {A}
    assert kept(mounted, "shop", needed=[B]) == {A, B}
    assert kept([], "shop") == set()


def test_named_volumes_are_the_projects_own_not_external_ones(stack: Stack) -> None:
    assert named_volumes(stack.services["web"], stack) == ("db",)
    assert named_volumes(stack.services["db"], stack) == ("db", "logs")
    assert named_volumes(stack.services["cache"], stack) == ()


def test_a_service_is_pinned_to_the_hosts_holding_its_volumes(stack: Stack) -> None:
    services = stack.services
    assert volume_pins(services, stack, {}) == {}  # nowhere yet: free
    pins = volume_pins(services, stack, {"db": ["h2"], "logs": ["h2", "h3"]})
    assert pins == {"web": ("h2",), "db": ("h2",)}
    # Only the volumes that exist somewhere count.
    assert volume_pins(services, stack, {"logs": ["h3"]}) == {"db": ("h3",)}
    # Split over hosts (made before pinning): any host holding one.
    assert volume_pins(services, stack, {"db": ["h1"], "logs": ["h3"]})["db"] == ("h1", "h3")


def _replica(service: str, replica: str, host: str) -> ObservedReplica:
    return ObservedReplica(
        replica=replica,
        service=service,
        container_id=replica,
        spec_hash="x",
        release=1,
        endpoint=Endpoint(host="10.9.0.1", port=1),
        running=True,
        host=host,
    )


def test_replicas_of_a_volume_service_spread_over_hosts_are_noted(stack: Stack) -> None:
    """examples/shop's orders: two replicas, one named volume, placed on h2 and h3: each
    host has its own volume, so they do not share data. Said when the plan starts one."""
    plan = Plan(
        steps=(
            Step(kind="start", service="db", replica="db-2-2", host="h3"),
            Step(kind="start", service="cache", replica="cache-2-1", host="h3"),
            Step(kind="stop", service="db", replica="db-1-9"),
        )
    )
    observed = Observed(
        replicas=(
            _replica("db", "db-2-1", "h2"),
            _replica("db", "db-1-9", "h1"),  # stopped by the plan
            _replica("cache", "cache-1-1", "h1"),  # no volume
        )
    )
    [note] = split_volumes(plan, stack, observed)
    assert note.startswith("db: its replicas run on h2, h3, each host with its own db, logs")
    assert "[node.hostname==h2]" in note
    # One host: shared, as on one host; nothing started: nothing to say again.
    same = Plan(
        steps=(
            Step(kind="start", service="db", replica="db-2-2", host="h2"),
            Step(kind="stop", service="db", replica="db-1-9"),
        )
    )
    assert split_volumes(same, stack, observed) == []
    assert split_volumes(Plan(steps=()), stack, observed) == []
    # A global service: one replica per host, each with its host's volume, by design.
    glob = stack.model_copy(
        update={
            "services": {
                **stack.services,
                "db": stack.services["db"].model_copy(
                    update={"placement": ServicePlacement(mode="global")}
                ),
            }
        }
    )
    assert split_volumes(plan, glob, observed) == []
