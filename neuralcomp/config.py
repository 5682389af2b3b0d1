"""Model configuration dataclasses and the JSON presets in `presets/models/`."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from neuralcomp.errors import ConfigError

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"
MODEL_PRESETS_DIR = PRESETS_DIR / "models"

MODES = ("causal", "paper")
POOLINGS = ("average", "max")  # how ModBlocks reduce a frame of P detector samples to one
AUDIO_MODULATIONS = ("affine", "gain")  # how ModBlocks modulate the audio path: alpha*x + delta, or alpha*x
ARCHITECTURES = ("sptmod", "tcn")  # the "architecture" field of a model preset; absent means sptmod


@dataclass(frozen=True)
class SPNConfig:
    """State Prediction Network: `blocks` x (Conv1d -> PReLU -> FiLM -> AvgPool)."""

    blocks: int = 7
    channels: int = 16
    kernel_size: int = 38
    pool_size: int = 4
    film_hidden: int = 8

    def __post_init__(self) -> None:
        for name in ("blocks", "channels", "kernel_size", "pool_size", "film_hidden"):
            if getattr(self, name) < 1:
                raise ConfigError(f"SPN {name} must be >= 1, got {getattr(self, name)}")


CONTROL_MAPPINGS = ("linear", "log")


def normalised_control(value: float, minimum: float, maximum: float, log: bool) -> float:
    """A control's user value -> the model's [0, 1]: log(v / min) / log(max / min), or linear."""
    if log:
        return math.log(value / minimum) / math.log(maximum / minimum)
    return (value - minimum) / (maximum - minimum)


@dataclass(frozen=True)
class ControlSpec:
    """One user control and how the model sees it in [0, 1]: linear, x = (value - min) / (max - min),
    or log (ratios, times), x = log(value / min) / log(max / min)."""

    name: str
    minimum: float = 0.0
    maximum: float = 1.0
    default: float = 0.5
    unit: str = ""
    mapping: str = "linear"

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum():
            raise ConfigError(f"control name {self.name!r} must be a non-empty identifier")
        if self.mapping not in CONTROL_MAPPINGS:
            raise ConfigError(f"control {self.name!r}: mapping must be one of {CONTROL_MAPPINGS}, got {self.mapping!r}")
        if not self.maximum > self.minimum:
            raise ConfigError(f"control {self.name!r}: maximum {self.maximum} must exceed minimum {self.minimum}")
        if self.mapping == "log" and not self.minimum > 0:
            raise ConfigError(f"control {self.name!r}: a log mapping needs minimum > 0, got {self.minimum}")
        if not self.minimum <= self.default <= self.maximum:
            raise ConfigError(
                f"control {self.name!r}: default {self.default} outside [{self.minimum}, {self.maximum}]"
            )

    @classmethod
    def parse(cls, text: str) -> "ControlSpec":
        """NAME:MIN:MAX[:UNIT[:log]] (as on the command line) -> a ControlSpec with its default mid-range."""
        parts = text.split(":")
        if len(parts) < 3 or len(parts) > 5 or (len(parts) == 5 and parts[4] not in ("", *CONTROL_MAPPINGS)):
            raise ConfigError(f"a control is NAME:MIN:MAX[:UNIT[:log]], got {text!r}")
        try:
            lo, hi = float(parts[1]), float(parts[2])
        except ValueError as exc:
            raise ConfigError(f"a control is NAME:MIN:MAX[:UNIT[:log]] with numbers for MIN and MAX, got {text!r}") from exc
        unit = parts[3] if len(parts) > 3 else ""
        mapping = parts[4] if len(parts) > 4 and parts[4] else "linear"
        spec = cls(parts[0], lo, hi, lo, unit, mapping)
        return cls(parts[0], lo, hi, spec.value_at(0.5), unit, mapping)

    def normalise(self, value: float) -> float:
        """User value -> the model's [0, 1] (the hosts use the same double-precision arithmetic)."""
        return normalised_control(value, self.minimum, self.maximum, self.mapping == "log")

    def value_at(self, x: float) -> float:
        """The model's x in [0, 1] -> user value, clamped to the range against rounding at the ends."""
        if self.mapping == "log":
            value = self.minimum * (self.maximum / self.minimum) ** x
        else:
            value = self.minimum + x * (self.maximum - self.minimum)
        return float(min(max(value, self.minimum), self.maximum))


def _check_rate_and_control_names(sample_rate: int, controls: Sequence[ControlSpec]) -> None:
    """The checks every architecture's config shares: an audio sample rate and unique control names."""
    if sample_rate < 1000:
        raise ConfigError(f"sample_rate {sample_rate} is not an audio rate")
    names = [c.name for c in controls]
    if len(set(names)) != len(names):
        raise ConfigError(f"control names must be unique, got {names}")


@dataclass(frozen=True)
class SPTModConfig:
    """SPTMod hyperparameters (DESIGN.md section 2). `mode` picks paper (look-ahead) or causal interpolation."""

    name: str
    channels: tuple[int, ...]
    kernel_sizes: tuple[int, ...]
    pool_size: int = 64
    # "average" is the paper's TFiLM; "max" follows the frame's peak, so the detector sees crest
    # factor (docs/gain-reduction/README.md)
    pooling: str = "average"
    # "affine" is the paper's alpha * x + delta; "gain" holds delta at zero, so the audio path is a gain
    # applied to the input, as a compressor's, and cannot add an offset of its own
    audio_modulation: str = "affine"
    lstm_hidden: int = 31
    film_hidden: int = 26
    # > 0: chrono initialisation of each ModBlock LSTM, memory timescales spread up to this many frames
    # (a release of R seconds is R * sample_rate / pool_size frames); 0: PyTorch's default (about 1 frame)
    chrono_init_frames: int = 0
    controls: tuple[ControlSpec, ...] = ()
    mode: str = "causal"
    sample_rate: int = 44100
    spn: SPNConfig | None = field(default_factory=SPNConfig)
    sidechain: int = 0  # external sidechain (key) channels; they feed the modulation path only
    description: str = ""
    architecture: str = "sptmod"

    def __post_init__(self) -> None:
        if self.architecture != "sptmod":
            raise ConfigError(f"an SPTMod configuration has architecture 'sptmod', got {self.architecture!r}")
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "kernel_sizes", tuple(int(k) for k in self.kernel_sizes))
        if not self.channels:
            raise ConfigError("a model needs at least one ModBlock")
        if len(self.channels) != len(self.kernel_sizes):
            raise ConfigError(
                f"channels {self.channels} and kernel_sizes {self.kernel_sizes} must have the same length"
            )
        if min(self.channels) < 1 or min(self.kernel_sizes) < 1:
            raise ConfigError("channels and kernel sizes must be >= 1")
        if self.pool_size < 2:
            raise ConfigError(f"pool_size must be >= 2, got {self.pool_size}")
        if self.lstm_hidden < 1 or self.film_hidden < 1:
            raise ConfigError("lstm_hidden and film_hidden must be >= 1")
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.pooling not in POOLINGS:
            raise ConfigError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.audio_modulation not in AUDIO_MODULATIONS:
            raise ConfigError(f"audio_modulation must be one of {AUDIO_MODULATIONS}, got {self.audio_modulation!r}")
        if isinstance(self.chrono_init_frames, bool) or not isinstance(self.chrono_init_frames, int) \
                or not (self.chrono_init_frames == 0 or self.chrono_init_frames >= 3):
            raise ConfigError("chrono_init_frames must be 0 (PyTorch's LSTM initialisation) or a number of "
                              f"frames >= 3, got {self.chrono_init_frames!r}")
        if isinstance(self.sidechain, bool) or not isinstance(self.sidechain, int) or not 0 <= self.sidechain <= 8:
            raise ConfigError(f"sidechain must be a number of channels in [0, 8], got {self.sidechain!r}")
        _check_rate_and_control_names(self.sample_rate, self.controls)

    @property
    def num_controls(self) -> int:
        return len(self.controls)

    @property
    def num_blocks(self) -> int:
        return len(self.channels)

    def with_changes(self, **changes: Any) -> "SPTModConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SPTModConfig":
        data = dict(data)
        try:
            spn = data.pop("spn", None)
            if isinstance(spn, dict):
                spn = SPNConfig(**spn)
            controls = tuple(
                c if isinstance(c, ControlSpec) else ControlSpec(**c) for c in data.pop("controls", ())
            )
            return cls(spn=spn, controls=controls, **data)
        except TypeError as exc:  # unknown or missing keys
            raise ConfigError(f"invalid model configuration: {exc}") from exc


def generic_controls(count: int) -> tuple[ControlSpec, ...]:
    """`count` anonymous controls `c0`, `c1`, ... in [0, 1] with default 0.5 (untrained exports, tests)."""
    if count < 0:
        raise ConfigError(f"number of controls must be >= 0, got {count}")
    return tuple(ControlSpec(name=f"c{i}") for i in range(count))


def available_presets() -> list[str]:
    return sorted(p.stem for p in MODEL_PRESETS_DIR.glob("*.json"))


def read_preset_json(name_or_path: str | Path, folder: Path, kind: str,
                     error: type[Exception] = ConfigError) -> tuple[dict[str, Any], Path]:
    """A preset's JSON by name (`folder/NAME.json`) or by path; `error` names what is wrong."""
    path = Path(name_or_path)
    if not path.suffix:
        path = folder / f"{name_or_path}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in folder.glob("*.json")))
        raise error(f"no {kind} preset {str(name_or_path)!r}; available: {known}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise error(f"{kind} preset {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise error(f"{kind} preset {path} must hold a JSON object")
    return data, path


@dataclass(frozen=True)
class TCNConfig:
    """A causal TCN baseline (the paper's Figure 5, after Steinmetz and Reiss's efficient TCN): blocks of
    dilated Conv1d -> FiLM(controls) -> PReLU with residuals, then a 1x1 conv to a gain applied to the input.

    The gain is `10 ** (max_gain_db / 20) * sigmoid(o)`, so it never exceeds max_gain_db (makeup included)."""

    name: str
    channels: int = 8
    kernel_size: int = 5
    dilations: tuple[int, ...] = (1, 4, 16, 64, 256, 1024)
    film_hidden: int = 16
    max_gain_db: float = 6.0
    controls: tuple[ControlSpec, ...] = ()
    mode: str = "causal"
    sample_rate: int = 44100
    description: str = ""
    architecture: str = "tcn"

    def __post_init__(self) -> None:
        object.__setattr__(self, "dilations", tuple(int(d) for d in self.dilations))
        if self.architecture != "tcn":
            raise ConfigError(f"a TCN configuration has architecture 'tcn', got {self.architecture!r}")
        if not self.dilations:
            raise ConfigError("a TCN needs at least one block (dilations is empty)")
        if min(self.dilations) < 1:
            raise ConfigError(f"dilations must be >= 1, got {self.dilations}")
        if self.channels < 1 or self.kernel_size < 1 or self.film_hidden < 1:
            raise ConfigError("channels, kernel_size and film_hidden must be >= 1")
        if self.mode != "causal":
            raise ConfigError(f"a TCN is causal only (it has no frames to look ahead in), got mode {self.mode!r}")
        if not math.isfinite(self.max_gain_db):
            raise ConfigError(f"max_gain_db must be finite, got {self.max_gain_db}")
        _check_rate_and_control_names(self.sample_rate, self.controls)

    @property
    def num_controls(self) -> int:
        return len(self.controls)

    @property
    def num_blocks(self) -> int:
        return len(self.dilations)

    @property
    def pool_size(self) -> int:
        """Controls take effect per sample: every sample is a 'frame' of the streaming contract."""
        return 1

    @property
    def spn(self) -> None:
        """No state to predict: a TCN is not recurrent."""
        return None

    @property
    def receptive_field(self) -> int:
        """Input samples that one output sample depends on (itself included): 1 + sum (k - 1) d."""
        return 1 + (self.kernel_size - 1) * sum(self.dilations)

    def receptive_field_ms(self) -> float:
        return 1000.0 * self.receptive_field / self.sample_rate

    def with_changes(self, **changes: Any) -> "TCNConfig":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TCNConfig":
        data = dict(data)
        try:
            controls = tuple(
                c if isinstance(c, ControlSpec) else ControlSpec(**c) for c in data.pop("controls", ())
            )
            return cls(controls=controls, **data)
        except TypeError as exc:  # unknown or missing keys
            raise ConfigError(f"invalid TCN configuration: {exc}") from exc


ModelConfig = SPTModConfig | TCNConfig


def model_config_from_dict(data: dict[str, Any]) -> ModelConfig:
    """A model configuration of the architecture its "architecture" field names (sptmod when absent)."""
    architecture = data.get("architecture", "sptmod")
    if architecture == "tcn":
        return TCNConfig.from_dict(data)
    if architecture == "sptmod":
        return SPTModConfig.from_dict(data)
    raise ConfigError(f"unknown model architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")


def load_preset(name_or_path: str, **overrides: Any) -> ModelConfig:
    """Load a model preset by name (`presets/models/NAME.json`) or path, applying field overrides;
    its "architecture" field (default sptmod) picks the configuration class."""
    data, _ = read_preset_json(name_or_path, MODEL_PRESETS_DIR, "model")
    data.update(overrides)
    return model_config_from_dict(data)
