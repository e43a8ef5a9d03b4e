"""The model a realtime session transcribes with, and the one place its partial policy is
chosen: from what the model's engine and manifest declare about streaming
(`engines.spec.streams_natively`), never from the architecture or the engine's name."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engines.manifest import ModelManifest
from engines.spec import streams_natively
from serve.errors import UnsupportedCapabilityError
from serve.realtime.engine import Transcriber
from serve.realtime.native_partials import NativePartialPolicy
from serve.realtime.policy import PartialPolicy
from serve.realtime.redecode import LocalAgreementPolicy


@dataclass(frozen=True)
class SessionModel:
    manifest: ModelManifest
    transcribe: Transcriber
    handle: Any = None
    """The engine deployment's handle; models that stream natively need it."""

    @property
    def name(self) -> str:
        return self.manifest.name

    def policy(self, timeout_s: float) -> PartialPolicy:
        return choose_policy(self.manifest, self.transcribe, timeout_s, self.handle)


def choose_policy(
    manifest: ModelManifest, transcribe: Transcriber, timeout_s: float, handle: Any = None
) -> PartialPolicy:
    """Native partials when the model streams natively (they need the deployment `handle`:
    its sticky streaming replicas); otherwise re-decoding with LocalAgreement."""
    if not streams_natively(manifest):
        return LocalAgreementPolicy(transcribe, manifest.capabilities, timeout_s)
    if handle is None:
        raise UnsupportedCapabilityError(
            f"The model '{manifest.name}' ({manifest.engine}) streams natively and needs its "
            "streaming replicas.",
            param="model",
        )
    return NativePartialPolicy(handle, transcribe, manifest.capabilities, timeout_s)
