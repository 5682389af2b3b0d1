"""The main job on built-in defaults: compressor -> dataset -> TBPTT training -> export -> held-out audio
streamed through the C++ host -> report.json and plots. About 15 minutes on a 2-core CPU.

Every stage keeps its output in the demo folder, and running the demo again continues where it
stopped: the dataset is reused when complete, training resumes from its last checkpoint.
"""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

from neuralcomp.data import dataset as ds
from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig
from neuralcomp.data.targets import PluginTarget, load_target_preset
from neuralcomp.evaluation import evaluate, streamed_aligned
from neuralcomp.host import load
from neuralcomp.plots import item_figure, loss_curves, static_curve_figure
from neuralcomp.training.run import train_and_export
from neuralcomp.training.config import TrainingConfig

AIMS = {"st_esr": 0.05, "gain_reduction_rmse_db": 1.0}  # the targets on held-out audio


@dataclass(frozen=True)
class DemoConfig:
    """What the demo builds and trains; the defaults are the README's main job."""

    target: str = "zamcomp"  # presets/targets/NAME.json
    sampling: str = "snapshot"  # snapshot (one setting), grid or lhs
    items: int = 16  # 8 train / 4 validation / 4 test
    model_preset: str = "tiny_release"  # presets/models/NAME.json: tiny, max pooling, gain path, long memory
    mode: str = "causal"
    training: str = "demo"  # presets/training/NAME.json
    training_overrides: dict[str, Any] = field(default_factory=dict)
    source: SourceConfig = field(default_factory=SourceConfig)
    music_dir: Path | None = DEFAULT_MUSIC_DIR  # None: synthetic music (tests only)
    buffer_size: int = 512  # host buffer for the held-out renders
    device: str | None = None  # default: cuda when available


def _dataset(out: Path, config: DemoConfig, log: Callable[[str], None]) -> Path:
    path = out / "dataset"
    try:
        dataset = ds.load_dataset(path)
        if len(dataset) == config.items and dataset.manifest["target"]["name"] == config.target:
            log(f"[1/4] dataset: reusing {path} ({len(dataset)} items)")
            return path
    except ds.DatasetError:
        pass
    log(f"[1/4] dataset: rendering {config.items} items ({config.sampling}) through {config.target}")
    target = PluginTarget(load_target_preset(config.target))
    settings = ds.sampled_settings(config.sampling, target, config.items, config.source.seed)
    return ds.build_dataset(path, target, settings, config.source, config.music_dir,
                            allow_synthetic_music=config.music_dir is None, progress=False, overwrite=True)


def run_demo(out: str | Path, config: DemoConfig = DemoConfig(), log: Callable[[str], None] = print,
             progress_bar: bool = False) -> dict[str, Any]:
    """Run every stage into `out`; returns the report (also written to out/report.json)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    started = time.perf_counter()
    dataset_path = _dataset(out, config, log)
    seconds["dataset"] = time.perf_counter() - started

    started = time.perf_counter()
    training = TrainingConfig.from_preset(config.training, **config.training_overrides)
    log(f"[2/4] training {config.model_preset} ({config.mode}) with TBPTT: N={training.subsequences}, "
        f"B={training.batch_size}, L={training.length}, {training.max_iterations} iterations")
    result = train_and_export(dataset_path, out / "run", training, config.model_preset, config.mode,
                              device=config.device, resume=True, log=log, progress_bar=progress_bar)
    seconds["training"] = time.perf_counter() - started

    started = time.perf_counter()
    processor = load(result.model_path)
    dataset = ds.load_dataset(dataset_path)
    test = dataset.split(0).test
    log(f"[3/4] held-out: streaming {len(test)} test items through the {processor.backend} host in "
        f"{config.buffer_size}-sample buffers")
    evaluation = evaluate(processor, dataset, test, config.buffer_size)
    first = evaluation.items[0]
    # the streaming contract on real audio: buffer by buffer == one call over the whole item
    offline = streamed_aligned(processor, first.input, dataset.sample_rate, None)
    streamed_equals_offline = bool((offline == first.output).all())
    seconds["evaluation"] = time.perf_counter() - started

    log("[4/4] report and plots")
    for name, audio in (("input", first.input), ("target", first.target), ("model", first.output)):
        sf.write(out / f"heldout_{name}.wav", audio, dataset.sample_rate, subtype="FLOAT")
    plots = [loss_curves(out / "run" / "metrics.jsonl", out / "loss_curves.png"),
             item_figure(first, dataset.sample_rate, out / "target_vs_model.png"),
             static_curve_figure(evaluation, out / "static_curve.png")]
    figures = evaluation.to_dict()
    report = {
        **figures,
        "streamed_equals_offline": streamed_equals_offline,
        "aims": {name: {"aim": aim, "reached": figures[name] < aim} for name, aim in AIMS.items()},
        "training": {**result.to_dict(), "config": asdict(training), "preset": config.model_preset,
                     "mode": config.mode},
        "dataset": {"path": str(dataset_path), "target": config.target, "sampling": config.sampling,
                    "items": config.items, "test_items": [dataset[i].id for i in test],
                    "music_dir": str(config.music_dir) if config.music_dir else None},
        "seconds": seconds,
        "machine": {"platform": platform.platform(), "processor": platform.processor(),
                    "torch": torch.__version__, "threads": torch.get_num_threads(),
                    "device": config.device or ("cuda" if torch.cuda.is_available() else "cpu")},
        "files": [str(p) for p in plots if p] + [str(out / f"heldout_{n}.wav") for n in ("input", "target", "model")],
    }
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
