"""What every v1 API view shares: API-key auth, scopes, per-client throttles and a
per-address limit on requests without a valid key, JSON parsing, pagination, UTC
timestamps and idempotent unsafe methods."""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from rest_framework import exceptions, generics, serializers
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.pagination import PageNumberPagination
from rest_framework.parsers import JSONParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import BaseThrottle
from rest_framework.views import APIView

from bookings.api.idempotency import (
    IDEMPOTENCY_HEADER,
    IdempotentRequest,
    idempotency_key_validate,
    idempotent_execute,
    request_hash,
)
from bookings.api_keys import ApiKeyAuthentication, HasScope
from bookings.models import ApiClient, ApiScope
from reservo import limits
from reservo.addresses import address_subject, client_address
from reservo.problems import (
    PROBLEM_CONTENT_TYPE,
    UNSAFE_METHODS,
    domain_error_for,
    problem_status,
)

REPLAY_HEADER = "Idempotent-Replayed"


class ApiPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


def utc_timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with an explicit offset ("+00:00"), whatever the server's zone."""
    return value.astimezone(UTC).isoformat() if value is not None else None


class TimestampField(serializers.DateTimeField):
    """ISO 8601 in UTC with an explicit offset ("+00:00"), whatever the server's zone."""

    def to_representation(self, value: datetime | None) -> Any:
        return utc_timestamp(value)


class ClientRateThrottle(BaseThrottle):
    """Fixed-window request counter per client and scope in the shared cache.

    A counter rather than DRF's timestamp history, which grows with the rate. Creating
    the window's counter (`SET NX` with its expiry) and counting the request (`INCR`) go
    to Redis as one pipeline: one round trip per request. The key is made by the cache
    (`make_key`), so it lives under the cache prefix like every other entry. If the cache
    is unreachable the request is allowed: throttling fails open.
    """

    clock = staticmethod(time.time)

    def __init__(self) -> None:
        self.wait_seconds: float | None = None

    def allow_request(self, request: Request, view: APIView) -> bool:
        client = request.auth
        if not isinstance(client, ApiClient):
            return True
        scope = (
            getattr(view, "throttle_scope", ApiScope.BOOK)
            if request.method in UNSAFE_METHODS
            else "read"
        )
        rate = limits.parse_rate(settings.RESERVO_THROTTLE_RATES.get(scope) or "")
        if rate is None:
            return True
        limit, period = rate.limit, rate.period
        now = self.clock()
        window = int(now // period)
        api_view = view if isinstance(view, ApiView) else None
        reads = api_view.shared_cache_reads() if api_view is not None else []
        try:
            count, found = self.count(
                f"throttle:{scope}:{client.pk}:{window}", expires_in=period + 1, reads=reads
            )
        except Exception:  # the cache is down or refused the command: fail open
            logging.getLogger(settings.DJANGO_REDIS_LOGGER).warning(
                "throttle not applied: the cache did not answer", exc_info=True
            )
            return True
        if api_view is not None and reads:
            api_view.prefetched = found
        if count <= limit:
            return True
        self.wait_seconds = period - (now % period)
        return False

    @staticmethod
    def count(
        key: str, *, expires_in: int, reads: Sequence[str] = ()
    ) -> tuple[int, dict[str, Any]]:
        """This window's count for `key`, this request included, and the entries of the
        shared cache keys `reads` that exist, read in the same round trip."""
        redis = cache.client.get_client(write=True)  # type: ignore[attr-defined]
        redis_key = cache.make_key(key)
        # Not a transaction: SET NX only gives a new window's counter its expiry, and
        # INCR is atomic on its own.
        pipeline = redis.pipeline(transaction=False)
        pipeline.set(redis_key, 0, ex=expires_in, nx=True)
        pipeline.incr(redis_key)
        if reads:
            pipeline.mget([cache.make_key(read) for read in reads])
        _created, count, *values = pipeline.execute()
        found = {}
        for read, value in zip(reads, values[0] if values else [], strict=False):
            # An entry this code cannot read (another version's) is a miss.
            with contextlib.suppress(Exception):
                if value is not None:
                    found[read] = cache.client.decode(value)  # type: ignore[attr-defined]
        return int(count), found

    def wait(self) -> float | None:
        return math.ceil(self.wait_seconds) if self.wait_seconds is not None else None


def unauthenticated_request_count(request: Request) -> None:
    """Count a request without a valid key against its address's rate (`anonymous`);
    past it, the answer is 429 `rate_limited` instead of 401. Failed keys cost a lookup
    each, and nothing else bounds them."""
    rate = limits.parse_rate(settings.RESERVO_THROTTLE_RATES.get("anonymous") or "")
    subject = address_subject(client_address(request._request))
    wait = limits.window_hit("api-anonymous", subject, rate)
    if wait is not None:
        raise exceptions.Throttled(wait=wait)


class ApiJsonParser(JSONParser):
    """DRF's JSON parser; JSON nested past the interpreter's recursion limit is a 400
    like any other malformed body, not a 500."""

    def parse(self, stream: Any, media_type: Any = None, parser_context: Any = None) -> Any:
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            raise exceptions.ParseError("JSON parse error - nested too deeply.") from exc


class BoundedListField(serializers.ListField):
    """A list field that refuses a list over `max_length` before validating its items
    (DRF validates every item first, then the length: a 2 MB list cost half a second)."""

    def to_internal_value(self, data: Any) -> Any:
        if self.max_length is not None and isinstance(data, list) and len(data) > self.max_length:
            self.fail("max_length", max_length=self.max_length)
        return super().to_internal_value(data)


class JsonFirstNegotiation(DefaultContentNegotiation):
    """DRF's content negotiation, with the usual request answered first: no query string
    (so no `?format=`), and an Accept header that is absent, `*/*` or exactly the first
    renderer's type, gets that renderer without the header and the query string being
    parsed. Every other request is negotiated by DRF, as before."""

    def select_renderer(
        self,
        request: Request,
        renderers: Iterable[BaseRenderer],
        format_suffix: str | None = None,
    ) -> tuple[BaseRenderer, str]:
        renderers = list(renderers)
        if renderers and format_suffix is None and not request.META.get("QUERY_STRING"):
            first = renderers[0]
            if request.META.get("HTTP_ACCEPT", "*/*") in ("*/*", first.media_type):
                return first, first.media_type
        selected: tuple[BaseRenderer, str] = super().select_renderer(
            request, renderers, format_suffix
        )
        return selected


class ApiView(generics.GenericAPIView):
    """Base of every /api/v1/ view.

    `required_scopes` maps a method to the scope it needs (default `book`);
    `throttle_scope` names the rate applying to unsafe methods.
    """

    authentication_classes = [ApiKeyAuthentication]
    permission_classes = [HasScope]
    throttle_classes = [ClientRateThrottle]
    parser_classes = [ApiJsonParser]
    pagination_class: type[ApiPagination] | None = ApiPagination
    renderer_classes = [JSONRenderer]
    content_negotiation_class = JsonFirstNegotiation
    required_scopes: dict[str, str] = {}
    throttle_scope = ApiScope.BOOK
    # What `shared_cache_reads` named, as the throttle read it (None: not read).
    prefetched: dict[str, Any] | None = None

    def shared_cache_reads(self) -> list[str]:
        """Shared cache keys the handler is about to read: the throttle sends them with its
        counter, in one round trip, and leaves them in `prefetched`."""
        return []

    @property
    def client(self) -> ApiClient:
        client = self.request.auth
        assert isinstance(client, ApiClient)
        return client

    def perform_authentication(self, request: Request) -> None:
        """Authenticate; a request without a valid key is counted against its address
        (DRF's throttles run only after authentication and permissions succeed)."""
        try:
            super().perform_authentication(request)
        except exceptions.AuthenticationFailed:
            unauthenticated_request_count(request)
            raise
        if request.auth is None:
            unauthenticated_request_count(request)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        method = (request.method or "").lower()
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if request.method in UNSAFE_METHODS and key is not None and hasattr(self, method):
            handler = getattr(self, method)
            idempotent = IdempotentRequest(
                client=self.client,
                key=idempotency_key_validate(key),
                method=request.method or "",
                path=request.path,
                request_hash=request_hash(request._request.body),
            )
            setattr(self, method, self._idempotent(idempotent, handler))

    def _idempotent(
        self, idempotent: IdempotentRequest, handler: Callable[..., Response]
    ) -> Callable[..., Response]:
        def run(request: Request, *args: Any, **kwargs: Any) -> Response:
            def execute() -> tuple[int, Any]:
                try:
                    response = handler(request, *args, **kwargs)
                except Exception as exc:
                    error = domain_error_for(exc)
                    # A 5xx, or a database error that left the transaction unusable,
                    # goes up through DRF's handler unrecorded.
                    if error is None or problem_status(error) >= 500 or connection.needs_rollback:
                        raise
                    return problem_status(error), error.as_problem()
                return response.status_code, response.data

            stored = idempotent_execute(idempotent, execute)
            content_type = PROBLEM_CONTENT_TYPE if stored.status >= 400 else None
            response = Response(stored.body, status=stored.status, content_type=content_type)
            if stored.replayed:
                response[REPLAY_HEADER] = "true"
            return response

        return run
