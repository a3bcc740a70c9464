"""Container settings, restart policies, configs and resources as the model receives them."""

from __future__ import annotations

from pathlib import Path

from conveyor.model.container import ContainerSettings, Device, Logging, Ulimit
from conveyor.model.stack import (
    Config,
    ConfigMount,
    ExposedPort,
    Resources,
    Restart,
)
from conveyor.spec.compose import load_compose

GOOD = Path(__file__).parent / "good"
MiB = 1024**2
LOGGING = Logging(driver="json-file", options={"max-size": "10m", "max-file": "3"})


def test_container_settings_restart_and_configs() -> None:
    loaded = load_compose([GOOD / "container_settings.yaml"], environ={})
    services = loaded.stack.services
    gitea = services["gitea"]
    assert gitea.restart == Restart(condition="unless-stopped")
    assert gitea.container == ContainerSettings(
        shm_size=256 * MiB,
        tmpfs={"/run": "size=16m", "/tmp": ""},
        read_only=True,
        cap_add=("CHOWN", "SETUID", "SETGID"),
        cap_drop=("ALL",),
        security_opt=("no-new-privileges:true",),
        extra_hosts=(("ldap.example.test", "10.20.0.5"), ("host.docker.internal", "host-gateway")),
        logging=LOGGING,
        init=False,
        hostname="git",
        domainname="example.test",
        dns=("10.20.0.2",),
        dns_search=("example.test",),
    )
    assert gitea.expose == (ExposedPort(port=3000), ExposedPort(port=2222))
    assert gitea.limits == Resources(pids=200)
    assert gitea.reservations == Resources(cpus=0.25, memory=128 * MiB)

    search = services["search"]
    assert search.restart == Restart(condition="on-failure", max_attempts=5)
    assert search.container.ulimits == {
        "nofile": Ulimit(soft=65535, hard=65535),
        "nproc": Ulimit(soft=4096, hard=4096),
    }
    assert search.container.sysctls == {"kernel.msgmax": "65536"}
    assert search.container.mem_reservation == 512 * MiB
    assert search.container.platform == "linux/amd64"
    assert search.limits == Resources(cpus=1.5, memory=1024 * MiB)

    backup = services["backup"]
    assert backup.replicas == 1  # global: one per host
    assert backup.restart == Restart(
        condition="on-failure", max_attempts=3, delay=5.0, window=120.0
    )
    assert backup.container.devices == (
        Device(host="/dev/fuse", container="/dev/fuse", permissions="rwm"),
        Device(host="/dev/net/tun", container="/dev/net/tun", permissions="r"),
    )
    assert backup.container.group_add == ("disk",)

    migrate = services["migrate"]
    assert migrate.restart == Restart(condition="no")  # `restart: no` is the string "no"
    assert migrate.configs == (
        ConfigMount(source="app_ini", target="/app_ini", file=str(GOOD / "conf" / "app.ini")),
        ConfigMount(
            source="robots",
            target="/data/robots.txt",
            content="User-agent: *\nDisallow: /\n",
            mode=0o440,
        ),
    )
    assert loaded.stack.configs == {
        "app_ini": Config(name="app_ini", file=str(GOOD / "conf" / "app.ini")),
        "robots": Config(name="robots", content="User-agent: *\nDisallow: /\n"),
    }


def test_restart_not_written_heals_like_always() -> None:
    services = load_compose([GOOD / "web_minimal.yaml"], environ={}).stack.services
    assert services["web"].restart is None
    assert services["web"].restart_policy == Restart(condition="always")
    assert Restart(condition="no").restarts(1) is False
    assert Restart(condition="on-failure").restarts(0) is False
    assert Restart(condition="on-failure").restarts(137) is True
    assert Restart(condition="unless-stopped").restarts(0) is True


def test_config_from_the_environment(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text(
        "services:\n  web:\n    image: nginx\n    configs: [site]\n"
        "configs:\n  site:\n    environment: SITE_CONF\n"
    )
    stack = load_compose([tmp_path / "compose.yaml"], environ={"SITE_CONF": "listen 80;"}).stack
    assert stack.services["web"].configs == (
        ConfigMount(source="site", target="/site", content="listen 80;"),
    )
