"""deploy.fleet_files: content digests of files and trees, the copies a replica needs, and
FleetFiles.ship against a "host" that is a directory of this machine: the scripts it sends
run in the real `sh` with the real `tar` (only the SSH hop is left out), so copying,
skipping what the host has, removing what no container mounts and refusing a stale copy
are all exercised."""

from __future__ import annotations

import os
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from conveyor.deploy.fleet_files import (
    FleetFiles,
    content_digest,
    copies_of,
    release_digests,
    write_archive,
)
from conveyor.errors import ConveyorError, RuntimeAdapterError
from conveyor.model.fleet import FleetHost
from conveyor.model.stack import Service, VolumeMount
from conveyor.plan.fleet_files import FILES_ROOT, copy_digest
from conveyor.runtime.protocol import ReplicaRun
from conveyor.spec.compose import load_stack

HOST = FleetHost(name="h2", address="h2.test")


def test_a_digest_follows_content_mode_and_names_not_the_path(tmp_path: Path) -> None:
    a, b = tmp_path / "a.conf", tmp_path / "b.conf"
    a.write_text("listen 80;\n")
    b.write_text("listen 80;\n")
    assert content_digest(a) == content_digest(b)  # the name of the file itself is not in it
    first = content_digest(a)
    a.write_text("listen 81;\n")
    assert content_digest(a) != first
    b.chmod(0o600)
    assert content_digest(b) != first
    with pytest.raises(ConveyorError, match="does not exist"):
        content_digest(tmp_path / "missing")


def test_a_trees_digest_covers_every_entry(tmp_path: Path) -> None:
    root = tmp_path / "html"
    (root / "css").mkdir(parents=True)
    (root / "index.html").write_text("<h1>v1</h1>")
    (root / "css" / "site.css").write_text("h1{}")
    os.symlink("index.html", root / "home.html")
    first = content_digest(root)
    (root / "css" / "site.css").write_text("h2{}")  # deep in the tree
    second = content_digest(root)
    assert second != first
    (root / "home.html").unlink()
    os.symlink("css/site.css", root / "home.html")  # a link's target, not followed
    assert content_digest(root) != second
    (root / "new.txt").write_text("")
    assert content_digest(root) not in (first, second)


def _stack(tmp_path: Path) -> Any:
    (tmp_path / "compose.yaml").write_text(
        "services:\n"
        "  web:\n"
        "    image: web\n"
        "    volumes: [./nginx.conf:/etc/nginx/nginx.conf:ro, ./html:/srv/html, /srv/x:/x]\n"
        "    configs: [{source: app, target: /etc/app.conf, mode: 0440}]\n"
        "    secrets: [token]\n"
        "configs: {app: {file: ./app.conf}}\n"
        "secrets: {token: {file: ./token.txt}}\n"
    )
    (tmp_path / "nginx.conf").write_text("v1")
    (tmp_path / "html").mkdir()
    (tmp_path / "html" / "index.html").write_text("<h1>v1</h1>")
    (tmp_path / "app.conf").write_text("debug = false")
    (tmp_path / "token.txt").write_text("s3cret")
    return load_stack(tmp_path / "compose.yaml", environ={})


def _req(stack: Any, files: dict[str, str]) -> ReplicaRun:
    web: Service = stack.services["web"]
    secret_files = {
        "/etc/app.conf": str(Path(stack.file).parent / "app.conf"),
        "/run/secrets/token": str(Path(stack.file).parent / "token.txt"),
    }
    return ReplicaRun(
        project="shop",
        replica="web-1-1",
        release=1,
        spec_hash="x",
        image_id="sha256:x",
        port=0,
        service=web,
        secret_files=secret_files,
        files=files,
    )


def test_a_release_records_a_digest_of_each_controller_file(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    digests = release_digests(stack.services["web"], stack)
    assert sorted(digests) == sorted(
        str(tmp_path / n) for n in ("app.conf", "token.txt", "nginx.conf", "html")
    )
    assert digests[str(tmp_path / "html")] == content_digest(tmp_path / "html")
    (tmp_path / "nginx.conf").unlink()
    with pytest.raises(ConveyorError, match=r"compose.yaml: services.web: .*nginx.conf"):
        release_digests(stack.services["web"], stack)


def test_the_copies_a_replica_needs_and_a_stale_one(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    recorded = release_digests(stack.services["web"], stack)
    by_target, by_source = copies_of(_req(stack, recorded))
    app = by_target["/etc/app.conf"]
    assert app.mode == 0o440 and app.digest == copy_digest(recorded[app.source], 0o440)
    assert by_target["/run/secrets/token"].digest == recorded[str(tmp_path / "token.txt")]
    assert sorted(by_source) == [str(tmp_path / "html"), str(tmp_path / "nginx.conf")]
    assert not any(c.stale for c in (*by_target.values(), *by_source.values()))
    (tmp_path / "nginx.conf").write_text("v2")  # changed since the release was recorded
    _, later = copies_of(_req(stack, recorded))
    nginx = later[str(tmp_path / "nginx.conf")]
    assert nginx.stale and nginx.digest == recorded[nginx.source]


def test_an_archive_holds_each_copy_under_its_digest_with_the_mode_asked(tmp_path: Path) -> None:
    stack = _stack(tmp_path)
    by_target, by_source = copies_of(_req(stack, release_digests(stack.services["web"], stack)))
    out = tmp_path / "files.tar"
    write_archive([by_target["/etc/app.conf"], by_source[str(tmp_path / "html")]], out)
    with tarfile.open(out) as tar:
        members = {m.name: m for m in tar.getmembers()}
    app = by_target["/etc/app.conf"].digest
    html = by_source[str(tmp_path / "html")].digest
    assert set(members) == {f"{app}/app.conf", f"{html}/html", f"{html}/html/index.html"}
    assert members[f"{app}/app.conf"].mode == 0o440


class LocalHost:
    """ssh_script's stand-in: runs the script here, the host's /var/lib/conveyor being a
    directory of the test's."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.scripts: list[str] = []

    def __call__(self, host: FleetHost, script: str, **kw: Any) -> str:
        self.scripts.append(script)
        local = script.replace(str(FILES_ROOT), str(self.root))
        stdin = kw.get("stdin_file")
        with open(stdin or os.devnull, "rb") as feed:
            done = subprocess.run(
                ["sh", "-ec", local], stdin=feed, capture_output=True, check=False
            )
        if done.returncode != 0:
            raise ConveyorError(done.stderr.decode())
        return done.stdout.decode()

    def files(self) -> Path:
        return self.root / "shop" / "files"


def test_ship_copies_once_rewrites_the_mounts_and_removes_copies_no_longer_mounted(
    tmp_path: Path,
) -> None:
    project = tmp_path / "project"
    project.mkdir()
    stack = _stack(project)
    host = LocalHost(tmp_path / "host")
    files = FleetFiles(ssh=host)
    recorded = release_digests(stack.services["web"], stack)
    warnings: list[str] = []
    out = files.ship(HOST, _req(stack, recorded), mounted=[], warn=warnings.append)

    base = host.files()
    nginx = Path(next(m.source for m in out.service.volumes if m.target.endswith("nginx.conf")))
    assert nginx.parent.parent == Path(str(FILES_ROOT)) / "shop" / "files"
    local = lambda p: Path(str(p).replace(str(FILES_ROOT), str(host.root)))  # noqa: E731
    assert local(nginx).read_text() == "v1"
    html = next(m for m in out.service.volumes if m.target == "/srv/html")
    assert (local(html.source) / "index.html").read_text() == "<h1>v1</h1>"
    assert next(m for m in out.service.volumes if m.target == "/x").source == "/srv/x"
    app = local(out.secret_files["/etc/app.conf"])
    assert app.read_text() == "debug = false" and (app.stat().st_mode & 0o777) == 0o440
    assert local(out.secret_files["/run/secrets/token"]).read_text() == "s3cret"
    assert base.stat().st_mode & 0o777 == 0o700
    # ./html is mounted writable: what the replica writes stays on the host.
    assert len(warnings) == 1 and "html" in warnings[0] and "h2" in warnings[0]

    # Unchanged: one call to look, nothing sent.
    host.scripts.clear()
    files.ship(HOST, _req(stack, recorded), mounted=[])
    assert len(host.scripts) == 1 and "tar" not in host.scripts[0]

    # Changed nginx.conf (a new release): its new copy is sent; the old one stays while a
    # container mounts it, and goes once none does.
    (project / "nginx.conf").write_text("v2")
    newer = release_digests(stack.services["web"], stack)
    out2 = files.ship(HOST, _req(stack, newer), mounted=[str(nginx)])
    nginx2 = next(m.source for m in out2.service.volumes if m.target.endswith("nginx.conf"))
    assert local(nginx2).read_text() == "v2" and local(nginx).exists()
    files.ship(HOST, _req(stack, newer), mounted=[nginx2])
    assert not local(nginx).exists()
    assert len(list(base.iterdir())) == 4  # app.conf, token, html, nginx.conf v2

    # A rollback to release 1 after the file changed: its copy is gone from the host.
    with pytest.raises(RuntimeAdapterError, match=r"nginx.conf .*no copy of the old one"):
        files.ship(HOST, _req(stack, recorded), mounted=[nginx2])


def test_a_replica_without_files_sends_nothing(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "host")
    req = ReplicaRun(
        project="shop",
        replica="api-1-1",
        release=1,
        spec_hash="x",
        image_id="sha256:x",
        port=0,
        service=Service(
            name="api",
            image="api",
            volumes=(VolumeMount(type="bind", source="/srv/x", target="/x"),),
        ),
    )
    assert FleetFiles(ssh=host).ship(HOST, req, mounted=[]) == req
    assert host.scripts == []


def test_missing_host_paths_are_named(tmp_path: Path) -> None:
    host = LocalHost(tmp_path / "host")
    (tmp_path / "there").mkdir()
    found = FleetFiles(ssh=host).missing(HOST, [str(tmp_path / "there"), "/nonexistent/x"])
    assert found == ["/nonexistent/x"]
