"""`neuralcomp train`, `export` and `evaluate`: fit a model, write its streaming file, measure it on held-out items."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import add_model_arguments, check_output_file
from neuralcomp.errors import NeuralcompError, TrainingInterrupted


def _build_untrained(preset: str, mode: str | None, controls: int, seed: int):
    import torch

    from neuralcomp.config import generic_controls, load_preset
    from neuralcomp.model import build_model

    overrides = {"controls": generic_controls(controls)}
    if mode:
        overrides["mode"] = mode
    torch.manual_seed(seed)
    return build_model(load_preset(preset, **overrides))


def cmd_export(args: argparse.Namespace) -> int:
    from export import export_model

    check_output_file(args.output, "model")
    calibration = None
    if args.checkpoint:
        from neuralcomp.model.checkpoint import load_model
        from neuralcomp.training.run import run_calibration

        model, extra = load_model(args.checkpoint)
        if args.mode and args.mode != model.config.mode:
            raise NeuralcompError(f"the checkpoint was trained in {model.config.mode} mode; it cannot be exported as {args.mode}")
        provenance = {"checkpoint": str(args.checkpoint), **extra}
        calibration = run_calibration(args.checkpoint)
    elif args.from_model:
        from export.reexport import model_from_exported
        from neuralcomp.host.torchscript_host import load_torchscript

        model, provenance = model_from_exported(args.from_model)
        calibration = json.loads(str(load_torchscript(args.from_model).metadata_json)).get("calibration") or None
    elif args.untrained:
        model = _build_untrained(args.preset, args.mode, args.controls, args.seed)
        provenance = {"untrained": True, "preset": args.preset, "seed": args.seed}
    else:
        raise NeuralcompError("give --checkpoint CKPT, --from-model OLD.ts, or --untrained for a randomly "
                              "initialised preset")
    if args.dataset is not None:
        from neuralcomp.data.dataset import load_dataset

        calibration = load_dataset(args.dataset).manifest.get("calibration") or None
    path = export_model(model, args.output, provenance, calibration=calibration)
    print(f"wrote {path} ({model.config.name}, {model.config.mode} mode, {model.config.num_controls} controls"
          + (", calibration " + ", ".join(f"{k} {v:g}" for k, v in calibration.items()) if calibration else "") + ")")
    return 0


def _train_data_parallel(args: argparse.Namespace, config: Any, preset: str | None) -> Any:
    """`--nproc N` processes on this machine, or the group torchrun started; rank 0's RunResult (None elsewhere)."""
    import torch

    from neuralcomp.training import distributed
    from neuralcomp.training.run import RunResult, train_and_export

    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    group = distributed.from_environment()
    if group is not None:  # launched by torchrun: one process per GPU (LOCAL_RANK) or CPU process
        local = os.environ.get("LOCAL_RANK", "0")
        return train_and_export(args.dataset, args.out, config, preset, args.mode, args.split,
                                f"cuda:{local}" if device.startswith("cuda") else "cpu", args.resume,
                                log=distributed.log_to_stderr, init=args.init, parallel=group)
    distributed.ProcessGroup(0, args.nproc).check_batch(config.batch_size)
    distributed.launch(args.nproc, device.split(":")[0], train_and_export, args.dataset, args.out, config,
                       preset, args.mode, args.split, resume=args.resume, log=distributed.log_to_stderr,
                       init=args.init)
    data = json.loads((Path(args.out) / "result.json").read_text())
    return RunResult(data["iterations"], data["best_iteration"], data["stopped_early"], data["valid_st"],
                     data["test_st"], Path(data["model"]))


def cmd_train(args: argparse.Namespace) -> int:
    from neuralcomp.training import distributed
    from neuralcomp.training.run import train_and_export
    from neuralcomp.training.config import TrainingConfig

    overrides = {k: v for k, v in {"max_iterations": args.max_iterations, "length": args.length,
                                   "batch_size": args.batch_size, "subsequences": args.subsequences,
                                   "validate_every": args.validate_every, "checkpoint_every": args.checkpoint_every,
                                   "seed": args.seed, "max_seconds": args.max_seconds}.items() if v is not None}
    config = TrainingConfig.from_preset(args.training, **overrides)
    preset = args.preset or (None if args.init else "tiny")
    try:
        if args.nproc > 1 or distributed.from_environment() is not None:
            result = _train_data_parallel(args, config, preset)
            if result is None:  # a torchrun process other than rank 0
                return 0
        else:
            result = train_and_export(args.dataset, args.out, config, preset, args.mode, args.split, args.device,
                                      args.resume, log=lambda line: print(line, file=sys.stderr),
                                      progress_bar=not args.no_progress and sys.stderr.isatty(), init=args.init)
    except TrainingInterrupted as exc:
        print(f"neuralcomp train: interrupted at iteration {exc.iteration}, checkpoint saved in {exc.checkpoint}; "
              f"continue with the same command and --resume: neuralcomp train {args.dataset} --out {args.out} "
              "[same options] --resume", file=sys.stderr)
        return 130
    print(json.dumps(result.to_dict(), indent=2))
    print(f"wrote {result.model_path}; TensorBoard logs in {Path(args.out) / 'tensorboard'}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from neuralcomp import load
    from neuralcomp.data.dataset import load_dataset
    from neuralcomp.evaluation import evaluate

    dataset = load_dataset(args.dataset)
    test = dataset.split(args.split).test
    processor = load(args.model, backend=args.backend)
    evaluation = evaluate(processor, dataset, test, args.buffer)
    report = evaluation.to_dict()
    for item in report["items"]:
        controls = ", ".join(f"{k} {v:.3g}" for k, v in item["controls"].items())
        print(f"  {item['item']}: ST ESR {item['st_esr']:.4f}, gain error {item['gain_reduction_rmse_db']:.2f} dB "
              f"RMS ({controls})")
    print(f"mean over {len(report['items'])} held-out items ({processor.backend} host, {args.buffer}-sample "
          f"buffers): ST ESR {report['st_esr']:.4f}, gain error {report['gain_reduction_rmse_db']:.2f} dB RMS")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
        print(f"wrote {args.out}")
    if args.plots:
        from neuralcomp.plots import evaluation_figures

        written = evaluation_figures(evaluation, dataset.sample_rate, args.plots)
        print(f"wrote {len(written)} plots in {args.plots}")
    return 0


def add_commands(sub: Any) -> None:
    """Register `export`, `train` and `evaluate`."""
    p = sub.add_parser("export", help="write a streaming TorchScript model")
    p.add_argument("--checkpoint", type=Path, help="trained checkpoint to export")
    p.add_argument("--untrained", action="store_true", help="export a randomly initialised preset")
    p.add_argument("--from-model", type=Path, metavar="OLD.ts",
                   help="re-export a model file (SPTMod or TCN) written by an older neuralcomp (adds the native "
                        "engine's entry; the output is bitwise the same)")
    p.add_argument("--dataset", type=Path, metavar="DIR",
                   help="dataset whose level calibration (dBu at 0 dBFS) the model records (default: with "
                        "--checkpoint, the dataset of the run that wrote it, from run.json beside it; with "
                        "--from-model, the old model's)")
    p.add_argument("--preset", default="sptmod25", help="model preset (presets/models/NAME.json)")
    p.add_argument("--mode", choices=["causal", "paper"], help="interpolation mode (default: causal)")
    p.add_argument("--controls", type=int, default=0, help="number of controls of an untrained model")
    p.add_argument("--seed", type=int, default=0, help="seed of an untrained model's weights (default: 0)")
    p.add_argument("-o", "--output", type=Path, required=True,
                   help="model file to write (.ts); its folder must exist")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("train", help="train SPTMod with TBPTT on a dataset split, export the best model")
    p.add_argument("dataset", type=Path, help="dataset folder (neuralcomp dataset build/import)")
    p.add_argument("--out", type=Path, required=True,
                   help="run folder: checkpoints, TensorBoard logs and the exported model")
    p.add_argument("--preset", help="model preset (presets/models/NAME.json; default: tiny, or the --init "
                                     "model's architecture)")
    p.add_argument("--mode", choices=["causal", "paper"], default="causal",
                   help="interpolation mode: causal (0 latency) or paper (63 samples) (default: causal)")
    p.add_argument("--init", type=Path, metavar="MODEL_OR_CHECKPOINT",
                   help="fine-tune: start from the weights of an exported .ts model or a checkpoint (SPTMod or "
                        "TCN); controls are mapped by name")
    p.add_argument("--training", default="paper", help="training preset (presets/training/NAME.json)")
    p.add_argument("--split", type=int, default=0, help="which train/validation/test split of the dataset (default: 0)")
    p.add_argument("--max-iterations", type=int, help="training iterations (default: the training preset's)")
    p.add_argument("--length", type=int, help="L, samples per TBPTT subsequence (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="B, sequences per batch (default: the preset's)")
    p.add_argument("--subsequences", type=int, help="N, subsequences per TBPTT sequence (default: the preset's)")
    p.add_argument("--max-seconds", type=float,
                   help="training-loop time budget in seconds, validation excluded (default: the preset's, none)")
    p.add_argument("--validate-every", type=int, help="iterations between validations (default: the preset's)")
    p.add_argument("--checkpoint-every", type=int, help="iterations between checkpoints (default: the preset's)")
    p.add_argument("--seed", type=int, help="seed of weights and batch sampling (default: the preset's)")
    p.add_argument("--device", help="cpu or cuda (default: cuda when available)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.ckpt")
    p.add_argument("--no-progress", action="store_true", help="log lines instead of a progress bar")
    p.add_argument("--nproc", type=int, default=1,
                   help="data-parallel processes on this machine, each on B/nproc of every batch: gloo on CPU, "
                        "one GPU each with NCCL (default: 1)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("evaluate", help="held-out figures of a model on a dataset split, streamed through a host")
    add_model_arguments(p)
    p.add_argument("dataset", type=Path, help="dataset folder whose test items are rendered")
    p.add_argument("--split", type=int, default=0, help="which split's test items (default: 0)")
    p.add_argument("--buffer", type=int, default=512, help="host buffer size in samples (default: 512)")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    p.add_argument("--plots", type=Path, metavar="DIR",
                   help="write target-vs-model (waveform, gain over time) and static-curve plots per item here")
    p.set_defaults(func=cmd_evaluate)
