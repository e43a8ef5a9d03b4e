"""The playback model: a real encoder runs, but the CTC output follows a script.

Encoder output = [hidden | script posteriors]; `ctc_activation` mixes a trace of the real CTC
head into the script posteriors. State (speech frames seen) rides in an extra slot of the
cnn cache, which the runtime passes back untouched.
"""

import torch
from torch import Tensor, nn

from engines.wenet.testing.modules import U2Model

SPIKE = 0.9
"""Posterior of a scripted unit on its frame (no alternative)."""
PRIMARY, ALTERNATIVE = 0.55, 0.35
"""Posteriors on a frame with an alternative: log(0.55/0.35) = 0.45 < a hot-word bonus."""
SPIKE_BLANK = 0.09
SILENCE_BLANK = 0.99
MIX = 1e-4
"""Weight of the real CTC head's posteriors in the output."""


def speech_mask(xs: Tensor, rate: int, right_context: int, threshold: float, frames: int) -> Tensor:
    """Which encoder frames of the fbank chunk `xs` [1, T, bins] are speech: mean log-mel
    energy over each output frame's receptive field above `threshold`."""
    energy = xs.mean(dim=-1).unsqueeze(0)  # [1, 1, T]
    pooled = torch.nn.functional.avg_pool1d(energy, right_context + 1, rate).view(-1)
    mask = pooled[:frames] > threshold
    if mask.size(0) < frames:
        mask = torch.cat([mask, torch.zeros(frames - mask.size(0), dtype=torch.bool)])
    return mask


class PlaybackModel(nn.Module):
    primary: Tensor
    alternative: Tensor

    def __init__(
        self,
        base: U2Model,
        primary: list[int],
        alternative: list[int],
        *,
        blank: int,
        vocab: int,
        frames_per_token: int,
        speech_threshold: float,
    ) -> None:
        super().__init__()
        self.base = base
        self.register_buffer("primary", torch.tensor(primary, dtype=torch.long))
        self.register_buffer("alternative", torch.tensor(alternative, dtype=torch.long))
        self.blank = blank
        self.vocab = vocab
        self.frames_per_token = frames_per_token
        self.speech_threshold = speech_threshold
        self.d_model = base.encoder.d_model
        self.rate = base.encoder.embed.rate
        self.context = base.encoder.embed.right_context
        # TorchScript reads module attributes, not module-level globals
        self.spike = SPIKE
        self.spike_blank = SPIKE_BLANK
        self.primary_p = PRIMARY
        self.alternative_p = ALTERNATIVE
        self.silence_blank = SILENCE_BLANK
        self.mix = MIX

    def forward(self, xs: Tensor) -> Tensor:
        empty = torch.zeros(0, 0, 0, 0)
        out = self.forward_encoder_chunk(xs, 0, -1, empty, empty)[0]
        return self.ctc_activation(out)

    @torch.jit.export
    def subsampling_rate(self) -> int:
        return self.rate

    @torch.jit.export
    def right_context(self) -> int:
        return self.context

    @torch.jit.export
    def sos_symbol(self) -> int:
        return self.base.sos

    @torch.jit.export
    def eos_symbol(self) -> int:
        return self.base.eos

    @torch.jit.export
    def is_bidirectional_decoder(self) -> bool:
        return False

    @torch.jit.export
    def forward_encoder_chunk(
        self,
        xs: Tensor,
        offset: int,
        required_cache_size: int,
        att_cache: Tensor = torch.zeros(0, 0, 0, 0),  # noqa: B008 (WeNet's signature)
        cnn_cache: Tensor = torch.zeros(0, 0, 0, 0),  # noqa: B008
    ) -> tuple[Tensor, Tensor, Tensor]:
        spoken = 0
        base_cnn = cnn_cache
        if cnn_cache.size(0) > 0:
            spoken = int(cnn_cache[-1, 0, 0, 0].item())
            base_cnn = cnn_cache[:-1]
        hidden, att, cnn = self.base.forward_encoder_chunk(
            xs, offset, required_cache_size, att_cache, base_cnn
        )
        speech = speech_mask(xs, self.rate, self.context, self.speech_threshold, hidden.size(1))
        probs, spoken = self.script(speech, spoken)
        state = torch.zeros(1, cnn.size(1), cnn.size(2), cnn.size(3))
        state[0, 0, 0, 0] = float(spoken)
        out = torch.cat([hidden, probs.unsqueeze(0)], dim=-1)
        return out, att, torch.cat([cnn, state], dim=0)

    def script(self, speech: Tensor, spoken: int) -> tuple[Tensor, int]:
        """Posteriors [frames, vocab]: blank in silence and between units; the next unit of
        the script on every `frames_per_token`-th speech frame."""
        frames = speech.size(0)
        others = self.vocab - 1
        probs = torch.full((frames, self.vocab), (1.0 - self.silence_blank) / others)
        probs[:, self.blank] = self.silence_blank
        steps = self.primary.size(0)
        for t in range(frames):
            if not bool(speech[t]):
                continue
            step = spoken // self.frames_per_token
            if spoken % self.frames_per_token == 0 and step < steps:
                primary = int(self.primary[step])
                alternative = int(self.alternative[step])
                if alternative >= 0:
                    rest = (1.0 - self.primary_p - self.alternative_p - self.spike_blank) / (
                        self.vocab - 3
                    )
                    probs[t].fill_(rest)
                    probs[t, primary] = self.primary_p
                    probs[t, alternative] = self.alternative_p
                else:
                    rest = (1.0 - self.spike - self.spike_blank) / (self.vocab - 2)
                    probs[t].fill_(rest)
                    probs[t, primary] = self.spike
                probs[t, self.blank] = self.spike_blank
            spoken += 1
        return probs, spoken

    @torch.jit.export
    def ctc_activation(self, xs: Tensor) -> Tensor:
        hidden = xs[:, :, : self.d_model]
        scripted = xs[:, :, self.d_model :]
        real = torch.softmax(self.base.ctc(hidden), dim=-1)
        return torch.log((1.0 - self.mix) * scripted + self.mix * real)

    @torch.jit.export
    def forward_attention_decoder(
        self, hyps: Tensor, hyps_lens: Tensor, encoder_out: Tensor, reverse_weight: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        return self.base.forward_attention_decoder(
            hyps, hyps_lens, encoder_out[:, :, : self.d_model], reverse_weight
        )
