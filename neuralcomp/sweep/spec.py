"""Sweep files (`presets/sweeps/*.json`): a grid or an Optuna search space over training and model
settings, times cross-validation splits, times seeds; checked in full before any trial starts.

A sweep file holds:
    description  free text
    search       "grid" (default) or "optuna" (multi-objective: ST loss and real-time cost)
    model        base model preset (presets/models/NAME.json), default "tiny"
    mode         "causal" (default) or "paper"
    training     base training preset (presets/training/NAME.json), default "paper"
    fixed        settings every trial gets (any field below)
    grid         {field: [values...]} for "grid": the Cartesian product
    exclude      [{field: value, ...}]: grid points matching every pair are left out
    space        {field: {"choice": [...]} | {"int": [low, high]}} for "optuna"
    samples      number of Optuna trials
    splits       cross-validation split indices, default [0]
    seeds        training seeds, default [0]

A field is a TrainingConfig field (subsequences = N, batch_size = B, length = L, learning_rate, ...),
a model field (channels, kernel_sizes, pool_size, pooling, audio_modulation, chrono_init_frames,
lstm_hidden, film_hidden, mode), "preset" (the model preset), or a uniform-architecture shorthand:
"blocks", "width" (channels of every block) and "kernel" (kernel size of every block); missing
shorthands come from the preset.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from neuralcomp.config import PRESETS_DIR, SPTModConfig, load_preset, read_preset_json
from neuralcomp.errors import ConfigError
from neuralcomp.training.loss import LossConfig
from neuralcomp.training.config import TrainingConfig

SWEEP_PRESETS_DIR = PRESETS_DIR / "sweeps"
SEARCHES = ("grid", "optuna")
TOP_LEVEL_KEYS = {"description", "search", "model", "mode", "training", "fixed", "grid", "exclude", "space",
                  "samples", "splits", "seeds"}
TRAINING_FIELDS = {f.name for f in fields(TrainingConfig)} - {"description"}
MODEL_FIELDS = {"channels", "kernel_sizes", "pool_size", "pooling", "audio_modulation", "chrono_init_frames",
                "lstm_hidden", "film_hidden", "mode"}
SHORTHANDS = ("blocks", "width", "kernel")
SETTING_FIELDS = TRAINING_FIELDS | MODEL_FIELDS | {"preset", *SHORTHANDS}


class SweepError(ConfigError):
    """A sweep file is invalid: unknown field, impossible setting, empty grid, missing split."""


@dataclass(frozen=True)
class TrialSpec:
    """One trial: exactly one `neuralcomp train` run (model, training settings, split)."""

    preset: str
    mode: str
    model_overrides: dict[str, Any]
    training: dict[str, Any]  # a complete TrainingConfig, as a dict
    split: int
    setting: dict[str, Any] = field(default_factory=dict)  # the swept values that define this trial

    @property
    def trial_id(self) -> str:
        """Readable and unique: N, B, L, split and seed, plus a hash of every setting."""
        t = self.training
        digest = hashlib.sha1(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:8]
        return (f"n{t['subsequences']}-b{t['batch_size']}-l{t['length']}-split{self.split}-seed{t['seed']}"
                f"-{digest}")

    def training_config(self) -> TrainingConfig:
        return TrainingConfig(**self.training)

    def model_config(self, controls: tuple = ()) -> SPTModConfig:
        return load_preset(self.preset, mode=self.mode, controls=controls, **self.model_overrides)

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "mode": self.mode, "model_overrides": self.model_overrides,
                "training": self.training, "split": self.split, "setting": self.setting}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrialSpec":
        return cls(data["preset"], data["mode"], dict(data["model_overrides"]), dict(data["training"]),
                   int(data["split"]), dict(data.get("setting", {})))


@dataclass(frozen=True)
class SweepSpec:
    """A parsed, checked sweep file."""

    path: Path
    description: str
    search: str
    model: str
    mode: str
    training: str
    fixed: dict[str, Any]
    grid: dict[str, list[Any]]
    exclude: list[dict[str, Any]]
    space: dict[str, dict[str, list[Any]]]
    samples: int
    splits: list[int]
    seeds: list[int]

    def trial(self, setting: dict[str, Any], split: int, seed: int) -> TrialSpec:
        """The trial for one point of the grid or search space (checked: raises SweepError naming the field)."""
        values = {**self.fixed, **setting}
        preset = values.pop("preset", self.model)
        mode = values.pop("mode", self.mode)
        base = _model_preset(preset)
        model_overrides = {k: values.pop(k) for k in list(values) if k in MODEL_FIELDS}
        shorthand = {k: values.pop(k) for k in SHORTHANDS if k in values}
        if shorthand:
            blocks = int(shorthand.get("blocks", len(base.channels)))
            width = int(shorthand.get("width", base.channels[0]))
            kernel = int(shorthand.get("kernel", base.kernel_sizes[0]))
            model_overrides.update(channels=[width] * blocks, kernel_sizes=[kernel] * blocks)
        try:
            model = load_preset(preset, mode=mode, **model_overrides)
        except ConfigError as exc:
            raise SweepError(f"{self.path}: model setting {_describe(setting)}: {exc}") from exc
        training_data, _ = read_preset_json(self.training, PRESETS_DIR / "training", "training", SweepError)
        training_data.update(values, seed=seed)
        training_data.pop("description", None)
        try:
            training = TrainingConfig(**training_data)
        except (ConfigError, TypeError) as exc:
            raise SweepError(f"{self.path}: training setting {_describe(setting)}: {exc}") from exc
        if training.length % model.pool_size:
            raise SweepError(f"{self.path}: field 'length': L = {training.length} is not a multiple of the pool "
                             f"size P = {model.pool_size} (setting {_describe(setting)})")
        shortest = LossConfig().min_samples
        if training.length < shortest:
            raise SweepError(f"{self.path}: field 'length': L = {training.length} is shorter than the loss's "
                             f"largest window ({shortest} samples) (setting {_describe(setting)})")
        return TrialSpec(preset, mode, model_overrides, asdict(training), split,
                         {**setting, "split": split, "seed": seed})

    def grid_points(self) -> list[dict[str, Any]]:
        """The grid's settings in order, exclusions left out."""
        names = list(self.grid)
        points = [dict(zip(names, values)) for values in itertools.product(*(self.grid[n] for n in names))]
        return [p for p in points if not any(all(p.get(k) == v for k, v in rule.items()) for rule in self.exclude)]

    def grid_trials(self) -> list[TrialSpec]:
        """Every grid trial: grid points x splits x seeds."""
        return [self.trial(point, split, seed) for point in self.grid_points() for split in self.splits
                for seed in self.seeds]

    def check_space(self) -> None:
        """Every choice combination of the fields that constrain each other (L and P) must be possible;
        the other fields are checked at their bounds."""
        probes = [{k: (v["choice"] if "choice" in v else v["int"]) for k, v in self.space.items()}]
        names = list(probes[0])
        for values in itertools.product(*(probes[0][n] for n in names)):
            self.trial(dict(zip(names, values)), self.splits[0], self.seeds[0])


def _describe(setting: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in setting.items()) or "(base)"


def _model_preset(name: str) -> SPTModConfig:
    try:
        return load_preset(name)
    except ConfigError as exc:
        raise SweepError(f"field 'preset': {exc}") from exc


def _field_names(where: str, names: Any, path: Path) -> None:
    unknown = sorted(set(names) - SETTING_FIELDS)
    if unknown:
        raise SweepError(f"{path}: unknown field(s) {unknown} in '{where}'; known: training fields "
                         f"{sorted(TRAINING_FIELDS)}, model fields {sorted(MODEL_FIELDS)}, 'preset', "
                         f"shorthands {list(SHORTHANDS)}")


def _int_list(data: dict[str, Any], key: str, path: Path) -> list[int]:
    values = data.get(key, [0])
    if not isinstance(values, list) or not values or not all(isinstance(v, int) and v >= 0 for v in values):
        raise SweepError(f"{path}: field '{key}' must be a non-empty list of integers >= 0, got {values!r}")
    return values


def parse_sweep(data: dict[str, Any], path: Path) -> SweepSpec:
    """Check a sweep document's shape and names (not yet its trials: see `check_sweep`)."""
    if not isinstance(data, dict):
        raise SweepError(f"{path}: a sweep file holds a JSON object")
    unknown = sorted(set(data) - TOP_LEVEL_KEYS)
    if unknown:
        raise SweepError(f"{path}: unknown field(s) {unknown}; a sweep file has {sorted(TOP_LEVEL_KEYS)}")
    search = data.get("search", "grid")
    if search not in SEARCHES:
        raise SweepError(f"{path}: field 'search' must be one of {SEARCHES}, got {search!r}")
    fixed = data.get("fixed", {})
    grid = data.get("grid", {})
    exclude = data.get("exclude", [])
    space = data.get("space", {})
    for key, value in (("fixed", fixed), ("grid", grid), ("space", space)):
        if not isinstance(value, dict):
            raise SweepError(f"{path}: field '{key}' must be an object")
        _field_names(key, value, path)
    if not isinstance(exclude, list) or not all(isinstance(r, dict) and r for r in exclude):
        raise SweepError(f"{path}: field 'exclude' must be a list of non-empty objects")
    for rule in exclude:
        _field_names("exclude", rule, path)
    if search == "grid":
        if space:
            raise SweepError(f"{path}: field 'space' is for \"search\": \"optuna\"; a grid sweep uses 'grid'")
        for name, values in grid.items():
            if not isinstance(values, list) or not values:
                raise SweepError(f"{path}: grid field '{name}' must be a non-empty list of values, got {values!r}")
    else:
        if grid:
            raise SweepError(f"{path}: field 'grid' is for grid sweeps; an optuna search uses 'space'")
        if not space:
            raise SweepError(f"{path}: field 'space' is empty: an optuna search needs at least one field")
        for name, rule in space.items():
            ok = isinstance(rule, dict) and len(rule) == 1 and (
                (isinstance(rule.get("choice"), list) and rule["choice"])
                or (isinstance(rule.get("int"), list) and len(rule["int"]) == 2
                    and all(isinstance(v, int) for v in rule["int"]) and rule["int"][0] <= rule["int"][1]))
            if not ok:
                raise SweepError(f"{path}: space field '{name}' must be {{\"choice\": [values]}} or "
                                 f"{{\"int\": [low, high]}}, got {rule!r}")
        if "length" in space and "choice" not in space["length"]:
            raise SweepError(f"{path}: space field 'length' must be a choice list (L must be a multiple of P)")
    samples = data.get("samples", 0 if search == "grid" else 20)
    if search == "optuna" and (not isinstance(samples, int) or samples < 1):
        raise SweepError(f"{path}: field 'samples' must be an integer >= 1, got {samples!r}")
    splits, seeds = _int_list(data, "splits", path), _int_list(data, "seeds", path)
    if search == "optuna" and (len(splits) != 1 or len(seeds) != 1):
        raise SweepError(f"{path}: an optuna search trains each sample once: give one split and one seed "
                         f"(fields 'splits', 'seeds')")
    for key in ("model", "training", "mode", "description"):
        if key in data and not isinstance(data[key], str):
            raise SweepError(f"{path}: field '{key}' must be a string")
    return SweepSpec(path, data.get("description", ""), search, data.get("model", "tiny"),
                     data.get("mode", "causal"), data.get("training", "paper"), dict(fixed),
                     {k: list(v) for k, v in grid.items()}, list(exclude), dict(space), samples, splits, seeds)


def load_sweep(name_or_path: str | Path) -> SweepSpec:
    """Read a sweep by name (presets/sweeps/NAME.json) or path, and check its shape."""
    data, path = read_preset_json(name_or_path, SWEEP_PRESETS_DIR, "sweep", SweepError)
    return parse_sweep(data, path)


def check_sweep(spec: SweepSpec, n_splits: int | None = None) -> list[TrialSpec]:
    """Every trial of a grid sweep (or the space of a search) checked before anything runs; `n_splits`,
    the dataset's split count, catches split indices the dataset lacks."""
    if n_splits is not None:
        missing = [s for s in spec.splits if s >= n_splits]
        if missing:
            raise SweepError(f"{spec.path}: field 'splits': split(s) {missing} do not exist; the dataset has "
                             f"{n_splits} splits (0..{n_splits - 1})")
    if spec.search == "optuna":
        spec.check_space()
        return []
    trials = spec.grid_trials()
    if not trials:
        raise SweepError(f"{spec.path}: field 'grid': the grid is empty once 'exclude' is applied")
    return trials
