"""Training settings: TBPTT's (N, B, L), the optimiser, budgets, SPN regularisation and adaptive truncation.

Presets are JSON files in presets/training/ whose keys are the fields of `TrainingConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from neuralcomp.config import read_preset_json
from neuralcomp.errors import ConfigError
from neuralcomp.training.loss import LossConfig

TRAINING_PRESETS_DIR = Path(__file__).resolve().parents[2] / "presets" / "training"


@dataclass(frozen=True)
class TrainingConfig:
    """TBPTT hyperparameters (N, B, L) and the optimisation around them."""

    subsequences: int = 1  # N
    batch_size: int = 16  # B
    length: int = 16384  # L, a multiple of the pool size
    optimizer: str = "adam"  # "adam" (the paper) or "adamw"
    learning_rate: float = 5e-4
    weight_decay: float = 0.0
    grad_clip: float | None = None  # max gradient norm, None: no clipping
    schedule: str = "none"  # "none" (the paper) or "cosine": linear warm-up, then cosine decay
    warmup_iterations: int = 0
    min_lr_ratio: float = 0.0  # cosine floor, as a fraction of learning_rate
    grad_accumulation: int = 1  # optimizer steps every this many iterations
    ema_decay: float | None = None  # EMA of the weights, used for validation and best.ckpt
    bf16: bool = True  # bf16 autocast, on CUDA only
    max_iterations: int = 1_000_000
    max_seconds: float | None = None  # budget of training-loop time (validation excluded), kept across resume
    time_clock: str = "wall"  # what max_seconds counts: "wall", or "cpu" (this process's CPU time: fair
    # between runs on a shared machine when torch runs one thread)
    patience_iterations: int = 76_800  # early stopping on ST validation
    validate_every: int | None = None  # iterations; None: at each epoch end
    checkpoint_every: int = 1000  # iterations
    use_spn: bool = True
    # SPN regularisation (paper section 2.4.2: against exposure bias); both off by default
    spn_dropout: float = 0.0  # dropout probability on the SPN's block outputs, in training only
    spn_item_dropout: float = 0.0  # chance that an item's group starts from `spn_item_state` instead of the SPN's
    spn_item_state: str = "start"  # "start": the exported model's start state; "zero": zero LSTM states
    # adaptive truncation (Aicher, Foti, Fox; docs/adaptive-tbptt.md): "fixed" keeps (N, L) as set
    truncation: str = "fixed"  # "fixed" or "adaptive"
    bias_tolerance: float = 0.1  # delta: largest accepted relative gradient bias of the chosen truncation
    adaptive_choice: str = "length"  # what adapts: "length" (L, a multiple of P) or "subsequences" (N)
    adapt_every: int = 500  # iterations between estimates (taken at the next group start)
    adaptive_window: int = 4  # K: the estimate's backward pass spans K times the configured L
    adaptive_lag_frames: int = 8  # spacing of the measured lags, in pooling frames
    adaptive_items: int = 4  # items (windows) in the estimate's batch
    adaptive_min_length: int = 2048  # bounds of the chosen L (samples, multiples of P)
    adaptive_max_length: int = 65536
    adaptive_max_subsequences: int = 8  # largest N the adaptive choice may take
    seed: int = 0
    loss: dict[str, Any] | None = None  # LossConfig fields over the paper's loss, e.g. {"gain_weight": 0.1}
    description: str = ""

    def __post_init__(self) -> None:
        if self.optimizer not in ("adam", "adamw"):
            raise ConfigError(f"optimizer must be adam or adamw, got {self.optimizer!r}")
        if self.schedule not in ("none", "cosine"):
            raise ConfigError(f"schedule must be none or cosine, got {self.schedule!r}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise ConfigError(f"ema_decay must be in (0, 1), got {self.ema_decay}")
        for name in ("subsequences", "batch_size", "length", "max_iterations", "checkpoint_every", "grad_accumulation"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.spn_dropout < 1.0:
            raise ConfigError(f"spn_dropout must be in [0, 1), got {self.spn_dropout}")
        if not 0.0 <= self.spn_item_dropout <= 1.0:
            raise ConfigError(f"spn_item_dropout must be in [0, 1], got {self.spn_item_dropout}")
        if self.spn_item_state not in ("start", "zero"):
            raise ConfigError(f"spn_item_state must be start or zero, got {self.spn_item_state!r}")
        if self.time_clock not in ("wall", "cpu"):
            raise ConfigError(f"time_clock must be wall or cpu, got {self.time_clock!r}")
        if self.max_seconds is not None and not self.max_seconds > 0:
            raise ConfigError(f"max_seconds must be > 0 (or null: no time budget), got {self.max_seconds}")
        if self.truncation not in ("fixed", "adaptive"):
            raise ConfigError(f"truncation must be fixed or adaptive, got {self.truncation!r}")
        if self.adaptive_choice not in ("length", "subsequences"):
            raise ConfigError(f"adaptive_choice must be length or subsequences, got {self.adaptive_choice!r}")
        if not 0.0 < self.bias_tolerance < 1.0:
            raise ConfigError(f"bias_tolerance must be in (0, 1), got {self.bias_tolerance}")
        for name in ("adapt_every", "adaptive_window", "adaptive_lag_frames", "adaptive_items",
                     "adaptive_min_length", "adaptive_max_subsequences"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.adaptive_max_length < self.adaptive_min_length:
            raise ConfigError(f"adaptive_max_length {self.adaptive_max_length} is below adaptive_min_length "
                              f"{self.adaptive_min_length}")
        if self.loss is not None and not isinstance(self.loss, dict):
            raise ConfigError(f"loss must be an object of LossConfig fields, got {self.loss!r}")
        self.loss_config()  # refuses unknown or invalid loss settings now, not at the first iteration

    def loss_config(self) -> LossConfig:
        """The training loss: the paper's, with the preset's "loss" fields applied."""
        return LossConfig.from_dict(self.loss)

    @classmethod
    def from_preset(cls, name_or_path: str, **overrides: Any) -> "TrainingConfig":
        data, path = read_preset_json(name_or_path, TRAINING_PRESETS_DIR, "training")
        data.update(overrides)
        unknown = set(data) - {f.name for f in fields(cls)}
        if unknown:
            raise ConfigError(f"unknown training settings {sorted(unknown)} in {path}")
        return cls(**data)
