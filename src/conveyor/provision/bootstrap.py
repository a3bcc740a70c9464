"""`conveyor bootstrap`: make this host able to run Conveyor.

Four steps, in order: the distribution's packages (Docker Engine, HAProxy, the registry, the
base-image tools), a Docker Engine that answers, the engine configured with `live-restore` (its
containers keep running while dockerd restarts: an upgrade or a crash of the engine drops no
request), and the base image `python:3.11-slim-bookworm`.
`plan_browser_image` adds two: the browser-test image `conveyor/selenium` every project's
pipeline can use (built from the recipe in `selenium/` next to this module), and its copy in
Conveyor's registry.

Planning is kept apart from doing: `plan_bootstrap` returns `Task`s whose `check` and `apply`
are closures over a `HostCommands` (the one seam to the host's commands), and `run_bootstrap`
walks them: check, apply what is missing (unless only checking), check again. Every step is
idempotent, so running bootstrap twice changes nothing the second time.

Docker Hub may be out of reach; the base image is then built the way `reference/infra-recipe.sh`
does: debootstrap a minimal bookworm, add the host's CA certificates (or pip inside image builds
fails TLS checks behind an intercepting proxy), and `docker import` it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from conveyor.errors import BootstrapError, CommandError, ConveyorError
from conveyor.host import command
from conveyor.host.command import CommandResult, host_errors_as
from conveyor.host.process import Daemon, DaemonSpec, LocalProcesses, Processes

PACKAGES = (
    "docker.io",
    "haproxy",
    "docker-registry",
    "debootstrap",
    "socat",
    "ca-certificates",
    "curl",
    # metrics (docs/metrics.md): `conveyor up` runs them for each project unless --no-metrics
    "prometheus",
    "prometheus-alertmanager",
    "prometheus-node-exporter",
)
BASE_IMAGE = "python:3.11-slim-bookworm"
# The browser-test image (docs/ci.md, "Browser tests"): bump the tag when its conventions change
# incompatibly; any change of the recipe rebuilds it under the same tag.
SELENIUM_REPOSITORY = "conveyor/selenium"
SELENIUM_TAG = "1"
SELENIUM_IMAGE = f"{SELENIUM_REPOSITORY}:{SELENIUM_TAG}"
SELENIUM_RECIPE = Path(__file__).parent / "selenium"
RECIPE_LABEL = "io.conveyor.recipe"  # the digest of the recipe an image was built from
SUITE = "bookworm"  # Python 3.11 is bookworm's python3
DEBIAN_MIRROR = "http://deb.debian.org/debian"
DEBIAN_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
# No default bridge and no iptables rules: no container can land on a private-range network.
DOCKERD = ("dockerd", "--bridge=none", "--iptables=false", "--ip-masq=false")
IMPORT_CHANGES = ("ENV LANG=C.UTF-8", "ENV PYTHONUNBUFFERED=1", 'CMD ["python3"]')
# The rc scripts' convention: exit 101 means "action forbidden", so postinst starts no daemon.
POLICY_RC_D = "#!/bin/sh\n# written by conveyor bootstrap while it installs packages\nexit 101\n"
SUPPORTED_OS = frozenset({"debian", "ubuntu"})


# --- the seam to the host ------------------------------------------------------------------


# How a command ended. A missing program is 127, one that cannot run 126 and a timeout 124, as
# in a shell: bootstrap reports them as failed steps rather than raising.
Result = CommandResult
_EXIT_CODES = {"not found": 127, "not runnable": 126, "timed out": 124}


class HostCommands(Processes, Protocol):
    """Commands and daemons on the host being bootstrapped (the processes part starts dockerd)."""

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> Result:
        """Run argv to completion (env: variables added to this process's environment)."""
        ...

    def pipe(self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float) -> Result:
        """Run `producer | consumer`; the result is the consumer's, or the first failure."""
        ...


class SystemCommands(LocalProcesses):
    """HostCommands on this machine, through `conveyor.host` (argument lists, no shell)."""

    def run(
        self, argv: Sequence[str], *, timeout: float, env: Mapping[str, str] | None = None
    ) -> Result:
        try:
            return command.run(argv, timeout=timeout, env=env)
        except CommandError as e:
            return Result(_EXIT_CODES[e.problem], stderr=str(e), argv=e.argv)

    def pipe(self, producer: Sequence[str], consumer: Sequence[str], *, timeout: float) -> Result:
        try:
            return command.pipe(producer, consumer, timeout=timeout)
        except CommandError as e:
            return Result(_EXIT_CODES[e.problem], stderr=str(e), argv=e.argv)


# --- pure parts ----------------------------------------------------------------------------


def parse_os_release(text: str) -> dict[str, str]:
    """/etc/os-release: KEY=value lines, values quoted like shell words."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.strip().partition("=")
        if not sep or key.startswith("#"):
            continue
        try:
            words = shlex.split(value)
        except ValueError:  # an unbalanced quote: keep the raw text rather than fail
            words = [value]
        fields[key] = " ".join(words)
    return fields


def is_supported(os_release: Mapping[str, str]) -> bool:
    """Debian, Ubuntu, or a derivative that says it is like one (it has dpkg and apt)."""
    names = {os_release.get("ID", ""), *os_release.get("ID_LIKE", "").split()}
    return bool(names & SUPPORTED_OS)


def debian_mirror(deb822_sources: Iterable[str], sources_list: str = "") -> str | None:
    """The first non-security http(s) mirror apt uses: deb822 `.sources` first, then the
    one-line `sources.list` format."""
    for text in deb822_sources:
        for stanza in _deb822_stanzas(text):
            if mirror := _mirror_of_stanza(stanza):
                return mirror
    for line in sources_list.splitlines():
        if mirror := _mirror_of_line(line):
            return mirror
    return None


def _deb822_stanzas(text: str) -> list[dict[str, str]]:
    stanzas: list[dict[str, str]] = []
    current: dict[str, str] = {}
    key = ""
    for line in [*text.splitlines(), ""]:
        if line.startswith("#"):
            continue
        if not line.strip():
            if current:
                stanzas.append(current)
            current, key = {}, ""
        elif line[0] in " \t" and key:  # a continuation line of a multi-line field
            current[key] += " " + line.strip()
        else:
            key, _, value = line.partition(":")
            key = key.strip().lower()
            current[key] = value.strip()
    return stanzas


def _mirror_of_stanza(stanza: Mapping[str, str]) -> str | None:
    if "deb" not in stanza.get("types", "").split():
        return None
    if stanza.get("enabled", "yes").lower() == "no":
        return None
    suites = stanza.get("suites", "").split()
    if suites and all(suite.endswith("-security") for suite in suites):
        return None
    return next((uri for uri in stanza.get("uris", "").split() if _usable_mirror(uri)), None)


def _mirror_of_line(line: str) -> str | None:
    line = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0])  # drop comments and [options]
    words = line.split()
    if len(words) < 3 or words[0] != "deb" or words[2].endswith("-security"):
        return None
    return words[1] if _usable_mirror(words[1]) else None


def _usable_mirror(uri: str) -> bool:
    return uri.startswith(("http://", "https://")) and "security" not in uri


def mirror_for(os_release: Mapping[str, str], host_mirror: str | None) -> str:
    """Where debootstrap fetches bookworm: the host's own mirror on Debian (it may be the only
    one reachable); elsewhere the host's archive has no bookworm, so Debian's."""
    if os_release.get("ID") == "debian" and host_mirror:
        return host_mirror
    return DEBIAN_MIRROR


def default_state_dir(euid: int, env: Mapping[str, str], home: Path) -> Path:
    """Where bootstrap keeps dockerd's log and PID file, and builds the rootfs."""
    if euid == 0:
        return Path("/var/lib/conveyor/bootstrap")
    state_home = Path(env.get("XDG_STATE_HOME") or home / ".local" / "state")
    return state_home / "conveyor" / "bootstrap"


def require_installable(os_release: Mapping[str, str], euid: int) -> None:
    """Refuse to install where the steps cannot work, before touching anything."""
    if not is_supported(os_release):
        name = os_release.get("PRETTY_NAME") or os_release.get("ID") or "this system"
        raise BootstrapError(
            f"bootstrap installs with apt and dpkg: Debian or Ubuntu only, not {name}"
        )
    if euid != 0:
        raise BootstrapError("bootstrap must install packages and start dockerd: run it as root")


def debootstrap_argv(rootfs: Path, mirror: str, keyring: Path | None = None) -> list[str]:
    argv = ["debootstrap", "--variant=minbase"]
    argv.append("--include=python3,python3-pip,python3-venv,ca-certificates")
    if keyring is not None:
        argv.append(f"--keyring={keyring}")
    return [*argv, SUITE, str(rootfs), mirror]


def recipe_digest(directory: Path) -> str:
    """A digest of every file of an image recipe (names and contents)."""
    h = hashlib.sha256()
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        h.update(path.relative_to(directory).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def build_argv(image: str, context: Path, digest: str) -> list[str]:
    """`docker build` of a recipe, labelled with its digest; host networking, as every image
    build of Conveyor's (no bridge network exists)."""
    return [
        "docker", "build", "--network", "host", "--quiet",
        "--label", f"{RECIPE_LABEL}={digest}", "-t", image, str(context),
    ]  # fmt: skip


def import_argv(image: str) -> list[str]:
    changes = [arg for change in IMPORT_CHANGES for arg in ("-c", change)]
    return ["docker", "import", *changes, "-", image]


def mounts_under(mounts_text: str, root: Path) -> list[Path]:
    """Mount points at or below `root` in /proc/self/mounts text, deepest first."""
    found = []
    for line in mounts_text.splitlines():
        fields = line.split()
        if len(fields) < 2:
            continue
        # the kernel escapes space, tab, newline and backslash as \ooo
        point = Path(re.sub(r"\\([0-7]{3})", lambda m: chr(int(m[1], 8)), fields[1]))
        if point == root or root in point.parents:
            found.append(point)
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _must(result: Result, what: str) -> Result:
    if not result.ok:
        raise BootstrapError(f"{what} failed (exit {result.returncode}):\n{tail(result.stderr)}")
    return result


# --- rootfs edits (plain file operations on the debootstrapped tree) -----------------------


def copy_ca_certificates(rootfs: Path, ca_dir: Path) -> list[Path]:
    """The host's extra CAs (an intercepting proxy's among them) into the image's trust store
    source; `update-ca-certificates` in the chroot then adds them to the bundle."""
    target = rootfs / "usr/local/share/ca-certificates"
    target.mkdir(parents=True, exist_ok=True)
    copied = []
    for cert in sorted(ca_dir.glob("*.crt")):
        shutil.copy2(cert, target / cert.name)
        copied.append(target / cert.name)
    return copied


def finish_rootfs(rootfs: Path) -> None:
    """What the official python images offer and Debian's lacks, then drop apt's caches."""
    bin_dir = rootfs / "usr/local/bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("python", "/usr/bin/python3"), ("pip", "/usr/bin/pip3")):
        link = bin_dir / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target)  # absolute: resolved inside the container, not here
    # PEP 668 marker: without it `pip install` in a Dockerfile works as with the official image
    for marker in rootfs.glob("usr/lib/python3*/EXTERNALLY-MANAGED"):
        marker.unlink()
    for deb in (rootfs / "var/cache/apt/archives").glob("*.deb"):
        deb.unlink()
    lists = rootfs / "var/lib/apt/lists"
    for entry in lists.iterdir() if lists.is_dir() else []:
        if entry.is_file() and entry.name != "lock":
            entry.unlink()


# --- the plan ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Task:
    name: str
    explanation: str
    check: Callable[[], bool]  # True when nothing needs doing
    apply: Callable[[], None]  # makes check() true, or raises BootstrapError


@dataclass(frozen=True)
class BootstrapConfig:
    state_dir: Path
    packages: tuple[str, ...] = PACKAGES
    base_image: str = BASE_IMAGE
    selenium_image: str = SELENIUM_IMAGE
    selenium_recipe: Path = SELENIUM_RECIPE
    build_timeout: float = 1800.0  # a first build downloads Chromium
    mirror: str = DEBIAN_MIRROR
    keyring: Path | None = None  # Debian's keyring, when the host is not Debian
    ca_dir: Path = Path("/usr/local/share/ca-certificates")
    policy_rc_d: Path = Path("/usr/sbin/policy-rc.d")
    mounts_file: Path = Path("/proc/self/mounts")
    pull_timeout: float = 60.0  # a registry that answers starts sending well within this
    dockerd_timeout: float = 60.0
    poll_interval: float = 0.2
    # dockerd reads `live-restore` from its configuration file (no flag: a setting given both
    # ways stops dockerd from starting) and takes it on SIGHUP, without a restart.
    daemon_json: Path = Path("/etc/docker/daemon.json")
    docker_pid_file: Path = Path("/var/run/docker.pid")  # dockerd's default --pidfile


def host_config() -> BootstrapConfig:
    """The configuration for this machine (reads /etc/os-release and apt's sources)."""
    os_release = read_os_release()
    sources = [p.read_text() for p in sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))]
    legacy = Path("/etc/apt/sources.list")
    host_mirror = debian_mirror(sources, legacy.read_text() if legacy.is_file() else "")
    debian = os_release.get("ID") == "debian"
    return BootstrapConfig(
        state_dir=default_state_dir(os.geteuid(), os.environ, Path.home()),
        # elsewhere debootstrap needs Debian's keyring to verify bookworm
        packages=PACKAGES if debian else (*PACKAGES, "debian-archive-keyring"),
        mirror=mirror_for(os_release, host_mirror),
        keyring=None if debian else DEBIAN_KEYRING,
    )


def read_os_release() -> dict[str, str]:
    for path in (Path("/etc/os-release"), Path("/usr/lib/os-release")):
        if path.is_file():
            return parse_os_release(path.read_text())
    return {}


def plan_bootstrap(
    config: BootstrapConfig | None = None, commands: HostCommands | None = None
) -> list[Task]:
    """The steps, in the order they must run. Nothing runs until a step's check or apply."""
    config = config or host_config()
    commands = commands or SystemCommands()
    apt = _Apt(commands, config)
    return [
        Task(
            name="apt packages",
            explanation=f"{', '.join(config.packages)} from the distribution",
            check=lambda: not apt.missing(),
            apply=apt.install_missing,
        ),
        Task(
            name="dockerd",
            explanation="a Docker Engine answering `docker info`; started detached, without "
            "a bridge or iptables rules, when none does",
            check=lambda: _docker_answers(commands),
            apply=lambda: _start_dockerd(commands, config),
        ),
        Task(
            name="dockerd live-restore",
            explanation=f"`live-restore` in {config.daemon_json}, taken by the running dockerd "
            "on SIGHUP: replicas keep running while the engine restarts",
            check=lambda: _live_restore(commands),
            apply=lambda: _enable_live_restore(commands, config),
        ),
        Task(
            name=f"image {config.base_image}",
            explanation="the base image of the example and of CI jobs; pulled, or built with "
            "debootstrap when no registry answers",
            check=lambda: _image_present(commands, config.base_image),
            apply=lambda: _provide_base_image(commands, config),
        ),
    ]


class ImageRegistry(Protocol):
    """The host's registry (conveyor.runtime.registry.Registry), as the browser image's
    push step needs it."""

    @property
    def url(self) -> str: ...

    def ensure(self) -> None:
        """Make it answer, starting it when it does not (raises a ConveyorError)."""
        ...

    def credentials(self) -> tuple[str, str]: ...

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest it serves for `repository:tag`; None when it has none or is down."""
        ...


def plan_browser_image(
    config: BootstrapConfig, commands: HostCommands, registry: ImageRegistry | None
) -> list[Task]:
    """The browser-test image, built from its recipe (and again whenever the recipe changes),
    then pushed to `registry` as `<registry>/conveyor/selenium:<tag>` (without a registry,
    only built)."""
    image = config.selenium_image
    tasks = [
        Task(
            name=f"image {image}",
            explanation="the browser-test image pipelines use (Chromium, ChromeDriver, "
            f"Selenium, pytest, bash, curl; user `tester`), built on {config.base_image}",
            check=lambda: _built_from_recipe(commands, image, config.selenium_recipe),
            apply=lambda: _build_recipe(commands, config, image),
        )
    ]
    if registry is not None:
        tasks.append(
            Task(
                name=f"image {registry.url}/{image}",
                explanation=f"{image} in Conveyor's registry (started when it is not running)",
                check=lambda: _pushed(commands, registry, image),
                apply=lambda: _push(commands, registry, image),
            )
        )
    return tasks


def _built_from_recipe(commands: HostCommands, image: str, recipe: Path) -> bool:
    label = '{{ index .Config.Labels "' + RECIPE_LABEL + '" }}'
    found = commands.run(["docker", "image", "inspect", "--format", label, image], timeout=30)
    return found.ok and found.stdout.strip() == recipe_digest(recipe)


def _build_recipe(commands: HostCommands, config: BootstrapConfig, image: str) -> None:
    argv = build_argv(image, config.selenium_recipe, recipe_digest(config.selenium_recipe))
    _must(commands.run(argv, timeout=config.build_timeout), f"docker build of {image}")


def _repo_digests(commands: HostCommands, image: str) -> list[str]:
    found = commands.run(
        ["docker", "image", "inspect", "--format", "{{ json .RepoDigests }}", image], timeout=30
    )
    if not found.ok:
        return []
    try:
        digests = json.loads(found.stdout or "[]")
    except ValueError:
        return []
    return [str(d) for d in digests or []]


def _pushed(commands: HostCommands, registry: ImageRegistry, image: str) -> bool:
    """The registry serves this very image (a rebuilt one has another digest)."""
    repository, _, tag = image.rpartition(":")
    digest = registry.manifest_digest(repository, tag)
    return digest is not None and f"{registry.url}/{repository}@{digest}" in _repo_digests(
        commands, image
    )


def _push(commands: HostCommands, registry: ImageRegistry, image: str) -> None:
    try:
        registry.ensure()
    except ConveyorError as e:
        raise BootstrapError(f"the registry at {registry.url} is not available: {e}") from e
    target = f"{registry.url}/{image}"
    _must(commands.run(["docker", "tag", image, target], timeout=60), f"docker tag {target}")
    user, password = registry.credentials()
    # A throw-away client configuration: the user's ~/.docker is neither read nor changed.
    with tempfile.TemporaryDirectory(prefix="conveyor-docker-") as client:
        auth = base64.b64encode(f"{user}:{password}".encode()).decode()
        config = Path(client) / "config.json"
        config.write_text(json.dumps({"auths": {registry.url: {"auth": auth}}}))
        config.chmod(0o600)
        push = ["docker", "--config", client, "push", "--quiet", target]
        _must(commands.run(push, timeout=900), f"docker push {target}")


@dataclass
class _Apt:
    commands: HostCommands
    config: BootstrapConfig
    updated: bool = field(default=False)  # `apt-get update` once per run, however many installs

    def missing(self) -> list[str]:
        return [p for p in self.config.packages if not self.installed(p)]

    def installed(self, package: str) -> bool:
        result = self.commands.run(["dpkg-query", "-W", "-f=${Status}", package], timeout=30)
        # "install ok installed", "hold ok installed"; not "deinstall ok config-files"
        return result.ok and result.stdout.split()[-1:] == ["installed"]

    def install_missing(self) -> None:
        packages = self.missing()
        if not packages:
            return
        env = {"DEBIAN_FRONTEND": "noninteractive"}
        created_policy = self._forbid_daemon_starts()
        try:
            if not self.updated:
                update = self.commands.run(["apt-get", "update", "-q"], timeout=600, env=env)
                _must(update, "apt-get update")
                self.updated = True
            install = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages]
            _must(self.commands.run(install, timeout=1800, env=env), shlex.join(install))
        finally:
            # leave the host's daemon policy as it was: later upgrades behave as before
            if created_policy:
                self.config.policy_rc_d.unlink(missing_ok=True)

    def _forbid_daemon_starts(self) -> bool:
        """Without systemd, postinst scripts would start haproxy and dockerd their own way;
        Conveyor runs them itself. True when the policy file was written here."""
        path = self.config.policy_rc_d
        if path.exists():
            return False
        path.write_text(POLICY_RC_D)
        path.chmod(0o755)
        return True


def _docker_answers(commands: HostCommands) -> bool:
    return commands.run(["docker", "info"], timeout=20).ok


def _start_dockerd(commands: HostCommands, config: BootstrapConfig) -> None:
    """Start dockerd detached unless the one our PID file names still runs (it may still be
    starting), and wait until it answers."""
    config.state_dir.mkdir(parents=True, exist_ok=True)
    dockerd = Daemon(
        DaemonSpec(
            name="dockerd",
            argv=DOCKERD,
            pid_file=config.state_dir / "dockerd.pid",
            log_file=config.state_dir / "dockerd.log",
            cwd=Path("/"),
            ready=lambda: _docker_answers(commands),
            readiness="answering `docker info`",
            start_timeout=config.dockerd_timeout,
            install_hint="`conveyor bootstrap` installs docker.io",
            poll_interval=config.poll_interval,
        ),
        processes=commands,
    )
    with host_errors_as(BootstrapError):
        dockerd.ensure()


def _live_restore(commands: HostCommands) -> bool:
    found = commands.run(["docker", "info", "--format", "{{.LiveRestoreEnabled}}"], timeout=20)
    return found.ok and found.stdout.strip() == "true"


def with_live_restore(text: str, file: Path) -> str:
    """The daemon configuration `text` with `live-restore` on, every other setting kept."""
    try:
        settings = json.loads(text) if text.strip() else {}
    except ValueError as e:
        raise BootstrapError(f"{file} is not valid JSON ({e}): fix it, then run again") from e
    if not isinstance(settings, dict):
        raise BootstrapError(f"{file} must hold a JSON object")
    return json.dumps({**settings, "live-restore": True}, indent=2) + "\n"


def _enable_live_restore(commands: HostCommands, config: BootstrapConfig) -> None:
    """Write the setting, then have the running dockerd reload its configuration (SIGHUP:
    no restart, its containers are untouched)."""
    file = config.daemon_json
    text = file.read_text() if file.exists() else ""
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_name(file.name + ".conveyor-tmp")
    tmp.write_text(with_live_restore(text, file))
    tmp.replace(file)
    pid = _dockerd_pid(commands, config)
    if pid is None:
        raise BootstrapError(
            f"live-restore is set in {file}, but no running dockerd was found to reload it "
            f"(looked at {config.state_dir / 'dockerd.pid'} and {config.docker_pid_file}): "
            "restart dockerd to take it"
        )
    commands.kill(pid, signal.SIGHUP)
    deadline = time.monotonic() + config.dockerd_timeout
    while not _live_restore(commands):
        if time.monotonic() >= deadline:
            raise BootstrapError(f"dockerd (pid {pid}) did not take live-restore from {file}")
        time.sleep(config.poll_interval)


def _dockerd_pid(commands: HostCommands, config: BootstrapConfig) -> int | None:
    """The PID of the running dockerd: the one bootstrap started, else dockerd's own PID file."""
    for pid_file in (config.state_dir / "dockerd.pid", config.docker_pid_file):
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            continue
        if commands.running(pid, "dockerd"):
            return pid
    return None


def _image_present(commands: HostCommands, image: str) -> bool:
    return commands.run(["docker", "image", "inspect", image], timeout=30).ok


def _provide_base_image(commands: HostCommands, config: BootstrapConfig) -> None:
    pulled = commands.run(["docker", "pull", config.base_image], timeout=config.pull_timeout)
    if pulled.ok and _image_present(commands, config.base_image):
        return
    _build_base_image(commands, config)


def _build_base_image(commands: HostCommands, config: BootstrapConfig) -> None:
    config.state_dir.mkdir(parents=True, exist_ok=True)
    for stale in config.state_dir.glob("rootfs-*"):  # left by an interrupted run
        _remove_rootfs(commands, config, stale)
    rootfs = Path(tempfile.mkdtemp(prefix="rootfs-", dir=config.state_dir))
    try:
        argv = debootstrap_argv(rootfs, config.mirror, config.keyring)
        _must(commands.run(argv, timeout=1800), "debootstrap")
        copy_ca_certificates(rootfs, config.ca_dir)
        chroot = ["chroot", str(rootfs), "update-ca-certificates"]
        _must(commands.run(chroot, timeout=120), "update-ca-certificates in the new rootfs")
        finish_rootfs(rootfs)
        tar = ["tar", "--numeric-owner", "-C", str(rootfs), "-c", "."]
        _must(commands.pipe(tar, import_argv(config.base_image), timeout=900), "docker import")
    finally:
        _remove_rootfs(commands, config, rootfs)


def _remove_rootfs(commands: HostCommands, config: BootstrapConfig, rootfs: Path) -> None:
    """A failed debootstrap can leave /proc or /dev mounted inside the rootfs; deleting the
    tree then would delete the host's files through them. Unmount first, or keep the tree."""
    real = rootfs.resolve()  # the kernel lists mount points by their real path
    for point in mounts_under(config.mounts_file.read_text(), real):
        commands.run(["umount", "--lazy", str(point)], timeout=30)
    if left := mounts_under(config.mounts_file.read_text(), real):
        raise BootstrapError(f"{rootfs} kept: still mounted at {', '.join(map(str, left))}")
    shutil.rmtree(rootfs, ignore_errors=True)


# --- running the plan ----------------------------------------------------------------------

Report = Callable[[str, str], None]  # (step name, "ok" | "missing" | "installing…" | ...)


def host_preflight() -> None:
    require_installable(read_os_release(), os.geteuid())


def run_bootstrap(
    check_only: bool,
    report: Report,
    *,
    steps: Sequence[Task] | None = None,
    preflight: Callable[[], None] = host_preflight,
) -> bool:
    """Check every step and, unless `check_only`, apply the missing ones in order.

    Reports each step as "ok", "missing" (check_only), or "installing…" then "done" /
    "failed: …". Returns True when everything is (now) present; with `check_only`, False when
    something is missing. Raises BootstrapError when installing fails or cannot be attempted
    (unsupported system, not root); later steps are then not tried, as they depend on it.
    """
    steps = plan_bootstrap() if steps is None else steps
    all_present = True
    preflight_done = False
    for step in steps:
        if step.check():
            report(step.name, "ok")
            continue
        if check_only:
            report(step.name, "missing")
            all_present = False
            continue
        try:
            if not preflight_done:
                preflight()
                preflight_done = True
            report(step.name, "installing…")
            step.apply()
            if not step.check():
                raise BootstrapError(f"{step.name}: still missing after installing")
        except BootstrapError as exc:
            report(step.name, f"failed: {exc}")
            raise
        report(step.name, "done")
    return all_present
