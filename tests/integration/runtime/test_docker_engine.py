"""The Docker Engine adapter against the real dockerd.

Every test uses its own project name; its containers, volumes and image tags are removed at
teardown. Replicas run a tiny HTTP app built from the local Python base image.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest

from conveyor.errors import RuntimeAdapterError
from conveyor.model.stack import BuildSpec, Healthcheck, Resources, Service, VolumeMount
from conveyor.runtime.docker_engine import DockerEngine
from conveyor.runtime.protocol import LABEL_PROJECT, ReplicaRun
from conveyor.testing.net import free_port

# The app every test replica runs: binds HOST:PORT, answers a few paths that let the tests
# look inside the container, and says hello on stdout so the logs have something to show.
APP = """\
import json, os, signal, sys, urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def on_term(signum, frame):
    print("got SIGTERM", flush=True)
    sys.exit(0)


signal.signal(signal.SIGTERM, signal.SIG_IGN if os.environ.get("IGNORE_TERM") else on_term)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        path, _, query = self.path.partition("?")
        args = {k: v[0] for k, v in urllib.parse.parse_qs(query).items()}
        if path == "/crash":
            self.reply(200, "crashing")
            os._exit(3)
        try:
            if path == "/env":
                self.reply(200, json.dumps(dict(os.environ)))
            elif path == "/read":
                with open(args["path"]) as f:
                    self.reply(200, f.read())
            elif path == "/write":
                with open(args["path"], "w") as f:
                    f.write(args["value"])
                self.reply(200, "written")
            else:
                self.reply(200, "ok")
        except OSError as e:
            self.reply(500, str(e))

    def reply(self, code, body):
        data = body.encode()
        self.send_response(code)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()


server = ThreadingHTTPServer((os.environ["HOST"], int(os.environ["PORT"])), Handler)
print("hello from", os.environ.get("NAME", "?"), flush=True)
server.serve_forever()
"""


def write_app(context: Path, base_image: str, extra_dockerfile: str = "") -> Path:
    """Write the app's build context into `context` and return it."""
    context.mkdir(parents=True, exist_ok=True)
    (context / "app.py").write_text(APP)
    (context / "Dockerfile").write_text(
        f"FROM {base_image}\n{extra_dockerfile}COPY app.py /app/app.py\n"
        'CMD ["python", "/app/app.py"]\n'
    )
    return context


def app_service(context: Path, name: str = "web", **fields: Any) -> Service:
    return Service(name=name, build=BuildSpec(context=str(context)), **fields)


@pytest.fixture(scope="session")
def docker_client(dockerd: None) -> Iterator[Any]:
    client = docker.from_env()
    yield client
    client.close()


@pytest.fixture(scope="session")
def engine(dockerd: None) -> DockerEngine:
    return DockerEngine()


def _cleanup(client: Any, project: str) -> None:
    """Remove everything a test project left: containers, volumes, image tags."""
    label = {"label": f"{LABEL_PROJECT}={project}"}
    for container in client.containers.list(all=True, filters=label, ignore_removed=True):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    for volume in client.volumes.list():
        if volume.name.startswith(f"{project}_") or volume.name.startswith(f"{project}-"):
            with contextlib.suppress(docker.errors.NotFound):
                volume.remove(force=True)
    for image in client.images.list():
        for tag in image.tags:
            if tag.startswith(f"{project}-"):
                with contextlib.suppress(docker.errors.NotFound):
                    client.images.remove(tag, force=True)


@pytest.fixture
def project(docker_client: Any) -> Iterator[str]:
    """A unique project name; its containers, volumes and image tags go at teardown."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    yield name
    _cleanup(docker_client, name)


@pytest.fixture(scope="session")
def app_image(
    engine: DockerEngine,
    base_image: str,
    docker_client: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    """The app's image id, built once for the session (its tag is removed at the end)."""
    owner = f"t-{uuid.uuid4().hex[:8]}"
    context = write_app(tmp_path_factory.mktemp("app"), base_image)
    _, image_id = engine.build(owner, app_service(context), lambda _line: None)
    yield image_id
    _cleanup(docker_client, owner)


ReplicaFactory = Callable[..., ReplicaRun]


@pytest.fixture
def replica(project: str, app_image: str) -> ReplicaFactory:
    """Build a ReplicaRun of the app for this test's project."""

    def make(replica: str = "web-1", service: Service | None = None, **fields: Any) -> ReplicaRun:
        port = fields.pop("port", None) or free_port()
        env = {"PORT": str(port), "HOST": "127.0.0.1", "NAME": replica, **fields.pop("env", {})}
        return ReplicaRun(
            project=project,
            replica=replica,
            release=fields.pop("release", 1),
            spec_hash=fields.pop("spec_hash", "abc123"),
            image_id=fields.pop("image_id", app_image),
            port=port,
            service=service or Service(name="web"),
            env=env,
            **fields,
        )

    return make


def http_get(port: int, path: str = "/", timeout: float = 15.0) -> tuple[int, str]:
    """GET on 127.0.0.1:port, retrying while the replica is still starting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as resp:
                return int(resp.status), resp.read().decode()
        except urllib.error.HTTPError as e:
            return int(e.code), e.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def http_json(port: int, path: str) -> dict[str, str]:
    status, body = http_get(port, path)
    assert status == 200, body
    result: dict[str, str] = json.loads(body)
    return result


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.1)


def no_progress(_line: str) -> None:
    pass


# --- build ----------------------------------------------------------------------------------


def test_build_tags_by_content_and_skips_an_unchanged_context(
    engine: DockerEngine, project: str, base_image: str, tmp_path: Path
) -> None:
    context = write_app(tmp_path / "ctx", base_image)
    first: list[str] = []
    tag, image_id = engine.build(project, app_service(context), first.append)
    assert tag.startswith(f"{project}-web:")
    assert image_id.startswith("sha256:")
    assert any(line.startswith("Step 1/") for line in first), first

    again: list[str] = []
    assert engine.build(project, app_service(context), again.append) == (tag, image_id)
    assert again == [f"{tag} up to date"]

    (context / "app.py").write_text(APP + "\n# changed\n")
    changed_tag, changed_id = engine.build(project, app_service(context), no_progress)
    assert changed_tag != tag
    assert changed_id != image_id


def test_build_args_and_target_change_the_tag(
    engine: DockerEngine, project: str, base_image: str, tmp_path: Path
) -> None:
    context = write_app(tmp_path / "ctx", base_image, "ARG FLAVOUR=plain\n")
    plain, _ = engine.build(project, app_service(context), no_progress)
    spicy_service = Service(
        name="web", build=BuildSpec(context=str(context), args={"FLAVOUR": "spicy"})
    )
    spicy, _ = engine.build(project, spicy_service, no_progress)
    assert spicy != plain


def test_dockerignored_files_do_not_change_the_tag(
    engine: DockerEngine, project: str, base_image: str, tmp_path: Path
) -> None:
    context = write_app(tmp_path / "ctx", base_image)
    (context / ".dockerignore").write_text("# scratch\nscratch/\n**/*.log\n!keep.log\n")
    (context / "scratch").mkdir()
    (context / "scratch" / "notes.txt").write_text("one")
    (context / "debug.log").write_text("one")
    (context / "keep.log").write_text("one")
    tag, _ = engine.build(project, app_service(context), no_progress)

    (context / "scratch" / "notes.txt").write_text("two")
    (context / "debug.log").write_text("two")
    (context / "scratch" / "more.log").write_text("new")
    assert engine.build(project, app_service(context), no_progress)[0] == tag

    (context / "keep.log").write_text("two")  # re-included by `!keep.log`
    assert engine.build(project, app_service(context), no_progress)[0] != tag


def test_a_failing_build_step_raises_with_its_message_and_output(
    engine: DockerEngine, project: str, base_image: str, tmp_path: Path
) -> None:
    context = write_app(tmp_path / "ctx", base_image, "RUN echo boom-marker && exit 7\n")
    with pytest.raises(RuntimeAdapterError) as caught:
        engine.build(project, app_service(context), no_progress)
    message = str(caught.value)
    assert "echo boom-marker && exit 7' returned a non-zero code: 7" in message
    assert "boom-marker" in message.split("last lines of the build:")[1]


def test_ensure_image_returns_a_present_image_without_pulling(
    engine: DockerEngine, base_image: str, docker_client: Any
) -> None:
    lines: list[str] = []
    assert engine.ensure_image(base_image, lines.append) == docker_client.images.get(base_image).id
    assert lines == []


def test_ensure_image_of_an_unreachable_registry_names_the_ref(engine: DockerEngine) -> None:
    with pytest.raises(RuntimeAdapterError, match=r"127\.0\.0\.1:1/nope:x.*could not be reached"):
        engine.ensure_image("127.0.0.1:1/nope:x", no_progress)


def test_an_absent_daemon_is_reported_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    with pytest.raises(RuntimeAdapterError, match="cannot reach the Docker Engine at unix:///non"):
        DockerEngine().list_replicas("anything")


# --- volumes --------------------------------------------------------------------------------


def test_ensure_volume_scopes_names_and_checks_external_ones(
    engine: DockerEngine, project: str, docker_client: Any
) -> None:
    name = engine.ensure_volume(project, "data", external=False)
    assert name == f"{project}_data"
    assert docker_client.volumes.get(name).attrs["Labels"] == {LABEL_PROJECT: project}
    assert engine.ensure_volume(project, "data", external=False) == name

    with pytest.raises(RuntimeAdapterError, match=f"external volume {project}-ext does not exist"):
        engine.ensure_volume(project, f"{project}-ext", external=True)
    docker_client.volumes.create(f"{project}-ext")
    assert engine.ensure_volume(project, f"{project}-ext", external=True) == f"{project}-ext"


# --- replicas -------------------------------------------------------------------------------


def test_a_replica_serves_its_env_on_its_port_and_is_listed(
    engine: DockerEngine, replica: ReplicaFactory, docker_client: Any, project: str
) -> None:
    service = Service(name="web", labels={"team": "payments"})
    req = replica("web-1", service, env={"GREETING": "hi"}, release=4, spec_hash="f00d")
    container_id = engine.run(req)

    env = http_json(req.port, "/env")
    assert env["GREETING"] == "hi"
    assert env["PORT"] == str(req.port)
    container = docker_client.containers.get(container_id)
    assert container.name == f"{project}-web-1"
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"
    assert container.attrs["HostConfig"]["RestartPolicy"]["Name"] == "no"
    assert container.labels["team"] == "payments"
    assert container.labels["io.conveyor.replica"] == "web-1"

    [seen] = engine.list_replicas(project)
    assert seen.model_dump(exclude={"started_at"}) == {
        "replica": "web-1",
        "service": "web",
        "container_id": container_id,
        "spec_hash": "f00d",
        "release": 4,
        "endpoint": {"host": "127.0.0.1", "port": req.port},
        "running": True,
        "exit_code": None,
        "health": "none",
        "router": "absent",
        "checks": "unknown",
        "weight": None,
        "paused": False,
        "published_ports": {},
        "host": "",  # this machine's engine (a fleet's names its host)
    }
    assert abs(seen.started_at - time.time()) < 60
    container.pause()  # frozen: still running, answering nothing
    try:
        [frozen] = engine.list_replicas(project)
        assert frozen.running and frozen.paused and frozen.failing
    finally:
        container.unpause()


def test_list_replicas_skips_containers_without_conveyor_labels(
    engine: DockerEngine, project: str, app_image: str, docker_client: Any
) -> None:
    stray = docker_client.containers.create(
        app_image, labels={LABEL_PROJECT: project}, network_mode="host"
    )
    assert stray.id
    assert engine.list_replicas(project) == []


def test_a_healthcheck_makes_the_replica_healthy(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    probe = "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/')"
    check = Healthcheck(test=("CMD", "python", "-c", probe), interval=0.3, timeout=3, retries=3)
    engine.run(replica("web-1", Service(name="web", healthcheck=check)))
    wait_for(lambda: engine.list_replicas(project)[0].health == "healthy", what="health 'healthy'")


def test_stop_sends_the_signal_to_the_app_and_reports_its_exit_code(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    req = replica("web-1")
    container_id = engine.run(req)
    http_get(req.port)
    # The app's SIGTERM handler exits 0: only a signal that reached it gives 0 (not 143/137).
    assert engine.stop(container_id, "SIGTERM", grace=10) == 0
    [seen] = engine.list_replicas(project)
    assert (seen.running, seen.exit_code) == (False, 0)
    assert ("web-1", "got SIGTERM") in list(engine.logs(project, "web", follow=False, tail=None))


def test_stop_kills_a_replica_that_ignores_the_signal_after_the_grace(
    engine: DockerEngine, replica: ReplicaFactory
) -> None:
    req = replica("web-1", env={"IGNORE_TERM": "1"})
    container_id = engine.run(req)
    http_get(req.port)
    started = time.monotonic()
    assert engine.stop(container_id, "SIGTERM", grace=1) == 137
    assert time.monotonic() - started >= 1


def test_stop_and_remove_of_a_missing_container_are_quiet(engine: DockerEngine) -> None:
    assert engine.stop("0" * 64, "SIGTERM", grace=1) is None
    engine.remove("0" * 64)
    engine.kill("0" * 64)


def test_a_crash_is_listed_with_its_exit_code(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    req = replica("web-1")
    engine.run(req)
    assert http_get(req.port, "/crash") == (200, "crashing")
    wait_for(lambda: not engine.list_replicas(project)[0].running, what="the crash")
    [seen] = engine.list_replicas(project)
    assert seen.exit_code == 3


def test_run_replaces_a_stopped_container_but_not_a_running_one(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    req = replica("web-1")
    first = engine.run(req)
    with pytest.raises(RuntimeAdapterError, match=f"{project}-web-1 is already running"):
        engine.run(req)
    engine.stop(first, "SIGTERM", grace=10)
    second = engine.run(req)
    assert second != first
    assert [r.container_id for r in engine.list_replicas(project)] == [second]
    engine.remove(second)
    assert engine.list_replicas(project) == []


def test_a_command_that_cannot_run_is_listed_as_exited_127(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    # docker-init starts first, so the start succeeds and tini reports the failed exec.
    broken = Service(name="web", command=("/no/such/binary",))
    engine.run(replica("web-1", broken))
    wait_for(lambda: not engine.list_replicas(project)[0].running, what="the exit")
    assert engine.list_replicas(project)[0].exit_code == 127
    [(_, line)] = engine.logs(project, "web", follow=False, tail=None)
    assert "exec /no/such/binary failed: No such file or directory" in line


def test_a_replica_that_cannot_start_raises_and_leaves_no_container(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    missing = Service(
        name="web", volumes=(VolumeMount(type="bind", source="/no/such/dir", target="/x"),)
    )
    with pytest.raises(RuntimeAdapterError, match="bind source path does not exist: /no/such/dir"):
        engine.run(replica("web-1", missing))
    # An unknown user passes `create` and fails at `start`: the container must not stay.
    with pytest.raises(RuntimeAdapterError, match="unable to find user nosuchuser"):
        engine.run(replica("web-1", Service(name="web", user="nosuchuser")))
    assert engine.list_replicas(project) == []


def test_a_named_volume_keeps_data_across_replicas(
    engine: DockerEngine, replica: ReplicaFactory
) -> None:
    service = Service(name="web", volumes=(VolumeMount(source="data", target="/data"),))
    first = replica("web-1", service)
    engine.run(first)
    assert http_get(first.port, "/write?path=/data/v&value=kept")[0] == 200
    engine.remove(engine.list_replicas(first.project)[0].container_id)

    second = replica("web-2", service)
    engine.run(second)
    assert http_get(second.port, "/read?path=/data/v") == (200, "kept")


def test_external_volumes_mount_under_their_own_name(
    engine: DockerEngine, replica: ReplicaFactory, project: str, docker_client: Any
) -> None:
    docker_client.volumes.create(f"{project}-shared")
    name = engine.ensure_volume(project, f"{project}-shared", external=True)
    service = Service(name="web", volumes=(VolumeMount(source="shared", target="/shared"),))
    container_id = engine.run(replica("web-1", service, volume_names={"shared": name}))
    [mount] = docker_client.containers.get(container_id).attrs["Mounts"]
    assert (mount["Name"], mount["Destination"]) == (f"{project}-shared", "/shared")


def test_secrets_are_mounted_read_only_at_their_target(
    engine: DockerEngine, replica: ReplicaFactory, tmp_path: Path
) -> None:
    secret = tmp_path / "token"
    secret.write_text("s3cret")
    req = replica("web-1", secret_files={"/run/secrets/token": str(secret)})
    engine.run(req)
    assert http_get(req.port, "/read?path=/run/secrets/token") == (200, "s3cret")
    status, body = http_get(req.port, "/write?path=/run/secrets/token&value=x")
    assert (status, "Read-only file system" in body) == (500, True)
    assert secret.read_text() == "s3cret"


def test_tmpfs_and_read_only_volumes(engine: DockerEngine, replica: ReplicaFactory) -> None:
    service = Service(
        name="web",
        volumes=(
            VolumeMount(type="tmpfs", target="/scratch"),
            VolumeMount(source="cfg", target="/cfg", read_only=True),
        ),
    )
    req = replica("web-1", service)
    engine.run(req)
    assert http_get(req.port, "/write?path=/scratch/a&value=1")[0] == 200
    status, body = http_get(req.port, "/write?path=/cfg/a&value=1")
    assert (status, "Read-only file system" in body) == (500, True)


def test_resource_limits_user_and_stop_settings_reach_the_container(
    engine: DockerEngine, replica: ReplicaFactory, docker_client: Any
) -> None:
    service = Service(
        name="web",
        limits=Resources(cpus=0.5, memory=64 * 1024 * 1024, pids=64),
        user="65534:65534",
        working_dir="/tmp",
        stop_signal="SIGINT",
        stop_grace_period=2.5,
    )
    req = replica("web-1", service, extra_hosts={"db.local": "127.0.0.1"})
    container_id = engine.run(req)
    attrs = docker_client.containers.get(container_id).attrs
    host = attrs["HostConfig"]
    assert (host["Memory"], host["NanoCpus"], host["PidsLimit"]) == (67108864, 500_000_000, 64)
    assert host["Init"] is True
    assert host["ExtraHosts"] == ["db.local:127.0.0.1"]
    config = attrs["Config"]
    assert (config["User"], config["WorkingDir"]) == ("65534:65534", "/tmp")
    assert (config["StopSignal"], config["StopTimeout"]) == ("SIGINT", 3)
    assert http_get(req.port, "/read?path=/etc/hosts")[1].count("db.local") == 1


def test_root_replicas_are_warned_about(engine: DockerEngine, replica: ReplicaFactory) -> None:
    warnings: list[str] = []
    engine.run(replica("web-1"), warn=warnings.append)
    engine.run(replica("web-2", Service(name="web", user="65534")), warn=warnings.append)
    assert len(warnings) == 1 and "web-1 runs as root" in warnings[0], warnings


# --- logs -----------------------------------------------------------------------------------


def test_logs_merge_the_replicas_by_time(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    # web-2 starts first, so time order and name order disagree.
    first, second = replica("web-2"), replica("web-1")
    engine.run(first)
    http_get(first.port)
    engine.run(second)
    http_get(second.port)
    lines = list(engine.logs(project, "web", follow=False, tail=None))
    hellos = [line for line in lines if line[1].startswith("hello from")]
    assert hellos == [("web-2", "hello from web-2"), ("web-1", "hello from web-1")]
    assert all(not line.startswith("20") for _, line in lines)  # timestamps stripped
    # tail applies per replica: each one's last line is the access log of our GET.
    last = list(engine.logs(project, "web", follow=False, tail=1))
    assert [(r, '"GET / HTTP/1.1" 200' in line) for r, line in last] == [
        ("web-2", True),
        ("web-1", True),
    ]
    assert list(engine.logs(project, "other", follow=False, tail=None)) == []


def test_following_logs_ends_when_every_replica_exits(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    script = (
        "import time\nfor i in range(3):\n    print('line', i, flush=True)\n    time.sleep(0.2)"
    )
    talker = Service(name="job", command=("python", "-c", script))
    engine.run(replica("job-1", talker))
    engine.run(replica("job-2", talker))
    seen = list(engine.logs(project, "job", follow=True, tail=None))
    for name in ("job-1", "job-2"):
        assert [line for r, line in seen if r == name] == ["line 0", "line 1", "line 2"]


def test_following_logs_can_be_closed_early(
    engine: DockerEngine, replica: ReplicaFactory, project: str
) -> None:
    req = replica("web-1")
    engine.run(req)
    http_get(req.port)
    follow = engine.logs(project, "web", follow=True, tail=None)
    assert next(follow) == ("web-1", "hello from web-1")
    follow.close()
    wait_for(
        lambda: not any(t.name == "logs-web-1" for t in threading.enumerate()),
        timeout=5,
        what="the log thread to end",
    )
