"""Checkpoints: the only contract between `train` and `predict`/`tsne`/`analyze`.

A checkpoint is a dict of plain values and tensors (loadable with weights_only=True): format
version, model name and arguments, state_dict, config, normalisation, metrics, torch version,
and for resuming the optimizer, scheduler and epoch.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch

from mmdigits.artifacts import atomic_path
from mmdigits.errors import CheckpointError, kind_of_file
from mmdigits.models import LEGACY_ARGUMENTS, MultimodalNet, create_model
from mmdigits.runtime import pick_device

FORMAT_VERSION = 1


def training_payload(model: MultimodalNet, config: dict[str, Any], metrics: dict[str, float]) -> dict[str, Any]:
    """What best.pth holds: the model's name and constructor arguments (recorded by create_model),
    weights, the run's config, normalisation and the epoch's metrics."""
    return {
        "model": model.name,
        "model_kwargs": dict(model.arguments),
        "state_dict": model.state_dict(),  # the unwrapped model: no DDP 'module.' prefix
        "config": config,
        "normalisation": model.normalisation(),
        "metrics": metrics,
        "epoch": metrics["epoch"],
    }


def resume_state(optimizer: Any, scheduler: Any, history: list[dict], best_epoch: int, best_f1: float) -> dict:
    """What last.pth adds to the payload so that --resume replays the next epoch exactly."""
    return {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "history": history,
        "best_epoch": best_epoch,
        "best_f1": best_f1,
    }


def load_resume(path: Path) -> dict[str, Any]:
    """A last.pth to continue from; a best.pth (no optimizer state) is refused in one line."""
    payload = load_checkpoint(path)
    if "optimizer" not in payload:
        raise CheckpointError(f"--resume {path}: holds no optimizer state; resume from a run's last.pth")
    return payload


def restore_training(payload: dict[str, Any], model: MultimodalNet, optimizer: Any, scheduler: Any) -> tuple:
    """Load last.pth's state into the model, optimizer and scheduler; returns (history, best
    epoch, best F1, next epoch)."""
    model.load_state_dict(with_temperature(payload["state_dict"]))
    optimizer.load_state_dict(payload["optimizer"])
    scheduler.load_state_dict(payload["scheduler"])
    return list(payload["history"]), payload["best_epoch"], payload["best_f1"], payload["epoch"] + 1


def with_temperature(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Checkpoints from before calibration have no temperature: they keep their logits (T = 1)."""
    return {"temperature": torch.ones(()), **state}


def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """Write atomically: a kill mid-save leaves the previous checkpoint intact."""
    payload = {"format_version": FORMAT_VERSION, "torch_version": str(torch.__version__), **payload}
    with atomic_path(path) as temporary:
        torch.save(payload, temporary)
    return Path(path)


def unreadable_checkpoint(path: Path, error: Exception) -> CheckpointError:
    """torch.load's failure in one line: code it refused to run, or a file that is not a checkpoint,
    named by its first bytes where they say what it is: a user who passed the wrong file sees which."""
    if isinstance(error, OSError):  # the file itself could not be opened or read
        return CheckpointError(f"{path}: cannot be read ({error.strerror or error})")
    text = str(error)
    if "WeightsUnpickler error:" in text:  # torch's reason follows this, before its advice
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    reason = lines[0].split(". ")[0][:160] if lines else type(error).__name__  # its first sentence: no advice
    if "global" in reason.lower():  # a class or function, which only full unpickling would run
        return CheckpointError(f"{path}: refused: it asks to run code, not just load tensors ({reason})")
    kind = kind_of_file(path)
    if kind == "a zip archive":  # what torch.save writes: this one is cut short, damaged or another's
        reason = "a zip archive torch cannot read: cut short, damaged, or not written by torch.save"
    elif kind == "an empty file":
        reason = kind
    elif kind is not None:
        reason = f"{kind}, not a file torch.save wrote"
    return CheckpointError(f"{path}: not a readable checkpoint ({reason})")


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load with weights_only=True (never falling back to full unpickling) and validate."""
    path = Path(path)
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder; pass a .pth file (for example {path}/best.pth)")
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint (`mmdigits train` writes runs/<model>/best.pth)")
    try:
        with warnings.catch_warnings():  # torch's note on a pickle's protocol; the outcome is said below
            warnings.filterwarnings("ignore", message="Detected pickle protocol", category=UserWarning)
            payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # arbitrary bytes make the unpickler raise any type (IndexError,
        # KeyError, struct.error, ...); each means the same: this is not a checkpoint
        raise unreadable_checkpoint(path, error) from None
    if not isinstance(payload, dict) or "format_version" not in payload:
        raise CheckpointError(f"{path}: not an mmdigits checkpoint (no format_version)")
    version = payload["format_version"]
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this mmdigits reads ({FORMAT_VERSION}); "
            "upgrade mmdigits"
        )
    for key in ("model", "model_kwargs", "state_dict"):
        if key not in payload:
            raise CheckpointError(f"{path}: incomplete checkpoint (no '{key}')")
    return payload


def model_from_checkpoint(payload: dict[str, Any], path: Path | str = "checkpoint") -> MultimodalNet:
    """Rebuild the model the checkpoint describes, weights loaded, in eval mode."""
    try:
        model = create_model(payload["model"], **{**LEGACY_ARGUMENTS, **payload["model_kwargs"]})
        model.load_state_dict(with_temperature(payload["state_dict"]))
    except (RuntimeError, TypeError, KeyError, ValueError) as error:
        reason = str(error).strip().splitlines()[0][:160]
        raise CheckpointError(f"{path}: weights do not fit model '{payload['model']}' ({reason})") from None
    return model.eval()


def load_model(path: Path, device: torch.device | str = "cpu") -> tuple[MultimodalNet, dict[str, Any]]:
    """A checkpoint file -> (model on `device` in eval mode, its metadata)."""
    payload = load_checkpoint(path)
    model = model_from_checkpoint(payload, path).to_device(device)
    return model, payload


def resolve_checkpoints(paths: list[Path]) -> list[Path]:
    """Files stay; a folder stands for every best.pth under it (a run, or a CV folder of runs)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            members = sorted(path.glob("**/best.pth"))
            if not members:
                raise CheckpointError(f"{path}: folder holds no best.pth")
            found.extend(members)
        else:
            found.append(path)
    return found


def load_ensemble(paths: list[Path], device_name: str = "auto") -> tuple[list[MultimodalNet], torch.device]:
    """Every checkpoint the paths stand for, loaded onto the chosen device."""
    device = pick_device(device_name)
    return [load_model(path, device)[0] for path in resolve_checkpoints(paths)], device
