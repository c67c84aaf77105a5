"""Per-modality encoders. Each returns (tokens, embedding): tokens for attention fusion,
a pooled embedding for linear fusion and for the t-SNE plots."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmdigits.models.attention import encode
from mmdigits.models.dropout import Dropout


class ImageCNN(nn.Module):
    """Three conv blocks with batch norm: (B, 28, 28) -> 16 patch tokens (4x4) and an embedding.

    `pool_first` max-pools each pooling block's convolution before its batch norm and ReLU, so they
    run on a quarter of the values (ReLU and max commute; the norm's statistics are the pooled
    map's), and the blocks run channels-last, the layout oneDNN's convolutions use: together a third
    less time for this encoder's training step on 2 CPU cores (docs/benchmarks.md).
    `pool_first=False` is the encoder of checkpoints saved before."""

    token_count = 16  # 4x4 patches of the 7x7 feature map

    def __init__(self, width: int = 16, embed_dim: int = 128, dropout: float = 0.1, pool_first: bool = True) -> None:
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            conv = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            if pool and pool_first:
                return [conv, nn.MaxPool2d(2), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            layers = [conv, nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(
            *block(1, width, pool=True),  # (B, w, 14, 14)
            *block(width, 2 * width, pool=True),  # (B, 2w, 7, 7)
            *block(2 * width, 4 * width, pool=False),  # (B, 4w, 7, 7)
        ).to(memory_format=torch.channels_last)
        self.token_dim = 4 * width
        self.project = nn.Sequential(
            nn.Flatten(), Dropout(dropout), nn.Linear(4 * width * 49, embed_dim), nn.ReLU(inplace=True)
        )
        self.embed_dim = embed_dim

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pixels = image.unsqueeze(1).contiguous(memory_format=torch.channels_last)  # (B, 1, 28, 28)
        feature_map = self.features(pixels)  # (B, 4w, 7, 7)
        # 4x4 patch tokens (each ~7x7 pixels) keep attention fusion cheap on a CPU
        patches = F.avg_pool2d(feature_map, 2, ceil_mode=True)  # (B, 4w, 4, 4)
        tokens = patches.flatten(2).transpose(1, 2)  # (B, 16, 4w)
        return tokens, self.project(feature_map)


class AudioRNN(nn.Module):
    """Bidirectional GRU over the 39 frames of 13 coefficients; mean+max pooled."""

    def __init__(self, hidden: int = 96, layers: int = 1, embed_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()
        self.rnn = nn.GRU(
            13, hidden, num_layers=layers, batch_first=True, bidirectional=True, dropout=dropout if layers > 1 else 0.0
        )
        self.token_dim = 2 * hidden
        self.project = nn.Sequential(Dropout(dropout), nn.Linear(4 * hidden, embed_dim), nn.ReLU(inplace=True))
        self.embed_dim = embed_dim

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, _ = self.rnn(audio)  # (B, 39, 2h)
        pooled = torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1)  # (B, 4h)
        return tokens, self.project(pooled)


class AudioTransformer(nn.Module):
    """A convolutional stem, then a pre-norm Transformer encoder over 20 tokens with learned
    positions; mean+max pooled like the GRU.

    The defaults were chosen on both data profiles (docs/benchmarks.md): a two-layer stem, no
    dropout inside the encoder (the input augmentation regularises; on CPU dropout's random masks
    cost a fifth of its step) and mean+max pooling lift the audio-only model from 87.8 to 91.0 %
    on the foreign profile (two seeds each). `stem_layers=1, pool="cls_mean"` is the encoder of
    checkpoints saved before."""

    def __init__(
        self,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff_dim: int = 128,
        embed_dim: int = 128,
        dropout: float = 0.0,
        stem_layers: int = 2,
        pool: str = "mean_max",
    ) -> None:
        super().__init__()
        if pool not in ("mean_max", "cls_mean"):
            raise ValueError(f"pool must be mean_max or cls_mean, not {pool!r}")
        # Width-3 convolutions give each token its neighbours (the deltas MFCC pipelines add); the
        # last has stride 2 and halves the sequence: 39 frames -> 20 tokens of 75 ms.
        stem: list[nn.Module] = []
        for index in range(stem_layers):
            last = index == stem_layers - 1
            stem.append(nn.Conv1d(d_model if index else 13, d_model, 3, stride=2 if last else 1, padding=1))
            stem += [nn.GELU()] if last else [nn.BatchNorm1d(d_model), nn.GELU()]
        self.stem = nn.Sequential(*stem)
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model)) if pool == "cls_mean" else None
        self.position = nn.Parameter(torch.randn(1, 20 + (self.cls is not None), d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.token_dim = d_model
        self.project = nn.Sequential(Dropout(dropout), nn.Linear(2 * d_model, embed_dim), nn.ReLU(inplace=True))
        self.embed_dim = embed_dim

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # Contiguous: otherwise the residual stream keeps the stem's transposed strides and every layer
        # norm (and its backward) copies its input first (about 1 % of the flagship's step on 2 CPU cores).
        tokens = self.stem(audio.transpose(1, 2)).transpose(1, 2).contiguous()  # (B, 20, d)
        if self.cls is not None:
            tokens = torch.cat([self.cls.expand(len(tokens), -1, -1), tokens], dim=1)
        tokens = self.norm(encode(self.encoder, tokens + self.position))
        if self.cls is not None:
            cls, tokens = tokens[:, 0], tokens[:, 1:]
            return tokens, self.project(torch.cat([cls, tokens.mean(dim=1)], dim=1))
        return tokens, self.project(torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1))
