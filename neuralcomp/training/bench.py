"""Training throughput: seconds per TBPTT iteration and samples per second for (N, B, L) settings.

A command that prints figures, not a test. It trains on synthetic noise items (throughput does not
depend on what the audio is) for a few iterations after a warm-up and reports the median time of
an iteration, split by TBPTT phase: the first iteration of a group also runs the SPN on its
lookback window and the processor on L_in0 samples, so it costs more than the others. A keyed
(sidechain) model trains with a noise key of its own.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass

import numpy as np
import torch

from neuralcomp.model.lengths import first_iteration_input_length
from neuralcomp.model.sptmod import SPTMod
from neuralcomp.training.sequences import TrainingItem
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer


@dataclass(frozen=True)
class TrainBenchRow:
    preset: str
    device: str
    subsequences: int
    batch_size: int
    length: int
    seconds_first: float  # median seconds of a group's first iteration (SPN + no padding)
    seconds_later: float  # median seconds of the other iterations (nan when N = 1)
    seconds_per_iteration: float  # average over a group
    samples_per_second: float  # output samples trained per second: B * L / seconds_per_iteration


def bench_training(model: SPTMod, subsequences: int, batch_size: int, length: int, device: str = "cpu",
                   groups: int = 3) -> TrainBenchRow:
    config = TrainingConfig(subsequences=subsequences, batch_size=batch_size, length=length,
                            max_iterations=10**9, validate_every=10**9, checkpoint_every=10**9)
    rng = np.random.default_rng(0)
    sequence = first_iteration_input_length(model.config, length, True) + (subsequences - 1) * length
    samples = sequence + subsequences * length * (batch_size * (groups + 1))
    audio = (0.3 * rng.standard_normal(samples)).astype(np.float32)
    keys = getattr(model.config, "sidechain", 0)
    key = (0.3 * rng.standard_normal((keys, samples))).astype(np.float32) if keys else None
    item = TrainingItem(audio, np.tanh(audio), np.full(model.config.num_controls, 0.5, np.float32), key)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(model, config, [item], [], out, device=device, log=lambda s: None)
        first, later = [], []
        for group in range(groups + 1):  # the first group warms up
            for piece in range(subsequences):
                if device != "cpu":
                    torch.cuda.synchronize()
                start = time.perf_counter()
                trainer.train_iteration()
                if device != "cpu":
                    torch.cuda.synchronize()
                if group:
                    (first if piece == 0 else later).append(time.perf_counter() - start)
    first_s = float(np.median(first))
    later_s = float(np.median(later)) if later else float("nan")
    per_iteration = (first_s + (subsequences - 1) * (later_s if later else 0.0)) / subsequences
    return TrainBenchRow(model.config.name, device, subsequences, batch_size, length, first_s, later_s,
                         per_iteration, batch_size * length / per_iteration)


def format_rows(rows: list[TrainBenchRow]) -> str:
    lines = ["| preset | device | N | B | L | s / first iteration | s / later iteration | s / iteration | samples / s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        later = "–" if np.isnan(r.seconds_later) else f"{r.seconds_later:.3f}"
        lines.append(f"| {r.preset} | {r.device} | {r.subsequences} | {r.batch_size} | {r.length} | "
                     f"{r.seconds_first:.3f} | {later} | {r.seconds_per_iteration:.3f} | {r.samples_per_second:,.0f} |")
    return "\n".join(lines)
