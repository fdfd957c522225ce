"""Webhooks go to public addresses only: checked when an endpoint is entered (API, admin)
and again at every delivery, which connects to the address it checked.

No test here sends a packet off the machine: names resolve from the `resolver` table, and
`connect_guard` refuses (and records) any connection that is not to loopback, so a refusal
the code failed to make shows up as a recorded attempt instead of traffic.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from django.test import Client

from bookings import webhook_http
from bookings.api_keys import api_client_create
from bookings.models import DeliveryAttempt, OutboxMessage, WebhookEndpoint
from bookings.services import reservation_book
from bookings.webhook_http import (
    WebhookAddressRefused,
    address_allowed,
    address_kind,
    webhook_post,
)
from bookings.worker import outbox_deliver_due
from tests.bookings.conftest import ConnectGuard, Resolver
from tests.chaos.outbox_support import WebhookReceiver
from tests.conftest import CUSTOMER
from tests.factories import ApiClientFactory, ResourceFactory

pytestmark = [
    pytest.mark.usefixtures("resolver", "connect_guard"),
    # whitenoise warns when collectstatic has not run (a fresh checkout); not a concern here.
    pytest.mark.filterwarnings("ignore:No directory at:UserWarning"),
]

# Every kind of address that may not receive webhooks, IPv4 and IPv6, and IPv6 forms that
# carry an IPv4 address.
REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.10.20.30", "loopback"),
    ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"),
    ("172.16.5.4", "private"),
    ("172.31.255.254", "private"),
    ("192.168.1.10", "private"),
    ("100.64.0.1", "private"),
    ("fc00::1", "private"),
    ("fd12:3456:789a::1", "private"),
    ("fec0::1", "private"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:192.168.0.1", "private"),
    ("64:ff9b::a00:1", "private"),
    ("2002:a00:1::", "private"),
    ("169.254.169.254", "link-local"),
    ("169.254.0.1", "link-local"),
    ("fe80::1", "link-local"),
    ("::ffff:169.254.169.254", "link-local"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("ff02::1", "multicast"),
    ("ff0e::1", "multicast"),
    ("::ffff:224.0.0.251", "multicast"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 (an address refused, not bound)
    ("::", "unspecified"),
    ("::ffff:0.0.0.0", "unspecified"),
    ("0.1.2.3", "reserved"),
    ("192.0.2.10", "reserved"),
    ("198.18.0.1", "reserved"),
    ("198.51.100.7", "reserved"),
    ("203.0.113.9", "reserved"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "reserved"),
    ("2001:db8::1", "reserved"),
    ("100::1", "reserved"),
    ("::a00:1", "reserved"),
]
PUBLIC = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"]
# What the self-hosted switch opens, and what stays closed whatever it says.
OPENED_BY_ALLOW_PRIVATE = {"loopback", "private"}


def url_for(address: str, path: str = "/hook") -> str:
    host = f"[{address}]" if ":" in address else address
    return f"http://{host}{path}"


class TestAddressKinds:
    @pytest.mark.parametrize(("address", "kind"), REFUSED)
    def test_refused_ranges(self, address: str, kind: str) -> None:
        ip = ipaddress.ip_address(address)
        assert address_kind(ip) == kind
        assert not address_allowed(ip, allow_private=False)
        assert address_allowed(ip, allow_private=True) is (kind in OPENED_BY_ALLOW_PRIVATE)

    @pytest.mark.parametrize("address", PUBLIC)
    def test_public_addresses(self, address: str) -> None:
        ip = ipaddress.ip_address(address)
        assert address_kind(ip) == "public"
        assert address_allowed(ip, allow_private=False)


def signed_post(url: str, *, allow_private: bool = False) -> int:
    return webhook_post(url, b"{}", {}, timeout=2, allow_private=allow_private)


class TestAtDelivery:
    @pytest.mark.parametrize(("address", "kind"), REFUSED)
    def test_each_range_is_refused_before_any_connection(
        self, address: str, kind: str, connect_guard: ConnectGuard
    ) -> None:
        with pytest.raises(WebhookAddressRefused, match=kind):
            signed_post(url_for(address, "/latest/meta-data/"))
        assert connect_guard.refused == connect_guard.allowed == []

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://localhost:6391/",
            "http://[::1]:8151/admin/",
            "http://LOCALHOST:6391/",
            "http://2130706433/",  # 127.0.0.1 written as one number
            "http://0x7f.1/",  # and in hex
        ],
    )
    def test_the_reported_urls_are_refused(self, url: str, connect_guard: ConnectGuard) -> None:
        with pytest.raises(WebhookAddressRefused):
            signed_post(url)
        assert connect_guard.refused == connect_guard.allowed == []

    def test_every_address_of_a_name_is_checked(
        self, resolver: Resolver, connect_guard: ConnectGuard
    ) -> None:
        resolver.table["mixed.example.com"] = ["93.184.215.14", "10.1.2.3"]
        with pytest.raises(WebhookAddressRefused, match="private"):
            signed_post("https://mixed.example.com/hook")
        assert connect_guard.refused == connect_guard.allowed == []

    def test_link_local_stays_refused_for_self_hosted_setups(
        self, resolver: Resolver, connect_guard: ConnectGuard
    ) -> None:
        resolver.table["metadata.internal"] = ["169.254.169.254"]
        for url in ("http://metadata.internal/", "http://[fe80::1]/", "http://0.0.0.0:6379/"):
            with pytest.raises(WebhookAddressRefused):
                signed_post(url, allow_private=True)
        assert connect_guard.refused == connect_guard.allowed == []

    @pytest.mark.parametrize(
        "url", ["ftp://example.com/x", "http://user:pass@example.com/", "http:///nohost"]
    )
    def test_urls_that_are_not_http_endpoints_are_refused(self, url: str) -> None:
        with pytest.raises(WebhookAddressRefused):
            signed_post(url)


@pytest.mark.django_db(transaction=True)
class TestTheWorker:
    def test_a_name_that_now_resolves_inside_is_refused_and_logged(
        self, resolver: Resolver, connect_guard: ConnectGuard
    ) -> None:
        """Accepted while it resolved to a public address; by delivery it resolves to the
        metadata service (DNS rebinding): refused, without a connection, and the log shows
        the kind of address only."""
        resolver.table["hooks.example.com"] = ["93.184.215.14"]
        endpoint = WebhookEndpoint.objects.create(
            api_client=ApiClientFactory(), url="https://hooks.example.com/in", secret="s"
        )
        resolver.table["hooks.example.com"] = ["169.254.169.254"]
        reservation_book(
            resource_id=ResourceFactory(capacity=2).pk,
            quantity=1,
            actor=CUSTOMER,
            api_client=endpoint.api_client,
        )
        connect_guard.clear()
        assert outbox_deliver_due(worker="test") == 1
        message = OutboxMessage.objects.get()
        assert message.status == OutboxMessage.Status.PENDING
        assert message.last_error.startswith("Refused before connecting")
        assert "link-local" in message.last_error
        assert "169.254" not in message.last_error
        attempt = DeliveryAttempt.objects.get()
        assert (attempt.succeeded, attempt.response_status) == (False, None)
        assert connect_guard.refused == connect_guard.allowed == []

    @pytest.mark.usefixtures("webhooks_to_loopback")
    def test_it_connects_to_the_address_it_checked_with_the_name_in_the_host_header(
        self, resolver: Resolver, connect_guard: ConnectGuard
    ) -> None:
        """The name resolves once: a second answer (rebinding between the check and the
        connection) is never asked for, so never used."""
        answers = iter([["127.0.0.1"], ["169.254.169.254"]])

        def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            resolver.table["hooks.example.test"] = next(answers)
            return resolver.getaddrinfo(host, port, *args, **kwargs)

        with WebhookReceiver() as receiver:
            port = receiver.server.server_address[1]
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(socket, "getaddrinfo", rebinding)
                status = webhook_post(
                    f"http://hooks.example.test:{port}/in?x=1",
                    b'{"ok": true}',
                    {"Content-Type": "application/json"},
                    timeout=5,
                    allow_private=True,
                )
            assert status == 200
            [delivery] = receiver.deliveries
        assert delivery.path == "/in?x=1"
        assert delivery.headers["Host"] == f"hooks.example.test:{port}"
        assert delivery.body == b'{"ok": true}'
        assert resolver.lookups == ["hooks.example.test"]
        assert connect_guard.allowed == [("127.0.0.1", port)]
        assert connect_guard.refused == []


class TlsReceiver:
    """An HTTPS server on 127.0.0.1 with a certificate for `name` from its own authority;
    records the SNI and Host it was given."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        authority_key = ec.generate_private_key(ec.SECP256R1())
        authority_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Test authority")])
        now = datetime.now(UTC)
        authority = (
            x509.CertificateBuilder()
            .subject_name(authority_name)
            .issuer_name(authority_name)
            .public_key(authority_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(authority_key, hashes.SHA256())
        )
        server_key = ec.generate_private_key(ec.SECP256R1())
        server = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)]))
            .issuer_name(authority_name)
            .public_key(server_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(hours=1))
            .not_valid_after(now + timedelta(hours=1))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(authority_key, hashes.SHA256())
        )
        self.authority_pem = authority.public_bytes(serialization.Encoding.PEM)
        certificate = tmp_path / "server.pem"
        certificate.write_bytes(
            server.public_bytes(serialization.Encoding.PEM)
            + server_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(certificate)
        self.server_names: list[str | None] = []
        self.hosts: list[str] = []

        def sni(sock: Any, server_name: str | None, context: Any) -> None:
            self.server_names.append(server_name)

        self.context.sni_callback = sni
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)

    def client_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(cadata=self.authority_pem.decode())
        return context

    def _serve(self) -> None:
        self.listener.settimeout(10)
        try:
            raw, _address = self.listener.accept()
        except OSError:
            return
        try:
            with self.context.wrap_socket(raw, server_side=True) as conn:
                conn.settimeout(10)
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                head, _, body = request.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"host:"):
                        self.hosts.append(line.split(b":", 1)[1].strip().decode())
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                # The whole body read before answering: closing with unread bytes would
                # reset the connection and lose the answer.
                while len(body) < length and (chunk := conn.recv(4096)):
                    body += chunk
                conn.sendall(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
        except (OSError, ssl.SSLError):
            return  # a client that refused the certificate

    def __enter__(self) -> TlsReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.listener.close()
        self.thread.join(10)


@pytest.fixture
def tls_receiver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TlsReceiver]:
    with TlsReceiver("hooks.example.test", tmp_path) as receiver:
        monkeypatch.setattr(webhook_http, "webhook_tls_context", receiver.client_context)
        yield receiver


class TestHttps:
    def test_sni_and_certificate_name_are_the_urls_host(
        self, tls_receiver: TlsReceiver, resolver: Resolver, connect_guard: ConnectGuard
    ) -> None:
        resolver.table["hooks.example.test"] = ["127.0.0.1"]
        status = webhook_post(
            f"https://hooks.example.test:{tls_receiver.port}/in",
            b"{}",
            {},
            timeout=5,
            allow_private=True,
        )
        assert status == 204
        assert tls_receiver.server_names == ["hooks.example.test"]
        assert tls_receiver.hosts == [f"hooks.example.test:{tls_receiver.port}"]
        assert connect_guard.allowed == [("127.0.0.1", tls_receiver.port)]

    def test_a_certificate_for_another_name_is_refused(
        self, tls_receiver: TlsReceiver, resolver: Resolver
    ) -> None:
        resolver.table["other.example.test"] = ["127.0.0.1"]
        with pytest.raises(ssl.SSLCertVerificationError):
            webhook_post(
                f"https://other.example.test:{tls_receiver.port}/in",
                b"{}",
                {},
                timeout=5,
                allow_private=True,
            )
        assert tls_receiver.hosts == []


BASE = "/api/v1/webhooks/"


@pytest.fixture
def manager() -> Client:
    _client, key = api_client_create(name="ssrf-test", scopes=["manage"])
    return Client(headers={"Authorization": f"Api-Key {key}"})


def create(manager: Client, url: str) -> Any:
    return manager.post(BASE, json.dumps({"url": url}), content_type="application/json")


@pytest.mark.django_db
class TestWhenEntered:
    @pytest.mark.parametrize(("address", "kind"), REFUSED)
    def test_the_api_refuses_each_range(self, manager: Client, address: str, kind: str) -> None:
        response = create(manager, url_for(address))
        assert response.status_code == 400, response.content
        problem = response.json()
        assert problem["code"] == "validation_error"
        assert kind in problem["errors"]["url"][0]
        assert not WebhookEndpoint.objects.exists()

    @pytest.mark.parametrize(
        "url",
        [
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.1/",
            "http://localhost:6391/",
            "http://[::1]:8151/admin/",
        ],
    )
    def test_the_api_refuses_the_reported_urls(self, manager: Client, url: str) -> None:
        response = create(manager, url)
        assert response.status_code == 400
        assert response.json()["code"] == "validation_error"
        assert not WebhookEndpoint.objects.exists()

    def test_names_are_resolved_and_every_address_checked(
        self, manager: Client, resolver: Resolver
    ) -> None:
        resolver.table["inside.example.com"] = ["10.20.30.40"]
        resolver.table["both.example.com"] = ["2606:4700:4700::1111", "fd00::5"]
        resolver.table["outside.example.com"] = ["93.184.215.14", "2606:4700:4700::1111"]
        assert create(manager, "https://inside.example.com/").status_code == 400
        assert create(manager, "https://both.example.com/").status_code == 400
        assert create(manager, "https://outside.example.com/").status_code == 201
        # Not resolvable (yet): accepted, since every delivery checks again.
        assert create(manager, "https://not-yet.example.com/").status_code == 201
        assert WebhookEndpoint.objects.count() == 2

    def test_a_change_of_url_is_checked_too(self, manager: Client) -> None:
        created = create(manager, "https://example.com/hook")
        assert created.status_code == 201
        endpoint_id = created.json()["id"]
        response = manager.patch(
            f"{BASE}{endpoint_id}/",
            json.dumps({"url": "http://169.254.169.254/"}),
            content_type="application/json",
        )
        assert response.status_code == 400
        assert response.json()["code"] == "validation_error"
        assert WebhookEndpoint.objects.get().url == "https://example.com/hook"

    def test_self_hosted_setups_may_use_private_addresses_but_not_link_local(
        self, manager: Client, settings: Any
    ) -> None:
        settings.RESERVO_WEBHOOK_ALLOW_PRIVATE = True
        assert create(manager, "http://localhost:6391/").status_code == 201
        assert create(manager, "http://10.0.0.1/").status_code == 201
        assert create(manager, "http://169.254.169.254/").status_code == 400
        assert create(manager, "http://[ff02::1]/").status_code == 400


@pytest.mark.django_db
def test_the_admin_form_refuses_them_too(admin_client: Client) -> None:
    client = ApiClientFactory()
    response = admin_client.post(
        "/admin/bookings/webhookendpoint/add/",
        {"api_client": client.pk, "url": "http://169.254.169.254/latest/", "active": "on"},
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "link-local" in errors["url"][0]
    assert not WebhookEndpoint.objects.exists()
