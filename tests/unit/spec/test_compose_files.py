"""Several compose files as Compose reads them: `-f` merged in order, `include`, `extends`,
profiles, `!reset`/`!override` — and errors that name the file and line a person edits."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import ConveyorError, SpecError
from conveyor.model.stack import DependsOn, Healthcheck, SecretMount, VolumeMount
from conveyor.spec.compose import Loaded, load_compose


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def load(
    root: Path,
    monkeypatch: pytest.MonkeyPatch,
    *names: str,
    profiles: tuple[str, ...] = (),
    environ: dict[str, str] | None = None,
) -> Loaded:
    monkeypatch.chdir(root)
    return load_compose([Path(n) for n in names], environ=environ or {}, profiles=profiles)


def fails(root: Path, monkeypatch: pytest.MonkeyPatch, *names: str, **kw: object) -> str:
    with pytest.raises(ConveyorError) as caught:
        load(root, monkeypatch, *names, **kw)  # type: ignore[arg-type]
    return str(caught.value)


BASE = """\
services:
  web:
    image: shop/web:1
    command: ["gunicorn", "app"]
    environment:
      - LOG_LEVEL=info
      - WORKERS=2
    labels: {team: shop}
    ports: ["8080:8000"]
    volumes:
      - data:/srv/data
      - ./static:/srv/static:ro
    secrets: [token]
    dns: [10.0.0.2]
    healthcheck:
      test: ["CMD", "true"]
      interval: 10s
    depends_on: [db]
  db:
    image: postgres:16
volumes:
  data: {}
secrets:
  token:
    file: ./token.txt
"""

OVERRIDE = """\
services:
  web:
    command: gunicorn app --reload
    environment:
      WORKERS: "4"
      DEBUG: "1"
    labels: ["tier=front"]
    ports: ["8080:8000"]
    volumes:
      - cache:/srv/data
    dns: [10.0.0.2, 10.0.0.3]
    healthcheck:
      test: ["CMD", "false"]
    depends_on:
      cache:
        condition: service_started
  cache:
    image: redis:7
volumes:
  cache: {}
"""


def test_files_merge_as_compose_merges_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"compose.yaml": BASE, "dev.yaml": OVERRIDE, "token.txt": "t"})
    stack = load(tmp_path, monkeypatch, "compose.yaml", "dev.yaml").stack
    web = stack.services["web"]
    assert web.command == ("gunicorn", "app", "--reload")  # replaced, not appended
    assert web.environment == {"LOG_LEVEL": "info", "WORKERS": "4", "DEBUG": "1"}
    assert web.labels == {"team": "shop", "tier": "front"}
    # a volume with the same target replaces the earlier one
    assert web.volumes == (
        VolumeMount(type="volume", source="cache", target="/srv/data"),
        VolumeMount(
            type="bind", source=str(tmp_path / "static"), target="/srv/static", read_only=True
        ),
    )
    assert web.secrets == (SecretMount(source="token", target="/run/secrets/token"),)
    assert web.healthcheck == Healthcheck(test=("CMD", "false"), interval=10.0)
    assert web.depends_on == {"db": DependsOn(), "cache": DependsOn()}
    assert set(stack.services) == {"web", "db", "cache"}
    assert set(stack.volumes) == {"data", "cache"}
    assert stack.file == str(tmp_path / "compose.yaml")


def test_reset_and_override_tags(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": BASE,
            "token.txt": "t",
            "prod.yaml": (
                "services:\n"
                "  web:\n"
                "    environment: !override\n"
                "      LOG_LEVEL: warning\n"
                "    depends_on: !reset []\n"
                "    healthcheck: !reset null\n"
                "    labels: !reset null\n"
                "  db:\n"
                "    image: postgres:17\n"
            ),
        },
    )
    stack = load(tmp_path, monkeypatch, "compose.yaml", "prod.yaml").stack
    web = stack.services["web"]
    assert web.environment == {"LOG_LEVEL": "warning"}
    assert web.depends_on == {}
    assert web.healthcheck is None
    assert web.labels == {}
    assert stack.services["db"].image == "postgres:17"


def test_an_error_after_merging_names_the_file_that_wrote_the_value(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": BASE,
            "token.txt": "t",
            "ops/prod.yaml": (
                "services:\n  web:\n    stop_grace_period: -5s\n    depends_on: [dbb]\n"
            ),
        },
    )
    assert fails(tmp_path, monkeypatch, "compose.yaml", "ops/prod.yaml") == "\n".join(
        [
            "ops/prod.yaml:3: services.web.stop_grace_period: must not be negative, got '-5s'",
            "ops/prod.yaml:4: services.web.depends_on: depends on unknown service 'dbb' "
            "(did you mean 'db'?)",
        ]
    )


def test_each_file_is_validated_on_its_own(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": BASE,
            "token.txt": "t",
            "dev.yaml": "services:\n  web:\n    replicas: 2\n",
        },
    )
    assert fails(tmp_path, monkeypatch, "compose.yaml", "dev.yaml") == (
        "dev.yaml:3: services.web: unknown key 'replicas'"
    )


def test_relative_paths_of_later_files_start_at_the_first_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        {
            "app/compose.yaml": "services:\n  web:\n    image: nginx\n",
            "overrides/dev.yaml": (
                "services:\n  web:\n    volumes: ['./site:/usr/share/nginx/html']\n"
            ),
        },
    )
    stack = load(tmp_path, monkeypatch, "app/compose.yaml", "overrides/dev.yaml").stack
    assert stack.services["web"].volumes[0].source == str(tmp_path / "app" / "site")


# --- extends ----------------------------------------------------------------------------------


def test_extends_in_the_same_file_and_from_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": (
                "services:\n"
                "  base:\n"
                "    image: shop/app:1\n"
                "    environment: {LOG_LEVEL: info}\n"
                "    labels: [team=shop]\n"
                "  worker:\n"
                "    extends: base\n"
                "    command: celery worker\n"
                "    environment: {QUEUE: default}\n"
                "  web:\n"
                "    extends:\n"
                "      file: common/services.yaml\n"
                "      service: webapp\n"
                "    environment: {PORT: '8000'}\n"
            ),
            "common/services.yaml": (
                "services:\n"
                "  webapp:\n"
                "    extends: python\n"
                "    build: ./web\n"
                "    env_file: web.env\n"
                "  python:\n"
                "    image: python:3.11\n"
                "    stop_signal: SIGINT\n"
            ),
            "common/web.env": "FROM_FILE=1\n",
            "common/web/Dockerfile": "FROM python:3.11\n",
        },
    )
    stack = load(tmp_path, monkeypatch, "compose.yaml").stack
    worker = stack.services["worker"]
    assert worker.image == "shop/app:1"
    assert worker.command == ("celery", "worker")
    assert worker.environment == {"LOG_LEVEL": "info", "QUEUE": "default"}
    assert worker.labels == {"team": "shop"}
    web = stack.services["web"]
    # the base's relative paths start at its own file's directory
    assert web.build is not None
    assert web.build.context == str(tmp_path / "common" / "web")
    assert web.environment == {"FROM_FILE": "1", "PORT": "8000"}
    assert (web.image, web.stop_signal) == ("python:3.11", "SIGINT")
    assert "webapp" not in stack.services  # only what this file defines is deployed


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {"compose.yaml": "services:\n  a:\n    extends: b\n  b:\n    extends: a\n"},
            "compose.yaml:3: services.a.extends: extends loops: a -> b -> a",
        ),
        (
            {
                "compose.yaml": (
                    "services:\n  web:\n    extends:\n      file: base.yaml\n      service: wbe\n"
                ),
                "base.yaml": "services:\n  web:\n    image: nginx\n",
            },
            "compose.yaml:5: services.web.extends.service: service 'wbe' not found in "
            "'base.yaml' (did you mean 'web'?)",
        ),
        (
            {
                "compose.yaml": (
                    "services:\n  web:\n    extends:\n      file: nowhere.yaml\n"
                    "      service: web\n"
                )
            },
            "compose.yaml:4: services.web.extends.file: file 'nowhere.yaml' not found",
        ),
        (
            {"compose.yaml": "services:\n  web:\n    extends: web\n"},
            "compose.yaml:3: services.web.extends: extends loops: web -> web",
        ),
    ],
    ids=["loop", "unknown-in-file", "missing-file", "itself"],
)
def test_extends_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: str
) -> None:
    write(tmp_path, files)
    assert fails(tmp_path, monkeypatch, "compose.yaml") == expected


# --- include ----------------------------------------------------------------------------------


def test_include_brings_in_another_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        {
            "compose.yaml": (
                "include:\n"
                "  - db/compose.yaml\n"
                "services:\n"
                "  web:\n"
                "    image: shop/web:1\n"
                "    depends_on: [db]\n"
            ),
            "db/compose.yaml": (
                "services:\n"
                "  db:\n"
                "    image: postgres:${PG_VERSION}\n"
                "    env_file: db.env\n"
                "    volumes:\n"
                "      - pgdata:/var/lib/postgresql/data\n"
                "      - ./init:/docker-entrypoint-initdb.d\n"
                "volumes:\n"
                "  pgdata: {}\n"
            ),
            "db/.env": "PG_VERSION=16\n",
            "db/db.env": "POSTGRES_DB=shop\n",
        },
    )
    stack = load(tmp_path, monkeypatch, "compose.yaml").stack
    db = stack.services["db"]
    assert db.image == "postgres:16"  # interpolated with the included project's .env
    assert db.environment == {"POSTGRES_DB": "shop"}
    assert db.volumes[1].source == str(tmp_path / "db" / "init")
    assert set(stack.volumes) == {"pgdata"}
    assert stack.services["web"].depends_on == {"db": DependsOn()}


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        (
            {
                "compose.yaml": (
                    "include: [db.yaml]\nservices:\n  web:\n    image: nginx\n"
                    "    depends_on: [db]\n"
                ),
            },
            # one error: not a follow-on "depends on unknown service 'db'"
            "compose.yaml:1: include[0].path: included file 'db.yaml' not found",
        ),
        (
            {
                "compose.yaml": "include: [db.yaml]\nservices:\n  db:\n    image: postgres:16\n",
                "db.yaml": "services:\n  db:\n    image: postgres:17\n",
            },
            "compose.yaml:3: services.db: service 'db' is also defined by 'db.yaml', "
            "included on line 1; rename one of them",
        ),
        (
            {
                "compose.yaml": "include: [a.yaml]\nservices:\n  web:\n    image: nginx\n",
                "a.yaml": "include: [compose.yaml]\nservices:\n  a:\n    image: nginx\n",
            },
            "a.yaml:1: include[0]: include loops back to a file already included: "
            "compose.yaml -> a.yaml -> compose.yaml",
        ),
        (
            {"compose.yaml": "include:\n  - oci://registry.local/app:1\nservices: {}\n"},
            "compose.yaml:2: include[0].path: remote include 'oci://registry.local/app:1' is "
            "not supported (use a local file)",
        ),
        (
            {
                "compose.yaml": "include: [db.yaml]\nservices:\n  web:\n    image: nginx\n",
                "db.yaml": "services:\n  db:\n    image: postgres\n    stop_grace_period: soon\n",
            },
            "db.yaml:4: services.db.stop_grace_period: invalid duration 'soon' (use e.g. '10s', "
            "'1m30s', '500ms' or a number of seconds)",
        ),
    ],
    ids=["missing", "conflict", "loop", "remote", "error-in-included"],
)
def test_include_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: str
) -> None:
    write(tmp_path, files)
    assert fails(tmp_path, monkeypatch, "compose.yaml") == expected


# --- profiles ---------------------------------------------------------------------------------

PROFILED = """\
services:
  web:
    image: shop/web:1
    depends_on:
      db: {condition: service_started}
      debugger: {condition: service_started, required: false}
  db:
    image: postgres:16
  adminer:
    image: adminer:4
    profiles: [debug, admin]
  debugger:
    image: busybox
    profiles: [debug]
"""


@pytest.mark.parametrize(
    ("profiles", "environ", "services"),
    [
        ((), {}, {"web", "db"}),
        (("admin",), {}, {"web", "db", "adminer"}),
        ((), {"COMPOSE_PROFILES": "debug"}, {"web", "db", "adminer", "debugger"}),
        (("admin",), {"COMPOSE_PROFILES": "debug"}, {"web", "db", "adminer"}),  # --profile wins
        (("*",), {}, {"web", "db", "adminer", "debugger"}),
    ],
)
def test_profiles_enable_services(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    profiles: tuple[str, ...],
    environ: dict[str, str],
    services: set[str],
) -> None:
    write(tmp_path, {"compose.yaml": PROFILED})
    stack = load(tmp_path, monkeypatch, "compose.yaml", profiles=profiles, environ=environ).stack
    assert set(stack.services) == services
    # an optional dependency on a disabled service is dropped, as Compose drops it
    expected = {"db"} | ({"debugger"} if "debugger" in services else set())
    assert set(stack.services["web"].depends_on) == expected


def test_profiles_can_come_from_the_dot_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, {"compose.yaml": PROFILED, ".env": "COMPOSE_PROFILES=admin\n"})
    assert "adminer" in load(tmp_path, monkeypatch, "compose.yaml").stack.services


def test_a_required_dependency_on_a_disabled_service_says_which_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = PROFILED.replace(
        "    image: postgres:16\n", "    image: postgres:16\n    profiles: [db]\n"
    )
    write(tmp_path, {"compose.yaml": text})
    # never "did you mean 'db'" for 'db' itself
    assert fails(tmp_path, monkeypatch, "compose.yaml") == (
        "compose.yaml:5: services.web.depends_on: depends on service 'db', which runs only "
        "with profile 'db': enable it (--profile db or COMPOSE_PROFILES), or mark the "
        "dependency 'required: false'"
    )


def test_every_service_in_a_profile(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(
        tmp_path,
        {"compose.yaml": "services:\n  tools:\n    image: busybox\n    profiles: [tools]\n"},
    )
    assert fails(tmp_path, monkeypatch, "compose.yaml") == (
        "compose.yaml:1: services: no service runs without a profile: enable one of tools "
        "(--profile or COMPOSE_PROFILES)"
    )


def test_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(SpecError):
        load(tmp_path, monkeypatch)
