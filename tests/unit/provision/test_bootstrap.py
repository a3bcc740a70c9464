"""`conveyor bootstrap`: parsing, and the plan run against a fake host (no root, no apt)."""

from __future__ import annotations

import json
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.errors import BootstrapError
from conveyor.provision.bootstrap import (
    BASE_IMAGE,
    DEBIAN_MIRROR,
    DOCKERD,
    PACKAGES,
    BootstrapConfig,
    Result,
    SystemCommands,
    copy_ca_certificates,
    debian_mirror,
    debootstrap_argv,
    default_state_dir,
    finish_rootfs,
    import_argv,
    is_supported,
    mirror_for,
    mounts_under,
    parse_os_release,
    plan_bootstrap,
    require_installable,
    run_bootstrap,
)

# --- /etc/os-release -----------------------------------------------------------------------

DEBIAN_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"""
UBUNTU_OS_RELEASE = """\
# written by base-files
PRETTY_NAME='Ubuntu 24.04 LTS'
NAME="Ubuntu"
ID=ubuntu
ID_LIKE=debian
"""
MINT_OS_RELEASE = 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\n'
FEDORA_OS_RELEASE = 'NAME="Fedora Linux"\nID=fedora\nPRETTY_NAME="Fedora Linux 40"\n'


def test_os_release_values_lose_their_quotes_and_comments_are_skipped() -> None:
    debian = parse_os_release(DEBIAN_OS_RELEASE)
    assert debian["ID"] == "debian"
    assert debian["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert debian["VERSION_CODENAME"] == "bookworm"
    ubuntu = parse_os_release(UBUNTU_OS_RELEASE)
    assert ubuntu["PRETTY_NAME"] == "Ubuntu 24.04 LTS"
    assert not any(key.startswith("#") for key in ubuntu)


@pytest.mark.parametrize(
    ("text", "supported"),
    [
        (DEBIAN_OS_RELEASE, True),
        (UBUNTU_OS_RELEASE, True),
        (MINT_OS_RELEASE, True),
        (FEDORA_OS_RELEASE, False),
        ("ID=alpine\n", False),
        ("", False),
    ],
)
def test_only_debian_ubuntu_and_their_derivatives_are_supported(text: str, supported: bool) -> None:
    assert is_supported(parse_os_release(text)) is supported


def test_installing_is_refused_on_another_system_or_without_root() -> None:
    with pytest.raises(BootstrapError, match="Fedora Linux 40"):
        require_installable(parse_os_release(FEDORA_OS_RELEASE), euid=0)
    with pytest.raises(BootstrapError, match="root"):
        require_installable(parse_os_release(DEBIAN_OS_RELEASE), euid=1000)
    require_installable(parse_os_release(UBUNTU_OS_RELEASE), euid=0)


# --- apt's mirror --------------------------------------------------------------------------

DEB822_SECURITY_FIRST = """\
Types: deb
# http://snapshot.debian.org/archive/debian-security/20250520T000000Z
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main

Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
"""
ONE_LINE = """\
# deb http://commented.example/debian bookworm main
deb-src http://src.example/debian bookworm main
deb http://security.debian.org/debian-security bookworm-security main
deb [arch=amd64 signed-by=/etc/apt/keyring.gpg] https://mirror.example/debian bookworm main
"""


def test_the_mirror_is_the_first_non_security_deb822_uri() -> None:
    assert debian_mirror([DEB822_SECURITY_FIRST]) == "http://deb.debian.org/debian"


def test_the_one_line_format_skips_comments_sources_security_and_options() -> None:
    assert debian_mirror([], ONE_LINE) == "https://mirror.example/debian"


def test_deb822_sources_come_before_sources_list() -> None:
    assert debian_mirror([DEB822_SECURITY_FIRST], ONE_LINE) == "http://deb.debian.org/debian"


def test_disabled_source_only_and_non_http_stanzas_are_skipped() -> None:
    text = """\
Types: deb
URIs: http://disabled.example/debian
Suites: bookworm
Enabled: no

Types: deb-src
URIs: http://src.example/debian
Suites: bookworm

Types: deb
URIs: cdrom:[Debian 12]/
Suites: bookworm

Types: deb deb-src
URIs:
 http://continued.example/debian
 http://second.example/debian
Suites: bookworm
"""
    assert debian_mirror([text]) == "http://continued.example/debian"


def test_no_mirror_when_apt_has_none() -> None:
    assert debian_mirror([], "") is None
    assert (
        debian_mirror(["Types: deb\nURIs: http://x/debian-security\nSuites: b-security\n"]) is None
    )


def test_bookworm_comes_from_the_host_mirror_only_on_debian() -> None:
    debian, ubuntu = parse_os_release(DEBIAN_OS_RELEASE), parse_os_release(UBUNTU_OS_RELEASE)
    assert mirror_for(debian, "http://mirror.local/debian") == "http://mirror.local/debian"
    assert mirror_for(debian, None) == DEBIAN_MIRROR
    # Ubuntu's archive has no bookworm
    assert mirror_for(ubuntu, "http://archive.ubuntu.com/ubuntu") == DEBIAN_MIRROR


# --- small pure helpers --------------------------------------------------------------------


def test_the_state_dir_is_system_wide_for_root_and_per_user_otherwise() -> None:
    home = Path("/home/ann")
    assert default_state_dir(0, {}, Path("/root")) == Path("/var/lib/conveyor/bootstrap")
    assert default_state_dir(1000, {}, home) == home / ".local/state/conveyor/bootstrap"
    xdg = {"XDG_STATE_HOME": "/srv/state"}
    assert default_state_dir(1000, xdg, home) == Path("/srv/state/conveyor/bootstrap")


def test_debootstrap_and_import_commands() -> None:
    assert debootstrap_argv(Path("/r"), "http://m/debian") == [
        "debootstrap",
        "--variant=minbase",
        "--include=python3,python3-pip,python3-venv,ca-certificates",
        "bookworm",
        "/r",
        "http://m/debian",
    ]
    keyring = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
    assert f"--keyring={keyring}" in debootstrap_argv(Path("/r"), "http://m", keyring)
    assert import_argv("img:tag") == [
        "docker",
        "import",
        "-c",
        "ENV LANG=C.UTF-8",
        "-c",
        "ENV PYTHONUNBUFFERED=1",
        "-c",
        'CMD ["python3"]',
        "-",
        "img:tag",
    ]


def test_mounts_under_a_rootfs_are_found_deepest_first() -> None:
    mounts = """\
proc /proc proc rw 0 0
proc /var/lib/b/rootfs-1/proc proc rw 0 0
sysfs /var/lib/b/rootfs-1/sys sysfs rw 0 0
devpts /var/lib/b/rootfs-1/dev/pts devpts rw 0 0
udev /var/lib/b/rootfs-1/dev devtmpfs rw 0 0
tmpfs /var/lib/b/rootfs-10 tmpfs rw 0 0
tmpfs /var/lib/b/rootfs-1/with\\040space tmpfs rw 0 0
"""
    found = mounts_under(mounts, Path("/var/lib/b/rootfs-1"))
    assert found[0] == Path("/var/lib/b/rootfs-1/dev/pts")
    assert set(found) == {
        Path("/var/lib/b/rootfs-1/proc"),
        Path("/var/lib/b/rootfs-1/sys"),
        Path("/var/lib/b/rootfs-1/dev/pts"),
        Path("/var/lib/b/rootfs-1/dev"),
        Path("/var/lib/b/rootfs-1/with space"),
    }


def make_rootfs(root: Path) -> None:
    """What debootstrap leaves behind that the image must not keep, or must change."""
    for rel in (
        "usr/lib/python3.11/EXTERNALLY-MANAGED",
        "var/cache/apt/archives/python3_3.11.deb",
        "var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_InRelease",
        "var/lib/apt/lists/lock",
        "usr/bin/python3",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    (root / "var/lib/apt/lists/partial").mkdir()


def test_the_rootfs_gets_the_host_cas_python_links_and_no_caches(tmp_path: Path) -> None:
    rootfs, ca_dir = tmp_path / "rootfs", tmp_path / "ca"
    make_rootfs(rootfs)
    ca_dir.mkdir()
    (ca_dir / "proxy.crt").write_text("-----BEGIN CERTIFICATE-----")
    (ca_dir / "README").write_text("not a certificate")

    copied = copy_ca_certificates(rootfs, ca_dir)
    finish_rootfs(rootfs)
    finish_rootfs(rootfs)  # twice: idempotent

    assert copied == [rootfs / "usr/local/share/ca-certificates/proxy.crt"]
    assert not (rootfs / "usr/local/share/ca-certificates/README").exists()
    assert (rootfs / "usr/local/bin/python").readlink() == Path("/usr/bin/python3")
    assert (rootfs / "usr/local/bin/pip").readlink() == Path("/usr/bin/pip3")
    assert not (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").exists()
    assert list((rootfs / "var/cache/apt/archives").iterdir()) == []
    left = {p.name for p in (rootfs / "var/lib/apt/lists").iterdir()}
    assert left == {"lock", "partial"}


# --- the plan against a fake host ----------------------------------------------------------


@dataclass
class FakeHost:
    """A host whose state the fake commands change the way the real ones would."""

    tmp: Path
    installed: set[str] = field(default_factory=lambda: set(PACKAGES))
    docker_up: bool = True
    images: set[str] = field(default_factory=lambda: {BASE_IMAGE})
    pull_works: bool = False
    dockerd_starts: bool = True
    install_fails: bool = False
    leave_mounts: bool = False
    umount_works: bool = True
    calls: list[tuple[str, ...]] = field(default_factory=list)
    envs: dict[str, Mapping[str, str]] = field(default_factory=dict)
    policy_present_during_install: bool | None = None
    rootfs_at_import: dict[str, object] = field(default_factory=dict)
    alive: set[int] = field(default_factory=set)
    live_restore: bool = True  # what the running dockerd has
    reloads_config: bool = True  # dockerd takes its configuration file on SIGHUP

    @property
    def config(self) -> BootstrapConfig:
        return BootstrapConfig(
            state_dir=self.tmp / "state",
            ca_dir=self.tmp / "ca",
            policy_rc_d=self.tmp / "policy-rc.d",
            mounts_file=self.tmp / "mounts",
            dockerd_timeout=1.0,
            poll_interval=0.01,
            daemon_json=self.tmp / "etc-docker" / "daemon.json",
            docker_pid_file=self.tmp / "docker.pid",
        )

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> Result:
        call = tuple(argv)
        self.calls.append(call)
        if env is not None:
            self.envs[call[0] + " " + call[1]] = env
        match call:
            case ("dpkg-query", "-W", "-f=${Status}", package):
                if package in self.installed:
                    return Result(0, "install ok installed")
                return Result(1, stderr=f"dpkg-query: no packages found matching {package}")
            case ("apt-get", "update", *_):
                return Result(0)
            case ("apt-get", "install", *rest):
                self.policy_present_during_install = self.config.policy_rc_d.exists()
                if self.install_fails:
                    return Result(100, stderr="E: Unable to locate package haproxy\n")
                self.installed |= {word for word in rest if not word.startswith("-")}
                return Result(0)
            case ("docker", "info"):
                return Result(0 if self.docker_up else 1, stderr="Cannot connect")
            case ("docker", "info", "--format", _):
                if not self.docker_up:
                    return Result(1, stderr="Cannot connect")
                return Result(0, "true\n" if self.live_restore else "false\n")
            case ("docker", "image", "inspect", image):
                return Result(0 if image in self.images else 1)
            case ("docker", "pull", image):
                if self.pull_works:
                    self.images.add(image)
                    return Result(0)
                return Result(1, stderr="dial tcp: lookup registry-1.docker.io: no such host")
            case ("debootstrap", *_, rootfs, _mirror):
                make_rootfs(Path(rootfs))
                if self.leave_mounts:
                    self.config.mounts_file.write_text(f"proc {rootfs}/proc proc rw 0 0\n")
                return Result(0)
            case ("chroot", _rootfs, "update-ca-certificates"):
                return Result(0)
            case ("umount", "--lazy", _point):
                if self.umount_works:
                    self.config.mounts_file.write_text("")
                return Result(0)
        raise AssertionError(f"unexpected command {call}")

    def pipe(self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float) -> Result:
        self.calls.append(("|", *producer, "|", *consumer))
        rootfs = Path(producer[producer.index("-C") + 1])
        self.rootfs_at_import = {
            "python": (rootfs / "usr/local/bin/python").is_symlink(),
            "ca": (rootfs / "usr/local/share/ca-certificates/proxy.crt").exists(),
            "externally_managed": (rootfs / "usr/lib/python3.11/EXTERNALLY-MANAGED").exists(),
        }
        self.images.add(consumer[-1])
        return Result(0)

    def spawn(
        self,
        argv: Sequence[str],
        log: Path,
        *,
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> int:
        self.calls.append(("spawn", *argv))
        if self.dockerd_starts:
            self.docker_up = True
            self.alive.add(4242)
        else:
            log.write_text("failed to start daemon: pid file found, ensure docker is not running\n")
        return 4242

    def running(self, pid: int, program: str, markers: Sequence[str] = ()) -> bool:
        return pid in self.alive and program == "dockerd"

    def exit_code(self, pid: int) -> int | None:
        return None

    def kill(self, pid: int, signum: int) -> None:
        self.calls.append(("kill", str(pid), str(signum)))
        file = self.config.daemon_json
        if signum == signal.SIGHUP and self.reloads_config and pid in self.alive and file.exists():
            self.live_restore = json.loads(file.read_text()).get("live-restore") is True

    def commands_run(self) -> list[str]:
        """Every command but the checks."""
        checks = {("dpkg-query",), ("docker", "info"), ("docker", "image")}  # prefixes
        return [
            " ".join(call)
            for call in self.calls
            if call[:1] not in checks and call[:2] not in checks
        ]


@pytest.fixture
def host(tmp_path: Path) -> FakeHost:
    host = FakeHost(tmp_path)
    (tmp_path / "ca").mkdir()
    (tmp_path / "ca" / "proxy.crt").write_text("cert")
    (tmp_path / "mounts").write_text("proc /proc proc rw 0 0\n")
    return host


def bootstrap(host: FakeHost, *, check_only: bool, euid: int = 0) -> tuple[bool, list[str]]:
    reports: list[str] = []
    ok = run_bootstrap(
        check_only,
        lambda name, status: reports.append(f"{name}: {status}"),
        steps=plan_bootstrap(host.config, host),
        preflight=lambda: require_installable(parse_os_release(DEBIAN_OS_RELEASE), euid),
    )
    return ok, reports


def test_the_plan_has_packages_then_dockerd_then_the_base_image(host: FakeHost) -> None:
    steps = plan_bootstrap(host.config, host)
    assert [s.name for s in steps] == [
        "apt packages",
        "dockerd",
        "dockerd live-restore",
        f"image {BASE_IMAGE}",
    ]
    assert all(s.explanation for s in steps)
    assert "haproxy" in steps[0].explanation
    assert host.calls == []  # planning runs nothing


def test_a_ready_host_reports_ok_everywhere_and_changes_nothing(host: FakeHost) -> None:
    ok, reports = bootstrap(host, check_only=False)
    assert ok
    assert reports == [
        "apt packages: ok",
        "dockerd: ok",
        "dockerd live-restore: ok",
        f"image {BASE_IMAGE}: ok",
    ]
    assert host.commands_run() == []


def test_checking_reports_every_missing_step_and_installs_nothing(host: FakeHost) -> None:
    host.installed -= {"haproxy"}
    host.docker_up = False
    host.images.clear()
    ok, reports = bootstrap(host, check_only=True, euid=1000)  # no root needed to check
    assert not ok
    assert reports == [
        "apt packages: missing",
        "dockerd: missing",
        "dockerd live-restore: missing",
        f"image {BASE_IMAGE}: missing",
    ]
    assert host.commands_run() == []


def test_installing_a_bare_host(host: FakeHost) -> None:
    host.installed -= {"haproxy", "socat"}
    host.docker_up = False
    host.images.clear()

    ok, reports = bootstrap(host, check_only=False)

    assert ok
    assert reports == [
        "apt packages: installing…",
        "apt packages: done",
        "dockerd: installing…",
        "dockerd: done",
        "dockerd live-restore: ok",
        f"image {BASE_IMAGE}: installing…",
        f"image {BASE_IMAGE}: done",
    ]
    run = host.commands_run()
    assert run[:2] == [
        "apt-get update -q",
        "apt-get install -y -q --no-install-recommends haproxy socat",
    ]
    assert host.envs["apt-get install"]["DEBIAN_FRONTEND"] == "noninteractive"
    assert host.policy_present_during_install is True
    assert not host.config.policy_rc_d.exists()  # ours: removed afterwards
    assert run[2] == "spawn " + " ".join(DOCKERD)
    assert (host.config.state_dir / "dockerd.pid").read_text() == "4242\n"
    assert run[3] == f"docker pull {BASE_IMAGE}"
    assert run[4].startswith("debootstrap --variant=minbase")
    assert run[4].split()[-3] == "bookworm"
    assert run[4].split()[-1] == DEBIAN_MIRROR
    assert run[5].startswith("chroot ") and run[5].endswith(" update-ca-certificates")
    assert run[6].startswith("| tar --numeric-owner -C ")
    assert run[6].endswith("| " + " ".join(import_argv(BASE_IMAGE)))
    assert host.rootfs_at_import == {"python": True, "ca": True, "externally_managed": False}
    assert list(host.config.state_dir.glob("rootfs-*")) == []  # the build tree is gone
    # and a second run finds everything in place
    host.calls.clear()
    assert bootstrap(host, check_only=False)[0]
    assert host.commands_run() == []


def test_an_existing_daemon_policy_is_left_alone(host: FakeHost) -> None:
    host.installed -= {"curl"}
    host.config.policy_rc_d.write_text("#!/bin/sh\nexit 101\n# the image's own\n")
    bootstrap(host, check_only=False)
    assert host.config.policy_rc_d.read_text().endswith("# the image's own\n")


def test_a_registry_that_answers_spares_the_debootstrap_build(host: FakeHost) -> None:
    host.images.clear()
    host.pull_works = True
    assert bootstrap(host, check_only=False)[0]
    assert host.commands_run() == [f"docker pull {BASE_IMAGE}"]


def test_a_failed_install_reports_apts_error_and_stops(host: FakeHost) -> None:
    host.installed -= {"haproxy"}
    host.docker_up = False
    host.install_fails = True
    reports: list[str] = []
    with pytest.raises(BootstrapError, match="Unable to locate package haproxy"):
        run_bootstrap(
            False,
            lambda name, status: reports.append(f"{name}: {status}"),
            steps=plan_bootstrap(host.config, host),
            preflight=lambda: None,
        )
    assert reports[0] == "apt packages: installing…"
    assert reports[1].startswith("apt packages: failed: apt-get install")
    assert "Unable to locate package haproxy" in reports[1]
    assert len(reports) == 2  # dockerd is not attempted
    assert not host.config.policy_rc_d.exists()


def test_installing_without_root_is_refused_before_any_change(host: FakeHost) -> None:
    host.installed -= {"haproxy"}
    with pytest.raises(BootstrapError, match="root"):
        bootstrap(host, check_only=False, euid=1000)
    assert host.commands_run() == []


def test_a_dockerd_that_dies_is_reported_with_its_log(host: FakeHost) -> None:
    host.docker_up = False
    host.dockerd_starts = False
    with pytest.raises(BootstrapError, match="pid file found"):
        bootstrap(host, check_only=False)


def test_a_dockerd_already_starting_is_waited_for_not_started_again(host: FakeHost) -> None:
    host.docker_up = False
    host.config.state_dir.mkdir()
    (host.config.state_dir / "dockerd.pid").write_text("777\n")
    host.alive.add(777)
    original_run = host.run

    def run(argv: Sequence[str], **kw: object) -> Result:
        result = original_run(argv, **kw)  # type: ignore[arg-type]
        host.docker_up = True  # the daemon comes up while we wait
        return result

    host.run = run  # type: ignore[method-assign]
    assert bootstrap(host, check_only=False)[0]
    assert not any(call[0] == "spawn" for call in host.calls)


def test_a_step_still_missing_after_apply_fails(host: FakeHost) -> None:
    host.installed -= {"socat"}
    original_run = host.run

    def run(argv: Sequence[str], **kw: object) -> Result:
        if argv[:2] == ["apt-get", "install"]:
            return Result(0)  # says yes, installs nothing
        return original_run(argv, **kw)  # type: ignore[arg-type]

    host.run = run  # type: ignore[method-assign]
    with pytest.raises(BootstrapError, match="still missing"):
        bootstrap(host, check_only=False)


def test_a_rootfs_with_mounts_left_is_unmounted_before_removal(host: FakeHost) -> None:
    host.images.clear()
    host.leave_mounts = True
    assert bootstrap(host, check_only=False)[0]
    assert any(call[:2] == ("umount", "--lazy") for call in host.calls)
    assert list(host.config.state_dir.glob("rootfs-*")) == []


def test_a_rootfs_still_mounted_is_kept_rather_than_deleted_through_the_mount(
    host: FakeHost,
) -> None:
    host.images.clear()
    host.leave_mounts = True
    host.umount_works = False
    with pytest.raises(BootstrapError, match="still mounted"):
        bootstrap(host, check_only=False)
    assert len(list(host.config.state_dir.glob("rootfs-*"))) == 1


def test_a_rootfs_left_by_an_interrupted_build_is_removed(host: FakeHost) -> None:
    host.images.clear()
    stale = host.config.state_dir / "rootfs-stale"
    make_rootfs(stale)
    assert bootstrap(host, check_only=False)[0]
    assert not stale.exists()


def test_system_commands_report_a_missing_program_as_a_shell_would() -> None:
    result = SystemCommands().run(["no-such-program-x"], timeout=30)
    assert result.returncode == 127
    assert "no-such-program-x is not installed" in result.stderr


def test_live_restore_is_written_and_the_running_dockerd_reloads_it(host: FakeHost) -> None:
    host.live_restore = False
    host.alive.add(777)
    host.config.docker_pid_file.write_text("777\n")  # a dockerd bootstrap did not start
    host.config.daemon_json.parent.mkdir()
    host.config.daemon_json.write_text('{"log-driver": "local"}')

    ok, reports = bootstrap(host, check_only=False)

    assert ok
    assert "dockerd live-restore: done" in reports
    # every other setting kept; reloaded with SIGHUP, never restarted
    assert json.loads(host.config.daemon_json.read_text()) == {
        "log-driver": "local",
        "live-restore": True,
    }
    assert f"kill 777 {int(signal.SIGHUP)}" in host.commands_run()
    assert not [c for c in host.commands_run() if c.startswith("spawn")]


def test_live_restore_without_a_dockerd_to_reload_says_so(host: FakeHost) -> None:
    host.live_restore = False
    with pytest.raises(BootstrapError, match="no running dockerd was found to reload it"):
        bootstrap(host, check_only=False)
    assert json.loads(host.config.daemon_json.read_text()) == {"live-restore": True}


def test_an_unreadable_daemon_json_is_not_overwritten(host: FakeHost) -> None:
    host.live_restore = False
    host.config.daemon_json.parent.mkdir()
    host.config.daemon_json.write_text("{not json")
    with pytest.raises(BootstrapError, match="is not valid JSON"):
        bootstrap(host, check_only=False)
    assert host.config.daemon_json.read_text() == "{not json"
