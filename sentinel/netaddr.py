"""Is an address only reachable from this machine? One answer for every listener (the alert
socket, the dashboard, metrics): off loopback they need keys or a token."""

from __future__ import annotations

import ipaddress
import re


def host_is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name or an interface: treat as exposed


def endpoint_is_loopback(endpoint: str) -> bool:
    """A ZeroMQ endpoint (tcp://HOST:PORT, ipc://, inproc://)."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    m = re.match(r"^tcp://(\[[^\]]+\]|[^:]+):", endpoint)
    return bool(m) and host_is_loopback(m.group(1))
