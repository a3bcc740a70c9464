"""Real git servers on loopback for the source tests: `git daemon` (git://) and an sshd with a
deploy key (ssh://), each started here, recorded by PID and stopped by that PID; plus bare
repositories reached by path and file://, a work repository that commits and pushes, and
signing keys (SSH keys; a GnuPG home whose gpg-agent is stopped by its PID)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.testing.net import free_port

SSHD = "/usr/sbin/sshd"


@pytest.fixture(autouse=True)
def _no_machine_git_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the settings a test makes: the machine's git configuration stays out."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-global-gitconfig"))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")


def sh(*argv: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        argv,
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}): {done.stderr}")
    return done.stdout.strip()


@dataclass
class Work:
    """A work repository whose `origin` is the upstream bare repository."""

    path: Path
    env: dict[str, str] = field(default_factory=dict)

    def git(self, *args: str, env: dict[str, str] | None = None) -> str:
        return sh("git", *args, cwd=self.path, env={**self.env, **(env or {})})

    def commit(
        self,
        files: dict[str, str],
        message: str,
        *,
        sign: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """Write `files`, commit them (signed with the `-c` options in `sign`), return the sha."""
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
        self.git("add", "-A")
        options = [a for option in sign or [] for a in ("-c", option)]
        self.git(*options, "commit", "-q", *(["-S"] if sign else []), "-m", message, env=env)
        return self.git("rev-parse", "HEAD")

    def push(self, *refs: str) -> None:
        self.git("push", "-q", "origin", *(refs or ("HEAD",)))


@dataclass
class Upstream:
    bare: Path  # the repository the sources read
    work: Work
    first: str  # the first commit on main


@pytest.fixture
def upstream(tmp_path: Path) -> Upstream:
    """A bare repository with one commit on `main` (compose.yaml, conveyor.yaml)."""
    bare = tmp_path / "srv" / "shop.git"
    bare.parent.mkdir()
    sh("git", "init", "-q", "--bare", "-b", "main", str(bare))
    path = tmp_path / "work"
    sh("git", "clone", "-q", str(bare), str(path))
    work = Work(path)
    work.git("config", "user.name", "Dev One")
    work.git("config", "user.email", "dev@example.test")
    work.git("checkout", "-q", "-b", "main")
    first = work.commit(
        {
            "compose.yaml": "services:\n  web:\n    image: shop:1\n",
            "conveyor.yaml": "environments:\n  staging:\n    branch: main\n",
        },
        "First",
    )
    work.push("main")
    return Upstream(bare, work, first)


def _wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(300):
        if process.poll() is not None:
            raise AssertionError(f"server exited ({process.returncode}): {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on 127.0.0.1:{port}: {log.read_text()}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


@dataclass
class GitDaemon:
    port: int
    base: Path

    def url(self, repo: Path) -> str:
        return f"git://127.0.0.1:{self.port}/{repo.relative_to(self.base)}"


@pytest.fixture
def git_daemon(upstream: Upstream, tmp_path: Path) -> Iterator[GitDaemon]:
    """`git daemon` serving the upstream's directory on a free loopback port (read-only)."""
    base = upstream.bare.parent
    port = free_port()
    log = tmp_path / "git-daemon.log"
    process = subprocess.Popen(
        [
            "git",
            "daemon",
            "--export-all",
            "--reuseaddr",
            "--informative-errors",
            f"--base-path={base}",
            "--listen=127.0.0.1",
            f"--port={port}",
            str(base),
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process, log)
        yield GitDaemon(port, base)
    finally:
        _stop(process)


# Smart HTTP: `git http-backend` run as a CGI program per request, behind Basic auth (the
# credentials a token in an https:// URL becomes). Pushes are allowed to the authenticated user.
HTTP_BACKEND = r"""
import base64, subprocess, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

root, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

class Handler(BaseHTTPRequestHandler):
    def handle_one(self):
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="git"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        path, _, query = self.path.partition("?")
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        env = {
            "GIT_PROJECT_ROOT": root, "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path,
            "QUERY_STRING": query, "REQUEST_METHOD": self.command, "REMOTE_USER": user,
            "CONTENT_TYPE": self.headers.get("Content-Type", ""),
            "CONTENT_LENGTH": str(len(body)), "PATH": "/usr/bin:/bin",
            "HTTP_CONTENT_ENCODING": self.headers.get("Content-Encoding", ""),
            "GIT_PROTOCOL": self.headers.get("Git-Protocol", ""),
        }
        backend = ["git", "http-backend"]
        out = subprocess.run(backend, input=body, env=env, capture_output=True).stdout
        head, _, payload = out.partition(b"\r\n\r\n")
        status, headers = 200, []
        for line in head.decode().split("\r\n"):
            name, _, value = line.partition(": ")
            if name.lower() == "status":
                status = int(value.split()[0])
            elif name:
                headers.append((name, value))
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = handle_one

    def log_message(self, *args):
        pass

ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""


@dataclass
class HttpGitServer:
    port: int
    base: Path
    user: str
    token: str

    def url(self, repo: Path, *, credentials: bool = True) -> str:
        auth = f"{self.user}:{self.token}@" if credentials else ""
        return f"http://{auth}127.0.0.1:{self.port}/{repo.relative_to(self.base)}"


@pytest.fixture
def http_git(upstream: Upstream, tmp_path: Path) -> Iterator[HttpGitServer]:
    """A smart-HTTP git server on a free loopback port that wants a user and token."""
    base = upstream.bare.parent
    port = free_port()
    log = tmp_path / "http-git.log"
    server = HttpGitServer(port, base, "ci-bot", "glpat-test-token")
    process = subprocess.Popen(
        [sys.executable, "-c", HTTP_BACKEND, str(base), str(port), server.user, server.token],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        _wait_for_port(port, process, log)
        yield server
    finally:
        _stop(process)


@dataclass
class SshServer:
    port: int
    deploy_key: Path  # authorized
    stranger_key: Path  # not authorized
    known_hosts: Path  # holds this server's host key

    def url(self, repo: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{repo}"


def ssh_key(path: Path, comment: str) -> Path:
    sh("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))
    return path


@pytest.fixture
def sshd(tmp_path: Path) -> Iterator[SshServer]:
    """An sshd on a free loopback port with a generated host key, accepting one deploy key for
    root (the tests run as root), in the foreground so its PID is the one we stop."""
    if not os.path.exists(SSHD):
        pytest.skip("sshd is not installed (scripts/install-host.sh installs openssh-server)")
    if os.geteuid() != 0:
        pytest.skip("the sshd fixture logs in as root: run the tests as root")
    ssh_dir = tmp_path / "ssh"
    ssh_dir.mkdir()
    host_key = ssh_key(ssh_dir / "host_key", "host")
    deploy = ssh_key(ssh_dir / "deploy_key", "deploy")
    stranger = ssh_key(ssh_dir / "stranger_key", "stranger")
    (ssh_dir / "authorized_keys").write_text((ssh_dir / "deploy_key.pub").read_text())
    port = free_port()
    config = ssh_dir / "sshd_config"
    config.write_text(
        f"Port {port}\n"
        "ListenAddress 127.0.0.1\n"
        f"HostKey {host_key}\n"
        f"PidFile {ssh_dir / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {ssh_dir / 'authorized_keys'}\n"
        "PermitRootLogin prohibit-password\n"
        "PasswordAuthentication no\n"
        "KbdInteractiveAuthentication no\n"
        "StrictModes no\n"
        "UsePAM no\n"
    )
    known_hosts = ssh_dir / "known_hosts"
    public = (ssh_dir / "host_key.pub").read_text().split()
    known_hosts.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
    log = tmp_path / "sshd.log"
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)], stdout=log.open("wb"), stderr=subprocess.STDOUT
    )
    try:
        _wait_for_port(port, process, log)
        yield SshServer(port, deploy, stranger, known_hosts)
    finally:
        _stop(process)


@dataclass
class GpgSigner:
    home: Path  # holds the secret key; its gpg-agent runs while the fixture lives
    fingerprint: str
    trusted: Path  # another GnuPG home holding only the public key: what a server is given

    def sign_options(self) -> list[str]:
        return ["gpg.format=openpgp", f"user.signingKey={self.fingerprint}"]


@pytest.fixture
def gpg_signer() -> Iterator[GpgSigner]:
    """A GnuPG key for signing commits. gpg-agent daemonizes itself, so its PID is asked of
    the agent (`getinfo pid`) and that process is stopped at the end."""
    if shutil.which("gpg") is None or shutil.which("gpg-agent") is None:
        pytest.skip("gnupg is not installed (scripts/install-host.sh installs it)")
    # Short: the agent's socket lives in the home directory, and socket paths are limited.
    root = Path(tempfile.mkdtemp(prefix="cvg-", dir="/tmp"))
    home, trusted = root / "signer", root / "trusted"
    for directory in (home, trusted):
        directory.mkdir(mode=0o700)
    agent_pid: int | None = None
    try:
        # Not through a pipe: the daemon would hold it open and the call would never end.
        subprocess.run(
            ["gpg-agent", "--homedir", str(home), "--daemon", "--batch"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=60,
        )
        said = sh(
            "gpg-connect-agent", "--homedir", str(home), "--no-autostart", "getinfo pid", "/bye"
        )
        agent_pid = int(said.splitlines()[0].removeprefix("D ").strip())
        gpg = ["gpg", "--homedir", str(home), "--batch", "--no-autostart"]
        sh(
            *gpg,
            "--passphrase",
            "",
            "--pinentry-mode",
            "loopback",
            "--quick-gen-key",
            "Rel Eng <releng@example.test>",
            "ed25519",
            "sign",
            "never",
        )
        listing = sh(*gpg, "--with-colons", "--list-secret-keys")
        fingerprint = next(
            line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:")
        )
        exported = root / "public.gpg"
        sh(*gpg, "--output", str(exported), "--export", fingerprint)
        sh("gpg", "--homedir", str(trusted), "--batch", "--no-autostart", "--import", str(exported))
        yield GpgSigner(home, fingerprint, trusted)
    finally:
        if agent_pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(agent_pid, signal.SIGTERM)
        shutil.rmtree(root, ignore_errors=True)
