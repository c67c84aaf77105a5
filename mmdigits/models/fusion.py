"""Fusion heads. Each takes both modalities' tokens and embeddings and returns
(fused embedding, logits), so that `embed` and `forward` share one path."""

from __future__ import annotations

import torch
from torch import nn

from mmdigits.models.attention import attend
from mmdigits.models.dropout import Dropout

NUM_CLASSES = 10


def mlp(in_dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), Dropout(dropout))


class LinearFusion(nn.Module):
    """Concatenate the two embeddings, then an MLP head."""

    def __init__(self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.mlp = mlp(image_dim + audio_dim, hidden, dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        fused = self.mlp(torch.cat([image, audio], dim=1))
        return fused, self.head(fused)


class AttentionFusion(nn.Module):
    """Cross-modal attention: image patch tokens attend to audio frame tokens and back, each with
    residual + LayerNorm; both token sets are pooled and joined with the embeddings for the head.
    No dropout on the attention weights, as in the audio encoder: on a CPU its masks cost the
    flagship's step about 1 ms of 22, and over five seeds on both data profiles the model without
    it is as accurate (docs/benchmarks.md, "Cheaper dropout on the CPU")."""

    def __init__(
        self,
        image_dim: int,
        audio_dim: int,
        image_token_dim: int,
        audio_token_dim: int,
        image_token_count: int,
        hidden: int = 128,
        dropout: float = 0.2,
        d_fusion: int = 64,
        heads: int = 4,
        **_,
    ) -> None:
        super().__init__()
        self.image_in = nn.Linear(image_token_dim, d_fusion)
        self.audio_in = nn.Linear(audio_token_dim, d_fusion)
        self.image_position = nn.Parameter(torch.randn(1, image_token_count, d_fusion) * 0.02)  # patch positions
        self.image_from_audio = nn.MultiheadAttention(d_fusion, heads, batch_first=True)
        self.audio_from_image = nn.MultiheadAttention(d_fusion, heads, batch_first=True)
        self.image_norm = nn.LayerNorm(d_fusion)
        self.audio_norm = nn.LayerNorm(d_fusion)
        self.mlp = mlp(image_dim + audio_dim + 2 * d_fusion, hidden, dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        image_q = self.image_in(image_tokens) + self.image_position  # (B, image tokens, d)
        audio_q = self.audio_in(audio_tokens)  # (B, 39 or 20, d)
        image_x = self.image_norm(image_q + attend(self.image_from_audio, image_q, audio_q))
        audio_x = self.audio_norm(audio_q + attend(self.audio_from_image, audio_q, image_q))
        fused = self.mlp(torch.cat([image, audio, image_x.mean(dim=1), audio_x.mean(dim=1)], dim=1))
        return fused, self.head(fused)


class SumFusion(nn.Module):
    """Project both embeddings to one space and add them."""

    def __init__(self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.image = nn.Linear(image_dim, hidden)
        self.audio = nn.Linear(audio_dim, hidden)
        self.mlp = mlp(hidden, hidden, dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        fused = self.mlp(torch.relu(self.image(image) + self.audio(audio)))
        return fused, self.head(fused)


class GatedFusion(nn.Module):
    """Gated multimodal unit (Arevalo et al., 2017): a learned per-feature gate weighs the
    modalities, so a noisy view can be turned down sample by sample."""

    def __init__(self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.image = nn.Linear(image_dim, hidden)
        self.audio = nn.Linear(audio_dim, hidden)
        self.gate = nn.Linear(image_dim + audio_dim, hidden)
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        gate = torch.sigmoid(self.gate(torch.cat([image, audio], dim=1)))
        fused = gate * torch.tanh(self.image(image)) + (1 - gate) * torch.tanh(self.audio(audio))
        return fused, self.head(self.dropout(fused))


class LowRankFusion(nn.Module):
    """Low-rank multimodal tensor fusion (Liu et al., 2018). The factors are nn.Parameters, so they
    are trained and saved (two public implementations keep them as plain tensors)."""

    def __init__(
        self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, rank: int = 4, **_
    ) -> None:
        super().__init__()
        self.image_factor = nn.Parameter(torch.randn(rank, image_dim + 1, hidden) * (image_dim + 1) ** -0.5)
        self.audio_factor = nn.Parameter(torch.randn(rank, audio_dim + 1, hidden) * (audio_dim + 1) ** -0.5)
        self.rank_weights = nn.Parameter(torch.full((1, rank), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        one = image.new_ones(len(image), 1)
        image_r = torch.einsum("bi,rih->rbh", torch.cat([image, one], dim=1), self.image_factor)
        audio_r = torch.einsum("bi,rih->rbh", torch.cat([audio, one], dim=1), self.audio_factor)
        fused = torch.einsum("r,rbh->bh", self.rank_weights[0], image_r * audio_r) + self.bias
        fused = torch.relu(fused)
        return fused, self.head(self.dropout(fused))


class BimodalFusion(nn.Module):
    """Bimodal interaction: both projections plus their element-wise product, then an MLP."""

    def __init__(self, image_dim: int, audio_dim: int, hidden: int = 128, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.image = nn.Linear(image_dim, hidden)
        self.audio = nn.Linear(audio_dim, hidden)
        self.mlp = mlp(3 * hidden, hidden, dropout)
        self.head = nn.Linear(hidden, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        image_h, audio_h = self.image(image), self.audio(audio)
        fused = self.mlp(torch.cat([image_h, audio_h, image_h * audio_h], dim=1))
        return fused, self.head(fused)


class LateFusion(nn.Module):
    """Average of per-modality logits: each modality gets its own classifier."""

    def __init__(self, image_dim: int, audio_dim: int, dropout: float = 0.2, **_) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.image_head = nn.Linear(image_dim, NUM_CLASSES)
        self.audio_head = nn.Linear(audio_dim, NUM_CLASSES)

    def forward(self, image_tokens, image, audio_tokens, audio):
        logits = (self.image_head(self.dropout(image)) + self.audio_head(self.dropout(audio))) / 2
        return torch.cat([image, audio], dim=1), logits


class SingleModality(nn.Module):
    """Unimodal baseline head: a classifier on one embedding; the other input is ignored."""

    def __init__(self, embed_dim: int, dropout: float = 0.2) -> None:
        super().__init__()
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(embed_dim, NUM_CLASSES)

    def forward(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return embedding, self.head(self.dropout(embedding))


# The one list of fusions: each name here becomes the models cnn_rnn_<name> and
# cnn_transformer_<name> (registry.py), and the registry-wide tests cover them.
FUSIONS = {
    "linear": LinearFusion,
    "attention": AttentionFusion,
    "sum": SumFusion,
    "gated": GatedFusion,
    "lowrank": LowRankFusion,
    "bimodal": BimodalFusion,
    "late": LateFusion,
}
FUSION_ALIASES = {"product": "gated"}  # earlier names, so that their checkpoints still load
