"""Which manifest digest an image registry serves for `repository:tag` (the OCI
distribution API: `HEAD /v2/<name>/manifests/<tag>`), so a release for Kubernetes names its
images by digest, as pushed. Anonymous or with a user and password; a registry that answers
401 with a Bearer challenge (Docker Hub, GitLab's) is asked for a token first, as docker
does. Registries on the loopback interface are spoken to over plain HTTP (docker's own rule
for them), every other over HTTPS."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import httpx

from conveyor.errors import RegistryError

TIMEOUT = 30.0  # seconds per request
DOCKER_HUB = "registry-1.docker.io"
# What a multi-platform image (an index) and a single one may be served as: the digest of
# whichever the registry has is what a node pulls.
ACCEPT = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
_CHALLENGE = re.compile(r'(\w+)="([^"]*)"')
_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class ImageName:
    """An image reference split as the registry API needs it."""

    registry: str  # host[:port] as written ("docker.io" for a name without one)
    repository: str  # library/postgres for `postgres`
    tag: str

    @property
    def base_url(self) -> str:
        host = DOCKER_HUB if self.registry == "docker.io" else self.registry
        scheme = "http" if host.split(":")[0] in _LOOPBACK or host.startswith("[::1]") else "https"
        return f"{scheme}://{host}"


def parse_image(ref: str) -> ImageName:
    """`[registry/]repository[:tag]` (no digest: it is what is asked for)."""
    if "@" in ref:
        raise RegistryError(f"{ref} names a digest already")
    first, slash, rest = ref.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        registry, path = first, rest
    else:
        registry, path = "docker.io", ref
    name, colon, tag = path.rpartition(":")
    if not colon or "/" in tag:
        name, tag = path, "latest"
    if registry == "docker.io" and "/" not in name:
        name = f"library/{name}"
    return ImageName(registry=registry, repository=name, tag=tag)


def manifest_digest(
    ref: str, credentials: tuple[str, str] | None = None, timeout: float = TIMEOUT
) -> str:
    """`sha256:…` of what the registry serves for image `ref`. Raises RegistryError naming
    the image when it cannot say (no such tag, refused, unreachable)."""
    image = parse_image(ref)
    url = f"{image.base_url}/v2/{image.repository}/manifests/{image.tag}"
    auth: httpx.Auth | httpx._client.UseClientDefault = (
        httpx.BasicAuth(*credentials) if credentials is not None else httpx.USE_CLIENT_DEFAULT
    )
    headers = {"Accept": ACCEPT}
    try:
        with httpx.Client(timeout=timeout) as client:
            answer = client.head(url, headers=headers, auth=auth)
            if answer.status_code == 401:
                token = _token(client, answer, credentials)
                if token is not None:
                    headers["Authorization"] = f"Bearer {token}"
                    answer = client.head(url, headers=headers)
            digest = answer.headers.get("Docker-Content-Digest")
            if answer.status_code == 200 and not digest:
                # Not every registry sends the header: the digest is the body's own.
                body = client.get(url, headers=headers)
                if body.status_code == 200:
                    digest = "sha256:" + hashlib.sha256(body.content).hexdigest()
    except httpx.HTTPError as e:
        raise RegistryError(f"cannot ask {image.base_url} for {ref}: {e}") from None
    if answer.status_code == 404:
        raise RegistryError(
            f"{ref}: the registry has no such image (is it pushed by the pipeline?)"
        )
    if answer.status_code != 200 or not digest:
        raise RegistryError(f"{ref}: the registry answered {answer.status_code}")
    return str(digest)


def _token(
    client: httpx.Client, answer: httpx.Response, credentials: tuple[str, str] | None
) -> str | None:
    challenge = answer.headers.get("WWW-Authenticate", "")
    if not challenge.lower().startswith("bearer "):
        return None
    params = dict(_CHALLENGE.findall(challenge))
    realm = params.pop("realm", None)
    if realm is None:
        return None
    got = client.get(
        realm, params=params, auth=httpx.BasicAuth(*credentials) if credentials else None
    )
    if got.status_code != 200:
        raise RegistryError(f"{realm} refused a token ({got.status_code})")
    data = got.json()
    token = data.get("token") or data.get("access_token")
    return str(token) if token else None
