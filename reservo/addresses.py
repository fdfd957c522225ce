"""The client's address: the one answer every per-address limit, the login lockout and
/metrics use.

Without a proxy in front (`RESERVO_BEHIND_PROXY` off) it is the peer of the connection,
REMOTE_ADDR, and X-Forwarded-For is ignored: anyone can send that header. Behind
proxies, each trusted proxy appends the address it received the request from to
X-Forwarded-For, so the client is the entry `RESERVO_TRUSTED_PROXIES` places from the
right (1: the last entry, the one the only proxy appended). Entries further left were
sent by the client and prove nothing.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.http import HttpRequest

FORWARDED_FOR_HEADER = "HTTP_X_FORWARDED_FOR"
# IPv6 clients usually get a whole /64: a limit keyed by one address of it is no limit.
IPV6_SUBJECT_PREFIX = 64


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as proxies write it: bare, "[v6]:port" or "v4:port"; None if it is not one."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _forwarded_address(request: HttpRequest) -> str | None:
    """The address the outermost trusted proxy received the request from, if it said."""
    header = request.META.get(FORWARDED_FOR_HEADER, "")
    entries = [entry for entry in header.split(",") if entry.strip()]
    hops = settings.RESERVO_TRUSTED_PROXIES
    if hops < 1 or len(entries) < hops:
        return None
    address = _parse_address(entries[-hops])
    return str(address) if address is not None else None


def client_address(request: HttpRequest) -> str:
    """The client's IP address, normalised ("" if the server was given none)."""
    if settings.RESERVO_BEHIND_PROXY:
        forwarded = _forwarded_address(request)
        if forwarded is not None:
            return forwarded
    address = _parse_address(request.META.get("REMOTE_ADDR") or "")
    return str(address) if address is not None else ""


def address_subject(address: str) -> str:
    """What a per-address limit counts: the address, or its /64 for IPv6."""
    parsed = _parse_address(address)
    if parsed is None:
        return address or "unknown"
    if isinstance(parsed, ipaddress.IPv6Address):
        network = ipaddress.IPv6Network(f"{parsed}/{IPV6_SUBJECT_PREFIX}", strict=False)
        return str(network)
    return str(parsed)


def is_loopback(address: str) -> bool:
    parsed = _parse_address(address)
    return parsed is not None and parsed.is_loopback
