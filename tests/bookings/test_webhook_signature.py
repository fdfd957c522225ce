"""The README's signature-verification snippet, run against a real delivery."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bookings.models import WebhookEndpoint
from bookings.services import reservation_book
from bookings.worker import outbox_deliver_due
from tests.chaos.outbox_support import WebhookReceiver
from tests.conftest import CUSTOMER
from tests.factories import ApiClientFactory, ResourceFactory

# The receiver listens on loopback, where webhooks go only with RESERVO_WEBHOOK_ALLOW_PRIVATE.
pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.usefixtures("webhooks_to_loopback"),
]

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet() -> Callable[..., bool]:
    section = README.read_text().split("\n## Webhooks\n", 1)[1].split("\n## ", 1)[0]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert code is not None, "the README's Webhooks section has no Python snippet"
    namespace: dict[str, Any] = {}
    exec(code.group(1), namespace)  # noqa: S102 (our own README)
    return namespace["verify_reservo_signature"]


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as running:
        yield running


def test_readme_snippet_verifies_a_real_delivery(receiver: WebhookReceiver) -> None:
    verify = readme_snippet()
    endpoint = WebhookEndpoint.objects.create(
        api_client=ApiClientFactory(), url=receiver.url, secret="whsec_readme"
    )
    resource = ResourceFactory(capacity=2)
    reservation_book(
        resource_id=resource.pk, quantity=1, actor=CUSTOMER, api_client=endpoint.api_client
    )
    assert outbox_deliver_due(worker="test") == 1
    [delivery] = receiver.deliveries
    header = delivery.headers["Reservo-Signature"]

    assert verify("whsec_readme", header, delivery.body) is True
    assert verify("whsec_other", header, delivery.body) is False
    assert verify("whsec_readme", header, delivery.body + b" ") is False
    assert verify("whsec_readme", "garbage", delivery.body) is False
    # Too old to be trusted (a replay), even though the signature itself is right.
    assert verify("whsec_readme", header, delivery.body, tolerance=-1) is False
