"""Test tooling: builds WeNet-compatible TorchScript models with random weights.

`python -m engines.wenet.testing DIR [--size tiny|standard] [--playback TEXT]` writes
`final.zip`, `units.txt` and a `theo.yaml` manifest into DIR. The models expose exactly the
methods of WeNet's `export_jit.py` output, so the engine loads them like a real export.

A playback model (`--playback`) emits the units of a given text, one unit per
`frames_per_token` encoder frames of speech (speech = frames whose mean log-mel energy
exceeds a threshold; silence emits blank), so tests get exact transcripts, endpoints at real
pauses and timestamps at speech. Alternatives `{primary|alternative}` emit both words on the
same frame with the primary slightly ahead: a hot word on the alternative flips the output.
The position in the text lives in the model's cnn cache, so, like a real model, it restarts
when the runtime resets the encoder at an endpoint: every segment replays the text from the
start.
"""

from engines.wenet.testing.generate import GeneratedModel, generate_model

__all__ = ["GeneratedModel", "generate_model"]
