"""Container settings -> Docker SDK arguments, without a Docker Engine."""

from __future__ import annotations

from conveyor.model.container import ContainerSettings, Device, Logging, Ulimit
from conveyor.model.stack import Resources, Service
from conveyor.runtime.create_options import CreateOptions, create_options


def test_a_service_without_settings_gets_only_conveyors_defaults() -> None:
    assert create_options(Service(name="web")) == CreateOptions(container={}, host={"init": True})


def test_conveyors_own_hosts_come_after_the_files() -> None:
    service = Service(
        name="web", container=ContainerSettings(extra_hosts=(("db", "10.1.0.5"), ("db", "::1")))
    )
    options = create_options(service, [("catalog", "127.0.0.1")])
    assert options.host["extra_hosts"] == ["db:10.1.0.5", "db:::1", "catalog:127.0.0.1"]


def test_every_setting_reaches_its_docker_argument() -> None:
    settings = ContainerSettings(
        shm_size=64 * 1024**2,
        ulimits={"nproc": Ulimit(soft=65535, hard=65535), "nofile": Ulimit(soft=1024, hard=2048)},
        cap_add=("SYS_PTRACE",),
        cap_drop=("NET_RAW", "MKNOD"),
        devices=(Device(host="/dev/fuse", container="/dev/fuse", permissions="rw"),),
        device_cgroup_rules=("c 10:229 rwm",),
        privileged=True,
        security_opt=("no-new-privileges:true",),
        tmpfs={"/run": "size=64m", "/tmp": ""},
        read_only=True,
        sysctls={"kernel.msgmax": "65536"},
        logging=Logging(driver="json-file", options={"max-size": "10m", "max-file": "3"}),
        init=False,
        hostname="gitea",
        domainname="example.test",
        dns=("10.0.0.2",),
        dns_search=("example.test",),
        dns_opt=("ndots:2",),
        platform="linux/amd64",
        group_add=("video",),
        cpu_shares=512,
        cpuset="0,1",
        oom_score_adj=-500,
        mem_reservation=256 * 1024**2,
        memswap_limit=-1,
        mem_swappiness=0,
        ipc="shareable",
        pid="host",
        userns_mode="host",
        runtime="runc",
    )
    options = create_options(Service(name="gitea", container=settings))
    assert options.container == {
        "hostname": "gitea",
        "domainname": "example.test",
        "platform": "linux/amd64",
    }
    assert options.host == {
        "init": False,
        "cap_add": ["SYS_PTRACE"],
        "cap_drop": ["NET_RAW", "MKNOD"],
        "security_opt": ["no-new-privileges:true"],
        "dns": ["10.0.0.2"],
        "dns_search": ["example.test"],
        "dns_opt": ["ndots:2"],
        "group_add": ["video"],
        "device_cgroup_rules": ["c 10:229 rwm"],
        "devices": ["/dev/fuse:/dev/fuse:rw"],
        "ulimits": [
            {"name": "nofile", "soft": 1024, "hard": 2048},
            {"name": "nproc", "soft": 65535, "hard": 65535},
        ],
        "sysctls": {"kernel.msgmax": "65536"},
        "tmpfs": {"/run": "size=64m", "/tmp": ""},
        "log_config": {"type": "json-file", "config": {"max-size": "10m", "max-file": "3"}},
        "privileged": True,
        "read_only": True,
        "shm_size": 64 * 1024**2,
        "mem_reservation": 256 * 1024**2,
        "memswap_limit": -1,
        "mem_swappiness": 0,
        "cpu_shares": 512,
        "cpuset_cpus": "0,1",
        "oom_score_adj": -500,
        "ipc_mode": "shareable",
        "pid_mode": "host",
        "userns_mode": "host",
        "runtime": "runc",
    }


def test_logging_options_without_a_driver_go_to_the_daemons_default_driver() -> None:
    service = Service(
        name="web", container=ContainerSettings(logging=Logging(options={"max-size": "1m"}))
    )
    assert create_options(service).host["log_config"] == {"type": "", "config": {"max-size": "1m"}}


def test_a_memory_reservation_from_deploy_resources() -> None:
    service = Service(name="web", reservations=Resources(cpus=0.5, memory=128 * 1024**2))
    assert create_options(service).host == {"init": True, "mem_reservation": 128 * 1024**2}
