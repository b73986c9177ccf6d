"""The denoiser: an epsilon-predicting 2-D UNet. It knows nothing of betas or schedules."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import ConfigDict, Field
from torch import nn


@dataclass(frozen=True)
class UNetConfig:
    """Network shape. `in_channels` comes from the FeatureSpec, not from the user."""

    __pydantic_config__ = ConfigDict(extra="forbid")

    in_channels: Annotated[
        int, Field(gt=0, description="Input channels; always set from the features (a value here is ignored).")
    ] = 4
    base_channels: Annotated[int, Field(ge=8, description="Channels at the finest scale (multiple of 8).")] = 32
    channel_mults: Annotated[
        tuple[int, ...], Field(min_length=3, description="Channel multiplier per scale; one entry per scale (3+).")
    ] = field(default=(1, 2, 2))
    num_res_blocks: Annotated[int, Field(ge=1, description="Residual blocks per scale.")] = 1
    attention: Annotated[
        bool, Field(description="Self-attention at the coarsest scale and in the middle block.")
    ] = True
    num_heads: Annotated[int, Field(ge=1, description="Attention heads.")] = 4
    dropout: Annotated[float, Field(ge=0, lt=1, description="Dropout inside residual blocks.")] = 0.0
    num_machines: Annotated[
        int, Field(ge=0, description="Machines of a fleet bundle (set by `sentinel train --data NAME=DIR ...`; a "
                   "value here is ignored). 0: one machine, no machine id, no classifier.")
    ] = 0

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["channel_mults"] = list(self.channel_mults)
        return d

    @property
    def downsampling(self) -> int:
        """Input height and width must be multiples of this."""
        return 2 ** (len(self.channel_mults) - 1)


def _groups(ch: int) -> int:
    return math.gcd(8, ch)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of integer timesteps, as in the Transformer and DDPM."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, temb: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(_groups(cin), cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.temb = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(_groups(cout), cout)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.temb(emb)[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class SelfAttention(nn.Module):
    def __init__(self, ch: int, heads: int) -> None:
        super().__init__()
        self.heads = heads if ch % heads == 0 else 1
        self.norm = nn.GroupNorm(_groups(ch), ch)
        self.qkv = nn.Conv2d(ch, 3 * ch, 1)
        self.proj = nn.Conv2d(ch, ch, 1)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class _Level(nn.Module):
    def __init__(self, blocks: list[ResBlock], attn: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attn = attn

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            h = block(h, emb)
        return self.attn(h)


def pool_features(feats: list[torch.Tensor]) -> torch.Tensor:
    """Mean and std over time-frequency of every channel at every scale -> [B, D]."""
    parts = []
    for f in feats:
        flat = f.flatten(2)
        parts += [flat.mean(-1), flat.std(-1)]
    return torch.cat(parts, dim=1)


class UNet(nn.Module):
    """`forward(x, t) -> eps`; `encode(x, t)` -> the multi-scale encoder features (finest first,
    bottleneck last), which the scorer uses for its semantic discrepancy at half the cost.

    A fleet network (`num_machines` > 0) also takes a machine id per input, 1..num_machines, 0 being
    the null id (the unconditional model, trained by dropping ids). Only the decoder hears the id:
    the encoder stays machine-blind, so `classify(encode(x, t))` (which machine, 0 = none of
    them) says what the sound itself says, not what it was told."""

    def __init__(self, config: UNetConfig) -> None:
        super().__init__()
        self.config = config
        base, mults, nrb = config.base_channels, config.channel_mults, config.num_res_blocks
        temb = 4 * base
        self.time_mlp = nn.Sequential(nn.Linear(base, temb), nn.SiLU(), nn.Linear(temb, temb))
        self.conv_in = nn.Conv2d(config.in_channels, base, 3, padding=1)
        chans = [base * m for m in mults]
        last = len(chans) - 1

        def attn(level: int, ch: int) -> nn.Module:
            return SelfAttention(ch, config.num_heads) if config.attention and level == last else nn.Identity()

        self.down = nn.ModuleList()
        self.downsample = nn.ModuleList()
        cin = base
        for i, ch in enumerate(chans):
            blocks = [ResBlock(cin if j == 0 else ch, ch, temb, config.dropout) for j in range(nrb)]
            self.down.append(_Level(blocks, attn(i, ch)))
            self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1) if i < last else nn.Identity())
            cin = ch
        self.mid = _Level(
            [ResBlock(cin, cin, temb, config.dropout), ResBlock(cin, cin, temb, config.dropout)],
            SelfAttention(cin, config.num_heads) if config.attention else nn.Identity(),
        )
        self.up = nn.ModuleList()
        self.upsample = nn.ModuleList()
        for i in reversed(range(len(chans))):
            ch = chans[i]
            blocks = [ResBlock((cin + ch) if j == 0 else ch, ch, temb, config.dropout) for j in range(nrb)]
            self.up.append(_Level(blocks, attn(i, ch)))
            self.upsample.append(nn.Conv2d(ch, chans[i - 1], 3, padding=1) if i > 0 else nn.Identity())
            cin = chans[i - 1] if i > 0 else ch
        if config.num_machines:
            self.machine_embedding = nn.Embedding(config.num_machines + 1, temb)
            nn.init.zeros_(self.machine_embedding.weight)  # starts as the unconditional network
            dim = sum(2 * c for c in chans) + 2 * chans[-1]  # pooled mean/std of every scale and the middle
            self.classifier = nn.Linear(dim, config.num_machines + 1)
        self.norm_out = nn.GroupNorm(_groups(base), base)
        self.conv_out = nn.Conv2d(base, config.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def _embed(self, x: torch.Tensor, t: torch.Tensor | int) -> torch.Tensor:
        t = torch.as_tensor(t, device=x.device)
        if t.dim() == 0:
            t = t.expand(x.shape[0])
        return self.time_mlp(timestep_embedding(t, self.config.base_channels))

    def _encode(self, x: torch.Tensor, emb: torch.Tensor) -> list[torch.Tensor]:
        h = self.conv_in(x)
        skips = []
        for level, down in zip(self.down, self.downsample, strict=True):
            h = level(h, emb)
            skips.append(h)
            h = down(h)
        skips.append(self.mid(h, emb))
        return skips

    def encode(self, x: torch.Tensor, t: torch.Tensor | int) -> list[torch.Tensor]:
        return self._encode(x, self._embed(x, t))

    def classify(self, feats: list[torch.Tensor]) -> torch.Tensor:
        """[B, num_machines + 1] logits of which machine encoder features come from (0: none)."""
        return self.classifier(pool_features(feats))

    def forward(self, x: torch.Tensor, t: torch.Tensor | int, machine: torch.Tensor | None = None,
                with_logits: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor | None]:
        """eps; with `with_logits`, (eps, the machine logits of the same encoder pass: None for a
        network of one machine). One method for both, so that DDP sees every call."""
        emb = self._embed(x, t)
        feats = self._encode(x, emb)
        logits = self.classify(feats) if self.config.num_machines else None
        dec = emb
        if self.config.num_machines:
            ids = torch.zeros(x.shape[0], dtype=torch.long, device=x.device) if machine is None else machine
            dec = emb + self.machine_embedding(ids.to(x.device))
        h = feats.pop()
        for level, up in zip(self.up, self.upsample, strict=True):
            h = level(torch.cat([h, feats.pop()], dim=1), dec)
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2, mode="nearest"))
        eps = self.conv_out(F.silu(self.norm_out(h)))
        return (eps, logits) if with_logits else eps
