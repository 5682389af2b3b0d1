"""Where target audio comes from: a compressor plugin driven by normalised controls (DESIGN.md section 8).

A *target preset* is a JSON file in ``presets/targets/`` (``zamcomp`` is the default)::

    {
      "name": "zamcomp",
      "description": "...",
      "plugin": {"kind": "vst3", "path": "/usr/lib/vst3/ZamComp.vst3", "apt_package": "zam-plugins"},
      #   or    {"kind": "builtin", "class": "Compressor"}      (a class of the pedalboard module)
      "fixed_parameters": {"knee_db": 0.0, ...},              # plugin parameters set once, never varied
      "controls": [                                           # the user controls, in model order
        {"name": "threshold", "parameter": "threshold_db", "minimum": -60, "maximum": 0,
         "default": -30, "unit": "dB", "mapping": "linear"},
        ...
      ],
      "notes": ["free text: why these choices"]
    }

A control value x is normalised to [0, 1] (what the model sees and what datasets store) and mapped to the
plugin parameter by

* ``linear``: ``minimum + x * (maximum - minimum)``
* ``log``:    ``minimum * (maximum / minimum) ** x`` (needs minimum > 0; used for ratio and times, so
  x = 0.5 is the geometric mean, e.g. ratio sqrt(20) = 4.47, attack sqrt(0.1 * 100) = 3.16 ms).

``default`` is the value in the control's own unit; the presets use the value at x = 0.5 ("all controls
mid"). Which setting a dataset uses (e.g. "release max" for the snapshot dataset) is the dataset's business
(:mod:`neuralcomp.data.dataset`), not the preset's.

:class:`PluginTarget` renders mono audio with fresh plugin state for every call (``reset=True``), so
rendering the same item twice gives the same output.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from neuralcomp.config import PRESETS_DIR, ControlSpec, read_preset_json
from neuralcomp.errors import ConfigError, NeuralcompError

TARGET_PRESETS_DIR = PRESETS_DIR / "targets"
DEFAULT_TARGET = "zamcomp"
PLUGIN_KINDS = ("vst3", "builtin")


class TargetError(NeuralcompError, ValueError):
    """A target preset or plugin is unusable, or a control setting is outside [0, 1] / unknown."""


@dataclass(frozen=True)
class TargetControl:
    """One control of a target: normalised x in [0, 1] -> plugin parameter ``parameter`` in [minimum, maximum]."""

    name: str
    parameter: str
    minimum: float
    maximum: float
    default: float
    unit: str = ""
    mapping: str = "linear"

    def __post_init__(self) -> None:
        try:
            self.spec()  # name, mapping, range and default checks
        except ConfigError as exc:
            raise TargetError(str(exc)) from exc

    def spec(self) -> ControlSpec:
        """The neuralcomp ControlSpec (name, range, default, unit, mapping) of this control."""
        return ControlSpec(name=self.name, minimum=float(self.minimum), maximum=float(self.maximum),
                           default=float(self.default), unit=self.unit, mapping=self.mapping)

    def to_value(self, x: float) -> float:
        """Normalised x in [0, 1] -> value in [minimum, maximum] (raises TargetError outside [0, 1])."""
        x = float(x)
        if not (0.0 <= x <= 1.0):  # also catches NaN
            raise TargetError(f"control {self.name!r}: normalised value {x} is outside [0, 1]")
        return self.spec().value_at(x)

    def to_normalised(self, value: float) -> float:
        """Inverse of :meth:`to_value`."""
        return self.spec().normalise(value)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "parameter": self.parameter, "minimum": self.minimum, "maximum": self.maximum,
                "default": self.default, "unit": self.unit, "mapping": self.mapping}


@dataclass(frozen=True)
class TargetPreset:
    name: str
    plugin: dict[str, Any]
    controls: tuple[TargetControl, ...]
    fixed_parameters: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    notes: tuple[str, ...] = ()
    path: str | None = None  # file it was loaded from, if any

    def __post_init__(self) -> None:
        kind = self.plugin.get("kind")
        if kind not in PLUGIN_KINDS:
            raise TargetError(f"target {self.name!r}: plugin kind must be one of {PLUGIN_KINDS}, got {kind!r}")
        if kind == "vst3" and not self.plugin.get("path"):
            raise TargetError(f"target {self.name!r}: a vst3 plugin needs a 'path'")
        if kind == "builtin" and not self.plugin.get("class"):
            raise TargetError(f"target {self.name!r}: a builtin plugin needs a 'class' (e.g. 'Compressor')")
        if not self.controls:
            raise TargetError(f"target {self.name!r}: needs at least one control")
        names = [c.name for c in self.controls]
        if len(set(names)) != len(names):
            raise TargetError(f"target {self.name!r}: control names must be unique, got {names}")
        params = [c.parameter for c in self.controls]
        if len(set(params)) != len(params):
            raise TargetError(f"target {self.name!r}: two controls drive the same parameter: {params}")
        both = set(params) & set(self.fixed_parameters)
        if both:
            raise TargetError(f"target {self.name!r}: parameters {sorted(both)} are both fixed and controlled")

    @property
    def control_names(self) -> list[str]:
        return [c.name for c in self.controls]

    def control_specs(self) -> tuple[ControlSpec, ...]:
        return tuple(c.spec() for c in self.controls)

    def control(self, name: str) -> TargetControl:
        for c in self.controls:
            if c.name == name:
                return c
        raise TargetError(f"target {self.name!r} has no control {name!r}; controls: {', '.join(self.control_names)}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "plugin": dict(self.plugin),
                "fixed_parameters": dict(self.fixed_parameters),
                "controls": [c.to_dict() for c in self.controls], "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | None = None) -> "TargetPreset":
        if not isinstance(data, Mapping):
            raise TargetError(f"target preset {path or ''} must be a JSON object")
        try:
            controls = tuple(TargetControl(**c) for c in data["controls"])
            notes = data.get("notes", ())
            return cls(name=str(data["name"]), plugin=dict(data["plugin"]), controls=controls,
                       fixed_parameters=dict(data.get("fixed_parameters", {})),
                       description=str(data.get("description", "")),
                       notes=tuple([notes] if isinstance(notes, str) else notes), path=path)
        except (KeyError, TypeError) as exc:
            raise TargetError(f"invalid target preset {path or data.get('name', '?')!r}: {exc!r}") from exc


def available_target_presets() -> list[str]:
    return sorted(p.stem for p in TARGET_PRESETS_DIR.glob("*.json"))


def load_target_preset(name_or_path: str | Path = DEFAULT_TARGET) -> TargetPreset:
    """Load ``presets/targets/NAME.json`` by name, or any preset file by path."""
    data, path = read_preset_json(name_or_path, TARGET_PRESETS_DIR, "target", TargetError)
    return TargetPreset.from_dict(data, path=str(path))


# ------------------------------------------------------------------------------------------ the plugin

def _builtin_parameters(plugin: Any) -> list[str]:
    """Settable numeric attributes of a pedalboard built-in plugin (e.g. Compressor: attack_ms, ratio, ...)."""
    names = []
    for name in dir(type(plugin)):
        if name.startswith("_") or name.startswith("is_"):
            continue
        attr = getattr(type(plugin), name, None)
        if isinstance(attr, property) or type(attr).__name__ in ("property", "getset_descriptor"):
            try:
                value = getattr(plugin, name)
            except Exception:
                continue
            if isinstance(value, (int, float, bool)):
                names.append(name)
    return sorted(names)


class PluginTarget:
    """A compressor plugin (VST3 file or pedalboard built-in) rendering audio at normalised control settings."""

    def __init__(self, preset: TargetPreset | str | Path = DEFAULT_TARGET) -> None:
        self.preset = preset if isinstance(preset, TargetPreset) else load_target_preset(preset)
        self._plugin = self._load()
        self.parameter_names = self._parameter_names()
        wanted = [c.parameter for c in self.preset.controls] + list(self.preset.fixed_parameters)
        unknown = [p for p in wanted if p not in self.parameter_names]
        if unknown:
            raise TargetError(f"target {self.preset.name!r}: plugin has no parameter(s) {unknown}; "
                              f"its parameters are: {', '.join(self.parameter_names)}")
        for name, value in self.preset.fixed_parameters.items():
            self._set(name, value)

    @property
    def name(self) -> str:
        return self.preset.name

    @property
    def control_names(self) -> list[str]:
        return self.preset.control_names

    @property
    def controls(self) -> tuple[TargetControl, ...]:
        return self.preset.controls

    def _load(self) -> Any:
        import pedalboard

        plugin = self.preset.plugin
        if plugin["kind"] == "vst3":
            path = Path(plugin["path"])
            if not path.exists():
                package = plugin.get("apt_package")
                hint = (f"; it is provided by the Debian package {package!r} "
                        f"(apt-get install --no-install-recommends {package})" if package else "")
                raise TargetError(f"target {self.preset.name!r}: VST3 plugin {path} not found{hint}")
            try:
                return pedalboard.load_plugin(str(path))
            except Exception as exc:  # pedalboard raises ImportError/RuntimeError for broken plugins
                raise TargetError(f"target {self.preset.name!r}: cannot load VST3 plugin {path}: {exc}") from exc
        cls_name = plugin["class"]
        cls = getattr(pedalboard, cls_name, None)
        if not isinstance(cls, type) or not issubclass(cls, pedalboard.Plugin):
            raise TargetError(f"target {self.preset.name!r}: pedalboard has no built-in plugin {cls_name!r}")
        return cls()

    def _parameter_names(self) -> list[str]:
        if self.preset.plugin["kind"] == "vst3":
            return sorted(self._plugin.parameters.keys())
        return _builtin_parameters(self._plugin)

    def _set(self, name: str, value: Any) -> None:
        try:
            setattr(self._plugin, name, value)
        except (ValueError, TypeError) as exc:
            raise TargetError(f"target {self.preset.name!r}: cannot set {name} = {value!r}: {exc}") from exc

    def controls_to_parameters(self, controls: Mapping[str, float]) -> dict[str, float]:
        """Normalised controls -> plugin parameter values (controls left out take their default)."""
        return controls_to_parameters(self.preset, controls)

    def render(self, audio: np.ndarray, sample_rate: int, controls: Mapping[str, float]) -> np.ndarray:
        """Mono float32 audio (samples,) through the plugin at `controls`, starting from a fresh state."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise TargetError(f"render expects mono audio of shape (samples,), got shape {audio.shape}")
        if not np.all(np.isfinite(audio)):
            raise TargetError("render input contains NaN or infinity")
        params = self.controls_to_parameters(controls)
        for name, value in self.preset.fixed_parameters.items():
            self._set(name, value)
        for name, value in params.items():
            self._set(name, value)
        self._plugin.reset()
        out = self._plugin.process(audio.astype(np.float32)[None, :], float(sample_rate), reset=True)
        out = np.asarray(out, dtype=np.float32)
        if out.ndim == 2:
            out = out[0]
        if out.shape != audio.shape:
            raise TargetError(f"target {self.preset.name!r} returned {out.shape} samples for input {audio.shape}")
        if not np.all(np.isfinite(out)):
            raise TargetError(f"target {self.preset.name!r} produced NaN or infinity at controls {dict(controls)}")
        return out


def controls_to_parameters(preset: TargetPreset, controls: Mapping[str, float]) -> dict[str, float]:
    """Normalised controls of `preset` -> {plugin parameter: value}. Unknown names and values outside [0, 1]
    raise TargetError; controls left out take their preset default."""
    known = {c.name: c for c in preset.controls}
    unknown = [k for k in controls if k not in known]
    if unknown:
        raise TargetError(f"unknown control(s) {unknown} for target {preset.name!r}; "
                          f"controls: {', '.join(known)}")
    out = {}
    for c in preset.controls:
        out[c.parameter] = c.to_value(controls[c.name]) if c.name in controls else float(c.default)
    return out
