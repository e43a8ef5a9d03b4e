"""`GET /v1/realtime`: realtime transcription over WebSocket (native protocol and OpenAI
Realtime transcription mode), and `GET /v1/realtime/sessions` listing this replica's sessions.

Auth: `Authorization: Bearer <key>`, or `?api_key=<key>` for browsers (which cannot set
headers on a WebSocket). Errors before the session starts close the socket with 1008 and the
reason; an `error` event precedes the close.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, WebSocket

from serve.errors import ModelNotFoundError, TheoError
from serve.gateway.auth import bearer_token, key_is_valid, require_api_key
from serve.gateway.context import get_context
from serve.realtime.connection import POLICY_VIOLATION, RealtimeConnection
from serve.realtime.engine import handle_transcriber
from serve.realtime.gate import PartialGate
from serve.realtime.model import SessionModel
from serve.realtime.protocol import ProtocolError, validate_config
from serve.realtime.registry import SESSIONS
from serve.realtime.settings import RealtimeSettings
from serve.realtime.telemetry import SessionTelemetry
from serve.realtime.wire import NativeWire, OpenAIWire, WireProtocol
from serve.routing import ModelRouter

router = APIRouter()
MAX_REASON_BYTES = 120
"""A close frame's reason is at most 123 bytes."""


_gates: dict[int, PartialGate] = {}


def partial_gate(settings: RealtimeSettings) -> PartialGate:
    """The replica's one gate for partial decodes (all sessions of this process share it)."""
    limit = settings.max_concurrent_partials
    if limit not in _gates:
        _gates[limit] = PartialGate(limit)
    return _gates[limit]


def model_resolver(models: ModelRouter) -> Any:
    def resolve(name: str) -> SessionModel:
        routed = models.resolve(name)
        return SessionModel(routed.manifest, handle_transcriber(routed.handle), routed.handle)

    return resolve


async def refuse(websocket: WebSocket, code: str, message: str) -> None:
    """Tell the client why, then close with 1008 (policy violation)."""
    event = {"type": "error", "code": code, "message": message, "recoverable": False}
    await websocket.send_text(json.dumps(event))
    reason = message.encode()[:MAX_REASON_BYTES].decode(errors="ignore")
    await websocket.close(POLICY_VIOLATION, reason)


@router.websocket("/v1/realtime")
async def realtime_socket(
    websocket: WebSocket,
    model: str | None = None,
    language: str | None = None,
    intent: str | None = None,
    api_key: str | None = None,
) -> None:
    context = get_context()
    await websocket.accept()
    presented = bearer_token(websocket.headers.get("authorization")) or api_key
    if not key_is_valid(presented, context.settings.api_keys):
        await refuse(websocket, "invalid_api_key", "Missing or incorrect API key.")
        return
    protocol: WireProtocol = OpenAIWire() if intent == "transcription" else NativeWire()
    resolve = model_resolver(context.router)
    if model is None:
        available = context.router.models()
        if intent != "transcription" or not available:
            await refuse(websocket, "missing_model", "The 'model' query parameter is required.")
            return
        model = available[0].name
    settings = context.settings.realtime
    try:
        config = validate_config({"language": language})
        connection = RealtimeConnection(
            websocket,
            model=resolve(model),
            resolve=resolve,
            settings=settings,
            protocol=protocol,
            config=config,
            partial_gate=partial_gate(settings),
            telemetry=SessionTelemetry(
                context.metrics, model, context.router.resolve(model).manifest.engine
            ),
        )
    except ModelNotFoundError as exc:
        await refuse(websocket, "model_not_found", exc.message)
        return
    except TheoError as exc:
        await refuse(websocket, exc.code or "invalid_request", exc.message)
        return
    except ProtocolError as exc:
        await refuse(websocket, exc.code, exc.message)
        return
    await connection.serve()


@router.get("/v1/realtime/sessions", dependencies=[Depends(require_api_key)])
async def list_sessions() -> dict[str, Any]:
    """Realtime sessions open on this gateway replica."""
    return {"object": "list", "data": SESSIONS.describe()}
