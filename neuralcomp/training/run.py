"""One training run from a dataset split to an exported model: what `neuralcomp train` and the demo do.

Writes into `out`: run.json (the dataset, split and level calibration, so that `export --checkpoint`
carries the calibration too), last.ckpt (resumable), best.ckpt (best ST validation), metrics.jsonl,
tensorboard/ (when tensorboard is installed), model.ts (the best weights, exported) and result.json.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from export import export_model
from neuralcomp.config import load_preset
from neuralcomp.data.dataset import Dataset, load_dataset
from neuralcomp.errors import ConfigError
from neuralcomp.model import Model, build_model
from neuralcomp.model.checkpoint import load_model
from neuralcomp.model.lengths import first_iteration_input_length
from neuralcomp.training.data import training_items
from neuralcomp.training.distributed import ProcessGroup
from neuralcomp.training.init import initialise_from, load_pretrained
from neuralcomp.training.loss import CompressorLoss
from neuralcomp.training.config import TrainingConfig
from neuralcomp.training.trainer import Trainer
from neuralcomp.training.validation import streamed_losses


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


RUN_FILE = "run.json"


def write_run_record(out: Path, dataset: Dataset, split: int) -> Path:
    """out/run.json: which dataset and split a run trains on and the dataset's level calibration."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / RUN_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"dataset": str(Path(dataset.path).resolve()), "split": split,
                               "calibration": dataset.manifest.get("calibration")}, indent=1))
    tmp.replace(path)
    return path


def run_calibration(checkpoint: str | Path) -> dict[str, float] | None:
    """The level calibration recorded in the run.json beside a checkpoint (None: no record or none recorded)."""
    path = Path(checkpoint).parent / RUN_FILE
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    calibration = record.get("calibration") if isinstance(record, dict) else None
    return {str(k): float(v) for k, v in calibration.items()} if isinstance(calibration, dict) and calibration else None


def _quiet(line: str) -> None:
    """The log of a data-parallel process other than the main one."""


def split_by_training_length(dataset: Dataset, train: Sequence[int], valid: Sequence[int], model: Model,
                             config: TrainingConfig, log: Callable[[str], None]) -> tuple[list[int], list[int]]:
    """Training items too short for one TBPTT sequence at (N, L) go to validation (ST validation streams
    any length), and the log says so before training starts, rather than dropping them silently."""
    needed = first_iteration_input_length(model.config, config.length, config.use_spn and model.spn is not None) \
        + (config.subsequences - 1) * config.length
    short = [i for i in train if dataset[i].length < needed]
    if short:
        log(f"{len(short)} training item(s) shorter than one TBPTT sequence ({needed} samples = "
            f"{needed / dataset.sample_rate:.2f} s at N={config.subsequences}, L={config.length}"
            f"{', with the SPN' if config.use_spn and model.spn is not None else ''}) validate instead: "
            + ", ".join(f"{dataset[i].id} ({dataset[i].length / dataset.sample_rate:.2f} s)" for i in short))
    kept = [i for i in train if i not in short]
    if not kept:
        raise ConfigError(f"no training item is at least {needed} samples long (N={config.subsequences}, "
                          f"L={config.length}): use a shorter L, fewer sub-sequences or longer captures")
    return kept, sorted([*valid, *short])


def train_and_export(dataset_dir: str | Path, out: str | Path, config: TrainingConfig,
                     model_preset: str | None = "tiny", mode: str = "causal", split: int = 0,
                     device: str | None = None, resume: bool = False, log: Callable[[str], None] = print,
                     progress_bar: bool = False, init: str | Path | None = None,
                     model_overrides: dict[str, Any] | None = None,
                     on_record: Callable[[dict[str, Any]], None] | None = None,
                     parallel: ProcessGroup | None = None) -> RunResult | None:
    """Train on split `split` of a dataset, keep the best ST weights, test them, export model.ts.
    `init` starts from a pre-trained checkpoint or exported model (its architecture unless
    `model_preset` is given; controls mapped by name, see neuralcomp.training.init).
    `model_overrides` change preset fields (sweeps); `on_record` sees every metrics row; `parallel`
    is this process's data-parallel group (only its main process tests, exports and returns a result)."""
    if parallel is not None and not parallel.is_main:
        log = _quiet  # one process speaks
    dataset = load_dataset(dataset_dir)
    chosen = dataset.split(split)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(config.seed)
    pretrained, spn_included = load_pretrained(init) if init is not None else (None, True)
    # the dataset's rate is the model's: the start-state silence and every time constant follow it
    changes = {"mode": mode, "controls": dataset.controls, "sample_rate": dataset.sample_rate,
               **(model_overrides or {})}
    if model_preset is None and pretrained is not None:
        model_config = pretrained.config.with_changes(**changes)
    else:
        model_config = load_preset(model_preset or "tiny", **changes)
    if dataset.sidechain_channels:  # a keyed dataset trains a keyed model
        if not hasattr(model_config, "sidechain"):
            raise ConfigError(f"the dataset's items carry a {dataset.sidechain_channels}-channel sidechain (key), but "
                              f"the {model_config.architecture} model {model_config.name!r} has no sidechain input: "
                              f"train an SPTMod preset (e.g. --preset tiny)")
        model_config = model_config.with_changes(sidechain=dataset.sidechain_channels)
    model = build_model(model_config)
    provenance: dict[str, Any] = {}
    if pretrained is not None:
        report = initialise_from(model, pretrained, str(init), spn_included)
        for line in report.lines():
            log(line)
        provenance["init"] = report.to_dict()
    out = Path(out)
    if parallel is None or parallel.is_main:
        write_run_record(out, dataset, split)
    train, valid = split_by_training_length(dataset, chosen.train, chosen.valid, model, config, log)
    trainer = Trainer(model, config, training_items(dataset, train), training_items(dataset, valid),
                      out, device=device, log=log, progress_bar=progress_bar, on_record=on_record,
                      parallel=parallel)
    if resume and (out / "last.ckpt").is_file():
        trainer.load_checkpoint(out / "last.ckpt")
        log(f"resumed at iteration {trainer.progress.iteration}")
    elif resume:
        log(f"nothing to resume in {out} (no last.ckpt): starting at iteration 1")
    summary = trainer.run()
    if not (out / "best.ckpt").is_file():  # no validation ran yet: validate the final weights
        trainer.validate_and_check_patience()
    if not trainer.is_main:
        return None
    best, extra = load_model(out / "best.ckpt")
    best = best.to(device)
    test_items = training_items(dataset, chosen.test)
    test_st = float(np.mean(streamed_losses(best, test_items, CompressorLoss().to(device), device))) \
        if test_items else float("nan")
    result = RunResult(summary["iterations"], int(extra.get("iteration", 0)), summary["stopped_early"],
                       float(extra.get("valid_st", float("nan"))), test_st, out / "model.ts")
    export_model(best.cpu(), result.model_path, {"dataset": str(dataset_dir), "split": split,
                                                 "training": extra.get("training"), **provenance,
                                                 **result.to_dict()},
                 calibration=dataset.manifest.get("calibration"))
    (out / "result.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
