"""Model registry: a registered name is a set of constructor arguments, not a new class."""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from mmdigits.errors import UsageError
from mmdigits.models.fusion import FUSION_ALIASES, FUSIONS
from mmdigits.models.network import MultimodalNet

_REGISTRY: dict[str, dict[str, Any]] = {}  # name -> MultimodalNet arguments
AUDIO_ENCODERS = ("rnn", "transformer")
ALIASES = {  # model names from before a fusion was renamed: their checkpoints still load
    f"cnn_{audio}_{old}": f"cnn_{audio}_{new}" for audio in AUDIO_ENCODERS for old, new in FUSION_ALIASES.items()
}
# Constructor arguments added with a new default: a checkpoint that does not record one was built
# before it existed, the way these values build (the transformer's one-layer stem and CLS pooling;
# the image CNN's norm before its pooling).
LEGACY_ARGUMENTS = {"audio_stem_layers": 1, "audio_pool": "cls_mean", "image_pool_first": False}
CONSTRUCTOR_DEFAULTS = {
    name: parameter.default
    for name, parameter in inspect.signature(MultimodalNet).parameters.items()
    if parameter.default is not inspect.Parameter.empty
}


def register_model(name: str, **defaults: Any) -> None:
    """Register `name` as MultimodalNet(**defaults); create_model's kwargs override them."""
    _REGISTRY[name] = defaults


def register_fusion(name: str, fusion: type[nn.Module]) -> None:
    """Add a fusion head (a class like those in fusion.py): cnn_rnn_<name> and
    cnn_transformer_<name> become registered models."""
    FUSIONS[name] = fusion
    for audio in AUDIO_ENCODERS:
        register_model(f"cnn_{audio}_{name}", image="cnn", audio=audio, fusion=name, expert_vote=True)


def list_models() -> list[str]:
    return list(_REGISTRY)


def model_arguments(name: str, **overrides: Any) -> dict[str, Any]:
    """The full constructor arguments of a registered model, with overrides applied. Every
    argument, defaults included, so a checkpoint records them all and a later change of a default
    cannot change the model an old checkpoint rebuilds."""
    name = ALIASES.get(name, name)
    if name not in _REGISTRY:
        raise UsageError(f"unknown model '{name}'; choose one of: {', '.join(_REGISTRY)}")
    return {**CONSTRUCTOR_DEFAULTS, **_REGISTRY[name], **overrides}


MAIN_MODELS = ["cnn_rnn_linear", "cnn_rnn_attention", "cnn_transformer_linear", "cnn_transformer_attention"]


def parse_models(text: str, everything: list[str] | None = None) -> list[str]:
    """`--models a,b` -> checked names; 'all' -> `everything` (default: the four main models)."""
    names = list(everything or MAIN_MODELS) if text == "all" else [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError("--models: give comma-separated model names, or 'all'")
    for name in names:
        model_arguments(name)  # an unknown name fails before any work, listing the choices
    return names


def describe_models() -> list[dict[str, Any]]:
    """One row per registered model: its encoders, fusion and parameter count."""
    rows = []
    for name in _REGISTRY:
        arguments = model_arguments(name)
        both = arguments.get("image") and arguments.get("audio")
        rows.append(
            {
                "name": name,
                "image": str(arguments.get("image") or "-"),
                "audio": str(arguments.get("audio") or "-"),
                "fusion": arguments.get("fusion", "-") if both else "-",
                "parameters": sum(p.numel() for p in create_model(name).parameters()),
            }
        )
    return rows


def create_model(name: str, **overrides: Any) -> MultimodalNet:
    """Build a registered model; unknown names raise UsageError listing the choices. The model
    records its name and constructor arguments (timm style) for checkpoints to store."""
    name = ALIASES.get(name, name)
    arguments = model_arguments(name, **overrides)
    model = MultimodalNet(**arguments)
    model.name, model.arguments = name, arguments
    return model


# The four architectures of the competition's reference solution (linear and attention fusion),
# done properly, then the other fusions and the unimodal baselines `mmdigits analyze` compares.
for _name, _fusion in list(FUSIONS.items()):
    register_fusion(_name, _fusion)
register_model("cnn_image_only", image="cnn", audio=None)
register_model("rnn_audio_only", image=None, audio="rnn")
register_model("transformer_audio_only", image=None, audio="transformer")
