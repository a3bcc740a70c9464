"""`conveyor server` (the GitOps server in the foreground) and `conveyor token` (its API
tokens). Both work on the server's data directory: `--data DIR`, else CONVEYOR_SERVER_DATA,
else `.conveyor-server/` in the current directory."""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from conveyor.app.access import DEFAULT_DATA_DIR, create_token, list_tokens, open_server_db
from conveyor.app.access import revoke_token as revoke
from conveyor.cli.output import console, err, esc, print_json
from conveyor.errors import ServerError
from conveyor.model.access import Role

SECRET_ENV = "CONVEYOR_WEBHOOK_SECRET"  # noqa: S105 — the variable's name, not a secret

DataOpt = Annotated[
    Path,
    typer.Option(
        "--data",
        envvar="CONVEYOR_SERVER_DATA",
        help="The server's data directory (database of tokens, audit, webhook deliveries).",
    ),
]

token_app = typer.Typer(
    help=(
        "API tokens of `conveyor server` (roles: viewer reads, deployer acts, admin manages "
        "tokens).\n\n"
        "  TOKEN=$(conveyor token create --role deployer --name ci)\n\n"
        "  conveyor token list / conveyor token revoke ci"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


@token_app.command("create")
def token_create(
    role: Annotated[Role, typer.Option("--role", help="viewer, deployer or admin.")],
    name: Annotated[
        str | None, typer.Option("--name", help="Default: <role>-<n>.", show_default=False)
    ] = None,
    data: DataOpt = DEFAULT_DATA_DIR,
) -> None:
    """Create a token and print it once, alone on the last line of stdout (only its hash is
    kept)."""
    sdb = open_server_db(data)
    try:
        made = create_token(sdb, role, name)
    finally:
        sdb.close()
    err.print(
        f"token [bold]{esc(made.name)}[/] ({made.role}) created; it is not shown again:",
        highlight=False,
    )
    sys.stdout.write(made.token + "\n")
    sys.stdout.flush()


@token_app.command("list")
def token_list(
    data: DataOpt = DEFAULT_DATA_DIR,
    include_revoked: Annotated[bool, typer.Option("--all", help="Also revoked tokens.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Tokens by name and role, with when they were created and last used (never the token)."""
    sdb = open_server_db(data)
    try:
        tokens = list_tokens(sdb, include_revoked)
    finally:
        sdb.close()
    if as_json:
        print_json(tokens.model_dump(mode="json"))
        return
    t = Table(title="API tokens", title_justify="left")
    for col in ("name", "role", "created", "last used", "revoked"):
        t.add_column(col)
    for tok in tokens.tokens:
        t.add_row(
            esc(tok.name),
            tok.role,
            _when(tok.created_at),
            _when(tok.last_used_at),
            _when(tok.revoked_at),
        )
    console.print(t)


@token_app.command("revoke")
def token_revoke(
    name: Annotated[str, typer.Argument(help="The token's name (`conveyor token list`).")],
    data: DataOpt = DEFAULT_DATA_DIR,
) -> None:
    """Revoke a token: the server answers 401 to it from the next request on."""
    sdb = open_server_db(data)
    try:
        tok = revoke(sdb, name)
    finally:
        sdb.close()
    err.print(f"token [bold]{esc(tok.name)}[/] ({tok.role}) revoked", highlight=False)


def _when(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def server(
    source: Annotated[
        str,
        typer.Option(
            "--source",
            help="The application's repository: a path, file://, git://, ssh:// or https:// URL.",
        ),
    ],
    listen: Annotated[
        str, typer.Option("--listen", help="HOST:PORT to serve the API and webhooks on.")
    ] = "127.0.0.1:7780",
    data: DataOpt = DEFAULT_DATA_DIR,
    webhook_secret_file: Annotated[
        Path | None,
        typer.Option(
            "--webhook-secret-file",
            help=f"File holding the webhook secret (when {SECRET_ENV} is not set).",
            show_default=False,
        ),
    ] = None,
    allow_remote: Annotated[
        bool,
        typer.Option(
            "--allow-remote",
            help="Allow a --listen address other than loopback (use TLS in front).",
        ),
    ] = False,
    print_systemd_unit: Annotated[
        bool,
        typer.Option(
            "--print-systemd-unit", help="Print a systemd unit running this command, and exit."
        ),
    ] = False,
    executor: Annotated[
        str,
        typer.Option(
            "--executor",
            help="How pipeline jobs run: docker (each job in its image) or shell (on this host).",
        ),
    ] = "docker",
    heal_interval: Annotated[
        float,
        typer.Option(
            "--heal-interval",
            min=0.1,
            help="Seconds between heal passes that look for drift; a Docker event of an "
            "environment's container makes one at once.",
        ),
    ] = 5.0,
) -> None:
    """Run the GitOps server in the foreground: its HTTP API and webhooks (Ctrl-C stops it).

    It fetches the repository, reads conveyor.yaml at the head of its default branch and
    brings each environment to its branch's newest commit: pipeline (.gitlab-ci.yml, if any),
    then a rollout as project NAME-ENVIRONMENT. Promotion, rollback into git and drift
    reports are not done yet (docs/server.md).

    It is the one writer of those projects: local commands changing them are refused (exit 2).

    Local rollback and status on them go through its API; --force acts anyway (docs/server.md)."""
    if executor not in ("docker", "shell"):
        raise typer.BadParameter("docker or shell", param_hint="--executor")
    from conveyor.server.listen import parse_listen

    try:
        where = parse_listen(listen)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--listen") from e
    if not where.loopback and not allow_remote:
        raise typer.BadParameter(
            f"{where.host} is not a loopback address: the API would be reachable from other "
            "hosts; pass --allow-remote to mean it (and put TLS in front)",
            param_hint="--listen",
        )
    data_dir = data.resolve()
    if print_systemd_unit:
        _print_unit(
            source,
            listen,
            data_dir,
            webhook_secret_file,
            allow_remote=allow_remote,
            executor=executor,
            heal_interval=heal_interval,
        )
        return
    secret = _webhook_secret(webhook_secret_file)
    if secret is None:
        err.print(
            f"[yellow]webhooks are off[/]: set {SECRET_ENV} or pass --webhook-secret-file",
            highlight=False,
        )
    from conveyor.cli.logging import configure_logging
    from conveyor.server.run import ServerOptions, run_server

    configure_logging(json_lines=not err.is_terminal)
    run_server(
        ServerOptions(
            source=source,
            listen=where,
            data_dir=data_dir,
            hook_secret=secret,
            executor=executor,
            heal_interval=heal_interval,
        )
    )


def _webhook_secret(file: Path | None) -> str | None:
    """CONVEYOR_WEBHOOK_SECRET, else the file's content (trailing newline dropped), else
    None. An empty secret is refused: anyone could sign with it."""
    value = os.environ.get(SECRET_ENV)
    origin = SECRET_ENV
    if value is None and file is not None:
        try:
            value = file.read_text().rstrip("\r\n")
        except OSError as e:
            raise ServerError(f"{file}: cannot read the webhook secret ({e.strerror})") from e
        origin = str(file)
    if value is None:
        return None
    if not value.strip():
        raise ServerError(f"{origin}: the webhook secret is empty")
    return value


def _print_unit(
    source: str,
    listen: str,
    data_dir: Path,
    secret_file: Path | None,
    *,
    allow_remote: bool,
    executor: str,
    heal_interval: float,
) -> None:
    """The unit runs the server as this command would: every option given reproduced (paths
    made absolute), but --print-systemd-unit. A new option of `server` belongs here too
    (tests/unit/server/test_cli.py gives every one and looks for it)."""
    from conveyor.server.systemd import systemd_unit

    argv = [sys.executable, "-m", "conveyor", "server", "--source", _absolute(source)]
    argv += ["--listen", listen, "--data", str(data_dir)]
    if secret_file is not None:
        argv += ["--webhook-secret-file", str(secret_file.resolve())]
    if allow_remote:
        argv.append("--allow-remote")
    argv += ["--executor", executor, "--heal-interval", f"{heal_interval:g}"]
    sys.stdout.write(systemd_unit(argv, Path.cwd()))


def _absolute(source: str) -> str:
    """A path source made absolute (a service's working directory differs); URLs and
    scp-like `user@host:path` as given."""
    if "://" in source or re.match(r"[\w.-]+@[\w.-]+:", source):
        return source
    return str(Path(source).resolve())
