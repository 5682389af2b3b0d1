"""The `neuralcomp` command line. One module per verb group; each registers its verbs with `add_commands`."""

from __future__ import annotations

import argparse
import os
import sys

from neuralcomp.cli import bench, dataset, live, plugins, run, sweep, training
from neuralcomp.errors import NeuralcompError

_VERB_GROUPS = (dataset, training, sweep, run, bench, live, plugins)
_DESCRIPTION = ("neuralcomp: build datasets, train and export neural compressor models, run them on files "
                "or live, and measure them.")


def build_parser() -> argparse.ArgumentParser:
    """The full `neuralcomp` argument parser."""
    parser = argparse.ArgumentParser(prog="neuralcomp", description=_DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    for group in _VERB_GROUPS:
        group.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run one verb; a NeuralcompError becomes one line on stderr and exit code 2."""
    args = build_parser().parse_args(argv)
    try:
        code = args.func(args)
        sys.stdout.flush()
        return code
    except (NeuralcompError, ImportError) as exc:
        print(f"neuralcomp {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"\nneuralcomp {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader went away (`neuralcomp info MODEL | head`): stop quietly, as other command-line tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
