"""TBPTT batching (paper section 2.4.3, DESIGN.md section 5).

Items are cut into long sequences of L_in0 + (N - 1) * L samples with a step of N * L; each epoch
shuffles them (from the seed and the epoch number alone, so a resumed run sees the same order)
and batches them by B. A batch is then sliced into N consecutive pieces: the first, L_in0 long,
feeds the SPN (its `lookback` samples just before the first L outputs) and the processor without
padding (its last input_length(L) samples); the others are L long and use cached padding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from neuralcomp.errors import ConfigError
from neuralcomp.model.lengths import first_iteration_input_length
from neuralcomp.model.registry import Model


@dataclass(frozen=True)
class TrainingItem:
    """One recording: input and target audio at the model's rate, controls normalised to [0, 1]."""

    input: np.ndarray  # (samples,) float32
    target: np.ndarray  # (samples,) float32
    controls: np.ndarray  # (n,) float32
    sidechain: np.ndarray | None = None  # (S, samples) float32: the key of a sidechain model, else None


@dataclass(frozen=True)
class Batch:
    input: torch.Tensor  # (B, 1, L_in0 + (N - 1) L)
    target: torch.Tensor
    controls: torch.Tensor  # (B, n)
    sidechain: torch.Tensor | None = None  # (B, S, L_in0 + (N - 1) L), or None


class TBPTTSequences:
    """The long sequences of a set of items and their per-epoch batches."""

    def __init__(self, items: list[TrainingItem], model: Model, subsequences: int, batch_size: int,
                 length: int, use_spn: bool, seed: int, drop_last: bool = True) -> None:
        if subsequences < 1 or batch_size < 1:
            raise ConfigError(f"N and B must be >= 1, got N={subsequences}, B={batch_size}")
        self.items = items
        self.subsequences = subsequences
        self.batch_size = batch_size
        self.length = length
        self.seed = seed
        self.drop_last = drop_last  # training drops the incomplete last batch; validation keeps it
        keys = {0 if item.sidechain is None else item.sidechain.shape[0] for item in items}
        wanted = getattr(model.config, "sidechain", 0)  # architectures without a sidechain input take none
        if items and keys != {wanted}:
            raise ConfigError(f"the model takes {wanted} sidechain channel(s), the items have {sorted(keys)}")
        self.first_length = first_iteration_input_length(model.config, length, use_spn and model.spn is not None)
        self.sequence_length = self.first_length + (subsequences - 1) * length
        step = subsequences * length
        self.index = [(i, start) for i, item in enumerate(items)
                      for start in range(0, len(item.input) - self.sequence_length + 1, step)]
        if drop_last and len(self.index) < batch_size:
            raise ConfigError(
                f"{len(self.index)} sequences of {self.sequence_length} samples in the data, fewer than the "
                f"batch size {batch_size}: use shorter L, fewer sub-sequences N or a smaller batch"
            )

    @property
    def batches_per_epoch(self) -> int:
        if self.drop_last:
            return len(self.index) // self.batch_size
        return -(-len(self.index) // self.batch_size)

    def batch(self, epoch: int, number: int) -> Batch:
        """Batch `number` of `epoch`: the order depends on (seed, epoch) only."""
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.index))
        picks = [self.index[k] for k in order[number * self.batch_size:(number + 1) * self.batch_size]]
        n = self.sequence_length
        x = np.stack([self.items[i].input[s:s + n] for i, s in picks])[:, None, :]
        y = np.stack([self.items[i].target[s:s + n] for i, s in picks])[:, None, :]
        c = np.stack([self.items[i].controls for i, _ in picks])
        key = None
        if self.items[0].sidechain is not None:
            key = torch.from_numpy(np.stack([self.items[i].sidechain[:, s:s + n] for i, s in picks]).copy())
        return Batch(torch.from_numpy(x.copy()), torch.from_numpy(y.copy()), torch.from_numpy(c.astype(np.float32)),
                     key)

    def piece_bounds(self, piece: int) -> tuple[int, int]:
        """[start, end) of TBPTT piece `piece` inside a long sequence."""
        if piece == 0:
            return 0, self.first_length
        start = self.first_length + (piece - 1) * self.length
        return start, start + self.length
