"""HAProxy as Conveyor's traffic router: a master-worker daemon driven through its runtime API.

Files in `run_dir`: haproxy.cfg (what runs), haproxy.cfg.new (the candidate being checked),
admin.sock (runtime API), master.sock (master CLI), log.sock (where HAProxy sends each HTTP
request's log line; whoever reads latency binds it), haproxy.pid (master PID), servers.state
(HAProxy's server-state file, dumped before each reload), servers.json (the servers Conveyor
added, so reloads and restarts after a crash keep them), frontends.json (the frontends HAProxy
runs, to tell whether `ensure` must reload) and start.log (HAProxy's output at each start,
appended; errors quote the last start's [ALERT] lines).

Service addresses (project networking): HAProxy binds inside another network namespace by name,
`/var/run/netns/<name>`; `ensure` links each name of its configuration to the namespace file it
names (a service address container's SandboxKey) before HAProxy reads the file, and removes the
links it made once nothing binds through them. A service with several ports has one backend per
port; the runtime API commands of a server go to each of them.

HAProxy runs as a supervised daemon (`conveyor.host.process`): `haproxy -W -D` forks, the master
writes haproxy.pid, and it is stopped by that PID. The candidate file is checked with its
renderer's validator (`render.haproxy.VALIDATOR`, run by `conveyor.host.validate`).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Literal

from pydantic import TypeAdapter

from conveyor.errors import RouterError
from conveyor.host.command import host_errors_as, run
from conveyor.host.process import Daemon, DaemonSpec, wait_until
from conveyor.host.validate import check
from conveyor.model.endpoint import LOOPBACK, Endpoint
from conveyor.model.routing import FULL_WEIGHT
from conveyor.render.haproxy import (
    INSTALL_HINT,
    PID_FILE,
    STATE_FILE,
    VALIDATOR,
    backend_name,
    backends,
    bind_address,
    check_name,
    check_socket_paths,
    render,
    server_address,
    server_args,
    socket_paths,
    validate,
)
from conveyor.router.protocol import (
    Frontend,
    RouterConfig,
    ServerEntry,
    ServerState,
    ServerStatus,
)

# service -> server name -> entry; insertion order is the order servers were added.
Record = dict[str, dict[str, ServerEntry]]
Operational = Literal["up", "down", "unknown"]
_RECORD = TypeAdapter(dict[str, list[ServerEntry]])

_BACKEND_PREFIX = "be_"

# Where HAProxy (like `ip netns`) looks a `namespace` name up.
NETNS_DIR = Path("/var/run/netns")

# `show servers state` srv_admin_state bits (management guide 9.3).
_MAINT_BITS = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
_DRAIN_BITS = 0x08 | 0x10

# Replies of runtime commands that succeeded; anything else is HAProxy explaining a refusal.
_SILENT = frozenset({""})
_ADDED = frozenset({"New server registered."})
_DELETED = frozenset({"Server deleted."})
_MISSING = ("No such server.", "No such backend.")


class HAProxyRouter:
    """The Router protocol over one HAProxy master-worker process owned by `run_dir`."""

    def __init__(
        self,
        run_dir: Path,
        haproxy_bin: str = "haproxy",
        *,
        timeout: float = 10.0,
        netns_dir: Path = NETNS_DIR,
    ):
        self.run_dir = Path(run_dir).absolute()
        self.netns_dir = netns_dir
        check_socket_paths(self.run_dir)
        self.haproxy_bin = haproxy_bin
        self.timeout = timeout
        self.config_file = self.run_dir / "haproxy.cfg"
        self.admin_socket, self.master_socket = socket_paths(self.run_dir)
        self.pid_file = self.run_dir / PID_FILE
        self.state_file = self.run_dir / STATE_FILE
        self.record_file = self.run_dir / "servers.json"
        self.frontends_file = self.run_dir / "frontends.json"
        self._candidate = self.run_dir / "haproxy.cfg.new"
        self._start_log = self.run_dir / "start.log"
        self._prometheus: bool | None = None
        # `haproxy -D` forks: the launcher exits once the master runs, which writes its PID.
        self._daemon = Daemon(
            DaemonSpec(
                name="HAProxy",
                argv=(
                    haproxy_bin,
                    "-W",
                    "-D",
                    "-f",
                    str(self.config_file),
                    "-S",
                    f"{self.master_socket},mode,600",
                ),
                pid_file=self.pid_file,
                log_file=self._start_log,
                ready=self._answers,
                readiness=f"answering on its admin socket {self.admin_socket}",
                start_timeout=timeout,
                stop_grace=timeout,  # the master stops its workers on SIGTERM
                markers=(str(self.config_file),),
                forks=True,
                explain=_alerts,
                install_hint=INSTALL_HINT,
            )
        )
        # One Conveyor process drives the router; the lock keeps its threads from interleaving
        # read-modify-write cycles of servers.json.
        self._lock = threading.RLock()

    # ---- Router protocol -------------------------------------------------------------------

    def ensure(self, config: RouterConfig) -> None:
        validate(config)
        shape = frontends_only(config)
        with self._lock:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            running_shape = self._load_shape()
            running = self._running_or_stopped()
            if running and shape == running_shape:
                # Same frontends: no reload; servers named in `config` are applied at run time,
                # those taking traffic first so a backend is never left without a ready server.
                for frontend in config.frontends:
                    for server in sorted(frontend.servers, key=lambda s: s.state != "ready"):
                        self._apply_server(frontend.service, server)
                return
            record = merge_record(self._load_record(), config)
            # HAProxy opens the namespaces while it checks the file: links first.
            self._link_namespaces(shape)
            self._write_candidate(with_servers(shape, record))
            if running:
                self._reload(shape, running_shape)
            else:
                # HAProxy binds with SO_REUSEPORT: a stale HAProxy (or anything else) on one of
                # our ports would silently share its traffic. Refuse with a clear error instead.
                _check_new_ports_free(shape, RouterConfig())
                self._start()
            self._save_record(record)
            _write_atomic(self.frontends_file, shape.model_dump_json(indent=2))
            self.restore_drains(record)
            if running_shape is not None:
                self._unlink_namespaces(running_shape, keep=shape)

    def running(self) -> bool:
        return self._daemon.running() and self._answers()

    def shape(self) -> RouterConfig | None:
        return self._load_shape() if self._daemon.running() else None

    def add_server(self, service: str, server: ServerEntry) -> None:
        check_name("server", server.name)
        with self._lock:
            frontend = self._frontend(service)
            # Recorded first: a caller killed between the commands below leaves a server that
            # HAProxy serves (or holds in maint) but a reload or restart would drop. A recorded
            # server HAProxy lacks is harmless: the next rollout adds it again.
            self._update_record(service, server.name, server)
            try:
                for backend, port in backends(frontend):
                    target = f"{backend}/{server.name}"
                    self._command(
                        f"add server {target} {server_address(server, port)} check "
                        f"{server_args(frontend)} weight {server.weight}",
                        _ADDED,
                    )
                    # Checks of a server added at run time start disabled, the server in maint.
                    self._command(f"enable health {target}")
                    self._command(f"set server {target} state {server.state}")
            except RouterError:
                # HAProxy refused it (or stopped answering): keep the record only if it has it.
                with contextlib.suppress(RouterError):
                    if server.name not in {
                        s.server for s in self.servers() if s.backend == service
                    }:
                        self._update_record(service, server.name, None)
                raise

    def set_state(self, service: str, server: str, state: ServerState) -> None:
        check_name("server", server)
        with self._lock:
            for target in self._targets(service, server):
                self._command(f"set server {target} state {state}")
            self._update_record(
                service, server, lambda entry: entry.model_copy(update={"state": state})
            )

    def set_weight(self, service: str, server: str, weight: int) -> None:
        check_name("server", server)
        with self._lock:
            for target in self._targets(service, server):
                self._command(f"set weight {target} {weight}")
            self._update_record(
                service, server, lambda entry: entry.model_copy(update={"weight": weight})
            )

    def remove_server(self, service: str, server: str, *, cut_sessions: bool = True) -> None:
        check_name("server", server)
        with self._lock:
            # Forgotten first: a caller killed after `del server` would otherwise leave a
            # recorded server that the next reload or restart brings back, pointing at a replica
            # that is stopped by then. A server HAProxy still has is seen, and removed, again.
            self._update_record(service, server, None)
            for target in self._targets(service, server):
                reply = self._send(self.admin_socket, f"set server {target} state maint").strip()
                if reply not in _MISSING:
                    _expect(f"set server {target} state maint", reply, _SILENT)
                    if cut_sessions or not self._try_delete(target):
                        self._command(f"shutdown sessions server {target}")
                        self._delete(target)

    def servers(self) -> list[ServerStatus]:
        """One status per (service, server): its main backend's checks, with the sessions of
        all the service's backends (a drain waits for every port's sessions). Its admin state
        is the most withdrawn of its backends' (maint, then drain), its weight the main
        backend's unless another port's differs: a change made behind Conveyor's back on any
        port is seen."""
        stats = parse_stat(self._show("show stat"))
        further = _further_backends(self._load_shape())
        result: dict[tuple[str, str], ServerStatus] = {}
        extra: dict[tuple[str, str], list[tuple[int, ServerState, int]]] = {}
        for row in _parse_servers_state(self._show("show servers state")):
            backend, name = row["be_name"], row["srv_name"]
            scur, status = stats.get((backend, name), (0, ""))
            admin = _admin_state(int(row["srv_admin_state"]))
            weight = int(row.get("srv_uweight") or FULL_WEIGHT)
            if backend in further:
                extra.setdefault((further[backend], name), []).append((scur, admin, weight))
                continue
            if not backend.startswith(_BACKEND_PREFIX):
                continue
            service = backend.removeprefix(_BACKEND_PREFIX)
            result[(service, name)] = ServerStatus(
                backend=service,
                server=name,
                endpoint=Endpoint(host=row["srv_addr"], port=int(row["srv_port"])),
                admin_state=admin,
                operational=_operational(status),
                sessions=scur,
                weight=weight,
            )
        return [_with_further(s, extra.get(key, [])) for key, s in result.items()]

    def stop(self) -> None:
        with self._lock:
            self._daemon.stop()
            shape = self._load_shape()
            if shape is not None:
                self._unlink_namespaces(shape, keep=RouterConfig())

    # ---- start and reload ------------------------------------------------------------------

    def _write_candidate(self, config: RouterConfig) -> None:
        """Render to haproxy.cfg.new and have HAProxy check it; the candidate stays on failure so
        the line numbers in the error can be read."""
        text = render(config, self.run_dir, prometheus_exporter=self._has_prometheus())
        self._candidate.write_text(text)
        with host_errors_as(RouterError):
            verdict = check(
                VALIDATOR, self._candidate, program=self.haproxy_bin, timeout=self.timeout
            )
        if not verdict.ok:
            messages = "\n".join(verdict.messages)
            raise RouterError(f"HAProxy rejected the configuration: {messages}")

    def _start(self) -> None:
        # A state file left by a crashed process would bring back states from an older life.
        self.state_file.unlink(missing_ok=True)
        os.replace(self._candidate, self.config_file)
        with host_errors_as(RouterError):
            self._daemon.ensure()

    def _running_or_stopped(self) -> bool:
        """Whether HAProxy runs and answers, after giving a live master a moment to answer. One
        that stays silent is stopped: a new HAProxy started beside it would bind the same ports
        (HAProxy sets SO_REUSEPORT) and the two would share the traffic."""
        if not self._daemon.running():
            return False
        if wait_until(self._answers, self.timeout / 2):
            return True
        self.stop()
        return False

    def _reload(self, shape: RouterConfig, running_shape: RouterConfig | None) -> None:
        """Hitless reload: the master starts a worker on the new file, which takes over the
        listening sockets of the old one; the old worker finishes its requests and exits."""
        if running_shape is not None:  # unknown: the running process may hold any port
            _check_new_ports_free(shape, running_shape)
        old_worker = self._worker_pid()
        failed_before = self._failed_reloads()
        # Servers keep their operational state (a dead replica stays down) across the reload.
        save_server_state(self.admin_socket, self.state_file, self.timeout)
        previous = self.config_file.read_text()
        candidate = self._candidate.read_text()
        os.replace(self._candidate, self.config_file)
        try:
            self._send(self.master_socket, "reload")  # the master closes the connection
        except RouterError:
            if not self._daemon.signal(signal.SIGUSR2):  # same as the master CLI's reload
                raise

        def settled() -> bool:
            failed = self._failed_reloads()
            if failed is not None and failed_before is not None and failed > failed_before:
                return True
            worker = self._worker_pid_or_none()
            return worker is not None and worker != old_worker

        if not wait_until(settled, self.timeout) or self._worker_pid_or_none() == old_worker:
            # The master keeps the old worker when the new configuration fails to load; the
            # file on disk must keep describing what runs.
            self.config_file.write_text(previous)
            self._candidate.write_text(candidate)
            raise RouterError(
                "HAProxy failed to reload the new configuration and kept the running one "
                f"(see `show proc` on {self.master_socket}); candidate left at {self._candidate}"
            )

    def restore_drains(self, record: Record) -> None:
        """The config file renders a drained server with weight 0; give it back its weight and
        the real drain state, so a later `set_state(..., "ready")` restores its traffic. Run
        right after each (re)load: here, and by the fleet's router after it pushes a host's
        file (router.fleet)."""
        for service, entries in record.items():
            for entry in entries.values():
                if entry.state == "drain":
                    for target in self._targets(service, entry.name):
                        self._command(f"set weight {target} {entry.weight}")
                        self._command(f"set server {target} state drain")

    def _apply_server(self, service: str, server: ServerEntry) -> None:
        """Make one running server match `server` (used when `ensure` needs no reload)."""
        live = {(s.backend, s.server): s for s in self.servers()}.get((service, server.name))
        recorded = self._load_record().get(service, {}).get(server.name)
        if live is not None and live.endpoint != server.endpoint:
            self.remove_server(service, server.name)
            live = None
        if live is None:
            self.add_server(service, server)
            return
        if recorded is None or recorded.weight != server.weight:
            self.set_weight(service, server.name, server.weight)
        if live.admin_state != server.state:
            self.set_state(service, server.name, server.state)
        self._update_record(service, server.name, server)

    def _try_delete(self, target: str) -> bool:
        """`del server` once its sessions are gone on their own: a dead replica's requests,
        stuck connecting to an address nobody answers on any more, time out (`timeout connect`)
        and are redispatched to another server. Cutting them would fail them instead."""

        def deleted() -> bool:
            reply = self._send(self.admin_socket, f"del server {target}").strip()
            return reply in _DELETED or reply in _MISSING

        return wait_until(deleted, self.timeout)

    def _delete(self, target: str) -> None:
        """`del server` is refused while the server still has connections; shutting its sessions
        down is asynchronous, so retry for a short while."""
        reply = ""

        def deleted() -> bool:
            nonlocal reply
            reply = self._send(self.admin_socket, f"del server {target}").strip()
            return reply in _DELETED or reply in _MISSING

        if not wait_until(deleted, self.timeout):
            raise RouterError(f"HAProxy refused `del server {target}`: {reply}")

    # ---- runtime API -----------------------------------------------------------------------

    def _send(self, path: Path, command: str, timeout: float | None = None) -> str:
        return send(path, command, timeout or self.timeout)

    def _command(self, command: str, ok: frozenset[str] = _SILENT) -> None:
        _expect(command, self._send(self.admin_socket, command).strip(), ok)

    def _show(self, command: str) -> str:
        reply = self._send(self.admin_socket, command)
        if reply.startswith("Unknown command"):
            raise RouterError(f"HAProxy refused `{command}`: {reply.strip()}")
        return reply

    def _answers(self) -> bool:
        return self._worker_pid_or_none(timeout=1.0) is not None

    def _worker_pid_or_none(self, timeout: float = 1.0) -> int | None:
        try:
            info = self._send(self.admin_socket, "show info", timeout)
        except RouterError:
            return None
        match = re.search(r"^Pid: (\d+)$", info, re.MULTILINE)
        return int(match.group(1)) if match else None

    def _worker_pid(self) -> int:
        pid = self._worker_pid_or_none()
        if pid is None:
            raise RouterError(f"HAProxy admin socket {self.admin_socket} does not answer")
        return pid

    def _failed_reloads(self) -> int | None:
        """The master's count of failed reloads; None while it re-executes itself."""
        try:
            proc = self._send(self.master_socket, "show proc", 1.0)
        except RouterError:
            return None
        match = re.search(r"\[failed: (\d+)\]", proc)
        return int(match.group(1)) if match else None

    # ---- files -----------------------------------------------------------------------------

    def _load_shape(self) -> RouterConfig | None:
        try:
            return RouterConfig.model_validate_json(self.frontends_file.read_text())
        except (OSError, ValueError):
            return None

    def _targets(self, service: str, server: str) -> list[str]:
        """`backend/server` of every backend of the service (the main one alone when HAProxy
        was started by an older Conveyor, whose record has no listeners)."""
        check_name("service", service)
        shape = self._load_shape()
        frontend = (
            next((f for f in shape.frontends if f.service == service), None) if shape else None
        )
        if frontend is None:
            return [f"{backend_name(service)}/{server}"]
        return [f"{backend}/{server}" for backend, _port in backends(frontend)]

    def _link_namespaces(self, shape: RouterConfig) -> None:
        """Point each namespace name of `shape` at its namespace file."""
        wanted = {n: f for fe in shape.frontends for n, f in fe.namespaces().items()}
        if not wanted:
            return
        try:
            self.netns_dir.mkdir(parents=True, exist_ok=True)
            for name, target in wanted.items():
                link = self.netns_dir / name
                if link.is_symlink() and os.readlink(link) == target:
                    continue
                tmp = self.netns_dir / f".{name}.tmp"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.replace(tmp, link)
        except OSError as e:
            raise RouterError(
                f"cannot link a service address's namespace under {self.netns_dir}: {e} "
                "(HAProxy binds inside it by name; Conveyor must run as root for project networks)"
            ) from e

    def _unlink_namespaces(self, old: RouterConfig, keep: RouterConfig) -> None:
        """Remove the links `old` used that `keep` does not (only links: HAProxy's sockets
        keep their namespace alive on their own)."""
        kept = {n for fe in keep.frontends for n in fe.namespaces()}
        for fe in old.frontends:
            for name in fe.namespaces():
                if name not in kept:
                    with contextlib.suppress(OSError):
                        link = self.netns_dir / name
                        if link.is_symlink():
                            link.unlink()

    def _frontend(self, service: str) -> Frontend:
        shape = self._load_shape()
        for frontend in shape.frontends if shape else ():
            if frontend.service == service:
                return frontend
        raise RouterError(f"no frontend for service {service!r}: call ensure() with it first")

    def _load_record(self) -> Record:
        return load_record(self.record_file)

    def _save_record(self, record: Record) -> None:
        save_record(self.record_file, record)

    def _update_record(
        self,
        service: str,
        server: str,
        change: ServerEntry | Callable[[ServerEntry], ServerEntry] | None,
    ) -> None:
        update_record(self.record_file, service, server, change)

    def _has_prometheus(self) -> bool:
        if self._prometheus is None:
            with host_errors_as(RouterError):
                result = run([self.haproxy_bin, "-vv"], timeout=self.timeout)
            self._prometheus = "prometheus-exporter" in result.stdout
        return self._prometheus


# ---- helpers (pure, or small I/O without state) ------------------------------------------------


def _expect(command: str, reply: str, ok: frozenset[str]) -> None:
    if reply not in ok:
        raise RouterError(f"HAProxy refused `{command}`: {reply}")


def send(path: Path, command: str, timeout: float) -> str:
    """One command on an HAProxy CLI socket; HAProxy answers and closes (non-interactive
    mode)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(str(path))
            sock.sendall(command.encode() + b"\n")
            # The master CLI answers only once the client half-closes (as socat does).
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
    except OSError as e:
        raise RouterError(f"HAProxy socket {path} ({command!r}): {e}") from e
    return b"".join(chunks).decode(errors="replace")


def save_server_state(admin_socket: Path, state_file: Path, timeout: float) -> None:
    """`show servers state` of the running HAProxy into `state_file`, which the configuration
    names (`server-state-file`, `load-server-state-from-file global`), right before a
    reload: the new worker's servers keep their checks' verdicts and counters. Without it
    every server starts up but falls at its first failed check (`rise` health, whatever
    `fall` says), and a dead one takes requests until then."""
    reply = send(admin_socket, "show servers state", timeout)
    if reply.startswith("Unknown command"):
        raise RouterError(f"HAProxy refused `show servers state`: {reply.strip()}")
    _write_atomic(state_file, reply)


def frontends_only(config: RouterConfig) -> RouterConfig:
    """What decides a reload: frontends and their check settings, not their servers."""
    frontends = sorted(config.frontends, key=lambda f: f.service)
    return config.model_copy(
        update={"frontends": tuple(f.model_copy(update={"servers": ()}) for f in frontends)}
    )


def merge_record(record: Record, config: RouterConfig) -> Record:
    """Recorded servers of the services in `config`, overridden by the servers `config` names."""
    merged: Record = {}
    for frontend in config.frontends:
        entries = dict(record.get(frontend.service, {}))
        entries.update((server.name, server) for server in frontend.servers)
        merged[frontend.service] = entries
    return merged


def with_servers(shape: RouterConfig, record: Record) -> RouterConfig:
    frontends = tuple(
        f.model_copy(update={"servers": tuple(record.get(f.service, {}).values())})
        for f in shape.frontends
    )
    return shape.model_copy(update={"frontends": frontends})


def _further_backends(shape: RouterConfig | None) -> dict[str, str]:
    """Backend name -> service, for the backends of services' further ports."""
    if shape is None:
        return {}
    return {
        backend_name(f.service, x.port): f.service for f in shape.frontends for x in f.listeners
    }


def _ports(config: RouterConfig) -> dict[tuple[str, int], str]:
    """(address, port) -> owner of every bind on the host (binds inside a service address's
    namespace cannot clash with anything on the host)."""
    ports: dict[tuple[str, int], str] = {}
    for f in config.frontends:
        ports[(f.address, f.port)] = f"frontend {f.service}"
        for binds in (f.binds, *(x.binds for x in f.listeners)):
            for b in binds:
                if b.namespace is None:
                    ports[(b.address, b.port)] = f"frontend {f.service}"
    if config.stats_port is not None:
        ports[(LOOPBACK, config.stats_port)] = "stats frontend"
    return ports


def _check_new_ports_free(shape: RouterConfig, running_shape: RouterConfig) -> None:
    """HAProxy's reason for a failed reload is lost (the daemonized master has no stderr), so
    ports the running process does not hold yet are tried here first, for a clear error."""
    held = _ports(running_shape)
    for (address, port), owner in _ports(shape).items():
        if (address, port) in held:
            continue
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family) as sock:
            # Like HAProxy: TIME_WAIT leftovers do not count as in use.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((address, port))
            except OSError as e:
                where = bind_address(address, port)
                raise RouterError(f"{owner}: cannot bind {where} ({e.strerror})") from e


def _alerts(output: str) -> str:
    """HAProxy's [ALERT] lines without their pid prefix; all output when there are none."""
    return "\n".join(VALIDATOR.messages(output))


def load_record(path: Path) -> Record:
    """The servers a router recorded, per service (empty: none recorded yet)."""
    try:
        stored = _RECORD.validate_json(path.read_bytes())
    except FileNotFoundError:
        return {}
    except ValueError as e:
        raise RouterError(f"{path} is unreadable: {e}") from e
    return {service: {e.name: e for e in entries} for service, entries in stored.items()}


def save_record(path: Path, record: Record) -> None:
    stored = {service: list(entries.values()) for service, entries in record.items()}
    _write_atomic(path, _RECORD.dump_json(stored, indent=2).decode())


def update_record(
    path: Path,
    service: str,
    server: str,
    change: ServerEntry | Callable[[ServerEntry], ServerEntry] | None,
) -> None:
    """Record a server as added (an entry), changed (a function of the old entry; servers
    the record does not know are left out) or removed (None)."""
    record = load_record(path)
    entries = record.setdefault(service, {})
    if change is None:
        entries.pop(server, None)
    elif isinstance(change, ServerEntry):
        entries[server] = change
    elif server in entries:
        entries[server] = change(entries[server])
    save_record(path, record)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _parse_servers_state(text: str) -> Iterable[dict[str, str]]:
    """Rows of `show servers state`: a version line, a '# field…' header, then rows."""
    fields: list[str] = []
    for line in text.splitlines():
        if line.startswith("# "):
            fields = line[2:].split()
        elif fields and line.strip():
            yield dict(zip(fields, line.split(), strict=False))


def parse_stat(text: str) -> dict[tuple[str, str], tuple[int, str]]:
    """(backend, server) -> (current sessions, status) from `show stat` CSV."""
    lines = text.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    header = lines[0][2:].split(",")
    scur, status = header.index("scur"), header.index("status")
    result: dict[tuple[str, str], tuple[int, str]] = {}
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) > status and cells[1] not in ("FRONTEND", "BACKEND"):
            result[(cells[0], cells[1])] = (int(cells[scur] or 0), cells[status])
    return result


_WITHDRAWN: dict[ServerState, int] = {"ready": 0, "drain": 1, "maint": 2}


def _with_further(main: ServerStatus, further: list[tuple[int, ServerState, int]]) -> ServerStatus:
    """A server's main-backend status joined with its other ports' (sessions, state, weight)."""
    admin, weight = main.admin_state, main.weight
    for _, state, w in further:
        if _WITHDRAWN[state] > _WITHDRAWN[admin]:
            admin = state
        if w != main.weight:
            weight = w
    sessions = main.sessions + sum(s for s, _, _ in further)
    return main.model_copy(update={"sessions": sessions, "admin_state": admin, "weight": weight})


def _admin_state(bits: int) -> ServerState:
    if bits & _MAINT_BITS:
        return "maint"
    if bits & _DRAIN_BITS:
        return "drain"
    return "ready"


def _operational(status: str) -> Operational:
    """HAProxy's check verdict. In maint, checks are paused ("MAINT"): unknown. "UP 1/2" is up
    with one failed check, "DOWN 1/2" down with one good one; DRAIN and NOLB are up."""
    if status.startswith(("UP", "DRAIN", "NOLB")):
        return "up"
    if status.startswith("DOWN"):
        return "down"
    return "unknown"
