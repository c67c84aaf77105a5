"""Per-modality encoders. Each returns (tokens, embedding): tokens for attention fusion,
a pooled embedding for linear fusion and for the t-SNE plots."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class ImageCNN(nn.Module):
    """Three conv blocks with batch norm: (B, 28, 28) -> 16 patch tokens (4x4) and an embedding."""

    token_count = 16  # 4x4 patches of the 7x7 feature map

    def __init__(self, width: int = 16, embed_dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__()

        def block(cin: int, cout: int, pool: bool) -> list[nn.Module]:
            layers = [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            return layers + ([nn.MaxPool2d(2)] if pool else [])

        self.features = nn.Sequential(
            *block(1, width, pool=True),  # (B, w, 14, 14)
            *block(width, 2 * width, pool=True),  # (B, 2w, 7, 7)
            *block(2 * width, 4 * width, pool=False),  # (B, 4w, 7, 7)
        )
        self.token_dim = 4 * width
        self.project = nn.Sequential(
            nn.Flatten(), nn.Dropout(dropout), nn.Linear(4 * width * 49, embed_dim), nn.ReLU(inplace=True)
        )
        self.embed_dim = embed_dim

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feature_map = self.features(image.unsqueeze(1))  # (B, 4w, 7, 7)
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
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * hidden, embed_dim), nn.ReLU(inplace=True))
        self.embed_dim = embed_dim

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens, _ = self.rnn(audio)  # (B, 39, 2h)
        pooled = torch.cat([tokens.mean(dim=1), tokens.amax(dim=1)], dim=1)  # (B, 4h)
        return tokens, self.project(pooled)


class AudioTransformer(nn.Module):
    """The 39 frames as 39 tokens (+ CLS), learned positions, pre-norm Transformer encoder."""

    def __init__(
        self,
        d_model: int = 64,
        heads: int = 4,
        layers: int = 2,
        ff_dim: int = 128,
        embed_dim: int = 128,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        # A width-3, stride-2 convolution gives each token its neighbours (the deltas MFCC
        # pipelines add) and halves the sequence: 39 frames -> 20 tokens of 75 ms.
        self.stem = nn.Sequential(nn.Conv1d(13, d_model, 3, stride=2, padding=1), nn.GELU())
        self.cls = nn.Parameter(torch.zeros(1, 1, d_model))
        self.position = nn.Parameter(torch.randn(1, 21, d_model) * 0.02)
        layer = nn.TransformerEncoderLayer(
            d_model, heads, ff_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.token_dim = d_model
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * d_model, embed_dim), nn.ReLU(inplace=True))
        self.embed_dim = embed_dim

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        frames = self.stem(audio.transpose(1, 2)).transpose(1, 2)  # (B, 20, d)
        tokens = torch.cat([self.cls.expand(len(frames), -1, -1), frames], dim=1) + self.position
        tokens = self.norm(self.encoder(tokens))  # (B, 21, d)
        pooled = torch.cat([tokens[:, 0], tokens[:, 1:].mean(dim=1)], dim=1)  # CLS + mean
        return tokens[:, 1:], self.project(pooled)
