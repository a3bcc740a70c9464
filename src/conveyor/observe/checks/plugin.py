"""Conveyor's Nagios plugin, and the notification command that hands Nagios's notifications
to Conveyor. Standard library only: Nagios runs this file with the system's Python as its own
user (`nagios`), outside Conveyor's virtualenv (it is copied next to Nagios's files).

    conveyor_check.py haproxy --port STATS_PORT --backend be_web   an HAProxy backend's servers
    conveyor_check.py docker --socket /var/run/docker.sock         the Docker daemon answers
    conveyor_check.py memory --warning 10 --critical 5             % of memory available
    conveyor_check.py notify --spool DIR --type PROBLEM ...        one notification, as JSON

A check prints one line (`STATE - what | perfdata`) and exits with Nagios's plugin codes: 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN. The verdicts are pure functions of what was read, tested
without a server. `notify` writes one JSON file per notification into the spool directory
(written under a temporary name, then renamed: a reader never sees half of one).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
STATES = ("OK", "WARNING", "CRITICAL", "UNKNOWN")

Verdict = tuple[int, str]


def line(code: int, label: str, text: str, perf: str = "") -> Verdict:
    out = f"{label} {STATES[code]} - {text}"
    return code, f"{out} | {perf}" if perf else out


# ---- HAProxy ---------------------------------------------------------------------------------


def haproxy_verdict(stats_csv: str, backend: str) -> Verdict:
    """An HAProxy backend from its stats CSV (`/stats;csv`): CRITICAL when no server is up
    to take new requests (the backend answers 503), WARNING when some are down, OK otherwise.
    Servers held out on purpose (maint, drain: a rollout retiring a replica) are not problems,
    but are not up either."""
    text = stats_csv.lstrip("# ")
    rows = list(csv.DictReader(io.StringIO(text)))
    mine = [r for r in rows if r.get("pxname") == backend]
    if not mine:
        return line(CRITICAL, "HAPROXY", f"no backend {backend} in HAProxy's statistics")
    servers = [r for r in mine if r.get("svname") not in ("BACKEND", "FRONTEND")]
    up = [r for r in servers if (r.get("status") or "").startswith(("UP", "no check"))]
    held = [r for r in servers if (r.get("status") or "").startswith(("MAINT", "DRAIN", "NOLB"))]
    down = [r for r in servers if r not in up and r not in held]
    perf = f"up={len(up)};;;0;{len(servers)} down={len(down)};;;0;{len(servers)}"
    if not up:
        names = ", ".join(r["svname"] for r in down) or "none"
        what = f"{backend}: no server up ({len(servers)} servers; down: {names})"
        return line(CRITICAL, "HAPROXY", what, perf)
    if down:
        names = ", ".join(r["svname"] for r in down)
        what = f"{backend}: {len(up)}/{len(servers)} servers up; down: {names}"
        return line(WARNING, "HAPROXY", what, perf)
    return line(OK, "HAPROXY", f"{backend}: {len(up)}/{len(servers)} servers up", perf)


def check_haproxy(port: int, backend: str, timeout: float) -> Verdict:
    url = f"http://127.0.0.1:{port}/stats;csv"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            body = answer.read().decode("utf-8", "replace")
    except (OSError, urllib.error.URLError) as e:
        return line(CRITICAL, "HAPROXY", f"statistics at {url} do not answer: {e}")
    return haproxy_verdict(body, backend)


# ---- Docker ----------------------------------------------------------------------------------


def docker_verdict(answer: bytes | None, error: str | None, socket_path: str) -> Verdict:
    """The Docker daemon from its answer to `GET /_ping` (or the error reaching it)."""
    if error is not None:
        if "Permission denied" in error:
            return line(
                UNKNOWN,
                "DOCKER",
                f"this user cannot open {socket_path} ({error}); add the nagios user to the "
                "docker group (scripts/install-host.sh does) to check the daemon",
            )
        return line(CRITICAL, "DOCKER", f"the daemon does not answer at {socket_path}: {error}")
    head, _, body = (answer or b"").partition(b"\r\n\r\n")
    status = head.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = status.split()
    if len(parts) < 2 or parts[1] != "200" or body.strip() != b"OK":
        shown = status or "nothing"
        return line(CRITICAL, "DOCKER", f"/_ping answered {shown!r} at {socket_path}")
    version = ""
    for header in head.split(b"\r\n")[1:]:
        key, _, value = header.decode("latin-1", "replace").partition(":")
        if key.strip().lower() == "api-version":
            version = f" (API {value.strip()})"
    return line(OK, "DOCKER", f"the daemon answers at {socket_path}{version}")


def check_docker(socket_path: str, timeout: float) -> Verdict:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(socket_path)
            s.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            chunks = []
            while chunk := s.recv(65536):
                chunks.append(chunk)
    except OSError as e:
        return docker_verdict(None, e.strerror or str(e), socket_path)
    return docker_verdict(b"".join(chunks), None, socket_path)


# ---- memory ----------------------------------------------------------------------------------


def memory_verdict(meminfo: str, warning: float, critical: float) -> Verdict:
    """Available memory (MemAvailable, as the kernel estimates it) as % of MemTotal."""
    values: dict[str, int] = {}
    for row in meminfo.splitlines():
        key, _, rest = row.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            values[key.strip()] = int(fields[0])
    total, available = values.get("MemTotal"), values.get("MemAvailable")
    if not total or available is None:
        return line(UNKNOWN, "MEMORY", "/proc/meminfo has no MemTotal or MemAvailable")
    pct = 100.0 * available / total
    code = CRITICAL if pct <= critical else WARNING if pct <= warning else OK
    mib = available // 1024
    perf = f"available={pct:.1f}%;{warning:g};{critical:g};0;100"
    return line(code, "MEMORY", f"{pct:.1f}% available ({mib} MiB of {total // 1024} MiB)", perf)


def check_memory(warning: float, critical: float) -> Verdict:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            return memory_verdict(f.read(), warning, critical)
    except OSError as e:
        return line(UNKNOWN, "MEMORY", f"cannot read /proc/meminfo: {e}")


# ---- notifications ---------------------------------------------------------------------------


def notification_record(args: argparse.Namespace) -> dict[str, object]:
    """What one notification command call says, as the spool keeps it."""

    def text(value: str | None) -> str | None:
        # A custom variable the object lacks, or an empty macro, says nothing.
        return value if value and value != "-" and not value.startswith("$") else None

    def number(value: str | None) -> int | None:
        return int(value) if value and value.isdigit() else None

    return {
        "type": args.type,
        "host": args.host,
        "check": text(args.check),
        "service": text(args.service),
        "kind": text(args.kind),
        "state": args.state,
        "output": args.output or "",
        "ts": float(args.time) if args.time and args.time.isdigit() else time.time(),
        "downtime": number(args.downtime) or 0,
        "attempt": number(args.attempt),
        "written": time.time(),  # $TIMET$ has whole seconds; this, when it reached the spool
    }


def write_notification(spool: str, record: dict[str, object]) -> str:
    name = f"{time.time_ns()}-{os.getpid()}.json"
    tmp = os.path.join(spool, f".{name}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f)
    final = os.path.join(spool, name)
    os.replace(tmp, final)
    return final


# ---- the command -----------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="conveyor_check.py", description=__doc__)
    sub = p.add_subparsers(dest="what", required=True)
    h = sub.add_parser("haproxy")
    h.add_argument("--port", type=int, required=True)
    h.add_argument("--backend", required=True)
    h.add_argument("--timeout", type=float, default=5.0)
    d = sub.add_parser("docker")
    d.add_argument("--socket", default="/var/run/docker.sock")
    d.add_argument("--timeout", type=float, default=5.0)
    m = sub.add_parser("memory")
    m.add_argument("--warning", type=float, default=10.0)
    m.add_argument("--critical", type=float, default=5.0)
    n = sub.add_parser("notify")
    n.add_argument("--spool", required=True)
    for key in ("type", "host", "state"):
        n.add_argument(f"--{key}", required=True)
    for key in ("check", "output", "time", "downtime", "attempt", "service", "kind"):
        n.add_argument(f"--{key}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit:
        print("UNKNOWN - bad arguments (see --help)")
        return UNKNOWN
    if args.what == "notify":
        try:
            write_notification(args.spool, notification_record(args))
        except OSError as e:
            print(f"cannot write to the spool {args.spool}: {e}", file=sys.stderr)
            return 1
        return 0
    if args.what == "haproxy":
        code, out = check_haproxy(args.port, args.backend, args.timeout)
    elif args.what == "docker":
        code, out = check_docker(args.socket, args.timeout)
    else:
        code, out = check_memory(args.warning, args.critical)
    print(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
