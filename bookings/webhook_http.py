"""Outbound webhook HTTP: which addresses may be reached, and one POST under one deadline.

A delivery resolves the URL's host once, refuses it unless every address it resolves to
is public (docs/security.md, "Webhooks"), and connects to an address it checked — never
resolving again — with the URL's host name in the Host header and, over https, in SNI and
certificate verification. No proxy is used and no redirect is followed.

The deadline covers the whole exchange (name lookup, connect, TLS handshake, request, the
response's status line and headers): every socket operation waits at most for what is left
of it. A per-operation timeout alone, as HTTP clients offer, lets a receiver that sends a
byte now and then hold a delivery for as long as it likes.
"""

from __future__ import annotations

import functools
import http.client
import io
import ipaddress
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.utils.translation import gettext as _

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Reachable only with RESERVO_WEBHOOK_ALLOW_PRIVATE: a self-hosted receiver's networks.
_PRIVATE_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "fc00::/7")
)
# IPv6 prefixes that carry an IPv4 address in their last 32 bits (NAT64).
_NAT64_NETWORKS = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "64:ff9b:1::/48"))


class WebhookAddressRefused(Exception):
    """The URL may not receive webhooks; the message says why, for staff and integrators."""


class WebhookTimeout(Exception):
    """The delivery's deadline passed."""


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if any(address in network for network in _NAT64_NETWORKS):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def address_kind(address: IPAddress) -> str:
    """`public`, `loopback`, `private`, `link-local`, `multicast`, `unspecified` or
    `reserved` (documentation, benchmarking, protocol assignments, the rest of the
    non-global space). An IPv6 address carrying an IPv4 one is what that one is."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return address_kind(embedded)
        if address.is_site_local:
            return "private"
    if address.is_unspecified:
        return "unspecified"
    if address.is_loopback:
        return "loopback"
    if address.is_link_local:
        return "link-local"
    if address.is_multicast:
        return "multicast"
    if any(address in network for network in _PRIVATE_NETWORKS):
        return "private"
    if address.is_reserved or address.is_private or not address.is_global:
        return "reserved"
    return "public"


def address_allowed(address: IPAddress, *, allow_private: bool) -> bool:
    kind = address_kind(address)
    return kind == "public" or (allow_private and kind in ("loopback", "private"))


def address_refusal(host: str, addresses: list[IPAddress], *, allow_private: bool) -> str | None:
    """Why `host`, resolved to `addresses`, may not receive webhooks; None if it may.

    The message names the kind of address, not the address: it is shown to integrators,
    who should learn nothing about the network behind the server from it.
    """
    for address in addresses:
        if address_allowed(address, allow_private=allow_private):
            continue
        if host == str(address):
            message = _("%(host)s is an address that may not receive webhooks (%(kind)s).")
        else:
            message = _("%(host)s resolves to an address that may not receive webhooks (%(kind)s).")
        return message % {"host": host, "kind": address_kind(address)}
    return None


@dataclass(frozen=True)
class WebhookTarget:
    """A webhook URL taken apart: what to connect to and what to tell the server."""

    scheme: str
    host: str
    port: int
    path: str

    @classmethod
    def parse(cls, url: str) -> WebhookTarget:
        """Raises WebhookAddressRefused when the URL is not one a webhook can go to."""
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise WebhookAddressRefused(_("Enter a valid URL.")) from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise WebhookAddressRefused(_("Use an http or https URL."))
        if parts.username is not None or parts.password is not None:
            raise WebhookAddressRefused(_("Credentials in the URL are not supported."))
        try:
            host = (parts.hostname or "").encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise WebhookAddressRefused(_("Enter a valid URL.")) from exc
        if not host:
            raise WebhookAddressRefused(_("Enter a valid URL."))
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        default_port = 443 if scheme == "https" else 80
        return cls(scheme=scheme, host=host, port=port or default_port, path=path)

    @property
    def literal_address(self) -> IPAddress | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def webhook_host_resolve(host: str, port: int, *, timeout: float) -> list[IPAddress]:
    """Every TCP address of `host`, looked up within `timeout` seconds.

    Raises WebhookTimeout, or OSError when the name does not resolve. The lookup runs on a
    helper thread, because the system resolver cannot be given a deadline.
    """
    outcome: dict[str, Any] = {}
    finished = threading.Event()

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
            )
        except Exception as exc:  # re-raised by the caller
            outcome["error"] = exc
        finally:
            finished.set()

    threading.Thread(target=lookup, name="webhook-lookup", daemon=True).start()
    if not finished.wait(timeout):
        raise WebhookTimeout(f"looking up {host} took longer than {timeout:.1f} s")
    if "error" in outcome:
        raise outcome["error"]
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _name, sockaddr in outcome["infos"]:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def webhook_url_refusal(url: str, *, allow_private: bool, timeout: float) -> str | None:
    """Why `url` may not be a webhook endpoint (checked when it is entered), or None.

    A host name is resolved now so that a name for an internal address is refused at once;
    a name that does not resolve (yet) is accepted, since every delivery checks again.
    """
    try:
        target = WebhookTarget.parse(url)
    except WebhookAddressRefused as exc:
        return str(exc)
    literal = target.literal_address
    if literal is not None:
        return address_refusal(target.host, [literal], allow_private=allow_private)
    try:
        addresses = webhook_host_resolve(target.host, target.port, timeout=timeout)
    except (OSError, WebhookTimeout, ValueError):
        return None
    return address_refusal(target.host, addresses, allow_private=allow_private)


class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.ends_at = time.monotonic() + seconds

    def remaining(self) -> float:
        left = self.ends_at - time.monotonic()
        if left <= 0:
            raise WebhookTimeout(f"no answer within {self.seconds:.1f} s")
        return left


class _SocketReader(io.RawIOBase):
    def __init__(self, sock: _DeadlineSocket) -> None:
        self._sock = sock

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        return self._sock.recv_into(buffer)


class _DeadlineSocket:
    """A connected (TLS) socket whose every operation ends by the deadline; what
    http.client needs of a socket, and no more."""

    def __init__(self, sock: socket.socket, deadline: _Deadline) -> None:
        self._sock = sock
        self._deadline = deadline

    def recv_into(self, buffer: Any) -> int:
        self._sock.settimeout(self._deadline.remaining())
        return self._sock.recv_into(buffer)

    def sendall(self, data: Any) -> None:
        view = memoryview(data).cast("B")
        while view:
            self._sock.settimeout(self._deadline.remaining())
            sent = self._sock.send(view)
            view = view[sent:]

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_SocketReader(self))

    def close(self) -> None:
        self._sock.close()


class _PinnedConnection(http.client.HTTPConnection):
    """An HTTP(S) connection to addresses checked beforehand, for the URL's host name."""

    def __init__(
        self,
        target: WebhookTarget,
        addresses: list[IPAddress],
        deadline: _Deadline,
        tls: ssl.SSLContext | None,
    ) -> None:
        super().__init__(target.host, target.port)
        if tls is not None:
            self.default_port = 443  # no port in the Host header for https on 443
        self._target = target
        self._addresses = addresses
        self._deadline = deadline
        self._tls = tls

    def connect(self) -> None:
        error: OSError | None = None
        for address in self._addresses:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            raw = socket.socket(family, socket.SOCK_STREAM)
            try:
                self.sock = _DeadlineSocket(self._open(raw, address), self._deadline)
                return
            except OSError as exc:
                raw.close()
                error = exc
            except BaseException:
                raw.close()
                raise
        raise error or OSError(f"no address to connect to for {self._target.host}")

    def _open(self, raw: socket.socket, address: IPAddress) -> socket.socket:
        raw.settimeout(self._deadline.remaining())
        raw.connect((str(address), self._target.port))
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self._tls is None:
            return raw
        sock = self._tls.wrap_socket(
            raw, server_hostname=self._target.host, do_handshake_on_connect=False
        )
        try:
            # CPython bounds the whole handshake, however many reads it takes, by the timeout.
            sock.settimeout(self._deadline.remaining())
            sock.do_handshake()
        except BaseException:
            sock.close()
            raise
        return sock


@functools.cache
def webhook_tls_context() -> ssl.SSLContext:
    """Certificates verified against the system's authorities, for the URL's host name."""
    return ssl.create_default_context()


def webhook_post(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    timeout: float,
    allow_private: bool,
) -> int:
    """POST `body` to `url` and return the response's status, all within `timeout` seconds.

    Raises WebhookAddressRefused before any connection when the host is not allowed,
    WebhookTimeout past the deadline, OSError or http.client.HTTPException on a network or
    protocol failure.
    """
    deadline = _Deadline(timeout)
    target = WebhookTarget.parse(url)
    literal = target.literal_address
    addresses = (
        [literal]
        if literal is not None
        else webhook_host_resolve(target.host, target.port, timeout=deadline.remaining())
    )
    refusal = address_refusal(target.host, addresses, allow_private=allow_private)
    if refusal is not None:
        raise WebhookAddressRefused(refusal)
    tls = webhook_tls_context() if target.scheme == "https" else None
    connection = _PinnedConnection(target, addresses, deadline, tls)
    try:
        connection.request("POST", target.path, body=body, headers=dict(headers))
        with connection.getresponse() as response:
            return int(response.status)
    except TimeoutError as exc:
        raise WebhookTimeout(f"no answer within {timeout:.1f} s") from exc
    finally:
        connection.close()
