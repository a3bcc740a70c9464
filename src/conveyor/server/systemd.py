"""The systemd unit `conveyor server --print-systemd-unit` prints: the server in the
foreground (Type=simple) with the same flags, restarted on failure, its webhook secret from an
EnvironmentFile (never on the command line, which every user can read), and the hardening
options that leave it able to drive Docker and HAProxy."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

ENVIRONMENT_FILE = Path("/etc/conveyor/server.env")


def systemd_unit(
    argv: Sequence[str], working_dir: Path, environment_file: Path = ENVIRONMENT_FILE
) -> str:
    """The unit file's text; `argv` is the full command (program first), `working_dir` where
    relative paths in it resolve."""
    exec_start = " ".join(_quote(a) for a in argv)
    return f"""\
# conveyor server as a systemd service (rendered by `conveyor server --print-systemd-unit`).
# Install: save as /etc/systemd/system/conveyor-server.service; put the webhook secret in
# {environment_file} as CONVEYOR_WEBHOOK_SECRET=... (owner root, mode 0600); then
#   systemctl daemon-reload && systemctl enable --now conveyor-server
[Unit]
Description=Conveyor server: git is the source of truth for Compose apps
After=network-online.target docker.service
Wants=network-online.target docker.service

[Service]
Type=simple
ExecStart={exec_start}
WorkingDirectory={_quote(str(working_dir))}
# "-": a server given --webhook-secret-file (or no webhooks) needs no such file
EnvironmentFile=-{environment_file}
Restart=on-failure
RestartSec=5s
# SIGTERM stops the server cleanly (exit 0). Only the server: the HAProxy it started keeps
# serving the environments while it restarts (containers belong to dockerd anyway).
KillMode=process
TimeoutStopSec=30s
UMask=0077
NoNewPrivileges=yes
ProtectSystem=full
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
RestrictSUIDSGID=yes
RestrictRealtime=yes
LockPersonality=yes
SystemCallArchitectures=native
# Not set, on purpose: PrivateTmp (HAProxy's admin sockets live under /tmp for the CLI too),
# RestrictNamespaces (HAProxy binds service addresses inside network namespaces),
# ProtectHome (the data directory and the projects may live under /home).

[Install]
WantedBy=multi-user.target
"""


def _quote(arg: str) -> str:
    """One ExecStart word as systemd reads it: `%` and `$` doubled (specifiers, variables),
    double-quoted when it holds whitespace or quotes."""
    text = arg.replace("%", "%%").replace("$", "$$")
    if not text or any(c.isspace() or c in "\"'\\;" for c in text):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return text
