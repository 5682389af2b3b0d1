"""One sweep trial: exactly one `neuralcomp train` run (the trainer's own code path, resumed from its
last checkpoint when a killed sweep restarts), then its real-time cost; failures recorded with the reason.

A trial's folder holds what `neuralcomp train --out` writes (last.ckpt, best.ckpt, metrics.jsonl,
tensorboard/, model.ts, result.json) plus trial.json (its settings), train.log and status.json
({"status": "running" | "done" | "failed", ...}).
"""

from __future__ import annotations

import json
import os
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from neuralcomp.sweep.spec import SweepError, TrialSpec

TRIAL_FILE = "trial.json"
STATUS_FILE = "status.json"


def _write_json(path: Path, data: dict[str, Any]) -> None:
    """Write atomically, so a killed sweep never leaves half a status file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def read_status(trial_dir: Path) -> dict[str, Any] | None:
    """The trial's status.json, or None when it never started."""
    try:
        return json.loads((Path(trial_dir) / STATUS_FILE).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def prepare_trial_dir(trial: TrialSpec, trial_dir: Path) -> None:
    """Create the folder with trial.json; refuse a folder that holds another trial."""
    trial_dir.mkdir(parents=True, exist_ok=True)
    path = trial_dir / TRIAL_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved != json.loads(json.dumps(trial.to_dict())):
            raise SweepError(f"{trial_dir} holds another trial's files ({path} differs)")
    else:
        _write_json(path, trial.to_dict())


def run_trial(trial: TrialSpec, dataset_dir: str | Path, trial_dir: str | Path, device: str | None = None,
              threads: int = 1, report: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train (or resume) one trial and measure its cost; returns its status record. A finished trial is
    not run again. A failing one (NaN loss, out of memory, any error) is recorded, not raised."""
    import torch

    from neuralcomp.data.dataset import load_dataset
    from neuralcomp.sweep.cost import model_cost
    from neuralcomp.training.run import train_and_export

    trial_dir = Path(trial_dir)
    prepare_trial_dir(trial, trial_dir)
    status = read_status(trial_dir)
    if status and status["status"] == "done":
        return status
    started = time.time()
    _write_json(trial_dir / STATUS_FILE, {"status": "running", "trial_id": trial.trial_id, "started": started})
    torch.set_num_threads(threads)

    def on_record(row: dict[str, Any]) -> None:
        if report is not None and "valid_st" in row:
            report({"iteration": row["iteration"], "valid_st": row["valid_st"], "valid_wt": row["valid_wt"]})

    with open(trial_dir / "train.log", "a") as log_file:
        def log(line: str) -> None:
            log_file.write(line + "\n")
            log_file.flush()

        try:
            result = train_and_export(dataset_dir, trial_dir, trial.training_config(), trial.preset, trial.mode,
                                      trial.split, device, resume=True, log=log,
                                      model_overrides=trial.model_overrides, on_record=on_record)
            config = trial.model_config(load_dataset(dataset_dir).controls)
            status = {"status": "done", "trial_id": trial.trial_id, "result": result.to_dict(),
                      "cost": model_cost(config, result.model_path), "device": device or "auto"}
        except Exception as exc:  # noqa: BLE001 - any failure of one trial is recorded; the sweep goes on
            log(traceback.format_exc())
            status = {"status": "failed", "trial_id": trial.trial_id, "reason": f"{type(exc).__name__}: {exc}"}
    status["seconds"] = time.time() - started
    _write_json(trial_dir / STATUS_FILE, status)
    return status
