"""Runs an exported model with TorchScript from Python: the fallback when the C++ host is not built.

Mirrors the interface of the C++ `_cpp_host.Host` so `Processor` can use either.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch

from neuralcomp.config import normalised_control
from neuralcomp.errors import ModelFileError, StateError
from neuralcomp.metadata import SCHEMA_VERSION

METADATA_FILE = "neuralcomp_metadata.json"
_REQUIRED_METHODS = ("forward", "reset", "get_state", "set_state", "state_names")


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """torch.jit.load with the checks a host makes; raises ModelFileError saying why it refuses."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError/ValueError for corrupt zip archives
        raise ModelFileError(
            f"{path} is not a readable TorchScript file (truncated or not a model): {str(exc).splitlines()[0]}"
        ) from exc
    if not hasattr(module, "neuralcomp_schema_version"):
        raise ModelFileError(f"{path} is a TorchScript file but not a neuralcomp model (no schema version)")
    version = int(module.neuralcomp_schema_version)
    if version > SCHEMA_VERSION:
        raise ModelFileError(
            f"{path} was made by a newer neuralcomp (schema {version} > {SCHEMA_VERSION}); upgrade neuralcomp"
        )
    missing = [m for m in _REQUIRED_METHODS if not hasattr(module, m)]
    if missing:
        raise ModelFileError(f"{path} lacks the methods {missing} of a neuralcomp streaming model")
    return module


def script_error_message(exc: BaseException) -> str:
    """The message a scripted module raised, without TorchScript's traceback."""
    last = str(exc).strip().splitlines()[-1]
    return last.split("Error: ", 1)[-1] if last.startswith("builtins.") else last


class TorchScriptHost:
    """Single-threaded, inference-mode TorchScript runner with the C++ host's interface."""

    def __init__(self, path: str | Path, num_channels: int = 1) -> None:
        torch.set_num_threads(1)
        self._module = load_torchscript(path)
        m = self._module
        self.control_names: list[str] = list(m.control_names)
        self.control_minimum: list[float] = list(m.control_minimum)
        self.control_maximum: list[float] = list(m.control_maximum)
        self.control_default: list[float] = list(m.control_default)
        # files exported before log mappings existed have no such attribute: all linear
        self.control_log_mapping: list[bool] = (list(m.control_log_mapping) if hasattr(m, "control_log_mapping")
                                                else [False] * len(self.control_names))
        self.latency_samples: int = int(m.latency_samples)
        self.sample_rate: int = int(m.sample_rate)
        self.pool_size: int = int(m.pool_size)
        self.mode: str = str(m.mode)
        self.metadata_json: str = str(m.metadata_json)
        self.state_names: list[str] = list(m.state_names())
        # files exported before the sidechain existed have no such attribute: no sidechain input
        self.sidechain_channels: int = int(m.num_sidechain) if hasattr(m, "num_sidechain") else 0
        self._values = dict(zip(self.control_names, self.control_default))
        self._normalised = torch.tensor([self._normalise(i, v) for i, v in enumerate(self.control_default)],
                                        dtype=torch.float32)
        self.reset(num_channels)

    @property
    def num_channels(self) -> int:
        return int(self._module.num_channels)

    @property
    def nonfinite_buffers(self) -> int:
        return int(self._module.nonfinite_buffers)

    @property
    def linked(self) -> bool:
        return bool(self._module.linked)

    @linked.setter
    def linked(self, linked: bool) -> None:
        with torch.inference_mode():
            self._module.set_linked(bool(linked), self._normalised)

    def reset(self, num_channels: int | None = None) -> None:
        with torch.inference_mode():
            self._module.reset(self.num_channels if num_channels is None else num_channels, self._normalised)

    def process(self, audio: np.ndarray, sidechain: np.ndarray | None = None) -> np.ndarray:
        """audio float32 (channels, frames), C-contiguous -> processed copy; `sidechain` float32
        (channels * S, frames) for a model keyed by S sidechain channels."""
        with torch.inference_mode():
            if sidechain is None:
                return self._module(torch.from_numpy(audio), self._normalised).numpy().copy()
            return self._module(torch.from_numpy(audio), self._normalised, torch.from_numpy(sidechain)).numpy().copy()

    def set_control(self, name: str, value: float) -> None:
        i = self.control_names.index(name)
        self._values[name] = float(value)
        normalised = self._normalised.clone()
        normalised[i] = self._normalise(i, float(value))
        self._normalised = normalised

    def _normalise(self, i: int, value: float) -> float:
        """User value -> the model's [0, 1], as ControlSpec.normalise and the C++ host compute it."""
        return normalised_control(value, self.control_minimum[i], self.control_maximum[i],
                                  self.control_log_mapping[i])

    def get_control(self, name: str) -> float:
        return self._values[name]

    def get_state(self) -> list[np.ndarray]:
        with torch.inference_mode():
            return [t.numpy().copy() for t in self._module.get_state()]

    def set_state(self, state: list[np.ndarray]) -> None:
        try:
            with torch.inference_mode():
                self._module.set_state([torch.from_numpy(np.ascontiguousarray(s)) for s in state])
        except Exception as exc:  # torch.jit.Error carries the module's ValueError
            raise StateError(script_error_message(exc)) from exc
