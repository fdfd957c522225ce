"""Webhook signing secrets at rest: Fernet tokens under a key derived from a setting.

The key is derived (HKDF-SHA256) from RESERVO_WEBHOOK_SECRET_KEY, or from SECRET_KEY when
that is empty. Keys derived from SECRET_KEY and SECRET_KEY_FALLBACKS still decrypt, so
setting a dedicated key, or rotating SECRET_KEY with the old one kept as a fallback,
leaves every stored secret readable; a rotation of the endpoint's secret re-encrypts it
under the current key.
"""

from __future__ import annotations

import base64
import secrets
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

_KEY_PURPOSE = b"reservo webhook signing secrets v1"


class WebhookSecretUnreadable(Exception):
    """A stored secret that no configured key decrypts (the key it was written with is gone)."""


def webhook_secret_new() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def _fernet_key(material: str) -> bytes:
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_KEY_PURPOSE).derive(
        material.encode()
    )
    return base64.urlsafe_b64encode(derived)


@lru_cache(maxsize=8)
def _cipher(materials: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(_fernet_key(material)) for material in materials])


def _current_cipher() -> MultiFernet:
    fallbacks = (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    dedicated = settings.RESERVO_WEBHOOK_SECRET_KEY
    materials = (dedicated, *fallbacks) if dedicated else fallbacks
    # The first key encrypts; every key decrypts. Duplicates would only cost time.
    return _cipher(tuple(dict.fromkeys(materials)))


def webhook_secret_encrypt(secret: str) -> str:
    return _current_cipher().encrypt(secret.encode()).decode()


def webhook_secret_decrypt(token: str) -> str:
    try:
        return _current_cipher().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise WebhookSecretUnreadable(
            "The signing secret cannot be decrypted with the configured keys "
            "(RESERVO_WEBHOOK_SECRET_KEY, SECRET_KEY, SECRET_KEY_FALLBACKS): rotate it."
        ) from exc
