"""DTMF engine for Theo: telephone keypad tones (0-9, *, #, A-D) as text.

The engine's declaration, found by Theo through the `theo.engines` entry point of this
package. It needs no libraries of its own (numpy only), so no image: it runs in any Theo image.
It streams natively: digits come out as partials while the audio arrives.
"""

from __future__ import annotations

from pydantic import Field

from engines.settings import EngineSettings
from engines.spec import EngineSpec, Streaming


class DtmfSettings(EngineSettings):
    """`THEO_DTMF__…`: a decoder is cheap, so a replica holds many sessions on little CPU."""

    num_cpus: float = Field(default=0.25, ge=0)
    max_ongoing_requests: int = Field(default=256, ge=1)


SPEC = EngineSpec(
    name="dtmf",
    key="dtmf",
    backend="theo_dtmf.backend:DtmfBackend",
    settings=DtmfSettings,
    streaming=Streaming.NATIVE,
    description="DTMF keypad tones (Goertzel filters): native streaming partials",
)
