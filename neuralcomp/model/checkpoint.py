"""Model checkpoints on disk: the configuration plus the weights, written atomically."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import torch

from neuralcomp.errors import ConfigError, ModelFileError
from neuralcomp.model.registry import Model, model_from_dict

CHECKPOINT_FORMAT = "neuralcomp-sptmod-checkpoint"
TRAINING_STATE_FORMAT = "neuralcomp-training-state"  # a trainer's last.ckpt: weights plus everything to resume
_TERMINAL_CODES = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def save_atomically(data: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, expected_formats: str | tuple[str, ...], kind: str) -> dict[str, Any]:
    """torch.load (weights_only: tensors and plain data, never arbitrary objects) a file written by
    save_atomically and check its format; ModelFileError says why not."""
    path = Path(path)
    if isinstance(expected_formats, str):
        expected_formats = (expected_formats,)
    if not path.is_file():
        raise ModelFileError(f"{kind} {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        lines = [line.strip() for line in _TERMINAL_CODES.sub("", str(exc)).splitlines() if line.strip()]
        raise ModelFileError(f"{path} is not a readable {kind}: {lines[0] if lines else type(exc).__name__}") from exc
    if not isinstance(data, dict) or data.get("format") not in expected_formats:
        raise ModelFileError(f"{path} is not a neuralcomp {kind}")
    return data


def save_model(model: Model, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write {format, config, model_state, extra} to `path` atomically."""
    return save_atomically({"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(),
                            "model_state": model.state_dict(), "extra": extra or {}}, path)


def load_model(path: str | Path) -> tuple[Model, dict[str, Any]]:
    """Rebuild a model (SPTMod or TCN, as its configuration says) from a checkpoint (best.ckpt) or a trainer's training state (last.ckpt, whose
    evaluation weights are taken: the EMA when it has one); ModelFileError says what is wrong."""
    data = read_checkpoint(path, (CHECKPOINT_FORMAT, TRAINING_STATE_FORMAT), "checkpoint")
    try:
        if data["format"] == TRAINING_STATE_FORMAT:
            config, weights = data["model_config"], data["model"]
            if data.get("ema") is not None:
                weights = {k[len("module."):]: v for k, v in data["ema"].items() if k.startswith("module.")}
            extra = {"iteration": data["progress"]["iteration"], "training": data["training_config"],
                     "weights": "ema" if data.get("ema") is not None else "last"}
        else:
            config, weights, extra = data["config"], data["model_state"], data.get("extra", {})
        model = model_from_dict(config)
        model.load_state_dict(weights)
    except (ConfigError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: checkpoint does not match its configuration: {exc}") from exc
    return model, extra
