"""`neuralcomp dataset build|capture|import|source`: make a dataset from a plugin, a hardware unit, or recordings;
write the reamp source with its sync marker."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import positive_float
from neuralcomp.errors import NeuralcompError


def cmd_dataset_build(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig
    from neuralcomp.data.targets import PluginTarget, load_target_preset

    steps = math.isqrt(args.items)
    if args.sampling == "grid" and steps * steps != args.items:
        raise ds.DatasetError(f"--sampling grid makes a square threshold x ratio grid; --items {args.items} is not "
                              f"a square: use --items {steps * steps} ({steps} x {steps}) or "
                              f"{(steps + 1) ** 2} ({steps + 1} x {steps + 1})")
    target = PluginTarget(load_target_preset(args.target))
    settings = ds.sampled_settings(args.sampling, target, args.items, args.seed)
    music = None if args.synthetic_music else (args.music or DEFAULT_MUSIC_DIR)
    path = ds.build_dataset(args.output, target, settings, SourceConfig(sample_rate=args.rate, seed=args.seed), music,
                            allow_synthetic_music=args.synthetic_music, overwrite=args.overwrite)
    print(f"wrote {path}: {len(settings)} items ({args.sampling}) from {args.target}")
    _note_if_too_few_for_splits(len(settings))
    return 0


def _parse_control_spec(text: str):
    """NAME:MIN:MAX[:UNIT[:log]] -> ControlSpec with its default mid-range."""
    from neuralcomp.config import ControlSpec
    from neuralcomp.errors import ConfigError

    try:
        return ControlSpec.parse(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_dataset_capture(args: argparse.Namespace) -> int:
    from neuralcomp.data import dataset as ds
    from neuralcomp.data.captures import ImportOptions
    from neuralcomp.data.hardware import InterfaceConfig, capture_dataset
    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig, make_source

    controls = args.control or []
    if controls:
        settings = ds.sampled_settings(args.sampling, controls, args.items, args.seed).items
    else:
        settings = tuple({} for _ in range(args.items))
    device = int(args.device) if args.device and args.device.isdigit() else args.device
    interface = InterfaceConfig(device, args.rate, args.out_channel, args.in_channel, args.blocksize,
                                key_channel=args.key_channel)
    print(f"capturing {len(settings)} takes of about 96 s each: output channel {args.out_channel} -> unit -> "
          f"input channel {args.in_channel}"
          + (f", key on output channel {args.key_channel} -> sidechain input" if args.key_channel else ""),
          file=sys.stderr)
    configs = [SourceConfig(sample_rate=args.rate, seed=args.seed + i) for i in range(len(settings))]
    music = args.music or DEFAULT_MUSIC_DIR
    sources = [make_source(config, music).audio for config in configs]
    keys = None
    if args.key_channel:
        from neuralcomp.data.keyed import key_signal

        keys = [key_signal(config, len(source), music) for config, source in zip(configs, sources)]
    options = ImportOptions(input_dbu_at_0dbfs=args.input_dbu_at_0dbfs, output_dbu_at_0dbfs=args.output_dbu_at_0dbfs)
    path, report = capture_dataset(args.output, sources, settings, controls, interface,
                                   ask_user=lambda text: input(f"{text}, then press Enter "),
                                   log=lambda line: print(line, file=sys.stderr), overwrite=args.overwrite,
                                   options=options, keys=keys)
    print(report.format())
    print(f"wrote {path}")
    _note_if_too_few_for_splits(len(settings))
    return 0


def cmd_dataset_import(args: argparse.Namespace) -> int:
    from neuralcomp.data.captures import ImportOptions, import_pairs, pairs_from_layouts
    from neuralcomp.data.pairing import MANIFEST_SUFFIXES, pairs_from_manifest, pairs_from_patterns

    controls = tuple(args.control or ())
    source = args.source
    if source.suffix.lower() in MANIFEST_SUFFIXES and not source.is_dir():
        if args.pair:
            raise NeuralcompError("give a manifest or --pair patterns, not both")
        if args.sidechain:
            raise NeuralcompError("a manifest names each take's key in its sidechain column; --sidechain is for "
                                  "--pair patterns")
        pairs = pairs_from_manifest(source, controls)
    elif args.pair:
        pairs = pairs_from_patterns(source, [tuple(p) for p in args.pair], args.name_regex, controls, args.sidechain)
    else:
        if args.name_regex:
            raise NeuralcompError("--name-regex reads control values for --pair patterns; give --pair too")
        if args.sidechain:
            raise NeuralcompError("--sidechain pairs key files with --pair patterns; give --pair too (a manifest "
                                  "names them in its sidechain column)")
        pairs = pairs_from_layouts(source, knob_max=args.knob_max, controls=controls or None)
    options = ImportOptions(max_lag_ms=args.max_lag_ms, resample=args.resample, min_correlation=args.min_correlation,
                            input_channel=args.input_channel, target_channel=args.target_channel,
                            input_dbu_at_0dbfs=args.input_dbu_at_0dbfs, output_dbu_at_0dbfs=args.output_dbu_at_0dbfs)
    folder = source if source.is_dir() else source.parent
    path, report = import_pairs(pairs, args.output, options, overwrite=args.overwrite, source_folder=folder)
    print(report.format())
    print(f"wrote {path}")
    _note_if_too_few_for_splits(sum(item.training for item in report.items))
    return 0


def cmd_dataset_source(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from neuralcomp.data.source import DEFAULT_MUSIC_DIR, SourceConfig, make_source
    from neuralcomp.data.sync import program_start, with_sync_marker

    music = None if args.synthetic_music else (args.music or DEFAULT_MUSIC_DIR)
    parts, total, seed = [], 0, args.seed
    wanted = None if args.seconds is None else round(args.seconds * args.rate)
    while True:  # whole source signals of successive seeds, cut to --seconds
        signal = make_source(SourceConfig(sample_rate=args.rate, seed=seed), music,
                             allow_synthetic_music=args.synthetic_music).audio
        parts.append(signal)
        total += len(signal)
        seed += 1
        if wanted is None or total >= wanted:
            break
    program = np.concatenate(parts)[:wanted]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(args.output), with_sync_marker(program, args.rate), args.rate, subtype="FLOAT")
    print(f"wrote {args.output}: {len(program) / args.rate:.1f} s of source at {args.rate} Hz after a sync marker "
          f"(program from {program_start(args.rate) / args.rate:.2f} s). Play it through the unit, record the "
          f"return from the start of playback, then: neuralcomp dataset import FOLDER OUT --pair "
          f"{args.output.name} 'RECORDING.wav'")
    return 0


def _note_if_too_few_for_splits(trainable_items: int) -> None:
    if trainable_items < 3:
        print(f"note: {trainable_items} item(s) long enough to train give no cross-validation splits (they need "
              "at least 3), so `neuralcomp train` and `evaluate` cannot use this dataset; build or import it with "
              "more items", file=sys.stderr)


def add_commands(sub: Any) -> None:
    """Register `dataset` and its sub-verbs."""
    p = sub.add_parser("dataset", help="build a dataset from a plugin, or import hardware captures")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    q = dsub.add_parser("build", help="render the source signal through a target plugin")
    q.add_argument("output", type=Path, help="dataset folder to write")
    q.add_argument("--target", default="zamcomp", help="target preset (presets/targets/NAME.json)")
    q.add_argument("--sampling", choices=["snapshot", "grid", "lhs"], default="snapshot",
                   help="control settings: one fixed setting, a grid, or a Latin hypercube (default: snapshot)")
    q.add_argument("--items", type=int, default=16, help="number of items (takes) to record (default: 16)")
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--synthetic-music", action="store_true", help="no real music (tests only)")
    q.add_argument("--rate", type=int, default=44100,
                   help="sample rate in Hz of the dataset, and so of a model trained on it (default 44100)")
    q.add_argument("--seed", type=int, default=0, help="seed of the source signal and the settings (default: 0)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    q.set_defaults(func=cmd_dataset_build)
    q = dsub.add_parser("capture", help="play the source through a hardware unit and record it (sounddevice)")
    q.add_argument("output", type=Path, help="dataset folder to write")
    q.add_argument("--control", type=_parse_control_spec, action="append", metavar="NAME:MIN:MAX[:UNIT[:log]]",
                   help="a knob of the unit (repeat); you set it by hand before each take")
    q.add_argument("--sampling", choices=["snapshot", "lhs"], default="snapshot",
                   help="control settings: one fixed setting or a Latin hypercube (default: snapshot)")
    q.add_argument("--items", type=int, default=16, help="number of items (takes) to record (default: 16)")
    q.add_argument("--device", help="sounddevice device name or index (default: the default device)")
    q.add_argument("--rate", type=int, default=44100, help="sample rate in Hz of the capture (default: 44100)")
    q.add_argument("--out-channel", type=int, default=1, help="interface output feeding the unit (1-based)")
    q.add_argument("--in-channel", type=int, default=1, help="interface input recording the unit (1-based)")
    q.add_argument("--blocksize", type=int, default=512, help="frames per audio callback (default: 512)")
    q.add_argument("--key-channel", type=int,
                   help="a keyed unit: interface output (1-based) wired to its sidechain input; each take plays "
                        "another source signal there as its key, and the dataset carries it (default: no key)")
    q.add_argument("--input-dbu-at-0dbfs", type=float,
                   help="level calibration: dBu at the unit's input for a 0 dBFS sample played")
    q.add_argument("--output-dbu-at-0dbfs", type=float,
                   help="level calibration: dBu at the unit's output that records as 0 dBFS")
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--seed", type=int, default=0, help="seed of the source signal and the settings (default: 0)")
    q.add_argument("--overwrite", action="store_true", help="replace an existing dataset folder")
    q.set_defaults(func=cmd_dataset_capture)
    q = dsub.add_parser("import", help="import recorded input/output pairs (hardware captures, any layout)")
    q.add_argument("source", type=Path,
                   help="a folder of captures (CL 1B layouts, or --pair patterns), or a manifest (.csv or .json)")
    q.add_argument("output", type=Path, help="dataset folder to write (nothing is left there if the import fails)")
    q.add_argument("--pair", nargs=2, action="append", metavar=("GLOB_IN", "GLOB_OUT"),
                   help="input and output file patterns relative to SOURCE; equal wildcard parts pair files, an "
                        "input without wildcards is shared by every output (repeat for more)")
    q.add_argument("--name-regex", help="regular expression searched in each output's path; its named groups "
                                        "(?P<control>...) give the control values in user units")
    q.add_argument("--sidechain", metavar="GLOB_KEY",
                   help="with --pair: each take's sidechain (key) file, paired with the output by the same wildcard "
                        "parts, or one file for every take; it must match its input's rate and length "
                        "(default: no sidechain)")
    q.add_argument("--control", type=_parse_control_spec, action="append", metavar="NAME:MIN:MAX[:UNIT[:log]]",
                   help="a control: name, range in its unit, unit, log mapping (repeat); none: a snapshot model")
    q.add_argument("--resample", type=int, metavar="RATE",
                   help="convert every file to RATE Hz (default: refuse files at different rates)")
    q.add_argument("--max-lag-ms", type=float, default=50.0,
                   help="lag search between input and target in ms, without a sync marker (default 50)")
    q.add_argument("--min-correlation", type=float, default=0.2,
                   help="refuse a target whose correlation with its input after alignment is below this (default 0.2)")
    q.add_argument("--input-channel", type=int, help="channel of multichannel input files to use, from 1 (default: mix all)")
    q.add_argument("--target-channel", type=int, help="channel of multichannel target files to use, from 1 (default: mix all)")
    q.add_argument("--input-dbu-at-0dbfs", type=float,
                   help="level calibration: dBu at the unit's input for a 0 dBFS sample of the capture")
    q.add_argument("--output-dbu-at-0dbfs", type=float,
                   help="level calibration: dBu at the unit's output that records as 0 dBFS")
    q.add_argument("--knob-max", type=float, default=10.0,
                   help="CL 1B numbered layout: knob value that means 1.0 (default 10)")
    q.add_argument("--overwrite", action="store_true", help="replace OUTPUT if it exists")
    q.set_defaults(func=cmd_dataset_import)
    q = dsub.add_parser("source", help="write the standard source signal with a sync marker, to reamp through a unit")
    q.add_argument("-o", "--output", type=Path, required=True, help="WAV file to write (float32)")
    q.add_argument("--seconds", type=positive_float,
                   help="program length in seconds (default: one source signal, about 96 s; longer ones chain seeds)")
    q.add_argument("--rate", type=int, default=44100, help="sample rate in Hz (default 44100)")
    q.add_argument("--music", type=Path, help="folder of music files (default: Debian's fretsonfire songs)")
    q.add_argument("--synthetic-music", action="store_true", help="no real music (tests only)")
    q.add_argument("--seed", type=int, default=0, help="source seed (default 0)")
    q.set_defaults(func=cmd_dataset_source)
