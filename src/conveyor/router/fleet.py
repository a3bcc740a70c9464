"""The `Router` seam over a fleet (docs/fleet.md, "Wiring"): every app host's HAProxy serves
every service, with the same frontends the one-host router gives (plan.routes, render.haproxy)
and every replica of the fleet as a server at its fleet address (a host's own replicas too:
on a fleet they listen on their host's fleet address). Each call of the executor fans out to
the HAProxies of the app hosts that are serving (up or suspect), in parallel; the edge
HAProxy is rendered (plan.edge, render.edge_haproxy) whenever the frontends or the set of
serving app hosts change.

The edge runs on the inventory's `edge` hosts as provisioning's one HAProxy there (its
/etc/haproxy/haproxy.cfg written and reloaded over SSH: router.fleet_edge), or on this machine
when no host has the role (listening on `edge_address`, 127.0.0.1 by default), or nowhere when
a load balancer outside Conveyor is the edge (`external_edge`: the AWS stack's ALB, whose
target groups reach every app host's published ports).

A learned fleet's hosts come and go (`follow`): a host that joins gets its HAProxy when it is
up (`resync`), a host that left is dropped (its tunnels stopped).

Under project networking each app host's HAProxy binds inside its own host's service
addresses (`netns_on`, from the runtime) and reaches every replica, its own host's too, at the
replica's host address and published ports, each port at its own (plan.fleet_routes.host_shape,
ServerEntry.ports).
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from conveyor.errors import ConveyorError, RouterError
from conveyor.host.process import Daemon, DaemonSpec, wait_until
from conveyor.host.ssh_command import as_root, ssh_script
from conveyor.host.validate import check
from conveyor.model.edge import EdgeConfig
from conveyor.model.endpoint import LOOPBACK
from conveyor.model.fleet import Fleet, FleetHost
from conveyor.model.provision import HOST_HAPROXY_RUN_DIR, HOST_HAPROXY_USER
from conveyor.model.stack import Stack
from conveyor.plan.edge import edge_config
from conveyor.plan.fleet_routes import host_shape
from conveyor.plan.routes import Namespace
from conveyor.render.edge_haproxy import backend_name, render_edge
from conveyor.render.haproxy import (
    ADMIN_SOCKET,
    MASTER_SOCKET,
    PID_FILE,
    STATE_FILE,
    VALIDATOR,
    WILDCARDS,
    render,
)
from conveyor.render.haproxy import validate as validate_router
from conveyor.router.fleet_edge import EdgeHost
from conveyor.router.fleet_host import HostHAProxy, app_dir, edge_dir, stop_script
from conveyor.router.haproxy import (
    Record,
    frontends_only,
    load_record,
    merge_record,
    parse_stat,
    save_record,
    save_server_state,
    send,
    update_record,
    with_servers,
)
from conveyor.router.protocol import RouterConfig, ServerEntry, ServerState, ServerStatus

T = TypeVar("T")
# How long a server put in rotation waits for the edge on this machine to serve its service
# (FleetRouter._edge_serves): the edge's `rise` checks, `inter` apart, with room for a
# loaded machine.
EDGE_SERVES_WITHIN = 15.0
_WITHDRAWN: dict[ServerState, int] = {"ready": 0, "drain": 1, "maint": 2}


class LocalEdge:
    """The edge HAProxy on this machine (no `edge` host in the inventory): master-worker,
    reloaded with SIGUSR2 when its configuration changes."""

    def __init__(self, run_dir: Path, timeout: float = 15.0) -> None:
        self.run_dir = run_dir.absolute()
        self.config_file = self.run_dir / "edge.cfg"
        self.timeout = timeout
        self._daemon = Daemon(
            DaemonSpec(
                name="edge HAProxy",
                argv=(
                    "haproxy",
                    "-W",
                    "-D",
                    "-f",
                    str(self.config_file),
                    "-S",
                    f"{self.run_dir / MASTER_SOCKET},mode,600",
                ),
                pid_file=self.run_dir / PID_FILE,
                log_file=self.run_dir / "start.log",
                ready=lambda: self.config_file.exists() and self._answers(),
                readiness=f"answering on {self.run_dir / ADMIN_SOCKET}",
                start_timeout=timeout,
                markers=(str(self.config_file),),
                forks=True,
            )
        )

    def _answers(self) -> bool:
        import socket

        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(2.0)
                sock.connect(str(self.run_dir / ADMIN_SOCKET))
        except OSError:
            return False
        return True

    def ensure(self, text: str) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        running = self._daemon.running()
        if running and self.config_file.exists() and self.config_file.read_text() == text:
            return
        candidate = self.run_dir / "edge.cfg.new"
        candidate.write_text(text)
        verdict = check(VALIDATOR, candidate, timeout=self.timeout)
        if not verdict.ok:
            raise RouterError(
                "HAProxy rejected the edge configuration: " + "\n".join(verdict.messages)
            )
        state = self.run_dir / STATE_FILE
        if running:
            # The app hosts keep their checks' verdicts across the reload (render.edge_haproxy:
            # `server-state-file`); an edge that does not answer starts them afresh.
            try:
                save_server_state(self.run_dir / ADMIN_SOCKET, state, self.timeout)
            except RouterError:
                state.unlink(missing_ok=True)
        else:
            state.unlink(missing_ok=True)  # from an older life
        os.replace(candidate, self.config_file)
        if running:
            self._daemon.signal(signal.SIGUSR2)
            wait_until(self._answers, self.timeout)
        else:
            self._daemon.ensure()

    def running(self) -> bool:
        return self._daemon.running()

    def serving(self, backends: Collection[str]) -> set[str]:
        """Which of `backends` have an app host up (its checks passed) in the edge now.
        Raises RouterError when the edge does not answer."""
        text = send(self.run_dir / ADMIN_SOCKET, "show stat", 3.0)
        if not text.startswith("# "):
            raise RouterError(f"the edge's `show stat` said: {text.splitlines()[:1]}")
        return {
            backend
            for (backend, _), (_, status) in parse_stat(text).items()
            if backend in backends and status.startswith("UP")
        }

    def stop(self) -> None:
        self._daemon.stop()


class FleetRouter:
    """`Router` over the app hosts' HAProxies (and the edge). `serving()` names the app
    hosts to drive now (deploy.fleet_health); `stack` gives the edge its published ports."""

    def __init__(
        self,
        fleet: Fleet,
        run_dir: Path,
        stack: Stack,
        serving: Callable[[], Sequence[FleetHost]],
        *,
        known_hosts: Path | None = None,
        edge_address: str = "127.0.0.1",
        netns_on: Callable[[str], Mapping[str, Namespace]] | None = None,
        external_edge: bool = False,
        on_push: Callable[[str], None] | None = None,
    ) -> None:
        """`on_push`: told the name of each app host whose HAProxy this starts or reloads
        (the runtime remembers the hosts the project runs on: deploy.fleet_hosts)."""
        self.run_dir = run_dir
        self._on_push = on_push
        self.known_hosts = known_hosts
        self.fleet = fleet  # the inventory as last given (`follow`): Nagios checks its hosts
        # host name -> where each service address's namespace is on that host (project
        # networking: each host's HAProxy binds inside its own host's addresses).
        self._netns_on = netns_on
        self.stack = stack
        self.app_dir = app_dir(stack.project)
        self.edge_dir = edge_dir(stack.project)
        self._serving = serving
        self.edge_address = edge_address
        run_dir.mkdir(parents=True, exist_ok=True)
        self.hosts = {
            h.name: HostHAProxy(h, run_dir, remote_dir=self.app_dir, known_hosts=known_hosts)
            for h in fleet.with_role("app")
        }
        # Edge hosts: provisioning's one HAProxy, whose file this writes (router.fleet_edge).
        self.edges = [EdgeHost(h, known_hosts=known_hosts) for h in fleet.with_role("edge")]
        # A load balancer outside Conveyor (the AWS ALB) is the edge: none is run here.
        self.external_edge = external_edge
        self.local_edge = None if self.edges or external_edge else LocalEdge(run_dir / "edge")
        # Edge backends every edge host was seen serving since this router last changed their
        # file: a route into them does not ask the hosts again (one SSH connection each).
        self._edge_hosts_serve: set[str] = set()
        self.shape_file = run_dir / "frontends.json"
        self.record_file = run_dir / "servers.json"
        self._lock = threading.RLock()

    def follow(self, fleet: Fleet) -> None:
        """The app hosts of `fleet` from now on (a learned fleet changed): a new host's
        HAProxy is pushed when the host is up (`resync`); a host that left is dropped."""
        with self._lock:
            self.fleet = fleet
            app = {h.name: h for h in fleet.with_role("app")}
            hosts = {n: p for n, p in self.hosts.items() if n in app}
            for name, host in app.items():
                if name not in hosts:
                    hosts[name] = HostHAProxy(
                        host, self.run_dir, remote_dir=self.app_dir, known_hosts=self.known_hosts
                    )
            gone = [p for n, p in self.hosts.items() if n not in app]
            self.hosts = hosts  # a new dict: other threads read it meanwhile
        for proxy in gone:
            proxy.close()

    # ---- fan-out ---------------------------------------------------------------------------

    def live(self) -> list[HostHAProxy]:
        return [self.hosts[h.name] for h in self._serving() if h.name in self.hosts]

    def _each(self, fn: Callable[[HostHAProxy], T]) -> list[T]:
        """`fn` on every serving host at once; the first failure (naming its host) raises."""
        hosts = self.live()
        if not hosts:
            raise RouterError("no app host of the fleet is serving")
        with ThreadPoolExecutor(max_workers=len(hosts)) as pool:
            futures = [(h, pool.submit(fn, h)) for h in hosts]
        out: list[T] = []
        for host, future in futures:
            try:
                out.append(future.result())
            except RouterError as e:
                raise RouterError(f"{host.name}: {e}") from e
        return out

    # ---- Router protocol -------------------------------------------------------------------

    def ensure(self, config: RouterConfig) -> None:
        validate_router(config)
        shape = frontends_only(config)
        with self._lock:
            record = merge_record(self._load_record(), config)
            self._save_record(record)
            self.shape_file.write_text(shape.model_dump_json(indent=2))

            def one(host: HostHAProxy) -> None:
                if host.running() and host.shape() == self.for_host(shape, host.name):
                    for frontend in config.frontends:
                        for server in frontend.servers:
                            host.api.add_server(frontend.service, server)
                    return
                self.push(host, shape, record)

            self._each(one)
            self.ensure_edge()

    def push(
        self,
        host: HostHAProxy,
        shape: RouterConfig,
        record: Record | None = None,
        *,
        keep_state: bool = True,
    ) -> None:
        """Render the whole configuration (every recorded server) and start or reload the
        host's HAProxy: a new host, a changed shape, or a host back from down. `keep_state`:
        a reload keeps the running HAProxy's server state (its checks' verdicts) — right for
        a host this controller has been driving, not for one back from down (`resync`).
        Drained servers, which the file renders at weight 0, get their weight and drain back
        once the new worker answers (as the one-host router does after its reloads), so a
        later `set_state(ready)` gives them their traffic again."""
        record = self._load_record() if record is None else record
        here = self.for_host(shape, host.name)
        text = render(
            with_servers(here, record),
            Path(str(self.app_dir)),
            prometheus_exporter=False,
            socket_user=host.socket_user,
        )
        host.remember_shape(here)
        host.push(
            text,
            links={n: f for fe in here.frontends for n, f in fe.namespaces().items()},
            keep_state=keep_state,
        )
        host.api.restore_drains({f.service: record.get(f.service, {}) for f in here.frontends})
        if self._on_push is not None:
            self._on_push(host.name)

    def for_host(self, shape: RouterConfig, name: str) -> RouterConfig:
        """`shape` as host `name`'s HAProxy serves it (plan.fleet_routes.host_shape): its
        stable frontend ports bound on its fleet address too, for the edge."""
        address = self.hosts[name].host.address if name in self.hosts else None
        if self._netns_on is None or not any(f.namespaces() for f in shape.frontends):
            return host_shape(shape, {}, address)  # no service address: nothing to ask
        try:
            here = dict(self._netns_on(name))
        except ConveyorError:
            # Its engine does not answer (a suspect host): it keeps binding where it does.
            here = self._bound(name)
        return host_shape(shape, here, address)

    def _bound(self, name: str) -> dict[str, Namespace]:
        """Where host `name`'s HAProxy binds now, by service (its last pushed shape)."""
        known = self.hosts[name].shape() if name in self.hosts else None
        out: dict[str, Namespace] = {}
        for frontend in known.frontends if known else ():
            for bind in frontend.binds:
                if bind.namespace and bind.netns:
                    out[frontend.service] = Namespace(name=bind.namespace, netns=bind.netns)
        return out

    def resync(self, name: str) -> None:
        """Give host `name`'s HAProxy the fleet's current configuration (a host back from down
        has the one it had when it was lost)."""
        shape = self._load_shape()
        if shape is not None and name in self.hosts:
            # Its HAProxy's view of the servers is from before it was lost: not kept.
            self.push(self.hosts[name], shape, keep_state=False)
        self.ensure_edge()

    def edge(self, serving: Sequence[FleetHost]) -> EdgeConfig:
        """What the edge serves over `serving`: the stack's published ports and every
        routed service's stable frontend port (the last shape's: the ports Conveyor
        assigned are in no file). An edge host serves the assigned ones on its own
        loopback only, as one host does (plan.edge)."""
        shape = self._load_shape()
        frontends = {f.service: f.port for f in shape.frontends} if shape is not None else None
        if self.local_edge is not None:
            return edge_config(
                self.stack, serving, frontends=frontends, listen_address=self.edge_address
            )
        return edge_config(self.stack, serving, frontends=frontends, assigned_address=LOOPBACK)

    def public_host(self, *, assigned: bool = False) -> str | None:
        """Where users reach the services' ports: the edge on this machine (127.0.0.1 when
        it listens on every address), the first edge host, or None when a load balancer
        outside Conveyor is the edge. `assigned`: a stable frontend port Conveyor assigned,
        which an edge host serves on its own loopback only (None then)."""
        if self.local_edge is not None:
            return LOOPBACK if self.edge_address in WILDCARDS else self.edge_address
        return self.edges[0].host.address if self.edges and not assigned else None

    def ensure_edge(self) -> None:
        """The edge over the serving app hosts (rendered again; reloaded only if it changed)."""
        serving = [h for h in self._serving() if h.name in self.hosts]
        config = self.edge(serving)
        if self.local_edge is not None:
            if config.ports:
                self.local_edge.ensure(render_edge(config, self.local_edge.run_dir))
            return
        if config.ports:
            text = render_edge(config, Path(HOST_HAPROXY_RUN_DIR), user=HOST_HAPROXY_USER)
            for edge in self.edges:
                if edge.push(text) != "unchanged":
                    self._edge_hosts_serve.clear()  # reloaded: its checks start again

    def running(self) -> bool:
        hosts = self.live()
        return bool(hosts) and all(h.running() for h in hosts)

    def shape(self) -> RouterConfig | None:
        return self._load_shape() if self.running() else None

    def add_server(self, service: str, server: ServerEntry) -> None:
        with self._lock:
            self._update_record(service, server.name, server)
            self._each(lambda h: h.api.add_server(service, server))
        if server.state == "ready":
            self._edge_serves(service)

    def set_state(self, service: str, server: str, state: ServerState) -> None:
        with self._lock:
            self._update_record(service, server, lambda e: e.model_copy(update={"state": state}))
            self._each(lambda h: h.api.set_state(service, server, state))
        if state == "ready":
            self._edge_serves(service)

    def _edge_serves(self, service: str) -> None:
        """After a server of `service` is put in rotation: wait until the edge has an app
        host up for each port the service publishes (at most EDGE_SERVES_WITHIN seconds; at
        once when it has one already). An edge whose app hosts had no server of the service
        yet (`up`: the edge is configured before any replica is routed) has marked every host
        down, and takes one back only after `rise` passing checks `inter` apart: without this
        wait `up` returned while the edge still answered 503 for up to a second. The edge on
        this machine is asked through its admin socket, each edge host through its own, on
        the host (EdgeHost.serves: one SSH connection each, in parallel); an edge that does
        not answer, or an edge host out of reach, is not waited for (the route is made).
        Edge hosts seen serving the service's ports are not asked again until this router
        changes their file (each ask is an SSH connection: ~1 s on a loaded machine).
        Not asked again means a later route does not notice an edge host that took every
        app host out meanwhile; the edge on this machine is asked every time."""
        if self.local_edge is None and not self.edges:
            return  # no edge (or the AWS load balancer: not ours to ask)
        serving = [h for h in self._serving() if h.name in self.hosts]
        ports = self.edge(serving).ports
        backends = {backend_name(p) for p in ports if p.service == service}
        if not backends:
            return
        edge = self.local_edge
        if edge is None:
            if backends <= self._edge_hosts_serve:
                return  # served since their file last changed: not asked again

            def one(host: EdgeHost) -> str:
                try:
                    return host.serves(backends, EDGE_SERVES_WITHIN)
                except RouterError:
                    return "out of reach"

            with ThreadPoolExecutor(max_workers=len(self.edges)) as pool:
                said = list(pool.map(one, self.edges))
            if all(s == "serving" for s in said):
                self._edge_hosts_serve |= backends
            return
        if not edge.running():
            return
        local = edge

        def serves() -> bool:
            try:
                return backends <= local.serving(backends)
            except RouterError:  # it does not answer: nothing to wait for
                return True

        wait_until(serves, EDGE_SERVES_WITHIN, 0.05)

    def set_weight(self, service: str, server: str, weight: int) -> None:
        with self._lock:
            self._update_record(service, server, lambda e: e.model_copy(update={"weight": weight}))
            self._each(lambda h: h.api.set_weight(service, server, weight))

    def remove_server(self, service: str, server: str, *, cut_sessions: bool = True) -> None:
        with self._lock:
            self._update_record(service, server, None)
            self._each(lambda h: h.api.remove_server(service, server, cut_sessions=cut_sessions))

    def servers(self) -> list[ServerStatus]:
        """One status per (service, server) over the serving hosts: sessions summed (a drain
        waits for every host's), the most withdrawn admin state, up when any host's checks
        say up (down when all say down)."""
        merged: dict[tuple[str, str], ServerStatus] = {}
        verdicts: dict[tuple[str, str], set[str]] = {}
        for statuses in self._each(lambda h: h.api.servers()):
            for s in statuses:
                key = (s.backend, s.server)
                verdicts.setdefault(key, set()).add(s.operational)
                seen = merged.get(key)
                if seen is None:
                    merged[key] = s
                    continue
                admin = (
                    s.admin_state
                    if _WITHDRAWN[s.admin_state] > _WITHDRAWN[seen.admin_state]
                    else seen.admin_state
                )
                merged[key] = seen.model_copy(
                    update={"sessions": seen.sessions + s.sessions, "admin_state": admin}
                )
        out: list[ServerStatus] = []
        for key, s in merged.items():
            said = verdicts[key]
            operational = "up" if "up" in said else "down" if said == {"down"} else "unknown"
            out.append(s.model_copy(update={"operational": operational}))
        return out

    def stop(self) -> None:
        with self._lock:
            for host in self.hosts.values():
                host.stop()
            for edge in self.edges:
                edge.stop()
            if self.local_edge is not None:
                self.local_edge.stop()
            self.shape_file.unlink(missing_ok=True)

    def retire_host(self, host: FleetHost) -> None:
        """Stop the project's HAProxy on `host`, which left the fleet (reached through its
        remembered connection), and remove its directory there (router.fleet_host's
        `stop_script`); its admin socket's tunnel and this machine's record of it go too.
        The edge no longer names it (it is not among `hosts`): the caller has the edge
        rendered before the host's replicas stop (deploy.fleet_retire). Raises RouterError
        when the host does not answer."""
        d = self.app_dir
        script = (
            f"{stop_script(d, as_root(host))}\n"
            f"rm -rf {shlex.quote(str(d))}\n"
            f"rmdir {shlex.quote(str(d.parent))} 2>/dev/null || true"
        )
        proxy = HostHAProxy(host, self.run_dir, remote_dir=d, known_hosts=self.known_hosts)
        try:
            ssh_script(host, script, known_hosts=self.known_hosts, timeout=20)
        except ConveyorError as e:
            raise RouterError(f"HAProxy on {host.name}: {e}") from e
        finally:
            proxy.close()
        shutil.rmtree(proxy.local_dir, ignore_errors=True)

    def close(self) -> None:
        """Stop the tunnels this process started (the HAProxies keep running)."""
        for host in self.hosts.values():
            host.close()

    # ---- record ------------------------------------------------------------------------------

    def _load_shape(self) -> RouterConfig | None:
        try:
            return RouterConfig.model_validate_json(self.shape_file.read_text())
        except (OSError, ValueError):
            return None

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
