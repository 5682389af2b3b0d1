"""ST (streamed target) validation: each item streamed from its start, from the start state the exported
model uses, never reset, which is what users hear (DESIGN.md section 5). Early stopping watches it."""

from __future__ import annotations

import numpy as np
import torch

from neuralcomp.model.registry import Model
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.sequences import TrainingItem

ST_CHUNK_FRAMES = 1024  # ST validation streams items in chunks of this many pooling frames
ST_MIN_CHUNK_SAMPLES = 65536  # ... and never fewer samples (a TCN's frames are single samples)


@torch.no_grad()
def streamed_losses(model: Model, items: list[TrainingItem], loss: CompressorLoss,
                    device: torch.device | str = "cpu") -> list[float]:
    """ST loss of each item: streamed from its start, from the exported model's start state, never
    reset, so it measures what users hear (whole pooling frames; the tail is left out). Items of the
    same length run as one batch."""
    model = model.eval()
    pool = model.pool_size  # 1 for a TCN: whole items
    losses: dict[int, float] = {}
    by_length: dict[int, list[int]] = {}
    for k, item in enumerate(items):
        by_length.setdefault(len(item.input) // pool * pool, []).append(k)
    for usable, members in by_length.items():
        controls = torch.from_numpy(np.stack([items[k].controls for k in members])).to(device)
        x = torch.from_numpy(np.stack([items[k].input[:usable] for k in members])[:, None]).to(device)
        key = (torch.from_numpy(np.stack([items[k].sidechain[:, :usable] for k in members])).to(device)
               if items[members[0]].sidechain is not None else None)
        state = model.start_state(controls)
        outputs = []
        chunk = max(ST_CHUNK_FRAMES * pool, ST_MIN_CHUNK_SAMPLES)
        for start in range(0, usable, chunk):
            keyed = {} if key is None else {"sidechain": key[..., start:start + chunk]}  # sidechain models only
            y, state = model(x[..., start:start + chunk], controls, state, **keyed)
            outputs.append(y)
        prediction = torch.cat(outputs, -1)
        for row, k in enumerate(members):
            target = torch.from_numpy(items[k].target[None, None, :usable]).to(device)
            losses[k] = float(loss(prediction[row:row + 1], target)[0])
    return [losses[k] for k in range(len(items))]
