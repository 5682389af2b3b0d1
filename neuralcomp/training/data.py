"""From a dataset on disk to training items: audio loaded once, controls in the model's order."""

from __future__ import annotations

from collections.abc import Sequence

from neuralcomp.config import ControlSpec
from neuralcomp.data.dataset import Dataset
from neuralcomp.training.sequences import TrainingItem


def control_specs(dataset: Dataset) -> tuple[ControlSpec, ...]:
    """The dataset's controls as the model's ControlSpecs: the user range, unit and mapping the
    target used, so a trained model takes ratio in :1 and times in ms, like the compressor."""
    return tuple(ControlSpec(c["name"], float(c["minimum"]), float(c["maximum"]), float(c["default"]),
                             str(c.get("unit", "")), str(c.get("mapping", "linear")))
                 for c in dataset.control_specs)


def training_items(dataset: Dataset, indices: Sequence[int]) -> list[TrainingItem]:
    items = []
    for i in indices:
        item = dataset[i]
        audio, target = item.load()
        items.append(TrainingItem(audio, target, item.control_vector(dataset.control_names)))
    return items
