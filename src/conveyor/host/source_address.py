"""The address this machine reaches a host from: the source address the kernel's routing
picks for a connection to it. Provisioning's firewall lets the controller in by it (the
machine `conveyor provision` runs on is taken to be the controller: it probes replicas'
published ports and may run the edge; docs/provision.md, "Firewall").

A UDP socket's `connect` only picks the route: no packet is sent.
"""

from __future__ import annotations

import ipaddress
import socket


def source_address(address: str, port: int = 22) -> str | None:
    """This machine's address on the route to `address` (an IP address or a DNS name);
    None when it cannot be resolved or routed, or when the route is loopback (a host
    reached through a forwarded port on 127.0.0.1 says nothing of where we are)."""
    try:
        infos = socket.getaddrinfo(address, port, type=socket.SOCK_DGRAM)
    except OSError:
        return None
    for family, _, _, _, sockaddr in infos:
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                sock.connect(sockaddr)
                local = str(sock.getsockname()[0])
        except OSError:
            continue
        if not ipaddress.ip_address(local).is_loopback:
            return local
    return None
