"""The server's one gate: with ``--api-key`` every route wants ``Authorization: Bearer <key>``, as TEI's do."""

from __future__ import annotations

import hmac

from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

__all__ = ["bearer_only"]


def bearer_only(api_key: str | None) -> Middleware:
    """Middleware that answers a bare 401 to a request without the key (none asked when ``api_key`` is None)."""
    if api_key is not None and not api_key.strip():
        raise ValueError("api_key is empty: give a key, or None to serve without one")
    expected = f"Bearer {api_key}".encode() if api_key is not None else None

    class BearerOnly(BaseHTTPMiddleware):
        async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
            if expected is not None:
                given = request.headers.get("authorization", "").encode()
                if not hmac.compare_digest(given, expected):  # constant time: the key is not guessed byte by byte
                    # Answered before the body is read, and the connection closed: a body sent (or
                    # dripped) without the key is never read.
                    return Response(status_code=401, headers={"connection": "close"})
            return await call_next(request)

    return Middleware(BearerOnly)
