"""A small U2-style conformer with exactly the methods WeNet's `export_jit.py` exports.

Encoder: global CMVN -> conv2d subsampling (x4 or x6) -> sinusoidal positions -> conformer
blocks (macaron FFN, self-attention with a key/value cache, causal depthwise convolution
with a left-context cache) -> CTC head. Decoder: a small transformer for attention
rescoring. Random weights; the architecture, not the accuracy, is the point.
"""

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass(frozen=True)
class ModelSize:
    d_model: int
    heads: int
    blocks: int
    ffn: int
    kernel: int
    decoder_blocks: int
    decoder_ffn: int


TINY = ModelSize(d_model=32, heads=2, blocks=2, ffn=64, kernel=5, decoder_blocks=1, decoder_ffn=64)
STANDARD = ModelSize(
    d_model=256, heads=4, blocks=12, ffn=2048, kernel=15, decoder_blocks=6, decoder_ffn=2048
)
SIZES = {"tiny": TINY, "standard": STANDARD}


def positions(offset: int, size: int, d_model: int) -> Tensor:
    """Sinusoidal encodings of positions offset..offset+size-1, computed (no length cap)."""
    pos = torch.arange(offset, offset + size, dtype=torch.float32).unsqueeze(1)
    div = torch.exp(
        torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model)
    )
    angles = pos * div
    # interleaved sin, cos (no in-place slices, so it also exports to ONNX)
    return torch.stack([torch.sin(angles), torch.cos(angles)], dim=-1).view(1, size, d_model)


class GlobalCmvn(nn.Module):
    mean: Tensor
    istd: Tensor

    def __init__(self, mean: Tensor, istd: Tensor) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("istd", istd)

    def forward(self, x: Tensor) -> Tensor:
        return (x - self.mean) * self.istd


class Conv2dSubsampling(nn.Module):
    def __init__(self, idim: int, odim: int, rate: int) -> None:
        super().__init__()
        if rate == 4:
            second_kernel, second_stride, right_context = 3, 2, 6
            freq = ((idim - 1) // 2 - 1) // 2
        elif rate == 6:
            second_kernel, second_stride, right_context = 5, 3, 10
            freq = ((idim - 1) // 2 - 2) // 3
        else:
            raise ValueError("subsampling rate must be 4 or 6")
        self.conv = nn.Sequential(
            nn.Conv2d(1, odim, 3, 2),
            nn.ReLU(),
            nn.Conv2d(odim, odim, second_kernel, second_stride),
            nn.ReLU(),
        )
        self.out = nn.Linear(odim * freq, odim)
        self.rate = rate
        self.right_context = right_context

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(x.unsqueeze(1))
        b, c, t, f = x.size()
        out: Tensor = self.out(x.transpose(1, 2).contiguous().view(b, t, c * f))
        return out


class FeedForward(nn.Module):
    def __init__(self, d_model: int, hidden: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(d_model, hidden)
        self.w2 = nn.Linear(hidden, d_model)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.w2(torch.nn.functional.silu(self.w1(x)))
        return out


class Attention(nn.Module):
    """Multi-head attention; `cache` holds earlier keys and values, [1, heads, t, 2 * d_k]."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.d_k = d_model // heads
        self.q = nn.Linear(d_model, d_model)
        self.k = nn.Linear(d_model, d_model)
        self.v = nn.Linear(d_model, d_model)
        self.o = nn.Linear(d_model, d_model)

    def _split(self, x: Tensor) -> Tensor:
        b, t, _ = x.size()
        return x.view(b, t, self.heads, self.d_k).transpose(1, 2)

    def forward(
        self, query: Tensor, memory: Tensor, mask: Tensor, cache: Tensor
    ) -> tuple[Tensor, Tensor]:
        q = self._split(self.q(query))
        k = self._split(self.k(memory))
        v = self._split(self.v(memory))
        if cache.size(0) > 0:
            k_cache, v_cache = torch.split(cache, cache.size(-1) // 2, dim=-1)
            k = torch.cat([k_cache, k], dim=2)
            v = torch.cat([v_cache, v], dim=2)
        new_cache = torch.cat([k, v], dim=-1)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.d_k)
        if mask.size(0) > 0:
            scores = scores.masked_fill(~mask.unsqueeze(1), -1e4)
        attn = torch.softmax(scores, dim=-1)
        b, _, t, _ = q.size()
        out = torch.matmul(attn, v).transpose(1, 2).contiguous().view(b, t, self.heads * self.d_k)
        return self.o(out), new_cache


class CausalConvolution(nn.Module):
    """Conformer convolution module, causal: `cache` is the last kernel-1 frames, [1, d, k-1]."""

    def __init__(self, d_model: int, kernel: int) -> None:
        super().__init__()
        self.pointwise_in = nn.Conv1d(d_model, 2 * d_model, 1)
        self.depthwise = nn.Conv1d(d_model, d_model, kernel, groups=d_model)
        self.norm = nn.LayerNorm(d_model)
        self.pointwise_out = nn.Conv1d(d_model, d_model, 1)
        self.lorder = kernel - 1

    def forward(self, x: Tensor, cache: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.nn.functional.glu(self.pointwise_in(x.transpose(1, 2)), dim=1)
        if cache.size(0) == 0:
            x = torch.nn.functional.pad(x, (self.lorder, 0))
        else:
            x = torch.cat([cache, x], dim=2)
        new_cache = x[:, :, x.size(2) - self.lorder :]
        x = self.depthwise(x)
        x = self.norm(x.transpose(1, 2)).transpose(1, 2)
        x = self.pointwise_out(torch.nn.functional.silu(x))
        return x.transpose(1, 2), new_cache


class ConformerBlock(nn.Module):
    def __init__(self, size: ModelSize) -> None:
        super().__init__()
        d = size.d_model
        self.ff1 = FeedForward(d, size.ffn)
        self.attn = Attention(d, size.heads)
        self.conv = CausalConvolution(d, size.kernel)
        self.ff2 = FeedForward(d, size.ffn)
        self.norm_ff1 = nn.LayerNorm(d)
        self.norm_attn = nn.LayerNorm(d)
        self.norm_conv = nn.LayerNorm(d)
        self.norm_ff2 = nn.LayerNorm(d)
        self.norm_out = nn.LayerNorm(d)

    def forward(
        self, x: Tensor, att_cache: Tensor, cnn_cache: Tensor, att_mask: Tensor
    ) -> tuple[Tensor, Tensor, Tensor]:
        x = x + 0.5 * self.ff1(self.norm_ff1(x))
        h = self.norm_attn(x)
        att, new_att_cache = self.attn(h, h, att_mask, att_cache)
        x = x + att
        conv, new_cnn_cache = self.conv(self.norm_conv(x), cnn_cache)
        x = x + conv
        x = x + 0.5 * self.ff2(self.norm_ff2(x))
        return self.norm_out(x), new_att_cache, new_cnn_cache


class Encoder(nn.Module):
    def __init__(self, idim: int, size: ModelSize, rate: int, cmvn: GlobalCmvn) -> None:
        super().__init__()
        self.cmvn = cmvn
        self.embed = Conv2dSubsampling(idim, size.d_model, rate)
        self.blocks = nn.ModuleList([ConformerBlock(size) for _ in range(size.blocks)])
        self.d_model = size.d_model
        self.scale = math.sqrt(size.d_model)

    def forward_chunk(
        self,
        xs: Tensor,
        offset: int,
        required_cache_size: int,
        att_cache: Tensor,
        cnn_cache: Tensor,
        att_mask: Tensor = torch.ones((0, 0, 0), dtype=torch.bool),  # noqa: B008
    ) -> tuple[Tensor, Tensor, Tensor]:
        """WeNet's `BaseEncoder.forward_chunk` contract (cache shapes included).

        `att_mask` [1, 1, cache + chunk] marks valid keys; WeNet's ONNX runtime passes it with
        a zero-filled fixed-size cache. Empty: every key is valid."""
        x = self.embed(self.cmvn(xs))
        chunk = x.size(1)
        x = x * self.scale + positions(offset, chunk, self.d_model)
        layers = att_cache.size(0)
        key_size = att_cache.size(2) + chunk
        if required_cache_size < 0:
            next_cache_start = 0
        elif required_cache_size == 0:
            next_cache_start = key_size
        else:
            next_cache_start = max(key_size - required_cache_size, 0)
        att_out: list[Tensor] = []
        cnn_out: list[Tensor] = []
        empty = torch.zeros(0, 0, 0, 0)
        for i, block in enumerate(self.blocks):
            a = att_cache[i : i + 1] if layers > 0 else empty
            c = cnn_cache[i] if cnn_cache.size(0) > 0 else empty
            x, new_a, new_c = block(x, a, c, att_mask)
            att_out.append(new_a[:, :, next_cache_start:, :])
            cnn_out.append(new_c.unsqueeze(0))
        return x, torch.cat(att_out, dim=0), torch.cat(cnn_out, dim=0)


class DecoderBlock(nn.Module):
    def __init__(self, d_model: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.self_attn = Attention(d_model, heads)
        self.cross_attn = Attention(d_model, heads)
        self.ff = FeedForward(d_model, ffn)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.norm3 = nn.LayerNorm(d_model)

    def forward(self, x: Tensor, self_mask: Tensor, memory: Tensor) -> Tensor:
        no_cache = torch.zeros(0, 0, 0, 0)
        no_mask = torch.ones(0, 0, 0, dtype=torch.bool)
        h = self.norm1(x)
        x = x + self.self_attn(h, h, self_mask, no_cache)[0]
        x = x + self.cross_attn(self.norm2(x), memory, no_mask, no_cache)[0]
        out: Tensor = x + self.ff(self.norm3(x))
        return out


class AttentionDecoder(nn.Module):
    def __init__(self, vocab: int, size: ModelSize) -> None:
        super().__init__()
        d = size.d_model
        self.embed = nn.Embedding(vocab, d)
        self.blocks = nn.ModuleList(
            [DecoderBlock(d, size.heads, size.decoder_ffn) for _ in range(size.decoder_blocks)]
        )
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, vocab)
        self.d_model = d

    def forward(self, memory: Tensor, hyps: Tensor, hyps_lens: Tensor) -> Tensor:
        length = hyps.size(1)
        x = self.embed(hyps) * math.sqrt(self.d_model) + positions(0, length, self.d_model)
        steps = torch.arange(length)
        causal = steps.unsqueeze(0) <= steps.unsqueeze(1)
        valid = steps.unsqueeze(0) < hyps_lens.unsqueeze(1)
        mask = causal.unsqueeze(0) & valid.unsqueeze(1)
        for block in self.blocks:
            x = block(x, mask, memory)
        out: Tensor = self.out(self.norm(x))
        return out


class U2Model(nn.Module):
    """The exported interface of a WeNet U2 model (see WeNet's `asr_model.py`)."""

    def __init__(
        self, encoder: Encoder, vocab: int, decoder: AttentionDecoder, sos: int, eos: int
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.ctc = nn.Linear(encoder.d_model, vocab)
        self.decoder = decoder
        self.sos = sos
        self.eos = eos

    def forward(self, xs: Tensor) -> Tensor:
        empty = torch.zeros(0, 0, 0, 0)
        out = self.forward_encoder_chunk(xs, 0, -1, empty, empty)[0]
        logp: Tensor = self.ctc_activation(out)
        return logp

    @torch.jit.export
    def subsampling_rate(self) -> int:
        return self.encoder.embed.rate

    @torch.jit.export
    def right_context(self) -> int:
        return self.encoder.embed.right_context

    @torch.jit.export
    def sos_symbol(self) -> int:
        return self.sos

    @torch.jit.export
    def eos_symbol(self) -> int:
        return self.eos

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
        return self.encoder.forward_chunk(xs, offset, required_cache_size, att_cache, cnn_cache)

    @torch.jit.export
    def ctc_activation(self, xs: Tensor) -> Tensor:
        logp: Tensor = torch.log_softmax(self.ctc(xs), dim=-1)
        return logp

    @torch.jit.export
    def forward_attention_decoder(
        self, hyps: Tensor, hyps_lens: Tensor, encoder_out: Tensor, reverse_weight: float = 0.0
    ) -> tuple[Tensor, Tensor]:
        memory = encoder_out.repeat(hyps.size(0), 1, 1)
        logp = torch.log_softmax(self.decoder(memory, hyps, hyps_lens), dim=-1)
        return logp, torch.zeros(0)
