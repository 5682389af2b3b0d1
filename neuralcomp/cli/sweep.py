"""`neuralcomp sweep` and `neuralcomp sweep-report`: the TBPTT study as commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_sweep(args: argparse.Namespace) -> int:
    from neuralcomp.config import read_preset_json
    from neuralcomp.sweep.runner import SweepOptions, run_sweep
    from neuralcomp.sweep.spec import SWEEP_PRESETS_DIR, SweepError, parse_sweep

    raw, path = read_preset_json(args.sweep, SWEEP_PRESETS_DIR, "sweep", SweepError)
    spec = parse_sweep(raw, path)
    options = SweepOptions(args.address, args.max_concurrent, args.cpus_per_trial, args.gpus_per_trial,
                           args.retry_failed, args.local_cpus)
    summary = run_sweep(spec, raw, args.dataset, args.out, options, log=lambda line: print(line, file=sys.stderr))
    counts = summary["counts"]
    print(f"{counts['done']} trials done, {counts['failed']} failed; report: neuralcomp sweep-report {args.out}")
    return 0 if counts["failed"] == 0 and counts["running"] == 0 else 1


def cmd_sweep_report(args: argparse.Namespace) -> int:
    from neuralcomp.sweep.report import write_report

    for path in write_report(args.sweep_dir, args.out or args.sweep_dir / "report", device=args.device,
                             bench_groups=args.bench_groups, log=lambda line: print(line, file=sys.stderr)):
        print(f"wrote {path}")
    return 0


def add_commands(sub: Any) -> None:
    """Register `sweep` and `sweep-report`."""
    p = sub.add_parser("sweep", help="run a grid or Optuna search of training runs on Ray Tune (local or cluster)")
    p.add_argument("sweep", help="sweep file: presets/sweeps/NAME.json by name, or a path")
    p.add_argument("--dataset", type=Path, required=True, help="dataset folder (neuralcomp dataset build)")
    p.add_argument("--out", type=Path, required=True,
                   help="sweep folder: one subfolder per trial; run again to resume")
    p.add_argument("--address", help="existing Ray cluster: HOST:PORT or 'auto' (default: start a local instance)")
    p.add_argument("--max-concurrent", type=int, help="trials at once (default: as many as the CPUs/GPUs allow)")
    p.add_argument("--cpus-per-trial", type=float, default=1.0,
                   help="CPUs reserved per trial, also its torch threads (default: 1)")
    p.add_argument("--gpus-per-trial", type=float, default=0.0,
                   help="GPUs per trial, fractions share a device; > 0 trains on CUDA (default: 0, CPU)")
    p.add_argument("--local-cpus", type=int, help="CPUs of the local Ray instance (default: all)")
    p.add_argument("--retry-failed", action="store_true", help="run failed trials again (default: keep them failed)")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("sweep-report", help="the paper's tables (median/MAD per N, B, L), training times, plots")
    p.add_argument("sweep_dir", type=Path, help="a folder written by neuralcomp sweep")
    p.add_argument("--out", type=Path, help="report folder (default: SWEEP_DIR/report)")
    p.add_argument("--device", help="device for the seconds-per-iteration bench (default: cuda when available)")
    p.add_argument("--bench-groups", type=int, default=1,
                   help="timed TBPTT groups per setting in the seconds-per-iteration bench (default: 1)")
    p.set_defaults(func=cmd_sweep_report)
