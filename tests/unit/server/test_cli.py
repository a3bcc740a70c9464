"""`conveyor token` and `conveyor server`'s checks, run in process."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from conveyor.app.access import authenticate, open_server_db
from conveyor.cli.main import app
from conveyor.errors import ConveyorError
from conveyor.server.listen import parse_listen
from conveyor.server.systemd import systemd_unit

runner = CliRunner()


def conveyor(*args: str, env: dict[str, str | None] | None = None) -> tuple[int, str, str]:
    """Exit code, stdout, stderr; a ConveyorError is exit 1 with its message, as `main()`
    makes it."""
    r = runner.invoke(app, list(args), env=env)
    if isinstance(r.exception, ConveyorError):
        return 1, r.stdout, r.stderr + str(r.exception)
    return r.exit_code, r.stdout, r.stderr


def test_token_create_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    data = tmp_path / "srv"
    code, out, err = conveyor(
        "token", "create", "--role", "deployer", "--name", "ci", "--data", str(data)
    )
    assert code == 0, err
    token = out.splitlines()[-1]
    assert token.startswith("cvr_") and token == token.strip()
    assert "not shown again" in err
    sdb = open_server_db(data)
    p = authenticate(sdb, token)
    assert p is not None and (p.name, p.role) == ("ci", "deployer")


def test_token_list_never_shows_a_token_and_revoke_ends_it(tmp_path: Path) -> None:
    data = str(tmp_path / "srv")
    _, out, _ = conveyor("token", "create", "--role", "viewer", "--data", data)
    token = out.splitlines()[-1]
    code, listed, _ = conveyor("token", "list", "--json", "--data", data)
    assert code == 0
    doc = json.loads(listed)
    assert [(t["name"], t["role"], t["revoked_at"]) for t in doc["tokens"]] == [
        ("viewer-1", "viewer", None)
    ]
    assert token not in listed
    _, table, _ = conveyor("token", "list", "--data", data)
    assert "viewer-1" in table and token not in table
    assert conveyor("token", "revoke", "viewer-1", "--data", data)[0] == 0
    assert authenticate(open_server_db(Path(data)), token) is None
    assert json.loads(conveyor("token", "list", "--json", "--data", data)[1])["tokens"] == []
    code, _, err = conveyor("token", "revoke", "viewer-1", "--data", data)
    assert code == 1 and "no active token named 'viewer-1'" in err


def test_token_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    code, _, err = conveyor("token", "create", "--role", "root", "--data", str(tmp_path))
    assert code == 2 and "root" in err


def test_the_data_directory_comes_from_the_environment_too(tmp_path: Path) -> None:
    data = tmp_path / "from-env"
    code, _, _ = conveyor(
        "token", "create", "--role", "admin", env={"CONVEYOR_SERVER_DATA": str(data)}
    )
    assert code == 0
    assert (data / "server.db").exists()


@pytest.mark.parametrize("listen", ["0.0.0.0:7780", "10.1.2.3:7780", "[::]:7780", "example.org:80"])
def test_the_server_refuses_a_remote_address_unless_allowed(tmp_path: Path, listen: str) -> None:
    code, _, err = conveyor(
        "server", "--source", str(tmp_path), "--listen", listen, "--data", str(tmp_path)
    )
    assert code == 2
    assert "not a loopback address" in err and "--allow-remote" in err


def test_the_server_refuses_an_empty_webhook_secret(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("\n")
    code, _, err = conveyor(
        "server",
        "--source",
        ".",
        "--data",
        str(tmp_path),
        "--webhook-secret-file",
        str(secret),
        env={"CONVEYOR_WEBHOOK_SECRET": None},
    )
    assert code == 1 and "the webhook secret is empty" in err


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:7780", "127.0.0.1", 7780, True),
        ("127.8.9.1:80", "127.8.9.1", 80, True),
        ("[::1]:7780", "::1", 7780, True),
        ("localhost:9000", "localhost", 9000, True),
        ("7781", "127.0.0.1", 7781, True),
        ("0.0.0.0:7780", "0.0.0.0", 7780, False),
        ("192.168.1.2:7780", "192.168.1.2", 7780, False),
        ("[::]:7780", "::", 7780, False),
        ("my.host:7780", "my.host", 7780, False),
    ],
)
def test_listen_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    where = parse_listen(text)
    assert (where.host, where.port, where.loopback) == (host, port, loopback)


@pytest.mark.parametrize(
    "text", ["", ":80", "127.0.0.1", "127.0.0.1:0", "h:99999", "::1:80", "[::1]80"]
)
def test_bad_listen_addresses_say_what_is_wrong(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(text))):
        parse_listen(text)


def test_print_systemd_unit_runs_the_same_command(tmp_path: Path) -> None:
    repo = tmp_path / "my repo"
    code, out, _ = conveyor(
        "server",
        "--source",
        str(repo),
        "--listen",
        "127.0.0.1:7790",
        "--data",
        str(tmp_path / "d"),
        "--print-systemd-unit",
    )
    assert code == 0
    lines = out.splitlines()
    (exec_start,) = [line for line in lines if line.startswith("ExecStart=")]
    assert " -m conveyor server --source " in exec_start
    assert f'"{repo}"' in exec_start  # a path with a space is quoted for systemd
    assert "--listen 127.0.0.1:7790" in exec_start and f"--data {tmp_path / 'd'}" in exec_start
    for line in (
        "Type=simple",
        "Restart=on-failure",
        "EnvironmentFile=-/etc/conveyor/server.env",
        "NoNewPrivileges=yes",
        "WantedBy=multi-user.target",
    ):
        assert line in lines
    assert not (tmp_path / "d").exists()  # printing opens nothing


def test_the_unit_reproduces_every_option_given(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    given = {
        "--source": "file:///srv/app.git",
        "--listen": "0.0.0.0:7791",
        "--data": str(tmp_path / "d"),
        "--webhook-secret-file": str(secret),
        "--allow-remote": None,
        "--executor": "shell",
        "--heal-interval": "2.5",
    }
    # every option of `conveyor server` but the one that prints the unit
    command = typer.main.get_command(app).commands["server"]  # type: ignore[attr-defined]
    command = getattr(command, "real", lambda: command)()  # a lazy command: the real one
    options = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
    assert options - {"--print-systemd-unit", "--help"} == set(given)
    argv = [word for k, v in given.items() for word in ((k,) if v is None else (k, v))]

    code, out, err = conveyor("server", *argv, "--print-systemd-unit")

    assert code == 0, err
    (exec_start,) = [line for line in out.splitlines() if line.startswith("ExecStart=")]
    words = exec_start.split()
    assert words[1:4] == ["-m", "conveyor", "server"]
    assert _pairs(words[4:]) == {k: v for k, v in given.items()}
    # the defaults are said too: the unit runs as printed, whatever a later version's are
    code, out, _ = conveyor("server", "--source", "/srv/app", "--print-systemd-unit")
    (exec_start,) = [line for line in out.splitlines() if line.startswith("ExecStart=")]
    assert "--executor docker --heal-interval 5" in exec_start


def _pairs(words: list[str]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for i, word in enumerate(words):
        if word.startswith("--"):
            following = words[i + 1] if i + 1 < len(words) else "--"
            out[word] = None if following.startswith("--") else following
    return out


def test_systemd_unit_quotes_what_systemd_would_expand() -> None:
    unit = systemd_unit(
        ["/usr/bin/python3", "-m", "conveyor", "server", "--source", "/srv/a%b$c"], Path("/srv")
    )
    assert "ExecStart=/usr/bin/python3 -m conveyor server --source /srv/a%%b$$c" in unit


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    argv = [
        shutil.which("python3") or "/usr/bin/python3",
        "-m",
        "conveyor",
        "server",
        "--source",
        str(tmp_path),
    ]
    unit = tmp_path / "conveyor-server.service"
    unit.write_text(systemd_unit(argv, tmp_path))
    r = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    problems = [line for line in r.stderr.splitlines() if "conveyor-server.service" in line]
    assert r.returncode == 0 and not problems, r.stderr
