"""The digest a registry serves for an image, asked over the distribution API of a fake
registry on 127.0.0.1 (a header, a Bearer-token challenge, a registry that sends no digest
header, a missing tag)."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import pytest

from conveyor.errors import RegistryError
from conveyor.host.registry_api import manifest_digest, parse_image

MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}
).encode()
DIGEST = "sha256:" + hashlib.sha256(MANIFEST).hexdigest()


class Registry(BaseHTTPRequestHandler):
    token_asks: ClassVar[list[dict[str, list[str]]]] = []

    def _answer(
        self, status: int, body: bytes = b"", headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _serve(self) -> None:
        url = urlsplit(self.path)
        port = self.server.server_address[1]
        if url.path == "/token":
            self.token_asks.append(parse_qs(url.query))
            expected = "Basic " + base64.b64encode(b"ci:secret").decode()
            if self.headers.get("Authorization") != expected:
                self._answer(401)
                return
            self._answer(200, json.dumps({"token": "t0k"}).encode())
        elif url.path == "/v2/shop/web/manifests/v1":
            self._answer(200, MANIFEST, {"Docker-Content-Digest": DIGEST})
        elif url.path == "/v2/private/app/manifests/v1":
            if self.headers.get("Authorization") != "Bearer t0k":
                challenge = (
                    f'Bearer realm="http://127.0.0.1:{port}/token",service="fake",'
                    'scope="repository:private/app:pull"'
                )
                self._answer(401, b"", {"WWW-Authenticate": challenge})
                return
            self._answer(200, MANIFEST)  # no Docker-Content-Digest: the body is hashed
        else:
            self._answer(404)

    def do_HEAD(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def registry() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Registry)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_the_digest_header_is_what_is_pulled(registry: str) -> None:
    assert manifest_digest(f"{registry}/shop/web:v1") == DIGEST


def test_a_bearer_challenge_is_answered_with_a_token_then_the_body_is_hashed(
    registry: str,
) -> None:
    assert manifest_digest(f"{registry}/private/app:v1", ("ci", "secret")) == DIGEST
    asked = Registry.token_asks[-1]
    assert asked["scope"] == ["repository:private/app:pull"]
    assert asked["service"] == ["fake"]


def test_a_refused_token_or_a_missing_tag_names_the_image(registry: str) -> None:
    with pytest.raises(RegistryError, match="refused a token"):
        manifest_digest(f"{registry}/private/app:v1", ("ci", "wrong"))
    with pytest.raises(RegistryError, match=r"shop/web:v9: the registry has no such image"):
        manifest_digest(f"{registry}/shop/web:v9")


def test_image_names_are_split_as_docker_does() -> None:
    hub = parse_image("postgres")
    assert (hub.registry, hub.repository, hub.tag) == ("docker.io", "library/postgres", "latest")
    assert hub.base_url == "https://registry-1.docker.io"
    local = parse_image("localhost:5000/team/app:1.2")
    assert (local.registry, local.repository, local.tag) == ("localhost:5000", "team/app", "1.2")
    assert local.base_url == "http://localhost:5000"
    assert parse_image("gitlab.example.com/a/b").base_url == "https://gitlab.example.com"
    with pytest.raises(RegistryError, match="names a digest"):
        parse_image("x@sha256:00")
