"""The model every command uses: normalise -> encode each modality -> fuse -> logits."""

from __future__ import annotations

import torch
from torch import nn

from mmdigits.models.encoders import AudioRNN, AudioTransformer, ImageCNN
from mmdigits.models.fusion import FUSION_ALIASES, FUSIONS, SingleModality


def spread(values: torch.Tensor, dim: tuple[int, ...] | None) -> torch.Tensor:
    """Standard deviation floored at 1e-6 x the largest: a near-constant feature is not blown up,
    and the floor moves with the units (audio x 1e-9 trains like audio); a constant input gets 1."""
    std = values.std(dim=dim)
    largest = std.max()
    return std.clamp_min(1e-6 * largest) if largest > 0 else torch.ones_like(std)


class MultimodalNet(nn.Module):
    """forward(image (B, 28, 28), audio (B, 39, 13)) -> logits (B, 10), inputs in the files' scale.

    The normalisation statistics live in buffers fitted on the training split, so they travel in
    the state_dict and every caller (predict, tsne, analyze) applies the training statistics.
    """

    def __init__(
        self,
        image: str | None = "cnn",
        audio: str | None = "transformer",
        fusion: str = "attention",
        width: int = 16,
        image_pool_first: bool = True,
        embed_dim: int = 128,
        hidden: int = 128,
        dropout: float = 0.2,
        rnn_hidden: int = 96,
        d_model: int = 64,
        audio_layers: int = 2,
        audio_stem_layers: int = 2,
        audio_pool: str = "mean_max",
        heads: int = 4,
        rank: int = 4,
        expert_vote: bool = False,
    ) -> None:
        super().__init__()
        self.expert_vote = expert_vote
        self.image_encoder = ImageCNN(width, embed_dim, pool_first=image_pool_first) if image == "cnn" else None
        if audio == "rnn":
            self.audio_encoder = AudioRNN(rnn_hidden, embed_dim=embed_dim)
        elif audio == "transformer":
            self.audio_encoder = AudioTransformer(
                d_model, heads, audio_layers, 2 * d_model, embed_dim, stem_layers=audio_stem_layers, pool=audio_pool
            )
        else:
            self.audio_encoder = None
        if not self.bimodal:
            self.fusion = SingleModality(embed_dim, dropout)
        else:
            self.fusion = FUSIONS[FUSION_ALIASES.get(fusion, fusion)](
                image_dim=embed_dim,
                audio_dim=embed_dim,
                image_token_dim=self.image_encoder.token_dim,
                audio_token_dim=self.audio_encoder.token_dim,
                image_token_count=self.image_encoder.token_count,
                hidden=hidden,
                dropout=dropout,
                heads=heads,
                rank=rank,
            )
        if self.bimodal:
            # Per-modality heads trained beside the fused one (deep supervision): every encoder has
            # to learn on its own, so the fused model cannot lean greedily on the easier modality.
            self.image_aux = nn.Linear(embed_dim, 10)
            self.audio_aux = nn.Linear(embed_dim, 10)
        self.register_buffer("image_mean", torch.zeros(()))
        self.register_buffer("image_std", torch.ones(()))
        # float64: audio in units far from its spread (x 0.01 + 3) keeps its precision until the
        # z-scores, so the units of the files do not change what the model learns.
        self.register_buffer("audio_mean", torch.zeros(13, dtype=torch.float64))
        self.register_buffer("audio_std", torch.ones(13, dtype=torch.float64))
        self.register_buffer("temperature", torch.ones(()))  # fitted on validation after training

    @torch.no_grad()
    def fit_normalisation(self, image: torch.Tensor, audio: torch.Tensor) -> dict[str, list[float] | float]:
        """Set the buffers from training-split tensors; return them as plain numbers."""
        self.image_mean.copy_(image.mean())
        self.image_std.copy_(spread(image, dim=None))
        audio = audio.to(self.audio_mean.dtype)
        self.audio_mean.copy_(audio.mean(dim=(0, 1)))
        self.audio_std.copy_(spread(audio, dim=(0, 1)))
        return self.normalisation()

    def normalisation(self) -> dict[str, list[float] | float]:
        return {
            "image_mean": self.image_mean.item(),
            "image_std": self.image_std.item(),
            "audio_mean": self.audio_mean.tolist(),
            "audio_std": self.audio_std.tolist(),
        }

    def normalise(self, image: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs in the files' units -> float32 z-scores with the training split's statistics
        (the audio's computed in the statistics' float64 where the device has it)."""
        image = (image.view(-1, 28, 28) - self.image_mean) / self.image_std  # (B, 28, 28)
        audio = audio.view(-1, 39, 13).to(self.audio_mean.dtype)
        audio = ((audio - self.audio_mean) / self.audio_std).float()  # (B, 39, 13)
        return image, audio

    def to_device(self, device: torch.device | str) -> MultimodalNet:
        """`.to(device)`; Apple MPS has no float64, so there the audio statistics become float32."""
        if torch.device(device).type == "mps":
            self.audio_mean, self.audio_std = self.audio_mean.float(), self.audio_std.float()
        return self.to(device)

    @property
    def bimodal(self) -> bool:
        """Whether the model reads both modalities (the unimodal baselines read one)."""
        return self.image_encoder is not None and self.audio_encoder is not None

    def pixel_bounds(self) -> tuple[float, float]:
        """The z-scores of a black (0) and a white (1) pixel: the images' documented range."""
        mean, std = self.image_mean.item(), self.image_std.item()
        return -mean / std, (1 - mean) / std

    def _fuse(self, image: torch.Tensor, audio: torch.Tensor, normalised: bool = False):
        if not normalised:
            image, audio = self.normalise(image, audio)
        image_embedding = audio_embedding = None
        if self.image_encoder is not None:
            image_tokens, image_embedding = self.image_encoder(image)
        if self.audio_encoder is not None:
            audio_tokens, audio_embedding = self.audio_encoder(audio)
        if self.audio_encoder is None:
            fused, logits = self.fusion(image_embedding)
        elif self.image_encoder is None:
            fused, logits = self.fusion(audio_embedding)
        else:
            fused, logits = self.fusion(image_tokens, image_embedding, audio_tokens, audio_embedding)
        return image_embedding, audio_embedding, fused, logits

    def head_logits(
        self, image: torch.Tensor, audio: torch.Tensor, normalised: bool = False
    ) -> dict[str, torch.Tensor]:
        """Each head's own logits (B, 10), before the vote and the temperature: the fusion head's,
        and for a bimodal model the image and audio experts', each of which reads one modality."""
        image_embedding, audio_embedding, _, logits = self._fuse(image, audio, normalised)
        heads = {"fusion": logits}
        if self.bimodal:
            heads |= {"image": self.image_aux(image_embedding), "audio": self.audio_aux(audio_embedding)}
        return heads

    def forward(self, image: torch.Tensor, audio: torch.Tensor, aux: bool = False, normalised: bool = False):
        """Logits (B, 10); with aux=True also the per-modality heads' logits for the training loss.
        normalised=True: the inputs are already z-scores (training augments in those units)."""
        found = self.head_logits(image, audio, normalised)
        logits = found["fusion"]
        heads = [found["image"], found["audio"]] if self.bimodal else []
        if self.expert_vote and heads:
            # Product of experts: each modality's own head adds its log-odds, so a modality whose
            # input is ruined (a flat head) loses its say, and the fused head corrects the rest.
            logits = logits + heads[0] + heads[1]
        logits = logits / self.temperature  # 1 while training; calibration sets it afterwards
        return (logits, heads) if aux else logits

    def embed(self, image: torch.Tensor, audio: torch.Tensor) -> dict[str, torch.Tensor]:
        """The image, audio and fused embeddings (a unimodal model has no embedding for the other).
        The fused one is the vector the logits are a linear function of: with the expert vote, the
        fusion's own vector beside both modality embeddings, since all three heads' logits are
        added. The fusion's vector alone is only the residual its head corrects the experts with,
        and its t-SNE map and k-means clusters separate the digits worse than either modality."""
        image_embedding, audio_embedding, fused, _ = self._fuse(image, audio)
        if self.expert_vote and self.bimodal:
            fused = torch.cat([fused, image_embedding, audio_embedding], dim=1)
        found = {"image": image_embedding, "audio": audio_embedding, "fused": fused}
        return {name: value for name, value in found.items() if value is not None}
