"""`neuralcomp process` and `neuralcomp info`: render a file through a model, show a model's metadata."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import add_model_arguments, open_processor, parse_control


def cmd_process(args: argparse.Namespace) -> int:
    import soundfile as sf

    from neuralcomp.errors import AudioInputError

    processor = open_processor(args)
    if args.match_calibration:
        trims = processor.match_calibration(*args.match_calibration)
        print(f"level match: input trim {trims[0]:+.2f} dB, output trim {trims[1]:+.2f} dB", file=sys.stderr)
    if args.input_level_db is not None:
        processor.input_level_db = args.input_level_db
    if args.output_level_db is not None:
        processor.output_level_db = args.output_level_db
    try:
        audio, rate = sf.read(args.input, dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError) as exc:
        raise AudioInputError(f"cannot read {args.input}: {exc}") from exc
    start = time.perf_counter()
    out = processor.process(audio.T.copy(), rate, buffer_size=args.buffer)
    elapsed = time.perf_counter() - start
    sf.write(args.output, out.T, rate, subtype="FLOAT")
    seconds = audio.shape[0] / rate
    print(f"{args.output}: {audio.shape[0]} frames x {audio.shape[1]} ch, buffer {args.buffer or 'whole file'}, "
          f"backend {processor.backend}, latency {processor.latency_samples} samples, "
          f"real-time factor {elapsed / seconds:.3f}")
    if processor.nonfinite_buffers:
        print(f"warning: {processor.nonfinite_buffers} buffer(s) had NaN/Inf input and were muted", file=sys.stderr)
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    processor = open_processor(args)
    meta = processor.metadata
    if args.json:
        print(json.dumps(meta, indent=2))
        return 0
    config = meta["model_config"]
    print(f"model        {args.model}")
    print(f"architecture {config['name']}: channels {config['channels']}, kernels {config['kernel_sizes']}, "
          f"P={meta['pool_size']}, H={config['lstm_hidden']}")
    print(f"mode         {meta['mode']} (latency {meta['latency_samples']} samples)")
    print(f"sample rate  {meta['sample_rate']} Hz; schema {meta['schema_version']}; torch {meta['torch_version']}")
    print(f"backend      {processor.backend}")
    for c in meta["controls"]:
        print(f"control      {c['name']}: [{c['minimum']:g}, {c['maximum']:g}] {c['unit']}, default {c['default']:g}, "
              f"{c.get('mapping', 'linear')} mapping")
    for s in meta["state"]:
        print(f"state        {s['name']}: {s['shape']} {s['dtype']}")
    if meta.get("calibration"):
        print(f"calibration  {', '.join(f'{k} {v:g}' for k, v in meta['calibration'].items())}")
    print(f"provenance   {json.dumps(meta.get('provenance', {}))}")
    return 0


def add_commands(sub: Any) -> None:
    """Register `process` and `info`."""
    p = sub.add_parser("process", help="render a file through a model")
    add_model_arguments(p)
    p.add_argument("input", type=Path)
    p.add_argument("output", type=Path)
    p.add_argument("--buffer", type=int, default=None, help="host buffer size in samples (default: whole file)")
    p.add_argument("--control", type=parse_control, action="append", metavar="NAME=VALUE")
    p.add_argument("--input-level-db", type=float, help="trim in dB before the model (default 0)")
    p.add_argument("--output-level-db", type=float, help="trim in dB after the model (default 0)")
    p.add_argument("--match-calibration", type=float, nargs=2, metavar=("IN_DBU", "OUT_DBU"),
                   help="your interface's dBu at 0 dBFS, input and output: set the trims to the capture's levels "
                        "(the model must record its calibration)")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("info", help="show a model's metadata")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_info)
