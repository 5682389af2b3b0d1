"""Fine-tuning: start a model from pre-trained weights (`neuralcomp train --init MODEL_OR_CHECKPOINT`).

The weights come from a checkpoint (`best.ckpt`, `last.ckpt`: processor and SPN) or from an exported
`.ts` file (processor only; its weights are read back from the streaming module's buffers, so the SPN
starts fresh), of an SPTMod or a TCN. The architecture (SPTMod: channels, kernels, P, H, FiLM sizes; TCN:
channels, kernel, dilations, FiLM size, gain range) must match; the mode and the sample rate may differ
(the log says so).

Controls are mapped by name in every FiLM layer (the first Linear of each FiLM MLP, one column per
control): a control in both models keeps its column. When unit and mapping agree the column is converted
exactly for a different range (the normalised values are affine in each other, so the new model starts
equal to the old one on the shared range); otherwise it is copied as is (the same knob position). A new
control gets a zero column (no effect until trained); a control the new model lacks is folded into the
bias at its default. A pre-trained model without controls gives FiLM layers that start as the identity.
Going from controls to none is refused: a model without controls has no FiLM layers to hold them.
"""

from __future__ import annotations

import math
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuralcomp.config import ControlSpec, ModelConfig
from neuralcomp.errors import ConfigError, ModelFileError
from neuralcomp.model.checkpoint import load_model, read_checkpoint
from neuralcomp.model.registry import Model, model_from_dict

ARCHITECTURE_FIELDS = {  # the fields that fix every tensor's shape and meaning, per architecture
    "sptmod": ("channels", "kernel_sizes", "pool_size", "lstm_hidden", "film_hidden"),
    "tcn": ("channels", "kernel_size", "dilations", "film_hidden", "max_gain_db"),
}
STATE_FORMAT = "neuralcomp-training-state"


@dataclass
class InitReport:
    """What `initialise_from` did, for the log and the run's provenance."""

    source: str
    copied: int = 0  # tensors copied as they are
    mapped: dict[str, str] = field(default_factory=dict)  # control -> "exact" or "knob position"
    new_controls: list[str] = field(default_factory=list)
    dropped_controls: list[str] = field(default_factory=list)
    fresh: list[str] = field(default_factory=list)  # tensors left at their new initialisation
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"initialised from {self.source}: {self.copied} tensors copied"]
        if self.mapped:
            out.append("controls mapped by name: " + ", ".join(f"{k} ({v})" for k, v in self.mapped.items()))
        if self.new_controls:
            out.append(f"new controls (start with no effect): {', '.join(self.new_controls)}")
        if self.dropped_controls:
            out.append(f"controls of the pre-trained model this one lacks (fixed at their defaults): "
                       f"{', '.join(self.dropped_controls)}")
        if self.fresh:
            groups = sorted({name.split(".")[0] for name in self.fresh})
            out.append(f"{len(self.fresh)} tensors start fresh ({', '.join(groups)})")
        return out + self.notes

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "copied": self.copied, "mapped": self.mapped,
                "new_controls": self.new_controls, "dropped_controls": self.dropped_controls,
                "fresh": len(self.fresh), "notes": self.notes}


def load_pretrained(path: str | Path) -> tuple[Model, bool]:
    """(a model (SPTMod or TCN) with the weights of a checkpoint or of an exported `.ts` model, whether its
    SPN weights came with it: exports do not carry the SPN; a TCN has none)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"--init: {path} does not exist")
    if zipfile.is_zipfile(path) and any(n.endswith("extra/neuralcomp_metadata.json")
                                        for n in zipfile.ZipFile(path).namelist()):
        return _from_exported(path), False
    try:
        return load_model(path)[0], True
    except ModelFileError:
        data = read_checkpoint(path, STATE_FORMAT, "checkpoint or model", weights_only=False)
        model = model_from_dict(data["model_config"])
        model.load_state_dict(data["model"])
        return model, True


def _from_exported(path: Path) -> Model:
    """The processor's weights read back from an exported streaming module (an SPTMod's SPN starts fresh)."""
    from export.reexport import model_from_exported

    try:
        return model_from_exported(path)[0].train()
    except ModelFileError as exc:
        raise ModelFileError(f"--init: {exc}") from exc


def _column_map(new: ControlSpec, old: ControlSpec) -> tuple[float, float, str]:
    """(scale, offset, how): x_old = scale * x_new + offset for the same user value, when unit and mapping
    agree; else (1, 0): the same knob position."""
    if new.unit != old.unit or new.mapping != old.mapping:
        return 1.0, 0.0, "knob position"
    if new.mapping == "log":
        span = math.log(old.maximum / old.minimum)
        return math.log(new.maximum / new.minimum) / span, math.log(new.minimum / old.minimum) / span, "exact"
    span = old.maximum - old.minimum
    return (new.maximum - new.minimum) / span, (new.minimum - old.minimum) / span, "exact"


def initialise_from(model: Model, pretrained: Model, source: str = "pre-trained model",
                    spn_included: bool = True) -> InitReport:
    """Copy `pretrained`'s weights into `model` (same architecture: SPTMod or TCN), mapping controls by name
    (module docstring); `spn_included=False` leaves the SPN at its fresh initialisation."""
    new_cfg, old_cfg = model.config, pretrained.config
    kind, old_kind = new_cfg.architecture, old_cfg.architecture
    if kind != old_kind:
        raise ConfigError(f"--init {source}: its architecture is {old_kind!r} ({old_cfg.name}), the model being "
                          f"trained is {kind!r} ({new_cfg.name}); weights only carry over within one architecture. "
                          f"Leave --preset out to train its architecture")
    differ = [f"{f} {getattr(new_cfg, f)} vs {getattr(old_cfg, f)}" for f in ARCHITECTURE_FIELDS[kind]
              if getattr(new_cfg, f) != getattr(old_cfg, f)]
    if differ:
        raise ConfigError(f"--init {source}: its architecture ({old_cfg.name}) differs from the model being trained "
                          f"({new_cfg.name}): {'; '.join(differ)}. Leave --preset out to train its architecture")
    if old_cfg.num_controls and not new_cfg.num_controls:
        raise ConfigError(f"--init {source}: it has controls {[c.name for c in old_cfg.controls]} but this dataset has "
                          f"none; a model without controls has no FiLM layers to hold them. Import the captures "
                          f"with the pre-trained model's controls at the settings used (--control and a manifest)")
    report = InitReport(source)
    if new_cfg.mode != old_cfg.mode:
        report.notes.append(f"mode: pre-trained in {old_cfg.mode}, now {new_cfg.mode} (same weights, other "
                            f"interpolation)")
    if getattr(new_cfg, "pooling", None) != getattr(old_cfg, "pooling", None):
        report.notes.append(f"pooling: pre-trained with {old_cfg.pooling} pooling, now {new_cfg.pooling} (same "
                            f"weights; the LSTM sees frames on another scale until fine-tuning adapts it)")
    if getattr(new_cfg, "audio_modulation", None) != getattr(old_cfg, "audio_modulation", None):
        report.notes.append(f"audio path: pre-trained {old_cfg.audio_modulation}, now {new_cfg.audio_modulation} "
                            f"(same weights; a gain-only path drops the learnt shift, an affine one starts it at "
                            f"what the file holds)")
    if new_cfg.sample_rate != old_cfg.sample_rate:
        report.notes.append(f"sample rate: pre-trained at {old_cfg.sample_rate} Hz, now {new_cfg.sample_rate} Hz; "
                            f"its time constants are {abs(new_cfg.sample_rate / old_cfg.sample_rate - 1):.1%} off "
                            f"until fine-tuning corrects them")
    old_specs = {c.name: (k, c) for k, c in enumerate(old_cfg.controls)}
    for spec in new_cfg.controls:
        if spec.name in old_specs:
            report.mapped[spec.name] = _column_map(spec, old_specs[spec.name][1])[2]
        else:
            report.new_controls.append(spec.name)
    report.dropped_controls = [c.name for c in old_cfg.controls if c.name not in {s.name for s in new_cfg.controls}]
    old_state, new_state = pretrained.state_dict(), model.state_dict()
    with torch.no_grad():
        for name, tensor in new_state.items():
            if not spn_included and name.startswith("spn."):
                report.fresh.append(name)
            elif name.endswith("film.mlp.0.weight"):
                _map_first_film_layer(name, new_state, old_state, new_cfg, old_cfg)
                report.copied += 1
            elif name.endswith("film.mlp.0.bias"):
                continue  # set together with the weight
            elif name not in old_state:  # FiLM of a model whose pre-trained version had no controls
                if name.endswith("film.mlp.4.weight"):
                    tensor.zero_()
                elif name.endswith("film.mlp.4.bias"):  # (gamma, beta) = (1, 0): the identity
                    half = tensor.shape[0] // 2
                    tensor[:half], tensor[half:] = 1.0, 0.0
                report.fresh.append(name)
            elif old_state[name].shape != tensor.shape:
                raise ConfigError(f"--init {source}: tensor {name} has shape {tuple(old_state[name].shape)}, "
                                  f"the model being trained needs {tuple(tensor.shape)}")
            else:
                tensor.copy_(old_state[name])
                report.copied += 1
    model.load_state_dict(new_state)
    return report


def _map_first_film_layer(name: str, new_state: dict[str, torch.Tensor], old_state: dict[str, torch.Tensor],
                          new_cfg: ModelConfig, old_cfg: ModelConfig) -> None:
    bias_name = name[: -len("weight")] + "bias"
    weight, bias = new_state[name], new_state[bias_name]
    if name not in old_state:  # the pre-trained model had no controls: zero columns, no effect yet
        weight.zero_()
        return
    old_weight, old_bias = old_state[name], old_state[bias_name]
    bias.copy_(old_bias)
    weight.zero_()
    old_index = {c.name: (k, c) for k, c in enumerate(old_cfg.controls)}
    for k, spec in enumerate(new_cfg.controls):
        if spec.name in old_index:
            j, old_spec = old_index[spec.name]
            scale, offset, _ = _column_map(spec, old_spec)
            weight[:, k] = scale * old_weight[:, j]
            bias += offset * old_weight[:, j]
    new_names = {c.name for c in new_cfg.controls}
    for j, old_spec in enumerate(old_cfg.controls):
        if old_spec.name not in new_names:  # fixed at its default
            bias += old_spec.normalise(old_spec.default) * old_weight[:, j]
