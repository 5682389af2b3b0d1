"""From a dataset on disk to training items: audio loaded once, controls in the model's order."""

from __future__ import annotations

from collections.abc import Sequence

from neuralcomp.data.dataset import Dataset
from neuralcomp.training.sequences import TrainingItem


def training_items(dataset: Dataset, indices: Sequence[int]) -> list[TrainingItem]:
    items = []
    for i in indices:
        item = dataset[i]
        audio, target = item.load()
        items.append(TrainingItem(audio, target, item.control_vector(dataset.control_names), item.load_sidechain()))
    return items
