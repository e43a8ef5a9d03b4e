"""`GET /v1/models` and `GET /v1/models/{id}` in OpenAI's list shape, with capabilities."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from engines.manifest import MANIFEST_FILENAME, ModelManifest
from serve.gateway.auth import require_api_key
from serve.gateway.context import GatewayContext, get_context
from serve.gateway.protocol import ModelCard, ModelList

router = APIRouter(prefix="/v1/models", dependencies=[Depends(require_api_key)])


def model_card(manifest: ModelManifest) -> ModelCard:
    created = 0
    if manifest.directory is not None:
        path = manifest.directory / MANIFEST_FILENAME
        created = int(path.stat().st_mtime) if path.exists() else 0
    return ModelCard(
        id=manifest.name,
        created=created,
        engine=manifest.engine,
        version=manifest.version,
        description=manifest.description,
        capabilities=manifest.capabilities.model_dump(mode="json"),
    )


@router.get("")
async def list_models(context: GatewayContext = Depends(get_context)) -> ModelList:
    return ModelList(data=[model_card(m.manifest) for m in context.router.models()])


@router.get("/{model_id:path}")
async def get_model(model_id: str, context: GatewayContext = Depends(get_context)) -> ModelCard:
    return model_card(context.router.resolve(model_id).manifest)
