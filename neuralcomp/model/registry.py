"""The architecture registry: a model configuration -> its training-time module."""

from __future__ import annotations

from typing import Any

from neuralcomp.config import ModelConfig, SPTModConfig, TCNConfig, model_config_from_dict
from neuralcomp.errors import ConfigError
from neuralcomp.model.sptmod import SPTMod
from neuralcomp.model.tcn import TCN

Model = SPTMod | TCN


def build_model(config: ModelConfig) -> Model:
    """The module of `config`'s architecture (SPTMod or TCN), freshly initialised."""
    if isinstance(config, TCNConfig):
        return TCN(config)
    if isinstance(config, SPTModConfig):
        return SPTMod(config)
    raise ConfigError(f"no model for configuration type {type(config).__name__}")


def model_from_dict(data: dict[str, Any]) -> Model:
    """A fresh model from a configuration dictionary (a checkpoint's or a file's metadata)."""
    return build_model(model_config_from_dict(data))
