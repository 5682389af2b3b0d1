"""One training run from a dataset split to an exported model: what `neuralcomp train` and the demo do.

Writes into `out`: last.ckpt (resumable), best.ckpt (best ST validation), metrics.jsonl,
tensorboard/ (when tensorboard is installed), model.ts (the best weights, exported) and result.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export import export_model
from neuralcomp.config import load_preset
from neuralcomp.data.dataset import load_dataset
from neuralcomp.model import SPTMod
from neuralcomp.model.checkpoint import load_model
from neuralcomp.training.data import training_items
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.trainer import Trainer, TrainingConfig, streamed_losses


@dataclass(frozen=True)
class RunResult:
    """Where a run ended and what it measured (losses are CompressorLoss totals, ST mode)."""

    iterations: int
    best_iteration: int
    stopped_early: bool
    valid_st: float
    test_st: float
    model_path: Path

    def to_dict(self) -> dict[str, Any]:
        return {"iterations": self.iterations, "best_iteration": self.best_iteration,
                "stopped_early": self.stopped_early, "valid_st": self.valid_st, "test_st": self.test_st,
                "model": str(self.model_path)}


def train_and_export(dataset_dir: str | Path, out: str | Path, config: TrainingConfig, model_preset: str = "tiny",
                     mode: str = "causal", split: int = 0, device: str | None = None, resume: bool = False,
                     log: Callable[[str], None] = print, progress_bar: bool = False) -> RunResult:
    """Train on split `split` of a dataset, keep the best ST weights, test them, export model.ts."""
    dataset = load_dataset(dataset_dir)
    chosen = dataset.split(split)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    model = SPTMod(load_preset(model_preset, mode=mode, controls=dataset.controls))
    out = Path(out)
    trainer = Trainer(model, config, training_items(dataset, chosen.train), training_items(dataset, chosen.valid),
                      out, device=device, log=log, progress_bar=progress_bar)
    if resume and (out / "last.ckpt").is_file():
        trainer.load_checkpoint(out / "last.ckpt")
        log(f"resumed at iteration {trainer.progress.iteration}")
    summary = trainer.run()
    if not (out / "best.ckpt").is_file():  # no validation ran yet: validate the final weights
        trainer.validate_and_check_patience()
    best, extra = load_model(out / "best.ckpt")
    best = best.to(device)
    test_items = training_items(dataset, chosen.test)
    test_st = float(np.mean(streamed_losses(best, test_items, CompressorLoss().to(device), device))) \
        if test_items else float("nan")
    result = RunResult(summary["iterations"], int(extra.get("iteration", 0)), summary["stopped_early"],
                       float(extra.get("valid_st", float("nan"))), test_st, out / "model.ts")
    export_model(best.cpu(), result.model_path, {"dataset": str(dataset_dir), "split": split,
                                                 "training": extra.get("training"), **result.to_dict()})
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
