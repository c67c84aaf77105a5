"""Model registry: a registered name is a set of constructor arguments, not a new class."""

from __future__ import annotations

from typing import Any

from mmdigits.errors import UsageError
from mmdigits.models.network import MultimodalNet

_REGISTRY: dict[str, dict[str, Any]] = {}  # name -> MultimodalNet arguments


def register_model(name: str, **defaults: Any) -> None:
    """Register `name` as MultimodalNet(**defaults); create_model's kwargs override them."""
    _REGISTRY[name] = defaults


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_arguments(name: str, **overrides: Any) -> dict[str, Any]:
    """The full constructor arguments of a registered model, with overrides applied."""
    if name not in _REGISTRY:
        raise UsageError(f"unknown model '{name}'; choose one of: {', '.join(_REGISTRY)}")
    return {**_REGISTRY[name], **overrides}


def create_model(name: str, **overrides: Any) -> MultimodalNet:
    """Build a registered model; unknown names raise UsageError listing the choices."""
    return MultimodalNet(**model_arguments(name, **overrides))


# The four architectures of the competition's reference solution, done properly, then the other
# fusions and the unimodal baselines that `mmdigits analyze` compares them with.
for _audio in ("rnn", "transformer"):
    for _fusion in ("linear", "attention", "sum", "product", "lowrank", "bimodal", "late"):
        register_model(f"cnn_{_audio}_{_fusion}", image="cnn", audio=_audio, fusion=_fusion, expert_vote=True)
register_model("cnn_image_only", image="cnn", audio=None)
register_model("rnn_audio_only", image=None, audio="rnn")
register_model("transformer_audio_only", image=None, audio="transformer")
