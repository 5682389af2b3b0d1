"""`neuralcomp dataset build|capture|import`: make a dataset from a plugin, a hardware unit, or recordings."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig
    from neuralcomp.data.targets import PluginTarget, load_target_preset

    target = PluginTarget(load_target_preset(args.target))
    settings = ds.sampled_settings(args.sampling, target, args.items, args.seed)
    music = None if args.synthetic_music else (args.music or DEFAULT_MUSIC_DIR)
    path = ds.build_dataset(args.output, target, settings, SourceConfig(seed=args.seed), music,
                            allow_synthetic_music=args.synthetic_music, overwrite=args.overwrite)
    print(f"wrote {path}: {len(settings)} items ({args.sampling}) from {args.target}")
    return 0


def _parse_control_spec(text: str):
    """NAME:MIN:MAX[:UNIT[:log]] -> ControlSpec with its default mid-range."""
    from neuralcomp.config import ControlSpec
    from neuralcomp.errors import ConfigError

    parts = text.split(":")
    try:
        name, lo, hi = parts[0], float(parts[1]), float(parts[2])
        unit = parts[3] if len(parts) > 3 else ""
        mapping = parts[4] if len(parts) > 4 else "linear"
        spec = ControlSpec(name, lo, hi, lo, unit, mapping)
        return ControlSpec(name, lo, hi, spec.value_at(0.5), unit, mapping)
    except (IndexError, ValueError, ConfigError) as exc:
        raise argparse.ArgumentTypeError(f"a control is NAME:MIN:MAX[:UNIT[:log]], got {text!r} ({exc})") from exc


def cmd_dataset_capture(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.hardware import InterfaceConfig, capture_dataset
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig, make_source

    controls = args.control or []
    if controls:
        settings = ds.sampled_settings(args.sampling, controls, args.items, args.seed).items
    else:
        settings = tuple({} for _ in range(args.items))
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    interface = InterfaceConfig(device, args.rate, args.out_channel, args.in_channel, args.blocksize)
    print(f"capturing {len(settings)} takes of about 96 s each: output channel {args.out_channel} -> unit -> "
          f"input channel {args.in_channel}", file=sys.stderr)
    sources = [make_source(SourceConfig(sample_rate=args.rate, seed=args.seed + i), args.music or DEFAULT_MUSIC_DIR).audio
               for i in range(len(settings))]
    path, report = capture_dataset(args.output, sources, settings, controls, interface,
                                   ask_user=lambda text: input(f"{text}, then press Enter "),
                                   log=lambda line: print(line, file=sys.stderr), overwrite=args.overwrite)
    print(report.format())
    print(f"wrote {path}")
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from neuralcomp.data.captures import import_captures

    path, report = import_captures(args.folder, args.output, overwrite=args.overwrite)
    print(report.format())
    print(f"wrote {path}")
    return 0


def add_commands(sub: Any) -> None:
    """Register `dataset` and its sub-verbs."""
    p = sub.add_parser("dataset", help="build a dataset from a plugin, or import hardware captures")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    q = dsub.add_parser("build", help="render the source signal through a target plugin")
    q.add_argument("output", type=Path)
    q.add_argument("--target", default="zamcomp", help="target preset (presets/targets/NAME.json)")
    q.add_argument("--sampling", choices=["snapshot", "grid", "lhs"], default="snapshot")
    q.add_argument("--items", type=int, default=16)
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--synthetic-music", action="store_true", help="no real music (tests only)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_build)
    q = dsub.add_parser("capture", help="play the source through a hardware unit and record it (sounddevice)")
    q.add_argument("output", type=Path)
    q.add_argument("--control", type=_parse_control_spec, action="append", metavar="NAME:MIN:MAX[:UNIT[:log]]",
                   help="a knob of the unit (repeat); you set it by hand before each take")
    q.add_argument("--sampling", choices=["snapshot", "lhs"], default="snapshot")
    q.add_argument("--items", type=int, default=16)
    q.add_argument("--device", help="sounddevice device name or index (default: the default device)")
    q.add_argument("--rate", type=int, default=44100)
    q.add_argument("--out-channel", type=int, default=1, help="interface output feeding the unit (1-based)")
    q.add_argument("--in-channel", type=int, default=1, help="interface input recording the unit (1-based)")
    q.add_argument("--blocksize", type=int, default=512)
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_capture)
    q = dsub.add_parser("import", help="import recorded input/output pairs (hardware captures)")
    q.add_argument("folder", type=Path)
    q.add_argument("output", type=Path)
    q.add_argument("--overwrite", action="store_true")
    q.set_defaults(func=cmd_dataset_import)
