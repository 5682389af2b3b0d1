"""Import recorded input/output pairs (hardware captures) into the dataset format of
:mod:`neuralcomp.data.dataset`, so training reads rendered and captured datasets the same way.

Pairing (``pairing="auto"``, the default, applies both rules below to one folder; ``"numbered"`` or
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

Per pair, in order: channels averaged to mono; refuse a sample-rate mismatch (input vs target, or vs the
other pairs); remove DC (subtract the mean) from both; estimate the lag of the target behind the input as
the integer lag in ``[-max_lag_ms, +max_lag_ms]`` maximising ``|cross-correlation|`` (FFT-based; positive =
target late, i.e. ``target[n] ~ input[n - lag]``); shift so they line up and trim both to the common length
(samples dropped from each side reported); subtract the mean of the kept part once more (so the written
files have zero mean; the DC reported is the total removed); write float32 WAVs. The normalised correlation
``sum(x y) / sqrt(sum(x^2) sum(y^2))`` is reported before (lag 0, common prefix) and after alignment.
"""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import soundfile as sf

from neuralcomp.config import ControlSpec
from neuralcomp.data.dataset import (FORMAT, FORMAT_VERSION, SPLITS, DatasetWriter, _json_float, _now,
                                     peak_db, remove_dc, splits_document)
from neuralcomp.errors import NeuralcompError

CONTROL_KEYS = {"at": "attack", "re": "release", "ra": "ratio", "r": "ratio", "th": "threshold"}
CONTROL_ORDER = ("attack", "release", "ratio", "threshold")
DEFAULT_MAX_LAG_MS = 50.0
DEFAULT_KNOB_MAX = 10.0

_NUMBERED_TARGET = re.compile(r"^(\d+)_tar_(.+)$", re.IGNORECASE)
_NUMBERED_INPUT = re.compile(r"^(\d+)_inp$", re.IGNORECASE)
_SHARED_TARGET = re.compile(r"^target_(.+)$", re.IGNORECASE)


class CaptureError(NeuralcompError, ValueError):
    """Capture files cannot be paired, parsed, or are inconsistent (sample rates, lengths, names)."""


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


@dataclass
class ImportReport:
    folder: str
    out_dir: str
    sample_rate: int
    max_lag_ms: float
    items: list[CaptureItemReport] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)

    def format(self) -> str:
        head = (f"{'id':>3}  {'input':<14} {'target':<38} {'lag':>5} {'lag ms':>7} {'DC in/out before':>20} "
                f"{'DC after':>9} {'trim in':>7} {'trim tgt':>8} {'corr 0':>7} {'corr':>7}")
        lines = [f"Imported {len(self.items)} pair(s) from {self.folder} into {self.out_dir} "
                 f"({self.sample_rate} Hz, lag search +/-{self.max_lag_ms:g} ms)", head, "-" * len(head)]
        for r in self.items:
            dc_after = max(abs(r.dc_input_after), abs(r.dc_target_after))
            lines.append(
                f"{r.id:>3}  {r.input_file[:14]:<14} {r.target_file[:38]:<38} {r.lag_samples:>5} {r.lag_ms:>7.2f} "
                f"{r.dc_input_before:>+10.1e}/{r.dc_target_before:>+9.1e} {dc_after:>9.1e} {r.trimmed_input:>7} "
                f"{r.trimmed_target:>8} {r.correlation_before:>7.4f} {r.correlation_after:>7.4f}"
                + ("  (polarity inverted)" if r.polarity < 0 else ""))
        if self.ignored:
            lines.append(f"ignored (not part of any pair): {', '.join(self.ignored)}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


# ------------------------------------------------------------------------------------------ import

def _control_entries(names: list[str], controls: Sequence[ControlSpec] | None) -> list[dict[str, Any]]:
    if controls is None:
        return [{"name": n, "minimum": 0.0, "maximum": 1.0, "default": 0.5, "unit": "", "mapping": "linear",
                 "parameter": n} for n in names]
    if [c.name for c in controls] != names:
        raise CaptureError(f"control specs {[c.name for c in controls]} do not match the captures' controls {names}")
    return [{"name": c.name, "minimum": c.minimum, "maximum": c.maximum, "default": c.default, "unit": c.unit,
             "mapping": c.mapping, "parameter": c.name} for c in controls]


def _read_mono(path: Path) -> tuple[np.ndarray, int, int]:
    try:
        audio, rate = sf.read(str(path), dtype="float64", always_2d=True)
    except Exception as exc:
        raise CaptureError(f"cannot read {path}: {exc}") from exc
    return audio.mean(axis=1), int(rate), audio.shape[1]


def import_captures(folder: str | Path, out_dir: str | Path,
                    pairing: str | Callable[[Path], list[tuple[Path, Path]]] = "auto",
                    controls_from_name: Callable[[str], Any] | None = None,
                    max_lag_ms: float = DEFAULT_MAX_LAG_MS, knob_max: float = DEFAULT_KNOB_MAX,
                    n_splits: int = 10, split_seed: int = 0, overwrite: bool = False,
                    progress: Callable[[CaptureItemReport], None] | None = None,
                    controls: Sequence[ControlSpec] | None = None) -> tuple[Path, ImportReport]:
    """Pair, parse, DC-remove, align and trim the captures in `folder`; write a dataset to `out_dir`.
    `controls` gives the controls' user ranges, units and mappings (default: unnamed 0..1 knobs)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {folder} does not exist")
    if callable(pairing):
        pair_fn = pairing
    elif pairing in PAIRINGS:
        pair_fn = PAIRINGS[pairing]
    else:
        raise CaptureError(f"unknown pairing {pairing!r}; choose one of {', '.join(PAIRINGS)} or pass a function")
    pairs = [(Path(a), Path(b)) for a, b in pair_fn(folder)]
    wavs = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() == ".wav")
    if not pairs:
        raise CaptureError(f"no input/target pairs found in {folder} with pairing {pairing!r} "
                           f"(expected NN_inp.wav + NN_tar_*.wav, or Input.wav + target_*.wav); "
                           f"wav files there: {', '.join(wavs) or 'none'}")
    used = {p.name for pair in pairs for p in pair}
    ignored = [w for w in wavs if w not in used]

    parsed: list[ParsedName] = []
    for _, tgt in pairs:
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
    for (_, tgt), p in zip(pairs, parsed):
        if list(p.controls) != names:
            raise CaptureError(f"{tgt.name}: controls {list(p.controls)} differ from the first pair's {names}")
        bad = {k: v for k, v in p.controls.items() if not 0.0 <= v <= 1.0}
        if bad:
            raise CaptureError(f"{tgt.name}: normalised control(s) {bad} outside [0, 1]")

    sample_rate: int | None = None
    cache: dict[Path, tuple[np.ndarray, int, int]] = {}
    writer = DatasetWriter(out_dir, overwrite=overwrite)
    try:
        report = ImportReport(str(folder), str(out_dir), 0, max_lag_ms, ignored=ignored)
        entries = []
        for i, ((inp_path, tgt_path), p) in enumerate(zip(pairs, parsed)):
            if inp_path not in cache:
                cache[inp_path] = _read_mono(inp_path)
            x_raw, x_rate, _ = cache[inp_path]
            y_raw, y_rate, _ = _read_mono(tgt_path)
            if x_rate != y_rate:
                raise CaptureError(f"sample-rate mismatch: {inp_path.name} is at {x_rate} Hz but {tgt_path.name} "
                                   f"is at {y_rate} Hz; resample one of them first")
            if sample_rate is None:
                sample_rate = x_rate
                report.sample_rate = x_rate
            elif x_rate != sample_rate:
                raise CaptureError(f"{inp_path.name} is at {x_rate} Hz but earlier pairs are at {sample_rate} Hz; "
                                   f"a dataset has one sample rate")
            x, dc_x = remove_dc(x_raw)
            y, dc_y = remove_dc(y_raw)
            max_lag = int(round(max_lag_ms * sample_rate / 1000.0))
            lag, polarity = estimate_lag(x.astype(np.float64), y.astype(np.float64), max_lag)
            corr_before = normalised_correlation(x, y)
            xa, ya, trims = align(x, y, lag)
            # DC again over the kept part: a longer recording's mean differs from its trimmed part's.
            xa, dc_x2 = remove_dc(xa)
            ya, dc_y2 = remove_dc(ya)
            dc_x, dc_y = dc_x + dc_x2, dc_y + dc_y2
            corr_after = normalised_correlation(xa, ya)
            entry = writer.write_item(i, xa, ya, sample_rate)
            item = CaptureItemReport(
                id=entry["id"], input_file=inp_path.name, target_file=tgt_path.name, layout=p.layout,
                controls=p.controls, raw_controls=p.raw, lag_samples=lag, lag_ms=1000.0 * lag / sample_rate,
                polarity=polarity, dc_input_before=dc_x, dc_target_before=dc_y,
                dc_input_after=float(np.mean(xa, dtype=np.float64)),
                dc_target_after=float(np.mean(ya, dtype=np.float64)),
                trimmed_input=trims["input_start"] + trims["input_end"],
                trimmed_target=trims["target_start"] + trims["target_end"], trims=trims, length=len(xa),
                correlation_before=corr_before, correlation_after=corr_after)
            report.items.append(item)
            entry.update({
                "name": tgt_path.stem, "source_files": {"input": inp_path.name, "target": tgt_path.name},
                "layout": p.layout, "controls": p.controls, "raw_controls": p.raw, "parameters": p.raw,
                "length": len(xa), "peak_input_db": _json_float(peak_db(xa)),
                "peak_target_db": _json_float(peak_db(ya)), "dc_removed": dc_y, "dc_removed_input": dc_x,
                "sections": [], "alignment": {k: v for k, v in asdict(item).items() if k in (
                    "lag_samples", "lag_ms", "polarity", "trimmed_input", "trimmed_target", "trims",
                    "correlation_before", "correlation_after")},
            })
            entries.append(entry)
            if progress:
                progress(item)
        manifest = {
            "format": FORMAT, "version": FORMAT_VERSION, "kind": "captures", "created": _now(),
            "sample_rate": sample_rate,
            "target": {"name": "captures", "source_folder": str(folder.resolve()),
                       "pairing": pairing if isinstance(pairing, str) else getattr(pairing, "__name__", "custom"),
                       "knob_max": knob_max, "max_lag_ms": max_lag_ms},
            "controls": _control_entries(names, controls),
            "settings": {"method": "captures", "n_items": len(entries)},
            "source": None, "music_dir": None, "synthetic_music": False,
            "items": entries, "ignored_files": ignored,
            "splits": SPLITS if len(entries) >= 3 else None,
        }
        splits = splits_document(len(entries), n_splits, split_seed) if len(entries) >= 3 else None
        return writer.finish(manifest, splits), report
    except BaseException:
        writer.abort()
        raise
