"""The competition's reference solution, rebuilt for side-by-side benchmarks only.

It trains the way github.com/Jaron-U/Multimodal-Image-and-Audio-Recognition-Model does: a
DataLoader over a TensorDataset, batch 128, Adam 1e-3, fp32, per-feature z-score, and an extra
evaluation pass over the whole training set every epoch; its CNN has no batch norm and its
"Transformer" sees the 507 audio values as ONE token (d_model 507, 13 heads, 5 layers, ff 2048).
Its inference-time dropout bug is left out so that its accuracy is measured fairly.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from mmdigits.data import Split
from mmdigits.metrics import score


class ReferenceNet(nn.Module):
    """CNN(32, 64) -> 128 and a 1-token Transformer(507) -> 128, attention fusion, linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.cnn = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(3136, 256),
            nn.ReLU(),
            nn.Dropout(0.2),
            nn.Linear(256, 128),
        )
        layer = nn.TransformerEncoderLayer(507, 13, 2048, batch_first=True)
        self.transformer = nn.TransformerEncoder(layer, 5, enable_nested_tensor=False)
        self.audio_out = nn.Linear(507, 128)
        self.attention = nn.MultiheadAttention(128, 8, batch_first=True)
        self.norm = nn.LayerNorm(128)
        self.head = nn.Linear(128, 10)

    def forward(self, image: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        image_embedding = self.cnn(image.view(-1, 1, 28, 28)).unsqueeze(1)  # (B, 1, 128)
        audio_embedding = self.audio_out(self.transformer(audio.view(-1, 1, 507)))  # (B, 1, 128): one token
        attended, _ = self.attention(image_embedding, audio_embedding, audio_embedding)
        return self.head(self.norm(image_embedding + attended).squeeze(1))


def zscore(train: torch.Tensor, other: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    mean, std = train.mean(dim=0), train.std(dim=0) + 1e-8
    return ((train - mean) / std).float(), ((other - mean) / std).float()


def train_reference(
    train: Split, val: Split, epochs: int, device: torch.device, seed: int = 0
) -> tuple[list[dict[str, float]], int]:
    """Train the reference model its own way. Returns one row per epoch (the seconds its own loop
    took, then the validation accuracy, scored outside the clock) and its parameter count."""
    torch.manual_seed(seed)
    image, val_image = zscore(
        torch.from_numpy(train.image.reshape(len(train), -1)), torch.from_numpy(val.image.reshape(len(val), -1))
    )
    audio, val_audio = zscore(
        torch.from_numpy(train.audio.reshape(len(train), -1)), torch.from_numpy(val.audio.reshape(len(val), -1))
    )
    labels = torch.from_numpy(train.labels)
    loader = DataLoader(TensorDataset(image, audio, labels), batch_size=128, shuffle=True)
    model = ReferenceNet().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    history = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for image_batch, audio_batch, label_batch in loader:
            image_batch, audio_batch = image_batch.to(device), audio_batch.to(device)
            loss = F.cross_entropy(model(image_batch, audio_batch), label_batch.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():  # the reference's extra pass over the training set, every epoch
            for image_batch, audio_batch, label_batch in loader:
                model(image_batch.to(device), audio_batch.to(device)).argmax(dim=1).eq(label_batch.to(device)).sum()
        if device.type == "cuda":
            torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        history.append({"train_seconds": seconds, "val_acc": accuracy(model, val_image, val_audio, val, device)})
    return history, sum(p.numel() for p in model.parameters())


@torch.no_grad()
def accuracy(model: ReferenceNet, image: torch.Tensor, audio: torch.Tensor, val: Split, device: torch.device) -> float:
    batches = [
        model(image[start : start + 1024].to(device), audio[start : start + 1024].to(device)).argmax(dim=1).cpu()
        for start in range(0, len(val), 1024)
    ]
    return score(torch.cat(batches).numpy(), val.labels)["accuracy"]
