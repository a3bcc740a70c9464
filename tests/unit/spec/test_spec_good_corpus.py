"""Realistic compose files in good/ and the model fields a deployment relies on."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.model.stack import (
    DependsOn,
    Healthcheck,
    MetricsEndpoint,
    Probe,
    Resources,
    Routing,
    Secret,
    SecretMount,
    Stack,
    UpdateConfig,
    Volume,
    VolumeMount,
)
from conveyor.spec import load_stack

GOOD = Path(__file__).parent / "good"
APP = str(GOOD / "app")
# TAG overrides good/.env; the rest fill value-less variables.
ENVIRON = {
    "HOME": "/home/app",
    "TAG": "2.2.0",
    "PIP_INDEX_URL": "http://127.0.0.1:3141/simple",
    "EMPTY": "",
}


def load(name: str, project_name: str | None = None) -> Stack:
    return load_stack(GOOD / name, project_name=project_name, environ=ENVIRON)


@pytest.mark.parametrize("path", sorted(GOOD.glob("*.yaml")), ids=lambda p: p.name)
def test_every_good_file_loads(path: Path) -> None:
    stack = load_stack(path, environ=ENVIRON)
    assert stack.file == str(path)
    assert stack.services


def test_corpus_size() -> None:
    assert len(list(GOOD.glob("*.yaml"))) >= 8


def test_minimal_service_gets_model_defaults() -> None:
    stack = load("web_minimal.yaml")
    web = stack.services["web"]
    assert stack.project == "good"  # the directory name
    assert web.image == "nginx:1.27"
    assert web.replicas == 1
    assert web.update_config == UpdateConfig()
    assert web.update_config.order == "start-first"
    assert web.update_config.failure_action == "rollback"
    assert web.rollback_config == UpdateConfig(parallelism=0)
    assert (web.stop_grace_period, web.stop_signal) == (10.0, "SIGTERM")
    assert web.healthcheck is None
    assert not web.routed


def test_shop() -> None:
    stack = load("shop.yaml")
    assert stack.project == "shopfront"  # "Shop Front!" normalised
    web = stack.services["web"]
    assert web.build is not None
    assert (web.build.context, web.build.dockerfile) == (APP, "Dockerfile")
    assert web.image == "shop/web:latest"
    assert web.command == ("gunicorn", "--bind", "0.0.0.0:$PORT", "shop.wsgi:application")
    # env_file first, environment: on top; LOG_LEVEL comes from good/.env
    assert web.environment == {
        "DEBUG": "0",
        "GREETING": "hello\nworld",
        "QUOTED": "kept $LITERALLY",
        "LOG_LEVEL": "info",
    }
    assert web.routing == Routing(port=8000, public_port=8080, probe=Probe(path="/healthz"))
    assert web.routed
    assert web.depends_on == {"db": DependsOn(), "cache": DependsOn()}
    assert web.replicas == 3
    assert web.update_config == UpdateConfig(parallelism=1, delay=10.0)
    assert web.limits == Resources(cpus=0.5, memory=512 * 1024**2)
    assert web.healthcheck == Healthcheck(
        test=("CMD-SHELL", "curl -fsS http://localhost:8000/healthz || exit 1"),
        interval=90.0,
        timeout=5.0,
        retries=5,
        start_period=30.0,
    )
    assert (web.stop_grace_period, web.stop_signal) == (60.0, "SIGINT")
    assert web.labels == {"com.example.team": "shop", "com.example.tier": ""}
    db = stack.services["db"]
    # numbers become strings; a null value not in the environment is dropped
    assert db.environment == {
        "POSTGRES_DB": "shop",
        "POSTGRES_INITDB_ARGS": "--data-checksums",
        "PGPORT": "5432",
    }
    assert stack.services["cache"].command == ("redis-server", "--save", "")
    assert stack.order() == ["cache", "db", "web"]


def test_project_name_argument_wins_and_is_normalised() -> None:
    assert load("shop.yaml", project_name="_My.Project 2").project == "myproject2"


def test_deploy_policies() -> None:
    services = load("deploy_policies.yaml").services
    api = services["api"]
    assert api.replicas == 4  # top-level scale
    assert api.update_config == UpdateConfig(
        parallelism=2,
        delay=5.0,
        failure_action="pause",
        monitor=30.0,
        max_failure_ratio=0.25,
        order="start-first",
    )
    assert api.rollback_config == UpdateConfig(
        parallelism=1, delay=0.5, failure_action="continue", order="stop-first"
    )
    assert api.limits == Resources(cpus=1.5, memory=1024**3, pids=100)
    singleton = services["singleton"]
    assert singleton.replicas == 1
    assert singleton.update_config.order == "stop-first"
    assert singleton.update_config.failure_action == "rollback"
    assert services["paused"].replicas == 0


def test_dependencies() -> None:
    stack = load("dependencies.yaml")
    web = stack.services["web"]
    assert web.depends_on == {
        "api": DependsOn(condition="service_healthy", restart=True),
        "metrics": DependsOn(required=False),
    }
    assert stack.services["api"].depends_on == {
        "migrate": DependsOn(condition="service_completed_successfully"),
        "db": DependsOn(condition="service_healthy"),
    }
    order = stack.order()
    assert order.index("db") < order.index("migrate") < order.index("api") < order.index("web")


def test_storage() -> None:
    stack = load("storage.yaml")
    db = stack.services["db"]
    assert db.volumes == (
        VolumeMount(type="volume", source="dbdata", target="/var/lib/postgresql/data"),
        VolumeMount(
            type="bind",
            source=str(GOOD / "initdb"),
            target="/docker-entrypoint-initdb.d",
            read_only=True,
        ),
        VolumeMount(type="bind", source="/etc/localtime", target="/etc/localtime", read_only=True),
        VolumeMount(type="volume", source=None, target="/var/run/postgresql"),
        VolumeMount(type="tmpfs", target="/tmp"),
        VolumeMount(
            type="bind", source=str(GOOD / "conf"), target="/etc/postgresql", read_only=True
        ),
        VolumeMount(type="volume", source="backups", target="/backups"),
    )
    assert db.secrets == (
        SecretMount(source="db_password", target="/run/secrets/db_password"),
        SecretMount(source="api_token", target="/run/secrets/token"),
        SecretMount(source="db_password", target="/etc/db/password"),
    )
    assert stack.volumes == {
        "dbdata": Volume(name="dbdata", driver="local", labels={"com.example.backup": "daily"}),
        "backups": Volume(name="shared-backups", external=True),
    }
    assert stack.secrets == {
        "db_password": Secret(name="db_password", file=str(GOOD / "secrets" / "db_password.txt")),
        "api_token": Secret(name="api_token", environment="API_TOKEN"),
    }


def test_interpolation_from_env_file_and_environment() -> None:
    web = load("interpolated.yaml").services["web"]
    # IMAGE and REGISTRY come from good/.env; TAG from the environment, which wins
    assert web.image == "registry.local:5000/shop:2.2.0"
    assert web.build is not None
    assert web.build.context == APP
    # a value-less build arg takes the environment's value, or is dropped
    assert web.build.args == {
        "VERSION": "2.2.0",
        "PIP_INDEX_URL": "http://127.0.0.1:3141/simple",
    }
    assert web.environment == {
        "LOG_LEVEL": "info",
        "WORKERS": "4",
        "EMPTY_DEFAULT": "",
        "EMPTY_COLON": "replaced",
        "PRICE": "$5 EUR",
        "NESTED": "2.2.0",
        "ALT": "tagged",
        "PATH_ALONE": "/home/app/bin",
    }
    assert web.replicas == 2  # "${REPLICAS:-2}" is a string until the model converts it
    assert web.stop_grace_period == 45.0


def test_routing() -> None:
    services = load("routing.yaml").services
    assert services["web"].routing == Routing(
        port=80,
        public_port=9000,
        probe=Probe(path="/ready", interval=0.1, timeout=2.0, start_timeout=120.0),
        balance="leastconn",
    )
    # x-conveyor.port picks the ports entry; x-conveyor.public_port beats its published port
    assert services["api"].routing == Routing(port=8000, public_port=9100)
    # a port and no HTTP hint: served in TCP mode by name, checked over TCP
    tcp = services["tcp"]
    assert tcp.routing == Routing()
    assert tcp.routed
    assert (tcp.served_ports(), tcp.http_ports()) == ((7000,), frozenset())
    probed = services["probed"]
    assert probed.routed
    assert probed.routing == Routing(probe=Probe(path="/status"))
    assert probed.app_port() == 8000  # PORT Conveyor passes when the file names none
    assert not services["internal"].routed
    assert services["api"].served_ports() == (8000, 9090)
    # x-conveyor.metrics: a path on the main port, or a path and a port of its own
    assert probed.metrics == MetricsEndpoint(path="/metrics")
    assert services["api"].metrics == MetricsEndpoint(path="/internal/metrics", port=9090)
    assert services["web"].metrics is None


def test_anchors_and_healthcheck_forms() -> None:
    services = load("anchors.yaml").services
    web = services["web"]
    assert web.stop_grace_period == 5.0  # the service's own key beats the merged anchor
    assert web.labels == {"com.example.stack": "anchors"}
    assert web.healthcheck == Healthcheck(test=("CMD", "true"), interval=10.0)
    worker = services["worker"]
    assert worker.stop_grace_period == 20.0
    assert worker.healthcheck == Healthcheck(test=("NONE",))
    # timings only: keep the image's HEALTHCHECK command (empty test, as Docker's API says)
    assert services["batch"].healthcheck == Healthcheck(test=(), interval=60.0, start_interval=2.0)
    assert services["shell"].healthcheck == Healthcheck(
        test=("CMD-SHELL", "pg_isready -U postgres"), retries=7
    )


def test_build_mapping_and_env_files() -> None:
    app = load("build_mapping.yaml").services["app"]
    assert app.build is not None
    assert app.build.model_dump() == {
        "context": APP,
        "dockerfile": "Dockerfile.prod",
        "args": {"PYTHON_VERSION": "3.11", "DEBUG": "false"},
        "target": "prod",
    }
    assert app.entrypoint == ("/usr/bin/tini", "--", "python -m app")
    assert app.command == ()
    assert (app.user, app.working_dir) == ("1000:1000", "/srv/app")
    # web.env, the optional file that is absent, then web.env again verbatim (format: raw)
    assert app.environment == {
        "DEBUG": "1",
        "GREETING": '"hello\\nworld"',
        "QUOTED": "'kept $LITERALLY'",
        "FROM_COMPOSE": "yes",
    }
