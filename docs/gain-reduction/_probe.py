"""The probe scripts' shared command line: the models, the target compressor and its controls, with every
model set to the same controls, so each script compares the target and the models on one signal."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from neuralcomp.data.targets import PluginTarget
from neuralcomp.host.processor import Processor, load


@dataclass
class Probe:
    """The target, its controls (normalised, as the target takes them), and the models set to them."""

    target: PluginTarget
    normalised: dict[str, float]
    processors: list[Processor]
    model_paths: list[str]


def probe_parser(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("models", nargs="+", help="exported models (.ts)")
    parser.add_argument("--target", default="zamcomp", help="target preset (presets/targets/NAME.json; default zamcomp)")
    parser.add_argument("--control", action="append", default=[], metavar="NAME=VALUE",
                        help="a control in the target's units (repeatable; default: the preset's defaults)")
    return parser


def open_probe(args: Any) -> Probe:
    """The target and the models of parsed `probe_parser` arguments, every model set to the controls."""
    target = PluginTarget(args.target)
    values = {c.name: float(c.default) for c in target.controls}
    for item in args.control:
        name, _, value = item.partition("=")
        values[name] = float(value)
    processors = [load(path) for path in args.models]
    for processor in processors:
        for name in processor.control_names:
            processor.set_control(name, values[name])
    print("controls: " + ", ".join(f"{name} {value:g}" for name, value in values.items()))
    return Probe(target, {c.name: c.to_normalised(values[c.name]) for c in target.controls},
                 processors, list(args.models))
