"""`neuralcomp live`: run a model on an audio device in real time."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from neuralcomp.cli.arguments import BACKEND_CHOICES, BACKEND_HELP, parse_control, positive_float
from neuralcomp.errors import NeuralcompError
from neuralcomp.live import DEFAULT_BLOCKSIZE, LiveAudioError, LiveSession, format_devices


def main_live(args: argparse.Namespace) -> int:
    """Handler of `neuralcomp live`: 0 when the run ended cleanly, 1 when the audio callback failed,
    2 (one line on stderr) on a NeuralcompError such as a bad device, model file or control."""
    try:
        if args.list_devices:
            print(format_devices())
            return 0
        if args.model is None:
            raise LiveAudioError("give a MODEL file (or --list-devices)")
        from neuralcomp import load

        processor = load(args.model, backend=args.backend)
        if args.match_calibration:
            processor.match_calibration(*args.match_calibration)
        if args.input_level_db is not None:
            processor.input_level_db = args.input_level_db
        if args.output_level_db is not None:
            processor.output_level_db = args.output_level_db
        session = LiveSession(
            processor, device=args.device, input_device=args.input_device, output_device=args.output_device,
            samplerate=args.samplerate, blocksize=args.blocksize, channels=args.channels,
            sidechain_inputs=args.sidechain_inputs,
        )
        for name, value in args.control or []:
            session.set_control(name, value)
        summary = session.run(args.duration)
    except NeuralcompError as exc:
        lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
        message = lines[0] + (" " + "; ".join(lines[1:]) if len(lines) > 1 else "") if lines else type(exc).__name__
        print(f"neuralcomp live: error: {message}", file=sys.stderr)
        return 2
    print(summary.format())
    return 1 if summary.errors else 0


def add_live_command(subparsers: Any) -> argparse.ArgumentParser:
    """Register `neuralcomp live` on an argparse subparsers object; returns the new parser."""
    p = subparsers.add_parser(
        "live", help="run a model on an audio device in real time",
        description="Process live audio (duplex stream) through a model. While it runs, type NAME=VALUE "
        "to change a control, q to quit; Ctrl-C also stops it.",
    )
    p.add_argument("model", nargs="?", help="exported model file (.ts)")
    p.add_argument("--device", "-d", help="device index or name (part) for input and output")
    p.add_argument("--input-device", help="input device (overrides --device)")
    p.add_argument("--output-device", help="output device (overrides --device)")
    p.add_argument("--samplerate", "-r", type=positive_float,
                   help="stream rate in Hz (default: the device's default rate; the model is resampled when its "
                   "rate differs)")
    p.add_argument("--blocksize", "-b", type=int, default=DEFAULT_BLOCKSIZE, help="frames per callback (default 256)")
    p.add_argument("--channels", "-c", type=int, help="channels (default: up to 2)")
    p.add_argument("--sidechain-inputs", type=int, default=0, metavar="N",
                   help="for a model keyed by a sidechain: the last N capture channels, after the audio ones, are "
                        "its key (N = channels x the model's sidechain channels; stream at the model's rate; "
                        "default 0: no sidechain inputs)")
    p.add_argument("--duration", type=positive_float, help="stop after this many seconds (default: until Ctrl-C or q)")
    p.add_argument("--control", type=parse_control, action="append", metavar="NAME=VALUE",
                   help="set a control in its units, e.g. threshold=-30 (repeat; default: the model's defaults)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=BACKEND_HELP)
    p.add_argument("--input-level-db", type=float, metavar="DB",
                   help="trim in dB applied to the input before the model, -60..60 (default 0)")
    p.add_argument("--output-level-db", type=float, metavar="DB",
                   help="trim in dB applied to the model's output, -60..60 (default 0)")
    p.add_argument("--match-calibration", type=float, nargs=2, metavar=("IN_DBU", "OUT_DBU"),
                   help="your interface's dBu at 0 dBFS, input and output: set the trims so that the model sees "
                        "the levels of its capture (the model must record its calibration; the two options above "
                        "override it)")
    p.add_argument("--list-devices", action="store_true", help="list audio devices and exit")
    p.set_defaults(func=main_live)
    return p


def add_commands(sub: Any) -> None:
    """Register `live`."""
    add_live_command(sub)
