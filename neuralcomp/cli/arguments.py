"""Argument types and options shared by several `neuralcomp` verbs."""

from __future__ import annotations

import argparse
from pathlib import Path


def parse_control(text: str) -> tuple[str, float]:
    """argparse type for NAME=VALUE control settings."""
    name, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"controls are NAME=VALUE, got {text!r}")
    try:
        return name, float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"control {name!r}: {value!r} is not a number") from exc


def positive_float(text: str) -> float:
    """argparse type for a number > 0."""
    try:
        value = float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from exc
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return value


def parse_sizes(text: str) -> list[int]:
    """argparse type for a comma-separated list of positive integers."""
    try:
        sizes = [int(s) for s in text.split(",") if s]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"buffer sizes are comma-separated integers, got {text!r}") from exc
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError("buffer sizes must be >= 1")
    return sizes


BACKEND_CHOICES = ["auto", "native", "torchscript", "cpp", "python"]
BACKEND_HELP = ("host that runs the model: native (C++ engine, no torch), torchscript (libtorch C++ host; "
                "cpp is an alias), python (TorchScript from Python); default auto = the first one built")


def add_model_arguments(p: argparse.ArgumentParser) -> None:
    """The MODEL positional and --backend option of the verbs that load an exported model."""
    p.add_argument("model", type=Path, help="exported model file (.ts)")
    p.add_argument("--backend", choices=BACKEND_CHOICES, default="auto", help=BACKEND_HELP)


def open_processor(args: argparse.Namespace):
    """Load args.model on args.backend and apply any --control NAME=VALUE settings."""
    from neuralcomp import load

    processor = load(args.model, backend=args.backend)
    for name, value in getattr(args, "control", None) or []:
        processor.set_control(name, value)
    return processor


def check_output_file(path: Path, what: str = "output") -> None:
    """Refuse, before any work, an output file whose folder does not exist (neuralcomp creates folders
    only for verbs that write a whole folder of results) or that names a folder."""
    from neuralcomp.errors import OutputPathError

    folder = path.parent
    if not folder.is_dir():
        raise OutputPathError(f"cannot write the {what} {path}: the folder {folder} does not exist "
                              f"(create it first, e.g. mkdir -p {folder})")
    if path.is_dir():
        raise OutputPathError(f"cannot write the {what} {path}: it is a folder; give a file name")


def check_input_file(path: Path, what: str = "input") -> None:
    """A missing input file (or a folder where a file is needed) as one clear error."""
    from neuralcomp.errors import AudioInputError

    if not path.exists():
        raise AudioInputError(f"the {what} file {path} does not exist")
    if path.is_dir():
        raise AudioInputError(f"the {what} {path} is a folder, not a file")
