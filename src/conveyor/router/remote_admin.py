"""An HAProxy's admin socket used on its own host, by python3 snippets in the shell scripts the
fleet's router runs there over SSH (host.ssh_command): python3 because it is on every host
Ansible manages (socat may not be). Two uses (docs/fleet.md, "The edge" and "Wiring"):

- **saving its server state right before a reload** (`keep_state_function`): `show servers
  state` into the `server-state-file` its configuration names, so the new worker's servers
  keep their checks' verdicts — the edge hosts' script (router.fleet_edge) and the app hosts'
  (router.fleet_host), as router.haproxy's `save_server_state` does on this machine;
- **waiting until an edge serves** (`edge_serves_script`): after a server is put in rotation,
  until each named backend of the edge host's HAProxy has a server up, polled on the host
  itself (one SSH connection for the whole wait, none per poll), as `LocalEdge.serving` is
  polled on this machine.

The scripts are pure text; tests run them in a scratch directory against a stand-in socket.
"""

from __future__ import annotations

import shlex
from collections.abc import Collection

# `show servers state` of the HAProxy on argv[1] into argv[2] (atomically); exit 1 when it
# does not answer with a state (version line "1").
SAVE_STATE = """import os, socket, sys
sock = socket.socket(socket.AF_UNIX)
sock.settimeout(5)
sock.connect(sys.argv[1])
sock.sendall(b"show servers state\\n")
sock.shutdown(socket.SHUT_WR)
data = b""
while chunk := sock.recv(65536):
    data += chunk
if not data.startswith(b"1\\n"):
    sys.exit(1)
with open(sys.argv[2] + ".tmp", "wb") as out:
    out.write(data)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
"""

# Until every backend named in argv[3:] has a real server whose `show stat` status is UP
# (`UP`, `UP 1/2`: a host going down still serves) on the HAProxy at argv[1], at most argv[2]
# seconds, every 50 ms; prints `serving`, `waiting` (the time ran out) or `silent` (the socket
# does not answer: nothing to wait for). LocalEdge.serving reads the same columns.
EDGE_SERVES = """import socket, sys, time
path, within, backends = sys.argv[1], float(sys.argv[2]), set(sys.argv[3:])
deadline = time.monotonic() + within
def up():
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(3)
    sock.connect(path)
    sock.sendall(b"show stat\\n")
    sock.shutdown(socket.SHUT_WR)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    lines = data.decode(errors="replace").splitlines()
    if not lines or not lines[0].startswith("# "):
        raise OSError("no stat")
    names = lines[0][2:].split(",")
    found = set()
    for line in lines[1:]:
        row = dict(zip(names, line.split(",")))
        proxy, server = row.get("pxname", ""), row.get("svname", "")
        real = server not in ("FRONTEND", "BACKEND")
        if proxy in backends and real and row.get("status", "").startswith("UP"):
            found.add(proxy)
    return found
while True:
    try:
        if backends <= up():
            print("serving")
            break
    except OSError:
        print("silent")
        break
    if time.monotonic() >= deadline:
        print("waiting")
        break
    time.sleep(0.05)
"""


def keep_state_function(admin_socket: str, state_file: str) -> str:
    """A shell function `keep_state` for a script that reloads the HAProxy answering on
    `admin_socket`: its `show servers state` into `state_file`, or that file removed when it
    does not answer (a state from an older life is not loaded)."""
    state = shlex.quote(state_file)
    return (
        "keep_state() {\n"
        f"  python3 -c {shlex.quote(SAVE_STATE)} {shlex.quote(admin_socket)} {state} "
        f"2>/dev/null || rm -f {state}\n"
        "}\n"
    )


def edge_serves_command(admin_socket: str) -> str:
    """The command that waits for the HAProxy on `admin_socket`, to be followed by WITHIN
    (seconds) and the backends' names: the inline script's and the edge hosts' installed
    program's (router.fleet_edge.edge_programs)."""
    return f"python3 -c {shlex.quote(EDGE_SERVES)} {shlex.quote(admin_socket)}"


def serves_arguments(backends: Collection[str], within: float) -> str:
    """WITHIN and the backends' names, quoted for the shell, in a fixed order."""
    return " ".join([f"{within:g}", *(shlex.quote(b) for b in sorted(backends))])


def edge_serves_script(admin_socket: str, backends: Collection[str], within: float) -> str:
    """A shell script that waits until the HAProxy on `admin_socket` has a server up in each
    of `backends` (at most `within` seconds) and prints `serving`, `waiting` or `silent`."""
    return f"{edge_serves_command(admin_socket)} {serves_arguments(backends, within)}\n"
