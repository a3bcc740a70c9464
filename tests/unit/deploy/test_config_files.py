"""Compose configs become files a replica mounts: host files as they are, text written once."""

from __future__ import annotations

import stat
from pathlib import Path

from conveyor.deploy.config_files import config_files
from conveyor.model.stack import ConfigMount, Service


def test_files_and_text(tmp_path: Path) -> None:
    service = Service(
        name="web",
        configs=(
            ConfigMount(source="nginx", target="/etc/nginx/nginx.conf", file="/srv/nginx.conf"),
            ConfigMount(source="robots", target="/srv/robots.txt", content="Disallow: /\n"),
            ConfigMount(source="key", target="/etc/app/key", content="k", mode=0o400),
        ),
    )
    files = config_files(service, tmp_path / "configs")
    assert files["/etc/nginx/nginx.conf"] == "/srv/nginx.conf"
    robots = Path(files["/srv/robots.txt"])
    assert robots.read_text() == "Disallow: /\n"
    assert stat.S_IMODE(robots.stat().st_mode) == 0o444
    assert stat.S_IMODE(Path(files["/etc/app/key"]).stat().st_mode) == 0o400
    assert stat.S_IMODE((tmp_path / "configs").stat().st_mode) == 0o700
    # the same text again is the same file; another text is another file (older replicas
    # keep theirs while a rollout starts new ones)
    assert config_files(service, tmp_path / "configs") == files
    changed = Service(
        name="web", configs=(ConfigMount(source="robots", target="/srv/robots.txt", content="x"),)
    )
    other = config_files(changed, tmp_path / "configs")["/srv/robots.txt"]
    assert other != str(robots)
    assert robots.exists()
