"""`conveyor provision` against two real hosts (containers with their own filesystem, sshd and
dockerd: conveyor.testing.fleet_hosts), never this machine: the first run changes them and
the result is real (h1 is the edge: its HAProxy balances the published port over h2, the app
host), the second changes nothing, `--check --diff` shows a change without making it, and a
host that fails is named with its task while the other one finishes. The app host, logged in
as the provisioned `deploy` user instead of root, runs a fleet project (its HAProxy through
the sudo rules provisioning gives that user). Conveyor's Nagios on this machine checks both
hosts through the NRPE provisioning runs there, and sees one go DOWN.

The tests share one fleet and run in order (each leaves the hosts as the next expects)."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import pytest
from typer.testing import CliRunner

from conveyor.app import deploy as app_deploy
from conveyor.app.checks import checks_controller, checks_view, nagios_of, stop_checks
from conveyor.app.project import Project
from conveyor.app.provision import ProvisionInputs, provision, provision_inputs
from conveyor.cli.main import app
from conveyor.model.aws import AwsSettings
from conveyor.model.checks import CheckStatus
from conveyor.model.events import Event
from conveyor.model.provision import ProvisionEvent, ProvisionResult
from conveyor.router.fleet_edge import EdgeHost
from conveyor.testing.fleet_hosts import TestFleet, fleet_of_hosts
from tests.integration.fleet.support import APP, IMAGE, get, project_on
from tests.unit.render.test_aws_hosts import aws_firewall

# A fleet and four playbook runs: longer than the default per-test timeout on 2 shared cores.
pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

T = TypeVar("T")

# The test hosts get new host keys every time: nothing to check them against.
ENVIRON = {"ANSIBLE_HOST_KEY_CHECKING": "False"}
PUBLISHED = 18080
# `show stat` on a host's HAProxy admin socket (the test hosts have Python, not socat).
SHOW_STAT = (
    "import socket; s = socket.socket(socket.AF_UNIX); s.connect('/run/haproxy/admin.sock'); "
    "s.sendall(b'show stat\\n'); print(s.makefile().read())"
)


@dataclass
class Provisioned:
    fleet: TestFleet
    project: Path
    inputs: ProvisionInputs
    first: ProvisionResult
    events: list[ProvisionEvent]


@pytest.fixture(scope="module")
def provisioned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provisioned]:
    project = tmp_path_factory.mktemp("fleet-project")
    with fleet_of_hosts(2, prefix="cvprov") as fleet:
        h1, h2 = fleet.hosts
        (project / "conveyor.yaml").write_text(
            "hosts:\n"
            f"  h1: {{address: {h1.address}, key: {h1.key}, roles: [edge]}}\n"
            f"  h2: {{address: {h2.address}, key: {h2.key}, roles: [app, monitor]}}\n"
        )
        (project / "compose.yaml").write_text(
            f"services:\n  web:\n    image: nginx\n    ports: ['{PUBLISHED}:80']\n"
        )
        inputs = provision_inputs(Path("conveyor.yaml"), [], {}, project)
        events: list[ProvisionEvent] = []
        first = provision(inputs, on_event=events.append, environ=ENVIRON)
        yield Provisioned(fleet, project, inputs, first, events)


def test_first_run_changes_both_hosts_and_the_result_is_real(provisioned: Provisioned) -> None:
    first = provisioned.first
    assert [h.host for h in first.hosts] == ["h1", "h2"]
    assert all(h.succeeded and h.changed > 0 for h in first.hosts), first.hosts
    # progress came per host and task, as it happened
    changed = {(e.host, e.role) for e in provisioned.events if e.kind == "task.changed"}
    assert {("h1", "base"), ("h2", "firewall"), ("h2", "nrpe")} <= changed
    h1, h2 = provisioned.fleet.hosts
    for host in (h1, h2):
        sshd = host.exec("sshd", "-T")
        assert "passwordauthentication no" in sshd
        assert "permitrootlogin without-password" in sshd  # root by key only
        assert json.loads(host.exec("cat", "/etc/docker/daemon.json"))["live-restore"] is True
        # dockerd answers, and took live-restore without a restart (SIGHUP reload)
        assert host.ssh("docker", "info", "--format", "{{.LiveRestoreEnabled}}").strip() == "true"
        assert "valid" in host.exec("haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg")
        unit = host.exec("cat", "/etc/systemd/system/conveyor-agent.service")
        assert "ExecStart=/usr/local/bin/conveyor -f /srv/conveyor/compose.yaml agent" in unit
        assert "docker" in host.exec("id", "-nG", "deploy").split()  # drives Docker over SSH
        assert host.exec("cat", "/etc/nagios/nrpe.cfg").count("command[conveyor_") == 4
    ruleset = h1.exec("nft", "list", "table", "inet", "conveyor")
    assert f"tcp dport {PUBLISHED} accept" in ruleset and "policy drop" in ruleset
    # the fleet's hosts, and this machine (provisioning ran here: the controller)
    [accepted] = [line for line in ruleset.splitlines() if "ip saddr {" in line]
    controller = h1.ssh('echo "$SSH_CLIENT"').split()[0]
    addresses = accepted.split("{")[1].split("}")[0].replace(",", " ").split()
    assert sorted(addresses) == sorted({h1.address, h2.address, controller}), accepted
    # An AWS host's firewall (the VPC's range standing for the fleet) is one nft accepts.
    aws_rules = aws_firewall(AwsSettings())
    assert "ip saddr { 10.0.0.0/16 } accept" in aws_rules
    h1.exec("nft", "-c", "-f", "/dev/stdin", input=aws_rules.encode())
    # The fleet's own traffic passes the firewall: h2 reads h1's node exporter.
    metrics = h2.exec("curl", "-sf", f"http://{h1.address}:9100/metrics")
    assert "node_load1" in metrics
    # Each host's HAProxy runs the configuration Conveyor rendered: the edge on h1 (over the
    # app host h2), the router's base on h2, dropped to the haproxy user once bound.
    edge = h1.exec("cat", "/etc/haproxy/haproxy.cfg")
    assert f"frontend fe_web_{PUBLISHED}" in edge
    assert f"server h2 {h2.address}:{PUBLISHED}" in edge and "server h1 " not in edge
    assert "expose-fd listeners" in h2.exec("cat", "/etc/haproxy/haproxy.cfg")
    for host in (h1, h2):
        pid = host.exec("cat", "/run/haproxy/haproxy.pid").split()[0]
        assert host.exec("stat", "-c", "%U", f"/proc/{pid}").strip() == "haproxy"
    dropin = h1.exec("cat", "/etc/systemd/system/haproxy.service.d/conveyor.conf")
    assert "ExecStart=/usr/sbin/haproxy -Ws -f $CONFIG $EXTRAOPTS" in dropin
    # NRPE answers on h1's address (the monitor host h2 is allowed)
    assert f"allowed_hosts=127.0.0.1,{h2.address}" in h1.exec("cat", "/etc/nagios/nrpe.cfg")
    assert h1.exec("cat", "/run/nagios/nrpe.pid").strip().isdigit()


def test_the_edge_serves_the_published_port_from_the_app_host(provisioned: Provisioned) -> None:
    """A request to the edge (h1) reaches what listens on the published port of the app host
    (h2): here a plain HTTP server standing in for h2's HAProxy, which has no routes before
    the router gives it some."""
    h1, h2 = provisioned.fleet.hosts
    serve = f"http.server {PUBLISHED} --bind {h2.address} --directory /etc/haproxy"
    pid = h2.exec(
        "sh", "-c", f"nohup python3 -m {serve} >/dev/null 2>&1 </dev/null & echo $!"
    ).strip()
    try:
        url = f"http://{h1.address}:{PUBLISHED}/haproxy.cfg"
        deadline = time.monotonic() + 60  # the edge's checks must see h2 up (rise 2)
        body = ""
        while time.monotonic() < deadline:
            body = h2.exec("sh", "-c", f"curl -s --max-time 5 {url} || true")
            if "expose-fd listeners" in body:
                break
            time.sleep(0.5)
        assert "expose-fd listeners" in body, body  # h2's own file, served through h1
        stats = h1.exec("python3", "-c", SHOW_STAT)
        row = next(r for r in stats.splitlines() if r.startswith(f"be_web_{PUBLISHED},h2,"))
        assert ",UP," in row
    finally:
        h2.exec("kill", pid)


def test_second_run_changes_nothing(provisioned: Provisioned) -> None:
    second = provision(provisioned.inputs, environ=ENVIRON)
    assert [(h.host, h.changed, h.failed) for h in second.hosts] == [("h1", 0, 0), ("h2", 0, 0)]


def test_check_diff_shows_a_change_and_makes_none(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    h1 = provisioned.fleet.hosts[0]
    h1.exec("sh", "-c", "echo '{\"live-restore\": false}' > /etc/docker/daemon.json")
    h1.exec("sed", "-i", "s/    server h2 /    server gone /", "/etc/haproxy/haproxy.cfg")
    for key, value in ENVIRON.items():
        monkeypatch.setenv(key, value)
    project = provisioned.project
    result = CliRunner().invoke(
        app,
        ["provision", "--check", "--diff", "--limit", "h1",
         "--conveyor-file", str(project / "conveyor.yaml"), "-f", str(project / "compose.yaml")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "docker : Configure dockerd" in result.output
    assert '-{"live-restore": false}' in result.output
    assert '+    "live-restore": true,' in result.output
    # the edge's configuration, rendered by Conveyor, diffed like any file
    assert "haproxy : Install the edge configuration (edge hosts)" in result.output
    assert "-    server gone " in result.output and "+    server h2 " in result.output
    assert "h2" not in result.output.split("recap")[-1]  # --limit: h1 only
    assert "false" in h1.exec("cat", "/etc/docker/daemon.json")  # unchanged
    assert "server gone " in h1.exec("cat", "/etc/haproxy/haproxy.cfg")


AS_DEPLOY = "asdeploy"


def _compose_as_deploy(port: int, version: str) -> str:
    """web on the project's network (so it has a service address, where the host's HAProxy
    binds in its namespace), published through the edge, with a config copied to the host."""
    web = {
        "image": IMAGE,
        "command": ["python", "-c", APP],
        "environment": {"VERSION": version},
        "ports": [f"0.0.0.0:{port}:8000"],
        "configs": [{"source": "greeting", "target": "/etc/greeting"}],
        "stop_grace_period": "5s",
        "x-conveyor": {"probe": {"path": "/health"}},
    }
    return json.dumps(
        {
            "name": AS_DEPLOY,
            "services": {"web": web},
            "configs": {"greeting": {"content": "hello from the controller"}},
        }
    )


def test_the_deploy_user_runs_a_fleet_project_with_service_addresses(
    provisioned: Provisioned,
) -> None:
    """The app host h2 logged in as `deploy` (what provisioning made: docker group, the
    fleet's directories, the sudoers drop-in), not root: `conveyor up` starts the project's
    HAProxy as root through sudo, binding inside web's service address (a namespace), copies
    the config to /var/lib/conveyor, and `conveyor down` stops that HAProxy."""
    h2 = provisioned.fleet.hosts[1]
    as_deploy = dataclasses.replace(h2, user="deploy")
    fleet = dataclasses.replace(provisioned.fleet, hosts=[as_deploy])
    # This machine (the controller: probes, the edge) is let in by the firewall: provisioning
    # ran from here (its address towards the hosts is in the accepted set).
    controller = as_deploy.ssh('echo "$SSH_CLIENT"').split()[0]  # ssh: one remote line
    assert controller in h2.exec("nft", "list", "table", "inet", "conveyor")
    with project_on(fleet, AS_DEPLOY, _compose_as_deploy) as deployed:
        project = deployed.project()
        result = app_deploy.up(
            project,
            agent=False,
            images=deployed.images(),
            checks=False,
            metrics=False,
            logs=False,
        )
        assert result.outcome.status == "succeeded", result.outcome.error
        status, body = get(deployed.url)  # through the edge on this machine
        assert status == 200 and body.startswith("v1 web-"), (status, body)
        replica = next(r for r in project.engine().observe().replicas if r.running)
        container = f"{AS_DEPLOY}-{replica.replica}"
        # `web` by name from inside the replica: its service address, where h2's HAProxy
        # binds in the namespace (the path that needs root: setns, Docker's netns files).
        said = h2.exec(
            "docker", "exec", container, "python", "-c",
            "import urllib.request; print(urllib.request.urlopen('http://web:8000/').read().decode())",
        )  # fmt: skip
        assert said.split()[:2] == ["v1", replica.replica], said
        assert "hello from the controller" in h2.exec(
            "docker", "exec", container, "cat", "/etc/greeting"
        )
        run = f"/run/conveyor/{AS_DEPLOY}/haproxy"
        assert h2.exec("stat", "-c", "%U", run, f"{run}/admin.sock").split() == [
            "deploy",
            "deploy",
        ]
        pid = h2.exec("cat", f"{run}/haproxy.pid").split()[0]
        assert h2.exec("stat", "-c", "%U", f"/proc/{pid}").strip() == "root"
        assert " namespace cv-asdeploy-web-" in h2.exec("cat", f"{run}/haproxy.cfg")
        files = f"/var/lib/conveyor/{AS_DEPLOY}/files"
        assert h2.exec("stat", "-c", "%U %a", files).split() == ["deploy", "700"]
    # project_on's `conveyor down` stopped the HAProxy (root's) as deploy.
    assert not h2.exec("sh", "-c", f"ls /proc/{pid} 2>/dev/null || true").strip()


EDGE_AS_DEPLOY = "edgedeploy"


def _compose_behind_edge(port: int, version: str) -> str:
    """One web replica on the project's network, published on `port` (the edge host's)."""
    web = {
        "image": IMAGE,
        "command": ["python", "-c", APP],
        "environment": {"VERSION": version},
        "ports": [f"0.0.0.0:{port}:8000"],
        "stop_grace_period": "5s",
        "x-conveyor": {"probe": {"path": "/health"}},
    }
    return json.dumps({"name": EDGE_AS_DEPLOY, "services": {"web": web}})


def test_the_deploy_user_runs_the_edge_host_too(provisioned: Provisioned) -> None:
    """Both hosts logged in as `deploy`: h1 the edge host, h2 the app host. `conveyor up`
    writes and reloads h1's edge (provisioning's HAProxy, root's) through the program
    provisioning installed there, run with `sudo -n`, and waits until that edge serves
    (EdgeHost.serves, the other program): the first request through h1 after `up` answers."""
    h1, h2 = provisioned.fleet.hosts
    # What provisioning installed on the edge host: the programs the router runs, root's,
    # byte for byte as rendered; the edge host's sudo rules name them and nothing else.
    for program in provisioned.inputs.settings.edge_programs:
        assert h1.exec("stat", "-c", "%U %a", program.path).split() == ["root", "755"]
        assert h1.exec("cat", program.path) == program.text
    assert "conveyor-edge-push" not in h2.exec("cat", "/etc/sudoers.d/conveyor")
    deploy = [dataclasses.replace(h, user="deploy") for h in (h1, h2)]
    fleet = dataclasses.replace(provisioned.fleet, hosts=deploy)
    with project_on(fleet, EDGE_AS_DEPLOY, _compose_behind_edge) as deployed:
        hosts = {
            "h1": {"address": h1.address, "user": "deploy", "key": str(h1.key), "roles": ["edge"]},
            "h2": {"address": h2.address, "user": "deploy", "key": str(h2.key), "roles": ["app"]},
        }
        (deployed.workdir / "conveyor.yaml").write_text(json.dumps({"hosts": hosts}))
        project = deployed.project()
        result = app_deploy.up(
            project,
            agent=False,
            images=deployed.images(),
            checks=False,
            metrics=False,
            logs=False,
        )
        assert result.outcome.status == "succeeded", result.outcome.error
        # `up` returned once h1's edge had h2 up: the first request through it answers.
        status, body = get(f"http://{h1.address}:{deployed.port}/")
        assert status == 200 and body.startswith("v1 web-"), (status, body)
        edge = h1.exec("cat", "/etc/haproxy/haproxy.cfg")
        assert f"server h2 {h2.address}:{deployed.port}" in edge
        # provisioning's HAProxy, reloaded (not a second one): its pid file's, the haproxy user
        pid = h1.exec("cat", "/run/haproxy/haproxy.pid").split()[0]
        assert h1.exec("stat", "-c", "%U", f"/proc/{pid}").strip() == "haproxy"
        # the same wait, asked again as deploy: `serving`, from the root-owned admin socket
        asked = EdgeHost(deploy[0].fleet_host(roles=("edge",))).serves(
            {f"be_web_{deployed.port}"}, 5
        )
        assert asked == "serving"
    # `conveyor down` leaves provisioning's edge running (with its last file).
    assert h1.exec("cat", "/run/haproxy/haproxy.pid").split()[0] == pid


def test_a_failing_host_is_named_with_its_task_while_the_other_finishes(
    provisioned: Provisioned, monkeypatch: pytest.MonkeyPatch
) -> None:
    h2 = provisioned.fleet.hosts[1]
    # A broken apt state: a package the roles install is gone, and apt's only source is a port
    # where nothing listens (refused at once; the test network has no mirror anyway).
    h2.exec("apt-get", "remove", "-y", "-q", "prometheus-node-exporter")
    h2.exec(
        "sh",
        "-c",
        "rm -f /etc/apt/sources.list.d/* && "
        "echo 'deb http://127.0.0.1:9/debian bookworm main' > /etc/apt/sources.list",
    )
    for key, value in ENVIRON.items():
        monkeypatch.setenv(key, value)
    project = provisioned.project
    result = CliRunner().invoke(
        app,
        ["provision", "--json",
         "--conveyor-file", str(project / "conveyor.yaml"), "-f", str(project / "compose.yaml")],
        catch_exceptions=False,
    )  # fmt: skip
    assert result.exit_code == 1
    recap = {h["host"]: h for h in json.loads(result.stdout)["hosts"]}
    assert recap["h2"]["failed"] == 1
    assert recap["h2"]["failed_task"] == "Install the node exporter"
    assert recap["h2"]["message"]  # Ansible's reason, whatever apt said
    assert recap["h1"]["failed"] == 0 and recap["h1"]["unreachable"] == 0
    # h1 went on to the roles after the one h2 failed in
    assert recap["h1"]["ok"] > recap["h2"]["ok"]


def test_the_controllers_nagios_checks_both_hosts_through_their_nrpe(
    provisioned: Provisioned, tmp_path: Path
) -> None:
    """Conveyor's Nagios on this machine (the controller's, as `conveyor up` runs it for a
    fleet project: app.checks over the project's fleet engine) checks h1 and h2 through the
    NRPE provisioning installed, with nothing about them in `checks.hosts`: both UP, their
    engines running, h1's edge HAProxy too. Then h2's NRPE is stopped and h1's HAProxy
    killed (by their PIDs; the last test: the hosts are not needed after it): h2 goes DOWN
    and h1's `haproxy` CRITICAL, each notified as a `check.changed` event."""
    h1, h2 = provisioned.fleet.hosts
    environ = {
        "CONVEYOR_STATE_HOME": str(tmp_path / "state"),
        "CONVEYOR_CHECK_INTERVAL": "1s",
        "CONVEYOR_CHECK_RETRY_INTERVAL": "1s",
        "CONVEYOR_CHECK_ATTEMPTS": "2",
        "PATH": os.environ["PATH"],
    }
    project = Project.open(None, None, environ, provisioned.project)
    engine = project.engine()
    events: list[Event] = []
    engine.timeline.subscribe(events.append)
    controller = checks_controller(project, engine)
    nagios = nagios_of(project.paths())
    try:
        controller.tick()  # renders the checks and starts Nagios
        assert nagios.running()

        def statuses() -> dict[tuple[str, str | None], CheckStatus]:
            return {(s.host, s.check): s for s in checks_view(project).checks}

        remote = {
            ("h1", None), ("h1", "disk"), ("h1", "load"), ("h1", "dockerd"), ("h1", "haproxy"),
            ("h2", None), ("h2", "disk"), ("h2", "load"), ("h2", "dockerd"),
        }  # fmt: skip
        seen = _wait(
            "both hosts checked",
            lambda: (
                (s := statuses()) and all(k in s and s[k].state != "PENDING" for k in remote) and s
            ),
        )
        assert ("h2", "haproxy") not in seen  # an app host: its HAProxies are the project's
        for host in ("h1", "h2"):
            assert seen[(host, None)].state == "UP", seen[(host, None)]
            assert seen[(host, "dockerd")].state == "OK", seen[(host, "dockerd")]
            # answered by the plugin on the host (the load may be high on a shared machine)
            assert seen[(host, "load")].output.startswith("LOAD "), seen[(host, "load")]
            assert seen[(host, "disk")].output.startswith("DISK "), seen[(host, "disk")]
        assert seen[("h1", "haproxy")].state == "OK", seen[("h1", "haproxy")]

        nrpe = h2.exec("cat", "/run/nagios/nrpe.pid").split()[0]
        haproxy = h1.exec("cat", "/run/haproxy/haproxy.pid").split()
        h2.exec("kill", nrpe)
        h1.exec("kill", *haproxy)
        now = time.time()
        nagios.command(f"SCHEDULE_FORCED_HOST_CHECK;h2;{int(now)}", now)
        nagios.command(f"SCHEDULE_FORCED_SVC_CHECK;h1;haproxy;{int(now)}", now)

        def hard(key: tuple[str, str | None], state: str) -> bool:
            s = statuses().get(key)
            return s is not None and s.state == state and s.state_type == "hard"

        _wait("h2 DOWN", lambda: hard(("h2", None), "DOWN"))
        _wait("h1's haproxy CRITICAL", lambda: hard(("h1", "haproxy"), "CRITICAL"))
        assert hard(("h1", None), "UP")  # h1's NRPE still answers

        def changed() -> list[str]:
            controller.forward()
            return [e.message for e in events if e.kind == "check.changed"]

        told = _wait("both notified", lambda: len(said := changed()) >= 2 and said)
        assert any(m.startswith("host h2 is DOWN: ") for m in told), told
        assert any(m.startswith("haproxy on h1 is CRITICAL: PROCS CRITICAL") for m in told), told
    finally:
        stop_checks(project.paths())
        engine.store.close()


def _wait(what: str, probe: Callable[[], T | Literal[False] | None], timeout: float = 60) -> T:
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)
