"""A keyed (external-sidechain) compressor in numpy: a real, simple target for sidechain datasets and tests.

Feed-forward, hard knee, peak detection on the key, smoothing in the gain domain (the usual digital design):

    level_db[t] = 20 log10(max |key_s[t]| over key channels s, 1e-9)
    wanted_db[t] = min(0, (1 / ratio - 1) * (level_db[t] - threshold_db))       gain reduction, <= 0
    g[t] = a * g[t-1] + (1 - a) * wanted_db[t],  a = exp(-1 / (tau * rate)),
           tau = attack when the reduction deepens (wanted < g[t-1]), release otherwise; g[-1] = 0
    out[t] = in[t] * 10^((g[t] + makeup_db) / 20)

The input only passes through the gain: ducking a bass by a kick, a voice-over keying music down.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from neuralcomp.config import ControlSpec
from neuralcomp.data.dataset import (DatasetError, DatasetWriter, Settings, _json_float, custom, peak_db,
                                     rendered_manifest, splits_document)
from neuralcomp.data.source import SourceConfig, make_source
from neuralcomp.errors import AudioInputError, ConfigError


@dataclass(frozen=True)
class KeyedCompressor:
    """Threshold (dBFS), ratio (:1), attack and release (ms), make-up gain (dB) of the keyed compressor."""

    threshold_db: float = -30.0
    ratio: float = 4.0
    attack_ms: float = 5.0
    release_ms: float = 100.0
    makeup_db: float = 0.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.threshold_db) and self.threshold_db <= 0):
            raise ConfigError(f"threshold_db must be <= 0 dBFS, got {self.threshold_db}")
        if not (math.isfinite(self.ratio) and self.ratio >= 1):
            raise ConfigError(f"ratio must be >= 1, got {self.ratio}")
        for name in ("attack_ms", "release_ms"):
            if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0):
                raise ConfigError(f"{name} must be > 0 ms, got {getattr(self, name)}")

    def gain_db(self, key: np.ndarray, sample_rate: int) -> np.ndarray:
        """The smoothed gain in dB (without make-up) per sample, from `key` (samples,) or (S, samples)."""
        key = np.atleast_2d(np.asarray(key, np.float64))
        level = 20.0 * np.log10(np.maximum(np.abs(key).max(axis=0), 1e-9))
        wanted = np.minimum(0.0, (1.0 / self.ratio - 1.0) * (level - self.threshold_db))
        attack = math.exp(-1000.0 / (self.attack_ms * sample_rate))
        release = math.exp(-1000.0 / (self.release_ms * sample_rate))
        gain = np.empty_like(wanted)
        g = 0.0
        for t, w in enumerate(wanted):  # a one-pole per sample: sequential by nature
            a = attack if w < g else release
            g = a * g + (1.0 - a) * w
            gain[t] = g
        return gain

    def process(self, audio: np.ndarray, key: np.ndarray, sample_rate: int) -> np.ndarray:
        """`audio` (samples,) compressed by the level of `key` (samples,) or (S, samples): float32."""
        audio = np.asarray(audio)
        key = np.atleast_2d(np.asarray(key))
        if audio.ndim != 1 or key.shape[-1] != audio.shape[-1]:
            raise AudioInputError(f"sidechain of shape {key.shape} does not match the audio {audio.shape}: "
                                  "a mono audio signal and a key of as many samples")
        gain = self.gain_db(key, sample_rate) + self.makeup_db
        return (audio * 10.0 ** (gain / 20.0)).astype(np.float32)


KEYED_CONTROLS = (
    ControlSpec("threshold", -60.0, 0.0, -30.0, "dB"),
    ControlSpec("ratio", 1.0, 20.0, math.sqrt(20.0), ":1", "log"),
    ControlSpec("attack", 0.1, 100.0, math.sqrt(10.0), "ms", "log"),
    ControlSpec("release", 1.0, 500.0, math.sqrt(500.0), "ms", "log"),
)
KEY_SEED_OFFSET = 1000  # item i's key is the source signal of seed + 1000 + i, rotated by half its length


def keyed_compressor(controls: dict[str, float]) -> KeyedCompressor:
    """The compressor at normalised `controls` (names of KEYED_CONTROLS; missing ones at their default)."""
    values = {c.name: c.value_at(controls[c.name]) if c.name in controls else c.default for c in KEYED_CONTROLS}
    return KeyedCompressor(values["threshold"], values["ratio"], values["attack"], values["release"])


def key_signal(config: SourceConfig, length: int, music_dir: Path | None = None,
               allow_synthetic_music: bool = False) -> np.ndarray:
    """The key of the item whose source has `config`: the source signal of seed + KEY_SEED_OFFSET, rotated
    by half its length (so tone steps meet music and events), cut or zero-padded to `length` samples."""
    key_source = make_source(dataclasses.replace(config, seed=config.seed + KEY_SEED_OFFSET), music_dir,
                             allow_synthetic_music)
    key = np.roll(key_source.audio, len(key_source.audio) // 2)[:length]
    return np.pad(key, (0, length - len(key)))


def build_keyed_dataset(out_dir: str | Path, settings: Settings | Sequence[Mapping[str, float]],
                        source_config: SourceConfig | None = None, music_dir: str | Path | None = None,
                        allow_synthetic_music: bool = False, n_splits: int = 10, split_seed: int = 0,
                        overwrite: bool = False) -> Path:
    """A sidechain dataset: item i is the source signal of seed + i compressed by KeyedCompressor keyed from
    another source signal (seed + KEY_SEED_OFFSET + i, rotated by half its length, so tone steps meet music
    and events), written as the item's sidechain track. Same layout as `build_dataset`."""
    if not isinstance(settings, Settings):
        settings = custom(settings)
    if len(settings) < 1:
        raise DatasetError("no control settings given: a dataset needs at least one item")
    source_config = source_config or SourceConfig()
    folder = Path(music_dir) if music_dir is not None else None
    compressors = [keyed_compressor(dict(c)) for c in settings.items]  # refuse a bad setting before rendering
    writer = DatasetWriter(out_dir, overwrite=overwrite)
    try:
        entries = []
        for i, (controls, compressor) in enumerate(zip(settings.items, compressors)):
            config = dataclasses.replace(source_config, seed=source_config.seed + i)
            source = make_source(config, folder, allow_synthetic_music)
            key = key_signal(config, len(source.audio), folder, allow_synthetic_music)
            rendered = compressor.process(source.audio, key, source.sample_rate)
            entry = writer.write_item(i, source.audio, rendered, source.sample_rate, sidechain=key)
            entry.update({
                "controls": {c.name: float(controls.get(c.name, c.normalise(c.default))) for c in KEYED_CONTROLS},
                "parameters": dataclasses.asdict(compressor),
                "length": int(len(source.audio)),
                "peak_input_db": _json_float(peak_db(source.audio)),
                "peak_target_db": _json_float(peak_db(rendered)),
                "dc_removed": 0.0,
                "sections": [{"name": s.name, "start": s.start, "end": s.end} for s in source.sections],
                "seed": config.seed,
                "music_files": list(source.music_files),
            })
            entries.append(entry)
        manifest = rendered_manifest(
            {"name": "keyed_compressor", "description": __doc__.splitlines()[0]},
            [dataclasses.asdict(c) for c in KEYED_CONTROLS], settings, source_config, music_dir, entries,
            sidechain={"channels": 1, "source": f"source signal of seed + {KEY_SEED_OFFSET} + i, rotated by half"})
        splits = splits_document(len(entries), n_splits, split_seed) if len(entries) >= 3 else None
        return writer.finish(manifest, splits)
    except BaseException:
        writer.abort()
        raise
