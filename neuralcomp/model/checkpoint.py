"""Model checkpoints on disk: the configuration plus the weights, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from neuralcomp.config import SPTModConfig
from neuralcomp.errors import ConfigError, ModelFileError
from neuralcomp.model.sptmod import SPTMod

CHECKPOINT_FORMAT = "neuralcomp-sptmod-checkpoint"


def save_model(model: SPTMod, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write {format, config, model_state, extra} to `path` via a temporary file and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(
        {"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(), "model_state": model.state_dict(),
         "extra": extra or {}},
        tmp,
    )
    os.replace(tmp, path)
    return path


def load_model(path: str | Path) -> tuple[SPTMod, dict[str, Any]]:
    """Rebuild an SPTMod from a checkpoint; ModelFileError says what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a readable checkpoint: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise ModelFileError(f"{path} is not a neuralcomp checkpoint")
    try:
        model = SPTMod(SPTModConfig.from_dict(data["config"]))
        model.load_state_dict(data["model_state"])
    except (ConfigError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: checkpoint does not match its configuration: {exc}") from exc
    return model, data.get("extra", {})
