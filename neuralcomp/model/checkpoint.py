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


def save_atomically(data: dict[str, Any], path: str | Path) -> Path:
    """torch.save to a temporary file, then rename: a crash never leaves a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(data, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | Path, expected_format: str, kind: str, weights_only: bool = True) -> dict[str, Any]:
    """torch.load a file written by save_atomically and check its format; ModelFileError says why not."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{kind} {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=weights_only)
    except Exception as exc:
        raise ModelFileError(f"{path} is not a readable {kind}: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict) or data.get("format") != expected_format:
        raise ModelFileError(f"{path} is not a neuralcomp {kind}")
    return data


def save_model(model: SPTMod, path: str | Path, extra: dict[str, Any] | None = None) -> Path:
    """Write {format, config, model_state, extra} to `path` atomically."""
    return save_atomically({"format": CHECKPOINT_FORMAT, "config": model.config.to_dict(),
                            "model_state": model.state_dict(), "extra": extra or {}}, path)


def load_model(path: str | Path) -> tuple[SPTMod, dict[str, Any]]:
    """Rebuild an SPTMod from a checkpoint; ModelFileError says what is wrong with the file."""
    data = read_checkpoint(path, CHECKPOINT_FORMAT, "checkpoint")
    try:
        model = SPTMod(SPTModConfig.from_dict(data["config"]))
        model.load_state_dict(data["model_state"])
    except (ConfigError, KeyError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: checkpoint does not match its configuration: {exc}") from exc
    return model, data.get("extra", {})
