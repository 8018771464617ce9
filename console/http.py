"""What every console view shares about requests: the htmx request type, and bearer tokens for the
machine-to-machine endpoints (webhooks, /metrics)."""

from __future__ import annotations

import hmac

from django.http import HttpRequest
from django_htmx.middleware import HtmxDetails


class HtmxHttpRequest(HttpRequest):
    htmx: HtmxDetails


def bearer_matches(request: HttpRequest, expected: str) -> bool:
    """Whether the request carries `Authorization: Bearer <expected>`. An empty `expected` matches
    nothing: an endpoint is never open by default. Compared as bytes in constant time: a header with
    characters outside ASCII is simply a wrong token (compare_digest refuses such text)."""
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected or scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(
        token.strip().encode("utf-8", "surrogatepass"), expected.encode("utf-8", "surrogatepass")
    )
