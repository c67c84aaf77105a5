"""Models: encoders, fusions and the registry of named variants `<image>_<audio>_<fusion>`."""

from mmdigits.models.network import MultimodalNet
from mmdigits.models.registry import create_model, list_models, model_arguments, register_model

__all__ = ["MultimodalNet", "create_model", "list_models", "model_arguments", "register_model"]
