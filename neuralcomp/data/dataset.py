"""Datasets on disk: control settings, rendering source signals through a target, loading, CV splits.

On-disk format (``FORMAT`` = "neuralcomp-dataset", ``FORMAT_VERSION`` = 1)::

    DIR/manifest.json
    DIR/splits.json
    DIR/items/000_input.wav    float32 mono WAV
    DIR/items/000_target.wav   float32 mono WAV, same length and rate, DC removed

``manifest.json`` keys:

* ``format``, ``version``, ``kind`` ("rendered" by :func:`build_dataset`, "captures" by
  :func:`neuralcomp.data.captures.import_captures`), ``created`` (UTC ISO time), ``sample_rate``
* ``target``: ``{"name": ..., "preset": full preset content}`` (captures: ``{"name", "source_folder", ...}``)
* ``controls``: list of ``{"name", "minimum", "maximum", "default", "unit", "mapping", "parameter"}`` in
  model order (items store the *normalised* values in [0, 1])
* ``settings``: how the control settings were drawn (``{"method": "snapshot" | "grid" | "latin_hypercube" |
  "custom" | "captures", ...}``)
* ``source``: the SourceConfig fields of item 0 (item i used ``seed = source.seed + i``), null for captures;
  ``music_dir``, ``synthetic_music``
* ``items``: list of ``{"id": "000", "index": 0, "input": "items/000_input.wav", "target":
  "items/000_target.wav", ["sidechain": "items/000_sidechain.wav" (float32, S channels: the key a keyed
  compressor listened to; every item or none)], "controls": {name: x}, "parameters": {plugin parameter: value}, "length": samples,
  "peak_input_db", "peak_target_db", "dc_removed": mean subtracted from the target, "sections":
  [{"name", "start", "end"}], "seed"}`` (captures add ``"name"``, ``"raw_controls"``, ``"alignment"``)
* ``splits``: "splits.json"

``splits.json``: ``{"n_items", "n_splits", "seed", "rule", "splits": [{"train": [...], "valid": [...],
"test": [...]}]}`` with item indices.

Control settings (all normalised to [0, 1], one dict per item):

* :func:`snapshot`: every control 0.5 except ``release`` = 1.0 (DESIGN: "all controls mid, release max").
* :func:`grid`: threshold x ratio on ``linspace(0, 1, steps)`` each (4 x 4 = 16 in the paper), others 0.5.
* :func:`latin_hypercube`: each control's [0, 1] cut into n equal strata, one value per stratum, uniform
  inside it, strata shuffled independently per control (paper: 160 items). Reproducible from ``seed``.

These take the control names first (a list, a TargetPreset or a PluginTarget), then the counts.

Cross-validation rule (:func:`cross_validation_splits`): ``k = n // 4`` items each for valid and test when
n < 20, else ``k = round(n / 10)`` (16 -> 8/4/4, 160 -> 128/16/16, 15 -> 9/3/3). Items are shuffled once
(``default_rng(seed)``); split s takes test = the k items from position ``round(s * n / n_splits)`` of that
order (wrapping), valid = the next k, train = the rest. With n = 10 k the test sets are the ten folds of
ordinary 10-fold CV; for 16 items each item is a test item in two or three splits.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import math
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import soundfile as sf

from neuralcomp.config import ControlSpec
from neuralcomp.data.source import SourceConfig, make_source
from neuralcomp.errors import NeuralcompError

FORMAT = "neuralcomp-dataset"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SPLITS = "splits.json"


class DatasetError(NeuralcompError, ValueError):
    """A dataset on disk is missing, corrupt or inconsistent, or a dataset request is invalid."""


# ------------------------------------------------------------------------------------ control settings

@dataclass(frozen=True)
class Settings:
    """One normalised control setting per item, and how they were drawn (recorded in the manifest)."""

    method: str
    items: tuple[dict[str, float], ...]
    params: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **self.params}


def _names(controls: Any) -> list[str]:
    if hasattr(controls, "control_names"):
        return list(controls.control_names)
    names = [c if isinstance(c, str) else c.name for c in controls]
    if not names:
        raise DatasetError("no controls given")
    return names


def snapshot(controls: Any, n_items: int = 16) -> Settings:
    """n_items copies of one setting: all controls 0.5, except 'release' at 1.0 when there is one."""
    names = _names(controls)
    if n_items < 1:
        raise DatasetError(f"n_items must be >= 1, got {n_items}")
    setting = {n: (1.0 if n == "release" else 0.5) for n in names}
    return Settings("snapshot", tuple(dict(setting) for _ in range(n_items)), {"n_items": n_items})


def grid(controls: Any, threshold_steps: int = 4, ratio_steps: int = 4) -> Settings:
    """threshold x ratio on linspace(0, 1, steps) (threshold varies slowest), other controls 0.5."""
    names = _names(controls)
    for needed in ("threshold", "ratio"):
        if needed not in names:
            raise DatasetError(f"a threshold x ratio grid needs a control named {needed!r}; controls: {names}")
    if threshold_steps < 1 or ratio_steps < 1:
        raise DatasetError(f"grid steps must be >= 1, got {threshold_steps} x {ratio_steps}")

    def axis(steps: int) -> list[float]:
        return [0.5] if steps == 1 else [float(v) for v in np.linspace(0.0, 1.0, steps)]

    items = []
    for t in axis(threshold_steps):
        for r in axis(ratio_steps):
            setting = {n: 0.5 for n in names}
            setting["threshold"], setting["ratio"] = t, r
            items.append(setting)
    return Settings("grid", tuple(items), {"threshold_steps": threshold_steps, "ratio_steps": ratio_steps})


def latin_hypercube(controls: Any, n_items: int = 160, seed: int = 0) -> Settings:
    """Latin hypercube over all controls: for each control exactly one value in each [i/n, (i+1)/n)."""
    names = _names(controls)
    if n_items < 1:
        raise DatasetError(f"n_items must be >= 1, got {n_items}")
    rng = np.random.default_rng(seed)
    columns = {}
    for name in names:
        strata = rng.permutation(n_items)
        columns[name] = (strata + rng.uniform(0.0, 1.0, n_items)) / n_items
    items = tuple({n: float(min(columns[n][i], 1.0)) for n in names} for i in range(n_items))
    return Settings("latin_hypercube", items, {"n_items": n_items, "seed": seed})


SAMPLINGS = ("snapshot", "grid", "lhs")


def sampled_settings(sampling: str, controls: Any, n_items: int, seed: int = 0) -> Settings:
    """The settings of a sampling by name: snapshot, grid (about sqrt(n) x sqrt(n)) or lhs."""
    if sampling == "snapshot":
        return snapshot(controls, n_items)
    if sampling == "grid":
        steps = round(n_items ** 0.5)
        return grid(controls, steps, steps)
    if sampling == "lhs":
        return latin_hypercube(controls, n_items, seed=seed)
    raise DatasetError(f"sampling must be one of {SAMPLINGS}, got {sampling!r}")


def custom(controls_list: Iterable[Mapping[str, float]]) -> Settings:
    items = tuple({k: float(v) for k, v in c.items()} for c in controls_list)
    return Settings("custom", items, {"n_items": len(items)})


# ------------------------------------------------------------------------------------------ CV splits

@dataclass(frozen=True)
class Split:
    train: tuple[int, ...]
    valid: tuple[int, ...]
    test: tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"train": list(self.train), "valid": list(self.valid), "test": list(self.test)}


SPLIT_RULE = ("valid = test = n // 4 items if n < 20 else round(n / 10); items shuffled once with "
              "numpy default_rng(seed); split s: test = k items from position round(s * n / n_splits) "
              "(wrapping), valid = next k, train = the rest")


def split_sizes(n_items: int) -> tuple[int, int, int]:
    """(train, valid, test) sizes: 16 -> (8, 4, 4), 160 -> (128, 16, 16)."""
    if n_items < 3:
        raise DatasetError(f"cross-validation needs at least 3 items, got {n_items}")
    k = max(1, n_items // 4) if n_items < 20 else max(1, round(n_items / 10))
    return n_items - 2 * k, k, k


def cross_validation_splits(n_items: int, n_splits: int = 10, seed: int = 0,
                            eval_only: Sequence[int] = ()) -> list[Split]:
    """`n_splits` train/valid/test splits of range(n_items): disjoint, covering, reproducible (see module doc).
    Items in `eval_only` (too short to train) never train: alternately in test and valid of every split,
    the rule above applying to the others."""
    if n_splits < 1:
        raise DatasetError(f"n_splits must be >= 1, got {n_splits}")
    held_out = sorted(set(int(i) for i in eval_only))
    pool = [i for i in range(n_items) if i not in set(held_out)]
    _, k, _ = split_sizes(len(pool))
    order = [pool[j] for j in np.random.default_rng(seed).permutation(len(pool))]
    splits = []
    for s in range(n_splits):
        start = round(s * len(pool) / n_splits)
        test = [order[(start + j) % len(pool)] for j in range(k)] + held_out[0::2]
        valid = [order[(start + k + j) % len(pool)] for j in range(k)] + held_out[1::2]
        held = set(test) | set(valid)
        train = [i for i in range(n_items) if i not in held]
        splits.append(Split(tuple(train), tuple(sorted(valid)), tuple(sorted(test))))
    return splits


def splits_document(n_items: int, n_splits: int = 10, seed: int = 0, eval_only: Sequence[int] = ()) -> dict[str, Any]:
    rule = SPLIT_RULE + (f"; items {sorted(eval_only)} are too short to train: alternately test and valid in "
                         f"every split" if eval_only else "")
    return {"n_items": n_items, "n_splits": n_splits, "seed": seed, "rule": rule, "eval_only": sorted(eval_only),
            "splits": [s.to_dict() for s in cross_validation_splits(n_items, n_splits, seed, eval_only)]}


def load_splits(dataset_dir: str | Path) -> list[Split]:
    path = Path(dataset_dir) / SPLITS
    try:
        data = json.loads(path.read_text())
        return [Split(tuple(s["train"]), tuple(s["valid"]), tuple(s["test"])) for s in data["splits"]]
    except FileNotFoundError as exc:
        raise DatasetError(f"dataset {dataset_dir} has no {SPLITS}") from exc
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is corrupt: {exc!r}") from exc


# --------------------------------------------------------------------------------------- writing

def peak_db(audio: np.ndarray) -> float:
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    return 20.0 * math.log10(peak) if peak > 0 else -math.inf


def _json_float(x: float) -> float | None:
    return None if not math.isfinite(x) else round(float(x), 4)


def remove_dc(audio: np.ndarray) -> tuple[np.ndarray, float]:
    """audio minus its mean (computed in float64), and the mean removed."""
    mean = float(np.mean(audio, dtype=np.float64)) if audio.size else 0.0
    return (np.asarray(audio, dtype=np.float64) - mean).astype(np.float32), mean


def write_wav(path: Path, audio: np.ndarray, sample_rate: int) -> None:
    sf.write(str(path), np.asarray(audio, dtype=np.float32), int(sample_rate), subtype="FLOAT", format="WAV")


class DatasetWriter:
    """Writes items into a temporary folder next to `out_dir`, then renames it into place (atomic)."""

    def __init__(self, out_dir: str | Path, overwrite: bool = False) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not overwrite:
            raise DatasetError(f"{self.out_dir} already exists; choose another folder, or replace it "
                               "(--overwrite on the command line, overwrite=True in Python)")
        self.out_dir.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.out_dir.parent / f".{self.out_dir.name}.tmp-{os.getpid()}"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        (self.tmp / "items").mkdir(parents=True)
        self.overwrite = overwrite

    def write_item(self, index: int, inp: np.ndarray, tgt: np.ndarray, sample_rate: int,
                   sidechain: np.ndarray | None = None) -> dict[str, Any]:
        """Write one item's WAVs; `sidechain` (S, samples) or (samples,) adds an S-channel key file."""
        item_id = f"{index:03d}"
        files = {"input": f"items/{item_id}_input.wav", "target": f"items/{item_id}_target.wav"}
        write_wav(self.tmp / files["input"], inp, sample_rate)
        write_wav(self.tmp / files["target"], tgt, sample_rate)
        if sidechain is not None:
            files["sidechain"] = f"items/{item_id}_sidechain.wav"
            key = np.atleast_2d(np.asarray(sidechain, np.float32))
            sf.write(str(self.tmp / files["sidechain"]), key.T, sample_rate, subtype="FLOAT")
        return {"id": item_id, "index": index, **files}

    def finish(self, manifest: dict[str, Any], splits: dict[str, Any] | None) -> Path:
        (self.tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, allow_nan=False))
        if splits is not None:
            (self.tmp / SPLITS).write_text(json.dumps(splits, indent=1))
        old = None
        if self.out_dir.exists():
            old = self.out_dir.parent / f".{self.out_dir.name}.old-{os.getpid()}"
            self.out_dir.rename(old)
        self.tmp.rename(self.out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return self.out_dir

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


def _print_progress(done: int, total: int, item: dict[str, Any]) -> None:
    controls = " ".join(f"{k}={v:.3f}" for k, v in item.get("controls", {}).items())
    print(f"[{done}/{total}] item {item['id']}: {item['length']} samples, peak in {item['peak_input_db']} dB, "
          f"out {item['peak_target_db']} dB  {controls}", flush=True)


def rendered_manifest(target: dict[str, Any], controls: list[dict[str, Any]], settings: Settings,
                      source_config: SourceConfig, music_dir: Path | None, entries: list[dict[str, Any]],
                      **extra: Any) -> dict[str, Any]:
    """The manifest of a dataset rendered from the source signal; `extra` adds fields (e.g. a sidechain)."""
    return {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": "rendered", "created": _now(),
        "sample_rate": source_config.sample_rate,
        "target": target,
        "controls": controls,
        "settings": settings.to_dict(),
        "source": _source_dict(source_config),
        "music_dir": str(music_dir) if music_dir is not None else None,
        "synthetic_music": music_dir is None,
        **extra,
        "items": entries,
        "splits": SPLITS if len(entries) >= 3 else None,
    }


def build_dataset(out_dir: str | Path, target: Any, settings: Settings | Sequence[Mapping[str, float]],
                  source_config: SourceConfig | None = None, music_dir: str | Path | None = None,
                  allow_synthetic_music: bool = False,
                  progress: Callable[[int, int, dict[str, Any]], None] | None | bool = None,
                  n_splits: int = 10, split_seed: int = 0, overwrite: bool = False) -> Path:
    """Render one item per control setting and write the dataset (format in the module docstring).

    `target` is a PluginTarget (or a preset name/path/TargetPreset). Item i uses the source signal of
    ``seed = source_config.seed + i``. `progress(done, total, item_entry)` is called after each item; None
    prints one line per item, False prints nothing. Returns `out_dir`."""
    from neuralcomp.data.targets import PluginTarget

    if not isinstance(target, PluginTarget):
        target = PluginTarget(target)
    if not isinstance(settings, Settings):
        settings = custom(settings)
    if len(settings) < 1:
        raise DatasetError("no control settings given: a dataset needs at least one item")
    source_config = source_config or SourceConfig()
    if progress is None:
        progress = _print_progress
    # Fail before any rendering if a setting is invalid.
    for c in settings.items:
        target.controls_to_parameters(c)
    writer = DatasetWriter(out_dir, overwrite=overwrite)
    try:
        entries = []
        total = len(settings)
        for i, controls in enumerate(settings.items):
            config = dataclasses.replace(source_config, seed=source_config.seed + i)
            source = make_source(config, Path(music_dir) if music_dir is not None else None,
                                 allow_synthetic_music)
            rendered = target.render(source.audio, source.sample_rate, controls)
            rendered, dc = remove_dc(rendered)
            entry = writer.write_item(i, source.audio, rendered, source.sample_rate)
            full = {c.name: float(controls.get(c.name, c.to_normalised(c.default))) for c in target.controls}
            entry.update({
                "controls": full,
                "parameters": target.controls_to_parameters(full),
                "length": int(len(source.audio)),
                "peak_input_db": _json_float(peak_db(source.audio)),
                "peak_target_db": _json_float(peak_db(rendered)),
                "dc_removed": float(dc),
                "sections": [{"name": s.name, "start": s.start, "end": s.end} for s in source.sections],
                "seed": config.seed,
                "music_files": list(source.music_files),
            })
            entries.append(entry)
            if progress:
                progress(i + 1, total, entry)
        manifest = rendered_manifest({"name": target.name, "preset": target.preset.to_dict()},
                                     [c.to_dict() for c in target.controls], settings, source_config, music_dir,
                                     entries)
        splits = splits_document(len(entries), n_splits, split_seed) if len(entries) >= 3 else None
        return writer.finish(manifest, splits)
    except BaseException:
        writer.abort()
        raise


def _source_dict(config: SourceConfig) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(config).items()}


# --------------------------------------------------------------------------------------------- reading

@dataclass(frozen=True)
class DatasetItem:
    id: str
    index: int
    input_path: Path
    target_path: Path
    controls: dict[str, float]
    length: int
    sample_rate: int
    entry: dict[str, Any]  # the item's full manifest entry
    sidechain_path: Path | None = None  # the key a keyed compressor listened to, (samples, S) WAV

    def load_sidechain(self) -> np.ndarray | None:
        """The sidechain as float32 (S, length), checked like the audio; None when the item has none."""
        if self.sidechain_path is None:
            return None
        try:
            key, rate = sf.read(str(self.sidechain_path), dtype="float32", always_2d=True)
        except Exception as exc:  # missing file, soundfile's LibsndfileError
            raise DatasetError(f"item {self.id}: cannot read the sidechain {self.sidechain_path}: {exc}") from exc
        if rate != self.sample_rate or len(key) != self.length:
            raise DatasetError(f"item {self.id}: sidechain {self.sidechain_path.name} has {len(key)} samples at "
                               f"{rate} Hz, the item {self.length} at {self.sample_rate} Hz")
        if not np.all(np.isfinite(key)):
            raise DatasetError(f"item {self.id}: {self.sidechain_path.name} contains NaN or infinity")
        return np.ascontiguousarray(key.T)

    def control_vector(self, names: Sequence[str]) -> np.ndarray:
        return np.array([self.controls[n] for n in names], dtype=np.float32)

    def load(self) -> tuple[np.ndarray, np.ndarray]:
        """(input, target) as float32 arrays of shape (length,), checked for rate, length and NaN."""
        out = []
        for path in (self.input_path, self.target_path):
            try:
                audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
            except FileNotFoundError as exc:
                raise DatasetError(f"item {self.id}: file {path} is missing") from exc
            except Exception as exc:  # soundfile's LibsndfileError and friends
                raise DatasetError(f"item {self.id}: cannot read {path}: {exc}") from exc
            if rate != self.sample_rate:
                raise DatasetError(f"item {self.id}: {path.name} is at {rate} Hz, dataset is at {self.sample_rate} Hz")
            if audio.shape[1] != 1:
                raise DatasetError(f"item {self.id}: {path.name} has {audio.shape[1]} channels, expected mono")
            audio = audio[:, 0]
            if len(audio) != self.length:
                raise DatasetError(f"item {self.id}: {path.name} has {len(audio)} samples, manifest says {self.length}")
            if not np.all(np.isfinite(audio)):
                raise DatasetError(f"item {self.id}: {path.name} contains NaN or infinity")
            out.append(audio)
        return out[0], out[1]


@dataclass
class Dataset:
    path: Path
    items: list[DatasetItem]
    control_names: list[str]
    sample_rate: int
    manifest: dict[str, Any]

    def __len__(self) -> int:
        return len(self.items)

    @property
    def sidechain_channels(self) -> int:
        """Channels of the items' sidechain (key) track; 0 when they have none."""
        return _sidechain_channels(self.items[0])

    def __getitem__(self, i: int) -> DatasetItem:
        return self.items[i]

    @property
    def control_specs(self) -> list[dict[str, Any]]:
        return self.manifest["controls"]

    @property
    def controls(self) -> tuple[ControlSpec, ...]:
        """The controls as ControlSpecs: user range, unit, and the mapping the target used."""
        return tuple(ControlSpec(c["name"], float(c["minimum"]), float(c["maximum"]), float(c["default"]),
                                 str(c.get("unit", "")), str(c.get("mapping", "linear")))
                     for c in self.control_specs)

    def splits(self) -> list[Split]:
        return load_splits(self.path)

    def split(self, index: int) -> Split:
        """Cross-validation split `index`; DatasetError naming how many there are."""
        splits = self.splits()
        if not 0 <= index < len(splits):
            raise DatasetError(f"split {index} does not exist; the dataset has {len(splits)}")
        return splits[index]


def load_dataset(dataset_dir: str | Path, check_audio: bool = False) -> Dataset:
    """Read a dataset folder. Checks the manifest, that every file exists, its sample rate and that input
    and target lengths match the manifest (from the WAV headers); `check_audio=True` also reads every
    file (NaN check) -- :meth:`DatasetItem.load` always does."""
    root = Path(dataset_dir)
    path = root / MANIFEST
    if not root.is_dir():
        raise DatasetError(f"dataset folder {root} does not exist")
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DatasetError(f"{root} is not a dataset: no {MANIFEST}") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{path} is corrupt (not valid JSON): {exc}") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{path} is not a {FORMAT} manifest")
    if manifest.get("version", 0) > FORMAT_VERSION:
        raise DatasetError(f"{path} has format version {manifest.get('version')}; this code reads up to "
                           f"{FORMAT_VERSION}")
    try:
        rate = int(manifest["sample_rate"])
        names = [c["name"] for c in manifest["controls"]]
        items = []
        for e in manifest["items"]:
            items.append(DatasetItem(id=str(e["id"]), index=int(e.get("index", len(items))),
                                     input_path=root / e["input"], target_path=root / e["target"],
                                     controls={n: float(e["controls"][n]) for n in names},
                                     length=int(e["length"]), sample_rate=rate, entry=e,
                                     sidechain_path=root / e["sidechain"] if e.get("sidechain") else None))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path} is corrupt: missing or invalid field {exc!r}") from exc
    if not items:
        raise DatasetError(f"{path} lists no items")
    for item in items:
        lengths = {}
        for label, p in (("input", item.input_path), ("target", item.target_path)):
            if not p.is_file():
                raise DatasetError(f"item {item.id}: {label} file {p} is missing")
            try:
                info = sf.info(str(p))
            except Exception as exc:
                raise DatasetError(f"item {item.id}: {label} file {p} is not readable audio: {exc}") from exc
            if info.samplerate != rate:
                raise DatasetError(f"item {item.id}: {label} file {p.name} is at {info.samplerate} Hz, "
                                   f"dataset is at {rate} Hz")
            lengths[label] = info.frames
        if lengths["input"] != lengths["target"]:
            raise DatasetError(f"item {item.id}: input has {lengths['input']} samples but target has "
                               f"{lengths['target']}")
        if lengths["input"] != item.length:
            raise DatasetError(f"item {item.id}: files have {lengths['input']} samples, manifest says {item.length}")
        _check_sidechain_file(item, rate)
        if check_audio:
            item.load()
    keys = {_sidechain_channels(item) for item in items}
    if len(keys) > 1:
        raise DatasetError(f"{path}: items differ in sidechain channels ({sorted(keys)}); every item needs the same")
    return Dataset(path=root, items=items, control_names=names, sample_rate=rate, manifest=manifest)


def _sidechain_channels(item: DatasetItem) -> int:
    return 0 if item.sidechain_path is None else int(sf.info(str(item.sidechain_path)).channels)


def _check_sidechain_file(item: DatasetItem, rate: int) -> None:
    """DatasetError unless the item's sidechain file (if any) is readable at the dataset's rate and length."""
    if item.sidechain_path is None:
        return
    if not item.sidechain_path.is_file():
        raise DatasetError(f"item {item.id}: sidechain file {item.sidechain_path} is missing")
    try:
        info = sf.info(str(item.sidechain_path))
    except Exception as exc:
        raise DatasetError(f"item {item.id}: sidechain file {item.sidechain_path} is not readable audio: {exc}") from exc
    if info.samplerate != rate or info.frames != item.length:
        raise DatasetError(f"item {item.id}: sidechain {item.sidechain_path.name} has {info.frames} samples at "
                           f"{info.samplerate} Hz, the item {item.length} at {rate} Hz")
