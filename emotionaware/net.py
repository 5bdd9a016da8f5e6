"""Network addresses: what counts as reachable from this host only."""

from __future__ import annotations

import ipaddress


def is_local_address(address: str) -> bool:
    """A loopback host:port (or a Unix socket): reachable from this host only."""
    if address.startswith("unix:"):
        return True
    host = address.rsplit(":", 1)[0].strip("[]") if ":" in address else address
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
