"""Import recorded input/output pairs (hardware captures) into the dataset format of
:mod:`neuralcomp.data.dataset`, so training reads rendered and captured datasets the same way.

:func:`import_pairs` imports any :class:`~neuralcomp.data.pairing.PairSet` (manifests, glob patterns, see
:mod:`neuralcomp.data.pairing`); :func:`import_captures` does it for a folder in the CL 1B layouts below.

CL 1B pairing (``pairing="auto"``, the default, applies both rules below to one folder; ``"numbered"`` or
``"shared_input"`` applies one; or pass a callable ``folder -> [(input_path, target_path), ...]``):

* numbered: ``NN_tar_<settings>.wav`` pairs with ``NN_inp.wav`` (same ``NN`` prefix, any digits);
* shared input: every ``target_<settings>.wav`` pairs with ``Input.wav`` in the same folder.

Names are matched case-insensitively; other ``.wav`` files are listed in the report as ignored. A target
whose input is missing, or a folder where no pair is found, raises :class:`CaptureError`.

Control names (``controls_from_name``, default :func:`parse_cl1b_name`): the part after ``tar_`` /
``target_`` is a list of ``key_value`` pairs with keys ``at`` (attack), ``re`` (release), ``ra`` or ``r``
(ratio), ``th`` (threshold); all four must be present (else CaptureError naming the file).

* shared-input files (``target_...``) hold values normalised to [0, 1] written without the decimal point:
  a value with a leading ``0`` and more digits is ``0.<rest>`` (``025`` = 0.25, ``05`` = 0.5), otherwise
  it is an integer (``0``, ``1``). They are used as they are.
* numbered files (``NN_tar_...``) hold the device's own knob positions (integers). They are normalised as
  ``position / knob_max`` with ``knob_max = 10`` by default -- an *assumption* (a 0..10 knob scale; the
  source does not document the scale), so pass the right ``knob_max`` when you know it. The raw numbers
  are kept in each item's ``raw_controls``.

A custom ``controls_from_name(file_name) -> dict[name, normalised value]`` may be given instead.

Per pair, in order: channels averaged to mono (or the chosen channel of a multichannel file); refuse an
unreadable or empty file; refuse a sample-rate mismatch (input vs target, or vs the other pairs) unless
``resample`` converts every file; refuse a target more than ``MAX_EXTRA_TARGET_SECONDS`` longer than its
input, or silent; count clipped samples (a warning); remove DC (subtract the mean) from both; estimate the
lag of the target behind the input: from the sync marker when the input is a source file of
:mod:`neuralcomp.data.sync` (then the part before the program is dropped), else as the integer lag in
``[-max_lag_ms, +max_lag_ms]`` maximising ``|cross-correlation|`` (FFT-based; positive = target late, i.e.
``target[n] ~ input[n - lag]``); shift so they line up and trim both to the common length (samples dropped
from each side reported); subtract the mean of the kept part once more (so the written files have zero
mean; the DC reported is the total removed); refuse a target whose correlation with the input is then
below ``min_correlation``; write float32 WAVs. A take's sidechain (key) file, when the pairs have them
(every pair or none), is read with all its channels, must have the input's sample rate (or be resampled
with it) and exactly the input file's length (it was fed to the unit alongside the input, sample for
sample), and gets the input's DC removal and cuts; every key has the same channel count. The normalised
correlation ``sum(x y) / sqrt(sum(x^2) sum(y^2))`` is reported before (lag 0, common prefix) and after alignment. Items too short to train (no
sequence at ``MIN_TRAINING_LENGTH`` for the ``tiny`` preset) are kept for validation and test only.
Everything is written into a temporary folder that replaces ``out_dir`` at the end: a failure leaves
nothing behind.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import soundfile as sf

from neuralcomp.config import ControlSpec, load_preset
from neuralcomp.data.dataset import (FORMAT, FORMAT_VERSION, SPLITS, DatasetWriter, _json_float, _now,
                                     peak_db, remove_dc, splits_document)
from neuralcomp.data.pairing import CaptureError, CapturePair, PairSet, check_sidechains
from neuralcomp.data.source import resample
from neuralcomp.data.sync import (MAX_ROUND_TRIP_SECONDS, MIN_MARKER_CORRELATION, SYNC_PRE_SECONDS, find_marker,
                                  program_start, starts_with_marker, sync_marker)
from neuralcomp.model.lengths import first_iteration_input_length

CONTROL_KEYS = {"at": "attack", "re": "release", "ra": "ratio", "r": "ratio", "th": "threshold"}
CONTROL_ORDER = ("attack", "release", "ratio", "threshold")
DEFAULT_MAX_LAG_MS = 50.0
DEFAULT_KNOB_MAX = 10.0

_NUMBERED_TARGET = re.compile(r"^(\d+)_tar_(.+)$", re.IGNORECASE)
_NUMBERED_INPUT = re.compile(r"^(\d+)_inp$", re.IGNORECASE)
_SHARED_TARGET = re.compile(r"^target_(.+)$", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedName:
    layout: str  # "numbered" (knob positions) or "shared_input" (normalised)
    raw: dict[str, float]  # the numbers in the name, by control name
    controls: dict[str, float]  # normalised to [0, 1]


def _parse_value(text: str, normalised: bool, file_name: str) -> float:
    if not text.isdigit():
        raise CaptureError(f"{file_name}: control value {text!r} is not a number")
    if normalised and len(text) > 1 and text.startswith("0"):
        return float("0." + text[1:])
    return float(int(text))


def parse_cl1b_name(file_name: str, knob_max: float = DEFAULT_KNOB_MAX) -> ParsedName:
    """Controls from a CL 1B capture file name (rules in the module docstring)."""
    stem = Path(file_name).stem
    m = _NUMBERED_TARGET.match(stem)
    if m:
        layout, body = "numbered", m.group(2)
    else:
        m = _SHARED_TARGET.match(stem)
        if not m:
            raise CaptureError(f"{file_name}: not a capture target name (expected NN_tar_... or target_...)")
        layout, body = "shared_input", m.group(1)
    tokens = body.split("_")
    if len(tokens) % 2:
        raise CaptureError(f"{file_name}: expected key_value pairs after the prefix, got {body!r}")
    raw: dict[str, float] = {}
    for key, value in zip(tokens[::2], tokens[1::2]):
        name = CONTROL_KEYS.get(key.lower())
        if name is None:
            raise CaptureError(f"{file_name}: unknown control key {key!r}; known keys: {', '.join(CONTROL_KEYS)}")
        if name in raw:
            raise CaptureError(f"{file_name}: control {name!r} given twice")
        raw[name] = _parse_value(value, layout == "shared_input", file_name)
    missing = [n for n in CONTROL_ORDER if n not in raw]
    if missing:
        raise CaptureError(f"{file_name}: control(s) {missing} missing from the name")
    if layout == "shared_input":
        controls = dict(raw)
    else:
        controls = {k: v / knob_max for k, v in raw.items()}
    bad = {k: v for k, v in controls.items() if not 0.0 <= v <= 1.0}
    if bad:
        raise CaptureError(f"{file_name}: normalised control(s) {bad} outside [0, 1]"
                           + (f" (knob_max = {knob_max})" if layout == "numbered" else ""))
    return ParsedName(layout, raw, {k: controls[k] for k in CONTROL_ORDER})


# ------------------------------------------------------------------------------------------ pairing

def pair_numbered(folder: Path) -> list[tuple[Path, Path]]:
    wavs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    inputs = {}
    for p in wavs:
        m = _NUMBERED_INPUT.match(p.stem)
        if m:
            inputs[int(m.group(1))] = p
    pairs = []
    for p in wavs:
        m = _NUMBERED_TARGET.match(p.stem)
        if m:
            n = int(m.group(1))
            if n not in inputs:
                raise CaptureError(f"target {p.name} has no input {m.group(1)}_inp.wav in {folder}")
            pairs.append((inputs[n], p))
    return pairs


def pair_shared_input(folder: Path) -> list[tuple[Path, Path]]:
    wavs = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    targets = [p for p in wavs if _SHARED_TARGET.match(p.stem)]
    inputs = [p for p in wavs if p.stem.lower() == "input"]
    if targets and not inputs:
        raise CaptureError(f"{len(targets)} target_*.wav file(s) in {folder} but no Input.wav to pair them with")
    return [(inputs[0], t) for t in targets]


PAIRINGS: dict[str, Callable[[Path], list[tuple[Path, Path]]]] = {
    "numbered": pair_numbered,
    "shared_input": pair_shared_input,
    "auto": lambda folder: pair_numbered(folder) + pair_shared_input(folder),
}


# --------------------------------------------------------------------------------------- alignment

def estimate_lag(x: np.ndarray, y: np.ndarray, max_lag: int) -> tuple[int, float]:
    """Integer lag l in [-max_lag, max_lag] maximising |sum_n y[n] x[n - l]| (y late by l when l > 0),
    and that correlation's sign (+1 or -1)."""
    n = len(x) + len(y)
    size = 1 << max(1, (n - 1).bit_length())
    r = np.fft.irfft(np.fft.rfft(y, size) * np.conj(np.fft.rfft(x, size)), size)
    max_lag = int(min(max_lag, len(y) - 1, len(x) - 1))
    lags = np.concatenate([np.arange(0, max_lag + 1), np.arange(-max_lag, 0)])
    values = np.concatenate([r[:max_lag + 1], r[size - max_lag:] if max_lag > 0 else r[:0]])
    i = int(np.argmax(np.abs(values)))
    return int(lags[i]), (1.0 if values[i] >= 0 else -1.0)


def normalised_correlation(x: np.ndarray, y: np.ndarray) -> float:
    n = min(len(x), len(y))
    x, y = np.asarray(x[:n], np.float64), np.asarray(y[:n], np.float64)
    denom = math.sqrt(float(np.dot(x, x)) * float(np.dot(y, y)))
    return float(np.dot(x, y) / denom) if denom > 0 else 0.0


def align(x: np.ndarray, y: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray, dict[str, int]]:
    """Shift by `lag` (target late when > 0) and trim both to the common length."""
    x_start, y_start = (0, lag) if lag >= 0 else (-lag, 0)
    n = min(len(x) - x_start, len(y) - y_start)
    if n <= 0:
        raise CaptureError(f"no overlap left after aligning by {lag} samples")
    trims = {"input_start": x_start, "input_end": len(x) - x_start - n,
             "target_start": y_start, "target_end": len(y) - y_start - n}
    return x[x_start:x_start + n], y[y_start:y_start + n], trims


# ------------------------------------------------------------------------------------------ report

@dataclass
class CaptureItemReport:
    id: str
    input_file: str
    target_file: str
    layout: str
    controls: dict[str, float]
    raw_controls: dict[str, float]
    lag_samples: int
    lag_ms: float
    polarity: float
    dc_input_before: float
    dc_target_before: float
    dc_input_after: float
    dc_target_after: float
    trimmed_input: int
    trimmed_target: int
    trims: dict[str, int]
    length: int
    correlation_before: float
    correlation_after: float
    origin: str = ""
    aligned_by: str = "cross-correlation"  # or "sync marker"
    clipped_input: int = 0  # samples at or above CLIP_LEVEL in the file as read
    clipped_target: int = 0
    longest_training_length: dict[str, int] = field(default_factory=dict)  # preset -> largest L it trains at
    training: bool = True  # False: too short for any training window, kept for validation and test
    sidechain_file: str = ""  # the take's key file, cut like the input ("" without a sidechain)


@dataclass
class ImportReport:
    folder: str
    out_dir: str
    sample_rate: int
    max_lag_ms: float
    items: list[CaptureItemReport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    resampled_from: dict[str, int] = field(default_factory=dict)  # file -> its own rate, when resampled
    sidechain_channels: int = 0  # channels of every take's key file (0: no sidechain)

    def format(self) -> str:
        head = (f"{'id':>3}  {'input':<14} {'target':<38} {'lag':>5} {'lag ms':>7} {'DC in/out before':>20} "
                f"{'DC after':>9} {'trim in':>7} {'trim tgt':>8} {'corr 0':>7} {'corr':>7}")
        lines = [f"Imported {len(self.items)} pair(s) from {self.folder} into {self.out_dir} "
                 f"({self.sample_rate} Hz, lag search +/-{self.max_lag_ms:g} ms)", head, "-" * len(head)]
        for r in self.items:
            dc_after = max(abs(r.dc_input_after), abs(r.dc_target_after))
            lines.append(
                f"{r.id:>3}  {r.input_file[-14:]:<14} {r.target_file[-38:]:<38} {r.lag_samples:>5} {r.lag_ms:>7.2f} "
                f"{r.dc_input_before:>+10.1e}/{r.dc_target_before:>+9.1e} {dc_after:>9.1e} {r.trimmed_input:>7} "
                f"{r.trimmed_target:>8} {r.correlation_before:>7.4f} {r.correlation_after:>7.4f}"
                + ("  (polarity inverted)" if r.polarity < 0 else "")
                + ("  (sync marker)" if r.aligned_by == "sync marker" else ""))
        presets = list(self.items[0].longest_training_length) if self.items else []
        if presets:
            lines += ["", f"training windows: largest L (of {', '.join(map(str, TRAINING_LENGTHS))}) each item "
                          f"gives one TBPTT sequence at (N = 1, with the SPN), per model preset",
                      f"{'id':>3}  {'seconds':>8}  " + "  ".join(f"{p:>9}" for p in presets) + "  use"]
            for r in self.items:
                cells = "  ".join(f"{(r.longest_training_length[p] or '-'):>9}" for p in presets)
                use = "train/valid/test" if r.training else "valid/test only (too short to train)"
                lines.append(f"{r.id:>3}  {r.length / max(self.sample_rate, 1):>8.2f}  {cells}  {use}")
        if self.sidechain_channels:
            lines.append(f"sidechain: each take's key ({self.sidechain_channels} channel(s)) is cut and "
                         f"DC-removed like its input")
        if self.resampled_from:
            lines.append("resampled to {} Hz: ".format(self.sample_rate)
                         + ", ".join(f"{k} ({v} Hz)" for k, v in self.resampled_from.items()))
        if self.ignored:
            lines.append(f"ignored (not part of any pair): {', '.join(self.ignored)}")
        lines += [f"warning: {w}" for w in self.warnings]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# ------------------------------------------------------------------------------------------ import

CLIP_LEVEL = 0.999  # |sample| at or above this counts as clipped
MAX_EXTRA_TARGET_SECONDS = 1.0  # a target longer than its input by more than this is not its recording
DEFAULT_MIN_CORRELATION = 0.2  # aligned |correlation| below this: the target is not this input's recording
SILENT_PEAK = 1e-5  # -100 dBFS: a target below this is silence
TRAINING_LENGTHS = (2048, 4096, 8192, 16384, 32768)
TRAINABLE_PRESET = "tiny"  # an item trains if it gives one sequence at MIN_TRAINING_LENGTH for this preset
MIN_TRAINING_LENGTH = 4096
REPORT_PRESETS = ("tiny", "sptmod25", "sptmod24")


@dataclass(frozen=True)
class ImportOptions:
    """How pairs are read and aligned (command-line flags of `neuralcomp dataset import`)."""

    max_lag_ms: float = 50.0  # lag search without a sync marker
    resample: int | None = None  # convert every file to this rate; None: all files must share one rate
    min_correlation: float = DEFAULT_MIN_CORRELATION
    input_channel: int | None = None  # 1-based; None: average the channels
    target_channel: int | None = None
    input_dbu_at_0dbfs: float | None = None  # converter levels of the capture (level calibration)
    output_dbu_at_0dbfs: float | None = None
    n_splits: int = 10
    split_seed: int = 0

    def calibration(self) -> dict[str, float]:
        return {k: float(v) for k, v in (("input_dbu_at_0dbfs", self.input_dbu_at_0dbfs),
                                         ("output_dbu_at_0dbfs", self.output_dbu_at_0dbfs)) if v is not None}


def _control_entries(controls: Sequence[ControlSpec]) -> list[dict[str, Any]]:
    return [{"name": c.name, "minimum": c.minimum, "maximum": c.maximum, "default": c.default, "unit": c.unit,
             "mapping": c.mapping, "parameter": c.name} for c in controls]


def _read_file(path: Path, label: str) -> tuple[np.ndarray, int]:
    """(float64 audio (samples, channels), rate); CaptureError naming the file when unreadable or empty."""
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise CaptureError(f"cannot read {label} {path}: {str(exc).splitlines()[0] if str(exc) else exc}") from exc
    if audio.shape[0] == 0:
        raise CaptureError(f"{label} {path} is empty (0 samples)")
    return audio, int(rate)


def _read(path: Path, channel: int | None, label: str) -> tuple[np.ndarray, int, int]:
    """(mono float64 audio, rate, channels in the file): `channel` (from 1) of a multichannel file, or
    the mean of its channels; CaptureError naming the file when it is unreadable, empty or lacks the channel."""
    audio, rate = _read_file(path, label)
    if channel is not None and audio.shape[1] > 1:  # a mono file has only its one channel
        if not 1 <= channel <= audio.shape[1]:
            raise CaptureError(f"{label} {path} has {audio.shape[1]} channel(s); channel {channel} does not exist")
        return audio[:, channel - 1], rate, audio.shape[1]
    return audio.mean(axis=1), rate, audio.shape[1]


def _read_key(path: Path) -> tuple[np.ndarray, int]:
    """(a sidechain file as float64 (channels, samples), rate); CaptureError naming it when unreadable or empty."""
    audio, rate = _read_file(path, "sidechain")
    return np.ascontiguousarray(audio.T), rate


def _sidechain_for(pair: CapturePair, key_raw: np.ndarray, key_rate: int, x_raw: np.ndarray, x_rate: int,
                   sample_rate: int) -> np.ndarray:
    """The key of `pair` at `sample_rate`, checked against its input file: same rate (before any resampling)
    and the same number of samples; CaptureError naming both files otherwise."""
    name, inp = pair.sidechain.name, pair.input.name
    if key_rate != x_rate:
        raise CaptureError(f"{pair.origin}: sidechain {name} is at {key_rate} Hz but its input {inp} is at "
                           f"{x_rate} Hz: the key is played alongside the input, at its rate")
    if key_raw.shape[1] != len(x_raw):
        raise CaptureError(f"{pair.origin}: sidechain {name} has {key_raw.shape[1]} samples but its input {inp} has "
                           f"{len(x_raw)}: the key must be the signal fed to the unit's sidechain alongside the "
                           f"input, sample for sample")
    return np.stack([resample(channel, key_rate, sample_rate) for channel in key_raw])


def longest_training_length(length: int, preset: str) -> int:
    """The largest L of TRAINING_LENGTHS at which `length` samples give one TBPTT sequence (N = 1, SPN on)
    for a model preset; 0 when none does."""
    config = load_preset(preset)
    fitting = [L for L in TRAINING_LENGTHS if first_iteration_input_length(config, L, True) <= length]
    return max(fitting, default=0)


def pairs_from_layouts(folder: str | Path, pairing: str | Callable[[Path], list[tuple[Path, Path]]] = "auto",
                       controls_from_name: Callable[[str], Any] | None = None, knob_max: float = DEFAULT_KNOB_MAX,
                       controls: Sequence[ControlSpec] | None = None) -> PairSet:
    """The pairs of a folder in the CL 1B layouts (module docstring), or of a custom pairing function."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {folder} does not exist")
    if callable(pairing):
        pair_fn = pairing
    elif pairing in PAIRINGS:
        pair_fn = PAIRINGS[pairing]
    else:
        raise CaptureError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)} or pass a function")
    found = [(Path(a), Path(b)) for a, b in pair_fn(folder)]
    wavs = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not found:
        raise CaptureError(f"no input/target pairs found in {folder} with pairing {pairing!r} "
                           f"(expected NN_inp.wav + NN_tar_*.wav, or Input.wav + target_*.wav; or give a "
                           f"manifest or --pair patterns); wav files there: {', '.join(wavs) or 'none'}")
    used = {p.name for pair in found for p in pair}
    parsed: list[ParsedName] = []
    for _, tgt in found:
        if controls_from_name is None:
            parsed.append(parse_cl1b_name(tgt.name, knob_max=knob_max))
        else:
            result = controls_from_name(tgt.name)
            if isinstance(result, ParsedName):
                parsed.append(result)
            elif isinstance(result, Mapping):
                values = {str(k): float(v) for k, v in result.items()}
                parsed.append(ParsedName("custom", dict(values), values))
            else:
                raise CaptureError(f"controls_from_name({tgt.name!r}) returned {type(result).__name__}, "
                                   f"expected a dict of normalised controls")
    names = list(parsed[0].controls)
    for (_, tgt), p in zip(found, parsed):
        if list(p.controls) != names:
            raise CaptureError(f"{tgt.name}: controls {list(p.controls)} differ from the first pair's {names}")
        bad = {k: v for k, v in p.controls.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise CaptureError(f"{tgt.name}: normalised control(s) {bad} outside [0, 1]")
    if controls is None:
        specs = tuple(ControlSpec(n) for n in names)
    else:
        specs = tuple(controls)
        if [c.name for c in specs] != names:
            raise CaptureError(f"control specs {[c.name for c in specs]} do not match the captures' controls {names}")
    name = pairing if isinstance(pairing, str) else getattr(pairing, "__name__", "custom")
    pairs = [CapturePair(inp, tgt, p.controls, p.raw, p.layout, tgt.name) for (inp, tgt), p in zip(found, parsed)]
    return PairSet(pairs, specs, f"{folder} ({name} pairing)", [w for w in wavs if w not in used],
                   details={"pairing": name, "knob_max": knob_max})


def import_captures(folder: str | Path, out_dir: str | Path,
                    pairing: str | Callable[[Path], list[tuple[Path, Path]]] = "auto",
                    controls_from_name: Callable[[str], Any] | None = None,
                    max_lag_ms: float = DEFAULT_MAX_LAG_MS, knob_max: float = DEFAULT_KNOB_MAX,
                    n_splits: int = 10, split_seed: int = 0, overwrite: bool = False,
                    progress: Callable[[CaptureItemReport], None] | None = None,
                    controls: Sequence[ControlSpec] | None = None,
                    options: ImportOptions | None = None) -> tuple[Path, ImportReport]:
    """Pair, parse, DC-remove, align and trim the captures in `folder` (CL 1B layouts or `pairing`);
    write a dataset to `out_dir`. `controls` gives the controls' user ranges, units and mappings
    (default: unnamed 0..1 knobs)."""
    pairs = pairs_from_layouts(folder, pairing, controls_from_name, knob_max, controls)
    options = options or ImportOptions(max_lag_ms=max_lag_ms, n_splits=n_splits, split_seed=split_seed)
    return import_pairs(pairs, out_dir, options, overwrite=overwrite, progress=progress, source_folder=folder)


def import_pairs(pair_set: PairSet, out_dir: str | Path, options: ImportOptions = ImportOptions(),
                 overwrite: bool = False, progress: Callable[[CaptureItemReport], None] | None = None,
                 warn: Callable[[str], None] | None = None, source_folder: str | Path | None = None
                 ) -> tuple[Path, ImportReport]:
    """Read, check, align and write every pair of `pair_set` as a dataset in `out_dir`, atomically: on any
    error nothing is left behind. Checks: readable non-empty files, one sample rate (or `resample`),
    a target at most MAX_EXTRA_TARGET_SECONDS longer than its input, not silent, correlated with its
    input after alignment; clipping is counted and reported as a warning (`warn` is called too)."""
    pairs = pair_set.pairs
    if not pairs:
        raise CaptureError(f"{pair_set.description}: no pairs to import")
    check_sidechains(pairs)
    calibration = {**pair_set.calibration, **options.calibration()}
    report = ImportReport(str(source_folder or pair_set.description), str(out_dir), 0, options.max_lag_ms,
                          ignored=list(pair_set.ignored))

    def warning(text: str) -> None:
        report.warnings.append(text)
        if warn:
            warn(text)

    sample_rate: int | None = options.resample
    first_rate: tuple[int, str] | None = None
    cache: dict[Path, tuple[np.ndarray, int, int]] = {}
    key_cache: dict[Path, tuple[np.ndarray, int]] = {}
    key_channels: tuple[int, str] | None = None  # (channels, file) of the first key
    writer = DatasetWriter(out_dir, overwrite=overwrite)
    try:
        entries, short = [], []
        for i, p in enumerate(pairs):
            if p.input not in cache:
                cache[p.input] = _read(p.input, options.input_channel, "input")
            x_raw, x_rate, _ = cache[p.input]
            y_raw, y_rate, y_channels = _read(p.target, options.target_channel, "target")
            if p.sidechain is not None:
                if p.sidechain not in key_cache:
                    key_cache[p.sidechain] = _read_key(p.sidechain)
                channels = key_cache[p.sidechain][0].shape[0]
                if key_channels is None:
                    key_channels = (channels, p.sidechain.name)
                elif channels != key_channels[0]:
                    raise CaptureError(f"{p.origin}: sidechain {p.sidechain.name} has {channels} channel(s) but "
                                       f"{key_channels[1]} has {key_channels[0]}: every take's key needs the same")
            for path, rate in ((p.input, x_rate), (p.target, y_rate)):
                if options.resample is None:
                    if first_rate is None:
                        first_rate = (rate, path.name)
                    elif rate != first_rate[0]:
                        raise CaptureError(
                            f"sample-rate mismatch: {path.name} is at {rate} Hz but {first_rate[1]} is at "
                            f"{first_rate[0]} Hz; a dataset has one rate: pass --resample RATE to convert them")
                elif rate != options.resample:
                    report.resampled_from[path.name] = rate
            if p.sidechain is not None and options.resample not in (None, x_rate):
                report.resampled_from[p.sidechain.name] = x_rate  # _sidechain_for refuses another rate
            if sample_rate is None:
                sample_rate = x_rate
            if (len(y_raw) / y_rate) - (len(x_raw) / x_rate) > MAX_EXTRA_TARGET_SECONDS:
                raise CaptureError(
                    f"{p.origin}: target {p.target.name} ({len(y_raw) / y_rate:.2f} s) is more than "
                    f"{MAX_EXTRA_TARGET_SECONDS:g} s longer than its input {p.input.name} ({len(x_raw) / x_rate:.2f} s): "
                    f"they are not one recording and its source")
            peak = float(np.max(np.abs(y_raw)))
            if peak < SILENT_PEAK:
                raise CaptureError(f"{p.origin}: target {p.target.name} is silent (peak {peak_db(y_raw):.0f} dBFS): "
                                   f"check the recorder's input and channel")
            clipped = (int(np.count_nonzero(np.abs(x_raw) >= CLIP_LEVEL)),
                       int(np.count_nonzero(np.abs(y_raw) >= CLIP_LEVEL)))
            for label, path, count in (("input", p.input, clipped[0]), ("target", p.target, clipped[1])):
                if count:
                    warning(f"{path.name} ({label}) clips: {count} sample(s) at or above {CLIP_LEVEL} full scale")
            x = resample(x_raw, x_rate, sample_rate)
            y = resample(y_raw, y_rate, sample_rate)
            key = None if p.sidechain is None else _sidechain_for(p, *key_cache[p.sidechain], x_raw, x_rate,
                                                                  sample_rate)
            x, dc_x = remove_dc(x)
            y, dc_y = remove_dc(y)
            aligned_by = "cross-correlation"
            if starts_with_marker(x, sample_rate):
                lag, polarity = _marker_lag(x, y, sample_rate, p)
                aligned_by = "sync marker"
            else:
                max_lag = int(round(options.max_lag_ms * sample_rate / 1000.0))
                lag, polarity = estimate_lag(x.astype(np.float64), y.astype(np.float64), max_lag)
            corr_before = normalised_correlation(x, y)
            xa, ya, trims = align(x, y, lag)
            if aligned_by == "sync marker":  # the program starts after the marker and the gap
                start = program_start(sample_rate)
                xa, ya = xa[start:], ya[start:]
                trims["input_start"] += start
                trims["target_start"] += start
            if key is not None:  # the input's cuts, and the DC of the kept part per channel
                kept = key[:, trims["input_start"]:trims["input_start"] + len(xa)]
                key = np.stack([remove_dc(channel)[0] for channel in kept])
            # DC again over the kept part: a longer recording's mean differs from its trimmed part's.
            xa, dc_x2 = remove_dc(xa)
            ya, dc_y2 = remove_dc(ya)
            dc_x, dc_y = dc_x + dc_x2, dc_y + dc_y2
            corr_after = normalised_correlation(xa, ya)
            if abs(corr_after) < options.min_correlation:
                hint = (f"the file has {y_channels} channels: check which one holds the unit's return "
                        f"(--target-channel N)" if y_channels > 1 else
                        "check that the recorder took the unit's return channel, and that this is the right file")
                raise CaptureError(f"{p.origin}: target {p.target.name} is uncorrelated with input {p.input.name} "
                                   f"(correlation {corr_after:.3f} after alignment, below {options.min_correlation:g}): "
                                   f"it is not a recording of this input; {hint}")
            entry = writer.write_item(i, xa, ya, sample_rate, sidechain=key)
            longest = {preset: longest_training_length(len(xa), preset) for preset in REPORT_PRESETS}
            trains = longest_training_length(len(xa), TRAINABLE_PRESET) >= MIN_TRAINING_LENGTH
            if not trains:
                short.append(i)
            item = CaptureItemReport(
                id=entry["id"], input_file=p.input.name, target_file=p.target.name, layout=p.layout,
                controls=p.controls, raw_controls=p.raw, lag_samples=lag, lag_ms=1000.0 * lag / sample_rate,
                polarity=polarity, dc_input_before=dc_x, dc_target_before=dc_y,
                dc_input_after=float(np.mean(xa, dtype=np.float64)),
                dc_target_after=float(np.mean(ya, dtype=np.float64)),
                trimmed_input=trims["input_start"] + trims["input_end"],
                trimmed_target=trims["target_start"] + trims["target_end"], trims=trims, length=len(xa),
                correlation_before=corr_before, correlation_after=corr_after, origin=p.origin,
                aligned_by=aligned_by, clipped_input=clipped[0], clipped_target=clipped[1],
                longest_training_length=longest, training=trains,
                sidechain_file=p.sidechain.name if p.sidechain is not None else "")
            report.items.append(item)
            entry.update({
                "name": p.target.stem, "source_files": {"input": str(p.input), "target": str(p.target),
                                                        **({"sidechain": str(p.sidechain)} if p.sidechain else {})},
                "origin": p.origin, "layout": p.layout, "controls": p.controls, "raw_controls": p.raw,
                "parameters": p.raw, "length": len(xa), "peak_input_db": _json_float(peak_db(xa)),
                "peak_target_db": _json_float(peak_db(ya)), "dc_removed": dc_y, "dc_removed_input": dc_x,
                "clipped_samples": {"input": clipped[0], "target": clipped[1]}, "training": trains,
                "sections": [], "alignment": {k: v for k, v in asdict(item).items() if k in (
                    "lag_samples", "lag_ms", "polarity", "trimmed_input", "trimmed_target", "trims",
                    "correlation_before", "correlation_after", "aligned_by")},
            })
            entries.append(entry)
            if progress:
                progress(item)
        report.sample_rate = int(sample_rate)
        report.sidechain_channels = key_channels[0] if key_channels else 0
        if short:
            warning(f"{len(short)} item(s) too short to train ({', '.join(entries[k]['id'] for k in short)}): "
                    f"used for validation and test only")
        trainable = len(entries) - len(short)
        has_splits = trainable >= 3
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "kind": "captures", "created": _now(),
            "sample_rate": int(sample_rate),
            "target": {"name": "captures", "source": pair_set.description,
                       "source_folder": str(Path(source_folder).resolve()) if source_folder else None,
                       "max_lag_ms": options.max_lag_ms, "resampled_from": report.resampled_from, **pair_set.details},
            "controls": _control_entries(pair_set.controls),
            "calibration": calibration or None,
            "settings": {"method": "captures", "n_items": len(entries)},
            "source": None, "music_dir": None, "synthetic_music": False,
            **({"sidechain": {"channels": key_channels[0], "source": "captures: each take's key file, cut like "
                                  "its input"}} if key_channels else {}),
            "items": entries, "ignored_files": report.ignored, "warnings": report.warnings,
            "splits": SPLITS if has_splits else None,
        }
        splits = splits_document(len(entries), options.n_splits, options.split_seed, eval_only=short) \
            if has_splits else None
        return writer.finish(manifest, splits), report
    except BaseException:
        writer.abort()
        raise


def _marker_lag(x: np.ndarray, y: np.ndarray, sample_rate: int, pair: CapturePair) -> tuple[int, float]:
    """Lag of the target behind a source file with a sync marker, from the marker's position in each."""
    at_input = round(SYNC_PRE_SECONDS * sample_rate)
    at_target, correlation = find_marker(y, sample_rate, SYNC_PRE_SECONDS + MAX_ROUND_TRIP_SECONDS)
    if correlation < MIN_MARKER_CORRELATION:
        raise CaptureError(
            f"{pair.origin}: the input {pair.input.name} starts with the sync marker but the target "
            f"{pair.target.name} does not hold it within {MAX_ROUND_TRIP_SECONDS:g} s (best correlation "
            f"{correlation:.2f}): record the whole source file, on the unit's return channel")
    segment = y[at_target:at_target + len(sync_marker(sample_rate))]
    marker = x[at_input:at_input + len(segment)]
    polarity = 1.0 if float(np.dot(segment, marker)) >= 0 else -1.0
    return at_target - at_input, polarity
