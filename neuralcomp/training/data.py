"""From a dataset on disk to training items: audio loaded once, controls in the model's order."""

from __future__ import annotations

import math
from collections.abc import Sequence

from neuralcomp.config import ControlSpec
from neuralcomp.data.dataset import Dataset
from neuralcomp.training.sequences import TrainingItem


def control_specs(dataset: Dataset) -> tuple[ControlSpec, ...]:
    """The dataset's controls as the model's ControlSpecs. Hosts map a control's range linearly to
    the model's [0, 1], so a linearly mapped control keeps its user range (e.g. threshold in dB);
    a log-mapped one (ratio, times) is exposed as its normalised position, with the real range in
    its unit string, until hosts learn log mappings."""
    specs = []
    for c in dataset.control_specs:
        lo, hi, default = float(c["minimum"]), float(c["maximum"]), float(c["default"])
        if c.get("mapping", "linear") == "linear":
            specs.append(ControlSpec(c["name"], lo, hi, default, str(c.get("unit", ""))))
        else:
            position = math.log(default / lo) / math.log(hi / lo)
            unit = f"position, log {lo:g}..{hi:g} {c.get('unit', '')}".rstrip()
            specs.append(ControlSpec(c["name"], 0.0, 1.0, position, unit))
    return tuple(specs)


def training_items(dataset: Dataset, indices: Sequence[int]) -> list[TrainingItem]:
    items = []
    for i in indices:
        item = dataset[i]
        audio, target = item.load()
        items.append(TrainingItem(audio, target, item.control_vector(dataset.control_names)))
    return items
