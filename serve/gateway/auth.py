"""Optional API keys (`THEO_API_KEYS`): `Authorization: Bearer <key>` on `/v1/*`."""

from __future__ import annotations

import hmac

from fastapi import Depends, Request

from serve.errors import AuthenticationError
from serve.gateway.context import GatewayContext, get_context


def key_is_valid(presented: str | None, keys: list[str]) -> bool:
    if not keys:
        return True
    if not presented:
        return False
    return any(hmac.compare_digest(presented, key) for key in keys)


def bearer_token(header: str | None) -> str | None:
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


async def require_api_key(request: Request, context: GatewayContext = Depends(get_context)) -> None:
    keys = context.settings.api_keys
    if not keys:
        return
    header = request.headers.get("authorization")
    if header is None:
        raise AuthenticationError(
            "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'."
        )
    if not key_is_valid(bearer_token(header), keys):
        raise AuthenticationError("Incorrect API key provided.")
