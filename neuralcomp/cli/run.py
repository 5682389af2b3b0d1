"""`neuralcomp process` and `neuralcomp info`: render a file through a model, show a model's metadata."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from neuralcomp.cli.arguments import (add_model_arguments, check_input_file, check_output_file, open_processor,
                                      parse_control)


def audio_format_for(path: Path) -> tuple[str, str]:
    """(libsndfile format, subtype) for an output file, chosen from its extension: float samples where
    the format holds them (WAV, AIFF, ...), 24-bit for FLAC, Vorbis for OGG. OutputPathError otherwise."""
    import soundfile as sf

    from neuralcomp.errors import OutputPathError

    extension = path.suffix.lower().lstrip(".")
    fmt = {"aif": "AIFF", "oga": "OGG"}.get(extension, extension.upper())
    writable = set(sf.available_formats()) - {"RAW"}  # RAW needs its layout given by hand
    if fmt not in writable:
        common = [f".{f.lower()}" for f in ("WAV", "FLAC", "OGG", "AIFF", "CAF", "W64", "RF64", "MP3") if f in writable]
        kind = f".{extension}" if extension else "extension-less"
        raise OutputPathError(f"cannot write {path}: libsndfile writes no {kind} audio files; give the output "
                              f"one of the extensions {', '.join(common)}")
    for subtype in ("FLOAT", "PCM_24"):
        if sf.check_format(fmt, subtype):
            return fmt, subtype
    return fmt, sf.default_subtype(fmt)


def cmd_process(args: argparse.Namespace) -> int:
    import numpy as np
    import soundfile as sf

    from neuralcomp.errors import AudioInputError

    check_input_file(args.input)
    check_output_file(args.output)
    fmt, subtype = audio_format_for(args.output)
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
    if audio.shape[0] == 0:
        raise AudioInputError(f"{args.input} holds no audio (0 frames)")
    latency = processor.latency_at(rate)
    frames = audio.T.copy()
    key = None
    if args.sidechain is not None:
        check_input_file(args.sidechain)
        try:
            sidechain, key_rate = sf.read(args.sidechain, dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError) as exc:
            raise AudioInputError(f"cannot read {args.sidechain}: {exc}") from exc
        if key_rate != rate:
            raise AudioInputError(f"sidechain {args.sidechain} is at {key_rate} Hz, the input at {rate} Hz")
        key = sidechain.T.copy()  # the processor names both shapes if they do not match
    if args.compensate_latency and latency:
        # as offline renderers do: run `latency` samples of silence after the input, drop as many in front
        frames = np.concatenate((frames, np.zeros((frames.shape[0], latency), np.float32)), axis=1)
        if key is not None:
            key = np.concatenate((key, np.zeros((key.shape[0], latency), np.float32)), axis=1)
    start = time.perf_counter()
    out = processor.process(frames, rate, buffer_size=args.buffer, sidechain=key)
    elapsed = time.perf_counter() - start
    if args.compensate_latency:
        out = out[:, latency:]
    try:
        sf.write(args.output, out.T, rate, subtype=subtype, format=fmt)
    except (RuntimeError, sf.LibsndfileError) as exc:
        from neuralcomp.errors import OutputPathError

        raise OutputPathError(f"cannot write {args.output} as {fmt} {subtype} at {rate} Hz: {exc}") from exc
    seconds = audio.shape[0] / rate
    shift = f"{latency} samples at {rate} Hz" + (", compensated" if args.compensate_latency and latency else "")
    print(f"{args.output}: {audio.shape[0]} frames x {audio.shape[1]} ch, buffer {args.buffer or 'whole file'}, "
          f"backend {processor.backend}, latency {shift}, real-time factor {elapsed / seconds:.3f}")
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
    if config.get("architecture") == "tcn":
        print(f"architecture {config['name']} (TCN): {config['channels']} channels, kernel {config['kernel_size']}, "
              f"dilations {config['dilations']}")
    else:
        print(f"architecture {config['name']}: channels {config['channels']}, kernels {config['kernel_sizes']}, "
              f"P={meta['pool_size']} ({config.get('pooling', 'average')} pooling), H={config['lstm_hidden']}, "
              f"{config.get('audio_modulation', 'affine')} audio path")
    print(f"mode         {meta['mode']} (latency {meta['latency_samples']} samples)")
    other_rates = [r for r in (44100, 48000, 88200, 96000) if r != processor.sample_rate]
    print("latency      at other host rates (resampled): "
          + ", ".join(f"{processor.latency_at(r)} samples at {r} Hz" for r in other_rates))
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
    p.add_argument("input", type=Path, help="audio file to render (any format libsndfile reads)")
    p.add_argument("output", type=Path, help="audio file to write; its extension picks the format "
                   "(.wav and .aiff float, .flac 24-bit, .ogg Vorbis); its folder must exist")
    p.add_argument("--buffer", type=int, default=None, help="host buffer size in samples (default: whole file)")
    p.add_argument("--sidechain", type=Path, default=None,
                   help="key audio file for a sidechain model: as many frames as the input at its rate, "
                        "channels = input channels x the model's sidechain channels (default: none)")
    p.add_argument("--control", type=parse_control, action="append", metavar="NAME=VALUE",
                   help="set a control in its own unit before rendering (repeatable; default: the model's defaults)")
    p.add_argument("--compensate-latency", action="store_true",
                   help="shift the output earlier by the latency at the file's rate (latency_at(rate) samples), "
                   "so it lines up with the input, as offline renderers do (default: off, output delayed)")
    p.add_argument("--input-level-db", type=float, help="trim in dB before the model (default 0)")
    p.add_argument("--output-level-db", type=float, help="trim in dB after the model (default 0)")
    p.add_argument("--match-calibration", type=float, nargs=2, metavar=("IN_DBU", "OUT_DBU"),
                   help="your interface's dBu at 0 dBFS, input and output: set the trims to the capture's levels "
                        "(the model must record its calibration)")
    p.set_defaults(func=cmd_process)

    p = sub.add_parser("info", help="show a model's metadata")
    add_model_arguments(p)
    p.add_argument("--json", action="store_true", help="print the metadata as JSON")
    p.set_defaults(func=cmd_info)
