"""Models: encoders, fusions and the registry of named variants `<image>_<audio>_<fusion>`."""

from mmdigits.models.network import MultimodalNet
from mmdigits.models.registry import (
    LEGACY_ARGUMENTS,
    MAIN_MODELS,
    create_model,
    describe_models,
    list_models,
    model_arguments,
    parse_models,
    register_fusion,
    register_model,
)

__all__ = [
    "LEGACY_ARGUMENTS",
    "MAIN_MODELS",
    "MultimodalNet",
    "create_model",
    "describe_models",
    "list_models",
    "model_arguments",
    "parse_models",
    "register_fusion",
    "register_model",
]
