"""Held-out evaluation of an exported model as users hear it: every item is streamed through a host
(the C++ one when built) from the model's start state, in fixed-size buffers, aligned by the model's
latency (63 samples in paper mode, as a DAW's delay compensation would), and compared with the
compressor's target by ESR, gain reduction over time, the static level curve and each loss term.

Gain reduction over time: in windows of ``GAIN_WINDOW_SECONDS`` (10 ms, 441 samples at 44.1 kHz),
``gain_db = 20 log10(rms(output) / rms(input))``; the figure is the RMS over windows of
``gain_db(model) - gain_db(target)``. Windows whose input RMS is under ``GAIN_FLOOR_DB`` (noise floor,
gaps between events) are left out: their gain is the ratio of two tiny numbers and says nothing about
the compressor.

Static curve: the tone-step section of the source signal holds each sine level for 0.25 s; the
output level of a step is the RMS over its last ``STATIC_SETTLE_FRACTION`` (after the attack has
settled), in dBFS of a sine peak (RMS + 3.01 dB), like the input level.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuralcomp.data.dataset import Dataset
from neuralcomp.data.source import SourceConfig, tone_schedule
from neuralcomp.errors import ControlError
from neuralcomp.host.processor import Processor
from neuralcomp.training.loss import TERM_NAMES, CompressorLoss

GAIN_WINDOW_SECONDS = 0.010
GAIN_WINDOW_SAMPLES = 441  # GAIN_WINDOW_SECONDS at 44.1 kHz
GAIN_FLOOR_DB = -50.0
STATIC_SETTLE_FRACTION = 0.4
_SINE_PEAK_OVER_RMS_DB = 20 * np.log10(np.sqrt(2.0))


def esr(target: np.ndarray, output: np.ndarray) -> float:
    """Error-to-signal ratio sum((y - y_hat)^2) / sum(y^2) over the whole signal."""
    target, output = np.asarray(target, np.float64), np.asarray(output, np.float64)
    return float(np.sum((target - output) ** 2) / max(np.sum(target ** 2), 1e-12))


def _window_rms_db(x: np.ndarray, window: int) -> np.ndarray:
    n = len(x) // window * window
    rms = np.sqrt(np.mean(np.asarray(x[:n], np.float64).reshape(-1, window) ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def gain_window(sample_rate: int) -> int:
    """GAIN_WINDOW_SECONDS in samples at `sample_rate` (441 at 44.1 kHz, 480 at 48 kHz)."""
    return max(1, round(GAIN_WINDOW_SECONDS * sample_rate))


def gain_db(input: np.ndarray, output: np.ndarray, window: int = GAIN_WINDOW_SAMPLES) -> tuple[np.ndarray, np.ndarray]:
    """(gain in dB per window, mask of windows whose input is above GAIN_FLOOR_DB)."""
    level_in = _window_rms_db(input, window)
    return _window_rms_db(output, window) - level_in, level_in > GAIN_FLOOR_DB


def gain_reduction_rmse_db(input: np.ndarray, target: np.ndarray, output: np.ndarray,
                           window: int = GAIN_WINDOW_SAMPLES) -> float:
    """RMS difference in dB between the model's and the target's gain over time (module docstring)."""
    gain_target, mask = gain_db(input, target, window)
    gain_model, _ = gain_db(input, output, window)
    if not mask.any():
        return float("nan")
    return float(np.sqrt(np.mean((gain_model[mask] - gain_target[mask]) ** 2)))


def static_curve(input: np.ndarray, output: np.ndarray, source: SourceConfig,
                 tone_start: int) -> tuple[np.ndarray, np.ndarray]:
    """(input level, output level) in dBFS (sine peak) of each tone step, separators left out."""
    levels_in, levels_out = [], []
    for level, start, end in tone_schedule(source):
        if level == source.tone_separator_db:
            continue
        settled = slice(tone_start + end - round((end - start) * STATIC_SETTLE_FRACTION), tone_start + end)
        n = settled.stop - settled.start
        levels_in.append(_window_rms_db(input[settled], n)[0] + _SINE_PEAK_OVER_RMS_DB)
        levels_out.append(_window_rms_db(output[settled], n)[0] + _SINE_PEAK_OVER_RMS_DB)
    return np.array(levels_in), np.array(levels_out)


@dataclass
class ItemEvaluation:
    """One held-out item: figures, and the audio they came from (for plots, not written to JSON)."""

    item_id: str
    controls: dict[str, float]  # user values, as set on the processor
    esr: float
    gain_reduction_rmse_db: float
    loss_terms: dict[str, float]
    input: np.ndarray = field(repr=False)
    target: np.ndarray = field(repr=False)
    output: np.ndarray = field(repr=False)
    sections: dict[str, tuple[int, int]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item_id, "controls": self.controls, "st_esr": self.esr,
                "gain_reduction_rmse_db": self.gain_reduction_rmse_db, "loss_terms": self.loss_terms}


@dataclass
class Evaluation:
    """All held-out items and their means."""

    items: list[ItemEvaluation]
    buffer_size: int
    backend: str
    source: SourceConfig | None  # the dataset's source recipe (None for imported captures)

    def mean(self, name: str) -> float:
        return float(np.mean([getattr(i, name) for i in self.items]))

    def mean_loss_terms(self) -> dict[str, float]:
        return {k: float(np.mean([i.loss_terms[k] for i in self.items])) for k in self.items[0].loss_terms}

    def to_dict(self) -> dict[str, Any]:
        return {"st_esr": self.mean("esr"), "gain_reduction_rmse_db": self.mean("gain_reduction_rmse_db"),
                "loss_terms": self.mean_loss_terms(), "buffer_size": self.buffer_size, "backend": self.backend,
                "items": [i.to_dict() for i in self.items]}


def source_config(dataset: Dataset) -> SourceConfig | None:
    """The SourceConfig a rendered dataset was made with (None for imported captures)."""
    recipe = dataset.manifest.get("source")
    if not recipe:
        return None
    fields = {f.name for f in dataclasses.fields(SourceConfig)}
    return SourceConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in recipe.items() if k in fields})


def streamed_aligned(processor: Processor, audio: np.ndarray, sample_rate: int, buffer_size: int | None,
                     sidechain: np.ndarray | None = None) -> np.ndarray:
    """Stream `audio` (and its `sidechain`, for a keyed model) through `processor` from its start state, then
    undo its latency at that rate: the output runs on for `latency_at(rate)` samples of silence and as many
    are dropped in front, so sample t answers input sample t (as the target does) and the length is the input's."""
    latency = processor.latency_at(sample_rate)

    def padded(signal: np.ndarray) -> np.ndarray:
        return np.concatenate((signal, np.zeros(signal.shape[:-1] + (latency,), signal.dtype)), axis=-1)

    key = None if sidechain is None else padded(sidechain)
    return processor.process(padded(audio), sample_rate, buffer_size=buffer_size, reset=True, sidechain=key)[..., latency:]


def check_controls_match(processor: Processor, dataset: Dataset) -> None:
    """ControlError naming both lists unless the model's controls are the dataset's."""
    model_names, dataset_names = processor.control_names, [c.name for c in dataset.controls]
    if sorted(model_names) != sorted(dataset_names):
        raise ControlError(f"the model's controls {model_names or '(none)'} are not the dataset's "
                           f"{dataset_names or '(none)'}: evaluate a model trained on this kind of dataset")


def evaluate(processor: Processor, dataset: Dataset, indices: Sequence[int], buffer_size: int = 512) -> Evaluation:
    """Stream each item through `processor` from its start state (ST), align it by the model's latency,
    and compare it with the target."""
    check_controls_match(processor, dataset)
    loss = CompressorLoss()
    specs = {c.name: c for c in dataset.controls}
    evaluations = []
    for index in indices:
        item = dataset[index]
        audio, target = item.load()
        controls = {}
        for name in processor.control_names:
            normalised = item.controls[name]
            controls[name] = specs[name].value_at(normalised)
            processor.set_control(name, controls[name])
        output = streamed_aligned(processor, audio, dataset.sample_rate, buffer_size, item.load_sidechain())
        with torch.no_grad():
            _, terms = loss(torch.from_numpy(output[None, None].copy()), torch.from_numpy(target[None, None].copy()))
        sections = {s["name"]: (int(s["start"]), int(s["end"])) for s in item.entry.get("sections", [])}
        evaluations.append(ItemEvaluation(
            item.id, controls, esr(target, output), gain_reduction_rmse_db(audio, target, output, gain_window(dataset.sample_rate)),
            {k: float(terms[k]) for k in (*TERM_NAMES, "total")}, audio, target, output, sections))
    return Evaluation(evaluations, buffer_size, processor.backend, source_config(dataset))

