"""Where recorded input/output pairs come from, before :mod:`neuralcomp.data.captures` imports them.

Three sources, each giving a :class:`PairSet` (the pairs, the controls with their user ranges, files left
out); errors name the file and, for manifests, the line:

* a manifest, CSV or JSON (:func:`pairs_from_manifest`). CSV: a header ``input,target,<control>...``,
  one pair per row, paths relative to the manifest, control values in user units; a control column
  may declare its range in the header as ``name:min:max[:unit[:log]]``. An optional ``sidechain`` column
  names each take's key file (the signal fed to the unit's sidechain input, sample for sample with the
  input): every take has one or none does. Lines starting with ``#`` are comments. JSON:
  ``{"controls": [{"name", "minimum", "maximum", "unit", "mapping"}...], "items": [{"input", "target",
  ["sidechain",] "<control>": value...}...]}`` (or just the list of items); an item may hold its values
  under ``"controls"`` instead;
* glob patterns (:func:`pairs_from_patterns`): ``--pair GLOB_IN GLOB_OUT`` relative to a folder. The
  wildcards of the two patterns pair files (``takes/*_inp.wav`` with ``takes/*_target.wav``); an input
  pattern without wildcards is one reamp input shared by every output. Control values come from the
  named groups of a regular expression searched in each output's path (``th(?P<threshold>-?\\d+)``).
  ``--sidechain GLOB_KEY`` adds each take's key file, paired with the output by the same wildcard parts
  (a pattern without wildcards: one key shared by every take);
* the CL 1B layouts of :mod:`neuralcomp.data.captures` (numbered and shared-input file names).

Controls are declared with ``ControlSpec.parse`` syntax (``--control name:min:max[:unit[:log]]``) or in
the manifest. No controls at all is a snapshot capture (one fixed setting).
"""

from __future__ import annotations

import csv
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuralcomp.config import ControlSpec
from neuralcomp.errors import ConfigError, NeuralcompError

MANIFEST_SUFFIXES = (".csv", ".json")
SIDECHAIN_COLUMN = "sidechain"  # the manifest column (CSV) or item key (JSON) naming a take's key file


class CaptureError(NeuralcompError, ValueError):
    """Capture files cannot be paired, parsed, or are inconsistent (sample rates, lengths, names, levels)."""


@dataclass(frozen=True)
class CapturePair:
    """One recording: its input and target files, the setting it was made at, and where it was declared."""

    input: Path
    target: Path
    controls: dict[str, float]  # normalised to [0, 1], in the PairSet's control order
    raw: dict[str, float]  # the values as written (user units, or a file name's numbers)
    layout: str  # manifest, pattern, numbered, shared_input, custom
    origin: str  # "takes.csv line 4", "--pair 1", or the target's file name
    sidechain: Path | None = None  # the key fed to the unit's sidechain input alongside `input`, if any


@dataclass
class PairSet:
    pairs: list[CapturePair]
    controls: tuple[ControlSpec, ...]
    description: str
    ignored: list[str] = field(default_factory=list)
    calibration: dict[str, float] = field(default_factory=dict)  # from a JSON manifest, if it has it
    details: dict[str, Any] = field(default_factory=dict)  # how the pairs were found, for the dataset manifest


def merge_controls(*groups: Sequence[ControlSpec]) -> tuple[ControlSpec, ...]:
    """Controls declared in several places (command line, manifest): one per name, which must agree."""
    merged: dict[str, ControlSpec] = {}
    for group in groups:
        for spec in group:
            known = merged.get(spec.name)
            if known is not None and (known.minimum, known.maximum, known.unit, known.mapping) != (
                    spec.minimum, spec.maximum, spec.unit, spec.mapping):
                raise CaptureError(f"control {spec.name!r} is declared twice, differently: {known} and {spec}")
            merged.setdefault(spec.name, spec)
    return tuple(merged.values())


def normalised_values(values: Mapping[str, Any], controls: Sequence[ControlSpec], origin: str) -> dict[str, float]:
    """User values -> [0, 1] by each control's mapping; CaptureError naming `origin` for a missing,
    non-numeric or out-of-range value."""
    out = {}
    for spec in controls:
        if spec.name not in values or values[spec.name] in (None, ""):
            raise CaptureError(f"{origin}: no value for control {spec.name!r}")
        try:
            value = float(values[spec.name])
        except (TypeError, ValueError) as exc:
            raise CaptureError(f"{origin}: control {spec.name!r} = {values[spec.name]!r} is not a number") from exc
        if not (spec.minimum <= value <= spec.maximum) or math.isnan(value):
            raise CaptureError(f"{origin}: control {spec.name!r} = {value:g} is outside its declared range "
                               f"[{spec.minimum:g}, {spec.maximum:g}] {spec.unit}".rstrip())
        out[spec.name] = float(spec.normalise(value))
    return out


def _existing(path_text: str, base: Path, origin: str, column: str) -> Path:
    if not path_text:
        raise CaptureError(f"{origin}: the {column} file is empty")
    path = Path(path_text)
    path = path if path.is_absolute() else base / path
    if not path.is_file():
        raise CaptureError(f"{origin}: {column} file {path} does not exist")
    return path


# ------------------------------------------------------------------------------------------ manifests

def pairs_from_manifest(path: str | Path, controls: Sequence[ControlSpec] = ()) -> PairSet:
    """Pairs listed in a CSV or JSON manifest (module docstring); `controls` adds declarations."""
    path = Path(path)
    if not path.is_file():
        raise CaptureError(f"manifest {path} does not exist")
    if path.suffix.lower() == ".csv":
        return _csv_manifest(path, controls)
    if path.suffix.lower() == ".json":
        return _json_manifest(path, controls)
    raise CaptureError(f"{path}: a manifest is a .csv or .json file")


def _csv_manifest(path: Path, declared: Sequence[ControlSpec]) -> PairSet:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptureError(f"cannot read manifest {path}: {exc}") from exc
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip() and not line.lstrip().startswith("#")]
    if not lines:
        raise CaptureError(f"{path}: the manifest is empty")
    rows = list(csv.reader([line for _, line in lines]))
    header = [cell.strip() for cell in rows[0]]
    header_line = lines[0][0]
    if header[:2] != ["input", "target"]:
        raise CaptureError(f"{path} line {header_line}: the header must start with input,target; got {','.join(header)}")
    in_header, names, columns = [], [], ["input", "target"]
    for cell in header[2:]:
        if cell == SIDECHAIN_COLUMN:
            columns.append(cell)
            continue
        if ":" in cell:
            try:
                spec = ControlSpec.parse(cell)
            except ConfigError as exc:
                raise CaptureError(f"{path} line {header_line}: {exc}") from exc
            in_header.append(spec)
            names.append(spec.name)
        else:
            names.append(cell)
        columns.append(names[-1])
    controls = merge_controls(in_header, declared)
    known = {c.name for c in controls}
    undeclared = [n for n in names if n not in known]
    if undeclared:
        raise CaptureError(f"{path} line {header_line}: column(s) {undeclared} have no range: write them as "
                           f"name:MIN:MAX[:UNIT[:log]] in the header or declare them with --control")
    missing = [c.name for c in controls if c.name not in names]
    if missing:
        raise CaptureError(f"{path} line {header_line}: declared control(s) {missing} have no column")
    pairs = []
    for (number, _), row in zip(lines[1:], rows[1:]):
        origin = f"{path.name} line {number}"
        if len(row) != len(header):
            raise CaptureError(f"{origin}: {len(row)} fields, the header has {len(header)}")
        cells = dict(zip(columns, (c.strip() for c in row)))
        raw = {n: cells[n] for n in names}
        key = cells.get(SIDECHAIN_COLUMN)
        pairs.append(CapturePair(_existing(cells["input"], path.parent, origin, "input"),
                                 _existing(cells["target"], path.parent, origin, "target"),
                                 normalised_values(raw, controls, origin),
                                 {n: float(v) for n, v in raw.items()}, "manifest", origin,
                                 _existing(key, path.parent, origin, SIDECHAIN_COLUMN) if key else None))
    if not pairs:
        raise CaptureError(f"{path}: the manifest lists no pairs")
    check_sidechains(pairs)
    return PairSet(pairs, controls, f"manifest {path}")


def check_sidechains(pairs: Sequence[CapturePair]) -> None:
    """CaptureError unless every pair has a sidechain file or none does (a keyed model needs every key)."""
    keyed = [p for p in pairs if p.sidechain is not None]
    if keyed and len(keyed) != len(pairs):
        bare = next(p for p in pairs if p.sidechain is None)
        raise CaptureError(f"{bare.origin}: no {SIDECHAIN_COLUMN} file, but {keyed[0].origin} has one "
                           f"({keyed[0].sidechain.name}): every take needs its key, or none does")


def _json_manifest(path: Path, declared: Sequence[ControlSpec]) -> PairSet:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CaptureError(f"{path} is not a readable JSON manifest: {exc}") from exc
    document = data if isinstance(data, dict) else {"items": data}
    items = document.get("items")
    if not isinstance(items, list) or not items:
        raise CaptureError(f"{path}: a JSON manifest holds a non-empty list of items (or {{\"items\": [...]}})")
    in_file = []
    for k, c in enumerate(document.get("controls") or []):
        try:
            in_file.append(ControlSpec.parse(c) if isinstance(c, str) else _spec_from_dict(c))
        except (ConfigError, TypeError) as exc:
            raise CaptureError(f"{path}: controls[{k}]: {exc}") from exc
    controls = merge_controls(in_file, declared)
    pairs = []
    for k, item in enumerate(items):
        origin = f"{path.name} items[{k}]"
        if not isinstance(item, dict):
            raise CaptureError(f"{origin}: an item is an object with input, target and control values")
        values = item.get("controls") if isinstance(item.get("controls"), dict) else item
        extra = [n for n in values if n not in ("input", "target", "name", "controls", SIDECHAIN_COLUMN)
                 and n not in {c.name for c in controls}]
        if extra:
            raise CaptureError(f"{origin}: value(s) for undeclared control(s) {extra}: declare them in "
                               f"\"controls\" or with --control")
        key = item.get(SIDECHAIN_COLUMN)
        pairs.append(CapturePair(_existing(str(item.get("input") or ""), path.parent, origin, "input"),
                                 _existing(str(item.get("target") or ""), path.parent, origin, "target"),
                                 normalised_values(values, controls, origin),
                                 {c.name: float(values[c.name]) for c in controls}, "manifest", origin,
                                 _existing(str(key), path.parent, origin, SIDECHAIN_COLUMN) if key else None))
    check_sidechains(pairs)
    calibration = {k: float(document[k]) for k in ("input_dbu_at_0dbfs", "output_dbu_at_0dbfs") if k in document}
    return PairSet(pairs, controls, f"manifest {path}", calibration=calibration)


def _spec_from_dict(c: dict[str, Any]) -> ControlSpec:
    lo, hi = float(c["minimum"]), float(c["maximum"])
    probe = ControlSpec(c["name"], lo, hi, lo, str(c.get("unit", "")), str(c.get("mapping", "linear")))
    default = float(c["default"]) if "default" in c else probe.value_at(0.5)
    return ControlSpec(probe.name, lo, hi, default, probe.unit, probe.mapping)


# ------------------------------------------------------------------------------------------- patterns

def _glob_regex(pattern: str) -> tuple[re.Pattern[str], int]:
    """A glob as a regular expression whose groups are its wildcards (``**``, ``*``, ``?``, ``[...]``)."""
    out, groups, i = [], 0, 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("((?:.*/)?)")
            i += 3
        elif pattern[i] == "*":
            out.append("([^/]*)")
            i += 1
        elif pattern[i] == "?":
            out.append("([^/])")
            i += 1
        elif pattern[i] == "[" and "]" in pattern[i + 1:]:
            end = pattern.index("]", i + 1)
            body = pattern[i + 1:end]
            out.append("([" + ("^" + body[1:] if body.startswith("!") else body) + "])")
            i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
            continue
        groups += 1
    return re.compile("".join(out) + r"\Z"), groups


def _matches(folder: Path, pattern: str) -> dict[tuple[str, ...], Path]:
    regex, _ = _glob_regex(pattern)
    found = {}
    for path in sorted(folder.glob(pattern)):
        if not path.is_file():
            continue
        m = regex.match(path.relative_to(folder).as_posix())
        if m:
            found[m.groups()] = path
    return found


def pairs_from_patterns(folder: str | Path, patterns: Sequence[tuple[str, str]], name_regex: str | None = None,
                        controls: Sequence[ControlSpec] = (), sidechain: str | None = None) -> PairSet:
    """Pairs from (GLOB_IN, GLOB_OUT) patterns under `folder`, controls from `name_regex`'s named groups
    searched in each output's path relative to `folder`, each take's key from the `sidechain` pattern
    (module docstring)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(f"capture folder {folder} does not exist")
    controls = tuple(controls)
    regex = None
    if name_regex is not None:
        try:
            regex = re.compile(name_regex)
        except re.error as exc:
            raise CaptureError(f"--name-regex {name_regex!r} is not a regular expression: {exc}") from exc
        groups = set(regex.groupindex)
        declared = {c.name for c in controls}
        if groups - declared:
            raise CaptureError(f"--name-regex group(s) {sorted(groups - declared)} are not declared controls: add "
                               f"--control NAME:MIN:MAX[:UNIT[:log]] for each")
        if declared - groups:
            raise CaptureError(f"control(s) {sorted(declared - groups)} have no named group in --name-regex "
                               f"{name_regex!r}")
    elif controls:
        raise CaptureError(f"controls {[c.name for c in controls]} are declared but nothing gives their values: "
                           f"add --name-regex with a named group per control, or use a manifest")
    pairs: list[CapturePair] = []
    keys: dict[tuple[str, ...], Path] = {}
    wild_key = 0
    if sidechain is not None:
        _, wild_key = _glob_regex(sidechain)
        keys = _matches(folder, sidechain)
        if not keys:
            raise CaptureError(f"--sidechain {sidechain!r}: no file in {folder} matches it")
    for number, (glob_in, glob_out) in enumerate(patterns, 1):
        where = f"--pair {number} ({glob_in!r} {glob_out!r})"
        _, wild_in = _glob_regex(glob_in)
        _, wild_out = _glob_regex(glob_out)
        inputs, outputs = _matches(folder, glob_in), _matches(folder, glob_out)
        if not outputs:
            raise CaptureError(f"{where}: no file in {folder} matches {glob_out!r}")
        if not inputs:
            raise CaptureError(f"{where}: no file in {folder} matches {glob_in!r}")
        if wild_in and wild_in != wild_out:
            raise CaptureError(f"{where}: the patterns have {wild_in} and {wild_out} wildcards; they pair files by "
                               f"equal wildcard parts, so give both the same (or none in the input: a shared input)")
        if wild_key and wild_key != wild_out:
            raise CaptureError(f"--sidechain {sidechain!r} has {wild_key} wildcards and the outputs of {where} "
                               f"{wild_out}: give it the same (or none: one key shared by every take)")
        for key, target in outputs.items():
            if target in inputs.values() or target in keys.values():
                continue  # a pattern like '*.wav' also matches the input (or the keys)
            source = next(iter(inputs.values())) if not wild_in else inputs.get(key)
            if source is None:
                raise CaptureError(f"{where}: output {target.relative_to(folder)} has no input matching {glob_in!r} "
                                   f"with the same wildcard part(s) {list(key)}")
            key_file = None
            if sidechain is not None:
                key_file = next(iter(keys.values())) if not wild_key else keys.get(key)
                if key_file is None:
                    raise CaptureError(f"{where}: output {target.relative_to(folder)} has no sidechain file matching "
                                       f"{sidechain!r} with the same wildcard part(s) {list(key)}")
            name = target.relative_to(folder).as_posix()
            raw: dict[str, float] = {}
            if regex is not None:
                m = regex.search(name)
                if m is None:
                    raise CaptureError(f"{name}: --name-regex {name_regex!r} does not match this output's name")
                for group, text in m.groupdict().items():
                    try:
                        raw[group] = float(text)
                    except (TypeError, ValueError) as exc:
                        raise CaptureError(f"{name}: --name-regex group {group!r} = {text!r} is not a number") from exc
            pairs.append(CapturePair(source, target, normalised_values(raw, controls, name), raw, "pattern", name,
                                     key_file))
    used = {p for pair in pairs for p in (pair.input, pair.target, pair.sidechain) if p is not None}
    ignored = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.wav") if p not in used)
    return PairSet(pairs, controls, f"patterns in {folder}", ignored)
