"""Prometheus, Alertmanager and node exporter as supervised host daemons on 127.0.0.1.

One `MetricsStack` owns a directory (a project's `<state>/metrics`, or the server's): the
configuration files, the data, the file-based discovery targets, the PID files and logs
(`MetricsLayout`). It does not decide what the files say (the renderers in `render/` do, the
app composes them); it checks and loads them:

- `configure(prometheus_yml, alertmanager_yml)`: each candidate is written beside the file,
  checked with its validator (`promtool check config`, `amtool check-config`) and only then moved
  in place; a running daemon is told through its lifecycle API (`POST /-/reload`). A rejected
  candidate is kept for its line numbers and the running configuration stays.
- `write_targets(name, text)`: a targets file rewritten atomically (temporary file + rename),
  only when its text changes; Prometheus's file watch picks it up, nothing is reloaded.
- `ensure()`: starts what does not run and waits until it answers; returns the components it
  had to start, so a caller that expected them running reports a restart.
- `stop()`, `health()`.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import requests

from conveyor.errors import MetricsError
from conveyor.host.command import host_errors_as
from conveyor.host.process import Daemon, DaemonSpec, Processes
from conveyor.host.validate import check
from conveyor.render import alertmanager_routes as am_render
from conveyor.render import prometheus as prom_render
from conveyor.render.validator import Validator

PROMETHEUS = "prometheus"
ALERTMANAGER = "alertmanager"
NODE_EXPORTER = "node-exporter"
COMPONENTS = (PROMETHEUS, ALERTMANAGER, NODE_EXPORTER)

RETENTION = "15d"  # Prometheus's own default, said out loud


@dataclass(frozen=True)
class MetricsPorts:
    """Where each component listens on 127.0.0.1 (`conveyor` is the agent's or server's own
    metrics endpoint, listed here so one file keeps every port of the stack)."""

    prometheus: int
    alertmanager: int
    node_exporter: int
    conveyor: int

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> MetricsPorts:
        data = json.loads(text)
        return cls(
            **{k: int(data[k]) for k in ("prometheus", "alertmanager", "node_exporter", "conveyor")}
        )

    def of(self, component: str) -> int:
        return {
            PROMETHEUS: self.prometheus,
            ALERTMANAGER: self.alertmanager,
            NODE_EXPORTER: self.node_exporter,
        }[component]


@dataclass(frozen=True)
class MetricsLayout:
    """The files of one metrics stack under `root`."""

    root: Path

    @property
    def ports_file(self) -> Path:
        return self.root / "ports.json"

    @property
    def off_file(self) -> Path:
        """Present when metrics are turned off (`conveyor up --no-metrics`)."""
        return self.root / "off"

    @property
    def prometheus_dir(self) -> Path:
        return self.root / "prometheus"

    @property
    def prometheus_config(self) -> Path:
        return self.prometheus_dir / "prometheus.yml"

    @property
    def prometheus_data(self) -> Path:
        return self.prometheus_dir / "data"

    @property
    def targets_dir(self) -> Path:
        return self.prometheus_dir / "targets"

    @property
    def rules_dir(self) -> Path:
        return self.prometheus_dir / "rules"

    @property
    def alertmanager_dir(self) -> Path:
        return self.root / "alertmanager"

    @property
    def alertmanager_config(self) -> Path:
        return self.alertmanager_dir / "alertmanager.yml"

    @property
    def alertmanager_data(self) -> Path:
        return self.alertmanager_dir / "data"

    def pid_file(self, component: str) -> Path:
        return self.root / f"{component}.pid"

    def log_file(self, component: str) -> Path:
        return self.root / f"{component}.log"


@dataclass(frozen=True)
class Programs:
    """The programs, as Debian installs them."""

    prometheus: str = "prometheus"
    alertmanager: str = "prometheus-alertmanager"
    node_exporter: str = "prometheus-node-exporter"
    promtool: str = "promtool"
    amtool: str = "amtool"


@dataclass(frozen=True)
class ComponentHealth:
    name: str
    url: str
    running: bool
    healthy: bool
    pid: int | None


def _url(port: int) -> str:
    return f"http://127.0.0.1:{port}"


def _answers(url: str) -> Callable[[], bool]:
    def probe() -> bool:
        try:
            return requests.get(url, timeout=1.0).status_code == 200
        except requests.RequestException:
            return False

    return probe


class MetricsStack:
    """The three daemons of one metrics directory (see the module docstring)."""

    def __init__(
        self,
        layout: MetricsLayout,
        ports: MetricsPorts,
        *,
        programs: Programs | None = None,
        processes: Processes | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.layout = layout
        self.ports = ports
        self.programs = programs or Programs()
        self.timeout = timeout
        self._daemons = {name: Daemon(self._spec(name), processes) for name in COMPONENTS}

    # ---- state --------------------------------------------------------------------------------

    def url(self, component: str) -> str:
        return _url(self.ports.of(component))

    def daemon(self, component: str) -> Daemon:
        return self._daemons[component]

    def running(self) -> list[str]:
        return [name for name, d in self._daemons.items() if d.running()]

    def health(self) -> list[ComponentHealth]:
        out = []
        for name, d in self._daemons.items():
            pid = d.pid()
            ready = d.spec.ready
            healthy = pid is not None and (ready is None or ready())
            out.append(ComponentHealth(name, self.url(name), pid is not None, healthy, pid))
        return out

    # ---- files --------------------------------------------------------------------------------

    def configure(self, prometheus_yml: str, alertmanager_yml: str) -> list[str]:
        """Check both files, move them in place, reload the daemons that run and whose file
        changed; return the components reloaded. Raises MetricsError on a rejected file (the
        file in place is untouched, the candidate kept beside it)."""
        self._prepare_dirs()
        changed = []
        files = (
            (
                PROMETHEUS,
                self.layout.prometheus_config,
                prometheus_yml,
                prom_render.VALIDATOR,
                self.programs.promtool,
            ),
            (
                ALERTMANAGER,
                self.layout.alertmanager_config,
                alertmanager_yml,
                am_render.VALIDATOR,
                self.programs.amtool,
            ),
        )
        for name, path, text, validator, program in files:
            if _read(path) == text:
                continue
            self._install(path, text, validator, program)
            changed.append(name)
        reloaded = []
        for name in changed:
            if self._daemons[name].running():
                self._reload(name)
                reloaded.append(name)
        return reloaded

    def write_targets(self, name: str, text: str) -> bool:
        """Rewrite one targets file atomically when its text changed; True if it did."""
        path = self.layout.targets_dir / name
        if _read(path) == text:
            return False
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_atomic(path, text)
        return True

    def remove_targets(self, name: str) -> bool:
        path = self.layout.targets_dir / name
        existed = path.exists()
        path.unlink(missing_ok=True)
        return existed

    def targets(self) -> list[str]:
        """The targets files present."""
        d = self.layout.targets_dir
        return sorted(p.name for p in d.glob("*.json")) if d.is_dir() else []

    # ---- lifecycle ----------------------------------------------------------------------------

    def ensure(self) -> list[str]:
        """Start every component that does not run (Prometheus and Alertmanager need their
        configuration first: `configure`); wait until each answers. Returns those started."""
        started = []
        for name in COMPONENTS:
            d = self._daemons[name]
            if d.running():
                continue
            if name == PROMETHEUS:
                _check_writable(self.layout.prometheus_data, "Prometheus data directory")
            if name == ALERTMANAGER:
                _check_writable(self.layout.alertmanager_data, "Alertmanager data directory")
            with host_errors_as(MetricsError):
                d.ensure(self.timeout)
            started.append(name)
        return started

    def stop(self) -> list[str]:
        """Stop every component by its PID; return those that ran."""
        stopped = []
        for name in reversed(COMPONENTS):
            if self._daemons[name].stop():
                stopped.append(name)
        return stopped

    # ---- inside -------------------------------------------------------------------------------

    def _spec(self, name: str) -> DaemonSpec:
        lay, port, prog = self.layout, self.ports.of(name), self.programs
        listen = f"127.0.0.1:{port}"
        ready = _answers(f"{_url(port)}/-/ready")
        argv: tuple[str, ...]
        if name == PROMETHEUS:
            config = str(lay.prometheus_config)
            argv = (
                prog.prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={lay.prometheus_data}",
                f"--storage.tsdb.retention.time={RETENTION}",
                f"--web.listen-address={listen}",
                "--web.enable-lifecycle",  # POST /-/reload: targets and rules without restarts
            )
            hint = prom_render.INSTALL_HINT
            marker = f"--config.file={config}"
        elif name == ALERTMANAGER:
            config = str(lay.alertmanager_config)
            argv = (
                prog.alertmanager,
                f"--config.file={config}",
                f"--storage.path={lay.alertmanager_data}",
                f"--web.listen-address={listen}",
                "--cluster.listen-address=",  # one instance: no gossip port
            )
            hint = am_render.INSTALL_HINT
            marker = f"--config.file={config}"
        else:
            argv = (prog.node_exporter, f"--web.listen-address={listen}")
            ready = _answers(f"{_url(port)}/")
            hint = "apt-get install prometheus-node-exporter"
            marker = f"--web.listen-address={listen}"
        return DaemonSpec(
            name={PROMETHEUS: "Prometheus", ALERTMANAGER: "Alertmanager"}.get(
                name, "node exporter"
            ),
            argv=argv,
            pid_file=lay.pid_file(name),
            log_file=lay.log_file(name),
            ready=ready,
            readiness=f"answering on {listen}",
            start_timeout=self.timeout,
            markers=(marker,),
            install_hint=hint,
            poll_interval=0.1,
        )

    def _prepare_dirs(self) -> None:
        for d in (self.layout.targets_dir, self.layout.rules_dir, self.layout.alertmanager_dir):
            d.mkdir(parents=True, exist_ok=True)

    def _install(self, path: Path, text: str, validator: Validator, program: str) -> None:
        # The candidate's name is this process's own: the agent and a command may both write.
        candidate = path.with_name(f"{path.name}.{os.getpid()}.new")
        candidate.write_text(text)
        with host_errors_as(MetricsError):
            verdict = check(validator, candidate, program=program, timeout=self.timeout)
        if not verdict.ok:
            said = "\n".join(verdict.messages) or f"exit code {verdict.returncode}"
            raise MetricsError(
                f"{validator.name} rejected {candidate} (kept; {path} is unchanged): {said}"
            )
        os.replace(candidate, path)

    def _reload(self, name: str) -> None:
        url = f"{self.url(name)}/-/reload"
        try:
            answer = requests.post(url, timeout=self.timeout)
        except requests.RequestException as e:
            raise MetricsError(f"{name} did not take its new configuration ({url}): {e}") from e
        if answer.status_code != 200:
            raise MetricsError(
                f"{name} refused its new configuration ({url}, HTTP {answer.status_code}): "
                f"{answer.text.strip()[:500]}"
            )


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def _write_atomic(path: Path, text: str) -> None:
    """Write, then rename over: a reader sees the old file or the new one. The temporary name
    is this process's and thread's own (the agent and a command may write at once)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _check_writable(directory: Path, what: str) -> None:
    """A clear error for a read-only or full disk, before the daemon fails on it in its log."""
    probe = directory / ".conveyor-write-check"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with probe.open("w") as f:
            f.write("ok\n")
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as e:
        raise MetricsError(f"{what} {directory} is not writable: {e.strerror or e}") from e
