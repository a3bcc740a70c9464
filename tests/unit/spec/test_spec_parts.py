"""The spec package's building blocks, data-driven: durations, sizes, interpolation,
env files, YAML positions, and what load_stack does around the file itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.errors import SpecError
from conveyor.spec import load_stack
from conveyor.spec.dotenv import parse_env
from conveyor.spec.durations import parse_bytes, parse_duration
from conveyor.spec.interpolate import InterpolationError, substitute
from conveyor.spec.values import signal_name, suggest
from conveyor.spec.yamlpos import dotted, load_yaml


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("1m30s", 90.0),
        ("10s", 10.0),
        ("500ms", 0.5),
        ("1h", 3600.0),
        ("2h45m", 9900.0),
        ("1.5s", 1.5),
        ("250us", 0.00025),
        ("-5s", -5.0),
        ("30", 30.0),
        (12, 12.0),
        (0.25, 0.25),
    ],
)
def test_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "1x", "1m30", "ten seconds", "--5s", True, [1]])
def test_bad_duration(text: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512m", 512 * 1024**2),
        ("1g", 1024**3),
        ("1GiB", 1024**3),
        ("1gb", 1024**3),
        ("100k", 102400),
        ("1024b", 1024),
        ("1.5g", 3 * 512 * 1024**2),
        ("4096", 4096),
        (2048, 2048),
    ],
)
def test_bytes(text: object, size: int) -> None:
    assert parse_bytes(text) == size


@pytest.mark.parametrize("text", ["512q", "-1m", "m", "", -1, 1.5, False])
def test_bad_bytes(text: object) -> None:
    with pytest.raises(ValueError, match="invalid byte size"):
        parse_bytes(text)


ENV = {"A": "a", "EMPTY": "", "B": "b"}


@pytest.mark.parametrize(
    ("text", "result"),
    [
        ("$A-$B", "a-b"),
        ("${A}x", "ax"),
        ("${UNSET}", ""),
        ("${UNSET:-dflt}", "dflt"),
        ("${EMPTY:-dflt}", "dflt"),
        ("${EMPTY-dflt}", ""),
        ("${UNSET-dflt}", "dflt"),
        ("${UNSET:-${B}}", "b"),
        ("$$A and $${A}", "$A and ${A}"),
        ("${A:+alt}", "alt"),
        ("${EMPTY:+alt}", ""),
        ("${EMPTY+alt}", "alt"),
        ("${EMPTY?never}", ""),
        ("no dollars", "no dollars"),
    ],
)
def test_substitute(text: str, result: str) -> None:
    assert substitute(text, ENV.get) == result


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("${X:?must be set}", "required variable X is missing a value: must be set"),
        ("${EMPTY:?}", "required variable EMPTY is missing a value"),
        ("${X?}", "required variable X is missing a value"),
        ("cost $5", "invalid interpolation format in 'cost $5' (write '$$' for a literal '$')"),
        ("end $", "invalid interpolation format in 'end $' (write '$$' for a literal '$')"),
        ("${A", "unclosed '${' in '${A'"),
        ("${}", "invalid interpolation format in '${}'"),
        ("${A B}", "invalid interpolation format in '${A B}'"),
    ],
)
def test_substitute_errors(text: str, message: str) -> None:
    with pytest.raises(InterpolationError) as caught:
        substitute(text, ENV.get)
    assert str(caught.value) == message


def test_env_file_syntax() -> None:
    text = "\n".join(
        [
            "# comment",
            "",
            "A=1",
            "export B = two words # trailing comment",
            "C='single $A # kept'",
            'D="double $A\\n\\$HOME"',
            'E="spans',
            'lines"',
            "F",
            "G",
            "H=${A}-${MISSING:-none}",
            "I=a#b",
            "J=",
        ]
    )
    values = parse_env(text, "app.env", {"F": "from-env"}.get)
    assert values == {
        "A": "1",
        "B": "two words",
        "C": "single $A # kept",
        "D": "double 1\n$HOME",
        "E": "spans\nlines",
        "F": "from-env",
        "H": "1-none",
        "I": "a#b",
        "J": "",
    }


@pytest.mark.parametrize(
    ("text", "rendered"),
    [
        ("A=1\n2B=x\n", "app.env:2: invalid variable name '2B'"),
        ("A='open\n", "app.env:1: A: unterminated ' quote"),
        ("A=${B\n", "app.env:1: A: unclosed '${' in '${B'"),
    ],
)
def test_env_file_errors(text: str, rendered: str) -> None:
    nothing: dict[str, str] = {}
    with pytest.raises(SpecError) as caught:
        parse_env(text, "app.env", nothing.get)
    assert str(caught.value) == rendered


def test_yaml_lines_follow_keys_items_and_merges() -> None:
    doc = load_yaml(
        "\n".join(
            [
                "x-base: &base",  # 1
                "  deploy:",  # 2
                "    replicas: 2",  # 3
                "services:",  # 4
                "  web:",  # 5
                "    <<: *base",  # 6
                "    image: nginx",  # 7
                "    ports:",  # 8
                "      - '80:80'",  # 9
                "      - 81",  # 10
                "    80: numeric key stays text",  # 11
            ]
        ),
        "c.yaml",
    )
    assert doc.line(("services", "web", "image")) == 7
    assert doc.line(("services", "web", "ports", 1)) == 10
    # merged keys point at the anchor, where the value is written
    assert doc.line(("services", "web", "deploy", "replicas")) == 3
    # a missing key: the nearest ancestor that exists
    assert doc.line(("services", "web", "healthcheck", "test")) == 5
    assert doc.data["services"]["web"]["80"] == "numeric key stays text"
    assert doc.data["services"]["web"]["deploy"] == {"replicas": 2}


def test_dotted() -> None:
    assert dotted(("services", "web", "ports", 0, "target")) == "services.web.ports[0].target"
    assert dotted(()) == ""


@pytest.mark.parametrize(("given", "name"), [("TERM", "SIGTERM"), ("sigint", "SIGINT")])
def test_signal_names(given: str, name: str) -> None:
    assert signal_name(given) == name


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_missing_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_stack(Path("compose.yaml"), environ={})
    assert str(caught.value) == "compose.yaml: file not found"


def test_directory_instead_of_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "compose.yaml").mkdir()
    with pytest.raises(SpecError) as caught:
        load_stack(Path("compose.yaml"), environ={})
    assert str(caught.value) == "compose.yaml: is a directory, not a compose file"


def test_broken_dot_env_is_reported_in_the_dot_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "proj"
    project.mkdir()
    write(project, ".env", "OK=1\nTAG='unterminated\n")
    write(project, "compose.yaml", "services:\n  web:\n    image: nginx:${TAG}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_stack(Path("proj/compose.yaml"), environ={})
    assert str(caught.value) == "proj/.env:2: TAG: unterminated ' quote"


def test_process_environment_is_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, ".env", "TAG=from-dotenv\nOTHER=dotenv\n")
    compose = write(
        tmp_path, "compose.yaml", "services:\n  web:\n    image: nginx:${TAG}-${OTHER}\n"
    )
    monkeypatch.setenv("TAG", "from-process")
    assert load_stack(compose).services["web"].image == "nginx:from-process-dotenv"


def test_name_key_and_directory_give_the_project_name(tmp_path: Path) -> None:
    project = tmp_path / "My_Shop.v2"
    project.mkdir()
    compose = write(project, "compose.yaml", "services:\n  web:\n    image: nginx\n")
    assert load_stack(compose, environ={}).project == "my_shopv2"
    write(project, "compose.yaml", "name: Checkout\nservices:\n  web:\n    image: nginx\n")
    assert load_stack(compose, environ={}).project == "checkout"


def test_relative_paths_resolve_against_the_compose_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "svc" / "app").mkdir(parents=True)
    write(tmp_path / "svc" / "app", "Dockerfile", "FROM scratch\n")
    write(tmp_path / "svc", "app.env", "FROM_FILE=1\n")
    compose = write(
        tmp_path / "svc",
        "compose.yaml",
        "services:\n  web:\n    build: app\n    env_file: app.env\n    volumes: ['./data:/data']\n",
    )
    monkeypatch.chdir(tmp_path)  # not the compose file's directory
    web = load_stack(Path("svc/compose.yaml"), environ={}).services["web"]
    assert web.build is not None
    assert web.build.context == str(compose.parent / "app")
    assert web.environment == {"FROM_FILE": "1"}
    assert web.volumes[0].source == str(compose.parent / "data")


def test_x_conveyor_wins_field_by_field_over_ports(tmp_path: Path) -> None:
    compose = write(
        tmp_path,
        "compose.yaml",
        "services:\n  web:\n    image: web\n    network_mode: host\n    ports: ['8080:80']\n"
        "    x-conveyor:\n      port: 8000\n",
    )
    routing = load_stack(compose, environ={}).services["web"].routing
    assert (routing.port, routing.public_port) == (8000, 8080)


def test_on_project_networks_a_published_port_stays_with_its_target(tmp_path: Path) -> None:
    compose = write(
        tmp_path,
        "compose.yaml",
        "services:\n  web:\n    image: web\n    ports: ['8080:80']\n"
        "    x-conveyor:\n      port: 8000\n",
    )
    web = load_stack(compose, environ={}).services["web"]
    # 8080 publishes port 80 (TCP); the HTTP port 8000 keeps a frontend of its own
    assert (web.routing.port, web.routing.public_port) == (8000, None)
    assert web.served_ports() == (8000, 80)
    assert web.http_ports() == {8000}


def test_did_you_mean_never_suggests_the_word_itself() -> None:
    assert suggest("db", ["db"]) == ""
    assert suggest("db", ["db", "dbs"]) == " (did you mean 'dbs'?)"
    assert suggest("postgress", ["postgres", "redis"]) == " (did you mean 'postgres'?)"
