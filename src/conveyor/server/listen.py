"""The address `conveyor server --listen` binds: `HOST:PORT`, `[IPv6]:PORT` or a bare port
(on 127.0.0.1). Loopback unless the user asks for more (`--allow-remote`)."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_LISTEN = "127.0.0.1:7780"


@dataclass(frozen=True)
class Listen:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        """True for 127.0.0.0/8, ::1 and `localhost`; a name is never taken on trust."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self}"


def parse_listen(value: str) -> Listen:
    """`127.0.0.1:7780`, `[::1]:7780`, `localhost:7780` or `7780`; ValueError says what is
    wrong."""
    text = value.strip()
    if text.isdigit():
        host, port = "127.0.0.1", text
    elif text.startswith("["):
        end = text.find("]")
        if end < 0 or not text[end + 1 :].startswith(":"):
            raise ValueError(f"{value!r}: write an IPv6 address as [ADDRESS]:PORT")
        host, port = text[1:end], text[end + 2 :]
    else:
        host, sep, port = text.rpartition(":")
        if not sep or not host or ":" in host:
            raise ValueError(f"{value!r}: expected HOST:PORT ([ADDRESS]:PORT for IPv6)")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{value!r}: the port must be a number from 1 to 65535")
    return Listen(host, int(port))
