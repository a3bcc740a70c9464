"""The image registry: Docker Distribution (Debian's `docker-registry`) as a supervised process.

Conveyor writes the registry's `config.yml` (filesystem storage under the state directory,
deletes enabled so old images can be garbage-collected, loopback only, htpasswd auth), and runs
`docker-registry serve` as a supervised daemon (`conveyor.host.process`): detached in its own
session with a log file and a PID file, stopped by that PID. State survives restarts: the same
directory gives the same images and credentials.

The credentials are generated once and kept in `credentials.json` (mode 0600). Docker
Distribution only accepts bcrypt entries in its htpasswd file. Plain HTTP is enough: the Docker
Engine treats registries on 127.0.0.0/8 as insecure-allowed, so `docker push 127.0.0.1:PORT/...`
works without TLS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import tempfile
from pathlib import Path

import bcrypt
import requests
import yaml

from conveyor.errors import RegistryError
from conveyor.host.command import host_errors_as
from conveyor.host.process import Daemon, DaemonSpec

PROGRAM = "docker-registry"
REALM = "conveyor"
USER = "conveyor"
# What `docker push` uploads for one image, and what its RepoDigests name.
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
)


class Registry:
    def __init__(self, state_dir: Path, port: int = 5000, *, binary: str = PROGRAM) -> None:
        self.state_dir = state_dir
        self.port = port
        self.binary = binary
        self.config_path = state_dir / "config.yml"
        self.htpasswd_path = state_dir / "htpasswd"
        self.credentials_path = state_dir / "credentials.json"
        self.pid_path = state_dir / "registry.pid"
        self.log_path = state_dir / "registry.log"
        self.data_dir = state_dir / "data"
        self._daemon = Daemon(
            DaemonSpec(
                name=binary,
                argv=(binary, "serve", str(self.config_path)),
                pid_file=self.pid_path,
                log_file=self.log_path,
                ready=self.ready,
                readiness=f"answering with Conveyor's credentials at http://{self.url}/v2/",
                # A PID file can outlive its process and the number be reused.
                markers=(str(self.config_path),),
                install_hint="Debian: apt-get install docker-registry",
                poll_interval=0.1,
            )
        )

    @property
    def url(self) -> str:
        """Host and port, as image references spell them: `127.0.0.1:5000/team/app:tag`."""
        return f"127.0.0.1:{self.port}"

    # --- files ----------------------------------------------------------------------------

    def credentials(self) -> tuple[str, str]:
        """(user, password), generated on first use and kept in the state directory."""
        stored = self._stored()
        return stored["user"], stored["password"]

    def _stored(self) -> dict[str, str]:
        if self.credentials_path.exists():
            try:
                data = json.loads(self.credentials_path.read_text())
            except (OSError, ValueError) as e:
                # Regenerating would silently lock out every client already logged in.
                raise RegistryError(f"{self.credentials_path}: unreadable: {e}") from e
            if isinstance(data, dict) and {"user", "password", "http_secret"} <= data.keys():
                return {k: str(v) for k, v in data.items()}
        fresh = {
            "user": USER,
            "password": secrets.token_urlsafe(24),
            # Signs upload state between requests; stable so an upload survives a restart.
            "http_secret": secrets.token_hex(32),
        }
        _write_private(self.credentials_path, json.dumps(fresh, indent=1) + "\n")
        return fresh

    def write_config(self) -> bool:
        """Write config.yml and htpasswd; True when either changed (a running registry then
        needs a restart to see it)."""
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.data_dir.mkdir(exist_ok=True)
        stored = self._stored()
        changed = False
        if not self._htpasswd_matches(stored["user"], stored["password"]):
            digest = bcrypt.hashpw(stored["password"].encode(), bcrypt.gensalt(rounds=10))
            _write_private(self.htpasswd_path, f"{stored['user']}:{digest.decode()}\n")
            changed = True
        config = {
            "version": 0.1,
            "log": {"level": "info", "formatter": "text"},
            "storage": {
                "filesystem": {"rootdirectory": str(self.data_dir)},
                "delete": {"enabled": True},
            },
            "http": {
                "addr": self.url,
                "secret": stored["http_secret"],
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
            "auth": {"htpasswd": {"realm": REALM, "path": str(self.htpasswd_path)}},
        }
        text = yaml.safe_dump(config, sort_keys=False)
        if not self.config_path.exists() or self.config_path.read_text() != text:
            _write_private(self.config_path, text)
            changed = True
        return changed

    def _htpasswd_matches(self, user: str, password: str) -> bool:
        try:
            name, _, digest = self.htpasswd_path.read_text().strip().partition(":")
        except FileNotFoundError:
            return False
        return name == user and bcrypt.checkpw(password.encode(), digest.encode())

    # --- probes ---------------------------------------------------------------------------

    def _get(
        self,
        path: str,
        *,
        auth: bool,
        timeout: float = 2.0,
        headers: dict[str, str] | None = None,
    ) -> requests.Response | None:
        session = requests.Session()
        session.trust_env = False  # a proxy from the environment must not see loopback traffic
        try:
            return session.get(
                f"http://{self.url}{path}",
                auth=self.credentials() if auth else None,
                timeout=timeout,
                headers=headers,
            )
        except requests.RequestException:
            return None
        finally:
            session.close()

    def ready(self) -> bool:
        """Whether /v2/ answers 200 to Conveyor's credentials."""
        response = self._get("/v2/", auth=True)
        return response is not None and response.status_code == 200

    def catalog(self) -> list[str]:
        """Repository names the registry holds."""
        response = self._get("/v2/_catalog", auth=True, timeout=10.0)
        if response is None or response.status_code != 200:
            raise RegistryError(f"{self.url}: catalog unavailable")
        repositories = response.json().get("repositories") or []
        return [str(r) for r in repositories]

    def manifest_digest(self, repository: str, tag: str) -> str | None:
        """The digest of `repository:tag` as the registry serves it (what `docker push` puts
        in the image's RepoDigests); None when it holds no such tag or does not answer."""
        response = self._get(
            f"/v2/{repository}/manifests/{tag}",
            auth=True,
            headers={"Accept": ", ".join(MANIFEST_TYPES)},
        )
        if response is None or response.status_code != 200:
            return None
        return response.headers.get("Docker-Content-Digest") or None

    def pid(self) -> int | None:
        """The PID in the PID file, whether or not that process still runs."""
        return self._daemon.recorded_pid()

    def running(self) -> bool:
        """Whether the process in the PID file is alive and is this registry."""
        return self._daemon.running()

    # --- lifecycle ------------------------------------------------------------------------

    def ensure(self, timeout: float = 30.0) -> None:
        """Make the registry answer with Conveyor's credentials, starting it if needed (and
        restarting the one this state directory runs when its configuration changed)."""
        if self.write_config() and self.running():
            self.stop()
        if self.ready():
            return
        if not self.running():
            answer = self._get("/v2/", auth=False)
            if answer is not None:
                raise RegistryError(
                    f"{self.url} answers (HTTP {answer.status_code}) but refuses Conveyor's "
                    f"credentials: another service holds port {self.port}"
                )
        with host_errors_as(RegistryError):
            self._daemon.ensure(timeout)

    def stop(self, timeout: float = 10.0) -> bool:
        """Stop the registry this state directory started (by PID); True if one was running."""
        return self._daemon.stop(grace=timeout)


def _write_private(path: Path, text: str) -> None:
    """Atomic write readable by the owner only (credentials, hashes, the HTTP secret)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
